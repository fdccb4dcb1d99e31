/**
 * Key derivation (RFC 4253 §7.2): every IV, encryption key and MAC key is
 * `HASH(K || H || letter || session_id)`, extended for longer keys by
 * `K(n+1) = HASH(K || H || K1 || ... || Kn)` and cut to the wanted length.
 * `K` is the shared secret already encoded (mpint, or string for the ML-KEM
 * hybrids) as the kex result carries it.
 *
 * @since 0.1.0
 */
import { ProtocolError } from "../SshError.ts"
import { concat } from "../internal/bytes.ts"
import { digest, digestLength, type KexHash } from "./kex/Exchange.ts"

/**
 * The letter naming what is derived: A/B initial IV client→server /
 * server→client, C/D encryption key, E/F integrity key.
 *
 * @example
 * ```ts
 * const letter: KeyLetter = "C"
 * ```
 */
export type KeyLetter = "A" | "B" | "C" | "D" | "E" | "F"

/**
 * Longest key we derive, in bytes (far above any cipher or MAC key).
 *
 * @example
 * ```ts
 * deriveKey("sha256", K, H, "C", sessionId, MAX_DERIVED_KEY_LENGTH).length // 1024
 * ```
 */
export const MAX_DERIVED_KEY_LENGTH = 1024

/**
 * Derives `length` bytes of key material.
 *
 * @example
 * ```ts
 * const sessionId = result.H // of the first kex
 * const keyCS = deriveKey("sha256", result.K, result.H, "C", sessionId, 32)
 * ```
 */
export const deriveKey = (
  hash: KexHash,
  K: Uint8Array,
  H: Uint8Array,
  letter: KeyLetter,
  sessionId: Uint8Array,
  length: number
): Uint8Array => {
  if (!Number.isInteger(length) || length < 0 || length > MAX_DERIVED_KEY_LENGTH) {
    throw new ProtocolError({ message: `cannot derive a key of ${length} bytes` })
  }
  const blocks: Array<Uint8Array> = [digest(hash, concat([K, H, Uint8Array.of(letter.charCodeAt(0)), sessionId]))]
  const blockLength = digestLength(hash)
  while (blocks.length * blockLength < length) blocks.push(digest(hash, concat([K, H, ...blocks])))
  return concat(blocks).slice(0, length)
}

/**
 * The six keys of RFC 4253 §7.2 for one key exchange.
 *
 * @example
 * ```ts
 * const keys: SessionKeys = deriveSessionKeys("sha256", K, H, sessionId, lengths)
 * keys.encryptionClientToServer.length // 32
 * ```
 */
export interface SessionKeys {
  readonly ivClientToServer: Uint8Array
  readonly ivServerToClient: Uint8Array
  readonly encryptionClientToServer: Uint8Array
  readonly encryptionServerToClient: Uint8Array
  readonly integrityClientToServer: Uint8Array
  readonly integrityServerToClient: Uint8Array
}

/**
 * How many bytes of each key the negotiated algorithms need (0 for none).
 *
 * @example
 * ```ts
 * const lengths: KeyLengths = { ivClientToServer: 12, ivServerToClient: 12, encryptionClientToServer: 32,
 *   encryptionServerToClient: 32, integrityClientToServer: 0, integrityServerToClient: 0 }
 * ```
 */
export type KeyLengths = { readonly [K in keyof SessionKeys]: number }

/**
 * Derives all six keys at once.
 *
 * @example
 * ```ts
 * const keys = deriveSessionKeys(result.hashAlgorithm, result.K, result.H, sessionId, lengths)
 * ```
 */
export const deriveSessionKeys = (
  hash: KexHash,
  K: Uint8Array,
  H: Uint8Array,
  sessionId: Uint8Array,
  lengths: KeyLengths
): SessionKeys => {
  const derive = (letter: KeyLetter, length: number) => deriveKey(hash, K, H, letter, sessionId, length)
  return {
    ivClientToServer: derive("A", lengths.ivClientToServer),
    ivServerToClient: derive("B", lengths.ivServerToClient),
    encryptionClientToServer: derive("C", lengths.encryptionClientToServer),
    encryptionServerToClient: derive("D", lengths.encryptionServerToClient),
    integrityClientToServer: derive("E", lengths.integrityClientToServer),
    integrityServerToClient: derive("F", lengths.integrityServerToClient)
  }
}
