/**
 * FIDO/U2F security keys as OpenSSH uses them (PROTOCOL.u2f):
 * `sk-ecdsa-sha2-nistp256@openssh.com` and `sk-ssh-ed25519@openssh.com`
 * public keys, and the verification of their signatures.
 *
 * The authenticator does not sign the SSH data itself but
 * `SHA256(application) || flags || counter || SHA256(data)`; the wire
 * signature carries the flags (user present, user verified) and the counter
 * next to the ECDSA or Ed25519 signature. Only verification lives here:
 * signing is the authenticator's job, reached through an agent.
 *
 * @internal
 */
import { ed25519 } from "@noble/curves/ed25519.js"
import { p256 } from "@noble/curves/nist.js"
import { sha256 } from "@noble/hashes/sha2.js"
import * as PublicKey from "../Auth/PublicKey.ts"
import * as Signature from "../Auth/Signature.ts"
import { KeyParseFailed } from "../SshError.ts"
import { Reader } from "../Wire/Reader.ts"
import { build } from "../Wire/Writer.ts"
import * as Base64 from "./base64.ts"

/** The security key types OpenSSH defines. */
export type SecurityKeyType = "sk-ecdsa-sha2-nistp256@openssh.com" | "sk-ssh-ed25519@openssh.com"

/** A security key's public half. */
export interface SecurityKey {
  readonly type: SecurityKeyType
  readonly blob: Uint8Array
  readonly comment?: string | undefined
  /** The FIDO application (relying party id) the key was enrolled for, usually "ssh:". */
  readonly application: string
  /** The uncompressed P-256 point, or the 32-byte Ed25519 key. */
  readonly point: Uint8Array
}

/** What a verified security key signature asserted. */
export interface SecurityKeyAssertion {
  readonly flags: number
  readonly counter: number
  readonly userPresent: boolean
  readonly userVerified: boolean
}

/**
 * Authenticator flag: a user touched the key.
 *
 * @example
 * ```ts
 * (assertion.flags & FLAG_USER_PRESENT) !== 0
 * ```
 */
export const FLAG_USER_PRESENT = 0x01
/**
 * Authenticator flag: the user was verified (PIN, biometrics).
 *
 * @example
 * ```ts
 * (assertion.flags & FLAG_USER_VERIFIED) !== 0
 * ```
 */
export const FLAG_USER_VERIFIED = 0x04

/**
 * Every security key type, in OpenSSH's order.
 *
 * @example
 * ```ts
 * securityKeyTypes.includes("sk-ssh-ed25519@openssh.com") // true
 * ```
 */
export const securityKeyTypes: ReadonlyArray<SecurityKeyType> = [
  "sk-ecdsa-sha2-nistp256@openssh.com",
  "sk-ssh-ed25519@openssh.com"
]

/**
 * Tells whether a name is a security key type.
 *
 * @example
 * ```ts
 * isSecurityKeyType("sk-ecdsa-sha2-nistp256@openssh.com") // true
 * ```
 */
export const isSecurityKeyType = (name: string): name is SecurityKeyType =>
  (securityKeyTypes as ReadonlyArray<string>).includes(name)

const fail = (message: string): never => {
  throw new KeyParseFailed({ message })
}

/**
 * Reads the type-specific fields of a security key (after its type name):
 * the point and the application. Shared by plain keys and certificates.
 *
 * @example
 * ```ts
 * const { point, application } = readFields(reader, "sk-ssh-ed25519@openssh.com")
 * ```
 */
export const readFields = (r: Reader, type: SecurityKeyType): { readonly point: Uint8Array; readonly application: string } => {
  let point: Uint8Array
  if (type === "sk-ecdsa-sha2-nistp256@openssh.com") {
    if (r.name("curve") !== "nistp256") fail(`${type} must be on nistp256`)
    point = r.string("ecdsa point")
    PublicKey.fromEcdsa("nistp256", point)
  } else {
    point = r.string("ed25519 key")
    PublicKey.fromEd25519(point)
  }
  return { point, application: r.utf8("application") }
}

/**
 * Decodes a security key blob (copied).
 *
 * @throws KeyParseFailed
 * @example
 * ```ts
 * const key = fromBlob(blob)
 * key.application // "ssh:"
 * ```
 */
