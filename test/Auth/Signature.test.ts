import { p256 } from "@noble/curves/nist.js"
import * as fc from "fast-check"
import * as crypto from "node:crypto"
import { describe, expect, it } from "vitest"
import * as PrivateKey from "../../src/Auth/PrivateKey.ts"
import * as PublicKey from "../../src/Auth/PublicKey.ts"
import * as Signature from "../../src/Auth/Signature.ts"
import { Reader } from "../../src/Wire/Reader.ts"
import { build } from "../../src/Wire/Writer.ts"
import { readText, tagOf } from "./fixtures.ts"

const utf8 = (s: string) => new TextEncoder().encode(s)

/** Decodes an armored SSHSIG (PROTOCOL.sshsig) and rebuilds the data OpenSSH signed. */
const sshsig = (name: string) => {
  const armored = readText(`openssh/sshsig/${name}.sig`)
  const body = armored.replace(/-----[A-Z ]+-----/g, "").replace(/\s+/g, "")
  const r = new Reader(new Uint8Array(Buffer.from(body, "base64")))
  expect(new TextDecoder().decode(r.raw(6))).toBe("SSHSIG")
  expect(r.uint32()).toBe(1)
  const publicKey = PublicKey.fromBlob(r.string())
  const namespace = r.string()
  const reserved = r.string()
  const hashAlgorithm = r.name()
  const signature = r.string().slice()
  r.end()
  const message = new Uint8Array(Buffer.from(readText("openssh/sshsig/signed-data")))
  const digest = crypto.createHash(hashAlgorithm).update(message).digest()
  const signed = build((w) =>
    w.raw(utf8("SSHSIG")).string(namespace).string(reserved).string(hashAlgorithm).string(new Uint8Array(digest))
  )
  return { publicKey, namespace, signature, signed }
}

describe("verify against signatures made by OpenSSH (SSHSIG fixtures)", () => {
  it.each(["ed25519", "ecdsa", "rsa"])("%s", (name) => {
    const { namespace, publicKey, signature, signed } = sshsig(name)
    expect(new TextDecoder().decode(namespace)).toBe(readText("openssh/sshsig/namespace").trim())
    expect(PublicKey.equals(publicKey, PublicKey.parseOpenSsh(readText(`openssh/sshsig/${name}.pub`)))).toBe(true)
    expect(Signature.verify(publicKey, signature, signed)).toBe(true)
    const tampered = signed.slice()
    tampered[tampered.length - 1]! ^= 1
    expect(Signature.verify(publicKey, signature, tampered)).toBe(false)
  })

  it("the RSA fixture is rsa-sha2-512 and is refused when only rsa-sha2-256 is allowed", () => {
    const { publicKey, signature, signed } = sshsig("rsa")
    expect(Signature.decodeSignature(signature).algorithm).toBe("rsa-sha2-512")
    expect(Signature.verify(publicKey, signature, signed, ["rsa-sha2-512"])).toBe(true)
    expect(Signature.verify(publicKey, signature, signed, ["rsa-sha2-256", "ssh-rsa"])).toBe(false)
  })

  it("a signature from one key fails with another", () => {
    const ed = sshsig("ed25519")
    const other = PublicKey.parseOpenSsh(readText("openssh/sshkey/ed25519_1.pub"))
    expect(Signature.verify(other, ed.signature, ed.signed)).toBe(false)
    const ec = sshsig("ecdsa")
    const otherEc = PublicKey.parseOpenSsh(readText("openssh/sshkey/ecdsa_1.pub"))
    expect(Signature.verify(otherEc, ec.signature, ec.signed)).toBe(false)
    const rsa = sshsig("rsa")
    const otherRsa = PublicKey.parseOpenSsh(readText("openssh/sshkey/rsa_2.pub"))
    expect(Signature.verify(otherRsa, rsa.signature, rsa.signed)).toBe(false)
  })
})

