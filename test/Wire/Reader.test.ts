import * as fc from "fast-check"
import * as Result from "effect/Result"
import { describe, expect, it } from "vitest"
import { fromHex, toHex } from "../../src/internal/bytes.ts"
import { isSshErrorReason, MacMismatch, ProtocolError } from "../../src/SshError.ts"
import { asReason, attempt, MAX_MPINT_LENGTH, MAX_NAME_LIST_LENGTH, Reader } from "../../src/Wire/Reader.ts"
import { build, type Writer } from "../../src/Wire/Writer.ts"
import { name, text, uint32, uint64 } from "./arbitraries.ts"
import { protocolError } from "./throws.ts"


const roundTrip = <A>(write: (w: Writer, a: A) => unknown, read: (r: Reader) => A) => (value: A): A => {
  const r = new Reader(build((w) => write(w, value)))
  const decoded = read(r)
  r.end()
  return decoded
}

describe("decode ∘ encode = id", () => {
  it("byte", () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 255 }), (n) => {
      expect(roundTrip((w, v: number) => w.byte(v), (r) => r.byte())(n)).toBe(n)
    }))
  })

  it("boolean", () => {
    for (const b of [true, false]) expect(roundTrip((w, v: boolean) => w.boolean(v), (r) => r.boolean())(b)).toBe(b)
  })

  it("boolean reads any non-zero byte as true (RFC 4251 §5)", () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 255 }), (n) => {
      expect(new Reader(Uint8Array.of(n)).boolean()).toBe(true)
    }))
    expect(new Reader(Uint8Array.of(0)).boolean()).toBe(false)
  })

  it("uint32, including the high-bit values that overflow int32", () => {
    for (const n of [0, 1, 0x7fffffff, 0x80000000, 0xffffffff]) {
      expect(roundTrip((w, v: number) => w.uint32(v), (r) => r.uint32())(n)).toBe(n)
    }
    fc.assert(fc.property(uint32, (n) => {
      expect(roundTrip((w, v: number) => w.uint32(v), (r) => r.uint32())(n)).toBe(n)
    }))
  })

  it("uint64, including 2^63 and 2^64-1", () => {
    for (const n of [0n, 1n, 0xffffffffn, 0x100000000n, 1n << 63n, (1n << 64n) - 1n]) {
      expect(roundTrip((w, v: bigint) => w.uint64(v), (r) => r.uint64())(n)).toBe(n)
    }
    fc.assert(fc.property(uint64, (n) => {
      expect(roundTrip((w, v: bigint) => w.uint64(v), (r) => r.uint64())(n)).toBe(n)
    }))
  })

  it("string (bytes)", () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      expect(toHex(roundTrip((w, v: Uint8Array) => w.string(v), (r) => r.string())(bytes))).toBe(toHex(bytes))
    }))
  })

  it("utf8 text", () => {
    fc.assert(fc.property(text, (s) => {
      expect(roundTrip((w, v: string) => w.string(v), (r) => r.utf8())(s)).toBe(s)
    }))
  })

  it("utf8 keeps a leading U+FEFF (it is content, not a byte-order mark)", () => {
    for (const s of ["\uFEFF", "\uFEFFpassword", "\uFEFF\uFEFFx"]) {
      expect(roundTrip((w, v: string) => w.string(v), (r) => r.utf8())(s)).toBe(s)
    }
  })

  it("name", () => {
    fc.assert(fc.property(name, (s) => {
      expect(roundTrip((w, v: string) => w.string(v), (r) => r.name())(s)).toBe(s)
    }))
  })

  it("nameList, including the empty list", () => {
    fc.assert(fc.property(fc.array(name, { maxLength: 10 }), (names) => {
      expect(roundTrip((w, v: ReadonlyArray<string>) => w.nameList(v), (r) => r.nameList())(names)).toEqual(names)
    }))
  })

  it("mpint: zero, negative, high-bit and large values", () => {
    const edges = [0n, 1n, -1n, 0x7fn, 0x80n, 0xffn, -0x80n, -0x81n, 1n << 2047n, -(1n << 2047n), (1n << 4096n) - 1n]
    for (const n of edges) expect(roundTrip((w, v: bigint) => w.mpint(v), (r) => r.mpint())(n)).toBe(n)
    fc.assert(fc.property(fc.bigInt({ min: -(1n << 4000n), max: 1n << 4000n }), (n) => {
      expect(roundTrip((w, v: bigint) => w.mpint(v), (r) => r.mpint())(n)).toBe(n)
    }))
  })

  it("mpintFromUnsigned ↔ mpintBytes: the magnitude without leading zeros", () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (magnitude) => {
      let i = 0
      while (i < magnitude.length && magnitude[i] === 0) i++
      const decoded = roundTrip((w, v: Uint8Array) => w.mpintFromUnsigned(v), (r) => r.mpintBytes())(magnitude)
      expect(toHex(decoded)).toBe(toHex(magnitude.subarray(i)))
    }))
  })

  it("a sequence of mixed fields", () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 255 }), text, uint64, fc.array(name, { maxLength: 4 }), fc.bigInt(), fc.boolean(), (b, s, u, names, m, flag) => {
      const r = new Reader(build((w) => w.byte(b).string(s).uint64(u).nameList(names).mpint(m).boolean(flag)))
      expect([r.byte(), r.utf8(), r.uint64(), r.nameList(), r.mpint(), r.boolean()]).toEqual([b, s, u, names, m, flag])
      expect(r.remaining).toBe(0)
      r.end()
    }))
  })
})

