/**
 * SFTP end to end on one machine: the embedded server serves a temporary
 * directory (jailed), our client uploads a file with progress, lists the
 * directory, downloads the file back, and checks the hash.
 *
 * Usage: node examples/sftp.ts [MiB]
 */
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Auth, HostKeys, NodeSsh, PrivateKey, PublicKey, SftpServer, SshClient, SshServer } from "effect-ssh"

const size = Number(process.argv[2] ?? 64) * 1024 * 1024

const program = Effect.gen(function*() {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "effect-ssh-sftp-example-"))
  yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(work, { recursive: true, force: true })))
  const root = path.join(work, "served")
  fs.mkdirSync(root)
  const source = path.join(work, "source.bin")
  fs.writeFileSync(source, crypto.randomBytes(size))

  const hostKey = PrivateKey.generate("ssh-ed25519")
  const userKey = PrivateKey.generate("ssh-ed25519")
  const server = yield* SshServer.serve({
    port: 0,
    hostKeys: [hostKey],
    auth: { publicKey: ({ key }) => Effect.succeed(PublicKey.equals(key, userKey.publicKey)) },
    sftp: SftpServer.fileSystem({ root })
  })
  const ssh = yield* SshClient.connect({
    host: server.address.host,
    port: server.address.port,
    username: "demo",
    auth: [Auth.privateKey(userKey)],
    hostKeys: HostKeys.fixed(hostKey.publicKey)
  })
  const sftp = yield* ssh.sftp()

  let reported = 0
  const up = yield* sftp.put(source, "/upload.bin", {
    onProgress: ({ bytes, total }) =>
      Effect.sync(() => {
        if (bytes - reported >= size / 4 || bytes === total) {
          reported = bytes
          console.log(`  put ${bytes} / ${total} bytes`)
        }
      })
  })
  const names = yield* Stream.runCollect(sftp.readdir("/")).pipe(Effect.map((entries) => entries.map((e) => e.filename)))
  yield* Console.log(`  ls / → ${names.join(" ")}`)
  const copy = path.join(work, "copy.bin")
  const down = yield* sftp.get("/upload.bin", copy)
  const hash = (file: string) => crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex")
  const same = hash(source) === hash(copy)
  yield* Console.log(`put ${up.bytes} bytes, got ${down.bytes} bytes back, sha256 ${same ? "identical" : "DIFFERENT"}`)
  if (!same) return yield* Effect.fail(new Error("the downloaded file differs"))
})

program.pipe(Effect.scoped, Effect.provide(NodeSsh.layer), Effect.runPromise).then(
  () => process.exit(0),
  (error) => {
    console.error(`sftp example failed: ${error}`)
    process.exit(1)
  }
)
