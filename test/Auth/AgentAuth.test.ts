/**
 * `Auth.agent()`, FIDO security keys and agent forwarding between our
 * client and our server, with an in-process agent (no OpenSSH needed).
 */
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Agent from "../../src/Auth/Agent.ts"
import * as AgentClient from "../../src/Auth/AgentClient.ts"
import * as Auth from "../../src/Auth/ClientAuth.ts"
import * as Certificate from "../../src/Auth/Certificate.ts"
import * as HostKeys from "../../src/Auth/HostKeys.ts"
import * as Identities from "../../src/Auth/Identities.ts"
import * as PrivateKey from "../../src/Auth/PrivateKey.ts"
import * as PublicKey from "../../src/Auth/PublicKey.ts"
import type { ServerSession } from "../../src/Channel/ServerSession.ts"
import * as SshClient from "../../src/Client.ts"
import * as SshServer from "../../src/Server.ts"
import * as SecurityKey from "../../src/internal/securityKey.ts"
import type { SshError } from "../../src/SshError.ts"
import { runFailure, runScoped } from "../helpers.ts"
import { agentKey, dummySecurityKey, securityAgentKey, startTestAgent, type TestAgent, unknownKeyBlob } from "./agentFixtures.ts"

const hostKey = PrivateKey.generate("ssh-ed25519")
const ed25519 = PrivateKey.generate("ssh-ed25519", { comment: "ed25519" })
const p521 = PrivateKey.generate("ecdsa-sha2-nistp521", { comment: "p521" })
const rsa = PrivateKey.generate("ssh-rsa", { bits: 2048, comment: "rsa" })
const ecdsaSk = dummySecurityKey("ecdsa_sk1")
const ed25519Sk = dummySecurityKey("ed25519_sk1")

/** Lists the forwarded agent's keys from inside a session, as `ssh-add -l` would. */
const listAgent = (session: ServerSession) =>
  Effect.gen(function*() {
    if (session.agentSocket === undefined) {
      yield* session.write("no agent\n")
      return 1
    }
    const comments = yield* Effect.scoped(Effect.map(
      Effect.flatMap(AgentClient.connect(session.env.SSH_AUTH_SOCK), (a) => a.identities),
      (ids) => ids.map((i) => i.comment)
    ))
    yield* session.write(comments.join(",") + "\n")
    return 0
  }).pipe(Effect.catch((e: SshError) => Effect.as(session.write(`error ${e.message}\n`), 2)))

const serve = (options: Partial<SshServer.ServeOptions> & { readonly auth?: SshServer.ServeOptions["auth"] }) =>
  SshServer.serve({ port: 0, hostKeys: [hostKey], session: { exec: listAgent }, auth: {}, ...options })

const connect = (port: number, auth: ReadonlyArray<Auth.AuthMethod>, extra: Partial<SshClient.ConnectOptions> = {}) =>
  SshClient.connect({ host: "127.0.0.1", port, username: "alice", auth, hostKeys: HostKeys.fixed(hostKey.publicKey), ...extra })

const accepting = (...keys: ReadonlyArray<PrivateKey.PrivateKey>) => ({
  publicKey: ({ key }: { readonly key: PublicKey.PublicKey }) => Effect.succeed(keys.some((k) => PublicKey.equals(k.publicKey, key)))
})

/** `key` written encrypted (passphrase "secret") with its `.pub` beside it, in a fresh temp dir. */
const encryptedKeyFile = (key: PrivateKey.PrivateKey, name: string) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "effect-ssh-agent-auth-"))
  const file = path.join(dir, name)
  fs.writeFileSync(file, PrivateKey.toOpenSsh(key, { passphrase: "secret", rounds: 4 }), { mode: 0o600 })
  fs.writeFileSync(`${file}.pub`, PublicKey.toOpenSsh(key.publicKey) + "\n")
  return { dir, file }
}

const signRequests = (agent: TestAgent) =>
  agent.requests.filter((r): r is Extract<Agent.AgentRequest, { _tag: "Sign" }> => r._tag === "Sign")

