import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import * as Auth from "../../src/Auth/ClientAuth.ts"
import * as Certificate from "../../src/Auth/Certificate.ts"
import * as HostKeys from "../../src/Auth/HostKeys.ts"
import * as KnownHosts from "../../src/Auth/KnownHosts.ts"
import * as PrivateKey from "../../src/Auth/PrivateKey.ts"
import * as PublicKey from "../../src/Auth/PublicKey.ts"
import type { ServerSession } from "../../src/Channel/ServerSession.ts"
import * as SshClient from "../../src/Client.ts"
import * as SshServer from "../../src/Server.ts"
import { KeyParseFailed, type SshError } from "../../src/SshError.ts"
import { build } from "../../src/Wire/Writer.ts"
import { runFailure, runScoped } from "../helpers.ts"
import { base64, exists, list, readText, tagOf } from "./fixtures.ts"

/** 2005-06-15: inside the 1999..2011 validity of the regress certificates. */
const IN_2005 = 1118793600
const regress = (name: string) => Certificate.parseOpenSsh(readText(`openssh/sshkey/${name}`))
const authopt = (name: string) => Certificate.parseOpenSsh(readText(`openssh/authopt/${name}.cert`))

describe("OpenSSH regress certificates", () => {
  const certs = [
    ...list("openssh/sshkey").filter((f) => f.endsWith("-cert.pub")).map((f) => `openssh/sshkey/${f}`),
    ...list("openssh/authopt").map((f) => `openssh/authopt/${f}`)
  ]

  it.each(certs)("%s parses, re-encodes, and its CA signature verifies", (file) => {
    const line = readText(file).trim()
    const [type, data] = line.split(" ")
    if (type!.startsWith("ssh-mldsa44")) {
      expect(tagOf(() => Certificate.parseOpenSsh(line))).toBe("KeyParseFailed")
      return
    }
    const cert = Certificate.parseOpenSsh(line)
    expect(cert.type).toBe(type)
    expect(base64(cert.blob)).toBe(data)
    expect(Certificate.toOpenSsh(cert)).toBe(line)
    // the SHA-1 RSA signature is refused by default, as sshd's CASignatureAlgorithms
    const sha1 = file.endsWith("rsa_1_sha1-cert.pub")
    expect(Certificate.verifySignature(cert)).toBe(!sha1)
    expect(Certificate.verifySignature(cert, [...Certificate.defaultCaSignatureAlgorithms, "ssh-rsa"])).toBe(true)
    const fp = file.replace(/-cert\.pub$/, "-cert.fp")
    if (fp !== file && exists(fp)) expect(Certificate.fingerprint(cert)).toBe(readText(fp).trim())
  })

  it("reads the host certificates as ssh-keygen -L shows them", () => {
    const cert = regress("ed25519_1-cert.pub")
    expect(cert).toMatchObject({
      type: "ssh-ed25519-cert-v01@openssh.com",
      role: "host",
      keyId: "julius",
      serial: 8n,
      principals: ["host1", "host2"],
      validAfter: 915145200n,
      validBefore: 1293836400n,
      criticalOptions: [],
      extensions: []
    })
    // ed25519_1 certified itself
    expect(PublicKey.equals(cert.signatureKey, PublicKey.parseOpenSsh(readText("openssh/sshkey/ed25519_1.pub")))).toBe(true)
    expect(cert.key.blob).toEqual(PublicKey.parseOpenSsh(readText("openssh/sshkey/ed25519_1.pub")).blob)
    const sk = regress("ecdsa_sk1-cert.pub")
    expect(sk.key.type).toBe("sk-ecdsa-sha2-nistp256@openssh.com")
    // as ssh-keygen -L prints it (a CA key that is not among the fixtures)
    expect(PublicKey.fingerprint(sk.signatureKey)).toBe("SHA256:KC4XjSeYNROcw0KzN5WvDP9T0b3teDQcdsNfzUIUCPY")
    expect(regress("rsa_1-cert.pub").key.type).toBe("ssh-rsa")
  })

  it("reads the user certificate's critical options and extensions", () => {
    const cert = regress("rsa_1_sha512-cert.pub")
    expect(cert.role).toBe("user")
    expect(cert.keyId).toBe("hugo")
    expect(cert.principals).toEqual(["user1", "user2"])
    expect(Certificate.forceCommand(cert)).toBe("/bin/ls")
    expect(Certificate.sourceAddress(cert)).toBe("10.0.0.0/8")
    expect(cert.extensions.map((e) => e.name)).toEqual(["permit-X11-forwarding", "permit-agent-forwarding", "permit-pty", "permit-user-rc"])
    expect(Certificate.hasExtension(cert, "permit-port-forwarding")).toBe(false)
    expect(Certificate.forceCommand(authopt("force_command"))).toBe("foo")
  })

  it.each([
    ["all_permit", Certificate.defaultExtensions],
    ["no_permit", []],
    ["no_pty", Certificate.defaultExtensions.filter((e) => e !== "permit-pty")],
    ["no_agentfwd", Certificate.defaultExtensions.filter((e) => e !== "permit-agent-forwarding")],
    ["only_agentfwd", ["permit-agent-forwarding"]],
    ["only_portfwd", ["permit-port-forwarding"]],
    ["only_x11fwd", ["permit-X11-forwarding"]]
  ])("authopt %s grants exactly its extensions", (name, granted) => {
    const cert = authopt(name)
    for (const extension of Certificate.defaultExtensions) {
      expect(Certificate.hasExtension(cert, extension)).toBe(granted.includes(extension))
    }
  })
})

