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

  it("batches credit until half the window has been consumed", () => {
    const w = new ReceiveWindow(100)
    w.receive(100)
    expect(w.consume(20)).toBe(0)
    expect(w.consume(29)).toBe(0)
    expect(w.available).toBe(0)
    expect(w.consume(1)).toBe(50)
    expect(w.available).toBe(50)
    expect(w.consume(49)).toBe(0)
    expect(w.consume(1)).toBe(50)
    expect([w.available, w.buffered]).toEqual([100, 0])
  })

  it("a large window grants every MiB consumed, not every half window", () => {
    const MiB = 1024 * 1024
    const w = new ReceiveWindow(32 * MiB)
    w.receive(32 * MiB)
    expect(w.consume(MiB - 1)).toBe(0)
    expect(w.consume(1)).toBe(MiB)
    expect(w.consume(3 * MiB)).toBe(3 * MiB)
    // OpenSSH's default 2 MiB window still adjusts at half
    const small = new ReceiveWindow(2 * MiB)
    small.receive(2 * MiB)
    expect(small.consume(MiB - 1)).toBe(0)
    expect(small.consume(1)).toBe(MiB)
  })

  it("grows for good: the growth is granted at once and counts in every later adjust threshold", () => {
    const w = new ReceiveWindow(100)
    w.receive(60)
    expect(w.grow(300)).toBe(300)
    expect([w.size, w.available, w.buffered]).toEqual([400, 340, 60])
    expect(w.consume(60)).toBe(0) // under half of 400
    expect(new ReceiveWindow(0xffff_fff0).grow(100)).toBe(15) // never past 2^32 - 1 outstanding
    expect(new ReceiveWindow(10).grow(-5)).toBe(0)
  })

  it("an odd size grants once consumption reaches size / 2", () => {
    const w = new ReceiveWindow(5)
    w.receive(5)
    expect(w.consume(2)).toBe(0)
    expect(w.consume(1)).toBe(3)
  })

  it("keeps available + buffered + pending credit = size, and never grants beyond it", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1 << 21 }),
        fc.array(fc.tuple(fc.boolean(), fc.nat()), { maxLength: 60 }),
        (size, steps) => {
          const w = new ReceiveWindow(size)
          let pending = 0
          for (const [isReceive, amount] of steps) {
            if (isReceive) {
              const n = amount % (size + 1)
              if (n > w.available) {
                protocolError(() => w.receive(n))
                continue
              }
              w.receive(n)
            } else {
              if (w.buffered === 0) continue
              const n = 1 + (amount % w.buffered)
              const grant = w.consume(n)
              pending += n
              if (grant > 0) {
                expect(grant).toBe(pending)
                expect(grant).toBeGreaterThanOrEqual(size / 2)
                pending = 0
              } else {
                expect(pending).toBeLessThan(size / 2)
              }
            }
            expect(w.available + w.buffered + pending).toBe(size)
            expect(w.available).toBeGreaterThanOrEqual(0)
            expect(w.available).toBeLessThanOrEqual(size)
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
