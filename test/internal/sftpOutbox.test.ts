import { describe, expect, it } from "vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import { Outbox } from "../../src/internal/sftpOutbox.ts"

describe("sftp Outbox", () => {
  it("writes packets in order, coalescing small ones, frees every packet once written or copied, and accounts every byte", async () => {
    const written: Array<Uint8Array> = []
    const outbox = new Outbox((bytes) => Effect.sync(() => void written.push(bytes.slice())), { highWater: 64 * 1024, freeWritten: true })
    const big = new Uint8Array(200_000).fill(7)
    const small = [Uint8Array.of(1, 2), Uint8Array.of(3)]
    const result = await Effect.runPromise(Effect.gen(function*() {
      const fiber = yield* Effect.forkChild(outbox.run)
      for (const packet of small) outbox.enqueue(packet)
      // over the high-water mark: send waits until the writer has taken it
      yield* outbox.send(big)
      yield* outbox.drained
      const pending = outbox.pending
      yield* Fiber.interrupt(fiber)
      return pending
    }))
    expect(result).toBe(0)
    expect(written.map((w) => w.length)).toEqual([3, 200_000])
    expect(written[1]!.every((b) => b === 7)).toBe(true)
    // the big packet was freed after the write, the small ones once copied into the join
    expect(big.byteLength).toBe(0)
    expect(small.map((p) => p.byteLength)).toEqual([0, 0])
    expect([...written[0]!]).toEqual([1, 2, 3])
  })

  it("without freeWritten, nothing it was given is freed", async () => {
    const written: Array<Uint8Array> = []
    const outbox = new Outbox((bytes) => Effect.sync(() => void written.push(bytes)))
    const packets = [new Uint8Array(200_000).fill(1), Uint8Array.of(2), Uint8Array.of(3)]
    await Effect.runPromise(Effect.gen(function*() {
      const fiber = yield* Effect.forkChild(outbox.run)
      for (const packet of packets) outbox.enqueue(packet)
      yield* outbox.drained
      yield* Fiber.interrupt(fiber)
    }))
    expect(packets.map((p) => p.byteLength)).toEqual([200_000, 1, 1])
    expect(written.map((w) => w.byteLength)).toEqual([200_000, 2])
  })
})
