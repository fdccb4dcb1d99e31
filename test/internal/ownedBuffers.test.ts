import { describe, expect, it } from "vitest"
import { adopt, discard, isOwned, release, retain } from "../../src/internal/ownedBuffers.ts"
import { PacketReader, PacketWriter } from "../../src/Transport/Packet.ts"
import * as Cipher from "../../src/Transport/Cipher.ts"
import { randomBytes } from "node:crypto"

describe("ownedBuffers", () => {
  it("adopts a buffer that holds only the bytes (and packet framing), and frees it once", () => {
    const whole = new Uint8Array(40_000)
    const payload = whole.subarray(5, whole.length - 12)
    adopt(payload)
    expect(isOwned(payload)).toBe(true)
    release(payload)
    expect(whole.byteLength).toBe(0)
    expect(payload.byteLength).toBe(0)
    expect(isOwned(payload)).toBe(false)
    // a second release is a no-op
    expect(() => release(payload)).not.toThrow()
  })

  it("adopting a held buffer again keeps its holders: discard of a shared view gives one back, frees nothing", () => {
    const bytes = adopt(new Uint8Array(100_000))
    retain(bytes)
    discard(bytes)
    expect(isOwned(bytes) && bytes.length).toBe(100_000)
    discard(bytes.subarray(0, 10))
    expect(bytes.byteLength).toBe(0)
  })

  it("never adopts a slice of Node's shared pool or a small view of a big buffer", () => {
    const pooled = Buffer.allocUnsafe(100)
    expect(pooled.buffer.byteLength).toBeGreaterThan(1000)
    adopt(pooled)
    expect(isOwned(pooled)).toBe(false)
    release(pooled)
    expect(pooled.byteLength).toBe(100)

    const big = new Uint8Array(64 * 1024)
    const view = big.subarray(0, 1024)
    discard(view)
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

  it("release leaves buffers it did not adopt alone", () => {
    const mine = new Uint8Array(1024)
    release(mine)
    expect(mine.byteLength).toBe(1024)
  })

  it("received payloads are adopted, under a cipher and under `none` (copied out of the ring)", () => {
    const keys = { cipher: "aes128-gcm@openssh.com", mac: "", key: randomBytes(16), iv: randomBytes(12), macKey: new Uint8Array(0) }
    for (const [sealer, opener] of [
      [Cipher.makeSealer(keys, randomBytes), Cipher.makeOpener(keys)],
      [Cipher.plainSealer(randomBytes), Cipher.plainOpener()]
    ] as const) {
      const writer = new PacketWriter(sealer)
      const reader = new PacketReader(opener)
      const sent = [randomBytes(30_000), randomBytes(10), randomBytes(5000)]
      for (const payload of sent) reader.push(writer.seal(payload))
      for (const payload of sent) {
        const got = reader.next()!
        expect(Buffer.from(got).equals(payload)).toBe(true)
        expect(isOwned(got)).toBe(true)
      }
    }
  })
})
