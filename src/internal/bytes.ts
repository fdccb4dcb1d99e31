/**
 * Small byte-array helpers shared by the core.
 * @internal
 */

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
