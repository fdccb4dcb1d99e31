import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import { ReceiveWindow, SendWindow } from "../../src/Channel/Window.ts"
import { protocolError } from "../Wire/throws.ts"

const MAX_WINDOW = 0xffffffff

describe("ReceiveWindow", () => {
  it("accepts data up to the window and throws a ProtocolError on an overrun", () => {
    const w = new ReceiveWindow(100)
    w.receive(60)
    w.receive(40)
    expect([w.available, w.buffered]).toEqual([0, 100])
    expect(protocolError(() => w.receive(1)).message).toBe("peer sent 1 bytes with only 0 bytes of window left")
    expect([w.available, w.buffered]).toEqual([0, 100])
  })

  it("does not credit the peer when data arrives, only when it is consumed", () => {
    const w = new ReceiveWindow(100)
    w.receive(100)
    expect(w.available).toBe(0)
    expect(w.consume(100)).toBe(100)
    expect([w.available, w.buffered]).toEqual([100, 0])
  })

  it("grants what was consumed once more than three max packets wait to be granted back", () => {
    const KiB = 1024
    const w = new ReceiveWindow(2048 * KiB, 32 * KiB)
    w.receive(96 * KiB)
    expect(w.consume(96 * KiB)).toBe(0) // exactly three packets: not yet
    w.receive(1)
    expect(w.consume(1)).toBe(96 * KiB + 1)
    expect([w.available, w.buffered]).toEqual([2048 * KiB, 0])
  })

  it("counts unread data towards the threshold but grants only what the consumer took", () => {
    const KiB = 1024
    const w = new ReceiveWindow(2048 * KiB, 32 * KiB)
    w.receive(2048 * KiB)
    expect(w.consume(10 * KiB)).toBe(10 * KiB)
    expect([w.available, w.buffered]).toEqual([10 * KiB, 2038 * KiB])
    // nothing consumed, nothing granted, however much is buffered
    expect(w.consume(0)).toBe(0)
  })

  it("a window of a few packets grants once the peer's credit falls below half", () => {
    const w = new ReceiveWindow(100, 32 * 1024)
    w.receive(40)
    expect(w.consume(40)).toBe(0)
    w.receive(11)
    expect(w.consume(11)).toBe(51)
    expect([w.available, w.buffered]).toEqual([100, 0])
  })

  it("a consumer that keeps up leaves the sender almost the whole window", () => {
    const MiB = 1024 * 1024
    const packet = 32 * 1024
    const w = new ReceiveWindow(2 * MiB, packet)
    let adjusts = 0
    for (let i = 0; i < 1024; i++) {
      w.receive(packet)
      if (w.consume(packet) > 0) adjusts++
      expect(w.available).toBeGreaterThanOrEqual(2 * MiB - 4 * packet)
    }
    expect(adjusts).toBe(256) // one WINDOW_ADJUST per four packets
  })

  it("grows for good: the growth is granted at once and counts in every later adjust threshold", () => {
    const w = new ReceiveWindow(100)
    w.receive(60)
    expect(w.grow(300)).toBe(300)
    expect([w.size, w.available, w.buffered]).toEqual([400, 340, 60])
    expect(w.consume(60)).toBe(0) // credit still above half of 400
    expect(new ReceiveWindow(0xffff_fff0).grow(100)).toBe(15) // never past 2^32 - 1 outstanding
    expect(new ReceiveWindow(10).grow(-5)).toBe(0)
  })

  it("doubles, up to its limit, each time a whole window went by slowly with the consumer keeping up", () => {
    const MiB = 1024 * 1024
    const packet = 32 * 1024
    const w = new ReceiveWindow(2 * MiB, packet, 16 * MiB)
    const sizes: Array<number> = []
    let granted = 0
    // a packet per millisecond: 64 ms per 2 MiB, a window-bound sender over a long path
    for (let i = 0; i < 1024; i++) {
      w.receive(packet, i)
      granted += w.consume(packet, i)
      if (sizes.at(-1) !== w.size) sizes.push(w.size)
    }
    expect(sizes).toEqual([2 * MiB, 4 * MiB, 8 * MiB, 16 * MiB])
    // the growth went to the peer with the consumed bytes: all of it is credit, but what waits to be granted back
    const growth = 14 * MiB
    const pending = 1024 * packet - (granted - growth)
    expect(w.available + w.buffered + pending).toBe(16 * MiB)
    expect(pending).toBeLessThanOrEqual(3 * packet)
  })

  it("does not grow while unread data exceeds a quarter of the window, when windows cycle fast, nor without a limit or a time", () => {
    const MiB = 1024 * 1024
    const packet = 32 * 1024
    const behind = new ReceiveWindow(2 * MiB, packet, 16 * MiB)
    // the consumer lets most of a window pile up before taking it
    let now = 0
    for (let round = 0; round < 16; round++) {
      for (let i = 0; i < 60; i++) behind.receive(packet, now++)
      for (let i = 0; i < 60; i++) behind.consume(packet, now++)
    }
    expect(behind.size).toBe(2 * MiB)
    const near = new ReceiveWindow(2 * MiB, packet, 16 * MiB)
    const fixed = new ReceiveWindow(2 * MiB, packet)
    const untimed = new ReceiveWindow(2 * MiB, packet, 16 * MiB)
    for (let i = 0; i < 1024; i++) {
      // 64 packets in under 20 ms: a near peer, whose rate the window does not bound
      near.receive(packet, i * 0.25)
      near.consume(packet, i * 0.25)
      fixed.receive(packet, i)
      fixed.consume(packet, i)
      untimed.receive(packet)
      untimed.consume(packet)
    }
    expect([near.size, fixed.size, untimed.size]).toEqual([2 * MiB, 2 * MiB, 2 * MiB])
  })

  it("keeps available + buffered + pending credit = size, grants exactly the pending credit, and only when due", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1 << 21 }),
        fc.integer({ min: 1, max: 1 << 16 }),
        fc.array(fc.tuple(fc.boolean(), fc.nat()), { maxLength: 60 }),
        fc.integer({ min: 0, max: 1 << 22 }),
        (size, maxPacket, steps, extra) => {
          const limit = size + extra
          const w = new ReceiveWindow(size, maxPacket, limit)
          let pending = 0
          let now = 0
          for (const [isReceive, amount] of steps) {
            now += amount % 50
            if (isReceive) {
              const n = amount % (size + 1)
              if (n > w.available) {
                protocolError(() => w.receive(n))
                continue
              }
              w.receive(n, now)
            } else {
              if (w.buffered === 0) continue
              const n = 1 + (amount % w.buffered)
              const availableBefore = w.available
              const sizeBefore = w.size
              const grant = w.consume(n, now)
              pending += n
              const growth = w.size - sizeBefore
              const due = sizeBefore - availableBefore > 3 * maxPacket || availableBefore < sizeBefore / 2
              expect(grant).toBe(due || growth > 0 ? pending + growth : 0)
              if (grant > 0) pending = 0
            }
            expect(w.available + w.buffered + pending).toBe(w.size)
            expect(w.available).toBeGreaterThanOrEqual(0)
            // memory stays bounded by the limit
            expect(w.size).toBeLessThanOrEqual(limit)
            expect(w.buffered).toBeLessThanOrEqual(w.size)
          }
        }
      )
    )
  })
})

