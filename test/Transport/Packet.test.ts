import * as fc from "fast-check"
import { randomBytes } from "node:crypto"
import { describe, expect, it } from "vitest"
import { concat, toHex } from "../../src/internal/bytes.ts"
import { isSshErrorReason, MacMismatch, ProtocolError } from "../../src/SshError.ts"
import * as Cipher from "../../src/Transport/Cipher.ts"
import { PacketReader, PacketWriter } from "../../src/Transport/Packet.ts"
import { keysFor, seededRandom, thrown } from "./cipher/helpers.ts"
import { split } from "../chunks.ts"

const suites: ReadonlyArray<readonly [string, string]> = [
  ["none", "none"],
  ["chacha20-poly1305@openssh.com", "none"],
  ["aes128-gcm@openssh.com", "none"],
  ["aes256-ctr", "hmac-sha2-256"],
  ["aes128-ctr", "hmac-sha2-512-etm@openssh.com"]
]

const drain = (reader: PacketReader): Array<Uint8Array> => {
  const out: Array<Uint8Array> = []
  for (let p = reader.next(); p !== undefined; p = reader.next()) out.push(p)
  return out
}

describe("PacketReader", () => {
  it.each(suites)("%s + %s: the same packets split at random boundaries yield the same payloads", (cipher, mac) => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 40000 }), { minLength: 1, maxLength: 6 }),
        fc.array(fc.nat(), { maxLength: 40 }),
        fc.integer(),
        (sizes, cuts, seed) => {
          const keys = keysFor(cipher, mac)
          const writer = new PacketWriter(Cipher.makeSealer(keys, randomBytes))
          const payloads = sizes.map((size, i) => seededRandom(seed + i)(size))
          const stream = concat(payloads.map((p) => writer.seal(p)))
          const reader = new PacketReader(Cipher.makeOpener(keys))
          const received: Array<Uint8Array> = []
          for (const chunk of split(stream, cuts)) {
            reader.push(chunk)
            received.push(...drain(reader))
          }
          expect(received.map(toHex)).toEqual(payloads.map(toHex))
          expect(reader.sequence).toBe(sizes.length)
          expect(writer.sequence).toBe(sizes.length)
          expect(reader.buffered).toBe(0)
        }
      ),
      { numRuns: 25 }
    )
  })

  it("handles a byte-at-a-time stream in linear time", () => {
    const keys = keysFor("aes128-gcm@openssh.com", "none")
    const writer = new PacketWriter(Cipher.makeSealer(keys, randomBytes))
    const payloads = Array.from({ length: 40 }, (_, i) => randomBytes(i * 500))
    const stream = concat(payloads.map((p) => writer.seal(p)))
    const reader = new PacketReader(Cipher.makeOpener(keys))
    const received: Array<Uint8Array> = []
    const started = performance.now()
    for (let i = 0; i < stream.length; i++) {
      reader.push(stream.subarray(i, i + 1))
      if (i % 997 === 0 || i === stream.length - 1) received.push(...drain(reader))
    }
    expect(performance.now() - started).toBeLessThan(5000)
    expect(received.map(toHex)).toEqual(payloads.map(toHex))
  })

  it("switches cipher at NEWKEYS without touching the bytes that follow", () => {
    const keys = keysFor("chacha20-poly1305@openssh.com", "none")
    const writer = new PacketWriter(Cipher.plainSealer(randomBytes))
    const plain = [Uint8Array.of(20, 1, 2), Uint8Array.of(21)]
    const encrypted = [Uint8Array.of(5, 9, 9, 9), Uint8Array.of(94, 7)]
    const first = plain.map((p) => writer.seal(p))
    writer.setSealer(Cipher.makeSealer(keys, randomBytes))
    const stream = concat([...first, ...encrypted.map((p) => writer.seal(p))])

    const reader = new PacketReader()
    reader.push(stream)
    const received: Array<Uint8Array> = []
    for (let p = reader.next(); p !== undefined; p = reader.next()) {
      received.push(p)
      if (p[0] === 21) reader.setOpener(Cipher.makeOpener(keys))
    }
    expect(received.map(toHex)).toEqual([...plain, ...encrypted].map(toHex))
    expect(reader.sequence).toBe(4)
  })

  it("resets sequence numbers for strict key exchange", () => {
    const keys = keysFor("aes256-ctr", "hmac-sha2-256-etm@openssh.com")
    const writer = new PacketWriter(Cipher.makeSealer(keys, randomBytes))
    const reader = new PacketReader(Cipher.makeOpener(keys))
    reader.push(writer.seal(Uint8Array.of(1)))
    expect(drain(reader)).toHaveLength(1)
    writer.resetSequence()
    reader.resetSequence()
    expect(writer.sequence).toBe(0)
    reader.push(writer.seal(Uint8Array.of(2)))
    expect(reader.next()).toEqual(Uint8Array.of(2))
    expect(reader.sequence).toBe(1)
    // a peer that did not reset is caught by the MAC
    reader.resetSequence()
    reader.push(writer.seal(Uint8Array.of(3)))
    expect(thrown(() => reader.next())).toBeInstanceOf(MacMismatch)
  })

  it("wraps sequence numbers at 2^32", () => {
    const keys = keysFor("aes128-ctr", "hmac-sha1")
    const writer = new PacketWriter(Cipher.makeSealer(keys, randomBytes), 0xfffffffe)
    const reader = new PacketReader(Cipher.makeOpener(keys), 0xfffffffe)
    const payloads = [1, 2, 3, 4].map((n) => Uint8Array.of(n))
    const sequences: Array<number> = []
    for (const p of payloads) {
      sequences.push(writer.sequence)
      reader.push(writer.seal(p))
    }
    expect(sequences).toEqual([0xfffffffe, 0xffffffff, 0, 1])
    expect(drain(reader).map(toHex)).toEqual(payloads.map(toHex))
    expect(reader.sequence).toBe(2)
    expect(writer.sequence).toBe(2)
  })

  it("rejects a length of 0xFFFFFFFF from the first 4 bytes, before buffering the packet", () => {
    const reader = new PacketReader()
    reader.push(Uint8Array.of(0xff, 0xff))
    expect(reader.next()).toBeUndefined()
    reader.push(Uint8Array.of(0xff, 0xff))
    const e = thrown(() => reader.next())
    expect(e).toBeInstanceOf(ProtocolError)
    // the failure sticks
    reader.push(randomBytes(100))
    expect(thrown(() => reader.next())).toBe(e)
  })

  it.each(suites)("%s + %s: garbage → a thrown reason or a wait for more bytes, in bounded time", (cipher, mac) => {
    const keys = keysFor(cipher, mac)
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 2000 }), fc.array(fc.nat(), { maxLength: 8 }), (garbage, cuts) => {
        const reader = new PacketReader(Cipher.makeOpener(keys))
        try {
          for (const chunk of split(garbage, cuts)) {
            reader.push(chunk)
            drain(reader)
          }
          // whatever was not rejected is waiting for a packet the garbage announced
          expect(reader.buffered).toBeLessThanOrEqual(garbage.length)
        } catch (u) {
          expect(isSshErrorReason(u)).toBe(true)
        }
      }),
      { numRuns: 300 }
    )
  })

  it("rejects garbage as large as the packet it announces", () => {
    for (const [cipher, mac] of suites.slice(1)) {
      const keys = keysFor(cipher, mac)
      const reader = new PacketReader(Cipher.makeOpener(keys))
      const forged = Uint8Array.from(new PacketWriter(Cipher.makeSealer(keys, randomBytes)).seal(randomBytes(100)))
      // keep the (possibly encrypted) length block, replace the rest
      forged.set(randomBytes(forged.length - 16), 16)
      reader.push(forged)
      expect(thrown(() => reader.next())).toBeInstanceOf(MacMismatch)
    }
  })

  it("refuses to change cipher in the middle of a packet", () => {
    const reader = new PacketReader()
    const packet = new PacketWriter(Cipher.plainSealer(randomBytes)).seal(Uint8Array.of(1, 2, 3))
    reader.push(packet.subarray(0, 6))
    expect(reader.next()).toBeUndefined()
    expect(thrown(() => reader.setOpener(Cipher.plainOpener()))).toBeInstanceOf(ProtocolError)
  })

  it("hands back unconsumed bytes across chunks", () => {
    const reader = new PacketReader()
    reader.push(Uint8Array.of(1, 2))
    reader.push(Uint8Array.of(3))
    reader.push(Uint8Array.of(4, 5, 6))
    expect(reader.buffered).toBe(6)
    expect(Array.from(reader.takeRest())).toEqual([1, 2, 3, 4, 5, 6])
    expect(reader.buffered).toBe(0)
    expect(reader.takeRest()).toHaveLength(0)
    const packet = new PacketWriter(Cipher.plainSealer(randomBytes)).seal(Uint8Array.of(9))
    reader.push(concat([packet, Uint8Array.of(7, 8)]))
    expect(reader.next()).toEqual(Uint8Array.of(9))
    expect(Array.from(reader.takeRest())).toEqual([7, 8])
  })
})

describe("PacketWriter", () => {
  it("numbers packets and seals with the current sealer", () => {
    const writer = new PacketWriter(Cipher.plainSealer(randomBytes))
    const a = writer.seal(Uint8Array.of(1))
    expect(a.length).toBe(16)
    expect(Array.from(a.subarray(0, 6))).toEqual([0, 0, 0, 12, 10, 1])
    expect(writer.sequence).toBe(1)
    writer.setSealer(Cipher.makeSealer(keysFor("aes128-gcm@openssh.com", "none"), randomBytes))
    expect(writer.seal(Uint8Array.of(1)).length).toBe(4 + 16 + 16)
    expect(writer.sequence).toBe(2)
  })

  it("does not count a packet it refused to seal", () => {
    const writer = new PacketWriter(Cipher.plainSealer(randomBytes))
    expect(thrown(() => writer.seal(new Uint8Array(Cipher.MAX_PACKET_LENGTH)))).toBeInstanceOf(ProtocolError)
    expect(writer.sequence).toBe(0)
  })
})
