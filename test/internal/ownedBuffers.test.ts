import { describe, expect, it } from "vitest"
import { uninitialized } from "../../src/internal/bytes.ts"
import {
  adopt,
  allocate,
  discard,
  handOver,
  handOverAll,
  isOwned,
  release,
  releaseAll,
  retain
} from "../../src/internal/ownedBuffers.ts"
import { PacketReader, PacketWriter } from "../../src/Transport/Packet.ts"
import * as Cipher from "../../src/Transport/Cipher.ts"
import { randomBytes } from "node:crypto"

/** Whether `bytes` is the whole of a buffer of its own (what may be freed without touching anyone else's bytes). */
const ownBuffer = (bytes: Uint8Array) => bytes.buffer.byteLength <= bytes.byteLength + 4 + 1 + 255 + 32

describe("ownedBuffers", () => {
  it("allocate: memory of its own, owned with one holder, freed by its release", () => {
    const block = allocate(100)
    expect(block.byteOffset).toBe(0)
    expect(block.buffer.byteLength).toBe(100)
    expect(isOwned(block)).toBe(true)
    release(block)
    expect(block.byteLength).toBe(0)
    expect(isOwned(block)).toBe(false)
    // a second release is a no-op
    expect(() => release(block)).not.toThrow()
  })

  it("adopt registers what its caller vouches for, whatever its size: ownership is explicit, not guessed", () => {
    const whole = new Uint8Array(64 * 1024)
    const view = adopt(whole.subarray(5, 1024))
    expect(isOwned(view)).toBe(true)
    release(view)
    expect(whole.byteLength).toBe(0)
  })

  it("counts holders: retain adds one, release takes one and frees at zero; discard of a held buffer is a release", () => {
    const bytes = allocate(100_000)
    retain(bytes)
    discard(bytes)
    expect(isOwned(bytes) && bytes.length).toBe(100_000)
    discard(bytes.subarray(0, 10))
    expect(bytes.byteLength).toBe(0)
  })

  it("memory handed over is never freed again: not by a holder's release, not by discard, not by a new adopt", () => {
    const held = allocate(4096)
    retain(held)
    handOver(held.subarray(0, 1))
    expect(isOwned(held)).toBe(false)
    release(held)
    release(held)
    discard(held)
    adopt(held)
    retain(held)
    release(held)
    expect(held.byteLength).toBe(4096)

    // unregistered memory handed over stays out of reach too (a join given to a user's file, say)
    const joined = new Uint8Array(1000)
    handOverAll([joined])
    discard(joined)
    expect(joined.byteLength).toBe(1000)
  })

  it("release leaves memory that was never registered alone; discard frees fresh memory only its caller has seen", () => {
    const mine = new Uint8Array(1024)
    release(mine)
    releaseAll([mine])
    expect(mine.byteLength).toBe(1024)
    // discard is for fresh memory the caller alone has seen (a cipher's output): it frees it
    discard(mine)
    expect(mine.byteLength).toBe(0)
  })

  it("discard never frees a buffer shared with bytes that are not the caller's: Node's pool, a view of a bigger buffer", () => {
    const pooled = Buffer.allocUnsafe(100)
    const neighbour = Buffer.allocUnsafe(100)
    expect(pooled.buffer).toBe(neighbour.buffer)
    discard(pooled)
    // what Readable.read() returns for several small buffered chunks
    const joined = Buffer.concat([Buffer.from("ab"), Buffer.from("cd")])
    discard(joined)
    expect(pooled.byteLength + neighbour.byteLength + joined.byteLength).toBe(204)

    const big = new Uint8Array(64 * 1024)
    discard(big.subarray(0, 1024))
    discard(big.subarray(1))
    expect(big.byteLength).toBe(64 * 1024)
  })

  it("a buffer that cannot be detached is left to the GC, without throwing", () => {
    // (the WebAssembly types are not in this project's lib)
    const { Memory } = (globalThis as unknown as { WebAssembly: { Memory: new (d: { initial: number }) => { buffer: ArrayBuffer } } }).WebAssembly
    const memory = new Memory({ initial: 1 })
    const bytes = adopt(new Uint8Array(memory.buffer))
    expect(() => release(bytes)).not.toThrow()
    expect(memory.buffer.byteLength).toBe(64 * 1024)
  })

  it("uninitialized memory is never a slice of Node's shared pool (so a packet sealed into it may be freed)", () => {
    for (const n of [1, 10, 100, 4000]) {
      const bytes = uninitialized(n)
      expect(bytes.byteOffset).toBe(0)
      expect(bytes.buffer.byteLength).toBe(n)
    }
  })

  it("sealed packets and received payloads are in buffers of their own, under every kind of cipher and `none`", () => {
    const directions = [
      { cipher: "aes128-gcm@openssh.com", mac: "", key: randomBytes(16), iv: randomBytes(12), macKey: new Uint8Array(0) },
      { cipher: "chacha20-poly1305@openssh.com", mac: "", key: randomBytes(64), iv: new Uint8Array(0), macKey: new Uint8Array(0) },
      // the length is encrypted: the opener decrypts into memory it allocates
      { cipher: "aes128-ctr", mac: "hmac-sha2-256", key: randomBytes(16), iv: randomBytes(16), macKey: randomBytes(32) },
      { cipher: "aes128-ctr", mac: "hmac-sha2-256-etm@openssh.com", key: randomBytes(16), iv: randomBytes(16), macKey: randomBytes(32) }
    ]
    const pairs = [
      ...directions.map((keys) => [Cipher.makeSealer(keys, randomBytes), Cipher.makeOpener(keys)] as const),
      [Cipher.plainSealer(randomBytes), Cipher.plainOpener()] as const
    ]
    for (const [sealer, opener] of pairs) {
      const writer = new PacketWriter(sealer)
      const reader = new PacketReader(opener)
      const sent = [randomBytes(30_000), randomBytes(10), randomBytes(5000), randomBytes(1)]
      for (const payload of sent) {
        const packet = writer.seal(payload)
        expect(packet.byteOffset).toBe(0)
        expect(packet.buffer.byteLength).toBe(packet.byteLength)
        reader.push(packet)
      }
      for (const payload of sent) {
        const got = reader.next()!
        expect(Buffer.from(got).equals(payload)).toBe(true)
        expect(isOwned(got)).toBe(true)
        expect(ownBuffer(got)).toBe(true)
      }
    }
  })
})
