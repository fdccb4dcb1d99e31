/**
 * SSH public keys: the wire blob (RFC 4253 §6.6, RFC 5656 §3.1, RFC 8709 §4),
 * the one-line OpenSSH text form ("ssh-ed25519 AAAA... comment"),
 * fingerprints, and which signature algorithms a key can produce.
 *
 * A `PublicKey` is plain data: its type, its canonical blob (what goes on the
 * wire and what two keys are compared by) and the parsed material a verifier
 * needs (the Ed25519 point, the ECDSA curve and point, or RSA's n and e).
 * Parsing throws `KeyParseFailed`, never anything else.
 *
 * @example
 * ```ts
 * const key = PublicKey.parseOpenSsh("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFOG6kY7Rf4UtCFvPwKgo/BztXck2xC4a2WyA34XtIwZ me")
 * PublicKey.fingerprint(key) // "SHA256:L3k/oJubblSY0lB9Ulsl7emDMnRPKm/8udf2ccwk560"
 * ```
 * @since 0.1.0
 */
import { p256, p384, p521 } from "@noble/curves/nist.js"
import { md5 } from "@noble/hashes/legacy.js"
import { sha256 } from "@noble/hashes/sha2.js"
import * as Base64 from "../internal/base64.ts"
import { equal } from "../internal/bytes.ts"
import { describeThrown, isSshErrorReason, KeyParseFailed } from "../SshError.ts"
import { Reader } from "../Wire/Reader.ts"
import { build } from "../Wire/Writer.ts"

/** The public key algorithms we support, named as on the wire. */
export type KeyType = "ssh-ed25519" | "ecdsa-sha2-nistp256" | "ecdsa-sha2-nistp384" | "ecdsa-sha2-nistp521" | "ssh-rsa"

/** The NIST curves of `ecdsa-sha2-*` keys, named as in RFC 5656. */
export type EcdsaCurve = "nistp256" | "nistp384" | "nistp521"

/** The `ecdsa-sha2-*` key types. */
export type EcdsaKeyType = `ecdsa-sha2-${EcdsaCurve}`

/**
 * Every supported key type, strongest-first in the order OpenSSH prefers them.
 *
 * @example
 * ```ts
 * PublicKey.keyTypes.includes("ssh-rsa") // true
 * ```
 */
export const keyTypes: ReadonlyArray<KeyType> = [
  "ssh-ed25519",
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521",
  "ssh-rsa"
]

/** An Ed25519 key: the 32-byte encoded point. */
export interface Ed25519PublicKey {
  readonly type: "ssh-ed25519"
  readonly blob: Uint8Array
  readonly comment?: string | undefined
  readonly key: Uint8Array
}

/** An ECDSA key: the curve and the uncompressed SEC1 point (`04 || x || y`). */
export interface EcdsaPublicKey {
  readonly type: EcdsaKeyType
  readonly blob: Uint8Array
  readonly comment?: string | undefined
  readonly curve: EcdsaCurve
  readonly point: Uint8Array
}

/** An RSA key: modulus and public exponent as unsigned big-endian magnitudes. */
export interface RsaPublicKey {
  readonly type: "ssh-rsa"
  readonly blob: Uint8Array
  readonly comment?: string | undefined
  readonly n: Uint8Array
  readonly e: Uint8Array
}

/** A public key of one of the supported types; narrow on `type`. */
export type PublicKey = Ed25519PublicKey | EcdsaPublicKey | RsaPublicKey

/** OpenSSH refuses RSA moduli below 1024 bits and above 16384 bits. */
const RSA_MIN_BITS = 1024
const RSA_MAX_BITS = 16384

/**
 * Per-curve facts: noble's curve (which hashes with SHA-256/384/512 as
 * RFC 5656 §6.2.1 requires), the scalar and coordinate size in bytes, and the
 * JWK curve name (for PEM interop through node:crypto).
 *
 * @example
 * ```ts
 * PublicKey.ecdsaCurves.nistp521.size // 66
 * ```
 */
export const ecdsaCurves = {
  nistp256: { curve: p256, size: 32, jwk: "P-256" },
  nistp384: { curve: p384, size: 48, jwk: "P-384" },
  nistp521: { curve: p521, size: 66, jwk: "P-521" }
} as const

const fail = (message: string): never => {
  throw new KeyParseFailed({ message })
}

/**
 * Runs a key decoder, turning a truncated read (`ProtocolError`) or anything
 * a library throws (a RangeError) into `KeyParseFailed`; other reasons
 * (`PassphraseRequired`, ...) pass through.
 *
 * @example
 * ```ts
 * const key = PublicKey.parsing("agent identity", () => PublicKey.fromBlob(blob)) // throws KeyParseFailed
 * ```
 * @internal
 */
