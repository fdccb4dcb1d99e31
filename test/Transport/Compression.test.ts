import * as fc from "fast-check"
import { randomBytes } from "node:crypto"
import * as zlib from "node:zlib"
import { describe, expect, it } from "vitest"
import { concat } from "../../src/internal/bytes.ts"
import { LimitExceeded, ProtocolError, UnknownAlgorithm } from "../../src/SshError.ts"
import * as Algorithms from "../../src/Transport/Algorithms.ts"
import * as Cipher from "../../src/Transport/Cipher.ts"
import * as Compression from "../../src/Transport/Compression.ts"
import { PacketReader, PacketWriter } from "../../src/Transport/Packet.ts"
import { keysFor, seededRandom, thrown } from "./cipher/helpers.ts"
import { split } from "../chunks.ts"

const text = (n: number, seed: number): Uint8Array => {
  const words = ["alpha ", "beta ", "gamma ", "delta\n", "epsilon ", "zeta "]
  const random = seededRandom(seed)
  let s = ""
  while (s.length < n) s += words[random(1)[0]! % words.length]
  return new TextEncoder().encode(s.slice(0, n))
}

/** A payload that compresses well, one that does not, or one of zeros. */
const payloadArb = fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 1, max: 33_000 }), fc.integer()).map(
  ([kind, size, seed]) =>
    kind === 0 ? text(size, seed) : kind === 1 ? seededRandom(seed)(size) : kind === 2 ? new Uint8Array(size) : text(size % 64 + 1, seed)
)

/** A payload given whole, or cut into parts as the connection seals channel data (header, data). */
const partsArb = fc.tuple(payloadArb, fc.array(fc.nat(), { maxLength: 3 })).map(([payload, cuts]) => ({
  payload,
  parts: split(payload, cuts)
}))

const drain = (reader: PacketReader): Array<Uint8Array> => {
  const out: Array<Uint8Array> = []
  for (let p = reader.next(); p !== undefined; p = reader.next()) out.push(p)
  return out
}

/** A zip bomb: a zlib stream (as a peer's first compressed packet) of `n` zeros, a thousandth of `n` on the wire. */
const bomb = (n: number): Uint8Array =>
  new Uint8Array(zlib.deflateSync(new Uint8Array(n), { level: 9, finishFlush: zlib.constants.Z_SYNC_FLUSH }))

describe("Compression policy", () => {
  it("starts zlib at NEWKEYS and zlib@openssh.com at authentication", () => {
    expect(Compression.startsAt("none")).toBe("never")
    expect(Compression.startsAt("zlib")).toBe("newkeys")
    expect(Compression.startsAt("zlib@openssh.com")).toBe("authentication")
    expect(Compression.isActive("zlib", false)).toBe(true)
    expect(Compression.isActive("zlib@openssh.com", false)).toBe(false)
    expect(Compression.isActive("zlib@openssh.com", true)).toBe(true)
    expect(Compression.isActive("none", true)).toBe(false)
    expect(thrown(() => Compression.startsAt("lz4"))).toBeInstanceOf(UnknownAlgorithm)
    expect(thrown(() => Compression.makeCompressor("none"))).toBeInstanceOf(UnknownAlgorithm)
  })

  it("offers what OpenSSH's ssh -C and sshd offer", () => {
    expect(Compression.supportedNames()).toEqual(["none", "zlib@openssh.com", "zlib"])
    expect(Compression.clientOffer(true)).toEqual(["zlib@openssh.com", "zlib", "none"])
    expect(Compression.clientOffer(false)).toEqual(["none"])
    expect(Compression.serverOffer()).toEqual(["none", "zlib@openssh.com"])
  })

  it("resolves the compression option in OpenSSH's list syntax against the role's offer", () => {
    expect(Algorithms.resolve({}).compression).toBeUndefined()
    expect(Algorithms.resolve({}, { compression: Compression.clientOffer(true) }).compression).toEqual(["zlib@openssh.com", "zlib", "none"])
    expect(Algorithms.resolve({ compression: "+zlib" }, { compression: Compression.serverOffer() }).compression).toEqual(["none", "zlib@openssh.com", "zlib"])
    expect(Algorithms.resolve({ compression: "zlib" }).compression).toEqual(["zlib"])
    expect(Algorithms.resolve({ compression: "-zlib*" }, { compression: Compression.clientOffer(true) }).compression).toEqual(["none"])
    expect(thrown(() => Algorithms.resolve({ compression: "zstd@openssh.com" }))).toBeInstanceOf(UnknownAlgorithm)
  })
})