describe("Certificate.check", () => {
  const host = regress("ed25519_1-cert.pub")
  const hostCa = host.signatureKey
  const user = authopt("all_permit")
  const userCa = user.signatureKey
  const inUserValidity = 915200000 // 1999-01-01, the authopt certificates expire end of 1999

  it("accepts a host certificate for one of its principals, while valid, from a trusted CA", () => {
    expect(Certificate.check(host, { role: "host", principal: "host1", authorities: [hostCa], now: IN_2005 })).toBeUndefined()
    expect(Certificate.check(host, { role: "host", principal: "HOST2", authorities: [hostCa], now: IN_2005 })).toBeUndefined()
  })

  it("says why a certificate is refused", () => {
    const other = PrivateKey.generate("ssh-ed25519").publicKey
    const cases: ReadonlyArray<[Certificate.CheckOptions, RegExp]> = [
      [{ role: "user", principal: "host1", authorities: [hostCa], now: IN_2005 }, /a host certificate cannot be used as a user certificate/],
      [{ role: "host", principal: "host1", authorities: [other], now: IN_2005 }, /untrusted CA \(ssh-ed25519 SHA256:/],
      [{ role: "host", principal: "host3", authorities: [hostCa], now: IN_2005 }, /"host3" is not a principal of the certificate \(host1, host2\)/],
      [{ role: "host", principal: "host1", authorities: [hostCa], now: 1600000000 }, /certificate expired at 2010-12-31T23:00:00Z/],
      [{ role: "host", principal: "host1", authorities: [hostCa], now: 900000000 }, /not valid before 1998-12-31T23:00:00Z/]
    ]
    for (const [options, reason] of cases) expect(Certificate.check(host, options)).toMatch(reason)
  })

  it("refuses a CA signature made with SHA-1 unless allowed", () => {
    const cert = regress("rsa_1_sha1-cert.pub")
    const options = { role: "user" as const, principal: "user1", authorities: [cert.signatureKey], now: IN_2005, remoteAddress: "10.1.2.3" }
    expect(Certificate.check(cert, options)).toMatch(/CA signature/)
    expect(Certificate.check(cert, { ...options, caSignatureAlgorithms: ["ssh-rsa"] })).toBeUndefined()
  })

  it("enforces source-address, and refuses unknown critical options", () => {
    const base = { role: "user" as const, principal: "user", authorities: [userCa], now: inUserValidity }
    const sourced = authopt("sourceaddr")
    expect(Certificate.check(sourced, { ...base, remoteAddress: "127.0.0.1" })).toBeUndefined()
    expect(Certificate.check(sourced, { ...base, remoteAddress: "::ffff:127.0.0.1" })).toBeUndefined()
    expect(Certificate.check(sourced, { ...base, remoteAddress: "::1" })).toBeUndefined()
    expect(Certificate.check(sourced, { ...base, remoteAddress: "10.0.0.1" })).toMatch(/source address 10.0.0.1 is not allowed/)
    expect(Certificate.check(sourced, base)).toMatch(/source address \(unknown\) is not allowed/)
    expect(Certificate.check(authopt("bad_sourceaddr"), { ...base, remoteAddress: "127.0.0.1" })).toMatch(/malformed source-address xxxxx/)
    expect(Certificate.check(authopt("unknown_critical"), base)).toMatch(/unsupported critical option blah/)
    expect(Certificate.check(authopt("force_command"), base)).toBeUndefined()
    expect(Certificate.check(authopt("all_permit"), { ...base, principal: "root" })).toMatch(/"root" is not a principal/)
  })

  it("a user certificate must list principals; a host certificate without any is valid for every host", () => {
    const ca = PrivateKey.generate("ssh-ed25519")
    const key = PrivateKey.generate("ecdsa-sha2-nistp256").publicKey
    const anyUser = Certificate.sign({ key, role: "user", keyId: "u" }, ca)
    const anyHost = Certificate.sign({ key, role: "host", keyId: "h" }, ca)
    expect(Certificate.check(anyUser, { role: "user", principal: "me", authorities: [ca.publicKey] })).toMatch(/lists no principals/)
    expect(Certificate.check(anyHost, { role: "host", principal: "db.example.com", authorities: [ca.publicKey] })).toBeUndefined()
  })

  it("matches wildcard principals of host certificates (not of user certificates)", () => {
    const ca = PrivateKey.generate("ssh-ed25519")
    const key = PrivateKey.generate("ssh-ed25519").publicKey
    const wild = Certificate.sign({ key, role: "host", keyId: "h", principals: ["*.example.com"] }, ca)
    const check = (principal: string) => Certificate.check(wild, { role: "host", principal, authorities: [ca.publicKey] })
    expect(check("db.example.com")).toBeUndefined()
    expect(check("example.org")).toMatch(/not a principal/)
    const wildUser = Certificate.sign({ key, role: "user", keyId: "u", principals: ["*"] }, ca)
    expect(Certificate.check(wildUser, { role: "user", principal: "root", authorities: [ca.publicKey] })).toMatch(/not a principal/)
  })
})

describe("Certificate.sign", () => {
  const keys = [
    PrivateKey.generate("ssh-ed25519"),
    PrivateKey.generate("ecdsa-sha2-nistp384"),
    PrivateKey.generate("ssh-rsa", { bits: 2048 })
  ]

  it.each(keys.map((k) => [k.type, k] as const))("issues a %s certificate that parses back with every field", (_, key) => {
    const ca = PrivateKey.generate("ecdsa-sha2-nistp256")
    const cert = Certificate.sign({
      key: key.publicKey,
      role: "user",
      keyId: "deploy@ci",
      principals: ["deploy", "ops"],
      serial: 42n,
      validAfter: 1000n,
      validBefore: 2000n,
      criticalOptions: [Certificate.stringValue("source-address", "10.0.0.0/8"), Certificate.stringValue("force-command", "uptime")],
      comment: "issued"
    }, ca)
    const parsed = Certificate.parseOpenSsh(Certificate.toOpenSsh(cert))
    expect(parsed).toMatchObject({
      type: Certificate.certificateTypes.find((t) => Certificate.signatureAlgorithmOf(t) === key.type),
      role: "user",
      keyId: "deploy@ci",
      principals: ["deploy", "ops"],
      serial: 42n,
      validAfter: 1000n,
      validBefore: 2000n,
      comment: "issued"
    })
    expect(parsed.key.blob).toEqual(key.publicKey.blob)
    // options are written in lexical order, as the format requires
    expect(parsed.criticalOptions.map((o) => o.name)).toEqual(["force-command", "source-address"])
    expect(parsed.extensions.map((o) => o.name)).toEqual([...Certificate.defaultExtensions].sort())
    expect(Certificate.verifySignature(parsed)).toBe(true)
    expect(Certificate.check(parsed, { role: "user", principal: "ops", authorities: [ca.publicKey], now: 1500, remoteAddress: "10.9.9.9" }))
      .toBeUndefined()
  })

  it("signs with the CA algorithm asked for (rsa-sha2-256)", () => {
    const ca = keys[2]!
    const cert = Certificate.sign({ key: keys[0]!.publicKey, role: "host", keyId: "h" }, ca, "rsa-sha2-256")
    expect(new TextDecoder().decode(cert.signature.subarray(4, 16))).toBe("rsa-sha2-256")
    expect(Certificate.verifySignature(cert)).toBe(true)
    expect(Certificate.verifySignature(cert, ["rsa-sha2-512"])).toBe(false)
  })
})

describe("certificate algorithms", () => {
  it("maps between certificate types, algorithms and the plain signature algorithms", () => {
    expect(Certificate.certificateTypeOf("rsa-sha2-512-cert-v01@openssh.com")).toBe("ssh-rsa-cert-v01@openssh.com")
    expect(Certificate.certificateTypeOf("ssh-ed25519")).toBeUndefined()
    expect(Certificate.signatureAlgorithmOf("rsa-sha2-256-cert-v01@openssh.com")).toBe("rsa-sha2-256")
    expect(Certificate.signatureAlgorithmOf("sk-ssh-ed25519-cert-v01@openssh.com")).toBe("sk-ssh-ed25519@openssh.com")
    expect(Certificate.signatureAlgorithmOf("ssh-ed25519")).toBeUndefined()
    expect(Certificate.certificateAlgorithm("ssh-rsa-cert-v01@openssh.com", "rsa-sha2-512")).toBe("rsa-sha2-512-cert-v01@openssh.com")
    expect(Certificate.certificateAlgorithm("ssh-ed25519-cert-v01@openssh.com", "ssh-ed25519")).toBe("ssh-ed25519-cert-v01@openssh.com")
    expect(Certificate.algorithmsFor("ssh-rsa-cert-v01@openssh.com")).toEqual([
      "rsa-sha2-512-cert-v01@openssh.com",
      "rsa-sha2-256-cert-v01@openssh.com",
      "ssh-rsa-cert-v01@openssh.com"
    ])
    for (const a of Certificate.hostKeyAlgorithms) expect(Certificate.isCertificateAlgorithm(a)).toBe(true)
  })

  it("verifies a host key signature made by a certificate's key, under the certificate algorithm", () => {
    const ca = PrivateKey.generate("ssh-ed25519")
    const hostKey = PrivateKey.generate("ssh-rsa", { bits: 2048 })
    const cert = Certificate.sign({ key: hostKey.publicKey, role: "host", keyId: "h" }, ca)
    const data = Uint8Array.of(1, 2, 3)
    const signature = hostKey.sign(data, "rsa-sha2-512")
    expect(Certificate.verifyKeySignature(cert.blob, "rsa-sha2-512-cert-v01@openssh.com", signature, data)).toBe(true)
    expect(Certificate.verifyKeySignature(cert.blob, "rsa-sha2-256-cert-v01@openssh.com", signature, data)).toBe(false)
    expect(Certificate.verifyKeySignature(cert.blob, "ssh-ed25519-cert-v01@openssh.com", signature, data)).toBe(false)
    expect(Certificate.verifyKeySignature(hostKey.publicKey.blob, "rsa-sha2-512", signature, data)).toBe(true)
    expect(Certificate.verifyKeySignature(Uint8Array.of(1), "rsa-sha2-512", signature, data)).toBe(false)
  })
})

describe("bad certificates", () => {
  const valid = [regress("ed25519_1-cert.pub"), regress("rsa_1_sha512-cert.pub"), regress("ecdsa_sk1-cert.pub"), authopt("force_command")]

  it("mutated and truncated blobs parse or throw KeyParseFailed, never anything else", () => {
    fc.assert(fc.property(fc.constantFrom(...valid), fc.nat(), fc.nat(255), fc.nat(), (cert, at, value, cut) => {
      const mutated = cert.blob.slice(0, Math.max(1, cut % (cert.blob.length + 1)))
      mutated[at % mutated.length] = value
      try {
        const parsed = Certificate.fromBlob(mutated)
        // whatever parses is checked, never crashes
        Certificate.check(parsed, { role: parsed.role, authorities: [parsed.signatureKey] })
        return true
      } catch (u) {
        return u instanceof KeyParseFailed
      }
    }), { numRuns: 500 })
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (garbage) => tagOf(() => Certificate.fromBlob(garbage)) === "KeyParseFailed"))
  })

  it("refuses a certificate as CA, duplicate options, trailing bytes, a bad line", () => {
    const ca = PrivateKey.generate("ssh-ed25519")
    const inner = Certificate.sign({ key: PrivateKey.generate("ssh-ed25519").publicKey, role: "host", keyId: "x" }, ca)
    const chained = () => {
      const signed = build((w) => w.raw(inner.signed.subarray(0, inner.signed.length - 4 - ca.publicKey.blob.length)).string(inner.blob))
      return Certificate.fromBlob(build((w) => w.raw(signed).string(ca.sign(signed))))
    }
    expect(() => chained()).toThrow(/a certificate cannot be a CA key/)
    const duplicated = () =>
      Certificate.sign({
        key: ca.publicKey,
        role: "user",
        keyId: "d",
        principals: ["a"],
        extensions: [Certificate.flag("permit-pty"), Certificate.flag("permit-pty")]
      }, ca)
    expect(duplicated).toThrow(/duplicate extension permit-pty/)
  })

  it("names what is wrong with a line", () => {
    expect(() => Certificate.parseOpenSsh("ssh-ed25519-cert-v01@openssh.com !!!")).toThrow(/invalid base64/)
    const cert = regress("ed25519_1-cert.pub")
    expect(() => Certificate.parseOpenSsh(`ssh-rsa-cert-v01@openssh.com ${base64(cert.blob)}`)).toThrow(/does not match/)
    expect(() => Certificate.fromBlob(build((w) => w.raw(cert.blob).byte(0)))).toThrow(/trailing/)
    expect(tagOf(() => Certificate.parseOpenSsh(""))).toBe("KeyParseFailed")
  })
})