describe("Auth.agent()", () => {
  let agent: TestAgent
  beforeAll(async () => {
    agent = await startTestAgent([
      { blob: unknownKeyBlob("ssh-dss"), comment: "dsa", sign: () => new Uint8Array(0) },
      agentKey(ed25519),
      agentKey(p521),
      agentKey(rsa)
    ])
  })
  afterAll(() => agent.stop())

  it("offers the agent's keys in turn and has only the accepted one sign (RSA with rsa-sha2-512)", async () => {
    const before = signRequests(agent).length
    const methods = await runScoped(Effect.gen(function*() {
      const server = yield* serve({ auth: accepting(rsa) })
      const ssh = yield* connect(server.address.port, [Auth.agent({ socketPath: agent.path })])
      return ssh.info.authMethods
    }))
    expect(methods).toEqual(["publickey"])
    const signs = signRequests(agent).slice(before)
    expect(signs).toHaveLength(1)
    expect(signs[0]!.key).toEqual(rsa.publicKey.blob)
    expect(signs[0]!.flags).toBe(Agent.SignFlags.RSA_SHA2_512)
  })

  it("fails with AuthFailed when no agent key is accepted, and says so when there is no agent", async () => {
    const none = await runFailure(Effect.gen(function*() {
      const server = yield* serve({ auth: accepting(PrivateKey.generate("ssh-ed25519")) })
      return yield* connect(server.address.port, [Auth.agent({ socketPath: agent.path })])
    })) as SshError
    expect(none.reason._tag).toBe("AuthFailed")
    const absent = await runFailure(Effect.gen(function*() {
      const server = yield* serve({ auth: accepting(ed25519) })
      return yield* connect(server.address.port, [Auth.agent({ socketPath: `${agent.path}.missing` }), Auth.privateKey(p521)])
    })) as SshError
    expect(absent.reason._tag).toBe("AuthFailed")
    expect(absent.reason._tag === "AuthFailed" && absent.reason.tried[0]).toMatch(/^publickey \(agent: agent connection: /)
  })

  it("only: the agent's other keys are never offered (ssh's IdentitiesOnly)", async () => {
    const offered: Array<string> = []
    const recording = (...keys: ReadonlyArray<PrivateKey.PrivateKey>) => ({
      publicKey: ({ key }: { readonly key: PublicKey.PublicKey }) =>
        Effect.sync(() => {
          offered.push(key.type)
          return keys.some((k) => PublicKey.equals(k.publicKey, key))
        })
    })
    const refused = await runFailure(Effect.gen(function*() {
      const server = yield* serve({ auth: recording(rsa) })
      return yield* connect(server.address.port, [Auth.agent({ socketPath: agent.path, only: [p521.publicKey.blob] })])
    })) as SshError
    expect(refused.reason._tag).toBe("AuthFailed")
    expect(offered).toEqual(["ecdsa-sha2-nistp521"])
    offered.length = 0
    const methods = await runScoped(Effect.gen(function*() {
      const server = yield* serve({ auth: recording(rsa) })
      const ssh = yield* connect(server.address.port, [Auth.agent({ socketPath: agent.path, only: [rsa.publicKey.blob] })])
      return ssh.info.authMethods
    }))
    expect(methods).toEqual(["publickey"])
    expect(offered.every((type) => type === "ssh-rsa")).toBe(true)
  })

  it("Identities.defaults with identitiesOnly: an encrypted key file the agent holds is used without its passphrase, with or without its .pub", async () => {
    const { dir, file } = encryptedKeyFile(rsa, "id_rsa")
    let asked = 0
    const login = () =>
      runScoped(Effect.gen(function*() {
        const server = yield* serve({ auth: accepting(rsa) })
        const auth = yield* Identities.defaults({
          agent: agent.path,
          files: [file],
          identitiesOnly: true,
          passphrase: () => Effect.sync(() => void asked++)
        })
        const ssh = yield* connect(server.address.port, auth)
        return ssh.info.authMethods
      }))
    const withPub = await login()
    // openssh-key-v1 keeps the public key readable in the encrypted file
    fs.rmSync(`${file}.pub`)
    const withoutPub = await login()
    fs.rmSync(dir, { recursive: true, force: true })
    expect(withPub).toEqual(["publickey"])
    expect(withoutPub).toEqual(["publickey"])
    expect(asked).toBe(0)
  })

  it("publicKeyAlgorithms (PubkeyAcceptedAlgorithms): only keys with an accepted algorithm are offered; an unknown name is a typed error", async () => {
    const offered: Array<string> = []
    const recording = {
      publicKey: ({ key }: { readonly key: PublicKey.PublicKey }) =>
        Effect.sync(() => {
          offered.push(key.type)
          return PublicKey.equals(key, rsa.publicKey) || PublicKey.equals(key, ed25519.publicKey)
        })
    }
    const tried = await runFailure(Effect.gen(function*() {
      const server = yield* serve({ auth: recording })
      return yield* connect(server.address.port, [Auth.privateKey(ed25519)], { publicKeyAlgorithms: "-ssh-ed25519*" })
    })) as SshError
    expect(tried.reason._tag === "AuthFailed" && tried.reason.tried.join(" ")).toMatch(/ssh-ed25519 is not in PubkeyAcceptedAlgorithms/)
    expect(offered).toEqual([])
    const methods = await runScoped(Effect.gen(function*() {
      const server = yield* serve({ auth: recording })
      const ssh = yield* connect(server.address.port, [Auth.privateKey(ed25519), Auth.privateKey(rsa)], { publicKeyAlgorithms: ["rsa-sha2-256"] })
      return ssh.info.authMethods
    }))
    expect(methods).toEqual(["publickey"])
    expect(offered.length).toBeGreaterThan(0)
    expect(offered.every((type) => type === "ssh-rsa")).toBe(true)
    const bad = await runFailure(Effect.gen(function*() {
      const server = yield* serve({ auth: recording })
      return yield* connect(server.address.port, [Auth.privateKey(rsa)], { publicKeyAlgorithms: "no-such-algorithm" })
    })) as SshError
    expect(bad._tag).toBe("SshError")
  })

  it("an encrypted key file of a type PubkeyAcceptedAlgorithms refuses is never asked its passphrase", async () => {
    const { dir, file } = encryptedKeyFile(ed25519, "id_ed25519")
    let asked = 0
    const failure = await runFailure(Effect.gen(function*() {
      const server = yield* serve({ auth: accepting(ed25519) })
      return yield* connect(server.address.port, [Auth.privateKeyFile(file, () => Effect.sync(() => {
        asked++
        return Redacted.make("secret")
      }))], { publicKeyAlgorithms: ["rsa-sha2-512"] })
    })) as SshError
    fs.rmSync(dir, { recursive: true, force: true })
    expect(failure.reason._tag).toBe("AuthFailed")
    expect(asked).toBe(0)
  })

  it("goes on to the next method when the agent has nothing acceptable", async () => {
    const methods = await runScoped(Effect.gen(function*() {
      const server = yield* serve({ auth: accepting(ed25519, PrivateKey.generate("ssh-ed25519")) })
      const empty = yield* Effect.promise(() => startTestAgent())
      const ssh = yield* Effect.ensuring(
        connect(server.address.port, [Auth.agent({ socketPath: empty.path }), Auth.privateKey(ed25519)]),
        Effect.promise(() => empty.stop())
      )
      return ssh.info.authMethods
    }))
    expect(methods).toEqual(["publickey"])
  })
})

describe("FIDO security keys through the agent", () => {
  const securityKeyServer = (options: Partial<SshServer.ServeOptions["auth"]> = {}) =>
    serve({
      auth: {
        securityKey: ({ key }) => Effect.succeed([ecdsaSk, ed25519Sk].some((sk) => sk.key.blob.every((b, i) => key.blob[i] === b))),
        ...options
      }
    })

  const login = (
    sk: ReturnType<typeof dummySecurityKey>,
    flags: number | undefined,
    server: Partial<SshServer.ServeOptions["auth"]> = {}
  ) =>
    Effect.gen(function*() {
      const agent = yield* Effect.acquireRelease(
        Effect.promise(() => startTestAgent([securityAgentKey(sk, flags)])),
        (a) => Effect.promise(() => a.stop())
      )
      const s = yield* securityKeyServer(server)
      const ssh = yield* connect(s.address.port, [Auth.agent({ socketPath: agent.path })])
      return ssh.info.authMethods
    })

  it.each([["ecdsa_sk1", ecdsaSk], ["ed25519_sk1", ed25519Sk]] as const)("%s: the server verifies the signature and the touch", async (_, sk) => {
    expect(await runScoped(login(sk, undefined))).toEqual(["publickey"])
  })

  it("refuses a signature without user presence, unless the server waives the touch", async () => {
    const e = await runFailure(login(ecdsaSk, 0)) as SshError
    expect(e.reason._tag).toBe("AuthFailed")
    expect(await runScoped(login(ecdsaSk, 0, { securityKeyTouchRequired: false }))).toEqual(["publickey"])
  })

  it("with verify-required, needs user verification too", async () => {
    const e = await runFailure(login(ed25519Sk, SecurityKey.FLAG_USER_PRESENT, { securityKeyVerifyRequired: true })) as SshError
    expect(e.reason._tag).toBe("AuthFailed")
    const both = SecurityKey.FLAG_USER_PRESENT | SecurityKey.FLAG_USER_VERIFIED
    expect(await runScoped(login(ed25519Sk, both, { securityKeyVerifyRequired: true }))).toEqual(["publickey"])
  })

  it("a security key user certificate: accepted from a trusted CA; no-touch-required waives presence", async () => {
    const ca = PrivateKey.generate("ssh-ed25519")
    const cert = (extensions: ReadonlyArray<string>) =>
      Certificate.sign({ key: ecdsaSk.key, role: "user", keyId: "fido", principals: ["alice"], extensions: extensions.map(Certificate.flag) }, ca)
    const viaCertificate = (certificate: Certificate.Certificate, flags: number | undefined) =>
      Effect.gen(function*() {
        const agent = yield* Effect.acquireRelease(
          Effect.promise(() => startTestAgent([{ ...securityAgentKey(ecdsaSk, flags), blob: certificate.blob }])),
          (a) => Effect.promise(() => a.stop())
        )
        const s = yield* serve({ auth: { certificateAuthorities: [ca.publicKey] } })
        const ssh = yield* connect(s.address.port, [Auth.agent({ socketPath: agent.path })])
        return ssh.info.authMethods
      })
    expect(await runScoped(viaCertificate(cert([]), undefined))).toEqual(["publickey"])
    expect(((await runFailure(viaCertificate(cert([]), 0))) as SshError).reason._tag).toBe("AuthFailed")
    expect(await runScoped(viaCertificate(cert(["no-touch-required"]), 0))).toEqual(["publickey"])
  })
})

describe("agent forwarding between our client and our server", () => {
  let agent: TestAgent
  beforeAll(async () => {
    agent = await startTestAgent([agentKey(ed25519), agentKey(rsa)])
  })
  afterAll(() => agent.stop())

  const run = (server: Partial<SshServer.ServeOptions>, client: Partial<SshClient.ConnectOptions>, auth?: ReadonlyArray<Auth.AuthMethod>) =>
    runScoped(Effect.gen(function*() {
      const s = yield* serve({ auth: accepting(p521), ...server })
      const ssh = yield* connect(s.address.port, auth ?? [Auth.privateKey(p521)], client)
      const [first, second] = yield* Effect.all([ssh.run("list"), ssh.run("list")], { concurrency: 2 })
      return [first.stdout, second.stdout]
    }))

  it("a session sees the client's agent through SSH_AUTH_SOCK (each session its own socket)", async () => {
    expect(await run({ agentForwarding: true }, { forwardAgent: agent.path })).toEqual(["ed25519,rsa\n", "ed25519,rsa\n"])
  })

  it("forwardAgent: true uses SSH_AUTH_SOCK", async () => {
    const saved = process.env.SSH_AUTH_SOCK
    process.env.SSH_AUTH_SOCK = agent.path
    try {
      expect(await run({ agentForwarding: true }, { forwardAgent: true })).toEqual(["ed25519,rsa\n", "ed25519,rsa\n"])
    } finally {
      if (saved === undefined) delete process.env.SSH_AUTH_SOCK
      else process.env.SSH_AUTH_SOCK = saved
    }
  })

  it("no agent unless both sides want it, or when a certificate does not permit it", async () => {
    expect(await run({}, { forwardAgent: agent.path })).toEqual(["no agent\n", "no agent\n"])
    expect(await run({ agentForwarding: true }, {})).toEqual(["no agent\n", "no agent\n"])
    const ca = PrivateKey.generate("ssh-ed25519")
    const noForwarding = Certificate.sign({ key: p521.publicKey, role: "user", keyId: "c", principals: ["alice"], extensions: [] }, ca)
    expect(await run(
      { agentForwarding: true, auth: { certificateAuthorities: [ca.publicKey] } },
      { forwardAgent: agent.path },
      [Auth.certificate(p521, noForwarding)]
    )).toEqual(["no agent\n", "no agent\n"])
  })

  it("without an agent to forward, connecting fails with AgentFailed", async () => {
    const saved = process.env.SSH_AUTH_SOCK
    delete process.env.SSH_AUTH_SOCK
    try {
      const e = await runFailure(Effect.gen(function*() {
        const s = yield* serve({ auth: accepting(p521) })
        return yield* connect(s.address.port, [Auth.privateKey(p521)], { forwardAgent: true })
      })) as SshError
      expect(e.reason._tag).toBe("AgentFailed")
    } finally {
      if (saved !== undefined) process.env.SSH_AUTH_SOCK = saved
    }
  })
})