export const parsing = <A>(what: string, decode: () => A): A => {
  try {
    return decode()
  } catch (u) {
    if (isSshErrorReason(u) && u._tag !== "ProtocolError") throw u
    return fail(`malformed ${what}: ${describeThrown(u)}`)
  }
}

/**
 * Tells whether a name is a supported key type.
 *
 * @example
 * ```ts
 * PublicKey.isKeyType("ssh-dss") // false
 * ```
 */
export const isKeyType = (name: string): name is KeyType => (keyTypes as ReadonlyArray<string>).includes(name)

/**
 * The curve of an `ecdsa-sha2-*` key type.
 *
 * @example
 * ```ts
 * PublicKey.curveOf("ecdsa-sha2-nistp384") // "nistp384"
 * ```
 */
export const curveOf = (type: EcdsaKeyType): EcdsaCurve => type.slice("ecdsa-sha2-".length) as EcdsaCurve

const isEcdsaCurve = (name: string): name is EcdsaCurve => Object.hasOwn(ecdsaCurves, name)

const bitLength = (magnitude: Uint8Array): number => {
  let i = 0
  while (i < magnitude.length && magnitude[i] === 0) i++
  if (i === magnitude.length) return 0
  return (magnitude.length - i - 1) * 8 + (32 - Math.clz32(magnitude[i]!))
}

const checkEd25519 = (key: Uint8Array): void => {
  if (key.length !== 32) fail(`ssh-ed25519 public key must be 32 bytes, got ${key.length}`)
}

const checkEcdsa = (curve: EcdsaCurve, point: Uint8Array): void => {
  const facts = ecdsaCurves[curve]
  if (point.length !== 1 + 2 * facts.size || point[0] !== 0x04) {
    fail(`ecdsa-sha2-${curve} public key must be an uncompressed ${1 + 2 * facts.size}-byte point`)
  }
  try {
    facts.curve.Point.fromBytes(point).assertValidity()
  } catch {
    fail(`ecdsa-sha2-${curve} public key is not a point on the curve`)
  }
}

const checkRsa = (n: Uint8Array, e: Uint8Array): void => {
  const bits = bitLength(n)
  if (bits < RSA_MIN_BITS || bits > RSA_MAX_BITS) {
    fail(`ssh-rsa modulus of ${bits} bits is outside ${RSA_MIN_BITS}..${RSA_MAX_BITS}`)
  }
  if ((n[n.length - 1]! & 1) === 0) fail("ssh-rsa modulus is even")
  if (e.length === 0 || (e[e.length - 1]! & 1) === 0 || (e.length === 1 && e[0] === 1)) {
    fail("ssh-rsa public exponent must be odd and greater than 1")
  }
  if (e.length > n.length) fail("ssh-rsa public exponent is larger than the modulus")
}

/**
 * An Ed25519 public key from its 32-byte encoding.
 *
 * @example
 * ```ts
 * const key = PublicKey.fromEd25519(ed25519.getPublicKey(ed25519.utils.randomSecretKey()))
 * key.type // "ssh-ed25519"
 * ```
 */
export const fromEd25519 = (key: Uint8Array, comment?: string): Ed25519PublicKey => {
  checkEd25519(key)
  const blob = build((w) => w.string("ssh-ed25519").string(key))
  return withOptionalComment({ type: "ssh-ed25519", blob, key: blob.subarray(blob.length - 32) }, comment)
}

/**
 * An ECDSA public key from its curve and uncompressed point.
 *
 * @example
 * ```ts
 * const key = PublicKey.fromEcdsa("nistp256", p256.getPublicKey(p256.utils.randomSecretKey(), false))
 * key.type // "ecdsa-sha2-nistp256"
 * ```
 */
export const fromEcdsa = (curve: EcdsaCurve, point: Uint8Array, comment?: string): EcdsaPublicKey => {
  checkEcdsa(curve, point)
  const type: EcdsaKeyType = `ecdsa-sha2-${curve}`
  const blob = build((w) => w.string(type).string(curve).string(point))
  return withOptionalComment({ type, blob, curve, point: blob.subarray(blob.length - point.length) }, comment)
}

/**
 * An RSA public key from its modulus and exponent (unsigned big-endian).
 *
 * @example
 * ```ts
 * const key = PublicKey.fromRsa(modulus, new Uint8Array([1, 0, 1])) // modulus: n, big-endian
 * key.type // "ssh-rsa"
 * ```
 */
export const fromRsa = (n: Uint8Array, e: Uint8Array, comment?: string): RsaPublicKey =>
  parsing("ssh-rsa public key", () => {
    const blob = build((w) => w.string("ssh-rsa").mpintFromUnsigned(e).mpintFromUnsigned(n))
    const r = new Reader(blob)
    r.name()
    return withOptionalComment(decodeRsa(blob, r), comment)
  })

