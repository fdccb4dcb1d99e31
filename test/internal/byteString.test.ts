import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import { decodeByteString, encodeByteString, readByteString } from "../../src/internal/byteString.ts"
import { fromHex, toHex } from "../../src/internal/bytes.ts"
import { ProtocolError } from "../../src/SshError.ts"
import { Reader } from "../../src/Wire/Reader.ts"

describe("byteString", () => {
  it("decodes valid UTF-8 like TextDecoder and keeps a leading BOM", () => {
    expect(decodeByteString(fromHex("68c3a9e282acf09f9880"))).toBe("hé€😀")
    expect(decodeByteString(fromHex("efbbbf41"))).toBe("\uFEFFA")
    expect(toHex(encodeByteString("\uFEFFA"))).toBe("efbbbf41")
  })

  it("escapes each byte of an invalid sequence as in Python's surrogateescape", () => {
    expect(decodeByteString(fromHex("61ff"))).toBe("a\uDCFF")
    expect(decodeByteString(fromHex("e282"))).toBe("\uDCE2\uDC82") // truncated "€"
    expect(decodeByteString(fromHex("eda080"))).toBe("\uDCED\uDCA0\uDC80") // an encoded surrogate
    expect(decodeByteString(fromHex("c0af"))).toBe("\uDCC0\uDCAF") // overlong "/"
    expect(decodeByteString(fromHex("f4908080"))).toBe("\uDCF4\uDC90\uDC80\uDC80") // above U+10FFFF
    expect(decodeByteString(fromHex("80e282ac"))).toBe("\uDC80€")
  })

  it("encodes escapes back to their bytes and other lone surrogates as U+FFFD", () => {
    expect(toHex(encodeByteString("a\uDCFF€"))).toBe("61ffe282ac")
    expect(toHex(encodeByteString("\uD800x"))).toBe("efbfbd78")
    expect(toHex(encodeByteString("\uD800\uDC80"))).toBe("f0908280") // a valid pair, not an escape
  })

  it("encode∘decode is the identity on arbitrary bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        expect(toHex(encodeByteString(decodeByteString(bytes)))).toBe(toHex(bytes))
      }),
      { numRuns: 5000 }
    )
  })

  it("decode∘encode is the identity on well-formed strings", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 32 }), (s) => {
        expect(decodeByteString(encodeByteString(s))).toBe(s)
      })
    )
  })

  it("readByteString reads a string field and fails on truncation with a ProtocolError", () => {
    expect(readByteString(new Reader(fromHex("00000002ff41")), "path")).toBe("\uDCFFA")
    expect(() => readByteString(new Reader(fromHex("00000009ff")), "path")).toThrow(ProtocolError)
  })
})
