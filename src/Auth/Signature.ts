/**
 * SSH signatures: the blob `string(algorithm) || string(raw signature)` and
 * its verification against a `PublicKey`.
 *
 * The raw part depends on the algorithm: 64 bytes for `ssh-ed25519`
 * (RFC 8709 §6), `mpint r || mpint s` for `ecdsa-sha2-*` with the data hashed
 * by the curve's hash (RFC 5656 §3.1.2), and a PKCS#1 v1.5 signature as long
 * as the modulus for `rsa-sha2-512`, `rsa-sha2-256` (RFC 8332) and `ssh-rsa`
 * (SHA-1). Verification never throws: a malformed signature is just `false`.
 *
 * @example
 * ```ts
 * const ok = Signature.verify(hostKey, signatureBlob, exchangeHash, ["ssh-ed25519", "rsa-sha2-512"])
 * ```
 * @since 0.1.0
 */
import * as crypto from "node:crypto"
import * as Base64 from "../internal/base64.ts"
import { concat } from "../internal/bytes.ts"
import { isSshErrorReason } from "../SshError.ts"
import { Reader } from "../Wire/Reader.ts"
import { build } from "../Wire/Writer.ts"
import * as PublicKey from "./PublicKey.ts"

/** A decoded signature blob. */
export interface Signature {
  readonly algorithm: string
  readonly raw: Uint8Array
}

/** The RSA signature algorithms and the hash each one signs with. */
export type RsaSignatureAlgorithm = "rsa-sha2-512" | "rsa-sha2-256" | "ssh-rsa"

const rsaHashes: Readonly<Record<RsaSignatureAlgorithm, "sha512" | "sha256" | "sha1">> = {
  "rsa-sha2-512": "sha512",
  "rsa-sha2-256": "sha256",
  "ssh-rsa": "sha1"
}

/**
 * The hash an RSA signature algorithm uses, or `undefined` if the name is not
 * one of them.
 *
 * @example
 * ```ts
 * rsaHash("rsa-sha2-256") // "sha256"
 * ```
 */
export const rsaHash = (algorithm: string): "sha512" | "sha256" | "sha1" | undefined =>
  Object.hasOwn(rsaHashes, algorithm) ? rsaHashes[algorithm as RsaSignatureAlgorithm] : undefined

/**
 * Decodes `string(algorithm) || string(raw)`.
 *
 * @throws ProtocolError when truncated or followed by trailing bytes.
 * @example
 * ```ts
 * decodeSignature(blob) // { algorithm: "ssh-ed25519", raw: Uint8Array(64) }
 * ```
 */
export const decodeSignature = (blob: Uint8Array): Signature => {
  const r = new Reader(blob)
  const algorithm = r.name("signature algorithm")
  const raw = r.string("signature")
  r.end("signature blob")
  return { algorithm, raw }
}

/**
 * Encodes `string(algorithm) || string(raw)`.
 *
 * @example
 * ```ts
 * const blob = encodeSignature("ssh-ed25519", ed25519.sign(data, seed))
 * ```
 */
export const encodeSignature = (algorithm: string, raw: Uint8Array): Uint8Array =>
  build((w) => w.string(algorithm).string(raw), 8 + algorithm.length + raw.length)

/**
 * ECDSA's raw SSH signature (`mpint r || mpint s`) from the fixed-width
 * `r || s` that noble and WebCrypto produce.
 *
 * @example
 * ```ts
 * const raw = ecdsaRawFromCompact(p256.sign(data, secret))
 * ```
 */
export const ecdsaRawFromCompact = (compact: Uint8Array): Uint8Array => {
  const half = compact.length / 2
  return build((w) => w.mpintFromUnsigned(compact.subarray(0, half)).mpintFromUnsigned(compact.subarray(half)))
}

/**
 * The fixed-width `r || s` (each `size` bytes) from ECDSA's raw SSH
 * signature; `undefined` when malformed or when r or s does not fit.
 *
 * @example
 * ```ts
 * ecdsaCompactFromRaw(raw, 32) // Uint8Array(64)
 * ```
 */
