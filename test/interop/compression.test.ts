/**
 * Compression against OpenSSH, both ways: OpenSSH's `ssh -C` and `sftp -C`
 * against our server (`zlib@openssh.com` by default as sshd, plain `zlib`
 * when our server offers only that: OpenSSH 9.2's client with `-C` offers
 * `zlib@openssh.com,zlib,none`), and our client with `compression: true`
 * against sshd (`Compression yes`: sshd implements only `zlib@openssh.com`),
 * each with rekeys in the middle of 20 MiB of compressible text, compared by
 * hash. Plain `zlib` between our own client and server is in
 * `test/Transport/CompressionSession.test.ts`.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as ChildProcess from "node:child_process"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { promisify } from "node:util"
import * as SshServer from "../../src/Server.ts"
import * as Serve from "../../src/cli/Serve.ts"
import type { ServeArgs } from "../../src/cli/ServeArgs.ts"
import * as SshClient from "../../src/Client.ts"
import * as Auth from "../../src/Auth/ClientAuth.ts"
import { type Sshd, type SshdHostKey, describeInterop, opensshPaths, sshClientArgs, startSshd } from "./sshd.ts"
import { runFailure, runScoped, sshdOptions } from "../helpers.ts"

const execFile = promisify(ChildProcess.execFile)
const mainScript = new URL("../../src/cli/main.ts", import.meta.url).pathname

const SIZE = 20 * 1024 * 1024
/** Numbered lines: text that compresses about fivefold, so that 20 MiB still crosses several rekey limits. */
const GENERATE = `awk 'BEGIN { for (i = 1; ; i++) print "line " i " of some compressible text" }' | head -c ${SIZE}`
const TEXT = (() => {
  const lines: Array<string> = []
  for (let i = 1, length = 0; length < SIZE; i++) {
    const line = `line ${i} of some compressible text\n`
    lines.push(line)
    length += line.length
  }
  return Buffer.from(lines.join("")).subarray(0, SIZE)
})()
const TEXT_SHA = Crypto.createHash("sha256").update(TEXT).digest("hex")

interface Run {
  readonly code: number | null
  readonly stdoutSha: string
  readonly stdoutBytes: number
  readonly stdout: string
  readonly stderr: string
}

/** Runs an OpenSSH program with `input` on stdin; stdout is hashed (and kept when small). */
const spawn = (file: string, args: ReadonlyArray<string>, input?: Uint8Array | string): Promise<Run> =>
  new Promise((resolve, reject) => {
    const child = ChildProcess.spawn(file, args, { stdio: ["pipe", "pipe", "pipe"] })
    const hash = Crypto.createHash("sha256")
    let stdoutBytes = 0
    let small = ""
    let stderr = ""
    child.stdout.on("data", (b: Buffer) => {
      hash.update(b)
      stdoutBytes += b.length
      if (small.length < 4096) small += b.toString()
    })
    child.stderr.on("data", (b: Buffer) => void (stderr += b.toString()))
    const timer = setTimeout(() => child.kill("SIGKILL"), 50_000)
    child.on("error", reject)
    child.on("close", (code) => {
      clearTimeout(timer)
      resolve({ code, stdoutSha: hash.digest("hex"), stdoutBytes, stdout: small, stderr })
    })
    child.stdin.on("error", () => {})
    child.stdin.end(input)
  })

const keygen = async (file: string, type: "ed25519") => {
  await execFile(opensshPaths().sshKeygen ?? "ssh-keygen", ["-q", "-t", type, "-N", "", "-C", "compression-test", "-f", file])
  return Fs.readFileSync(`${file}.pub`, "utf8").trim()
}

/** The `ssh -v` lines that say what each direction compresses with, and how many key exchanges finished. */
const compressionOf = (stderr: string) => ({
  clientToServer: /kex: client->server cipher: \S+ MAC: \S+ compression: (\S+)/.exec(stderr)?.[1],
  serverToClient: /kex: server->client cipher: \S+ MAC: \S+ compression: (\S+)/.exec(stderr)?.[1],
  enabled: (stderr.match(/Enabling compression at level 6/g) ?? []).length,
  newKeys: (stderr.match(/SSH2_MSG_NEWKEYS received/g) ?? []).length
})

