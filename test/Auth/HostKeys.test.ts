/**
 * The known_hosts policies against our own server (a generated host key on
 * 127.0.0.1): strict, acceptNew, autoAdd and warn for unknown hosts; a
 * changed key is HostKeyChanged with both fingerprints and a @revoked key is
 * refused whatever the policy.
 */
import * as Effect from "effect/Effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import * as Auth from "../../src/Auth/ClientAuth.ts"
import * as HostKeys from "../../src/Auth/HostKeys.ts"
import * as KnownHosts from "../../src/Auth/KnownHosts.ts"
import * as PrivateKey from "../../src/Auth/PrivateKey.ts"
import * as PublicKey from "../../src/Auth/PublicKey.ts"
import * as SshClient from "../../src/Client.ts"
import * as SshServer from "../../src/Server.ts"
import type { SshError } from "../../src/SshError.ts"
import { runFailure, runScoped } from "../helpers.ts"

const hostKey = PrivateKey.generate("ssh-ed25519")
const otherKey = PrivateKey.generate("ssh-ed25519")
const userKey = PrivateKey.generate("ssh-ed25519")

const dirs: Array<string> = []
const knownHostsFile = (content = ""): string => {
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-ssh-hostkeys-"))
  dirs.push(dir)
  const file = Path.join(dir, "known_hosts")
  if (content !== "") Fs.writeFileSync(file, content)
  return file
}
afterEach(() => {
  for (const dir of dirs.splice(0)) Fs.rmSync(dir, { recursive: true, force: true })
})

/** Connects `times` times with `policy` to a fresh server and runs `echo ok`. */
const connect = (policy: HostKeys.HostKeyPolicy, times = 1, key: PrivateKey.PrivateKey = hostKey, port = 0) =>
  Effect.gen(function*() {
    const server = yield* SshServer.serve({
      port,
      hostKeys: [key],
      auth: { publicKey: ({ key: offered }) => Effect.succeed(PublicKey.equals(offered, userKey.publicKey)) },
      session: { exec: (session) => Effect.as(session.write("ok\n"), 0) }
    })
    const outputs: Array<string> = []
    for (let i = 0; i < times; i++) {
      const ssh = yield* SshClient.connect({
        host: "127.0.0.1",
        port: server.address.port,
        username: "u",
        auth: [Auth.privateKey(userKey)],
        hostKeys: policy
      })
      outputs.push((yield* ssh.run("echo")).stdout)
    }
    return { outputs, port: server.address.port }
  })

const lineFor = (port: number, key: PrivateKey.PrivateKey, marker?: KnownHosts.Marker) =>
  `${KnownHosts.formatLine("127.0.0.1", port, key.publicKey, { marker })}\n`

/** Connects to a server whose known_hosts content depends on its port (written once it listens); returns the failure. */
const withFile = async (
  makeContent: (port: number) => string,
  policy: (file: string) => HostKeys.HostKeyPolicy
) => {
  const file = knownHostsFile()
  return runFailure(Effect.gen(function*() {
    const server = yield* SshServer.serve({
      port: 0,
      hostKeys: [hostKey],
      auth: { publicKey: () => Effect.succeed(true) },
      session: { exec: () => Effect.succeed(0) }
    })
    Fs.writeFileSync(file, makeContent(server.address.port))
    yield* SshClient.connect({
      host: "127.0.0.1",
      port: server.address.port,
      username: "u",
      auth: [Auth.privateKey(userKey)],
      hostKeys: policy(file)
    })
  })).then((error) => ({ error: error as SshError, file }))
}

