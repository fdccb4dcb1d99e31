import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as ChildProcess from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Agent from "../../src/Auth/Agent.ts"
import * as AgentClient from "../../src/Auth/AgentClient.ts"
import * as Certificate from "../../src/Auth/Certificate.ts"
import * as PrivateKey from "../../src/Auth/PrivateKey.ts"
import * as Signature from "../../src/Auth/Signature.ts"
import * as SecurityKey from "../../src/internal/securityKey.ts"
import type { SshError } from "../../src/SshError.ts"
import { agentKey, dummySecurityKey, securityAgentKey, startTestAgent, type TestAgent } from "./agentFixtures.ts"

const run = <A>(effect: Effect.Effect<A, SshError, import("effect/Scope").Scope>): Promise<A> =>
  Effect.runPromise(Effect.scoped(effect))
const failure = <A>(effect: Effect.Effect<A, SshError, import("effect/Scope").Scope>): Promise<SshError> =>
  Effect.runPromise(Effect.scoped(Effect.flip(effect)))

/** The error an operation fails with (a defect if it succeeds). */
const refused = <A>(effect: Effect.Effect<A, SshError>): Effect.Effect<SshError> =>
  Effect.flatMap(Effect.result(effect), (r) => r._tag === "Failure" ? Effect.succeed(r.failure) : Effect.die("expected a failure"))

const data = new TextEncoder().encode("sign me")
const rsa = PrivateKey.generate("ssh-rsa", { bits: 2048, comment: "rsa key" })
const ed25519 = PrivateKey.generate("ssh-ed25519", { comment: "ed key" })
const p384 = PrivateKey.generate("ecdsa-sha2-nistp384", { comment: "p384 key" })

describe("AgentClient against an in-process agent", () => {
  let agent: TestAgent
  beforeAll(async () => {
    agent = await startTestAgent([agentKey(rsa), agentKey(ed25519), securityAgentKey(dummySecurityKey("ecdsa_sk1"))])
  })
  afterAll(() => agent.stop())

  it("lists identities with their parsed keys", async () => {
    const identities = await run(Effect.flatMap(AgentClient.connect(agent.path), (a) => a.identities))
    expect(identities.map((i) => [i.type, i.comment])).toEqual([
      ["ssh-rsa", "rsa key"],
      ["ssh-ed25519", "ed key"],
      ["sk-ecdsa-sha2-nistp256@openssh.com", "ECDSA-SK test key #1"]
    ])
  })

  it("signs with the rsa-sha2 flag the algorithm asks for, and the signature verifies", async () => {
    const [sha512, sha256, plain] = await run(Effect.gen(function*() {
      const client = yield* AgentClient.connect(agent.path)
      return [
        yield* client.sign(rsa.publicKey, data, { algorithm: "rsa-sha2-512" }),
        yield* client.sign(rsa.publicKey, data, { algorithm: "rsa-sha2-256" }),
        yield* client.sign(ed25519.publicKey, data)
      ]
    }))
    expect(Signature.decodeSignature(sha512!).algorithm).toBe("rsa-sha2-512")
    expect(Signature.decodeSignature(sha256!).algorithm).toBe("rsa-sha2-256")
    expect(Signature.verify(rsa.publicKey, sha512!, data)).toBe(true)
    expect(Signature.verify(rsa.publicKey, sha256!, data)).toBe(true)
    expect(Signature.verify(ed25519.publicKey, plain!, data)).toBe(true)
    const signs = agent.requests.filter((r): r is Extract<Agent.AgentRequest, { _tag: "Sign" }> => r._tag === "Sign")
    expect(signs.slice(-3).map((r) => r.flags)).toEqual([Agent.SignFlags.RSA_SHA2_512, Agent.SignFlags.RSA_SHA2_256, 0])
  })

  it("passes a security key's signature through untouched (the authenticator's flags and counter)", async () => {
    const sk = dummySecurityKey("ecdsa_sk1").key
    const signature = await run(Effect.flatMap(AgentClient.connect(agent.path), (a) => a.sign(sk.blob, data)))
    const assertion = SecurityKey.verify(sk, signature, data)
    expect(assertion?.userPresent).toBe(true)
    expect(assertion?.counter).toBeGreaterThan(0)
  })

  it("a refusal is AgentFailed", async () => {
    const unknown = PrivateKey.generate("ssh-ed25519").publicKey
    const e = await failure(Effect.flatMap(AgentClient.connect(agent.path), (a) => a.sign(unknown, data)))
    expect(e.reason._tag).toBe("AgentFailed")
    expect(e.reason.message).toBe("the agent refused to sign")
  })

  it("an agent that ignores the rsa-sha2 flags (signs with SHA-1) is refused", async () => {
    const old = await startTestAgent([{ ...agentKey(rsa), sign: (d) => rsa.sign(d, "ssh-rsa") }])
    try {
      const e = await failure(Effect.flatMap(AgentClient.connect(old.path), (a) => a.sign(rsa.publicKey, data, { algorithm: "rsa-sha2-512" })))
      expect(e.reason.message).toMatch(/asked the agent for rsa-sha2-512, it signed with ssh-rsa/)
    } finally {
      await old.stop()
    }
  })

  it("adds with lifetime and confirm constraints, removes, locks", async () => {
    const scratch = await startTestAgent()
    try {
      const identities = await run(Effect.gen(function*() {
        const client = yield* AgentClient.connect(scratch.path)
        yield* client.add(p384, { lifetime: "90 seconds", confirm: true })
        yield* client.add(ed25519, { comment: "renamed" })
        const afterAdd = yield* client.identities
        yield* client.remove(p384.publicKey)
        yield* client.lock(Redacted.make("secret"))
        const locked = yield* client.identities
        const wrongUnlock = yield* refused(client.unlock(Redacted.make("wrong")))
        yield* client.unlock(Redacted.make("secret"))
        const afterRemove = yield* client.identities
        yield* client.removeAll
        return { afterAdd, locked, wrongUnlock, afterRemove, empty: yield* client.identities }
      }))
      expect(identities.afterAdd.map((i) => i.comment)).toEqual(["p384 key", "renamed"])
      expect(identities.locked).toEqual([])
      expect(identities.wrongUnlock.reason._tag).toBe("AgentFailed")
      expect(identities.afterRemove.map((i) => i.comment)).toEqual(["renamed"])
      expect(identities.empty).toEqual([])
      const add = scratch.requests.find((r) => r._tag === "AddIdentity")
      expect(add?._tag === "AddIdentity" && add.constraints).toEqual([{ _tag: "Lifetime", seconds: 90 }, { _tag: "Confirm" }])
    } finally {
      await scratch.stop()
    }
  })

  it("without SSH_AUTH_SOCK, or with nothing listening, connecting fails with AgentFailed", async () => {
    const saved = process.env.SSH_AUTH_SOCK
    delete process.env.SSH_AUTH_SOCK
    try {
      expect((await failure(AgentClient.connect())).reason.message).toMatch(/SSH_AUTH_SOCK is not set/)
    } finally {
      if (saved !== undefined) process.env.SSH_AUTH_SOCK = saved
    }
    const e = await failure(Effect.flatMap(AgentClient.connect(path.join(os.tmpdir(), "no-such-agent.sock")), (a) => a.identities))
    expect(e.reason._tag).toBe("AgentFailed")
  })
})

