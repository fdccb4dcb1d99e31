/**
 * Finite-field Diffie-Hellman through node:crypto key objects.
 *
 * `crypto.createDiffieHellman(p, g)` runs a safe-prime check on every call
 * (0.4 s for 2048 bits, a minute for 8192), and bigint exponentiation is
 * ten times slower than OpenSSL, so the private value and the peer's public
 * value are wrapped in minimal PKCS#8 / SPKI DER (dhKeyAgreement, PKCS#3
 * parameters) and handed to `crypto.diffieHellman`, which does no such check.
 * The private exponent is chosen by the caller, so randomness stays injected.
 *
 * @internal
 */
import * as crypto from "node:crypto"
import { ProtocolError } from "../SshError.ts"
import { concat } from "./bytes.ts"

const DH_KEY_AGREEMENT_OID = Uint8Array.of(0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x03, 0x01)

const derLength = (n: number): Uint8Array =>
  n < 0x80
    ? Uint8Array.of(n)
    : n < 0x100
    ? Uint8Array.of(0x81, n)
    : n < 0x10000
    ? Uint8Array.of(0x82, n >> 8, n & 0xff)
    : Uint8Array.of(0x83, n >> 16, (n >> 8) & 0xff, n & 0xff)

const tlv = (tag: number, ...body: Array<Uint8Array>): Uint8Array => {
  const content = concat(body)
  return concat([Uint8Array.of(tag), derLength(content.length), content])
}

const derInteger = (magnitude: Uint8Array): Uint8Array => {
  let i = 0
  while (i < magnitude.length - 1 && magnitude[i] === 0) i++
  const m = magnitude.length === 0 ? Uint8Array.of(0) : magnitude.subarray(i)
  return (m[0]! & 0x80) !== 0 ? tlv(0x02, Uint8Array.of(0), m) : tlv(0x02, m)
}

const algorithm = (p: Uint8Array, g: Uint8Array): Uint8Array =>
  tlv(0x30, DH_KEY_AGREEMENT_OID, tlv(0x30, derInteger(p), derInteger(g)))

const privateKeyDer = (p: Uint8Array, g: Uint8Array, x: Uint8Array): Uint8Array =>
  tlv(0x30, derInteger(Uint8Array.of(0)), algorithm(p, g), tlv(0x04, derInteger(x)))

const publicKeyDer = (p: Uint8Array, g: Uint8Array, y: Uint8Array): Uint8Array =>
  tlv(0x30, algorithm(p, g), tlv(0x03, Uint8Array.of(0), derInteger(y)))

/** Reads one DER element header at `offset`; returns where its content starts and ends. */
const element = (der: Uint8Array, offset: number, tag: number): { start: number; end: number } => {
  if (der[offset] !== tag) throw new Error(`DER: expected tag ${tag} at ${offset}`)
  let length = der[offset + 1]!
  let start = offset + 2
  if (length >= 0x80) {
    const count = length & 0x7f
    length = 0
    for (let i = 0; i < count; i++) length = length * 256 + der[start + i]!
    start += count
  }
  if (start + length > der.length) throw new Error("DER: element overruns its container")
  return { start, end: start + length }
}

/** The public value y of a node-exported DH SubjectPublicKeyInfo. */
const publicValueOf = (spki: Uint8Array): Uint8Array => {
  const outer = element(spki, 0, 0x30)
  const algorithmId = element(spki, outer.start, 0x30)
  const bitString = element(spki, algorithmId.end, 0x03)
  const integer = element(spki, bitString.start + 1, 0x02)
  let i = integer.start
  while (i < integer.end - 1 && spki[i] === 0) i++
  return spki.slice(i, integer.end)
}

const failWith = (what: string) => (): never => {
  throw new ProtocolError({ message: `Diffie-Hellman ${what} failed` })
}

const attemptCrypto = <A>(f: () => A, onFailure: () => never): A => {
  try {
    return f()
  } catch {
    return onFailure()
  }
}

/**
 * A Diffie-Hellman private value in a group, ready to agree with peers.
 *
 * @example
 * ```ts
 * const ours = ffdhKeyPair(modp14.p, modp14.g, x)
 * const K = ours.sharedSecret(theirPublic)
 * ```
 */
export interface FfdhKeyPair {
  /** g^x mod p as an unsigned big-endian magnitude. */
  readonly publicValue: Uint8Array
  /** peer^x mod p as an unsigned big-endian magnitude (leading zeros may be present). */
  sharedSecret(peerPublic: Uint8Array): Uint8Array
}

/**
 * Builds a key pair from the group and a private exponent `x` (unsigned
 * big-endian). Throws `ProtocolError` if OpenSSL refuses the parameters.
 * The caller validates the peer's value (1 < y < p - 1) first.
 *
 * @example
 * ```ts
 * const pair = ffdhKeyPair(p, Uint8Array.of(2), random(64))
 * pair.publicValue // 2^x mod p
 * ```
 */
export const ffdhKeyPair = (p: Uint8Array, g: Uint8Array, x: Uint8Array): FfdhKeyPair => {
  const privateKey = attemptCrypto(
    () => crypto.createPrivateKey({ key: Buffer.from(privateKeyDer(p, g, x)), format: "der", type: "pkcs8" }),
    failWith("key import")
  )
  const publicValue = publicValueOf(
    new Uint8Array(crypto.createPublicKey(privateKey).export({ format: "der", type: "spki" }))
  )
  return {
    publicValue,
    sharedSecret: (peerPublic) =>
      attemptCrypto(() => {
        const publicKey = crypto.createPublicKey({
          key: Buffer.from(publicKeyDer(p, g, peerPublic)),
          format: "der",
          type: "spki"
        })
        return new Uint8Array(crypto.diffieHellman({ privateKey, publicKey }))
      }, failWith("shared secret computation"))
  }
}