export const fromBlob = (blob: Uint8Array): SecurityKey =>
  PublicKey.parsing("security key blob", () => {
    const copy = blob.slice()
    const r = new Reader(copy)
    const type = r.name("key type")
    if (!isSecurityKeyType(type)) return fail(`not a security key type: ${type}`)
    const { point, application } = readFields(r, type)
    r.end("security key blob")
    return { type, blob: copy, point, application }
  })

/**
 * Parses an OpenSSH public key line of a security key.
 *
 * @throws KeyParseFailed
 * @example
 * ```ts
 * parseOpenSsh("sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29t... me").application // "ssh:"
 * ```
 */
export const parseOpenSsh = (line: string): SecurityKey => {
  const [type = "", data = "", ...comment] = line.trim().split(/\s+/)
  const blob = Base64.decode(data)
  if (blob === undefined) return fail(`invalid base64 in ${type} key`)
  const key = fromBlob(blob)
  if (key.type !== type) return fail(`key type field ${type} does not match the key's type ${key.type}`)
  return comment.length === 0 ? key : { ...key, comment: comment.join(" ") }
}

/**
 * The SHA256 fingerprint, as `ssh-keygen -l` prints it.
 *
 * @example
 * ```ts
 * fingerprint(key) // "SHA256:Go7HO0CVPYG+BSDSk9ZUJBKGSrtBExp6obTa9iqzIUo"
 * ```
 */
export const fingerprint = (key: SecurityKey): string => "SHA256:" + Base64.encode(sha256(key.blob)).replace(/=+$/, "")

/**
 * What the authenticator signed: `SHA256(application) || flags || counter || SHA256(data)`.
 *
 * @example
 * ```ts
 * const message = signedMessage("ssh:", 0x01, 7, data)
 * ```
 */
export const signedMessage = (application: string, flags: number, counter: number, data: Uint8Array): Uint8Array =>
  build((w) => w.raw(sha256(new TextEncoder().encode(application))).byte(flags).uint32(counter).raw(sha256(data)), 69)

/**
 * Encodes a security key signature blob: `string(type) || string(raw) || byte flags || uint32 counter`.
 *
 * @example
 * ```ts
 * const blob = encodeSignature("sk-ssh-ed25519@openssh.com", ed25519Signature, 0x01, 7)
 * ```
 */
export const encodeSignature = (type: SecurityKeyType, raw: Uint8Array, flags: number, counter: number): Uint8Array =>
  build((w) => w.string(type).string(raw).byte(flags).uint32(counter))

/**
 * Verifies a security key signature over `data`; the assertion (flags and
 * counter) when it verifies, `undefined` when it is malformed, of another
 * type, or does not verify. Policy (must a user have touched the key?) is
 * the caller's.
 *
 * @example
 * ```ts
 * const assertion = verify(key, signatureBlob, signedData)
 * if (assertion?.userPresent) accept()
 * ```
 */
export const verify = (key: SecurityKey, signatureBlob: Uint8Array, data: Uint8Array): SecurityKeyAssertion | undefined => {
  try {
    const r = new Reader(signatureBlob)
    if (r.name("signature type") !== key.type) return undefined
    const raw = r.string("signature")
    const flags = r.byte()
    const counter = r.uint32()
    r.end("security key signature")
    const message = signedMessage(key.application, flags, counter, data)
    const valid = key.type === "sk-ssh-ed25519@openssh.com"
      ? raw.length === 64 && ed25519.verify(raw, message, key.point)
      : verifyEcdsa(raw, message, key.point)
    return valid
      ? {
        flags,
        counter,
        userPresent: (flags & FLAG_USER_PRESENT) !== 0,
        userVerified: (flags & FLAG_USER_VERIFIED) !== 0
      }
      : undefined
  } catch {
    return undefined
  }
}

const verifyEcdsa = (raw: Uint8Array, message: Uint8Array, point: Uint8Array): boolean => {
  const compact = Signature.ecdsaCompactFromRaw(raw, 32)
  // noble hashes the message with SHA-256 first, which is what the authenticator signed
  return compact !== undefined && p256.verify(compact, message, point, { lowS: false })
}
