import * as fc from "fast-check"
import { createHash } from "node:crypto"
import { describe, expect, it } from "vitest"
import * as SecurityKey from "../../src/internal/securityKey.ts"
import { Reader } from "../../src/Wire/Reader.ts"
import { build } from "../../src/Wire/Writer.ts"
import { dummySecurityKey } from "../Auth/agentFixtures.ts"
import { list, readText, tagOf } from "../Auth/fixtures.ts"

/** An SSHSIG signature (PROTOCOL.sshsig) from the OpenSSH regress suite: the key, and the sk signature over its signed data. */
const sshsig = (name: string) => {
  const armored = readText(`openssh/sshsig/${name}.sig`).replace(/-----[^-]+-----/g, "").replace(/\s+/g, "")
  const r = new Reader(new Uint8Array(Buffer.from(armored, "base64")), "SSHSIG".length)
  r.uint32()
  const key = SecurityKey.fromBlob(r.string())
  const namespace = r.string()
  r.string()
  const hash = r.name()
  const signature = r.string().slice()
  const message = new Uint8Array(Buffer.from(readText("openssh/sshsig/signed-data")))
  const signed = build((w) =>
    w.raw(new TextEncoder().encode("SSHSIG")).string(namespace).string(new Uint8Array(0)).string(hash)
      .string(createHash(hash).update(message).digest())
  )
  return { key, signature, signed }
}

describe("security key public keys", () => {
  const pubs = list("openssh/sshkey").filter((f) => f.includes("_sk") && f.endsWith(".pub") && !f.includes("-cert"))

  it.each(pubs)("%s parses with its application and fingerprint", (file) => {
    const line = readText(`openssh/sshkey/${file}`).trim()
    const key = SecurityKey.parseOpenSsh(line)
    expect(key.type).toBe(line.split(" ")[0])
    expect(key.application).toBe("ssh:")
    expect(key.comment).toMatch(/-SK test key #\d/)
    expect(SecurityKey.fingerprint(key)).toBe(readText(`openssh/sshkey/${file.replace(/\.pub$/, ".fp")}`).trim())
  })

  it("refuses other key types and garbage with KeyParseFailed", () => {
    expect(tagOf(() => SecurityKey.parseOpenSsh(readText("openssh/sshkey/ed25519_1.pub")))).toBe("KeyParseFailed")
    fc.assert(fc.property(fc.uint8Array({ maxLength: 160 }), (bytes) => tagOf(() => SecurityKey.fromBlob(bytes)) === "KeyParseFailed"))
    const blob = SecurityKey.parseOpenSsh(readText("openssh/sshkey/ecdsa_sk1.pub")).blob
    fc.assert(fc.property(fc.nat(), fc.nat(255), (at, value) => {
      const mutated = blob.slice()
      mutated[at % mutated.length] = value
      const tag = tagOf(() => SecurityKey.fromBlob(mutated))
      return tag === "KeyParseFailed" || tag === "returned"
    }))
  })
})

describe("security key signatures (PROTOCOL.u2f)", () => {
  it.each(["ed25519_sk", "ecdsa_sk"])("the regress %s SSHSIG signature verifies with its flags and counter", (name) => {
    const { key, signature, signed } = sshsig(name)
    expect(SecurityKey.verify(key, signature, signed)).toEqual({ flags: 1, counter: 0x12345678, userPresent: true, userVerified: false })
    expect(SecurityKey.verify(key, signature, signed.subarray(1))).toBeUndefined()
  })

  it("a flipped flag, counter or signature byte does not verify; garbage never throws", () => {
    const { key, signature, signed } = sshsig("ecdsa_sk")
    for (const at of [signature.length - 5, signature.length - 1, signature.length - 20]) {
      const mutated = signature.slice()
      mutated[at]! ^= 0x04
      expect(SecurityKey.verify(key, mutated, signed)).toBeUndefined()
    }
    fc.assert(fc.property(fc.uint8Array({ maxLength: 120 }), (garbage) => SecurityKey.verify(key, garbage, signed) === undefined))
  })

  it.each(["ecdsa_sk1", "ed25519_sk1"])("signatures of the sk-dummy key %s verify, and report user verification", (name) => {
    const sk = dummySecurityKey(name)
    const data = Uint8Array.of(1, 2, 3)
    expect(SecurityKey.verify(sk.key, sk.sign(data), data)?.userPresent).toBe(true)
    const verified = SecurityKey.verify(sk.key, sk.sign(data, SecurityKey.FLAG_USER_PRESENT | SecurityKey.FLAG_USER_VERIFIED), data)
    expect(verified).toMatchObject({ userPresent: true, userVerified: true, counter: 2 })
    expect(SecurityKey.verify(sk.key, sk.sign(data, 0), data)).toMatchObject({ userPresent: false })
    // a signature of the other sk type is refused
    const other = dummySecurityKey(name.startsWith("ecdsa") ? "ed25519_sk1" : "ecdsa_sk1")
    expect(SecurityKey.verify(sk.key, other.sign(data), data)).toBeUndefined()
  })
})