// ---------------------------------------------------------------------------------------------------------------
// our client ↔ our server

const hostKey = PrivateKey.generate("ssh-ed25519")
const userCa = PrivateKey.generate("ssh-ed25519", { comment: "user CA" })
const userKey = PrivateKey.generate("ecdsa-sha2-nistp256")

const exec = (session: ServerSession, command: string) =>
  Effect.as(session.write(`${command}|${session.env.SSH_ORIGINAL_COMMAND ?? ""}|${session.remoteAddress}\n`), 0)

const serve = (auth: Partial<SshServer.ServeOptions["auth"]> = {}) =>
  SshServer.serve({
    port: 0,
    hostKeys: [hostKey],
    auth: { certificateAuthorities: [PublicKey.toOpenSsh(userCa.publicKey)], ...auth },
    session: { exec, shell: (session) => Effect.as(Stream.runDrain(session.stdin), 0) }
  })

const connectWith = (port: number, auth: ReadonlyArray<Auth.AuthMethod>, user = "alice") =>
  SshClient.connect({ host: "127.0.0.1", port, username: user, auth, hostKeys: HostKeys.fixed(hostKey.publicKey) })

const issue = (fields: Partial<Certificate.CertificateFields>, key: PrivateKey.PrivateKey = userKey, ca = userCa) =>
  Certificate.sign({ key: key.publicKey, role: "user", keyId: "alice@test", principals: ["alice"], ...fields }, ca)