describe("sign / verify round trip", () => {
  const keys = [
    PrivateKey.parse(readText("openssh/sshkey/ed25519_1")),
    PrivateKey.parse(readText("openssh/sshkey/ecdsa_1")),
    PrivateKey.parse(readText("openssh/sshkey/ecdsa_2")),
    PrivateKey.parse(readText("openssh/sshkey/rsa_1")),
    PrivateKey.generate("ecdsa-sha2-nistp384")
  ]
  const data = utf8("exchange hash stand-in")

  it.each(keys.flatMap((k) => PublicKey.signatureAlgorithms(k.publicKey).map((alg) => [alg, k] as const)))(
    "%s",
    (algorithm, key) => {
      const blob = key.sign(data, algorithm)
      expect(Signature.decodeSignature(blob).algorithm).toBe(algorithm)
      expect(Signature.verify(key.publicKey, blob, data)).toBe(true)
      expect(Signature.verify(key.publicKey, blob, data, [algorithm])).toBe(true)
      expect(Signature.verify(key.publicKey, blob, utf8("other data"))).toBe(false)
      expect(Signature.verify(key.publicKey, blob, data, ["something-else"])).toBe(false)
      for (const other of keys) {
        if (other !== key) expect(Signature.verify(other.publicKey, blob, data)).toBe(false)
      }
    }
  )

  it("RSA signatures are relabelled at the verifier's peril: the algorithm name is bound to the hash", () => {
    const rsa = keys[3]!
    const raw = Signature.decodeSignature(rsa.sign(data, "rsa-sha2-512")).raw
    expect(Signature.verify(rsa.publicKey, Signature.encodeSignature("rsa-sha2-256", raw), data)).toBe(false)
    expect(Signature.verify(rsa.publicKey, Signature.encodeSignature("ssh-rsa", raw), data)).toBe(false)
  })

  it("an algorithm the key cannot produce is refused both ways", () => {
    const ed = keys[0]!
    const raw = Signature.decodeSignature(ed.sign(data)).raw
    expect(Signature.verify(ed.publicKey, Signature.encodeSignature("ssh-rsa", raw), data)).toBe(false)
    expect(tagOf(() => ed.sign(data, "rsa-sha2-256"))).toBe("UnknownAlgorithm")
    expect(tagOf(() => keys[3]!.sign(data, "ssh-ed25519"))).toBe("UnknownAlgorithm")
  })

  it("accepts an RSA signature whose leading zero bytes were stripped, as OpenSSH does", () => {
    const rsa = keys[3]!
    let raw: Uint8Array | undefined
    for (let i = 0; raw === undefined; i++) {
      const candidate = Signature.decodeSignature(rsa.sign(utf8(`message ${i}`))).raw
      if (candidate[0] === 0) raw = candidate
      if (raw !== undefined) {
        const stripped = Signature.encodeSignature("rsa-sha2-512", raw.subarray(1))
        expect(Signature.verify(rsa.publicKey, stripped, utf8(`message ${i}`))).toBe(true)
      }
    }
    const tooLong = Signature.encodeSignature("rsa-sha2-512", new Uint8Array(129))
    expect(Signature.verify(rsa.publicKey, tooLong, data)).toBe(false)
  })

  it("accepts high-S ECDSA signatures (OpenSSH does not require low S)", () => {
    const secret = p256.utils.randomSecretKey()
    const key = PublicKey.fromEcdsa("nistp256", p256.getPublicKey(secret, false))
    const sig = p256.Signature.fromBytes(p256.sign(data, secret))
    const highS = new p256.Signature(sig.r, p256.Point.CURVE().n - sig.s).toBytes()
    const blob = Signature.encodeSignature("ecdsa-sha2-nistp256", Signature.ecdsaRawFromCompact(highS))
    expect(Signature.verify(key, blob, data)).toBe(true)
  })
})

describe("ECDSA agrees with node:crypto (OpenSSL) on every curve and hash", () => {
  const curves = [
    ["ecdsa-sha2-nistp256", "prime256v1", "sha256", 32],
    ["ecdsa-sha2-nistp384", "secp384r1", "sha384", 48],
    ["ecdsa-sha2-nistp521", "secp521r1", "sha512", 66]
  ] as const
  const data = utf8("cross-check")

  it.each(curves)("%s", (type, namedCurve, hash, size) => {
    // OpenSSL signs, we verify.
    const { privateKey, publicKey } = crypto.generateKeyPairSync("ec", { namedCurve })
    const point = new Uint8Array(publicKey.export({ format: "der", type: "spki" }).subarray(-(1 + 2 * size)))
    const key = PublicKey.fromEcdsa(PublicKey.curveOf(type), point)
    const compact = new Uint8Array(crypto.sign(hash, data, { key: privateKey, dsaEncoding: "ieee-p1363" }))
    expect(Signature.verify(key, Signature.encodeSignature(type, Signature.ecdsaRawFromCompact(compact)), data)).toBe(true)
    // We sign, OpenSSL verifies.
    const ours = PrivateKey.generate(type)
    const raw = Signature.decodeSignature(ours.sign(data)).raw
    if (ours.publicKey.type !== type) throw new Error("type")
    const spki = crypto.createPublicKey({
      key: {
        kty: "EC",
        crv: PublicKey.ecdsaCurves[PublicKey.curveOf(type)].jwk,
        x: Buffer.from((ours.publicKey as PublicKey.EcdsaPublicKey).point.subarray(1, 1 + size)).toString("base64url"),
        y: Buffer.from((ours.publicKey as PublicKey.EcdsaPublicKey).point.subarray(1 + size)).toString("base64url")
      },
      format: "jwk"
    })
    const ourCompact = Signature.ecdsaCompactFromRaw(raw, size)!
    expect(crypto.verify(hash, data, { key: spki, dsaEncoding: "ieee-p1363" }, ourCompact)).toBe(true)
  })
})

