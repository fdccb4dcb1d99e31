/**
 * PuTTY .ppk v2 and v3: ssh2's keyParser fixtures (with their `.result`
 * files) and puttygen-made keys from sshj and phpseclib (test/Auth/fixtures/ppk,
 * see its README), encrypted ones with their passphrases; mutated files give
 * typed reasons, never another exception.
 */
import * as fc from "fast-check"
import { readFileSync } from "node:fs"
import { describe, expect, it } from "vitest"
import * as Ppk from "../../src/Auth/Ppk.ts"
import * as PrivateKey from "../../src/Auth/PrivateKey.ts"
import * as PublicKey from "../../src/Auth/PublicKey.ts"
import * as Signature from "../../src/Auth/Signature.ts"
import { isSshErrorReason } from "../../src/SshError.ts"
import { Reader } from "../../src/Wire/Reader.ts"
import { build } from "../../src/Wire/Writer.ts"
import { base64, readText, ssh2Result, tagOf, thrown } from "./fixtures.ts"

const local = (name: string): string => readFileSync(new URL(`./fixtures/ppk/${name}`, import.meta.url), "utf8")
const data = new TextEncoder().encode("signed by a PuTTY key")

const fields = (key: PrivateKey.PrivateKey): string => base64(build((w) => PrivateKey.writePrivateFields(w, key)))

/**
 * The public key blob of an openssh-key-v1 file, read by hand: sshj's copy was exported by puttygen
 * with 10 bytes of padding, which OpenSSH accepts but `PrivateKey.parse` refuses (longer than a block).
 */
const openSshPublicBlob = (text: string): Uint8Array => {
  const body = text.replace(/-----[^-]+-----/g, "").replace(/\s+/g, "")
  const r = new Reader(new Uint8Array(Buffer.from(body, "base64")))
  r.raw(15)
  r.string()
  r.string()
  r.string()
  r.uint32()
  return r.string()
}

const expectSigns = (key: PrivateKey.PrivateKey) => {
  for (const algorithm of PublicKey.signatureAlgorithms(key.publicKey)) {
    expect(Signature.verify(key.publicKey, key.sign(data, algorithm), data)).toBe(true)
  }
}

describe("ssh2 keyParser .ppk fixtures", () => {
  it("ppk_rsa (v2, unencrypted) parses to its .result public key and comment", () => {
    const expected = ssh2Result("ppk_rsa")
    const key = PrivateKey.parse(readText("ssh2/keyParser/ppk_rsa"))
    expect(key.type).toBe(expected.type)
    expect(key.comment).toBe(expected.comment)
    expect(base64(key.publicKey.blob)).toBe(expected.publicSSH)
    expectSigns(key)
  })

  it("ppk_rsa_enc (v2, aes256-cbc): passphrase required, wrong passphrase, then the MAC verifies", () => {
    const text = readText("ssh2/keyParser/ppk_rsa_enc")
    expect(tagOf(() => PrivateKey.parse(text))).toBe("PassphraseRequired")
    expect(tagOf(() => PrivateKey.parse(text, "not node.js"))).toBe("WrongPassphrase")
    // The right passphrase decrypts and authenticates the file; the key itself is a 1023-bit RSA
    // modulus, below OpenSSH's 1024-bit minimum, so it is refused like sshkey_from_blob refuses it.
    const error = thrown(() => PrivateKey.parse(text, "node.js"))
    expect(isSshErrorReason(error) && error._tag).toBe("KeyParseFailed")
    expect(String((error as { message: string }).message)).toMatch(/1023 bits/)
    expect(ssh2Result("ppk_rsa_enc").publicSSH.startsWith("AAAAB3NzaC1yc2EAAAABJQAAAIBrBWET")).toBe(true)
  })

  it("ppk_dsa_enc (ssh-dss) is refused with KeyParseFailed", () => {
    const text = readText("ssh2/keyParser/ppk_dsa_enc")
    expect(tagOf(() => PrivateKey.parse(text, "node.js"))).toBe("KeyParseFailed")
    expect(ssh2Result("ppk_dsa_enc").type).toBe("ssh-dss")
  })
})