describe("Deflater / Inflater", () => {
  it("property: inflate ∘ deflate = id over random packet sequences, each packet inflatable on its own", () => {
    fc.assert(
      fc.property(fc.array(partsArb, { minLength: 1, maxLength: 12 }), (packets) => {
        const compressor = Compression.makeCompressor("zlib@openssh.com")
        const decompressor = Compression.makeDecompressor("zlib@openssh.com")
        for (const { parts, payload } of packets) {
          // the compressor's output is reused by its next call: inflated before the next packet is compressed
          const back = decompressor.decompress(compressor.compress(parts), 256 * 1024)
          expect(back).toEqual(payload)
        }
        compressor.close()
        decompressor.close()
      }),
      { numRuns: 30 }
    )
  })

  it("is a standard zlib stream: node's one-shot inflate reads the packets back to back", () => {
    const compressor = Compression.makeCompressor("zlib")
    const block = randomBytes(5000)
    const payloads = [text(40_000, 2), randomBytes(3000), block, block, Uint8Array.of(94)]
    const compressed = payloads.map((p) => compressor.compress(p).slice())
    const inflated = zlib.inflateSync(concat(compressed), { finishFlush: zlib.constants.Z_SYNC_FLUSH })
    expect(new Uint8Array(inflated)).toEqual(concat(payloads))
    // the stream spans packets: a payload repeated costs far less the second time
    expect(compressed[3]!.length).toBeLessThan(compressed[2]!.length / 10)
    compressor.close()
  })

  it("compresses text far below its size", () => {
    const compressor = Compression.makeCompressor("zlib")
    const payload = text(32 * 1024, 7)
    expect(compressor.compress(payload).length).toBeLessThan(payload.length / 4)
    compressor.close()
  })

  it("a zip bomb is LimitExceeded after at most limit + 1 bytes, not a large allocation", () => {
    const compressed = bomb(64 * 1024 * 1024)
    expect(compressed.length).toBeLessThan(70 * 1024)
    const before = process.memoryUsage().arrayBuffers
    const error = thrown(() => Compression.makeDecompressor("zlib").decompress(compressed, 256 * 1024))
    // inflating the 64 MiB would show in the process's buffers
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(4 * 1024 * 1024)
    expect(error).toBeInstanceOf(LimitExceeded)
    expect((error as LimitExceeded).limit).toBe("decompressed packet size")
  })

  it("a payload of exactly the limit passes, one byte more does not", () => {
    const limit = 50_000
    const exact = Compression.makeDecompressor("zlib").decompress(bomb(limit), limit)
    expect(exact.length).toBe(limit)
    expect(thrown(() => Compression.makeDecompressor("zlib").decompress(bomb(limit + 1), limit))).toBeInstanceOf(LimitExceeded)
  })

  it("corrupt data is a ProtocolError, and so is data after the end of the stream", () => {
    expect(thrown(() => Compression.makeDecompressor("zlib").decompress(Uint8Array.of(1, 2, 3, 4, 5), 1024))).toBeInstanceOf(ProtocolError)
    const finished = new Uint8Array(zlib.deflateSync(text(100, 3)))
    expect(thrown(() => Compression.makeDecompressor("zlib").decompress(concat([finished, Uint8Array.of(9, 9)]), 1024)))
      .toBeInstanceOf(ProtocolError)
  })

  it("a closed stream refuses to work", () => {
    const compressor = Compression.makeCompressor("zlib")
    compressor.close()
    compressor.close()
    expect(thrown(() => compressor.compress(Uint8Array.of(1)))).toBeInstanceOf(ProtocolError)
  })
})

const suites: ReadonlyArray<readonly [string, string]> = [
  ["none", "none"],
  ["aes128-gcm@openssh.com", "none"],
  ["chacha20-poly1305@openssh.com", "none"],
  ["aes256-ctr", "hmac-sha2-256-etm@openssh.com"]
]

