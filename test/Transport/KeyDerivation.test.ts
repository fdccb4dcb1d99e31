import { readFileSync } from "node:fs"
import { describe, expect, it } from "vitest"
import { ProtocolError } from "../../src/SshError.ts"
import { fromHex, toHex } from "../../src/internal/bytes.ts"
import type { KexHash } from "../../src/Transport/kex/Exchange.ts"
import { deriveKey, deriveSessionKeys, type KeyLetter } from "../../src/Transport/KeyDerivation.ts"
import { thrownReason } from "../Wire/throws.ts"

interface Vector {
  readonly hash: KexHash
  readonly K: Uint8Array
  readonly H: Uint8Array
  readonly sessionId: Uint8Array
  readonly letter: KeyLetter
  readonly output: string
}

const digests: Record<string, KexHash | undefined> = {
  SHA1: "sha1",
  SHA256: "sha256",
  SHA384: "sha384",
  SHA512: "sha512"
}

/**
 * NIST CAVS 14.1 SSHKDF vectors as OpenSSL ships them (evpkdf_ssh.txt). Blocks
 * marked as OpenSSL negative or FIPS-indicator tests (Result / Unapproved /
 * FIPSversion) and digests SSH does not use (SHA224, SHA512-256, SHAKE) are skipped.
 */
const vectors: ReadonlyArray<Vector> = readFileSync(
  new URL("../../../shared/specs/testdata/vectors/openssl-evpkdf_ssh.txt", import.meta.url),
  "utf8"
)
  .split(/\n\s*\n/)
  .flatMap((block): Array<Vector> => {
    const fields = new Map<string, string>()
    for (const line of block.split("\n")) {
      const match = /^([A-Za-z.\-_]+) = (.*)$/.exec(line.trim())
      if (match) fields.set(match[1]!, match[2]!)
    }
    if (fields.get("KDF") !== "SSHKDF" || ["Result", "Unapproved", "FIPSversion"].some((k) => fields.has(k))) {
      return []
    }
    const value = (key: string) => fields.get(`Ctrl.${key}`)?.split(":")[1]
    const hash = digests[value("digest") ?? ""]
    const [K, H, sessionId, letter, output] = [
      value("hexkey"),
      value("hexxcghash"),
      value("hexsession_id"),
      value("type"),
      fields.get("Output")
    ]
    if (!hash || !K || !H || !sessionId || !letter || !output) return []
    return [{ hash, K: fromHex(K), H: fromHex(H), sessionId: fromHex(sessionId), letter: letter as KeyLetter, output }]
  })

describe("deriveKey (RFC 4253 §7.2)", () => {
  it("parses the vector file", () => {
    const count = (hash: KexHash) => vectors.filter((v) => v.hash === hash).length
    expect(count("sha1")).toBe(120)
    expect(count("sha256")).toBe(120)
    expect(count("sha384")).toBe(120)
    expect(count("sha512")).toBe(120)
  })

  it("matches every NIST CAVS SSHKDF vector (SHA-1, SHA-256, SHA-384, SHA-512)", () => {
    for (const v of vectors) {
      const out = deriveKey(v.hash, v.K, v.H, v.letter, v.sessionId, v.output.length / 2)
      expect(toHex(out), `${v.hash} ${v.letter} ${toHex(v.H).slice(0, 16)}`).toBe(v.output.toLowerCase())
    }
  })

  it("vectors cover keys longer than one hash block (K1 || K2 ...)", () => {
    const long = vectors.filter((v) => v.output.length / 2 > { sha1: 20, sha256: 32, sha384: 48, sha512: 64 }[v.hash])
    expect(long.length).toBeGreaterThanOrEqual(20)
  })

  it("extends consistently: a shorter key is a prefix of a longer one", () => {
    const v = vectors.find((x) => x.hash === "sha256")!
    const long = deriveKey("sha256", v.K, v.H, "C", v.sessionId, 200)
    const short = deriveKey("sha256", v.K, v.H, "C", v.sessionId, 40)
    expect(toHex(long.subarray(0, 40))).toBe(toHex(short))
    expect(deriveKey("sha256", v.K, v.H, "C", v.sessionId, 0).length).toBe(0)
  })

  it("rejects absurd lengths with a reason", () => {
    const v = vectors[0]!
    for (const length of [-1, 1.5, 1 << 20]) {
      thrownReason(ProtocolError, () => deriveKey(v.hash, v.K, v.H, "A", v.sessionId, length))
    }
  })

  it("deriveSessionKeys uses letters A to F", () => {
    const v = vectors.find((x) => x.hash === "sha512")!
    const keys = deriveSessionKeys("sha512", v.K, v.H, v.sessionId, {
      ivClientToServer: 16,
      ivServerToClient: 12,
      encryptionClientToServer: 32,
      encryptionServerToClient: 64,
      integrityClientToServer: 0,
      integrityServerToClient: 100
    })
    expect(toHex(keys.encryptionServerToClient)).toBe(toHex(deriveKey("sha512", v.K, v.H, "D", v.sessionId, 64)))
    expect(toHex(keys.ivClientToServer)).toBe(toHex(deriveKey("sha512", v.K, v.H, "A", v.sessionId, 16)))
    expect(keys.ivServerToClient.length).toBe(12)
    expect(keys.integrityClientToServer.length).toBe(0)
    expect(keys.integrityServerToClient.length).toBe(100)
  })
})