describe("SendWindow", () => {
  it("takes at most the window and at most the peer's maximum packet", () => {
    const w = new SendWindow(100_000, 32_768)
    expect(w.take(50_000)).toBe(32_768)
    expect(w.take(10)).toBe(10)
    expect(w.available).toBe(100_000 - 32_768 - 10)
    expect(w.take(100_000)).toBe(32_768)
    expect(w.take(100_000)).toBe(32_768)
    expect(w.take(100_000)).toBe(100_000 - 3 * 32_768 - 10)
    expect(w.available).toBe(0)
    expect(w.take(1)).toBe(0)
  })

  it("adjust refills the window", () => {
    const w = new SendWindow(0, 1000)
    expect(w.take(10)).toBe(0)
    w.adjust(5)
    expect(w.take(10)).toBe(5)
    expect(w.available).toBe(0)
  })

  it("adjust caps the window at 2^32 - 1 (RFC 4254 §5.2)", () => {
    const w = new SendWindow(MAX_WINDOW - 10, 1 << 20)
    w.adjust(MAX_WINDOW)
    expect(w.available).toBe(MAX_WINDOW)
    w.adjust(1)
    expect(w.available).toBe(MAX_WINDOW)
    expect(w.take(100)).toBe(100)
    w.adjust(MAX_WINDOW)
    expect(w.available).toBe(MAX_WINDOW)
  })

  it("every take is bounded by the request, the window and the max packet; the window stays in 0..2^32-1", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: MAX_WINDOW }),
        fc.integer({ min: 1, max: 1 << 20 }),
        fc.array(fc.oneof(
          fc.record({ take: fc.integer({ min: 0, max: 1 << 22 }) }),
          fc.record({ adjust: fc.integer({ min: 0, max: MAX_WINDOW }) })
        ), { maxLength: 40 }),
        (initial, maxPacket, steps) => {
          const w = new SendWindow(initial, maxPacket)
          for (const step of steps) {
            const before = w.available
            if ("take" in step) {
              const n = w.take(step.take)
              expect(n).toBe(Math.min(step.take, before, maxPacket))
              expect(w.available).toBe(before - n)
            } else {
              w.adjust(step.adjust)
              expect(w.available).toBe(Math.min(MAX_WINDOW, before + step.adjust))
            }
            expect(w.available).toBeGreaterThanOrEqual(0)
            expect(w.available).toBeLessThanOrEqual(MAX_WINDOW)
          }
        }
      )
    )
  })
})