describe("PacketWriter / PacketReader with compression", () => {
  it.each(suites)("%s + %s: property: the payloads come back over random socket chunking", (cipher, mac) => {
    fc.assert(
      fc.property(fc.array(partsArb, { minLength: 1, maxLength: 8 }), fc.array(fc.nat(), { maxLength: 30 }), (packets, cuts) => {
        const keys = keysFor(cipher, mac)
        const writer = new PacketWriter(Cipher.makeSealer(keys, randomBytes))
        const reader = new PacketReader(Cipher.makeOpener(keys))
        writer.setCompressor(Compression.makeCompressor("zlib"))
        reader.setDecompressor(Compression.makeDecompressor("zlib"))
        const stream = concat(packets.map(({ parts }) => writer.seal(parts)))
        const received: Array<Uint8Array> = []
        for (const chunk of split(stream, cuts)) {
          reader.push(chunk)
          received.push(...drain(reader))
        }
        expect(received).toEqual(packets.map(({ payload }) => payload))
        writer.setCompressor(undefined)
        reader.setDecompressor(undefined)
      }),
      { numRuns: 12 }
    )
  })

  it("switches on between two packets, as at NEWKEYS or USERAUTH_SUCCESS, and a fresh stream restarts both ends", () => {
    const keys = keysFor("aes128-gcm@openssh.com", "none")
    const writer = new PacketWriter(Cipher.makeSealer(keys, randomBytes))
    const reader = new PacketReader(Cipher.makeOpener(keys))
    const payloads = [text(300, 1), text(300, 2), text(300, 3), text(300, 4)]
    const wire = [writer.seal(payloads[0]!)]
    writer.setCompressor(Compression.makeCompressor("zlib@openssh.com"))
    wire.push(writer.seal(payloads[1]!))
    writer.setCompressor(Compression.makeCompressor("zlib@openssh.com"))
    wire.push(writer.seal(payloads[2]!))
    writer.setCompressor(undefined)
    wire.push(writer.seal(payloads[3]!))
    const received: Array<Uint8Array> = []
    reader.push(wire[0]!)
    received.push(...drain(reader))
    reader.setDecompressor(Compression.makeDecompressor("zlib@openssh.com"))
    reader.push(wire[1]!)
    received.push(...drain(reader))
    reader.setDecompressor(Compression.makeDecompressor("zlib@openssh.com"))
    reader.push(wire[2]!)
    received.push(...drain(reader))
    reader.setDecompressor(undefined)
    reader.push(wire[3]!)
    received.push(...drain(reader))
    expect(received).toEqual(payloads)
  })

  it("a packet that inflates past the packet limit is LimitExceeded, and the reader stays failed", () => {
    const reader = new PacketReader()
    reader.setDecompressor(Compression.makeDecompressor("zlib"))
    reader.limitPacketLength({ bytes: 35_000, phase: "before authentication" })
    // a small, legitimate-looking packet on the wire: 16 MiB of zeros once inflated
    const packet = new PacketWriter(Cipher.plainSealer(randomBytes)).seal(bomb(16 * 1024 * 1024))
    expect(packet.length).toBeLessThan(35_000)
    reader.push(packet)
    const error = thrown(() => reader.next())
    expect(error).toBeInstanceOf(LimitExceeded)
    expect((error as LimitExceeded).message).toMatch(/inflates past 35000 bytes/)
    expect(thrown(() => reader.next())).toBe(error)
  })

  it("after authentication the bound is the largest packet there is (256 KiB)", () => {
    const reader = new PacketReader()
    reader.setDecompressor(Compression.makeDecompressor("zlib"))
    const writer = new PacketWriter(Cipher.plainSealer(randomBytes))
    reader.push(writer.seal(bomb(200 * 1024)))
    expect(reader.next()!.length).toBe(200 * 1024)
    const second = new Uint8Array(zlib.deflateRawSync(new Uint8Array(300 * 1024), { level: 9, finishFlush: zlib.constants.Z_SYNC_FLUSH }))
    reader.push(writer.seal(second))
    expect(thrown(() => reader.next())).toBeInstanceOf(LimitExceeded)
  })
})
