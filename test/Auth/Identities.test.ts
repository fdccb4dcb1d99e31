/**
 * Default identities: which files are tried and in what order, encrypted
 * keys through the passphrase callback (retries, declining), unusable files
 * skipped; and logging in to our server with them.
 */
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import * as Auth from "../../src/Auth/ClientAuth.ts"
import * as HostKeys from "../../src/Auth/HostKeys.ts"
import * as Identities from "../../src/Auth/Identities.ts"
import * as PrivateKey from "../../src/Auth/PrivateKey.ts"
import * as PublicKey from "../../src/Auth/PublicKey.ts"
import * as SshClient from "../../src/Client.ts"
import * as SshServer from "../../src/Server.ts"
import * as SshErrors from "../../src/SshError.ts"
import type { SshError } from "../../src/SshError.ts"
import { runScoped } from "../helpers.ts"

const run = <A, E>(effect: Effect.Effect<A, E, import("effect/FileSystem").FileSystem>): Promise<A> =>
  Effect.runPromise(Effect.provide(effect, NodeFileSystem.layer))

const homes: Array<string> = []
afterEach(() => {
  for (const dir of homes.splice(0)) Fs.rmSync(dir, { recursive: true, force: true })
})

const ed = PrivateKey.generate("ssh-ed25519", { comment: "ed" })
const ecdsa = PrivateKey.generate("ecdsa-sha2-nistp384", { comment: "ecdsa" })
const rsa = PrivateKey.generate("ssh-rsa", { bits: 2048, comment: "rsa" })

/** A home directory with `~/.ssh` holding the given files. */
const home = (files: Record<string, string>): string => {
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-ssh-home-"))
  homes.push(dir)
  Fs.mkdirSync(Path.join(dir, ".ssh"), { mode: 0o700 })
  for (const [name, text] of Object.entries(files)) Fs.writeFileSync(Path.join(dir, ".ssh", name), text, { mode: 0o600 })
  return dir
}

const keysOf = (methods: ReadonlyArray<Auth.AuthMethod>) =>
  methods.map((m) => (m._tag === "PrivateKey" ? m.key.publicKey.blob : undefined))

/** A passphrase callback answering from a list and recording what it was asked. */
const answers = (...values: Array<string | undefined>) => {
  const asked: Array<[string, number]> = []
  const prompt: Identities.PassphrasePrompt = (file, attempt) =>
    Effect.sync(() => {
      asked.push([Path.basename(file), attempt])
      const value = values.shift()
      return value === undefined ? undefined : Redacted.make(value)
    })
  return { asked, prompt }
}

/**
 * Our server authorizing `authorized` only (exec answers "in\n"), and a client connected to it with the default
 * identities of `dir`, asking `passphrase` for locked keys.
 */
const loginWithIdentities = (dir: string, authorized: PrivateKey.PrivateKey, passphrase: Identities.PassphrasePrompt) =>
  Effect.gen(function*() {
    const server = yield* SshServer.serve({
      port: 0,
      hostKeys: [PrivateKey.generate("ssh-ed25519")],
      auth: { publicKey: ({ key }) => Effect.succeed(PublicKey.equals(key, authorized.publicKey)) },
      session: { exec: (session) => Effect.as(session.write("in\n"), 0) }
    })
    const auth = yield* Identities.authMethods({ home: dir, passphrase })
    return yield* SshClient.connect({
      host: "127.0.0.1",
      port: server.address.port,
      username: "u",
      auth,
      hostKeys: HostKeys.callback(() => Effect.succeed(true))
    })
  })

