/**
 * Packet MACs (RFC 4253 §6.4, RFC 6668, OpenSSH PROTOCOL §1.5): HMAC over
 * `uint32 sequence_number || data`, where `data` is the plaintext packet for
 * the classic MACs and `packet_length || ciphertext` for the `-etm` ones (the
 * caller decides which bytes to pass). HMAC runs on node:crypto with the key
 * imported once per direction.
 *
 * @since 0.1.0
 */
import { createHmac, createSecretKey, type KeyObject } from "node:crypto"
import { UnknownAlgorithm } from "../../SshError.ts"
import { equalConstantTime } from "../../internal/bytes.ts"
import { writeUint32 } from "../../internal/packetLayout.ts"
import type { MacSpec } from "../Cipher.ts"

/**
 * The `none` MAC: zero-length, used before the first NEWKEYS and with AEAD ciphers.
 *
 * @example
 * ```ts
 * none.macLength // 0
 * ```
 */
export const none: MacSpec = { name: "none", keyLength: 0, macLength: 0, etm: false }

const hmac = (name: string, hash: string, length: number, etm: boolean) =>
  ({ spec: { name, keyLength: length, macLength: length, etm }, hash }) as const

const hmacs = [
  hmac("hmac-sha2-256-etm@openssh.com", "sha256", 32, true),
  hmac("hmac-sha2-512-etm@openssh.com", "sha512", 64, true),
  hmac("hmac-sha1-etm@openssh.com", "sha1", 20, true),
  hmac("hmac-sha2-256", "sha256", 32, false),
  hmac("hmac-sha2-512", "sha512", 64, false),
  hmac("hmac-sha1", "sha1", 20, false)
]

/**
 * Every supported MAC, `none` last.
 *
 * @example
 * ```ts
 * specs.map((s) => s.name) // ["hmac-sha2-256-etm@openssh.com", ..., "none"]
 * ```
 */
export const specs: ReadonlyArray<MacSpec> = [...hmacs.map((h) => h.spec), none]

/** A keyed MAC for one direction. */
export interface PacketMac {
  readonly spec: MacSpec
  /** The MAC of `uint32 seqno || parts[0] || parts[1] ...`. */
  compute(seqno: number, ...parts: ReadonlyArray<Uint8Array>): Uint8Array
  /** Whether `tag` is the MAC of `uint32 seqno || parts...`, compared in constant time. */
  verify(tag: Uint8Array, seqno: number, ...parts: ReadonlyArray<Uint8Array>): boolean
}

const noMac: PacketMac = {
  spec: none,
  compute: () => new Uint8Array(0),
  verify: (tag) => tag.length === 0
}

const keyedHmac = (spec: MacSpec, hash: string, key: KeyObject): PacketMac => {
  const sequence = new Uint8Array(4)
  const compute = (seqno: number, ...parts: ReadonlyArray<Uint8Array>): Uint8Array => {
    writeUint32(sequence, 0, seqno)
    const h = createHmac(hash, key).update(sequence)
    for (const part of parts) h.update(part)
    return h.digest()
  }
  return {
    spec,
    compute,
    verify: (tag, seqno, ...parts) => equalConstantTime(compute(seqno, ...parts), tag)
  }
}

/**
 * Keys a MAC. `key` must be exactly `spec.keyLength` bytes (the registry
 * cuts derived keys to size). Throws `UnknownAlgorithm` for a spec we do not
 * implement.
 *
 * @example
 * ```ts
 * const mac = makeMac(macSpec("hmac-sha2-256")!, macKey)
 * const tag = mac.compute(seqno, plaintextPacket)
 * ```
 */
export const makeMac = (spec: MacSpec, key: Uint8Array): PacketMac => {
  if (spec.name === none.name) return noMac
  const entry = hmacs.find((h) => h.spec.name === spec.name)
  if (entry === undefined) {
    throw new UnknownAlgorithm({ kind: "mac", name: spec.name, known: specs.map((s) => s.name) })
  }
  return keyedHmac(entry.spec, entry.hash, createSecretKey(key))
}
