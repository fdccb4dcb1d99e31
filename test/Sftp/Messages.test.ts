import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import { concat, fromHex, toHex } from "../../src/internal/bytes.ts"
import { ProtocolError } from "../../src/SshError.ts"
import * as Extensions from "../../src/Sftp/Extensions.ts"
import {
  DATA_HEADER_LENGTH,
  decode,
  encode,
  encodeWriteHeader,
  isRequest,
  isResponse,
  OpenFlags,
  openFlags,
  PacketType,
  type SftpPacket,
  writeDataHeader
} from "../../src/Sftp/Messages.ts"
import { packet, packetsByTag } from "./arbitraries.ts"

const body = (bytes: Uint8Array): Uint8Array => bytes.subarray(4)

/** Runs `f` and returns what it threw, failing the test if it threw anything but a ProtocolError. */
const outcome = (f: () => unknown): "ok" | "protocol-error" => {
  try {
    f()
    return "ok"
  } catch (e) {
    expect(e).toBeInstanceOf(ProtocolError)
    return "protocol-error"
  }
}

// Packets whose body may legally end early (extension lists, opaque tails, pre-v3 STATUS, EXTENDED names).
const flexibleTags: ReadonlySet<string> = new Set([
  "Init",
  "Version",
  "Extended",
  "ExtendedReply",
  "Status",
  ...Object.keys(packetsByTag).filter(Extensions.isExtensionTag)
])

describe("Messages known-answer encodings (draft-ietf-secsh-filexfer-02 layouts)", () => {
  it("INIT version 3 as OpenSSH's sftp client sends it", () => {
    expect(toHex(encode({ _tag: "Init", version: 3, extensions: [] }))).toBe("000000050100000003")
  })

  it("VERSION with OpenSSH-style extension pairs", () => {
    const bytes = encode({ _tag: "Version", version: 3, extensions: [{ name: "a@b", data: "1" }] })
    expect(toHex(bytes)).toBe("00000011" + "02" + "00000003" + "00000003614062" + "0000000131")
  })

  it("SYMLINK puts targetpath before linkpath (openssh/PROTOCOL §4.1)", () => {
    const bytes = encode({ _tag: "Symlink", id: 1, linkPath: "l", targetPath: "t" })
    expect(toHex(bytes)).toBe("0000000f" + "14" + "00000001" + "0000000174" + "000000016c")
    expect(decode(body(bytes))).toEqual({ _tag: "Symlink", id: 1, linkPath: "l", targetPath: "t" })
  })

  it("OPEN with pflags and ATTRS", () => {
    const bytes = encode({ _tag: "Open", id: 2, path: "/f", pflags: 0x1a, attrs: { permissions: 0o644 } })
    expect(toHex(bytes)).toBe(
      "00000017" + "03" + "00000002" + "000000022f66" + "0000001a" + "00000004" + "000001a4"
    )
  })

  it("READ with a uint64 offset above 2^32", () => {
    const bytes = encode({ _tag: "Read", id: 9, handle: fromHex("0102"), offset: 2 ** 40 + 5, length: 32768 })
    expect(toHex(bytes)).toBe(
      "00000017" + "05" + "00000009" + "000000020102" + "0000010000000005" + "00008000"
    )
  })

  it("STATUS with message and language tag", () => {
    const bytes = encode({ _tag: "Status", id: 7, code: 1, message: "EOF", language: "en" })
    expect(toHex(bytes)).toBe("00000016" + "65" + "00000007" + "00000001" + "00000003454f46" + "00000002656e")
  })

  it("EXTENDED typed requests carry their request name", () => {
    const bytes = encode({ _tag: "Limits", id: 3 })
    expect(toHex(bytes)).toBe("0000001b" + "c8" + "00000003" + "00000012" + toHex(new TextEncoder().encode("limits@openssh.com")))
    expect(decode(body(bytes))).toEqual({ _tag: "Limits", id: 3 })
  })

  it("STATUS without message and language (pre-v3 servers) decodes with empty strings", () => {
    expect(decode(fromHex("65" + "00000004" + "00000002"))).toEqual({
      _tag: "Status",
      id: 4,
      code: 2,
      message: "",
      language: ""
    })
  })

  it("a non-UTF-8 file name survives decode and encode byte for byte", () => {
    const raw = "68" + "00000001" + "00000001" + "00000002ff41" + "00000000" + "00000000"
    const decoded = decode(fromHex(raw))
    expect(decoded).toEqual({
      _tag: "Name",
      id: 1,
      entries: [{ filename: "\uDCFFA", longname: "", attrs: {} }]
    })
    expect(toHex(body(encode(decoded)))).toBe(raw)
  })

  it("an unknown EXTENDED request decodes generically with its data", () => {
    const decoded = decode(fromHex("c8" + "00000005" + "00000003783479" + "0102"))
    expect(decoded).toEqual({ _tag: "Extended", id: 5, request: "x4y", data: fromHex("0102") })
  })
})

