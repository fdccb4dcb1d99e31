import { p256 } from "@noble/curves/nist.js"
import * as fc from "fast-check"
import { createHash } from "node:crypto"
import { describe, expect, it } from "vitest"
import * as PublicKey from "../../src/Auth/PublicKey.ts"
import { build } from "../../src/Wire/Writer.ts"
import { base64, exists, list, readText, ssh2Result, tagOf } from "./fixtures.ts"

const ED25519_1 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFOG6kY7Rf4UtCFvPwKgo/BztXck2xC4a2WyA34XtIwZ ED25519 test key #1"

/** Key types in the fixtures that we deliberately do not support. */
const unsupported = /^(sk-|ssh-dss|ssh-mldsa44|.*-cert-v01@openssh\.com)/

describe("OpenSSH regress sshkey .pub fixtures", () => {
  const pubs = list("openssh/sshkey").filter((f) => f.endsWith(".pub") && !f.includes(".param."))

  it.each(pubs)("%s parses to the expected type, blob and fingerprint (or is refused if unsupported)", (file) => {
    const line = readText(`openssh/sshkey/${file}`).trim()
    const [type, data, ...comment] = line.split(" ")
    if (unsupported.test(type!)) {
      expect(tagOf(() => PublicKey.parseOpenSsh(line))).toBe("KeyParseFailed")
      return
    }
    const key = PublicKey.parseOpenSsh(line)
    expect(key.type).toBe(type)
    expect(base64(key.blob)).toBe(data)
    expect(key.comment).toBe(comment.join(" "))
    expect(PublicKey.toOpenSsh(key)).toBe(line)
    const fp = `openssh/sshkey/${file.replace(/\.pub$/, ".fp")}`
    if (exists(fp)) expect(PublicKey.fingerprint(key)).toBe(readText(fp).trim())
  })

  it("parses every supported type in the fixtures", () => {
    const types = new Set(
      pubs.flatMap((f) => {
        try {
          return [PublicKey.parseOpenSsh(readText(`openssh/sshkey/${f}`)).type]
        } catch {
          return []
        }
      })
    )
    expect([...types].sort()).toEqual(["ecdsa-sha2-nistp256", "ecdsa-sha2-nistp521", "ssh-ed25519", "ssh-rsa"])
  })

  it("reads parameters matching openssl's extraction (rsa n, ecdsa point)", () => {
    const rsa = PublicKey.parseOpenSsh(readText("openssh/sshkey/rsa_1.pub"))
    const ecdsa = PublicKey.parseOpenSsh(readText("openssh/sshkey/ecdsa_1.pub"))
    if (rsa.type !== "ssh-rsa" || ecdsa.type !== "ecdsa-sha2-nistp256") throw new Error("unexpected types")
    expect(Buffer.from(rsa.n).toString("hex")).toBe(readText("openssh/sshkey/rsa_1.param.n").trim().replace(/^00/, ""))
    expect(Buffer.from(rsa.e).toString("hex")).toBe("010001")
    expect(Buffer.from(ecdsa.point).toString("hex")).toBe(readText("openssh/sshkey/ecdsa_1.param.pub").trim())
    expect(PublicKey.bits(rsa)).toBe(1024)
    expect(PublicKey.bits(PublicKey.parseOpenSsh(readText("openssh/sshkey/rsa_2.pub")))).toBe(2048)
    expect(PublicKey.bits(PublicKey.parseOpenSsh(readText("openssh/sshkey/ecdsa_2.pub")))).toBe(521)
  })
})

describe("OpenSSH regress hostkeys .pub fixtures", () => {
  it.each(list("openssh/hostkeys").filter((f) => f.endsWith(".pub")))("%s", (file) => {
    const text = readText(`openssh/hostkeys/${file}`)
    if (file.startsWith("rsa1_")) {
      // SSH-1 "bits e n" keys are not SSH-2 keys.
      expect(tagOf(() => PublicKey.parseOpenSsh(text))).toBe("KeyParseFailed")
    } else {
      expect(PublicKey.parseOpenSsh(text).type).toBe(text.split(" ")[0])
    }
  })
})

describe("ssh2 keyParser public key fixtures (OpenSSH and RFC 4716)", () => {
  const pubs = list("ssh2/keyParser").filter((f) => f.endsWith(".pub"))

  it.each(pubs)("%s", (file) => {
    const expected = ssh2Result(file)
    const text = readText(`ssh2/keyParser/${file}`)
    if (expected.type === "ssh-dss") {
      expect(tagOf(() => PublicKey.parse(text))).toBe("KeyParseFailed")
      return
    }
    const key = PublicKey.parse(text)
    expect(key.type).toBe(expected.type)
    expect(base64(key.blob)).toBe(expected.publicSSH)
    expect(key.comment ?? "").toBe(expected.comment)
  })
})

