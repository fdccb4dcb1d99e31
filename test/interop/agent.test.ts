/**
 * ssh-agent interop: our client authenticates against sshd through a real
 * `ssh-agent` for every key type; `ssh-add` drives our agent codec (an
 * in-process agent); agent forwarding through sshd to a second hop, and
 * through our server in both directions (our client, OpenSSH's `ssh -A`).
 */
import * as Effect from "effect/Effect"
import * as ChildProcess from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { promisify } from "node:util"
import { afterAll, beforeAll, expect, it } from "vitest"
import * as Agent from "../../src/Auth/Agent.ts"
import * as Auth from "../../src/Auth/ClientAuth.ts"
import * as HostKeys from "../../src/Auth/HostKeys.ts"
import * as PrivateKey from "../../src/Auth/PrivateKey.ts"
import * as PublicKey from "../../src/Auth/PublicKey.ts"
import * as SshClient from "../../src/Client.ts"
import * as SshServer from "../../src/Server.ts"
import * as ProcessSession from "../../src/Server/ProcessSession.ts"
import { runScoped, sshdOptions } from "../helpers.ts"
import { startTestAgent, type TestAgent } from "../Auth/agentFixtures.ts"
import { describeInterop, opensshPaths, type Sshd, startSshd } from "./sshd.ts"

const execFile = promisify(ChildProcess.execFile)
const sshAdd = "/usr/bin/ssh-add"
const sshAgentBinary = "/usr/bin/ssh-agent"

interface RunningAgent {
  readonly socket: string
  readonly stop: () => void
}

/** `ssh-agent -D -a SOCK`, as the issue asks. */
const startAgent = async (dir: string): Promise<RunningAgent> => {
  const socket = path.join(dir, `agent-${Math.random().toString(36).slice(2)}.sock`)
  const child = ChildProcess.spawn(sshAgentBinary, ["-D", "-a", socket], { stdio: "ignore" })
  for (let i = 0; i < 200 && !fs.existsSync(socket); i++) await new Promise((r) => setTimeout(r, 10))
  return { socket, stop: () => child.kill() }
}

/** Runs `ssh-add` against the agent at `socket`. */
const add = (socket: string, args: ReadonlyArray<string>, env: NodeJS.ProcessEnv = {}) =>
  execFile(sshAdd, [...args], { env: { ...process.env, SSH_AUTH_SOCK: socket, ...env } })

const keygen = async (file: string, type: string, bits?: number) => {
  await execFile(opensshPaths().sshKeygen!, ["-q", "-t", type, ...(bits ? ["-b", String(bits)] : []), "-N", "", "-C", `${type}-${bits ?? ""}`, "-f", file])
  return file
}