describe("codecs", () => {
  it("decodeSignature ∘ encodeSignature = id", () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[a-z0-9@.-]{1,40}$/), fc.uint8Array({ maxLength: 600 }), (algorithm, raw) => {
        const decoded = Signature.decodeSignature(Signature.encodeSignature(algorithm, raw))
        expect(decoded.algorithm).toBe(algorithm)
        expect([...decoded.raw]).toEqual([...raw])
      })
    )
  })

  it("ECDSA raw ↔ compact round-trips for every size", () => {
    fc.assert(
      fc.property(fc.constantFrom(32, 48, 66), fc.uint8Array({ minLength: 132, maxLength: 132 }), (size, bytes) => {
        const compact = bytes.subarray(0, 2 * size)
        expect([...Signature.ecdsaCompactFromRaw(Signature.ecdsaRawFromCompact(compact), size)!]).toEqual([...compact])
      })
    )
  })

  it("ecdsaCompactFromRaw refuses oversized or negative integers", () => {
    const big = build((w) => w.mpintFromUnsigned(new Uint8Array(33).fill(1)).mpintFromUnsigned(new Uint8Array([1])))
    expect(Signature.ecdsaCompactFromRaw(big, 32)).toBeUndefined()
    const negative = build((w) => w.mpint(-5n).mpint(5n))
    expect(Signature.ecdsaCompactFromRaw(negative, 32)).toBeUndefined()
  })

  it("decodeSignature rejects truncated and trailing data with a ProtocolError", () => {
    const blob = Signature.encodeSignature("ssh-ed25519", new Uint8Array(64))
    expect(tagOf(() => Signature.decodeSignature(blob.subarray(0, blob.length - 1)))).toBe("ProtocolError")
    expect(tagOf(() => Signature.decodeSignature(build((w) => w.raw(blob).byte(0))))).toBe("ProtocolError")
  })
})

describe("verify never throws", () => {
  const keys = [
    PublicKey.parseOpenSsh(readText("openssh/sshkey/ed25519_1.pub")),
    PublicKey.parseOpenSsh(readText("openssh/sshkey/ecdsa_2.pub")),
    PublicKey.parseOpenSsh(readText("openssh/sshkey/rsa_1.pub"))
  ]

  it("on random signature blobs", () => {
    fc.assert(
      fc.property(fc.constantFrom(...keys), fc.uint8Array({ maxLength: 300 }), (key, blob) => {
        expect(Signature.verify(key, blob, utf8("data"))).toBe(false)
      }),
      { numRuns: 1000 }
    )
  })

  it("on well-framed blobs with random raw parts", () => {
    fc.assert(
      fc.property(fc.constantFrom(...keys), fc.uint8Array({ maxLength: 300 }), (key, raw) => {
        for (const algorithm of PublicKey.signatureAlgorithms(key)) {
          expect(Signature.verify(key, Signature.encodeSignature(algorithm, raw), utf8("data"))).toBe(false)
        }
      }),
      { numRuns: 300 }
    )
  })

  it("on mutations of valid signatures", () => {
    const signers = [
      PrivateKey.parse(readText("openssh/sshkey/ed25519_1")),
      PrivateKey.parse(readText("openssh/sshkey/ecdsa_2")),
      PrivateKey.parse(readText("openssh/sshkey/rsa_1"))
    ]
    const data = utf8("data")
    const signatures = signers.map((k) => [k.publicKey, k.sign(data)] as const)
    fc.assert(
      fc.property(fc.constantFrom(...signatures), fc.nat(), fc.integer({ min: 1, max: 255 }), ([key, blob], at, mask) => {
        const mutated = blob.slice()
        mutated[at % mutated.length]! ^= mask
        expect(Signature.verify(key, mutated, data)).toBe(false)
      }),
      { numRuns: 500 }
    )
  })
})
