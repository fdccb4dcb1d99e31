/**
 * The adaptive in-flight limit of pipelined transfers.
 */
import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import { InFlight } from "../../src/Sftp/Transfer.ts"

/**
 * Feeds `rounds` rounds of replies, 64 KiB each, at `rate(limit, round)` bytes per ms (the limit in force when the
 * round starts); returns the limit after each round.
 */
const simulate = (inFlight: InFlight, rounds: number, rate: (limit: number, round: number) => number): Array<number> => {
  const limits: Array<number> = []
  let now = 0
  inFlight.record(0, now)
  for (let round = 0; round < rounds; round++) {
    const limit = inFlight.limit
    for (let i = 0; i < limit; i++) {
      now += 65536 / rate(limit, round)
      inFlight.record(65536, now)
    }
    limits.push(inFlight.limit)
  }
  return limits
}

/** A long round trip: the rate is what the requests in flight can carry per round trip, up to the link's. */
const latencyBound = (rttMs: number, linkRate: number) => (limit: number) => Math.min(linkRate, (limit * 65536) / rttMs)

describe("InFlight", () => {
  it("starts at 32 (clamped to [min, max]) and validates its bounds", () => {
    expect(new InFlight({ max: 128 }).limit).toBe(32)
    expect(new InFlight({ max: 8 }).limit).toBe(8)
    expect(new InFlight({ max: 64, initial: 1 }).limit).toBe(4)
    expect(new InFlight({ max: 0 }).limit).toBe(1)
    expect(new InFlight({ max: 2, min: 5 }).min).toBe(2)
  })

  it("over a long round trip, keeps doubling while each doubling pays, up to max", () => {
    // 50 ms round trip, a link of 1 GB/s: 32 requests carry 42 MB/s, 128 carry 168 MB/s (the first round fills up)
    expect(simulate(new InFlight({ max: 128 }), 8, latencyBound(50, 1_000_000))).toEqual([32, 32, 64, 64, 128, 128, 128, 128])
  })

  it("stops growing where the link, not the round trip, sets the pace", () => {
    // 32 requests carry 42 MB/s of a 50 MB/s link: 64 gain less than a quarter, so back to 32
    expect(simulate(new InFlight({ max: 128 }), 6, latencyBound(50, 50_000))).toEqual([32, 32, 64, 64, 32, 32])
    // of a 60 MB/s link, 64 gain 43% and stay; 128 gain nothing
    expect(simulate(new InFlight({ max: 128 }), 7, latencyBound(50, 60_000))).toEqual([32, 32, 64, 64, 128, 128, 64])
  })

  it("on loopback (rate independent of the limit) probes once, goes back, and probes again only after a while", () => {
    const limits = simulate(new InFlight({ max: 128 }), 30, () => 800_000)
    expect(limits.slice(0, 6)).toEqual([32, 32, 64, 64, 32, 32])
    expect(limits.filter((l) => l === 32).length).toBeGreaterThanOrEqual(26)
    expect(Math.max(...limits)).toBe(64)
  })

  it("on loopback, a noisy round does not pass for a gain: the baseline is the best recent round", () => {
    // rounds alternate 600 and 1000 MB/s whatever the limit: a probe landing on a fast round is no gain over it
    const limits = simulate(new InFlight({ max: 128 }), 40, (_, round) => round % 2 === 0 ? 600_000 : 1_000_000)
    expect(Math.max(...limits)).toBe(64)
    expect(limits.filter((l) => l === 32).length).toBeGreaterThanOrEqual(32)
  })

  it("never falls below where it started, however the rate swings (slow rounds are noise or a slow consumer)", () => {
    fc.assert(fc.property(fc.array(fc.double({ min: 1, max: 1_000_000, noNaN: true }), { minLength: 1, maxLength: 60 }), (rates) => {
      const limits = simulate(new InFlight({ max: 128 }), rates.length, (_, round) => rates[round]!)
      expect(Math.min(...limits)).toBeGreaterThanOrEqual(32)
    }))
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