describeInterop("ssh-agent interop", () => {
  let sshd: Sshd
  let dir: string
  let agent: RunningAgent
  const keyFiles: Record<string, string> = {}

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "effect-ssh-agent-interop-"))
    fs.chmodSync(dir, 0o755)
    sshd = await startSshd()
    // every key type, all authorized on the sshd
    keyFiles["ssh-ed25519"] = sshd.clientKeys.ed25519
    keyFiles["ecdsa-sha2-nistp256"] = sshd.clientKeys.ecdsa
    keyFiles["ssh-rsa"] = sshd.clientKeys.rsa
    keyFiles["ecdsa-sha2-nistp384"] = await keygen(path.join(dir, "id_p384"), "ecdsa", 384)
    keyFiles["ecdsa-sha2-nistp521"] = await keygen(path.join(dir, "id_p521"), "ecdsa", 521)
    for (const file of [keyFiles["ecdsa-sha2-nistp384"], keyFiles["ecdsa-sha2-nistp521"]]) {
      fs.appendFileSync(path.join(sshd.dir, "authorized_keys"), fs.readFileSync(`${file}.pub`, "utf8"))
    }
    agent = await startAgent(dir)
  })
  afterAll(async () => {
    agent?.stop()
    await sshd?.stop()
    fs.rmSync(dir, { recursive: true, force: true })
  })

  const viaAgent = (socket: string) =>
    runScoped(Effect.gen(function*() {
      const ssh = yield* SshClient.connect(sshdOptions(sshd, [Auth.agent({ socketPath: socket })]))
      const r = yield* ssh.run("echo ok")
      return { stdout: r.stdout, methods: ssh.info.authMethods }
    }))

  for (const type of ["ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa"]) {
    it(`our client authenticates through ssh-agent with only an ${type} key in it`, async () => {
      await add(agent.socket, ["-D"])
      await add(agent.socket, [keyFiles[type]!])
      const { stdout } = await add(agent.socket, ["-L"])
      expect(stdout.trim().split(" ")[0]).toBe(type)
      expect(await viaAgent(agent.socket)).toEqual({ stdout: "ok\n", methods: ["publickey"] })
    })
  }

  it("ssh-add drives our agent codec: adds (with -t, -c and a certificate), lists, deletes, locks", async () => {
    const fake: TestAgent = await startTestAgent()
    try {
      const key = keyFiles["ecdsa-sha2-nistp384"]!
      // a certificate next to the key: ssh-add adds both
      const ca = await keygen(path.join(dir, "ca_for_add"), "ed25519")
      await execFile(opensshPaths().sshKeygen!, ["-q", "-s", ca, "-I", "added", "-n", "someone", key + ".pub"])
      await add(fake.path, ["-t", "60", "-c", key])
      const adds = fake.requests.filter((r): r is Extract<Agent.AgentRequest, { _tag: "AddIdentity" }> => r._tag === "AddIdentity")
      const publicKey = PublicKey.parseOpenSsh(fs.readFileSync(`${key}.pub`, "utf8"))
      expect(adds.map((r) => [r.key.publicKey.type, r.certificate?.keyId, r.constraints])).toEqual([
        ["ecdsa-sha2-nistp384", undefined, [{ _tag: "Lifetime", seconds: 60 }, { _tag: "Confirm" }]],
        ["ecdsa-sha2-nistp384", "added", [{ _tag: "Lifetime", seconds: 60 }, { _tag: "Confirm" }]]
      ])
      expect(PublicKey.equals(adds[0]!.key.publicKey, publicKey)).toBe(true)
      // our identities answer, as ssh-add -l prints it
      const listed = await add(fake.path, ["-l"])
      expect(listed.stdout.trim().split("\n")).toHaveLength(2)
      expect(listed.stdout).toContain(PublicKey.fingerprint(publicKey))
      await add(fake.path, ["-d", key])
      expect(fake.requests.some((r) => r._tag === "RemoveIdentity")).toBe(true)
      // lock takes its passphrase from SSH_ASKPASS without a terminal
      const askpass = path.join(dir, "askpass")
      fs.writeFileSync(askpass, "#!/bin/sh\necho lockpw\n", { mode: 0o755 })
      await add(fake.path, ["-x"], { SSH_ASKPASS: askpass, SSH_ASKPASS_REQUIRE: "force", DISPLAY: ":0" })
      const lock = fake.requests.find((r) => r._tag === "Lock")
      expect(lock?._tag === "Lock" && new TextDecoder().decode(lock.passphrase)).toBe("lockpw")
      await add(fake.path, ["-D"])
      expect(fake.keys).toEqual([])
    } finally {
      await fake.stop()
    }
  })

  it("agent forwarding through sshd to a second hop: ssh-add -l on A lists our keys, and ssh from A logs in to B", async () => {
    const hopB = await startSshd({ hostKeyTypes: ["ed25519"] })
    try {
      await add(agent.socket, ["-D"])
      await add(agent.socket, [sshd.clientKeys.ed25519])
      const result = await runScoped(Effect.gen(function*() {
        // our client holds no key itself: A and B both see only the forwarded agent
        const ssh = yield* SshClient.connect(sshdOptions(sshd, [Auth.agent({ socketPath: agent.socket })], { forwardAgent: agent.socket }))
        const list = yield* ssh.run("ssh-add -l")
        const hop = yield* ssh.run([
          opensshPaths().ssh!,
          "-F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=yes",
          `-o UserKnownHostsFile=${hopB.knownHostsFile}`,
          `-p ${hopB.port} ${hopB.user}@127.0.0.1 'echo second hop as $(whoami)'`
        ].join(" "))
        return { list: list.stdout, hop: hop.stdout, hopErr: hop.stderr, hopCode: hop.exitCode }
      }))
      const fingerprint = PublicKey.fingerprint(PrivateKey.parse(fs.readFileSync(sshd.clientKeys.ed25519, "utf8")).publicKey)
      expect(result.list).toContain(fingerprint)
      expect(result.hopCode, result.hopErr).toBe(0)
      expect(result.hop).toBe(`second hop as ${hopB.user}\n`)
    } finally {
      await hopB.stop()
    }
  })

  const ourServer = (keys: ReadonlyArray<PrivateKey.PrivateKey>, user: PublicKey.PublicKey) =>
    SshServer.serve({
      port: 0,
      hostKeys: keys,
      agentForwarding: true,
      auth: { publicKey: ({ key }) => Effect.succeed(PublicKey.equals(key, user)) },
      session: ProcessSession.handlers({ shell: "/bin/sh" })
    })

  it("our server forwards the agent: ssh-add -l in a session lists the client's keys (our client, and ssh -A)", async () => {
    await add(agent.socket, ["-D"])
    await add(agent.socket, [keyFiles["ssh-rsa"]!, keyFiles["ecdsa-sha2-nistp521"]!])
    const hostKey = PrivateKey.generate("ssh-ed25519")
    const user = PrivateKey.parse(fs.readFileSync(keyFiles["ssh-rsa"]!, "utf8"))
    const rsaFingerprint = PublicKey.fingerprint(user.publicKey)
    const out = await runScoped(Effect.gen(function*() {
      const server = yield* ourServer([hostKey], user.publicKey)
      const ssh = yield* SshClient.connect({
        host: "127.0.0.1",
        port: server.address.port,
        username: os.userInfo().username,
        auth: [Auth.agent({ socketPath: agent.socket })],
        hostKeys: HostKeys.fixed(hostKey.publicKey),
        forwardAgent: agent.socket
      })
      const ours = (yield* ssh.run("ssh-add -l")).stdout
      const knownHosts = path.join(dir, "known_hosts_ours")
      fs.writeFileSync(knownHosts, `[127.0.0.1]:${server.address.port} ${PublicKey.toOpenSsh(hostKey.publicKey, { comment: "" })}\n`)
      const openssh = yield* Effect.promise(() =>
        execFile(opensshPaths().ssh!, [
          "-F", "/dev/null", "-A", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
          "-o", `UserKnownHostsFile=${knownHosts}`, "-o", `IdentityAgent=${agent.socket}`,
          "-p", String(server.address.port), "127.0.0.1", "ssh-add -l; echo SOCK=$SSH_AUTH_SOCK"
        ], { env: { ...process.env, SSH_AUTH_SOCK: agent.socket } }).then((r) => r.stdout, (e: { stdout?: string; stderr?: string }) => `failed: ${e.stderr}`)
      )
      return { ours, openssh }
    }))
    expect(out.ours).toContain(rsaFingerprint)
    expect(out.ours.trim().split("\n")).toHaveLength(2)
    expect(out.openssh).toContain(rsaFingerprint)
    expect(out.openssh).toMatch(/SOCK=\/\S+\/agent\.\d+/)
  })
})