describe("user certificates between our client and our server", () => {
  it("authenticates with a certificate from a trusted CA, and force-command replaces the command", async () => {
    const out = await runScoped(Effect.gen(function*() {
      const server = yield* serve()
      const plain = yield* connectWith(server.address.port, [Auth.certificate(userKey, Certificate.toOpenSsh(issue({})))])
      const forced = yield* connectWith(server.address.port, [
        Auth.certificate(userKey, issue({ criticalOptions: [Certificate.stringValue("force-command", "backup")] }))
      ])
      return [plain.info.authMethods, (yield* plain.run("hello")).stdout, (yield* forced.run("rm -rf /")).stdout]
    }))
    expect(out).toEqual([["publickey"], "hello||127.0.0.1\n", "backup|rm -rf /|127.0.0.1\n"])
  })

  it("authenticates with an RSA key's certificate (rsa-sha2-512-cert-v01@openssh.com)", async () => {
    const rsa = PrivateKey.generate("ssh-rsa", { bits: 2048 })
    const seen: Array<string> = []
    const out = await runScoped(Effect.gen(function*() {
      const server = yield* serve({ certificate: ({ certificate }) => Effect.sync(() => seen.push(certificate.keyId)).pipe(Effect.as(true)) })
      const ssh = yield* connectWith(server.address.port, [Auth.certificate(rsa, issue({ keyId: "rsa cert" }, rsa))])
      return (yield* ssh.run("id")).stdout
    }))
    expect(out).toBe("id||127.0.0.1\n")
    expect(seen).toEqual(["rsa cert"])
  })

  it.each([
    ["expired", { validBefore: 1000n }],
    ["not yet valid", { validAfter: 4102444800n }],
    ["for another user", { principals: ["bob"] }],
    ["a host certificate", { role: "host" as const }],
    ["from another address", { criticalOptions: [Certificate.stringValue("source-address", "192.0.2.0/24")] }],
    ["with an unknown critical option", { criticalOptions: [Certificate.flag("no-such-option@example.com")] }],
    ["signed by an untrusted CA", { ca: PrivateKey.generate("ssh-ed25519") }]
  ])("refuses a certificate %s", async (_, change) => {
    const { ca, ...fields } = change as Partial<Certificate.CertificateFields> & { ca?: PrivateKey.PrivateKey }
    const e = await runFailure(Effect.gen(function*() {
      const server = yield* serve()
      return yield* connectWith(server.address.port, [Auth.certificate(userKey, issue(fields, userKey, ca ?? userCa))])
    })) as SshError
    expect(e.reason._tag).toBe("AuthFailed")
  })

  it("refuses a certificate whose key is not the one signing, before sending anything", async () => {
    const e = await runFailure(Effect.gen(function*() {
      const server = yield* serve()
      return yield* connectWith(server.address.port, [Auth.certificate(PrivateKey.generate("ecdsa-sha2-nistp256"), issue({}))])
    })) as SshError
    expect(e.reason._tag).toBe("KeyParseFailed")
    expect(e.reason.message).toMatch(/does not certify/)
  })

  it("the server's own checks can refuse an otherwise valid certificate", async () => {
    const e = await runFailure(Effect.gen(function*() {
      const server = yield* serve({ certificate: ({ certificate }) => Effect.succeed(certificate.serial === 7n) })
      return yield* connectWith(server.address.port, [Auth.certificate(userKey, issue({ serial: 6n }))])
    })) as SshError
    expect(e.reason._tag).toBe("AuthFailed")
  })

  it("a certificate without permit-pty gets no pty", async () => {
    const out = await runScoped(Effect.gen(function*() {
      const server = yield* serve()
      const ssh = yield* connectWith(server.address.port, [
        Auth.certificate(userKey, issue({ extensions: [Certificate.flag("permit-agent-forwarding")] }))
      ])
      return yield* Effect.flip(ssh.exec("x", { pty: true }))
    }))
    expect(out.reason._tag).toBe("ChannelRequestFailed")
  })
})

