/**
 * Small byte-array helpers shared by the core.
 * @internal
 */
import { Buffer } from "node:buffer"

export const concat = (parts: ReadonlyArray<Uint8Array>): Uint8Array => {
  let total = 0
  for (const p of parts) total += p.length
  const out = new Uint8Array(total)
  let o = 0
  for (const p of parts) {
    out.set(p, o)
    o += p.length
  }
  return out
}

/**
 * Constant-time equality (for MACs and tags).
 *
 * @example
 * ```ts
 * equalConstantTime(expectedTag, receivedTag)
 * ```
 */
export const equalConstantTime = (a: Uint8Array, b: Uint8Array): boolean => {
  if (a.length !== b.length) return false
  let diff = 0
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!
  return diff === 0
}

/**
 * Byte-wise equality.
 *
 * @example
 * ```ts
 * equal(Uint8Array.of(1), Uint8Array.of(1)) // true
 * ```
 */
export const equal = (a: Uint8Array, b: Uint8Array): boolean => {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/**
 * Lower-case hex.
 *
 * @example
 * ```ts
 * toHex(Uint8Array.of(0xab)) // "ab"
 * ```
 */
export const toHex = (bytes: Uint8Array): string => {
  let s = ""
  for (let i = 0; i < bytes.length; i++) s += bytes[i]!.toString(16).padStart(2, "0")
  return s
}

/**
 * Bytes from hex.
 *
 * @example
 * ```ts
 * fromHex("ab") // Uint8Array [0xab]
 * ```
 */
export const fromHex = (hex: string): Uint8Array => {
  const out = new Uint8Array(hex.length >> 1)
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16)
  return out
}

/**
 * UTF-8 encoding.
 *
 * @example
 * ```ts
 * utf8("é") // Uint8Array [0xc3, 0xa9]
 * ```
 */
export const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s)

/**
 * UTF-8 decoding.
 *
 * @example
 * ```ts
 * fromUtf8(Uint8Array.of(0x68, 0x69)) // "hi"
 * ```
 */
export const fromUtf8 = (b: Uint8Array): string => new TextDecoder().decode(b)

/**
 * Reads a big-endian uint32.
 *
 * @example
 * ```ts
 * readUint32(Uint8Array.of(0, 0, 1, 0), 0) // 256
 * ```
 */
export const readUint32 = (bytes: Uint8Array, offset: number): number =>
  ((bytes[offset]! << 24) | (bytes[offset + 1]! << 16) | (bytes[offset + 2]! << 8) | bytes[offset + 3]!) >>> 0

/**
 * Writes a big-endian uint32.
 *
 * @example
 * ```ts
 * writeUint32(out, 0, packetLength)
 * ```
 */
export const writeUint32 = (bytes: Uint8Array, offset: number, value: number): void => {
  bytes[offset] = value >>> 24
  bytes[offset + 1] = value >>> 16
  bytes[offset + 2] = value >>> 8
  bytes[offset + 3] = value
}

/**
 * A fresh `Uint8Array` of `length` bytes left uninitialized, viewed as a
 * plain `Uint8Array`: the caller must write every byte. It is a buffer of
 * its own, never a slice of Node's shared pool, so that the library may
 * register and free it early (`ownedBuffers`) without touching anyone
 * else's bytes.
 *
 * @example
 * ```ts
 * const plain = uninitialized(16)
 * plain.set(block, 0)
 * ```
 */
export const uninitialized = (length: number): Uint8Array => {
  const b = Buffer.allocUnsafeSlow(length)
  return new Uint8Array(b.buffer, b.byteOffset, length)
}