describe("mpint decoding (RFC 4251 §5 examples)", () => {
  const examples: ReadonlyArray<readonly [string, bigint]> = [
    ["00000000", 0n],
    ["0000000809a378f9b2e332a7", 0x9a378f9b2e332a7n],
    ["000000020080", 0x80n],
    ["00000002edcc", -0x1234n],
    ["00000005ff21524111", -0xdeadbeefn]
  ]
  it.each(examples)("%s decodes to %s", (hex, value) => {
    const r = new Reader(fromHex(hex))
    expect(r.mpint()).toBe(value)
    r.end()
  })

  it("accepts a non-minimal encoding with its two's-complement value", () => {
    expect(new Reader(fromHex("00000003000080")).mpint()).toBe(0x80n)
    expect(new Reader(fromHex("00000002ffff")).mpint()).toBe(-1n)
  })

  it("mpintBytes strips the sign byte and rejects negative values", () => {
    expect(toHex(new Reader(fromHex("000000020080")).mpintBytes())).toBe("80")
    expect(toHex(new Reader(fromHex("00000000")).mpintBytes())).toBe("")
    expect(toHex(new Reader(fromHex("0000000100")).mpintBytes())).toBe("")
    expect(protocolError(() => new Reader(fromHex("00000002edcc")).mpintBytes("e")).message).toBe("e is negative")
  })

  it(`accepts ${MAX_MPINT_LENGTH} bytes and rejects one more`, () => {
    const ok = new Uint8Array(MAX_MPINT_LENGTH).fill(0x11)
    expect(new Reader(build((w) => w.string(ok))).mpint()).toBe(BigInt("0x" + toHex(ok)))
    const long = build((w) => w.string(new Uint8Array(MAX_MPINT_LENGTH + 1).fill(0x11)))
    expect(protocolError(() => new Reader(long).mpint("p")).message).toBe(`p too long (${MAX_MPINT_LENGTH + 1} bytes)`)
    expect(protocolError(() => new Reader(long).mpintBytes("n")).message).toMatch(/^n too long/)
  })
})