describe("fingerprint", () => {
  const key = PublicKey.parseOpenSsh(ED25519_1)

  it("SHA256 matches ssh-keygen -l", () => {
    expect(PublicKey.fingerprint(key)).toBe(readText("openssh/sshkey/ed25519_1.fp").trim())
  })

  it("MD5 is colon-separated hex of the blob's MD5", () => {
    const expected = createHash("md5").update(key.blob).digest("hex").match(/../g)!.join(":")
    expect(PublicKey.fingerprint(key, "md5")).toBe(`MD5:${expected}`)
  })
})

describe("constructors and fromBlob", () => {
  const keys = ["ed25519_1.pub", "ecdsa_1.pub", "ecdsa_2.pub", "rsa_1.pub", "rsa_2.pub"].map((f) =>
    PublicKey.parseOpenSsh(readText(`openssh/sshkey/${f}`))
  )

  it("fromBlob(key.blob) gives back the same key", () => {
    for (const key of keys) {
      const again = PublicKey.fromBlob(key.blob)
      expect(PublicKey.equals(again, key)).toBe(true)
      expect(again).toEqual(PublicKey.withComment(key, undefined))
    }
  })

  it("fromEd25519 / fromEcdsa / fromRsa encode the canonical blob", () => {
    for (const key of keys) {
      const rebuilt = key.type === "ssh-ed25519"
        ? PublicKey.fromEd25519(key.key)
        : key.type === "ssh-rsa"
        ? PublicKey.fromRsa(key.n, key.e)
        : PublicKey.fromEcdsa(key.curve, key.point)
      expect(base64(rebuilt.blob)).toBe(base64(key.blob))
    }
  })

  it("copies the blob, so later changes to the input do not alter the key", () => {
    const blob = keys[0]!.blob.slice()
    const key = PublicKey.fromBlob(blob)
    blob.fill(0)
    expect(PublicKey.equals(key, keys[0]!)).toBe(true)
  })

  it("rejects points off the curve, compressed points, short keys and small RSA moduli", () => {
    const point = p256.getPublicKey(p256.utils.randomSecretKey(), false)
    const offCurve = point.slice()
    offCurve[64]! ^= 1
    expect(tagOf(() => PublicKey.fromEcdsa("nistp256", offCurve))).toBe("KeyParseFailed")
    expect(tagOf(() => PublicKey.fromEcdsa("nistp256", p256.getPublicKey(p256.utils.randomSecretKey(), true)))).toBe(
      "KeyParseFailed"
    )
    expect(tagOf(() => PublicKey.fromEd25519(new Uint8Array(31)))).toBe("KeyParseFailed")
    const n512 = new Uint8Array(64).fill(0xff)
    expect(tagOf(() => PublicKey.fromRsa(n512, new Uint8Array([1, 0, 1])))).toBe("KeyParseFailed")
    const n1024 = new Uint8Array(128).fill(0xff)
    expect(tagOf(() => PublicKey.fromRsa(n1024, new Uint8Array([1, 0, 1])))).toBe("returned")
    expect(tagOf(() => PublicKey.fromRsa(n1024, new Uint8Array([2])))).toBe("KeyParseFailed")
  })

  it("rejects a curve field that disagrees with the type, trailing bytes, unknown types", () => {
    const ecdsa = keys[1]!
    if (ecdsa.type !== "ecdsa-sha2-nistp256") throw new Error("fixture")
    const mismatched = build((w) => w.string("ecdsa-sha2-nistp256").string("nistp384").string(ecdsa.point))
    expect(tagOf(() => PublicKey.fromBlob(mismatched))).toBe("KeyParseFailed")
    const trailing = build((w) => w.raw(ecdsa.blob).byte(0))
    expect(tagOf(() => PublicKey.fromBlob(trailing))).toBe("KeyParseFailed")
    expect(tagOf(() => PublicKey.fromBlob(build((w) => w.string("ssh-dss").string("x"))))).toBe("KeyParseFailed")
  })

  it("garbage blobs throw KeyParseFailed, never another exception", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        expect(["KeyParseFailed", "returned"]).toContain(tagOf(() => PublicKey.fromBlob(bytes)))
      }),
      { numRuns: 2000 }
    )
  })

  it("mutated blobs (byte flips, truncation, extension) throw KeyParseFailed or decode to a valid key", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...keys),
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        fc.constantFrom("flip", "truncate", "extend"),
        (key, at, mask, how) => {
          const blob = key.blob.slice()
          const i = at % blob.length
          const mutated = how === "flip"
            ? (blob[i]! ^= mask, blob)
            : how === "truncate"
            ? blob.subarray(0, i)
            : build((w) => w.raw(blob).byte(mask))
          const tag = tagOf(() => PublicKey.fromBlob(mutated))
          expect(["KeyParseFailed", "returned"]).toContain(tag)
          if (how !== "flip") expect(tag).toBe("KeyParseFailed")
        }
      ),
      { numRuns: 3000 }
    )
  })
})