const sshAgent = ["/usr/bin/ssh-agent", "/usr/local/bin/ssh-agent"].find((p) => fs.existsSync(p))

describe.skipIf(sshAgent === undefined)("AgentClient against OpenSSH ssh-agent", () => {
  let dir: string
  let socket: string
  let child: ChildProcess.ChildProcess
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "effect-ssh-agent-test-"))
    socket = path.join(dir, "agent.sock")
    child = ChildProcess.spawn(sshAgent!, ["-D", "-a", socket], { stdio: "ignore" })
    for (let i = 0; i < 100 && !fs.existsSync(socket); i++) await new Promise((r) => setTimeout(r, 20))
  })
  afterAll(() => {
    child.kill()
    fs.rmSync(dir, { recursive: true, force: true })
  })

  it("adds every key type (and a certificate), lists, signs with the rsa-sha2 flags, removes", async () => {
    const ca = PrivateKey.generate("ssh-ed25519")
    const p256 = PrivateKey.generate("ecdsa-sha2-nistp256", { comment: "p256" })
    const certificate = Certificate.sign({ key: p256.publicKey, role: "user", keyId: "cert", principals: ["me"] }, ca)
    const result = await run(Effect.gen(function*() {
      const client = yield* AgentClient.connect(socket)
      yield* client.removeAll
      for (const key of [ed25519, p384, rsa]) yield* client.add(key, { lifetime: "10 minutes" })
      yield* client.add(p256, { certificate, comment: "with cert" })
      const identities = yield* client.identities
      const signatures = [
        yield* client.sign(rsa.publicKey, data, { algorithm: "rsa-sha2-512" }),
        yield* client.sign(rsa.publicKey, data, { algorithm: "rsa-sha2-256" }),
        yield* client.sign(ed25519.publicKey, data),
        yield* client.sign(p384.publicKey, data),
        yield* client.sign(certificate.blob, data)
      ]
      yield* client.remove(ed25519.publicKey)
      const afterRemove = yield* client.identities
      yield* client.lock(Redacted.make("pw"))
      const lockedSign = yield* refused(client.sign(rsa.publicKey, data))
      yield* client.unlock(Redacted.make("pw"))
      yield* client.removeAll
      return { identities, signatures, afterRemove, lockedSign, after: yield* client.identities }
    }))
    expect(result.identities.map((i) => i.type)).toEqual([
      "ssh-ed25519",
      "ecdsa-sha2-nistp384",
      "ssh-rsa",
      "ecdsa-sha2-nistp256-cert-v01@openssh.com"
    ])
    expect(result.identities[3]!.certificate?.keyId).toBe("cert")
    const [s512, s256, sEd, sP384, sCert] = result.signatures
    expect(Signature.decodeSignature(s512!).algorithm).toBe("rsa-sha2-512")
    expect(Signature.decodeSignature(s256!).algorithm).toBe("rsa-sha2-256")
    expect(Signature.verify(rsa.publicKey, s512!, data)).toBe(true)
    expect(Signature.verify(rsa.publicKey, s256!, data)).toBe(true)
    expect(Signature.verify(ed25519.publicKey, sEd!, data)).toBe(true)
    expect(Signature.verify(p384.publicKey, sP384!, data)).toBe(true)
    expect(Signature.verify(p256.publicKey, sCert!, data)).toBe(true)
    expect(result.afterRemove.map((i) => i.type)).not.toContain("ssh-ed25519")
    expect(result.lockedSign.reason._tag).toBe("AgentFailed")
    expect(result.after).toEqual([])
  })
})