const decodeRsa = (blob: Uint8Array, r: Reader): RsaPublicKey => {
  const e = r.mpintBytes("ssh-rsa e")
  const n = r.mpintBytes("ssh-rsa n")
  checkRsa(n, e)
  return { type: "ssh-rsa", blob, n, e }
}

const withOptionalComment = <K extends PublicKey>(key: K, comment: string | undefined): K =>
  comment === undefined ? key : { ...key, comment }

const decodeBlob = (blob: Uint8Array): PublicKey => {
  const r = new Reader(blob)
  const type = r.name("key type")
  let key: PublicKey
  if (type === "ssh-ed25519") {
    const point = r.string("ssh-ed25519 key")
    checkEd25519(point)
    key = { type, blob, key: point }
  } else if (type === "ssh-rsa") {
    key = decodeRsa(blob, r)
  } else if (isKeyType(type)) {
    const curve = r.name("curve")
    if (!isEcdsaCurve(curve) || type !== `ecdsa-sha2-${curve}`) {
      return fail(`key type ${type} does not match curve ${curve}`)
    }
    const point = r.string("ecdsa point")
    checkEcdsa(curve, point)
    key = { type: `ecdsa-sha2-${curve}`, blob, curve, point }
  } else {
    return fail(`unsupported key type ${type}`)
  }
  r.end("public key blob")
  return key
}

/**
 * Decodes a wire public key blob. The blob is copied, so the key does not
 * hold on to (or change with) the packet it came from.
 *
 * @throws KeyParseFailed for an unknown type, a truncated blob, trailing
 * bytes, a point not on its curve or an RSA modulus outside 1024..16384 bits.
 * @example
 * ```ts
 * const key = PublicKey.fromBlob(blob)
 * key.type // "ssh-ed25519"
 * ```
 */
export const fromBlob = (blob: Uint8Array): PublicKey => parsing("public key blob", () => decodeBlob(blob.slice()))

/**
 * The same key with another comment.
 *
 * @example
 * ```ts
 * PublicKey.withComment(publicKey, "deploy@ci").comment // "deploy@ci"
 * ```
 */
export const withComment = <K extends PublicKey>(key: K, comment: string | undefined): K => {
  const { comment: _, ...rest } = key
  return withOptionalComment(rest as K, comment)
}

/**
 * Parses one OpenSSH public key line: `type base64 [comment]`. The type field
 * must name the blob's own type.
 *
 * @throws KeyParseFailed
 * @example
 * ```ts
 * const key = PublicKey.parseOpenSsh("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFOG6kY7Rf4UtCFvPwKgo/BztXck2xC4a2WyA34XtIwZ me@host")
 * key.comment // "me@host"
 * ```
 */
export const parseOpenSsh = (line: string): PublicKey => {
  const match = /^(\S+)\s+(\S+)(?:\s+([\s\S]*))?$/.exec(line.trim())
  if (match === null) return fail("expected \"<type> <base64> [comment]\"")
  const [, type, data, comment] = match as unknown as [string, string, string, string | undefined]
  const blob = Base64.decode(data)
  if (blob === undefined) return fail(`invalid base64 in ${type} key`)
  const key = fromBlob(blob)
  if (key.type !== type) return fail(`key type field ${type} does not match the key's type ${key.type}`)
  return comment === undefined || comment.length === 0 ? key : withOptionalComment(key, comment)
}

const RFC4716_BEGIN = "---- BEGIN SSH2 PUBLIC KEY ----"
const RFC4716_END = "---- END SSH2 PUBLIC KEY ----"

/**
 * Parses an RFC 4716 public key file ("---- BEGIN SSH2 PUBLIC KEY ----"),
 * keeping its `Comment` header (quotes removed, `\`-continued lines joined).
 *
 * @throws KeyParseFailed
 * @example
 * ```ts
 * const key = PublicKey.parseRfc4716("---- BEGIN SSH2 PUBLIC KEY ----\nComment: me\nAAAAC3Nz...\n---- END SSH2 PUBLIC KEY ----\n")
 * key.comment // "me"
 * ```
 */
