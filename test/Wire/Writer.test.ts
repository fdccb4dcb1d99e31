import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import { fromHex, toHex } from "../../src/internal/bytes.ts"
import { build, mpintBytes, Writer } from "../../src/Wire/Writer.ts"

/** RFC 4251 §5, the mpint examples table: value → full encoding (length prefix included). */
const rfc4251MpintExamples: ReadonlyArray<readonly [bigint, string]> = [
  [0n, "00000000"],
  [0x9a378f9b2e332a7n, "0000000809a378f9b2e332a7"],
  [0x80n, "000000020080"],
  [-0x1234n, "00000002edcc"],
  [-0xdeadbeefn, "00000005ff21524111"]
]

describe("Writer known answers (RFC 4251 §5)", () => {
  it("encodes byte, boolean, uint32 and uint64 big-endian", () => {
    const bytes = build((w) =>
      w.byte(0xab).boolean(true).boolean(false).uint32(0x01020304).uint32(0xffffffff).uint64(0x0102030405060708n)
    )
    expect(toHex(bytes)).toBe("ab" + "01" + "00" + "01020304" + "ffffffff" + "0102030405060708")
  })

  it("encodes the RFC's string example \"testing\" and UTF-8 text", () => {
    expect(toHex(build((w) => w.string("testing")))).toBe("0000000774657374696e67")
    expect(toHex(build((w) => w.string("é")))).toBe("00000002c3a9")
    expect(toHex(build((w) => w.string(fromHex("00ff"))))).toBe("0000000200ff")
    expect(toHex(build((w) => w.string("")))).toBe("00000000")
  })

  it("encodes the RFC's name-list examples", () => {
    expect(toHex(build((w) => w.nameList([])))).toBe("00000000")
    expect(toHex(build((w) => w.nameList(["zlib"])))).toBe("000000047a6c6962")
    expect(toHex(build((w) => w.nameList(["zlib", "none"])))).toBe("000000097a6c69622c6e6f6e65")
  })

  it.each(rfc4251MpintExamples)("encodes mpint %s as in the RFC table", (value, hex) => {
    expect(toHex(build((w) => w.mpint(value)))).toBe(hex)
  })

  it("wraps out-of-range integers the way the wire types do", () => {
    expect(toHex(build((w) => w.uint32(-1)))).toBe("ffffffff")
    expect(toHex(build((w) => w.uint64(-1n)))).toBe("ffffffffffffffff")
    expect(toHex(build((w) => w.uint64(1n << 64n)))).toBe("0000000000000000")
  })

  it("raw writes bytes with no length prefix", () => {
    expect(toHex(build((w) => w.raw(fromHex("0102")).raw(new Uint8Array(0)).byte(3)))).toBe("010203")
  })
})

describe("mpintBytes", () => {
  it("is minimal two's complement at the sign boundaries", () => {
    const cases: ReadonlyArray<readonly [bigint, string]> = [
      [0n, ""],
      [1n, "01"],
      [0x7fn, "7f"],
      [0x80n, "0080"],
      [0xffn, "00ff"],
      [0x100n, "0100"],
      [0x7fffn, "7fff"],
      [0x8000n, "008000"],
      [-1n, "ff"],
      [-0x80n, "80"],
      [-0x81n, "ff7f"],
      [-0x100n, "ff00"],
      [-0x8000n, "8000"],
      [-0x8001n, "ff7fff"]
    ]
    for (const [value, hex] of cases) expect([value, toHex(mpintBytes(value))]).toEqual([value, hex])
  })

  it("never has a redundant leading 0x00 or 0xff byte, and its sign bit matches the value", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -(1n << 600n), max: 1n << 600n }), (value) => {
        const b = mpintBytes(value)
        expect(b.length === 0).toBe(value === 0n)
        if (b.length >= 2) {
          expect(b[0] === 0x00 && b[1]! < 0x80).toBe(false)
          expect(b[0] === 0xff && b[1]! >= 0x80).toBe(false)
        }
        if (b.length > 0) expect((b[0]! & 0x80) !== 0).toBe(value < 0n)
      })
    )
  })
})

describe("Writer.mpintFromUnsigned", () => {
  it("strips leading zeros and adds one when the top bit is set", () => {
    expect(toHex(build((w) => w.mpintFromUnsigned(fromHex("000080"))))).toBe("000000020080")
    expect(toHex(build((w) => w.mpintFromUnsigned(fromHex("00007f"))))).toBe("000000017f")
    expect(toHex(build((w) => w.mpintFromUnsigned(fromHex("0000"))))).toBe("00000000")
    expect(toHex(build((w) => w.mpintFromUnsigned(new Uint8Array(0))))).toBe("00000000")
  })

  it("agrees with mpint of the same non-negative value", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), (magnitude) => {
        const value = magnitude.length === 0 ? 0n : BigInt("0x" + toHex(magnitude))
        expect(toHex(build((w) => w.mpintFromUnsigned(magnitude)))).toBe(toHex(build((w) => w.mpint(value))))
      })
    )
  })
})

type Field =
  | { readonly kind: "byte"; readonly value: number }
  | { readonly kind: "uint32"; readonly value: number }
  | { readonly kind: "uint64"; readonly value: bigint }
  | { readonly kind: "string"; readonly value: Uint8Array }

const field: fc.Arbitrary<Field> = fc.oneof(
  fc.integer({ min: 0, max: 255 }).map((value) => ({ kind: "byte" as const, value })),
  fc.integer({ min: 0, max: 0xffffffff }).map((value) => ({ kind: "uint32" as const, value })),
  fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }).map((value) => ({ kind: "uint64" as const, value })),
  fc.uint8Array({ maxLength: 300 }).map((value) => ({ kind: "string" as const, value }))
)

const writeAll = (w: Writer, fields: ReadonlyArray<Field>): Uint8Array => {
  for (const f of fields) {
    if (f.kind === "byte") w.byte(f.value)
    else if (f.kind === "uint32") w.uint32(f.value)
    else if (f.kind === "uint64") w.uint64(f.value)
    else w.string(f.value)
  }
  return w.finish()
}

describe("Writer growth", () => {
  it("produces the same bytes whatever the initial size, including 0", () => {
    fc.assert(
      fc.property(fc.array(field, { maxLength: 20 }), fc.integer({ min: 0, max: 64 }), (fields, initial) => {
        const reference = writeAll(new Writer(1 << 16), fields)
        const grown = writeAll(new Writer(initial), fields)
        expect(toHex(grown)).toBe(toHex(reference))
        expect(grown.length).toBe(reference.length)
      })
    )
  })

  it("an empty Writer(0) can be written to (no endless growth loop)", () => {
    expect(toHex(new Writer(0).byte(1).uint32(2).finish())).toBe("0100000002")
  })

  it("finish returns exactly the written bytes, and later writes do not change an earlier result", () => {
    const w = new Writer(4).uint32(0x11223344)
    const first = w.finish()
    expect(toHex(first)).toBe("11223344")
    w.uint32(0x55667788)
    expect(toHex(first)).toBe("11223344")
    expect(toHex(w.finish())).toBe("1122334455667788")
    expect(w.length).toBe(8)
  })
})
