/**
 * Connecting by ssh_config alias against real sshd: three sshd (bastion1,
 * bastion2, target), each accepting a different key, reached through
 * `ProxyJump b1,b2` (each hop with its own HostName, Port, User,
 * IdentityFile and known-hosts check), `-J` on the command line,
 * `ProxyCommand ssh -W %h:%p b1` (OpenSSH as the proxy, with its own -F),
 * an ssh-agent key with no `-i`, and a certificate beside its identity —
 * through the CLI (`effect-ssh exec`, a child process) and the library
 * (`SshClient.connectTo`): a failure at hop 2 names hop 2, and closing the
 * scope closes every hop.
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { promisify } from "node:util"
import { afterAll, beforeAll, expect, it } from "vitest"
import * as SshClient from "../../src/Client.ts"
import * as SshError from "../../src/SshError.ts"
import * as NodeSsh from "../../src/NodeSsh.ts"
import { describeInterop, opensshPaths, type Sshd, startSshd } from "./sshd.ts"

const execFile = promisify(ChildProcess.execFile)
const node = process.execPath
const main = Path.resolve("src/cli/main.ts")

interface Cli {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

describeInterop("ProxyJump, ProxyCommand and ssh_config aliases against sshd", () => {
  let dir: string
  let b1: Sshd
  let b2: Sshd
  let target: Sshd
  let config: string
  let agent: ChildProcess.ChildProcess | undefined
  let agentSocket: string

  /** Only `key`'s public half in the sshd's authorized_keys: each host takes its own IdentityFile. */
  const authorizeOnly = (sshd: Sshd, key: string) => Fs.writeFileSync(Path.join(sshd.dir, "authorized_keys"), Fs.readFileSync(`${key}.pub`))

  const cli = (args: ReadonlyArray<string>, env: NodeJS.ProcessEnv = {}): Promise<Cli> =>
    new Promise((resolve) => {
      const { SSH_AUTH_SOCK: _agent, ...rest } = process.env
      ChildProcess.execFile(node, [main, ...args], { env: { ...rest, HOME: dir, ...env }, timeout: 45_000 }, (error, stdout, stderr) =>
        resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : null, stdout, stderr }))
    })

  /** How many direct-tcpip channels `sshd` has opened to the loopback `port` so far (its DEBUG1 log). */
  const forwardsTo = (sshd: Sshd, port: number): number =>
    Fs.readFileSync(sshd.logFile, "utf8").split("\n").filter((l) => /direct_tcpip: originator/.test(l) && l.includes(`target 127.0.0.1 port ${port}`)).length

  /** Our established TCP connections to `port` (client side: the remote end is the sshd). */
  const connectionsTo = (port: number): number => {
    const hex = port.toString(16).toUpperCase().padStart(4, "0")
    return Fs.readFileSync("/proc/net/tcp", "utf8").split("\n").slice(1)
      .filter((line) => {
        const fields = line.trim().split(/\s+/)
        return fields[2]?.endsWith(`:${hex}`) && fields[3] === "01"
      }).length
  }

  beforeAll(async () => {
    dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-ssh-jump-"))
    Fs.chmodSync(dir, 0o755)
    const keygen = opensshPaths().sshKeygen!
    // the CA signing the certificate the target trusts
    const ca = Path.join(dir, "user_ca")
    await execFile(keygen, ["-q", "-t", "ed25519", "-N", "", "-C", "ca", "-f", ca])
    ;[b1, b2, target] = await Promise.all([
      startSshd({ hostKeyTypes: ["ed25519"], config: { AllowTcpForwarding: "yes" } }),
      startSshd({ hostKeyTypes: ["ecdsa"], config: { AllowTcpForwarding: "yes" } }),
      startSshd({ hostKeyTypes: ["ed25519"], config: { TrustedUserCAKeys: `${ca}.pub`, AllowTcpForwarding: "no" } })
    ])
    authorizeOnly(b1, b1.clientKeys.ed25519)
    authorizeOnly(b2, b2.clientKeys.ecdsa)
    authorizeOnly(target, target.clientKeys.rsa)
    // a key of no authorized_keys, certified by the CA, its certificate beside it
    const certified = Path.join(dir, "id_certified")
    await execFile(keygen, ["-q", "-t", "ed25519", "-N", "", "-C", "certified", "-f", certified])
    await execFile(keygen, ["-q", "-s", ca, "-I", "jump-test", "-n", target.user, `${certified}.pub`])
    // an agent holding the target's key, which no config names
    agentSocket = Path.join(dir, "agent.sock")
    agent = ChildProcess.spawn("/usr/bin/ssh-agent", ["-D", "-a", agentSocket], { stdio: "ignore" })
    for (let i = 0; i < 300 && !Fs.existsSync(agentSocket); i++) await new Promise((r) => setTimeout(r, 10))
    await execFile("/usr/bin/ssh-add", [target.clientKeys.rsa], { env: { ...process.env, SSH_AUTH_SOCK: agentSocket } })

    const knownHosts = Path.join(dir, "known_hosts")
    Fs.writeFileSync(knownHosts, [b1, b2, target].map((s) => Fs.readFileSync(s.knownHostsFile, "utf8")).join(""))
    const host = (name: string, sshd: Sshd, lines: ReadonlyArray<string>) =>
      [`Host ${name}`, "  HostName 127.0.0.1", `  Port ${sshd.port}`, `  User ${sshd.user}`, ...lines.map((l) => `  ${l}`)]
    config = Path.join(dir, "ssh_config")
    Fs.writeFileSync(config, [
      ...host("b1", b1, [`IdentityFile ${b1.clientKeys.ed25519}`, "IdentitiesOnly yes"]),
      ...host("b2", b2, [`IdentityFile ${b2.clientKeys.ecdsa}`, "IdentitiesOnly yes"]),
      // b2 as a name whose key b2 refuses: a failure at the second hop
      ...host("b2-wrong-key", b2, [`IdentityFile ${b1.clientKeys.ed25519}`, "IdentitiesOnly yes"]),
      ...host("target", target, [`IdentityFile ${target.clientKeys.rsa}`, "IdentitiesOnly yes", "ProxyJump b1,b2"]),
      ...host("target-direct", target, [`IdentityFile ${target.clientKeys.rsa}`, "IdentitiesOnly yes"]),
      ...host("target-broken-jump", target, [`IdentityFile ${target.clientKeys.rsa}`, "IdentitiesOnly yes", "ProxyJump b1,b2-wrong-key"]),
      ...host("target-command", target, [`IdentityFile ${target.clientKeys.rsa}`, "IdentitiesOnly yes", `ProxyCommand ssh -F ${config} -W %h:%p b1`]),
      // no IdentityFile: the default files (none under this HOME) and the agent
      ...host("target-agent", target, []),
      ...host("target-cert", target, [`IdentityFile ${certified}`, "IdentitiesOnly yes"]),
      "Host *",
      `  UserKnownHostsFile ${knownHosts}`,
      "  GlobalKnownHostsFile /dev/null",
      "  StrictHostKeyChecking yes",
      "  BatchMode yes",
      "  ConnectTimeout 15",
      "  SetEnv EFFECT_SSH_JUMP=through-config",
      ""
    ].join("\n"))
  }, 60_000)

  afterAll(async () => {
    agent?.kill()
    await Promise.all([b1, b2, target].filter((s) => s !== undefined).map((s) => s.stop()))
    if (dir !== undefined) Fs.rmSync(dir, { recursive: true, force: true })
  })

  it("exec through ProxyJump b1,b2 from the config, each hop with its own HostName, Port, User and key", async () => {
    const r = await cli(["exec", "-F", config, "target", "--", "echo ok $EFFECT_SSH_JUMP; echo $SSH_CONNECTION"])
    expect(r.code, r.stderr).toBe(0)
    const [first, connection] = r.stdout.trim().split("\n")
    expect(first).toBe("ok through-config")
    expect(connection).toMatch(new RegExp(`^127\\.0\\.0\\.1 \\d+ 127\\.0\\.0\\.1 ${target.port}$`))
    // b1 opened the channel to b2, and b2 the one to the target
    expect(forwardsTo(b1, b2.port)).toBe(1)
    expect(forwardsTo(b2, target.port)).toBe(1)
    // every sshd authenticated its own key
    expect(Fs.readFileSync(b1.logFile, "utf8")).toMatch(/Accepted publickey .* ED25519/)
    expect(Fs.readFileSync(b2.logFile, "utf8")).toMatch(/Accepted publickey .* ECDSA/)
    expect(Fs.readFileSync(target.logFile, "utf8")).toMatch(/Accepted publickey .* RSA/)
  }, 60_000)

  it("exec with -J b1,b2 on the command line", async () => {
    const before = { b1: forwardsTo(b1, b2.port), b2: forwardsTo(b2, target.port) }
    const r = await cli(["exec", "-F", config, "-J", "b1,b2", "target-direct", "--", "echo via -J"])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toBe("via -J\n")
    expect({ b1: forwardsTo(b1, b2.port), b2: forwardsTo(b2, target.port) }).toEqual({ b1: before.b1 + 1, b2: before.b2 + 1 })
    // without -J the same alias is dialed directly: no hop involved
    const direct = await cli(["exec", "-F", config, "target-direct", "--", "echo direct"])
    expect(direct.stdout).toBe("direct\n")
    expect(forwardsTo(b2, target.port)).toBe(before.b2 + 1)
  }, 60_000)

  it("exec through ProxyCommand ssh -W %h:%p b1 (OpenSSH as the proxy)", async () => {
    const before = forwardsTo(b1, target.port)
    const r = await cli(["exec", "-F", config, "target-command", "--", "echo via ProxyCommand"])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toBe("via ProxyCommand\n")
    // ssh -W asked b1 for the channel to the target
    expect(forwardsTo(b1, target.port)).toBe(before + 1)
  }, 60_000)

  it("uses an ssh-agent key with no -i and no IdentityFile", async () => {
    const without = await cli(["exec", "-F", config, "target-agent", "--", "echo agent"])
    expect(without.code).toBe(255)
    expect(without.stderr).toMatch(/Permission denied \(publickey/)
    const r = await cli(["exec", "-F", config, "target-agent", "--", "echo agent"], { SSH_AUTH_SOCK: agentSocket })
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toBe("agent\n")
  }, 60_000)

  it("offers the certificate beside the identity (-cert.pub), which the target trusts through its CA", async () => {
    const r = await cli(["exec", "-F", config, "target-cert", "--", "echo certified"])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toBe("certified\n")
    expect(Fs.readFileSync(target.logFile, "utf8")).toMatch(/Accepted publickey .* ED25519-CERT .* ID jump-test/)
  }, 60_000)

  it("SshClient.connectTo: two hops through the config; closing the scope closes every hop", async () => {
    const program = Effect.gen(function*() {
      const scope = yield* Scope.make()
      const ssh = yield* Scope.provide(SshClient.connectTo("target", { configFile: config }), scope)
      const r = yield* ssh.run("echo $EFFECT_SSH_JUMP")
      const open = { b1: connectionsTo(b1.port), b2: connectionsTo(b2.port), target: connectionsTo(target.port) }
      yield* Scope.close(scope, Exit.void)
      // the sockets close a moment after DISCONNECT
      let after = { b1: 0, b2: 0, target: 0 }
      for (let i = 0; i < 100; i++) {
        after = { b1: connectionsTo(b1.port), b2: connectionsTo(b2.port), target: connectionsTo(target.port) }
        if (after.b1 + after.b2 + after.target === 0) break
        yield* Effect.sleep("20 millis")
      }
      return { stdout: r.stdout, open, after }
    })
    const result = await Effect.runPromise(program.pipe(Effect.provide(NodeSsh.layer)))
    expect(result.stdout).toBe("through-config\n")
    // one TCP connection to each sshd (machine-wide: we dial b1, b1's sshd dials b2, b2's the target)
    expect(result.open).toEqual({ b1: 1, b2: 1, target: 1 })
    expect(result.after).toEqual({ b1: 0, b2: 0, target: 0 })
  }, 60_000)

  it("SshClient.connectTo: a failure at the second hop names the second hop", async () => {
    const error = await Effect.runPromise(
      SshClient.connectTo("target-broken-jump", { configFile: config }).pipe(Effect.flip, Effect.scoped, Effect.provide(NodeSsh.layer))
    )
    expect(SshError.isSshError(error)).toBe(true)
    expect(error.reason._tag).toBe("ConnectFailed")
    expect(error.message).toContain(`jump host ${b2.user}@b2-wrong-key:${b2.port}: AuthFailed`)
    expect(error.message).not.toContain("jump host " + `${b1.user}@b1`)
    expect((error.cause as SshError.SshError).reason._tag).toBe("AuthFailed")
    // and b1, the hop that worked, was closed with the failed attempt
    for (let i = 0; i < 100 && connectionsTo(b1.port) > 0; i++) await new Promise((r) => setTimeout(r, 20))
    expect(connectionsTo(b1.port)).toBe(0)
  }, 60_000)
})