describe("Identities", () => {
  it("defaultFiles are id_ed25519, id_ecdsa, id_rsa under ~/.ssh", () => {
    expect(Identities.defaultFiles("/home/me")).toEqual([
      "/home/me/.ssh/id_ed25519",
      "/home/me/.ssh/id_ecdsa",
      "/home/me/.ssh/id_rsa"
    ])
  })

  it("uses the default files that exist, in OpenSSH's order", async () => {
    const dir = home({ id_rsa: PrivateKey.toOpenSsh(rsa), id_ed25519: PrivateKey.toOpenSsh(ed), unrelated: "x" })
    const methods = await run(Identities.authMethods({ home: dir }))
    expect(keysOf(methods)).toEqual([ed.publicKey.blob, rsa.publicKey.blob])
  })

  it("an encrypted key is offered lazily: a file method with the callback, nothing asked yet", async () => {
    const dir = home({ id_ecdsa: PrivateKey.toOpenSsh(ecdsa, { passphrase: "right", rounds: 1 }) })
    const { asked, prompt } = answers("right")
    const methods = await run(Identities.authMethods({ home: dir, passphrase: prompt }))
    expect(methods.map((m) => m._tag)).toEqual(["PrivateKeyFile"])
    expect(asked).toEqual([])
  })

  it("an encrypted key is skipped without a callback; unencrypted ones are loaded", async () => {
    const dir = home({
      id_ed25519: PrivateKey.toOpenSsh(ed, { passphrase: "pw", rounds: 1 }),
      id_rsa: PrivateKey.toOpenSsh(rsa)
    })
    expect(keysOf(await run(Identities.authMethods({ home: dir })))).toEqual([rsa.publicKey.blob])
    const withPrompt = await run(Identities.authMethods({ home: dir, passphrase: answers().prompt }))
    expect(withPrompt.map((m) => m._tag)).toEqual(["PrivateKeyFile", "PrivateKey"])
  })

  it("unusable files are skipped, the rest are used", async () => {
    const dir = home({
      id_ed25519: "-----BEGIN DSA PRIVATE KEY-----\nAAAA\n-----END DSA PRIVATE KEY-----\n",
      id_ecdsa: "garbage",
      id_rsa: PrivateKey.toOpenSsh(rsa)
    })
    expect(keysOf(await run(Identities.authMethods({ home: dir })))).toEqual([rsa.publicKey.blob])
    const missing = Path.join(dir, "nope")
    expect(keysOf(await run(Identities.authMethods({ files: [missing, Path.join(dir, ".ssh", "id_rsa")] })))).toEqual([
      rsa.publicKey.blob
    ])
  })

  it("no ~/.ssh at all gives no methods", async () => {
    const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-ssh-home-"))
    homes.push(dir)
    expect(await run(Identities.authMethods({ home: dir }))).toEqual([])
  })

  it("a PuTTY key among the files is offered too (its passphrase asked at authentication)", async () => {
    const ppk = Fs.readFileSync(new URL("./fixtures/ppk/sshj_ed25519_v2_enc.ppk", import.meta.url), "utf8")
    const dir = home({ "key.ppk": ppk })
    const methods = await run(Identities.authMethods({ files: [Path.join(dir, ".ssh", "key.ppk")], passphrase: answers("123456").prompt }))
    expect(methods.map((m) => m._tag)).toEqual(["PrivateKeyFile"])
  })

  it("passphrases are asked only for keys the server accepts, again after a wrong one", async () => {
    const dir = home({
      id_ed25519: PrivateKey.toOpenSsh(ed, { passphrase: "not-asked", rounds: 1 }),
      id_ecdsa: PrivateKey.toOpenSsh(ecdsa, { passphrase: "right", rounds: 1 })
    })
    const { asked, prompt } = answers("wrong", "right")
    const methods = await runScoped(Effect.map(loginWithIdentities(dir, ecdsa, prompt), (ssh) => ssh.info.authMethods))
    expect(methods).toEqual(["publickey"])
    // id_ed25519 was refused by its public key alone: its passphrase was never asked
    expect(asked).toEqual([["id_ecdsa", 1], ["id_ecdsa", 2]])
  })

  it("logs in to our server with an encrypted default identity", async () => {
    const dir = home({
      id_ed25519: PrivateKey.toOpenSsh(ed),
      id_ecdsa: PrivateKey.toOpenSsh(ecdsa, { passphrase: "s3cret", rounds: 1 })
    })
    // only the encrypted key is authorized: the first identity is refused, the second works
    const result = await runScoped(Effect.gen(function*() {
      const ssh = yield* loginWithIdentities(dir, ecdsa, () => Effect.succeed(Redacted.make("s3cret")))
      return [(yield* ssh.run("x")).stdout, ssh.info.authMethods] as const
    }))
    expect(result).toEqual(["in\n", ["publickey"]])
  })

  it("a failing passphrase callback fails the authentication with its error", async () => {
    const dir = home({ id_ed25519: PrivateKey.toOpenSsh(ed, { passphrase: "pw", rounds: 1 }) })
    const failing: Identities.PassphrasePrompt = () =>
      Effect.fail(SshErrors.make(new SshErrors.AuthFailed({ methodsLeft: [], partial: false, tried: ["prompt (cancelled)"] })))
    const error = await runScoped(Effect.flip(loginWithIdentities(dir, ed, failing)))
    expect((error as SshError).reason._tag).toBe("AuthFailed")
    expect((error as SshError & { reason: { tried: Array<string> } }).reason.tried).toEqual(["prompt (cancelled)"])
  })
})

describe("defaults", () => {
  it("the agent first, then each key file with its -cert.pub beside it, as ssh", async () => {
    const home = Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-ssh-defaults-"))
    try {
      Fs.mkdirSync(Path.join(home, ".ssh"))
      const key = PrivateKey.generate("ssh-ed25519")
      Fs.writeFileSync(Path.join(home, ".ssh", "id_ed25519"), PrivateKey.toOpenSsh(key))
      Fs.writeFileSync(Path.join(home, ".ssh", "id_ed25519-cert.pub"), "placeholder\n")
      const saved = process.env.SSH_AUTH_SOCK
      process.env.SSH_AUTH_SOCK = "/tmp/agent.sock"
      try {
        const methods = await run(Identities.defaults({ home }))
        expect(methods.map((m) => m._tag)).toEqual(["Agent", "CertificateFile", "PrivateKey"])
        expect(methods[0]).toEqual({ _tag: "Agent", socketPath: "/tmp/agent.sock" })
        expect(methods[1]).toMatchObject({ certificatePath: Path.join(home, ".ssh", "id_ed25519-cert.pub") })
        const noAgent = await run(Identities.defaults({ home, agent: "none" }))
        expect(noAgent.map((m) => m._tag)).toEqual(["CertificateFile", "PrivateKey"])
      } finally {
        if (saved === undefined) delete process.env.SSH_AUTH_SOCK
        else process.env.SSH_AUTH_SOCK = saved
      }
    } finally {
      Fs.rmSync(home, { recursive: true, force: true })
    }
  })
})