export const parseRfc4716 = (text: string): PublicKey => {
  const lines = text.split(/\r?\n/).map((line) => line.trimEnd())
  const begin = lines.findIndex((line) => line.trim() === RFC4716_BEGIN)
  const end = lines.findIndex((line, i) => i > begin && line.trim() === RFC4716_END)
  if (begin < 0 || end < 0) return fail(`expected "${RFC4716_BEGIN}" ... "${RFC4716_END}"`)
  let comment: string | undefined
  let body = ""
  for (let i = begin + 1; i < end; i++) {
    let line = lines[i]!
    if (body.length === 0 && line.includes(":")) {
      while (line.endsWith("\\") && i + 1 < end) line = line.slice(0, -1) + lines[++i]!
      const colon = line.indexOf(":")
      if (line.slice(0, colon).trim().toLowerCase() === "comment") {
        comment = line.slice(colon + 1).trim().replace(/^"(.*)"$/s, "$1")
      }
    } else {
      body += line.trim()
    }
  }
  const blob = Base64.decode(body)
  if (blob === undefined) return fail("invalid base64 in RFC 4716 public key")
  return withOptionalComment(fromBlob(blob), comment)
}

/**
 * Parses a public key file in either OpenSSH one-line or RFC 4716 form.
 *
 * @throws KeyParseFailed
 * @example
 * ```ts
 * const key = PublicKey.parse(yield* Effect.promise(() => FsPromises.readFile("id_ed25519.pub", "utf8")))
 * ```
 */
export const parse = (text: string): PublicKey =>
  text.includes(RFC4716_BEGIN) ? parseRfc4716(text) : parseOpenSsh(text)

/**
 * The OpenSSH one-line text form, with the key's comment (or the one given).
 *
 * @example
 * ```ts
 * PublicKey.toOpenSsh(publicKey) // "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFOG... me@host"
 * ```
 */
export const toOpenSsh = (key: PublicKey, options?: { readonly comment?: string | undefined }): string => {
  const comment = options?.comment ?? key.comment
  const text = `${key.type} ${Base64.encode(key.blob)}`
  return comment === undefined || comment.length === 0 ? text : `${text} ${comment}`
}

/**
 * The fingerprint OpenSSH prints: `SHA256:<base64 without padding>` by
 * default, or the legacy `MD5:aa:bb:...`.
 *
 * @example
 * ```ts
 * PublicKey.fingerprint(publicKey)        // "SHA256:L3k/oJubblSY0lB9Ulsl7emDMnRPKm/8udf2ccwk560"
 * PublicKey.fingerprint(publicKey, "md5") // "MD5:5e:2a:..."
 * ```
 */
export const fingerprint = (key: PublicKey, hash: "sha256" | "md5" = "sha256"): string => {
  if (hash === "md5") {
    return "MD5:" + Array.from(md5(key.blob), (b) => b.toString(16).padStart(2, "0")).join(":")
  }
  return "SHA256:" + Base64.encode(sha256(key.blob)).replace(/=+$/, "")
}

/**
 * The signature algorithms a key can produce, strongest first. RSA keys sign
 * with SHA-512, SHA-256 (RFC 8332) or SHA-1 (`ssh-rsa`, legacy).
 *
 * @example
 * ```ts
 * PublicKey.signatureAlgorithms("ssh-rsa") // ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]
 * ```
 */
export const signatureAlgorithms = (key: PublicKey | KeyType): ReadonlyArray<string> => {
  const type = typeof key === "string" ? key : key.type
  return type === "ssh-rsa" ? ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"] : [type]
}

/**
 * The key type that produces a signature algorithm, or `undefined` for an
 * algorithm we do not know.
 *
 * @example
 * ```ts
 * PublicKey.keyTypeForSignatureAlgorithm("rsa-sha2-256") // "ssh-rsa"
 * PublicKey.keyTypeForSignatureAlgorithm("ssh-dss")      // undefined
 * ```
 */
export const keyTypeForSignatureAlgorithm = (algorithm: string): KeyType | undefined =>
  algorithm === "rsa-sha2-256" || algorithm === "rsa-sha2-512" ? "ssh-rsa" : isKeyType(algorithm) ? algorithm : undefined

/**
 * Two keys are the same key when their blobs are equal (comments aside).
 *
 * @example
 * ```ts
 * PublicKey.equals(PublicKey.parseOpenSsh(PublicKey.toOpenSsh(publicKey)), PublicKey.fromBlob(publicKey.blob)) // true
 * ```
 */
export const equals = (a: PublicKey, b: PublicKey): boolean => equal(a.blob, b.blob)

/**
 * The key size in bits, as `ssh-keygen -l` prints it.
 *
 * @example
 * ```ts
 * PublicKey.bits(PrivateKey.generate("ssh-ed25519").publicKey) // 256
 * ```
 */
export const bits = (key: PublicKey): number => {
  switch (key.type) {
    case "ssh-ed25519":
      return 256
    case "ssh-rsa":
      return bitLength(key.n)
    default:
      return key.curve === "nistp521" ? 521 : ecdsaCurves[key.curve].size * 8
  }
}
