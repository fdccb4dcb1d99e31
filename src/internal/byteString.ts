/**
 * Lossless byte strings: protocol fields that are "strings of bytes, usually
 * UTF-8" (SFTP v3 file names, long names, status messages) decoded to a JS
 * `string` and encoded back to exactly the same bytes.
 *
 * Valid UTF-8 decodes as usual. Every byte of an invalid sequence becomes the
 * lone surrogate U+DC80..U+DCFF ("surrogateescape", Python's PEP 383), which
 * valid UTF-8 can never produce, and encoding turns such a surrogate back into
 * its byte. So `encode(decode(bytes))` equals `bytes` for any input, and a file
 * whose name is not UTF-8 can still be listed, opened and renamed.
 *
 * @internal
 * @since 0.1.0
 */
import type { Reader } from "../Wire/Reader.ts"

const strictDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })
const encoder = new TextEncoder()
const escapedByte = /[\uDC80-\uDCFF]/

const isContinuation = (b: number | undefined): boolean => b !== undefined && (b & 0xc0) === 0x80

const inRange = (b: number | undefined, lo: number, hi: number): boolean => b !== undefined && b >= lo && b <= hi

/** Length of the well-formed UTF-8 sequence starting at `i`, or 0 if it is not one (RFC 3629 table). */
const sequenceLength = (bytes: Uint8Array, i: number): number => {
  const b0 = bytes[i]!
  if (b0 < 0x80) return 1
  const b1 = bytes[i + 1]
  if (b0 >= 0xc2 && b0 <= 0xdf) return isContinuation(b1) ? 2 : 0
  if (b0 >= 0xe0 && b0 <= 0xef) {
    const ok1 = b0 === 0xe0 ? inRange(b1, 0xa0, 0xbf) : b0 === 0xed ? inRange(b1, 0x80, 0x9f) : isContinuation(b1)
    return ok1 && isContinuation(bytes[i + 2]) ? 3 : 0
  }
  if (b0 >= 0xf0 && b0 <= 0xf4) {
    const ok1 = b0 === 0xf0 ? inRange(b1, 0x90, 0xbf) : b0 === 0xf4 ? inRange(b1, 0x80, 0x8f) : isContinuation(b1)
    return ok1 && isContinuation(bytes[i + 2]) && isContinuation(bytes[i + 3]) ? 4 : 0
  }
  return 0
}

const decodeEscaping = (bytes: Uint8Array): string => {
  let out = ""
  let i = 0
  while (i < bytes.length) {
    const n = sequenceLength(bytes, i)
    if (n === 0) {
      out += String.fromCharCode(0xdc00 + bytes[i]!)
      i += 1
    } else {
      out += strictDecoder.decode(bytes.subarray(i, i + n))
      i += n
    }
  }
  return out
}

/**
 * Decodes bytes as UTF-8, escaping each byte of an invalid sequence as a lone
 * surrogate U+DC80..U+DCFF. Never throws; a leading BOM is kept.
 *
 * @example
 * ```ts
 * decodeByteString(new Uint8Array([0x61, 0xff])) // "a\uDCFF"
 * ```
 */
export const decodeByteString = (bytes: Uint8Array): string => {
  try {
    return strictDecoder.decode(bytes)
  } catch {
    return decodeEscaping(bytes)
  }
}

const encodeEscaping = (s: string): Uint8Array => {
  const out: Array<number> = []
  let start = 0
  const flush = (end: number) => {
    if (end > start) for (const b of encoder.encode(s.slice(start, end))) out.push(b)
  }
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const next = s.charCodeAt(i + 1)
      if (next >= 0xdc00 && next <= 0xdfff) {
        i++ // a valid pair: left to the UTF-8 encoder
        continue
      }
    }
    if (c >= 0xdc80 && c <= 0xdcff) {
      flush(i)
      out.push(c - 0xdc00)
      start = i + 1
    }
  }
  flush(s.length)
  return Uint8Array.from(out)
}

/**
 * Encodes a string as UTF-8, turning lone surrogates U+DC80..U+DCFF back into
 * the bytes they escape (the inverse of `decodeByteString`). Other lone
 * surrogates become U+FFFD, as with `TextEncoder`.
 *
 * @example
 * ```ts
 * encodeByteString("a\uDCFF") // Uint8Array [0x61, 0xff]
 * ```
 */
export const encodeByteString = (s: string): Uint8Array =>
  escapedByte.test(s) ? encodeEscaping(s) : encoder.encode(s)

/**
 * Reads a `string` field as a lossless byte string.
 *
 * @example
 * ```ts
 * readByteString(new Reader(bytes), "path") // "/etc/hosts"
 * ```
 */
export const readByteString = (r: Reader, what: string): string => decodeByteString(r.string(what))