describeInterop("OpenSSH ssh -C and sftp -C against our server", () => {
  let dir: string
  let scope: Scope.Closeable
  /** Our server with sshd's default offer (`none,zlib@openssh.com`), and one that offers only plain `zlib`. */
  let delayed: Sshd
  let plain: Sshd
  let identity: string

  beforeAll(async () => {
    dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-ssh-compression-"))
    const hostKeyPath = Path.join(dir, "ssh_host_ed25519_key")
    const hostLine = await keygen(hostKeyPath, "ed25519")
    identity = Path.join(dir, "id_ed25519")
    const clientLine = await keygen(identity, "ed25519")
    Fs.writeFileSync(Path.join(dir, "authorized_keys"), `${clientLine}\n`)
    const sftpRoot = Path.join(dir, "root")
    Fs.mkdirSync(sftpRoot)
    const args: ServeArgs = {
      _tag: "Serve",
      listen: "127.0.0.1",
      port: 0,
      hostKeys: [hostKeyPath],
      authorizedKeys: Path.join(dir, "authorized_keys"),
      sftpRoot,
      perSourcePenalties: false
    }
    const hostKey: SshdHostKey = { type: "ed25519", algorithm: "ssh-ed25519", publicKeyLine: hostLine, fingerprint: "", path: hostKeyPath }
    scope = await Effect.runPromise(Scope.make())
    const start = (algorithms: SshServer.ServeOptions["algorithms"]) =>
      Effect.runPromise(Effect.gen(function*() {
        const options = yield* Serve.serveOptions(args, () => Effect.void)
        return yield* SshServer.serve({ ...options, algorithms })
      }).pipe(Scope.provide(scope)))
    const asTarget = (port: number): Sshd => {
      const knownHostsFile = Path.join(dir, `known_hosts_${port}`)
      Fs.writeFileSync(knownHostsFile, `[127.0.0.1]:${port} ${hostLine.split(" ").slice(0, 2).join(" ")}\n`)
      return {
        host: "127.0.0.1", port, dir, user: Os.userInfo().username, password: undefined, hostKeys: [hostKey],
        clientKeys: { ed25519: identity, ecdsa: identity, rsa: identity }, knownHostsFile, askpassFile: "",
        configFile: "/dev/null", logFile: "/dev/null", stop: async () => {}
      }
    }
    delayed = asTarget((await start(undefined)).address.port)
    plain = asTarget((await start({ compression: ["zlib"] })).address.port)
  })

  afterAll(async () => {
    if (scope !== undefined) await Effect.runPromise(Scope.close(scope, Exit.void))
    if (dir !== undefined) Fs.rmSync(dir, { recursive: true, force: true })
  })

  const sshArgs = (target: Sshd, extra: ReadonlyArray<string>) => [
    "-C", "-v", "-o", "RekeyLimit=512K", ...extra, ...sshClientArgs(target, { identity })
  ]

  const sshExec = (target: Sshd, command: string, input?: Uint8Array) =>
    spawn(opensshPaths().ssh!, [...sshArgs(target, []), `${target.user}@${target.host}`, command], input)

  for (const [method, target] of [["zlib@openssh.com", () => delayed], ["zlib", () => plain]] as const) {
    describe(method, () => {
      it("ssh -C: 20 MiB of text down (exec) and up (stdin), through rekeys, equal by hash", async () => {
        const down = await sshExec(target(), GENERATE)
        expect(down.code, down.stderr).toBe(0)
        expect(down.stdoutBytes).toBe(SIZE)
        expect(down.stdoutSha).toBe(TEXT_SHA)
        const c = compressionOf(down.stderr)
        expect(c).toMatchObject({ clientToServer: method, serverToClient: method })
        // RekeyLimit=512K (counted on the wire) over 20 MiB: ssh restarts its deflate at each NEWKEYS, and so do we
        expect(c.newKeys).toBeGreaterThanOrEqual(3)
        expect(c.enabled).toBe(c.newKeys)
        const up = await sshExec(target(), "sha256sum", TEXT)
        expect(up.code, up.stderr).toBe(0)
        expect(up.stdout.split(" ")[0]).toBe(TEXT_SHA)
        expect(compressionOf(up.stderr).newKeys).toBeGreaterThanOrEqual(3)
      }, 60_000)

      it("sftp -C: a 20 MiB text file put and got back, equal by hash", async () => {
        const local = Path.join(dir, `local-${method}.txt`)
        const back = Path.join(dir, `back-${method}.txt`)
        Fs.writeFileSync(local, TEXT)
        const batch = Path.join(dir, `batch-${method}`)
        Fs.writeFileSync(batch, `put ${local} /up-${method}.txt\nget /up-${method}.txt ${back}\n`)
        const t = target()
        const sftpArgs = [
          "-C", "-v", "-o", "RekeyLimit=512K", "-b", batch, "-P", String(t.port),
          ...sshClientArgs(t, { identity }).filter((_, i, all) => all[i] !== "-p" && all[i - 1] !== "-p"),
          `${t.user}@${t.host}`
        ]
        const r = await spawn(opensshPaths().sftp!, sftpArgs)
        expect(r.code, r.stderr).toBe(0)
        const c = compressionOf(r.stderr)
        expect(c).toMatchObject({ clientToServer: method, serverToClient: method })
        expect(c.newKeys).toBeGreaterThanOrEqual(3)
        expect(Crypto.createHash("sha256").update(Fs.readFileSync(back)).digest("hex")).toBe(TEXT_SHA)
        expect(Crypto.createHash("sha256").update(Fs.readFileSync(Path.join(dir, "root", `up-${method}.txt`))).digest("hex")).toBe(TEXT_SHA)
      }, 60_000)
    })
  }

  it("ssh without -C negotiates none with our server", async () => {
    const r = await spawn(opensshPaths().ssh!, ["-v", ...sshClientArgs(delayed, { identity }), `${delayed.user}@127.0.0.1`, "echo ok"])
    expect(r.stdout).toBe("ok\n")
    expect(compressionOf(r.stderr)).toMatchObject({ clientToServer: "none", serverToClient: "none", enabled: 0 })
  })
}, { requires: ["ssh", "sftpServer"] })

