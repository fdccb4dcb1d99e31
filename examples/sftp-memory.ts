/**
 * An SFTP server with nothing on disk: the embedded server serves an
 * in-memory file system (bounded, seeded with a file), our client lists it,
 * uploads a file, downloads it back and checks the hash; the program then
 * reads the upload straight out of the backend.
 *
 * Usage: node examples/sftp-memory.ts [MiB]
 */
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Auth, HostKeys, NodeSsh, PrivateKey, PublicKey, SftpMemoryBackend, SftpServer, SshClient, SshServer } from "../src/index.ts"

const size = Number(process.argv[2] ?? 8) * 1024 * 1024

const program = Effect.gen(function*() {
  // only the client's side of the transfer touches the disk
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "effect-ssh-sftp-memory-"))
  yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(work, { recursive: true, force: true })))
  const source = path.join(work, "source.bin")
  fs.writeFileSync(source, crypto.randomBytes(size))

  const backend = SftpMemoryBackend.make({ maxBytes: 2 * size + 1024 * 1024, files: { "/README": "an in-memory file system\n" } })
  const hostKey = PrivateKey.generate("ssh-ed25519")
  const userKey = PrivateKey.generate("ssh-ed25519")
  const server = yield* SshServer.serve({
    port: 0,
    hostKeys: [hostKey],
    auth: { publicKey: ({ key }) => Effect.succeed(PublicKey.equals(key, userKey.publicKey)) },
    sftp: SftpServer.make(backend)
  })
  const ssh = yield* SshClient.connect({
    host: server.address.host,
    port: server.address.port,
    username: "demo",
    auth: [Auth.privateKey(userKey)],
    hostKeys: HostKeys.fixed(hostKey.publicKey)
  })
  const sftp = yield* ssh.sftp()

  const listing = (dir: string) => Effect.map(sftp.list(dir), (entries) => entries.map((e) => e.filename).sort().join(" "))
  yield* Console.log(`ls / → ${yield* listing("/")}`)
  yield* Console.log(`cat /README → ${new TextDecoder().decode(yield* sftp.readFile("/README")).trim()}`)
  yield* sftp.mkdir("/uploads")
  const up = yield* sftp.put(source, "/uploads/data.bin")
  yield* Console.log(`put ${up.bytes} bytes; ls /uploads → ${yield* listing("/uploads")}`)
  const copy = path.join(work, "copy.bin")
  const down = yield* sftp.get("/uploads/data.bin", copy)

  const hash = (bytes: Uint8Array) => crypto.createHash("sha256").update(bytes).digest("hex")
  const sent = hash(fs.readFileSync(source))
  const same = sent === hash(fs.readFileSync(copy)) && sent === hash(yield* backend.readFile("/uploads/data.bin"))
  yield* Console.log(`got ${down.bytes} bytes back, sha256 ${same ? "identical" : "DIFFERENT"} (client copy and backend)`)
  yield* Console.log(`backend holds ${backend.snapshot().length} names, ${backend.bytesUsed()} of ${backend.maxBytes} bytes`)
  if (!same) return yield* Effect.fail(new Error("the file differs"))
})

program.pipe(Effect.scoped, Effect.provide(NodeSsh.layer), Effect.runPromise).then(
  () => process.exit(0),
  (error) => {
    console.error(`sftp-memory example failed: ${error}`)
    process.exit(1)
  }
)
