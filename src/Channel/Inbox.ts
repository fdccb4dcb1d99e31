/**
 * The receive buffer of one channel stream: data pushed by the connection's
 * reader, pulled by the consumer. It never grows beyond the channel window,
 * because the peer may not send more than that; the window is credited back
 * (`onConsumed`) only when the consumer pulls.
 *
 * A single waiter, as in `NodeSocket`: no queue, no extra fiber.
 *
 * Each chunk is a view of a received packet, whose buffer the library owns
 * (`ownedBuffers`): the inbox holds it. What is pulled (`pull`) or consumed
 * (`consume`) is handed over to the consumer for good; only `lend` keeps
 * ownership and frees each batch once the borrower is done with it.
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import type * as Arr from "effect/Array"
import type * as Pull from "effect/Pull"
import * as Stream from "effect/Stream"
import { handOverAll, releaseAll } from "../internal/ownedBuffers.ts"
import type { SshError } from "../SshError.ts"

type Resume = (effect: Effect.Effect<Arr.NonEmptyReadonlyArray<Uint8Array>, SshError | Cause.Done>) => void

/** @internal */
export class Inbox {
  private chunks: Array<Uint8Array> = []
  /** Bytes in `chunks`. */
  private size = 0
  /** Whether anyone has pulled yet. */
  private pulled = false
  private ended = false
  private error: SshError | undefined
  private waiter: Resume | undefined
  /** Whether the waiting pull hands its batch over (`pull`) or lends it (`lend`). */
  private waiterHandsOver = true
  private readonly onConsumed: (bytes: number) => void

  constructor(onConsumed: (bytes: number) => void) {
    this.onConsumed = onConsumed
  }

  get isDone(): boolean {
    return this.ended || this.error !== undefined
  }

  /** Bytes waiting to be pulled. */
  get buffered(): number {
    return this.size
  }

  /** Whether a consumer has pulled (or is pulling) from this inbox. */
  get claimed(): boolean {
    return this.pulled
  }

  push(chunk: Uint8Array): void {
    if (this.isDone || chunk.length === 0) return
    this.chunks.push(chunk)
    this.size += chunk.length
    this.wake()
  }

  end(): void {
    if (this.isDone) return
    this.ended = true
    this.wake()
  }

  fail(error: SshError): void {
    if (this.isDone) return
    this.error = error
    this.wake()
  }

  /** Drops buffered data (crediting it back) — for a consumer that will never read. */
  discard(): void {
    const n = this.size
    this.chunks = []
    this.size = 0
    if (n > 0) this.onConsumed(n)
  }

  private wake(): void {
    const waiter = this.waiter
    if (waiter === undefined) return
    const taken = this.take(this.waiterHandsOver)
    if (taken === undefined) return
    this.waiter = undefined
    waiter(taken)
  }

  private take(handOver: boolean): Effect.Effect<Arr.NonEmptyReadonlyArray<Uint8Array>, SshError | Cause.Done> | undefined {
    if (this.chunks.length > 0) {
      const chunks = this.chunks as unknown as Arr.NonEmptyReadonlyArray<Uint8Array>
      const n = this.size
      this.chunks = []
      this.size = 0
      this.onConsumed(n)
      return Effect.succeed(handOver ? handOverAll(chunks) : chunks)
    }
    // Buffered data is delivered before the end or the error.
    if (this.error !== undefined) return Effect.fail(this.error)
    if (this.ended) return Cause.done()
    return undefined
  }

  /**
   * Pulls to the end, handing each batch over to `f`: it may keep the
   * chunks, which stay valid (the garbage collector frees them).
   */
  consume<E, R>(
    f: (chunks: Arr.NonEmptyReadonlyArray<Uint8Array>) => Effect.Effect<void, E, R>
  ): Effect.Effect<void, SshError | E, R> {
    return Stream.runForEachArray(Stream.fromPull(Effect.succeed(this.pull)), f)
  }

  /**
   * Pulls to the end, lending each batch to `f` and freeing the batch's
   * packet buffers when `f`'s effect succeeds. After a failure or an
   * interruption they are left to the garbage collector: an operation `f`
   * started (a file write in the thread pool) may still be reading them.
   */
  lend<E, R>(
    f: (chunks: Arr.NonEmptyReadonlyArray<Uint8Array>) => Effect.Effect<void, E, R>
  ): Effect.Effect<void, SshError | E, R> {
    return Stream.runForEachArray(
      Stream.fromPull(Effect.succeed(this.lendingPull)),
      (chunks) => Effect.tap(f(chunks), Effect.sync(() => releaseAll(chunks)))
    )
  }

  private pullWith(handOver: boolean): Pull.Pull<Arr.NonEmptyReadonlyArray<Uint8Array>, SshError> {
    return Effect.callback((resume) => {
      this.pulled = true
      const taken = this.take(handOver)
      if (taken !== undefined) return resume(taken)
      this.waiter = resume
      this.waiterHandsOver = handOver
      return Effect.sync(() => {
        if (this.waiter === resume) this.waiter = undefined
      })
    })
  }

  /** The next batch, handed over to the puller (the chunks are theirs to keep). */
  readonly pull: Pull.Pull<Arr.NonEmptyReadonlyArray<Uint8Array>, SshError> = this.pullWith(true)

  /** The next batch, still owned by the inbox's holder: for `lend`, which releases it. */
  private readonly lendingPull: Pull.Pull<Arr.NonEmptyReadonlyArray<Uint8Array>, SshError> = this.pullWith(false)
}