describeInterop("our client with compression against OpenSSH sshd", () => {
  let sshd: Sshd
  beforeAll(async () => {
    // the server rekeys every 1 MiB too: its NEWKEYS restart the streams as well as ours
    sshd = await startSshd({ config: { Compression: "yes", RekeyLimit: "1M none" }, hostKeyTypes: ["ed25519"] })
  })
  afterAll(async () => {
    await sshd?.stop()
  })

  const connect = (extra: Partial<SshClient.ConnectOptions>) =>
    SshClient.connect(sshdOptions(sshd, [Auth.privateKeyFile(sshd.clientKeys.ed25519)], extra))

  it("compression: true negotiates zlib@openssh.com; 20 MiB down and up through rekeys, equal by hash, a fraction on the wire", async () => {
    const result = await runScoped(Effect.gen(function*() {
      const ssh = yield* connect({ compression: true, rekeyBytes: 1024 * 1024 })
      const proc = yield* ssh.exec(GENERATE)
      const hash = Crypto.createHash("sha256")
      let received = 0
      let rekeyed = false
      yield* Stream.runForEach(proc.stdout, (chunk) =>
        Effect.gen(function*() {
          hash.update(chunk)
          received += chunk.length
          if (!rekeyed && received > SIZE / 2) {
            rekeyed = true
            yield* ssh.rekey
          }
        }))
      const afterDown = ssh.stats()
      const up = yield* ssh.run("sha256sum", { stdin: TEXT })
      return { info: ssh.info, sha: hash.digest("hex"), received, afterDown, after: ssh.stats(), up: up.stdout.split(" ")[0] }
    }))
    expect(result.info.algorithms.compressionClientToServer).toBe("zlib@openssh.com")
    expect(result.info.algorithms.compressionServerToClient).toBe("zlib@openssh.com")
    expect(result.received).toBe(SIZE)
    expect(result.sha).toBe(TEXT_SHA)
    expect(result.up).toBe(TEXT_SHA)
    expect(result.afterDown.kexCount).toBeGreaterThanOrEqual(4)
    expect(result.after.kexCount).toBeGreaterThan(result.afterDown.kexCount)
    // 20 MiB each way of text that zlib shrinks about fivefold
    expect(result.afterDown.bytesIn).toBeLessThan(SIZE / 3)
    expect(result.after.bytesOut).toBeLessThan(SIZE / 3)
  }, 60_000)

  it("without the option nothing is compressed", async () => {
    const info = await runScoped(Effect.gen(function*() {
      const ssh = yield* connect({})
      yield* ssh.run("true")
      return ssh.info
    }))
    expect(info.algorithms.compressionClientToServer).toBe("none")
  })

  it("effect-ssh exec -C compresses (sshd's log says so), and without -C it does not", async () => {
    /** The run's output, and the compression of each key exchange sshd logged meanwhile. */
    const exec = async (flags: ReadonlyArray<string>) => {
      const logStart = Fs.statSync(sshd.logFile).size
      const run = await spawn(process.execPath, [
        mainScript, "exec", ...flags, "-n", "-p", String(sshd.port), "-i", sshd.clientKeys.ed25519,
        "--known-hosts", sshd.knownHostsFile, `${sshd.user}@127.0.0.1`, "--", GENERATE
      ])
      const log = Fs.readFileSync(sshd.logFile).subarray(logStart).toString()
      return { ...run, compression: [...log.matchAll(/kex: client->server cipher: \S+ MAC: \S+ compression: (\S+)/g)].map((m) => m[1]) }
    }
    const compressed = await exec(["-C"])
    expect(compressed.code, compressed.stderr).toBe(0)
    expect(compressed.stdoutSha).toBe(TEXT_SHA)
    expect(compressed.compression.length).toBeGreaterThan(0)
    expect(new Set(compressed.compression)).toEqual(new Set(["zlib@openssh.com"]))
    const plain = await exec([])
    expect(plain.code, plain.stderr).toBe(0)
    expect(plain.stdoutSha).toBe(TEXT_SHA)
    expect(new Set(plain.compression)).toEqual(new Set(["none"]))
  }, 60_000)

  it("plain zlib alone is refused by sshd, which implements only zlib@openssh.com: NegotiationFailed", async () => {
    const error = await runFailure(connect({ algorithms: { compression: ["zlib"] } }))
    expect(error.reason._tag).toBe("NegotiationFailed")
  })
})