export const ecdsaCompactFromRaw = (raw: Uint8Array, size: number): Uint8Array | undefined => {
  try {
    const r = new Reader(raw)
    const rBytes = r.mpintBytes("ecdsa r")
    const sBytes = r.mpintBytes("ecdsa s")
    r.end("ecdsa signature")
    if (rBytes.length > size || sBytes.length > size) return undefined
    const compact = new Uint8Array(2 * size)
    compact.set(rBytes, size - rBytes.length)
    compact.set(sBytes, 2 * size - sBytes.length)
    return compact
  } catch (u) {
    if (!isSshErrorReason(u)) throw u
    return undefined
  }
}

/**
 * A node:crypto key object for an RSA public key.
 *
 * @example
 * ```ts
 * crypto.verify("sha256", data, rsaPublicKeyObject(key), signature)
 * ```
 */
export const rsaPublicKeyObject = (key: PublicKey.RsaPublicKey): crypto.KeyObject =>
  crypto.createPublicKey({ key: { kty: "RSA", n: Base64.encodeUrl(key.n), e: Base64.encodeUrl(key.e) }, format: "jwk" })

/**
 * The hash ECDSA signs with on each curve (RFC 5656 §6.2.1).
 *
 * @example
 * ```ts
 * ecdsaHash.nistp384 // "sha384"
 * ```
 */
export const ecdsaHash = { nistp256: "sha256", nistp384: "sha384", nistp521: "sha512" } as const

/**
 * A node:crypto key object for an ECDSA public key (uncompressed point).
 *
 * @example
 * ```ts
 * crypto.verify("sha256", data, { key: ecdsaPublicKeyObject(key), dsaEncoding: "ieee-p1363" }, compact)
 * ```
 */
export const ecdsaPublicKeyObject = (key: PublicKey.EcdsaPublicKey): crypto.KeyObject => {
  const size = PublicKey.ecdsaCurves[key.curve].size
  return crypto.createPublicKey({
    key: {
      kty: "EC",
      crv: PublicKey.ecdsaCurves[key.curve].jwk,
      x: Base64.encodeUrl(key.point.subarray(1, 1 + size)),
      y: Base64.encodeUrl(key.point.subarray(1 + size))
    },
    format: "jwk"
  })
}

// Verification runs on node:crypto (OpenSSL): ~10× faster than @noble/curves for ed25519 and ECDSA, and it is
// on the path of every connection (host key) and every server-side publickey login. @noble is the test reference.
const verifyRaw = (key: PublicKey.PublicKey, algorithm: string, raw: Uint8Array, data: Uint8Array): boolean => {
  switch (key.type) {
    case "ssh-ed25519":
      return raw.length === 64 &&
        crypto.verify(
          null,
          data,
          crypto.createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: Base64.encodeUrl(key.key) }, format: "jwk" }),
          raw
        )
    case "ssh-rsa": {
      const hash = rsaHash(algorithm)
      const modulusLength = key.n.length
      if (hash === undefined || raw.length > modulusLength || raw.length === 0) return false
      // OpenSSH accepts (and some signers produce) signatures with leading zero bytes stripped.
      const signature = raw.length < modulusLength ? concat([new Uint8Array(modulusLength - raw.length), raw]) : raw
      return crypto.verify(hash, data, rsaPublicKeyObject(key), signature)
    }
    default: {
      const facts = PublicKey.ecdsaCurves[key.curve]
      const compact = ecdsaCompactFromRaw(raw, facts.size)
      // OpenSSL does not insist on low-S, like OpenSSH
      return compact !== undefined &&
        crypto.verify(ecdsaHash[key.curve], data, { key: ecdsaPublicKeyObject(key), dsaEncoding: "ieee-p1363" }, compact)
    }
  }
}

/**
 * Verifies a signature blob over `data`. False when the blob is malformed,
 * its algorithm cannot come from this key (or is not in `allowed`, when
 * given), or the signature does not verify.
 *
 * @example
 * ```ts
 * verify(userKey, signatureBlob, signedData, ["rsa-sha2-512", "rsa-sha2-256"]) // true or false
 * ```
 */
export const verify = (
  key: PublicKey.PublicKey,
  signatureBlob: Uint8Array,
  data: Uint8Array,
  allowed?: ReadonlyArray<string>
): boolean => {
  try {
    const { algorithm, raw } = decodeSignature(signatureBlob)
    if (!PublicKey.signatureAlgorithms(key).includes(algorithm)) return false
    if (allowed !== undefined && !allowed.includes(algorithm)) return false
    return verifyRaw(key, algorithm, raw, data)
  } catch {
    return false
  }
}