describe("parseOpenSsh", () => {
  it("keeps comments with spaces, ignores surrounding whitespace", () => {
    const key = PublicKey.parseOpenSsh(`  ${ED25519_1}  \n`)
    expect(key.comment).toBe("ED25519 test key #1")
    expect(PublicKey.parseOpenSsh(ED25519_1.split(" ").slice(0, 2).join(" ")).comment).toBeUndefined()
  })

  it("rejects a type field that disagrees with the blob, bad base64, missing fields", () => {
    expect(tagOf(() => PublicKey.parseOpenSsh(ED25519_1.replace("ssh-ed25519", "ssh-rsa")))).toBe("KeyParseFailed")
    expect(tagOf(() => PublicKey.parseOpenSsh("ssh-ed25519 AAAA*AAA"))).toBe("KeyParseFailed")
    expect(tagOf(() => PublicKey.parseOpenSsh("ssh-ed25519"))).toBe("KeyParseFailed")
    expect(tagOf(() => PublicKey.parseOpenSsh(""))).toBe("KeyParseFailed")
  })

  it("any string gives a key or KeyParseFailed", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (text) => {
        expect(["KeyParseFailed", "returned"]).toContain(tagOf(() => PublicKey.parse(text)))
        expect(["KeyParseFailed", "returned"]).toContain(tagOf(() => PublicKey.parse(`ssh-ed25519 ${text}`)))
      }),
      { numRuns: 1000 }
    )
  })

  it("toOpenSsh ∘ parseOpenSsh is the identity on canonical lines", () => {
    const key = PublicKey.parseOpenSsh(ED25519_1)
    expect(PublicKey.toOpenSsh(key)).toBe(ED25519_1)
    expect(PublicKey.toOpenSsh(key, { comment: "other" })).toBe(ED25519_1.replace("ED25519 test key #1", "other"))
    expect(PublicKey.toOpenSsh(key, { comment: "" })).toBe(ED25519_1.split(" ").slice(0, 2).join(" "))
  })
})

describe("signature algorithms", () => {
  it("maps key types to the algorithms they can sign with, strongest first", () => {
    expect(PublicKey.signatureAlgorithms("ssh-rsa")).toEqual(["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"])
    expect(PublicKey.signatureAlgorithms(PublicKey.parseOpenSsh(ED25519_1))).toEqual(["ssh-ed25519"])
    expect(PublicKey.signatureAlgorithms("ecdsa-sha2-nistp384")).toEqual(["ecdsa-sha2-nistp384"])
  })

  it("maps signature algorithms back to key types", () => {
    expect(PublicKey.keyTypeForSignatureAlgorithm("rsa-sha2-512")).toBe("ssh-rsa")
    expect(PublicKey.keyTypeForSignatureAlgorithm("rsa-sha2-256")).toBe("ssh-rsa")
    expect(PublicKey.keyTypeForSignatureAlgorithm("ssh-rsa")).toBe("ssh-rsa")
    expect(PublicKey.keyTypeForSignatureAlgorithm("ecdsa-sha2-nistp521")).toBe("ecdsa-sha2-nistp521")
    expect(PublicKey.keyTypeForSignatureAlgorithm("ssh-dss")).toBeUndefined()
    expect(PublicKey.keyTypeForSignatureAlgorithm("toString")).toBeUndefined()
    for (const type of PublicKey.keyTypes) {
      for (const alg of PublicKey.signatureAlgorithms(type)) expect(PublicKey.keyTypeForSignatureAlgorithm(alg)).toBe(type)
    }
  })
})

describe("equals", () => {
  it("compares blobs, not comments", () => {
    const a = PublicKey.parseOpenSsh(ED25519_1)
    expect(PublicKey.equals(a, PublicKey.withComment(a, "x"))).toBe(true)
    expect(PublicKey.equals(a, PublicKey.fromBlob(a.blob))).toBe(true)
    expect(PublicKey.equals(a, PublicKey.parseOpenSsh(readText("openssh/sshkey/ed25519_2.pub")))).toBe(false)
    expect(PublicKey.equals(a, PublicKey.parseOpenSsh(readText("openssh/sshkey/rsa_1.pub")))).toBe(false)
  })
})
