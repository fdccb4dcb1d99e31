/**
 * The sending side of an SFTP session: encoded packets are queued and one
 * writer fiber hands them to the channel, small ones coalesced into one
 * CHANNEL_DATA. A burst of 64 READ requests then costs one SSH packet instead
 * of 64, which is what makes deep pipelining cheap.
 *
 * `enqueue` never waits (for callers that bound their own in-flight data, as
 * transfers do); `send` waits while more than `highWater` bytes are queued, so
 * a producer faster than the channel is slowed down rather than buffered.
 *
 * @internal
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import type { SshError } from "../SshError.ts"
import { concat } from "./bytes.ts"
import { discard } from "./ownedBuffers.ts"

/** Packets smaller than this are coalesced (copied into one); larger ones are written on their own. */
export const COALESCE_LIMIT = 64 * 1024

/** Bytes queued beyond which `send` waits. */
const DEFAULT_HIGH_WATER = 1024 * 1024

type Resume = (effect: Effect.Effect<void, SshError>) => void

/**
 * A queue of outgoing SFTP packets drained by `run`.
 *
 * @example
 * ```ts
 * const outbox = new Outbox((bytes) => channel.write(bytes))
 * yield* Effect.forkScoped(outbox.run)
 * outbox.enqueue(Messages.encode(request))
 * ```
 */
export class Outbox {
  private queue: Array<Uint8Array> = []
  private queued = 0
  private failure: SshError | undefined
  private writer: Resume | undefined
  private blocked: Array<Resume> = []
  private draining: Array<Resume> = []
  private readonly write: (bytes: Uint8Array) => Effect.Effect<void, SshError>
  private readonly highWater: number
  private readonly freeWritten: boolean

  /**
   * With `freeWritten`, a packet is freed (`ownedBuffers.discard`) once `write` has succeeded: only for a
   * `write` of the library's that is done with its bytes when it completes, as `SshChannel.write` is (never a
   * caller's function, which may keep them), and only when every packet queued is memory the library made for
   * it (an encoded packet) or holds (`ownedBuffers.retain`).
   */
  constructor(
    write: (bytes: Uint8Array) => Effect.Effect<void, SshError>,
    options: { readonly highWater?: number | undefined; readonly freeWritten?: boolean | undefined } = {}
  ) {
    this.write = write
    this.highWater = options.highWater ?? DEFAULT_HIGH_WATER
    this.freeWritten = options.freeWritten ?? false
  }

  /** Bytes queued and not yet handed to the channel. */
  get pending(): number {
    return this.queued
  }

  /** Queues a packet without waiting; a no-op once the outbox has failed. */
  enqueue(packet: Uint8Array): void {
    if (this.failure !== undefined) return
    this.queue.push(packet)
    this.queued += packet.length
    const writer = this.writer
    if (writer !== undefined) {
      this.writer = undefined
      writer(Effect.void)
    }
  }

  /** Queues a packet, then waits while the queue is above the high-water mark. */
  send(packet: Uint8Array): Effect.Effect<void, SshError> {
    return Effect.suspend(() => {
      if (this.failure !== undefined) return Effect.fail(this.failure)
      this.enqueue(packet)
      return this.queued <= this.highWater ? Effect.void : this.awaitRoom
    })
  }

  /** Fails every waiting sender and drops the queue; later sends fail with `error`. */
  fail(error: SshError): void {
    if (this.failure !== undefined) return
    this.failure = error
    this.queue = []
    this.queued = 0
    for (const resume of [...this.blocked.splice(0), ...this.draining.splice(0)]) resume(Effect.fail(error))
    const writer = this.writer
    this.writer = undefined
    writer?.(Effect.fail(error))
  }

  /** Waits while more than the high-water mark is queued. */
  readonly awaitRoom: Effect.Effect<void, SshError> = Effect.callback<void, SshError>((resume) => {
    if (this.failure !== undefined) return resume(Effect.fail(this.failure))
    if (this.queued <= this.highWater) return resume(Effect.void)
    this.blocked.push(resume)
    return Effect.sync(() => {
      const i = this.blocked.indexOf(resume)
      if (i >= 0) this.blocked.splice(i, 1)
    })
  })

  /** Waits until everything queued so far has been written. */
  readonly drained: Effect.Effect<void, SshError> = Effect.callback<void, SshError>((resume) => {
    if (this.failure !== undefined) return resume(Effect.fail(this.failure))
    if (this.queued === 0) return resume(Effect.void)
    this.draining.push(resume)
    return Effect.sync(() => {
      const i = this.draining.indexOf(resume)
      if (i >= 0) this.draining.splice(i, 1)
    })
  })

  private readonly awaitWork: Effect.Effect<void, SshError> = Effect.callback<void, SshError>((resume) => {
    if (this.failure !== undefined) return resume(Effect.fail(this.failure))
    if (this.queue.length > 0) return resume(Effect.void)
    this.writer = resume
    return Effect.sync(() => {
      if (this.writer === resume) this.writer = undefined
    })
  })

  /** Takes the next batch: one large packet, or consecutive small ones joined. */
  private takeBatch(): Uint8Array {
    const first = this.queue[0]!
    let count = 1
    let size = first.length
    if (first.length < COALESCE_LIMIT) {
      while (count < this.queue.length) {
        const next = this.queue[count]!
        if (size + next.length > COALESCE_LIMIT) break
        size += next.length
        count++
      }
    }
    const taken = this.queue.splice(0, count)
    if (count === 1) return first
    const joined = concat(taken)
    // the packets are copied into the join: done with
    if (this.freeWritten) for (const packet of taken) discard(packet)
    return joined
  }

  private readonly step: Effect.Effect<void, SshError> = Effect.suspend(() => {
    if (this.failure !== undefined) return Effect.fail(this.failure)
    if (this.queue.length === 0) return this.awaitWork
    const batch = this.takeBatch()
    const size = batch.length
    return Effect.map(this.write(batch), () => {
      // the channel has sealed (copied) it: free the encoded packets now rather than at the next GC
      if (this.freeWritten) discard(batch)
      if (this.failure !== undefined) return
      this.queued -= size
      if (this.queued <= this.highWater && this.blocked.length > 0) {
        for (const resume of this.blocked.splice(0)) resume(Effect.void)
      }
      if (this.queued === 0 && this.draining.length > 0) {
        for (const resume of this.draining.splice(0)) resume(Effect.void)
      }
    })
  })

  /** The writer loop: run it in a fiber for the session's lifetime. Fails (and fails the outbox) if a write fails. */
  readonly run: Effect.Effect<never, SshError> = Effect.forever(this.step).pipe(
    Effect.tapError((error) => Effect.sync(() => this.fail(error)))
  )
}
