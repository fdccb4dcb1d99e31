import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import { ByteQueue } from "../../src/internal/byteQueue.ts"

describe("ByteQueue", () => {
  it("returns the pushed bytes in order, whatever the chunking and the read sizes", () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 50 }), { maxLength: 200 }),
        fc.array(fc.nat({ max: 120 }), { minLength: 1, maxLength: 40 }),
        (chunks, reads) => {
          const q = new ByteQueue()
          const all = chunks.flatMap((c) => Array.from(c))
          for (const c of chunks) q.push(c)
          expect(q.length).toBe(all.length)
          const got: Array<number> = []
          for (const r of reads) {
            const n = Math.min(r, q.length)
            expect(Array.from(q.peek(n))).toEqual(all.slice(got.length, got.length + n))
            got.push(...q.take(n))
          }
          got.push(...q.takeAll())
          expect(got).toEqual(all)
          expect(q.length).toBe(0)
        }
      )
    )
  })

  it("returns views within one chunk and keeps working after many chunks", () => {
    const q = new ByteQueue()
    const chunk = Uint8Array.of(1, 2, 3, 4)
    q.push(chunk)
    const view = q.take(2)
    expect(view.buffer).toBe(chunk.buffer)
    for (let i = 0; i < 1000; i++) q.push(Uint8Array.of(i & 0xff))
    q.skip(500)
    expect(q.length).toBe(502)
    expect(Array.from(q.take(3))).toEqual([498 & 0xff, 499 & 0xff, 500 & 0xff])
  })
})
