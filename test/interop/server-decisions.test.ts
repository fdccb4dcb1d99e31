/**
 * OpenSSH's `ssh` against a server whose every decision is an Effect:
 * a refused pty (`ssh -tt`), exec refused by command, env decided by value
 * (`SetEnv`), subsystems by name (`ssh -s`), authentication methods per user
 * as `ssh -v` is offered them, agent forwarding per user (`ssh -A`), and the
 * server opening an agent channel to the client from a session handler.
 * Sessions run real processes (`ProcessSession`).
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as ChildProcess from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { promisify } from "node:util"
import { afterAll, beforeAll, expect, it } from "vitest"
import * as PrivateKey from "../../src/Auth/PrivateKey.ts"
import * as PublicKey from "../../src/Auth/PublicKey.ts"
import * as ServerSession from "../../src/Channel/ServerSession.ts"
import * as NodeSsh from "../../src/NodeSsh.ts"
import * as SshServer from "../../src/Server.ts"
import * as Decisions from "../../src/Server/Decisions.ts"
import * as ProcessSession from "../../src/Server/ProcessSession.ts"
import { describeInterop, opensshPaths } from "./sshd.ts"

const execFile = promisify(ChildProcess.execFile)
const PASSWORD = `pw-${Math.random().toString(36).slice(2)}`

/** SSH2_AGENTC_REQUEST_IDENTITIES, framed; the answer is SSH2_AGENT_IDENTITIES_ANSWER (12) with a key count. */
const REQUEST_IDENTITIES = Uint8Array.of(0, 0, 0, 1, 11)
const uint32 = (b: Uint8Array, at: number) => new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(at)
const complete = (b: Uint8Array) => b.length >= 4 && b.length >= 4 + uint32(b, 0)
const concat = (a: Uint8Array, b: Uint8Array) => {
  const out = new Uint8Array(a.length + b.length)
  out.set(a)
  out.set(b, a.length)
  return out
}

/** A session handler asking the client's agent, over a channel the server opens, how many keys it holds. */
const agentIdentities = (session: ServerSession.ServerSession) =>
  Effect.scoped(Effect.gen(function*() {
    const opened = yield* Effect.result(ServerSession.openChannel(session, "auth-agent@openssh.com"))
    if (opened._tag === "Failure") {
      const reason = opened.failure.reason
      yield* session.write(`refused ${reason._tag === "ChannelOpenFailed" ? reason.code : reason._tag}\n`)
      return 0
    }
    const agent = opened.success
    yield* agent.write(REQUEST_IDENTITIES)
    const answer = yield* agent.stdout.pipe(
      Stream.scan((): Uint8Array => new Uint8Array(0), concat),
      Stream.takeUntil(complete),
      Stream.runLast
    )
    const message = Option.getOrElse(answer, () => new Uint8Array(0))
    yield* session.write(complete(message) && message[4] === 12 ? `identities ${uint32(message, 5)}\n` : "bad answer\n")
    return 0
  }))