describe("known_hosts policies against our server", () => {
  it("strict (knownHosts) rejects an unknown host and writes nothing", async () => {
    const file = knownHostsFile()
    const error = await runFailure(connect(HostKeys.knownHosts({ files: [file] }))) as SshError
    expect(error.reason._tag).toBe("HostKeyRejected")
    expect(error.reason.message).toContain(PublicKey.fingerprint(hostKey.publicKey))
    expect(Fs.existsSync(file)).toBe(false)
  })

  it("acceptNew adds exactly one line, and the next connection passes on that line", async () => {
    const file = knownHostsFile()
    const { outputs, port } = await runScoped(connect(HostKeys.acceptNew({ files: [file] }), 2))
    expect(outputs).toEqual(["ok\n", "ok\n"])
    expect(Fs.readFileSync(file, "utf8")).toBe(lineFor(port, hostKey))
    expect(Fs.statSync(file).mode & 0o777).toBe(0o600)
  })

  it("acceptNew with hashed names writes a |1| line that a strict policy then trusts", async () => {
    const file = knownHostsFile()
    const result = await runScoped(Effect.gen(function*() {
      const server = yield* SshServer.serve({
        port: 0,
        hostKeys: [hostKey],
        auth: { publicKey: () => Effect.succeed(true) },
        session: { exec: (session) => Effect.as(session.write("ok\n"), 0) }
      })
      const options = (hostKeys: HostKeys.HostKeyPolicy): SshClient.ConnectOptions => ({
        host: "127.0.0.1",
        port: server.address.port,
        username: "u",
        auth: [Auth.privateKey(userKey)],
        hostKeys
      })
      yield* SshClient.connect(options(HostKeys.acceptNew({ files: [file], hashed: true })))
      const strict = yield* SshClient.connect(options(HostKeys.knownHosts({ files: [file] })))
      return (yield* strict.run("echo")).stdout
    }))
    expect(result).toBe("ok\n")
    const lines = Fs.readFileSync(file, "utf8").trimEnd().split("\n")
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(/^\|1\|/)
  })

  it("a changed key is HostKeyChanged with both fingerprints, for every policy", async () => {
    for (const policy of [HostKeys.knownHosts, HostKeys.acceptNew, HostKeys.autoAdd, HostKeys.warn]) {
      const { error } = await withFile((port) => lineFor(port, otherKey), (file) => policy({ files: [file] }))
      expect(error.reason._tag).toBe("HostKeyChanged")
      const reason = error.reason as Extract<SshError["reason"], { _tag: "HostKeyChanged" }>
      expect(reason.expected).toEqual([`ssh-ed25519 ${PublicKey.fingerprint(otherKey.publicKey)}`])
      expect(reason.received).toBe(`ssh-ed25519 ${PublicKey.fingerprint(hostKey.publicKey)}`)
      expect(reason.message).toContain(PublicKey.fingerprint(otherKey.publicKey))
      expect(reason.message).toContain(PublicKey.fingerprint(hostKey.publicKey))
    }
  })

  it("a changed key leaves the file as it was (acceptNew does not add the new key)", async () => {
    let written = ""
    const { error, file } = await withFile((port) => (written = lineFor(port, otherKey)), (f) => HostKeys.acceptNew({ files: [f] }))
    expect(error.reason._tag).toBe("HostKeyChanged")
    expect(Fs.readFileSync(file, "utf8")).toBe(written)
  })

  it("a @revoked key is rejected even when also listed as the host's key, whatever the policy", async () => {
    for (const policy of [HostKeys.knownHosts, HostKeys.acceptNew, HostKeys.autoAdd, HostKeys.warn]) {
      const { error } = await withFile(
        (port) => lineFor(port, hostKey) + `@revoked * ${PublicKey.toOpenSsh(hostKey.publicKey)}\n`,
        (file) => policy({ files: [file] })
      )
      expect(error.reason._tag).toBe("HostKeyRejected")
      expect(error.reason.message).toMatch(/@revoked/)
    }
  })

  it("warn accepts an unknown host and records nothing", async () => {
    const file = knownHostsFile()
    const { outputs } = await runScoped(connect(HostKeys.warn({ files: [file] }), 2))
    expect(outputs).toEqual(["ok\n", "ok\n"])
    expect(Fs.existsSync(file)).toBe(false)
  })

  it("autoAdd with no files remembers the host's key for the policy value only", async () => {
    const policy = HostKeys.autoAdd({ files: [] })
    const { outputs, port } = await runScoped(connect(policy, 2))
    expect(outputs).toEqual(["ok\n", "ok\n"])
    // the same address now with another host key: the remembered key makes it a changed key
    const error = await runFailure(connect(policy, 1, otherKey, port)) as SshError
    expect(error.reason._tag).toBe("HostKeyChanged")
    // while a fresh policy value knows nothing
    expect((await runScoped(connect(HostKeys.autoAdd({ files: [] }), 1, otherKey))).outputs).toEqual(["ok\n"])
  })

  it("acceptNew goes on with a warning when the file cannot be written", async () => {
    const dir = knownHostsFile()
    Fs.mkdirSync(dir) // the "file" is a directory: appending fails
    const { outputs } = await runScoped(connect(HostKeys.acceptNew({ files: [Path.join(dir, "known_hosts")] }), 1))
    expect(outputs).toEqual(["ok\n"])
  })
})

describe("classify", () => {
  const check = (key: PrivateKey.PrivateKey): HostKeys.HostKeyCheck => ({
    host: "example.com",
    port: 22,
    key: key.publicKey,
    algorithm: key.type
  })
  const entries = (text: string) => KnownHosts.parse(text).entries

  it("Trusted, Changed, Unknown and Revoked", () => {
    const known = entries(`example.com ${PublicKey.toOpenSsh(hostKey.publicKey)}\n`)
    expect(HostKeys.classify(known, check(hostKey))).toEqual({ _tag: "Trusted" })
    expect(HostKeys.classify(known, check(otherKey))._tag).toBe("Changed")
    expect(HostKeys.classify(entries(""), check(hostKey))).toEqual({ _tag: "Unknown" })
    const revoked = entries(`example.com ${PublicKey.toOpenSsh(hostKey.publicKey)}\n@revoked * ${PublicKey.toOpenSsh(hostKey.publicKey)}\n`)
    expect(HostKeys.classify(revoked, check(hostKey))).toEqual({ _tag: "Revoked" })
  })

  it("a host known only by a key of another type counts as changed (like paramiko)", () => {
    const ecdsa = PrivateKey.generate("ecdsa-sha2-nistp256")
    const known = entries(`example.com ${PublicKey.toOpenSsh(ecdsa.publicKey)}\n`)
    expect(HostKeys.classify(known, check(hostKey))._tag).toBe("Changed")
  })

  it("@cert-authority lines are not host keys", () => {
    const known = entries(`@cert-authority *.com ${PublicKey.toOpenSsh(hostKey.publicKey)}\n`)
    expect(HostKeys.classify(known, check(hostKey))).toEqual({ _tag: "Unknown" })
    expect(KnownHosts.lookup(known, "example.com", 22).authorities).toHaveLength(1)
  })
})
