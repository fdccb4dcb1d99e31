import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import { fromHex, toHex } from "../../src/internal/bytes.ts"
import { FieldList, readSafeUint64, readSaturatingUint64 } from "../../src/internal/fieldList.ts"
import { ProtocolError } from "../../src/SshError.ts"
import { Reader } from "../../src/Wire/Reader.ts"

describe("FieldList", () => {
  it("writes every field kind at its exact size", () => {
    const f = new FieldList().uint32(1).uint64(2 ** 40 + 3).bigUint64(0xffff_ffff_ffff_ffffn).string(fromHex("aa")).raw(fromHex("bb"))
    expect(f.size).toBe(4 + 8 + 8 + 5 + 1)
    const bytes = f.bytes()
    expect(bytes.buffer.byteLength).toBe(26)
    expect(toHex(bytes)).toBe("00000001" + "0000010000000003" + "ffffffffffffffff" + "00000001aa" + "bb")
  })

  it("frames a packet with length and type", () => {
    expect(toHex(new FieldList().uint32(3).packet(1))).toBe("000000050100000003")
  })

  it("rejects numbers the wire cannot carry", () => {
    expect(() => new FieldList().uint32(-1)).toThrow(ProtocolError)
    expect(() => new FieldList().uint32(2 ** 32)).toThrow(ProtocolError)
    expect(() => new FieldList().uint32(1.5)).toThrow(ProtocolError)
    expect(() => new FieldList().uint64(2 ** 53)).toThrow(ProtocolError)
    expect(() => new FieldList().uint64(Number.NaN)).toThrow(ProtocolError)
    expect(() => new FieldList().bigUint64(-1n)).toThrow(ProtocolError)
    expect(() => new FieldList().bigUint64(1n << 64n)).toThrow(ProtocolError)
  })

  it("uint64 numbers round-trip through readSafeUint64", () => {
    fc.assert(
      fc.property(fc.maxSafeNat(), (n) => {
        expect(readSafeUint64(new Reader(new FieldList().uint64(n).bytes()), "n")).toBe(n)
      })
    )
  })

  it("readSafeUint64 rejects 2^53 and readSaturatingUint64 clamps it", () => {
    const big = fromHex("0020000000000000")
    expect(readSafeUint64(new Reader(fromHex("001fffffffffffff")), "n")).toBe(Number.MAX_SAFE_INTEGER)
    expect(() => readSafeUint64(new Reader(big), "size")).toThrow(/size exceeds 2\^53-1/)
    expect(readSaturatingUint64(new Reader(big))).toBe(Number.MAX_SAFE_INTEGER)
    expect(readSaturatingUint64(new Reader(fromHex("0000000000001000")))).toBe(4096)
  })
})
