/**
 * The adaptive in-flight limit of pipelined transfers.
 */
import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import { InFlight } from "../../src/Sftp/Transfer.ts"

/** Feeds `rounds` rounds of replies at `rate(round)` bytes per ms, 64 KiB each; returns the limit after each round. */
const simulate = (inFlight: InFlight, rounds: number, rate: (round: number) => number): Array<number> => {
  const limits: Array<number> = []
  let now = 0
  inFlight.record(0, now)
  for (let round = 0; round < rounds; round++) {
    const replies = inFlight.limit
    for (let i = 0; i < replies; i++) {
      now += 65536 / rate(round)
      inFlight.record(65536, now)
    }
    limits.push(inFlight.limit)
  }
  return limits
}

describe("InFlight", () => {
  it("starts at 16 (clamped to [min, max]) and validates its bounds", () => {
    expect(new InFlight({ max: 64 }).limit).toBe(16)
    expect(new InFlight({ max: 8 }).limit).toBe(8)
    expect(new InFlight({ max: 64, initial: 1 }).limit).toBe(4)
    expect(new InFlight({ max: 0 }).limit).toBe(1)
    expect(new InFlight({ max: 2, min: 5 }).min).toBe(2)
  })

  it("grows while throughput grows, up to max", () => {
    const limits = simulate(new InFlight({ max: 64 }), 6, (round) => 1000 * (round + 1))
    expect(limits).toEqual([32, 64, 64, 64, 64, 64])
  })

  it("holds when more requests bring no more throughput", () => {
    const limits = simulate(new InFlight({ max: 256 }), 6, () => 1000)
    // the first round only sets the baseline (and doubles); then a flat rate holds the limit
    expect(limits).toEqual([32, 32, 32, 32, 32, 32])
  })

  it("shrinks by a quarter when throughput collapses, not below min", () => {
    const limits = simulate(new InFlight({ max: 64, min: 4 }), 10, (round) => round === 0 ? 10_000 : 10_000 / 2 ** round)
    expect(limits[0]).toBe(32)
    expect(limits[1]).toBe(24)
    expect(limits[2]).toBe(18)
    expect(Math.min(...limits)).toBeGreaterThanOrEqual(4)
    expect(limits.at(-1)).toBe(4)
  })

  it("stays within [min, max] for any sequence of replies (property)", () => {
    fc.assert(fc.property(
      fc.integer({ min: 1, max: 128 }),
      fc.array(fc.tuple(fc.nat({ max: 1 << 20 }), fc.double({ min: 0, max: 50, noNaN: true })), { maxLength: 500 }),
      (max, replies) => {
        const inFlight = new InFlight({ max })
        let now = 0
        for (const [bytes, gap] of replies) {
          now += gap
          inFlight.record(bytes, now)
          expect(inFlight.limit).toBeGreaterThanOrEqual(inFlight.min)
          expect(inFlight.limit).toBeLessThanOrEqual(inFlight.max)
          expect(Number.isInteger(inFlight.limit)).toBe(true)
        }
      }
    ))
  })
})
