/**
 * `effect-ssh pexec` as a user runs it: status lines as pssh prints them,
 * inline output, per-host output files, and pssh's exit codes.
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import * as ChildProcess from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { promisify } from "node:util"
import { afterAll, beforeAll, expect, it } from "vitest"
import * as PrivateKey from "../../src/Auth/PrivateKey.ts"
import * as PublicKey from "../../src/Auth/PublicKey.ts"
import { exitCodeOf, parseHost, parsePexec, statusLine } from "../../src/cli/Pexec.ts"
import { UsageError } from "../../src/cli/Args.ts"
import * as NodeSsh from "../../src/NodeSsh.ts"
import * as SshServer from "../../src/Server.ts"
import { describeInterop, opensshPaths } from "../interop/sshd.ts"

const execFile = promisify(ChildProcess.execFile)
const node = path.resolve("node_modules/.bin/node")
const main = path.resolve("src/cli/main.ts")

it("parses pssh's flags and hosts", () => {
  const args = parsePexec(["-H", "a b", "-H", "me@c:2222", "-p", "5", "-t", "9", "-i", "-O", "StrictHostKeyChecking=no", "--", "uptime", "-a"])
  expect(args).toMatchObject({ hosts: ["a", "b", "me@c:2222"], parallelism: 5, timeout: 9, inline: true, command: "uptime -a" })
  expect((args as { options: Record<string, string> }).options).toEqual({ stricthostkeychecking: "no" })
  expect(parsePexec(["-p", "0", "-H", "a", "--", "x"])).toBeInstanceOf(UsageError)
  expect(parsePexec(["-H", "a", "--"])).toBeInstanceOf(UsageError)
  expect(parsePexec(["--", "x"])).toBeInstanceOf(UsageError)
  expect(parsePexec(["-Z", "x", "--", "y"])).toBeInstanceOf(UsageError)
  expect(parseHost("deploy@web1:2222")).toEqual({ user: "deploy", host: "web1", port: 2222 })
  expect(parseHost("[::1]:22")).toEqual({ user: undefined, host: "::1", port: 22 })
  expect(parseHost("fe80::1")).toEqual({ user: undefined, host: "fe80::1", port: undefined })
  expect(parseHost("web:99999")).toBeInstanceOf(UsageError)
})

it("status lines and exit codes follow pssh", () => {
  const at = new Date(2026, 0, 1, 12, 34, 56)
  const done = (exitCode: number) => ({ _tag: "Done", host: "web1", port: 22, exitCode, exit: { _tag: "Exited", code: exitCode }, stdout: "", stderr: "", truncated: false, duration: 0 }) as never
  expect(statusLine(1, done(0), at)).toBe("[1] 12:34:56 [SUCCESS] web1\n")
  expect(statusLine(2, done(3), at)).toBe("[2] 12:34:56 [FAILURE] web1 Exited with error code 3\n")
  expect(exitCodeOf([done(0)])).toBe(0)
  expect(exitCodeOf([done(0), done(1)])).toBe(5)
})

describeInterop("effect-ssh pexec against our server", () => {
  let dir: string
  let scope: Scope.Closeable
  let port: number
  const identity = () => path.join(dir, "id_ed25519")

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "effect-ssh-pexec-"))
    await execFile(opensshPaths().sshKeygen!, ["-q", "-t", "ed25519", "-N", "", "-f", identity()])
    const clientKey = PublicKey.parse(fs.readFileSync(`${identity()}.pub`, "utf8"))
    const hostKey = PrivateKey.generate("ssh-ed25519")
    scope = Effect.runSync(Scope.make())
    const server = await Effect.runPromise(Scope.provide(SshServer.serve({
      port: 0,
      hostKeys: [hostKey],
      perSourceMaxStartups: "none",
      maxStartups: 1000,
      auth: { publicKey: ({ key }) => Effect.succeed(PublicKey.equals(key, clientKey)) },
      session: {
        exec: (session, command) =>
          Effect.as(Effect.orDie(session.write(`${session.user}: ${command}\n`)), session.user === "bad" ? 7 : 0)
      }
    }), scope).pipe(Effect.provide(NodeSsh.layer)))
    port = server.address.port
    fs.writeFileSync(path.join(dir, "known_hosts"), `[127.0.0.1]:${port} ${PublicKey.toOpenSsh(hostKey.publicKey)}\n`)
    fs.writeFileSync(path.join(dir, "hosts"), Array.from({ length: 30 }, (_, i) => `u${i}@127.0.0.1:${port}`).join("\n") + "\n# a comment\n")
  }, 60_000)

  afterAll(async () => {
    await Effect.runPromise(Scope.close(scope, Exit.void))
    fs.rmSync(dir, { recursive: true, force: true })
  })

  const pexec = (...args: Array<string>) =>
    new Promise<{ stdout: string; stderr: string; code: number | null }>((resolve) => {
      ChildProcess.execFile(node, [main, "pexec", "--identity", identity(), "--known-hosts", path.join(dir, "known_hosts"), ...args], { timeout: 60_000 }, (error, stdout, stderr) =>
        resolve({ stdout, stderr, code: error === null ? 0 : typeof error.code === "number" ? error.code : null }))
    })

  it("30 hosts from a file at -p 8: 30 SUCCESS lines, outputs in OUTDIR, exit 0", async () => {
    const out = path.join(dir, "out")
    const r = await pexec("-h", path.join(dir, "hosts"), "-p", "8", "-o", out, "--", "echo", "hi")
    expect(r.code).toBe(0)
    const lines = r.stdout.trim().split("\n")
    expect(lines.length).toBe(30)
    for (const line of lines) expect(line).toMatch(new RegExp(`^\\[\\d+\\] \\d\\d:\\d\\d:\\d\\d \\[SUCCESS\\] 127\\.0\\.0\\.1:${port}$`))
    expect(fs.readdirSync(out)).toEqual([`127.0.0.1:${port}`])
  }, 90_000)

  it("-i prints output inline; a failing command gives exit 5, an unreachable host exit 4 naming it", async () => {
    const inline = await pexec("-i", "-H", `bad@127.0.0.1:${port}`, "--", "false")
    expect(inline.code).toBe(5)
    expect(inline.stdout).toMatch(/\[FAILURE\] 127\.0\.0\.1:\d+ Exited with error code 7\nbad: false\n/)
    const unreachable = await pexec("-H", "127.0.0.1:1", "--", "true")
    expect(unreachable.code).toBe(4)
    expect(unreachable.stdout).toMatch(/\[FAILURE\] 127\.0\.0\.1:1 .*127\.0\.0\.1:1/)
  }, 90_000)
})