describe("Messages decode∘encode", () => {
  it("is the identity for every packet type", () => {
    fc.assert(
      fc.property(packet, (p) => {
        const bytes = encode(p)
        expect(decode(body(bytes))).toEqual(p)
      }),
      { numRuns: 3000 }
    )
  })

  it.each(Object.keys(packetsByTag))("round-trips %s", (tag) => {
    const arb = packetsByTag[tag as SftpPacket["_tag"]] as fc.Arbitrary<SftpPacket>
    fc.assert(
      fc.property(arb, (p) => {
        expect(decode(body(encode(p)))).toEqual(p)
      }),
      { numRuns: 200 }
    )
  })

  it("allocates the packet once at its exact size, with a correct length prefix", () => {
    fc.assert(
      fc.property(packet, (p) => {
        const bytes = encode(p)
        expect(bytes.byteOffset).toBe(0)
        expect(bytes.buffer.byteLength).toBe(bytes.length)
        expect(new DataView(bytes.buffer).getUint32(0)).toBe(bytes.length - 4)
      })
    )
  })

  it("writes the packet type byte of the SFTP spec", () => {
    fc.assert(
      fc.property(packet, (p) => {
        const type = encode(p)[4]
        const expected = Extensions.isExtensionTag(p._tag) ? PacketType.Extended : PacketType[p._tag as keyof typeof PacketType]
        expect(type).toBe(expected)
      })
    )
  })

  it("a WRITE header followed by its data is the WRITE encoded whole", () => {
    fc.assert(
      fc.property(packetsByTag.Write, fc.uint8Array({ maxLength: 70_000 }), (write, data) => {
        const request = { ...write, data }
        const header = encodeWriteHeader(request)
        expect(toHex(concat([header, data]))).toBe(toHex(encode(request)))
      }),
      { numRuns: 200 }
    )
  })

  it("a DATA header written in front of its data is the DATA reply encoded whole", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffff_ffff }), fc.uint8Array({ maxLength: 70_000 }), (id, data) => {
        const packet = new Uint8Array(DATA_HEADER_LENGTH + data.length)
        packet.set(data, DATA_HEADER_LENGTH)
        writeDataHeader(packet, id, data.length)
        expect(toHex(packet)).toBe(toHex(encode({ _tag: "Data", id, data })))
      }),
      { numRuns: 200 }
    )
  })

  it("decoded data is a view into the body, not a copy", () => {
    const bytes = encode({ _tag: "Data", id: 1, data: new Uint8Array(1000).fill(7) })
    const decoded = decode(body(bytes))
    expect(decoded._tag === "Data" && decoded.data.buffer).toBe(bytes.buffer)
  })
})