describe("malformed input → thrown ProtocolError", () => {
  const encoders: ReadonlyArray<readonly [string, Uint8Array, (r: Reader) => unknown]> = [
    ["byte", Uint8Array.of(7), (r) => r.byte()],
    ["uint32", fromHex("01020304"), (r) => r.uint32()],
    ["uint64", fromHex("0102030405060708"), (r) => r.uint64()],
    ["string", build((w) => w.string("abc")), (r) => r.string()],
    ["utf8", build((w) => w.string("héllo")), (r) => r.utf8()],
    ["name", build((w) => w.string("ssh-ed25519")), (r) => r.name()],
    ["nameList", build((w) => w.nameList(["a", "b"])), (r) => r.nameList()],
    ["mpint", build((w) => w.mpint(-0xdeadbeefn)), (r) => r.mpint()],
    ["mpintBytes", build((w) => w.mpint(0x80n)), (r) => r.mpintBytes()],
    ["raw", fromHex("010203"), (r) => r.raw(3)]
  ]

  it.each(encoders)("%s truncated at every length", (_, bytes, read) => {
    for (let cut = 0; cut < bytes.length; cut++) {
      expect(protocolError(() => read(new Reader(bytes.subarray(0, cut)))).message).toMatch(/^truncated /)
    }
    expect(() => read(new Reader(bytes))).not.toThrow()
  })

  it("an absurd string length fails before allocating, naming what was read", () => {
    const e = protocolError(() => new Reader(fromHex("ffffffff00")).string("host key"))
    expect(e.message).toBe("truncated host key: need 4294967295 bytes, 1 left")
  })

  it("a failed read does not move the cursor past the data", () => {
    const r = new Reader(fromHex("00000010" + "aabb"))
    protocolError(() => r.string())
    expect(r.remaining).toBe(2)
  })

  it("respects offset and limit: bytes past the limit are not readable", () => {
    const bytes = fromHex("ff0000000102")
    const r = new Reader(bytes, 1, 5)
    expect(r.uint32()).toBe(1)
    expect(r.remaining).toBe(0)
    expect(protocolError(() => r.byte()).message).toBe("truncated byte: need 1 bytes, 0 left")
    expect(toHex(new Reader(bytes, 1, 5).rest())).toBe("00000001")
  })

  it("utf8 rejects invalid UTF-8", () => {
    for (const hex of ["ff", "c3", "c328", "eda080", "f4908080", "c0af"]) {
      const bytes = build((w) => w.string(fromHex(hex)))
      expect(protocolError(() => new Reader(bytes).utf8("banner")).message).toBe("banner is not valid UTF-8")
    }
  })

  it("name rejects control characters, DEL and non-ASCII", () => {
    for (const byte of [0x00, 0x09, 0x0a, 0x1f, 0x7f, 0x80, 0xff]) {
      const bytes = build((w) => w.string(Uint8Array.of(0x61, byte)))
      expect(protocolError(() => new Reader(bytes).name("kex")).message).toBe(
        `kex has a non-printable byte 0x${byte.toString(16)}`
      )
    }
  })

  it(`name accepts ${MAX_NAME_LIST_LENGTH} bytes and rejects one more`, () => {
    const ok = "a".repeat(MAX_NAME_LIST_LENGTH)
    expect(new Reader(build((w) => w.string(ok))).name()).toBe(ok)
    const long = build((w) => w.string("a".repeat(MAX_NAME_LIST_LENGTH + 1)))
    expect(protocolError(() => new Reader(long).nameList("ciphers")).message).toBe(
      `ciphers too long (${MAX_NAME_LIST_LENGTH + 1} bytes)`
    )
  })

  it("nameList rejects empty names", () => {
    for (const s of [",", "a,", ",a", "a,,b"]) {
      const bytes = build((w) => w.string(s))
      expect(protocolError(() => new Reader(bytes).nameList("macs")).message).toBe("macs has an empty name")
    }
  })

  it("end rejects trailing bytes", () => {
    const r = new Reader(fromHex("0000000100"))
    r.uint32()
    expect(protocolError(() => r.end("KEXINIT")).message).toBe("1 trailing bytes after KEXINIT")
    r.byte()
    expect(() => r.end()).not.toThrow()
  })

  it("random bytes and any read sequence: only ProtocolError is ever thrown", () => {
    const ops: ReadonlyArray<(r: Reader, n: number) => unknown> = [
      (r) => r.byte(),
      (r) => r.boolean(),
      (r) => r.uint32(),
      (r) => r.uint64(),
      (r) => r.string(),
      (r) => r.utf8(),
      (r) => r.name(),
      (r) => r.nameList(),
      (r) => r.mpint(),
      (r) => r.mpintBytes(),
      (r, n) => r.raw(n),
      (r) => r.end()
    ]
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 64 }),
        fc.array(fc.tuple(fc.integer({ min: 0, max: ops.length - 1 }), fc.nat(70)), { maxLength: 12 }),
        (bytes, sequence) => {
          const r = new Reader(bytes)
          try {
            for (const [op, n] of sequence) ops[op]!(r, n)
          } catch (e) {
            expect(e).toBeInstanceOf(ProtocolError)
          }
          expect(r.offset).toBeLessThanOrEqual(bytes.length)
        }
      )
    )
  })
})

describe("views", () => {
  it("string, raw and rest return views into the input, not copies", () => {
    const bytes = fromHex("00000002aabbccdd")
    const r = new Reader(bytes)
    const s = r.string()
    const raw = r.raw(1)
    const rest = r.rest()
    expect(s.buffer).toBe(bytes.buffer)
    expect([toHex(s), toHex(raw), toHex(rest)]).toEqual(["aabb", "cc", "dd"])
    expect(s.byteOffset).toBe(4)
    expect(r.remaining).toBe(0)
    expect(toHex(r.rest())).toBe("")
  })
})

describe("attempt and asReason", () => {
  it("returns the value of a decoder that succeeds", () => {
    const result = attempt(() => new Reader(fromHex("0000002a")).uint32())
    expect(Result.isSuccess(result) && result.success).toBe(42)
  })

  it("returns a thrown reason as is", () => {
    const reason = new MacMismatch({ message: "bad tag" })
    const result = attempt(() => {
      throw reason
    })
    expect(Result.isFailure(result) && result.failure).toBe(reason)
  })

  it("returns a truncation as a ProtocolError", () => {
    const result = attempt(() => new Reader(fromHex("0000")).uint32())
    expect(Result.isFailure(result) && result.failure._tag).toBe("ProtocolError")
  })

  it("throws again whatever is not a reason: a bug is not the peer's malformed input", () => {
    fc.assert(fc.property(fc.anything(), (thrown) => {
      let caught: unknown = "nothing"
      try {
        const result = attempt(() => {
          throw thrown
        })
        expect(Result.isFailure(result) && result.failure).toBe(thrown)
      } catch (u) {
        caught = u
      }
      expect(caught).toBe(isSshErrorReason(thrown) ? "nothing" : thrown)
    }))
  })

  it("throws a TypeError of a decoder again rather than calling it a ProtocolError", () => {
    const bug = new TypeError("Cannot read properties of undefined (reading 'length')")
    expect(() => attempt(() => {
      throw bug
    })).toThrow(bug)
  })

  it("asReason returns a reason and throws anything else again", () => {
    const reason = new ProtocolError({ message: "truncated" })
    expect(asReason(reason)).toBe(reason)
    expect(() => asReason(new RangeError("Invalid typed array length"))).toThrow(RangeError)
    expect(() => asReason({ _tag: "ProtocolError", message: "a look-alike" })).toThrow()
  })
})
