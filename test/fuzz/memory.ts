/**
 * An in-memory transport for fuzzing the layers above it — authentication,
 * the connection protocol, sessions, SFTP — without sockets or crypto, so a
 * suite can deliver hundreds of thousands of mutated messages in seconds.
 *
 * The transport hands the layer under test the payloads a test queued, in
 * order, and counts those it actually took; once the queue stays empty for a
 * few scheduler turns the input ends as a closed connection would
 * (`ConnectionClosed`), so every session ends without timers. What the layer
 * sends is recorded, and an optional `respond` hook may answer it at once
 * (a scripted peer).
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as SshError from "../../src/SshError.ts"
import type { Transport } from "../../src/Transport/Transport.ts"
import type { Negotiated } from "../../src/Transport/Negotiation.ts"
import type { Payload } from "../../src/internal/packetLayout.ts"
import { concat } from "../../src/internal/bytes.ts"

/** The in-memory transport and what passed through it. */
export interface MemoryTransport {
  readonly transport: Transport
  /** Queues payloads for the layer under test; `mutated` marks those that count as mutated packets. */
  readonly feed: (payload: Uint8Array, mutated?: boolean) => void
  /** Payloads the layer took. */
  readonly delivered: () => number
  /** Mutated payloads the layer took. */
  readonly deliveredMutated: () => number
  /** Payloads the layer sent. */
  readonly sent: Array<Uint8Array>
  /** DISCONNECTs the layer sent (code, description). */
  readonly disconnects: Array<{ readonly code: number; readonly description: string }>
  /** The input ends now (as if the peer closed the connection). */
  readonly end: () => void
  /** Resolves once the transport is dead (input ended, DISCONNECT sent): the layer above must finish soon after. */
  readonly dead: Promise<void>
}

/** Options of `memoryTransport`. */
export interface MemoryTransportOptions {
  readonly role: "client" | "server"
  /** Answers what the layer sends, e.g. by feeding replies. */
  readonly respond?: ((payload: Uint8Array, self: MemoryTransport) => void) | undefined
  /** Scheduler turns an empty queue waits before the input ends (default 8). */
  readonly idleTurns?: number | undefined
  /**
   * Scheduler turns before each payload is handed over, one at a time (default 0: all waiting payloads at
   * once). A real peer's messages arrive spread out, after the replies they wait for: a fiber the layer
   * forked for the previous message gets to run first.
   */
  readonly turnsBetween?: number | undefined
  readonly extensions?: ReadonlyMap<string, Uint8Array> | undefined
}

const closedError = (message: string) => SshError.make(new SshError.ConnectionClosed({ message }))

/**
 * A transport over a queue of payloads.
 *
 * @example
 * ```ts
 * const memory = yield* memoryTransport({ role: "server" })
 * memory.feed(Messages.encodeServiceRequest("ssh-userauth"))
 * yield* ServerAuth.authenticate(memory.transport, options, peer)
 * ```
 */
export const memoryTransport = (options: MemoryTransportOptions): Effect.Effect<MemoryTransport> =>
  Effect.sync(() => {
    const queue: Array<{ readonly payload: Uint8Array; readonly mutated: boolean }> = []
    const closed = Deferred.makeUnsafe<never, SshError.SshError>()
    const idleTurns = options.idleTurns ?? 8
    let delivered = 0
    let deliveredMutated = 0
    let failure: SshError.SshError | undefined
    let ended = false
    const sent: Array<Uint8Array> = []
    const disconnects: Array<{ code: number; description: string }> = []

    let markDead: () => void = () => {}
    const dead = new Promise<void>((resolve) => {
      markDead = resolve
    })
    const die = (error: SshError.SshError) => {
      if (failure) return
      failure = error
      markDead()
      Deferred.doneUnsafe(closed, Effect.fail(error))
    }

    const turnsBetween = options.turnsBetween ?? 0
    const pause = Effect.suspend(function loop(turn = 0): Effect.Effect<void> {
      return turn >= turnsBetween ? Effect.void : Effect.andThen(Effect.yieldNow, Effect.suspend(() => loop(turn + 1)))
    })
    const take = (all: boolean): Effect.Effect<ReadonlyArray<Uint8Array>, SshError.SshError> =>
      turnsBetween > 0 ? Effect.andThen(pause, takeNow(false)) : takeNow(all)
    const takeNow = (all: boolean): Effect.Effect<ReadonlyArray<Uint8Array>, SshError.SshError> =>
      Effect.suspend(function attempt(turn = 0): Effect.Effect<ReadonlyArray<Uint8Array>, SshError.SshError> {
        if (failure) return Effect.fail(failure)
        if (queue.length > 0) {
          const taken = all ? queue.splice(0) : queue.splice(0, 1)
          delivered += taken.length
          for (const t of taken) if (t.mutated) deliveredMutated++
          return Effect.succeed(taken.map((t) => t.payload))
        }
        if (ended || turn >= idleTurns) {
          die(closedError("the fuzz input ended"))
          return Effect.fail(failure!)
        }
        return Effect.andThen(Effect.yieldNow, Effect.suspend(() => attempt(turn + 1)))
      })

    const self: MemoryTransport = {
      transport: undefined as unknown as Transport,
      feed: (payload, mutated = false) => {
        queue.push({ payload, mutated })
      },
      delivered: () => delivered,
      deliveredMutated: () => deliveredMutated,
      sent,
      disconnects,
      end: () => {
        ended = true
      },
      dead
    }

    const send = (payload: Payload): Effect.Effect<void, SshError.SshError> =>
      Effect.suspend(() => {
        if (failure) return Effect.fail(failure)
        const bytes = payload instanceof Uint8Array ? Uint8Array.from(payload) : concat([...payload])
        sent.push(bytes)
        options.respond?.(bytes, self)
        return Effect.void
      })

    const negotiated: Negotiated = {
      kex: "curve25519-sha256",
      hostKey: "ssh-ed25519",
      cipherClientToServer: "aes128-gcm@openssh.com",
      cipherServerToClient: "aes128-gcm@openssh.com",
      macClientToServer: "none",
      macServerToClient: "",
      compressionClientToServer: "none",
      compressionServerToClient: "none",
      strictKex: true,
      extInfo: false
    }

    const transport: Transport = {
      role: options.role,
      sessionId: new Uint8Array(32).fill(7),
      peerVersion: "SSH-2.0-Fuzz",
      preamble: [],
      hostKey: () => new Uint8Array(0),
      negotiated: () => negotiated,
      extensions: () => options.extensions ?? new Map(),
      receive: Effect.map(take(false), (taken) => taken[0]!),
      receiveAll: take(true),
      send,
      rekey: Effect.void,
      sendIgnore: () => Effect.void,
      authenticated: Effect.void,
      disconnect: (code = 11, description = "closed by application") =>
        Effect.sync(() => {
          if (failure) return
          disconnects.push({ code, description })
          die(closedError(description))
        }),
      closed,
      lastReceivedAt: () => Date.now(),
      stats: () => ({ bytesIn: 0, bytesOut: 0, packetsIn: delivered, packetsOut: sent.length, kexCount: 1 })
    }
    ;(self as { transport: Transport }).transport = transport
    return self
  })
