/**
 * The client's zero-copy reply framing: the same packets as Framer + decode
 * whatever the chunk boundaries, DATA payloads as views of the chunks (no
 * copy), and the same errors on bad framing.
 */
import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import { concat } from "../../src/internal/bytes.ts"
import { isDataReply, ReplyReader } from "../../src/internal/sftpReplyReader.ts"
import { adopt, releaseAll } from "../../src/internal/ownedBuffers.ts"
import { Framer } from "../../src/Sftp/Framer.ts"
import { decode, encode, type SftpPacket } from "../../src/Sftp/Messages.ts"
import { ProtocolError } from "../../src/SshError.ts"
import { split } from "../chunks.ts"
import { packet } from "../Sftp/arbitraries.ts"


/** Plain objects for comparison (a DATA reply's `data` is a getter). */
const plain = (p: SftpPacket): SftpPacket => p._tag === "Data" ? { _tag: "Data", id: p.id, data: p.data } : p

const data = fc.record({ id: fc.nat({ max: 0xffff_ffff }), data: fc.uint8Array({ maxLength: 300 }) }).map((r): SftpPacket => ({ _tag: "Data", ...r }))

describe("ReplyReader", () => {
  it("with freeable chunks: the same packets, nothing freed under a packet still in use, all-DATA chunks freed once let go", () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(packet, data), { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 30 }), (packets, cuts) => {
        const stream = concat(packets.map(encode))
        const chunks = split(stream, cuts).map((chunk) => adopt(chunk.slice()))
        const reader = new ReplyReader()
        // each chunk is borrowed, as the SFTP client borrows its channel's stdout: released once it is pushed
        const ours = chunks.flatMap((chunk) => {
          const packets = reader.push(chunk)
          releaseAll([chunk])
          return packets
        })
        const expected = packets.map(plain)
        expect(ours.map(plain)).toEqual(expected)
        // a consumer done with the DATA replies lets their parts go, as `get` does once they are written
        for (const reply of ours) if (isDataReply(reply)) releaseAll(reply.parts)
        ours.forEach((reply, i) => {
          if (reply._tag !== "Data") expect(plain(reply)).toEqual(expected[i])
        })
        if (packets.every((p) => p._tag === "Data")) expect(chunks.every((chunk) => chunk.byteLength === 0)).toBe(true)
      })
    )
  })

  it("yields what Framer + decode yield, whatever the chunk boundaries", () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(packet, data), { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 30 }), (packets, cuts) => {
        const stream = concat(packets.map(encode))
        const reader = new ReplyReader()
        const framer = new Framer()
        const chunks = split(stream, cuts)
        const ours = chunks.flatMap((chunk) => reader.push(chunk)).map(plain)
        const theirs = chunks.flatMap((chunk) => framer.push(chunk)).map(decode)
        expect(ours).toEqual(theirs)
        expect(ours).toEqual(packets)
      }),
      { numRuns: 1000 }
    )
  })

  it("hands DATA payloads over as views of the chunks, without copying", () => {
    const payload = Uint8Array.from({ length: 100 }, (_, i) => i)
    const bytes = encode({ _tag: "Data", id: 7, data: payload })
    const chunks = [bytes.slice(0, 40), bytes.slice(40, 90), bytes.slice(90)]
    const reader = new ReplyReader()
    const packets = chunks.flatMap((c) => reader.push(c))
    expect(packets).toHaveLength(1)
    const reply = packets[0]!
    if (!isDataReply(reply)) throw new Error("expected a DATA reply with parts")
    expect(reply.id).toBe(7)
    expect(reply.parts.map((p) => p.length)).toEqual([27, 50, 23])
    expect(reply.parts[0]!.buffer).toBe(chunks[0]!.buffer)
    expect(reply.parts[2]!.buffer).toBe(chunks[2]!.buffer)
    expect([...reply.data]).toEqual([...payload])
  })

  it("fails on zero and oversize lengths before buffering, and stays failed", () => {
    const zero = new ReplyReader()
    expect(() => zero.push(Uint8Array.of(0, 0, 0, 0, 1))).toThrow(ProtocolError)
    expect(() => zero.push(encode({ _tag: "Data", id: 1, data: new Uint8Array(1) }))).toThrow("length 0")
    const big = new ReplyReader(1000)
    expect(() => big.push(Uint8Array.of(0, 0, 4, 0))).toThrow("exceeds the maximum 1000")
  })

  it("decodes a DATA whose inner length disagrees with the packet length as the codec does (an error)", () => {
    const bad = Uint8Array.of(0, 0, 0, 12, 103, 0, 0, 0, 1, 0, 0, 0, 9, 1, 2, 3)
    expect(() => new ReplyReader().push(bad)).toThrow(ProtocolError)
  })

  it("garbage in → packets or a ProtocolError, never another exception", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.array(fc.nat(), { maxLength: 10 }), (bytes, cuts) => {
        const reader = new ReplyReader(128)
        try {
          for (const chunk of split(bytes, cuts)) reader.push(chunk)
        } catch (e) {
          expect(e).toBeInstanceOf(ProtocolError)
        }
      }),
      { numRuns: 2000 }
    )
  })
})