describe("host certificates between our client and a server presenting one", () => {
  const hostCa = PrivateKey.generate("ssh-ed25519")

  it("known_hosts @cert-authority trusts a host certificate for the host name (and refuses a wrong name)", () => {
    const cert = Certificate.sign({ key: hostKey.publicKey, role: "host", keyId: "h", principals: ["db.example.com"] }, hostCa)
    const { entries } = KnownHosts.parse(`@cert-authority *.example.com ${PublicKey.toOpenSsh(hostCa.publicKey)}\n`)
    const check = (host: string): HostKeys.HostKeyCheck => ({ host, port: 22, key: hostKey.publicKey, algorithm: cert.type, certificate: cert })
    expect(HostKeys.checkCertificate(entries, check("db.example.com"), cert)).toBe("trusted")
    expect(HostKeys.checkCertificate(entries, check("web.example.com"), cert)).toMatch(/"web.example.com" is not a principal/)
    // no CA line for this host: the certified key is then checked as a plain key
    expect(HostKeys.checkCertificate(entries, check("db.example.org"), cert)).toBeUndefined()
    const ca = PublicKey.toOpenSsh(hostCa.publicKey)
    const revoked = KnownHosts.parse(`@cert-authority *.example.com ${ca}\n@revoked * ${ca}\n`).entries
    expect(HostKeys.checkCertificate(revoked, check("db.example.com"), cert)).toMatch(/@revoked/)
  })
})