describe("Messages decode of bad input", () => {
  it("random bytes: a packet or a ProtocolError, never another exception", () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => void outcome(() => decode(bytes))), {
      numRuns: 5000
    })
  })

  it("random bodies behind every valid type byte", () => {
    const types = Object.values(PacketType)
    fc.assert(
      fc.property(fc.constantFrom(...types), fc.uint8Array({ maxLength: 200 }), (type, rest) => {
        outcome(() => decode(Uint8Array.of(type, ...rest)))
      }),
      { numRuns: 5000 }
    )
  })

  it("every truncation of a fixed-layout packet is a ProtocolError", () => {
    fc.assert(
      fc.property(packet, (p) => {
        const full = body(encode(p))
        for (let n = 0; n < full.length; n++) {
          const result = outcome(() => decode(full.subarray(0, n)))
          if (!flexibleTags.has(p._tag)) expect(result).toBe("protocol-error")
        }
      }),
      { numRuns: 500 }
    )
  })

  it("trailing bytes after a fixed-layout packet are a ProtocolError", () => {
    fc.assert(
      fc.property(packet, fc.uint8Array({ minLength: 1, maxLength: 8 }), (p, extra) => {
        fc.pre(!flexibleTags.has(p._tag))
        const full = body(encode(p))
        expect(outcome(() => decode(Uint8Array.of(...full, ...extra)))).toBe("protocol-error")
      })
    )
  })

  it("mutated bodies: a packet or a ProtocolError, never another exception", () => {
    fc.assert(
      fc.property(packet, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }), (p, edits) => {
        const mutated = Uint8Array.from(body(encode(p)))
        for (const [at, value] of edits) mutated[at % mutated.length] = value
        outcome(() => decode(mutated))
      }),
      { numRuns: 3000 }
    )
  })

  it("rejects empty bodies, unknown types and absurd counts", () => {
    expect(() => decode(new Uint8Array(0))).toThrow(ProtocolError)
    expect(() => decode(fromHex("6300000001"))).toThrow(/unknown SFTP packet type 99/)
    expect(() => decode(fromHex("68" + "00000001" + "ffffffff"))).toThrow(/NAME count/)
  })

  it("rejects offsets above 2^53 - 1 and handles over 256 bytes", () => {
    const read = fromHex("05" + "00000001" + "00000000" + "0020000000000000" + "00000010")
    expect(() => decode(read)).toThrow(/offset exceeds 2\^53-1/)
    const handle = new Uint8Array(4 + 257)
    new DataView(handle.buffer).setUint32(0, 257)
    expect(() => decode(Uint8Array.of(0x66, 0, 0, 0, 1, ...handle))).toThrow(/handle is 257 bytes/)
  })

  it("rejects values the wire cannot carry when encoding", () => {
    expect(() => encode({ _tag: "Read", id: 1, handle: new Uint8Array(1), offset: -1, length: 1 })).toThrow(ProtocolError)
    expect(() => encode({ _tag: "Read", id: 1, handle: new Uint8Array(1), offset: 2 ** 53, length: 1 })).toThrow(ProtocolError)
    expect(() => encode({ _tag: "Read", id: 1, handle: new Uint8Array(1), offset: 0.5, length: 1 })).toThrow(ProtocolError)
    expect(() => encode({ _tag: "Stat", id: 2 ** 32, path: "/" })).toThrow(ProtocolError)
    expect(() => encode({ _tag: "Close", id: 1, handle: new Uint8Array(257) })).toThrow(/handle is 257 bytes/)
    expect(() => encode({ _tag: "Setstat", id: 1, path: "/", attrs: { uid: 0 } })).toThrow(/uid and gid/)
  })
})

describe("Messages helpers", () => {
  it("openFlags follows Node's fs.open modes", () => {
    expect(openFlags("r")).toBe(OpenFlags.Read)
    expect(openFlags("r+")).toBe(OpenFlags.Read | OpenFlags.Write)
    expect(openFlags("w")).toBe(0x1a)
    expect(openFlags("wx")).toBe(OpenFlags.Write | OpenFlags.Create | OpenFlags.Exclusive)
    expect(openFlags("a+")).toBe(OpenFlags.Read | OpenFlags.Write | OpenFlags.Create | OpenFlags.Append)
    expect(() => openFlags("rw" as never)).toThrow(ProtocolError)
    expect(() => openFlags("toString" as never)).toThrow(ProtocolError)
  })

  it("isRequest / isResponse partition the packets with ids", () => {
    fc.assert(
      fc.property(packet, (p) => {
        const hasId = p._tag !== "Init" && p._tag !== "Version"
        expect(isRequest(p) !== isResponse(p)).toBe(hasId)
      })
    )
    expect(isResponse({ _tag: "Data", id: 1, data: new Uint8Array() })).toBe(true)
    expect(isRequest({ _tag: "Fsync", id: 1, handle: new Uint8Array() })).toBe(true)
  })
})