describeInterop("OpenSSH ssh against the server's decisions", () => {
  let dir: string
  let scope: Scope.Closeable
  let port: number
  let identity: string
  let knownHosts: string
  let askpass: string
  let agentSocket: string
  let agent: ChildProcess.ChildProcess | undefined
  const execSeen: Array<string> = []

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "effect-ssh-decisions-"))
    identity = path.join(dir, "id_ed25519")
    await execFile(opensshPaths().sshKeygen!, ["-q", "-t", "ed25519", "-N", "", "-f", identity])
    const clientKey = PublicKey.parse(fs.readFileSync(`${identity}.pub`, "utf8"))
    askpass = path.join(dir, "askpass")
    fs.writeFileSync(askpass, `#!/bin/sh\necho '${PASSWORD}'\n`, { mode: 0o755 })
    agentSocket = path.join(dir, "agent.sock")
    agent = ChildProcess.spawn("ssh-agent", ["-D", "-a", agentSocket], { stdio: "ignore" })
    for (let i = 0; i < 100 && !fs.existsSync(agentSocket); i++) await new Promise((r) => setTimeout(r, 20))
    await execFile("ssh-add", [identity], { env: { ...process.env, SSH_AUTH_SOCK: agentSocket } })
    const hostKey = PrivateKey.generate("ssh-ed25519")
    const processes = ProcessSession.handlers()
    scope = Effect.runSync(Scope.make())
    const server = await Effect.runPromise(Scope.provide(
      SshServer.serve({
        port: 0,
        hostKeys: [hostKey],
        perSourceMaxStartups: "none",
        maxStartups: 1000,
        perSourcePenalties: false,
        auth: {
          publicKey: ({ key }) => Effect.succeed(PublicKey.equals(key, clientKey)),
          password: ({ password }) => Effect.succeed(Redacted.value(password) === PASSWORD),
          methodsFor: ({ user }) =>
            Effect.succeed(
              user === "a" ? [["publickey"]] : user === "b" ? [["password"]] : user === "c" ? [["publickey", "password"]] : undefined
            )
        },
        session: {
          ...processes,
          exec: (session, command) => command === "agent-identities" ? agentIdentities(session) : processes.exec!(session, command),
          subsystems: {
            hello: (session) => Effect.as(session.write("hello from a subsystem\n"), 0),
            secret: (session) => Effect.as(session.write("the secret\n"), 0)
          },
          decide: {
            pty: (pty, session) => Effect.succeed(session.user !== "nopty" && pty.term.length > 0),
            exec: ({ command }, session) =>
              Effect.sync(() => {
                execSeen.push(`${session.user}: ${command}`)
                return !command.startsWith("forbidden")
              }),
            env: ({ name, value }) => Effect.succeed(name === "LC_TEST" && value === "good"),
            subsystem: ({ name }) => Effect.succeed(name !== "secret"),
            agentForwarding: Decisions.users(["agentok"])
          }
        }
      }),
      scope
    ).pipe(Effect.provide(NodeSsh.layer)))
    port = server.address.port
    knownHosts = path.join(dir, "known_hosts")
    fs.writeFileSync(knownHosts, `[127.0.0.1]:${port} ${PublicKey.toOpenSsh(hostKey.publicKey)}\n`)
  }, 60_000)

  afterAll(async () => {
    agent?.kill()
    if (scope !== undefined) await Effect.runPromise(Scope.close(scope, Exit.void))
    fs.rmSync(dir, { recursive: true, force: true })
  })

  interface Run {
    readonly stdout: string
    readonly stderr: string
    readonly code: number | null
  }

  const sshEnv = (options: { readonly agent?: boolean | undefined }): NodeJS.ProcessEnv => {
    const env: NodeJS.ProcessEnv = { ...process.env, SSH_ASKPASS: askpass, SSH_ASKPASS_REQUIRE: "force", DISPLAY: "" }
    delete env.SSH_AUTH_SOCK
    if (options.agent === true) env.SSH_AUTH_SOCK = agentSocket
    return env
  }

  /** ssh's arguments: `args` (a command last, if any) around our options, the key and the destination. */
  const sshArgv = (user: string, args: ReadonlyArray<string>, command?: string): Array<string> => [
    ...args,
    "-F", "/dev/null",
    "-p", String(port),
    "-o", `UserKnownHostsFile=${knownHosts}`,
    "-o", "GlobalKnownHostsFile=/dev/null",
    "-o", "StrictHostKeyChecking=yes",
    "-o", "IdentitiesOnly=yes",
    "-o", "NumberOfPasswordPrompts=1",
    "-o", "ConnectTimeout=10",
    "-i", identity,
    `${user}@127.0.0.1`,
    ...(command === undefined ? [] : [command])
  ]

  /** Runs `ssh` as `user` with the key (and the password through askpass); the last of `args` is the command. */
  const ssh = (user: string, args: ReadonlyArray<string>, options: { readonly agent?: boolean } = {}): Promise<Run> => {
    const env = sshEnv(options)
    const argv = sshArgv(user, args.slice(0, -1), args[args.length - 1]!)
    return new Promise((resolve, reject) => {
      ChildProcess.execFile(opensshPaths().ssh!, argv, { env, timeout: 30_000 }, (error, stdout, stderr) => {
        if (error === null) resolve({ stdout, stderr, code: 0 })
        else if (typeof error.code === "number") resolve({ stdout, stderr, code: error.code })
        else reject(new Error(`ssh failed: ${error.message} ${stderr}`))
      }).stdin?.end()
    })
  }

  /** `ssh` (no command) on a terminal of util-linux `script`, typing `input` into it once the session is up. */
  const sshOnTerminal = (user: string, input: string): Promise<string> =>
    new Promise((resolve, reject) => {
      const argv = sshArgv(user, [])
      const quoted = argv.map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(" ")
      const child = ChildProcess.spawn("script", ["-qfec", `${opensshPaths().ssh!} ${quoted}`, "/dev/null"], {
        env: sshEnv({}),
        stdio: ["pipe", "pipe", "pipe"]
      })
      let out = ""
      child.stdout.on("data", (d) => out += d)
      child.stderr.on("data", (d) => out += d)
      const timer = setTimeout(() => child.kill("SIGKILL"), 30_000)
      setTimeout(() => child.stdin.write(input), 1_000)
      child.on("error", reject)
      child.on("close", () => {
        clearTimeout(timer)
        resolve(out)
      })
    })

  it("a refused pty: ssh reports it and the login session runs on without a terminal", async () => {
    // RequestTTY=auto (a terminal, no command): ssh goes on without the pty
    const refused = await sshOnTerminal("nopty", "tty; exit\n")
    expect(refused).toContain("PTY allocation request failed on channel 0")
    expect(refused).toContain("not a tty")
    const granted = await sshOnTerminal("alice", "tty; exit\n")
    expect(granted).not.toContain("PTY allocation request failed")
    expect(granted).toMatch(/\/dev\/pts\/\d+/)
    // -t / -tt make the pty a must for OpenSSH: it reports the refusal and closes the session itself
    const forced = await ssh("nopty", ["-tt", "tty"])
    expect(forced.stderr).toContain("PTY allocation request failed on channel 0")
    expect(forced.code).toBe(255)
    expect((await ssh("alice", ["-tt", "tty"])).stdout).toMatch(/^\/dev\/pts\/\d+/)
  }, 60_000)

  it("exec: one command refused, another allowed, on the same server", async () => {
    const allowed = await ssh("alice", ["echo allowed"])
    expect(allowed).toMatchObject({ stdout: "allowed\n", code: 0 })
    const refused = await ssh("alice", ["forbidden --all"])
    expect(refused.stderr).toContain("exec request failed on channel 0")
    expect(refused.stdout).toBe("")
    expect(refused.code).not.toBe(0)
    expect(execSeen).toContain("alice: forbidden --all")
  }, 60_000)

  it("env: LC_TEST=good reaches the command, LC_TEST=bad does not", async () => {
    const command = `echo "[$LC_TEST]"`
    expect((await ssh("alice", ["-o", "SetEnv=LC_TEST=good", command])).stdout).toBe("[good]\n")
    expect((await ssh("alice", ["-o", "SetEnv=LC_TEST=bad", command])).stdout).toBe("[]\n")
  }, 60_000)

  it("ssh -s: subsystems decided by name", async () => {
    expect((await ssh("alice", ["-s", "hello"])).stdout).toBe("hello from a subsystem\n")
    const refused = await ssh("alice", ["-s", "secret"])
    expect(refused.stderr).toContain("subsystem request failed on channel 0")
    expect(refused.stdout).toBe("")
  }, 60_000)

  it("per-user methods: a publickey only, b password only, c publickey then password (ssh -v)", async () => {
    const both = ["-v", "-o", "PreferredAuthentications=password,publickey"]
    const continuing = (stderr: string) => [...stderr.matchAll(/Authentications that can continue: (\S+)/g)].map((m) => m[1])

    const a = await ssh("a", [...both, "echo in"])
    expect(a.stdout).toBe("in\n")
    expect(continuing(a.stderr)).toEqual(["publickey"])
    expect(a.stderr).toContain(`Authenticated to 127.0.0.1 ([127.0.0.1]:${port}) using "publickey"`)

    const b = await ssh("b", [...both, "echo in"])
    expect(b.stdout).toBe("in\n")
    expect(continuing(b.stderr)).toEqual(["password"])
    expect(b.stderr).toContain(`using "password"`)

    const c = await ssh("c", [...both, "echo in"])
    expect(c.stdout).toBe("in\n")
    expect(continuing(c.stderr)).toEqual(["publickey", "password"])
    expect(c.stderr).toContain(`Authenticated using "publickey" with partial success`)

    // b cannot get in with the key alone
    const bKeyOnly = await ssh("b", ["-o", "BatchMode=yes", "-o", "PreferredAuthentications=publickey", "echo in"])
    expect(bKeyOnly.code).toBe(255)
    expect(bKeyOnly.stderr).toContain("Permission denied (password)")
  }, 60_000)

  it("ssh -A: agent forwarding for one user, not another; the server opens agent channels to the client", async () => {
    const socket = `echo "[$SSH_AUTH_SOCK]"`
    const ok = await ssh("agentok", ["-A", socket], { agent: true })
    expect(ok.stdout).toMatch(/^\[\/.+\]\n$/)
    expect((await ssh("agentno", ["-A", socket], { agent: true })).stdout).toBe("[]\n")
    // a session handler opens auth-agent@openssh.com to ssh, which hands it to the agent holding our one key
    expect((await ssh("agentok", ["-A", "agent-identities"], { agent: true })).stdout).toBe("identities 1\n")
    // without -A, ssh refuses the channel (ADMINISTRATIVELY_PROHIBITED) and the session goes on
    const refused = await ssh("agentok", ["agent-identities"], { agent: true })
    expect(refused.stdout).toBe("refused 1\n")
    expect(refused.stderr).toContain("tried agent forwarding")
  }, 60_000)
})