describe("puttygen keys from sshj and phpseclib", () => {
  it.each([
    ["sshj_ed25519_v2.ppk", "sshj_ed25519.pub"],
    ["sshj_ecdsa521_v2.ppk", "sshj_ecdsa521.pub"]
  ])("%s (v2, unencrypted) is the key of %s", (file, pub) => {
    const key = PrivateKey.parse(local(file))
    const expected = PublicKey.parseOpenSsh(local(pub))
    expect(base64(key.publicKey.blob)).toBe(base64(expected.blob))
    expect(key.comment).toBe("root@sshj")
    expectSigns(key)
  })

  it("sshj_ed25519_v2_enc.ppk (v2, aes256-cbc) needs 123456 and is the same key as the unencrypted copy", () => {
    const text = local("sshj_ed25519_v2_enc.ppk")
    expect(tagOf(() => PrivateKey.parse(text))).toBe("PassphraseRequired")
    expect(tagOf(() => PrivateKey.parse(text, "654321"))).toBe("WrongPassphrase")
    const key = PrivateKey.parse(text, "123456")
    expect(fields(key)).toBe(fields(PrivateKey.parse(local("sshj_ed25519_v2.ppk"))))
    expectSigns(key)
  })

  it("sshj_ecdsa256_v3.ppk (v3, unencrypted: HMAC-SHA-256 with an empty key)", () => {
    const ppk = Ppk.decode(local("sshj_ecdsa256_v3.ppk"))
    expect(ppk).toMatchObject({ version: 3, encrypted: false, comment: "ecdsa-key-20210819" })
    const key = PrivateKey.parse(local("sshj_ecdsa256_v3.ppk"))
    expect(PublicKey.fingerprint(key.publicKey)).toBe(PublicKey.fingerprint(ppk.publicKey))
    expect(key.type).toBe("ecdsa-sha2-nistp256")
    expectSigns(key)
  })

  it.each(["argon2id", "argon2i", "argon2d"])("sshj_rsa_v3_%s.ppk decrypts with changeit to the key of sshj's openssh-key-v1 copy", (flavour) => {
    const text = local(`sshj_rsa_v3_${flavour}.ppk`)
    expect(tagOf(() => PrivateKey.parse(text))).toBe("PassphraseRequired")
    const key = PrivateKey.parse(text, "changeit")
    expect(base64(key.publicKey.blob)).toBe(base64(openSshPublicBlob(local("sshj_rsa_putty_priv.openssh2"))))
    expect(key.comment).toBe("rsa-key-20210926")
    expectSigns(key)
  })

  it("a wrong passphrase on a v3 file is WrongPassphrase (the Argon2-derived MAC key differs)", () => {
    expect(tagOf(() => PrivateKey.parse(local("sshj_rsa_v3_argon2i.ppk"), "changeme"))).toBe("WrongPassphrase")
  })

  it("phpseclib's v3 pair: the encrypted file (passphrase demo) holds the unencrypted file's key", () => {
    const plain = PrivateKey.parse(local("phpseclib_rsa_v3.ppk"))
    const text = local("phpseclib_rsa_v3_enc.ppk")
    expect(tagOf(() => PrivateKey.parse(text, "Demo"))).toBe("WrongPassphrase")
    const decrypted = PrivateKey.parse(text, new TextEncoder().encode("demo"))
    expect(fields(decrypted)).toBe(fields(plain))
    expect(Ppk.decode(text, "demo")).toMatchObject({ version: 3, encrypted: true, comment: "rsa-key-20220216" })
  })

  it("CRLF line endings are accepted", () => {
    const key = PrivateKey.parse(local("sshj_ed25519_v2.ppk").replace(/\n/g, "\r\n"))
    expect(key.type).toBe("ssh-ed25519")
  })
})

describe("bad .ppk files", () => {
  const v2 = local("sshj_ed25519_v2.ppk")
  const v3 = local("sshj_ecdsa256_v3.ppk")
  const v2Encrypted = local("sshj_ed25519_v2_enc.ppk")
  const argonHeader = local("sshj_rsa_v3_argon2i.ppk")

  it("a changed MAC in an unencrypted file is KeyParseFailed (corrupt), not a wrong passphrase", () => {
    const tampered = v2.replace("Private-MAC: 388f", "Private-MAC: 488f")
    expect(tagOf(() => PrivateKey.parse(tampered))).toBe("KeyParseFailed")
  })

  it("a changed comment breaks the MAC", () => {
    expect(tagOf(() => PrivateKey.parse(v3.replace("ecdsa-key-20210819", "ecdsa-key-20210820")))).toBe("KeyParseFailed")
  })

  it.each([
    ["version 1", v2.replace("File-2", "File-1")],
    ["version 4", v2.replace("File-2", "File-4")],
    ["ssh-ed448", v2.replace("File-2: ssh-ed25519", "File-2: ssh-ed448")],
    ["header type differs from the blob", v3.replace("nistp256\n", "nistp384\n")],
    ["unknown encryption", v2.replace("Encryption: none", "Encryption: aes128-cbc")],
    ["huge Public-Lines", v2.replace("Public-Lines: 2", "Public-Lines: 999999")],
    ["non-numeric Private-Lines", v2.replace("Private-Lines: 1", "Private-Lines: x")],
    ["Argon2 memory above the limit", argonHeader.replace("Argon2-Memory: 1024", "Argon2-Memory: 4194304")],
    ["Argon2 work above the limit", argonHeader.replace("Argon2-Passes: 5", "Argon2-Passes: 100000")],
    ["unknown key derivation", argonHeader.replace("Argon2i", "scrypt")],
    ["odd salt", argonHeader.replace("Argon2-Salt: 2845", "Argon2-Salt: 845")],
    ["trailing lines", `${v2}garbage\n`],
    ["missing MAC", v2.slice(0, v2.indexOf("Private-MAC"))]
  ])("%s → KeyParseFailed", (_name, text) => {
    expect(tagOf(() => PrivateKey.parse(text, "changeit"))).toBe("KeyParseFailed")
  })

  it("every truncation is a typed reason", () => {
    for (const text of [v2, v3, v2Encrypted]) {
      for (let cut = 0; cut < text.length; cut += 3) {
        const error = thrown(() => PrivateKey.parse(text.slice(0, cut), "123456"))
        if (cut < text.trimEnd().length) expect(isSshErrorReason(error) && error._tag, `cut at ${cut}`).toBe("KeyParseFailed")
        else expect(error).toBeUndefined()
      }
    }
  })

  it("mutated files (fast-check) parse or throw a reason, never another exception", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(v2, v3, v2Encrypted),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 32, max: 126 })), { minLength: 1, maxLength: 4 }),
        (text, edits) => {
          const chars = [...text]
          for (const [at, code] of edits) chars[at % chars.length] = String.fromCharCode(code)
          const error = thrown(() => PrivateKey.parse(chars.join(""), "123456"))
          return error === undefined || isSshErrorReason(error)
        }
      ),
      { numRuns: 400 }
    )
  })

  it("random text after the title line is a typed reason", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), (rest) => {
        const error = thrown(() => Ppk.decode(`PuTTY-User-Key-File-3: ssh-ed25519\n${rest}`, "x"))
        return isSshErrorReason(error)
      })
    )
  })
})
