import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import { concat, fromHex, toHex } from "../../src/internal/bytes.ts"
import { ProtocolError } from "../../src/SshError.ts"
import { DEFAULT_MAX_PACKET_LENGTH, Framer, MAX_DATA_LENGTH } from "../../src/Sftp/Framer.ts"
import { decode, encode } from "../../src/Sftp/Messages.ts"
import { split } from "../chunks.ts"
import { packet } from "./arbitraries.ts"


describe("Framer", () => {
  it("yields every packet body whatever the chunk boundaries", () => {
    fc.assert(
      fc.property(fc.array(packet, { maxLength: 6 }), fc.array(fc.nat(), { maxLength: 20 }), (packets, cuts) => {
        const encoded = packets.map(encode)
        const framer = new Framer()
        const bodies = split(concat(encoded), cuts).flatMap((chunk) => framer.push(chunk))
        expect(bodies.map(toHex)).toEqual(encoded.map((e) => toHex(e.subarray(4))))
        expect(bodies.map(decode)).toEqual(packets)
        expect(framer.buffered).toBe(0)
      }),
      { numRuns: 1000 }
    )
  })

  it("keeps no chunk after push: each chunk may be overwritten (freed) once its bodies are read", () => {
    fc.assert(
      fc.property(fc.array(packet, { maxLength: 6 }), fc.array(fc.nat(), { maxLength: 20 }), (packets, cuts) => {
        const encoded = packets.map(encode)
        const framer = new Framer()
        const seen: Array<string> = []
        for (const chunk of split(concat(encoded), cuts)) {
          const copy = chunk.slice()
          for (const body of framer.push(copy)) seen.push(toHex(body))
          copy.fill(0xee)
        }
        expect(seen).toEqual(encoded.map((e) => toHex(e.subarray(4))))
      }),
      { numRuns: 500 }
    )
  })

  it("works byte by byte and keeps a partial packet buffered", () => {
    const bytes = concat([encode({ _tag: "Init", version: 3, extensions: [] }), fromHex("000000")])
    const framer = new Framer()
    const bodies = [...bytes].flatMap((b) => framer.push(Uint8Array.of(b)))
    expect(bodies.map(toHex)).toEqual(["0100000003"])
    expect(framer.buffered).toBe(3)
    expect(framer.push(fromHex("0501000000"))).toEqual([])
    expect(framer.push(fromHex("03")).map(toHex)).toEqual(["0100000003"])
  })

  it("returns a view of the chunk when a packet lies inside it", () => {
    const chunk = concat([encode({ _tag: "Data", id: 1, data: new Uint8Array(100) }), encode({ _tag: "Limits", id: 2 })])
    const bodies = new Framer().push(chunk)
    expect(bodies).toHaveLength(2)
    expect(bodies[0]!.buffer).toBe(chunk.buffer)
    expect(bodies[1]!.buffer).toBe(chunk.buffer)
  })

  it("rejects an oversize length as soon as the prefix is in, before the body arrives", () => {
    const framer = new Framer()
    expect(() => framer.push(fromHex("ffffffff"))).toThrow(ProtocolError)
    expect(framer.buffered).toBe(4)
    expect(() => framer.push(new Uint8Array(10))).toThrow(/exceeds the maximum/)
    expect(() => new Framer().push(fromHex("00"))).not.toThrow()
    expect(() => new Framer().push(fromHex("0004"))).not.toThrow()
  })

  it("rejects a zero length", () => {
    expect(() => new Framer().push(fromHex("00000000"))).toThrow(/length 0/)
  })

  it("enforces a configurable maximum, inclusive", () => {
    const framer = new Framer({ maxPacketLength: 10 })
    expect(framer.push(fromHex("0000000a" + "00".repeat(10)))).toHaveLength(1)
    expect(() => framer.push(fromHex("0000000b"))).toThrow(/length 11 exceeds the maximum 10/)
    expect(() => new Framer({ maxPacketLength: 0 })).toThrow(ProtocolError)
    expect(() => new Framer({ maxPacketLength: 2 ** 32 })).toThrow(ProtocolError)
  })

  it("accepts a full 256 KiB WRITE by default", () => {
    expect(DEFAULT_MAX_PACKET_LENGTH).toBe(256 * 1024 + 1024)
    const write = encode({ _tag: "Write", id: 1, handle: new Uint8Array(256), offset: 0, data: new Uint8Array(MAX_DATA_LENGTH) })
    const framer = new Framer()
    const bodies = split(write, [1, 3, 5000, 70000]).flatMap((c) => framer.push(c))
    expect(bodies).toHaveLength(1)
    expect(bodies[0]!.length).toBe(write.length - 4)
  })

  it("garbage streams: packets or a ProtocolError, never another exception", () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 16 }), { maxLength: 10 }), (chunks) => {
        const framer = new Framer({ maxPacketLength: 64 })
        try {
          for (const chunk of chunks) for (const body of framer.push(chunk)) expect(body.length).toBeLessThanOrEqual(64)
        } catch (e) {
          expect(e).toBeInstanceOf(ProtocolError)
        }
      }),
      { numRuns: 2000 }
    )
  })
})
