/**
 * fast-check arbitraries for RFC 4251 wire values, shared by the codec tests.
 */
import * as fc from "fast-check"

/** A character allowed in a name: printable US-ASCII except the name-list separator. */
export const nameChar = fc.integer({ min: 0x20, max: 0x7e }).filter((c) => c !== 0x2c).map((c) => String.fromCharCode(c))
/** An algorithm, method or request name. */
export const name = fc.string({ unit: nameChar, minLength: 1, maxLength: 20 })
/** Valid Unicode text (no lone surrogates, which UTF-8 cannot carry). */
export const text = fc.string({ unit: "binary", maxLength: 40 })
export const uint32 = fc.integer({ min: 0, max: 0xffffffff })
export const uint64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n })
export const bytes = fc.uint8Array({ maxLength: 64 })
