/**
 * `-v`, `-vv`, `-vvv` of `exec`, `get`, `put` and `pexec`: protocol events as
 * `debug1:` lines on stderr, every packet as `debug2:` lines, nothing without.
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import * as ChildProcess from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as PrivateKey from "../../src/Auth/PrivateKey.ts"
import * as PublicKey from "../../src/Auth/PublicKey.ts"
import { UsageError } from "../../src/cli/Args.ts"
import { parseExec } from "../../src/cli/Args.ts"
import { parsePexec } from "../../src/cli/Pexec.ts"
import { parseTransfer } from "../../src/cli/Transfer.ts"
import { debugLine, verboseFlags } from "../../src/cli/Verbose.ts"
import * as NodeSsh from "../../src/NodeSsh.ts"
import * as SshServer from "../../src/Server.ts"
import * as SftpServer from "../../src/Sftp/SftpServer.ts"

const node = path.resolve("node_modules/.bin/node")
const main = path.resolve("src/cli/main.ts")

it("-v flags are counted, bundled or repeated, by every command's parser", () => {
  expect(verboseFlags("-vvv")).toBe(3)
  expect(verboseFlags("-v")).toBe(1)
  expect(verboseFlags("-vx")).toBeUndefined()
  expect((parseExec(["-v", "-vv", "host", "--", "true"]) as { verbose?: number }).verbose).toBe(3)
  expect((parseExec(["-nv", "host", "--", "true"]) as { verbose?: number; noStdin: boolean })).toMatchObject({ verbose: 1, noStdin: true })
  expect((parseExec(["host", "--", "true"]) as { verbose?: number }).verbose).toBeUndefined()
  expect((parseTransfer("get", ["-vv", "me@host:/etc/hosts", "./hosts"]) as { verbose?: number }).verbose).toBe(2)
  expect((parsePexec(["-v", "-H", "a", "--", "true"]) as { verbose: number }).verbose).toBe(1)
  expect((parsePexec(["-H", "a", "--", "true"]) as { verbose: number }).verbose).toBe(0)
  expect(parsePexec(["-vq", "-H", "a", "--", "true"])).toBeInstanceOf(UsageError)
})

it("Debug logs are debug1 lines, Trace logs debug2, terminal escapes neutralised; other levels are not ours", () => {
  expect(debugLine("Debug", ["auth: publickey → Success"])).toBe("debug1: auth: publickey → Success\n")
  expect(debugLine("Trace", "sent packet SSH_MSG_KEXINIT (20)")).toBe("debug2: sent packet SSH_MSG_KEXINIT (20)\n")
  expect(debugLine("Debug", ["banner \u001b[2J"])).not.toContain("\u001b")
  expect(debugLine("Info", ["hello"])).toBeUndefined()
})

describe("verbose runs against our server", () => {
  let dir: string
  let scope: Scope.Closeable
  let port: number
  const clientKey = PrivateKey.generate("ssh-ed25519")
  const hostKey = PrivateKey.generate("ssh-ed25519")

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "effect-ssh-verbose-"))
    fs.writeFileSync(path.join(dir, "id_ed25519"), PrivateKey.toOpenSsh(clientKey), { mode: 0o600 })
    fs.mkdirSync(path.join(dir, "root"))
    fs.writeFileSync(path.join(dir, "root", "hello.txt"), "hello\n")
    scope = Effect.runSync(Scope.make())
    const server = await Effect.runPromise(Scope.provide(
      SshServer.serve({
        port: 0,
        host: "127.0.0.1",
        hostKeys: [hostKey],
        auth: { publicKey: ({ key }) => Effect.succeed(PublicKey.equals(key, clientKey.publicKey)) },
        session: { exec: (session, command) => Effect.as(Effect.orDie(session.write(`ran ${command}\n`)), 3) },
        sftp: SftpServer.fileSystem({ root: path.join(dir, "root") })
      }),
      scope
    ).pipe(Effect.provide(NodeSsh.layer)))
    port = server.address.port
    fs.writeFileSync(path.join(dir, "known_hosts"), `[127.0.0.1]:${port} ${PublicKey.toOpenSsh(hostKey.publicKey)}\n`)
  }, 60_000)

  afterAll(async () => {
    await Effect.runPromise(Scope.close(scope, Exit.void))
    fs.rmSync(dir, { recursive: true, force: true })
  })

  // asynchronously: the server runs in this process
  const cli = (...args: Array<string>) =>
    new Promise<{ stdout: string; stderr: string; status: number | null }>((resolve) =>
      ChildProcess.execFile(node, [main, ...args], { timeout: 30_000 }, (error, stdout, stderr) =>
        resolve({ stdout, stderr, status: error === null ? 0 : typeof error.code === "number" ? error.code : null })))
  const connection = () => ["-i", path.join(dir, "id_ed25519"), "--known-hosts", path.join(dir, "known_hosts"), "-p", String(port)]

  it("exec -v: connecting, algorithms, host key, auth, channel open and exit status as debug1 lines; no packets", async () => {
    const r = await cli("exec", "-v", ...connection(), "me@127.0.0.1", "--", "true")
    expect(r.stdout).toBe("ran true\n")
    expect(r.status).toBe(3)
    const lines = r.stderr.trimEnd().split("\n")
    for (const line of lines) expect(line).toMatch(/^debug1: /)
    expect(r.stderr).toContain(`debug1: connecting to 127.0.0.1 port ${port} as me\n`)
    expect(r.stderr).toMatch(/debug1: server host key: ssh-ed25519 SHA256:[A-Za-z0-9+/]{43}\n/)
    expect(r.stderr).toMatch(/debug1: connected to 127\.0\.0\.1:\d+ \(SSH-2\.0-[^)]+\); kex [\w@.-]+, host key ssh-ed25519, cipher [\w@.-]+/)
    expect(r.stderr).toMatch(/debug1: auth: publickey → Success\n/)
    expect(r.stderr).toMatch(/debug1: channel \d+: session open \(remote \d+\)\n/)
    expect(r.stderr).toMatch(/debug1: channel \d+: exit status 3\n/)
    expect(r.stderr).not.toContain("debug2:")
  })

  it("exec -vv and -vvv add every packet sent and received as debug2 lines; no -v prints nothing", async () => {
    for (const flag of ["-vv", "-vvv"]) {
      const r = await cli("exec", flag, ...connection(), "me@127.0.0.1", "--", "true")
      expect(r.status).toBe(3)
      expect(r.stderr).toMatch(/debug2: sent packet SSH_MSG_KEXINIT \(20\), \d+ bytes\n/)
      expect(r.stderr).toMatch(/debug2: received packet SSH_MSG_KEXINIT \(20\), \d+ bytes\n/)
      expect(r.stderr).toMatch(/debug2: sent packet SSH_MSG_USERAUTH_REQUEST \(50\)/)
      expect(r.stderr).toMatch(/debug2: received packet SSH_MSG_CHANNEL_DATA \(94\)/)
      expect(r.stderr).toMatch(/debug2: received packet SSH_MSG_CHANNEL_CLOSE \(97\)/)
      expect(r.stderr).toContain("debug1: auth: publickey → Success")
    }
    const quiet = await cli("exec", ...connection(), "me@127.0.0.1", "--", "true")
    expect(quiet.stderr).toBe("")
    expect(quiet.status).toBe(3)
  })

  it("get -v and put -v log the connection and the sftp channel", async () => {
    const local = path.join(dir, "copy.txt")
    const got = await cli("get", "-v", ...connection(), "me@127.0.0.1:/hello.txt", local)
    expect(got.status).toBe(0)
    expect(fs.readFileSync(local, "utf8")).toBe("hello\n")
    expect(got.stderr).toMatch(/debug1: auth: publickey → Success\n/)
    expect(got.stderr).toMatch(/debug1: channel \d+: session open/)
    const put = await cli("put", "-vv", ...connection(), local, "me@127.0.0.1:/back.txt")
    expect(put.status).toBe(0)
    expect(fs.readFileSync(path.join(dir, "root", "back.txt"), "utf8")).toBe("hello\n")
    expect(put.stderr).toMatch(/debug2: sent packet SSH_MSG_CHANNEL_DATA \(94\)/)
  })

  it("pexec -v logs each host's events on stderr, status lines stay on stdout", async () => {
    const r = await cli("pexec", "-v", "--identity", path.join(dir, "id_ed25519"), "--known-hosts", path.join(dir, "known_hosts"),
      "-H", `a@127.0.0.1:${port}`, "-H", `b@127.0.0.1:${port}`, "--", "true")
    expect(r.stdout.trim().split("\n").length).toBe(2)
    expect(r.stderr).toContain(`debug1: connecting to 127.0.0.1 port ${port} as a\n`)
    expect(r.stderr).toContain(`debug1: connecting to 127.0.0.1 port ${port} as b\n`)
    expect(r.stderr.match(/debug1: channel \d+: exit status 3/g)?.length).toBe(2)
  })
})
