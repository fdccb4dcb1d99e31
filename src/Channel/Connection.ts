/**
 * The connection protocol (RFC 4254) over an authenticated transport: the
 * Effect shell around `ConnectionMachine`. One reader fiber feeds every
 * incoming message to the machine and carries out what it says; channels are
 * scoped resources whose windows are the backpressure. Client and server use
 * the same module; only the handlers they install differ.
 *
 * Nothing user-supplied runs on the reading fiber: an incoming channel, a
 * channel request or a global request is a value handed to its handler in a
 * fiber of its own (a channel's requests one after another, in order), so a
 * slow handler delays nothing else on the connection. Messages the reader or
 * a consumer must send without waiting (window adjusts, answers to CLOSE,
 * refusals) go out through the connection's own sender fiber.
 *
 * A slow consumer on one channel never blocks the others: the reader only
 * appends to a channel's buffer, which the peer cannot overfill because it
 * may not send beyond the window we granted.
 *
 * @since 0.1.0
 */
import type * as Arr from "effect/Array"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Latch from "effect/Latch"
import * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import * as Stream from "effect/Stream"
import * as Sink from "effect/Sink"
import * as Cause from "effect/Cause"
import * as SshError from "../SshError.ts"
import * as N from "../Wire/MessageNumber.ts"
import type { Transport } from "../Transport/Transport.ts"
import * as Messages from "./Messages.ts"
import { Inbox } from "./Inbox.ts"
import * as Telemetry from "../internal/telemetry.ts"
import { handOver } from "../internal/ownedBuffers.ts"
import { type Action, ConnectionMachine, MAX_CHANNEL_PACKET } from "./ConnectionMachine.ts"

/** Channel defaults: window 2 MiB, max packet 32 KiB (OpenSSH's session values). */
export const DEFAULT_WINDOW = 2 * 1024 * 1024
export const DEFAULT_MAX_PACKET = 32 * 1024
/** Stderr kept for a consumer that has not pulled it yet (see `SshChannel.stderr`). */
export const UNREAD_STDERR_LIMIT = 1024 * 1024
export { MAX_CHANNEL_PACKET }
/** Bytes of the peer's channel requests waiting for their handlers, over the whole connection, before the reader waits. */
export const QUEUED_REQUEST_LIMIT = 1024 * 1024
/** Requests (and their bytes) kept for a channel whose handler is not installed yet; later ones are refused. */
export const UNHANDLED_REQUEST_LIMIT = 32
const UNHANDLED_REQUEST_BYTES = 64 * 1024
/** The peer's global requests being handled at once. */
export const GLOBAL_REQUEST_LIMIT = 256
/** Bytes of control messages queued for the sender before the reader waits. */
const CONTROL_HIGH = 256 * 1024

/** Per-channel flow-control settings. */
export interface ChannelOptions {
  /** Receive window we grant (default: the connection's). */
  readonly windowSize?: number | undefined
  /** Largest data packet we accept (default: the connection's; at most MAX_CHANNEL_PACKET). */
  readonly maxPacket?: number | undefined
}

/** Options of a connection. */
export interface ConnectionOptions {
  /** Receive window we grant per channel. */
  readonly windowSize?: number | undefined
  /**
   * Largest a channel's receive window (of `windowSize`) grows to while its consumer keeps up and a window's
   * worth takes 20 ms or more to arrive (see `ReceiveWindow`); default: windows keep their size. Over a 50 ms
   * round trip a 2 MiB window carries ~40 MB/s and 16 MiB ~300; memory per channel is bounded by this limit.
   */
  readonly windowLimit?: number | undefined
  /** Largest data packet we accept per channel. */
  readonly maxPacket?: number | undefined
  /** Most channels open at once (default 1024). */
  readonly maxChannels?: number | undefined
  /**
   * Incoming CHANNEL_OPEN, as a value: the handler accepts it (`incoming.accept`, the channel lives in the
   * handler's scope) or rejects it, in a fiber of its own. One it neither accepts nor rejects is refused.
   * Without a handler every channel is refused.
   */
  readonly onChannelOpen?: ((incoming: IncomingChannel) => Effect.Effect<void, SshError.SshError, Scope.Scope>) | undefined
  /**
   * Incoming GLOBAL_REQUEST, in a fiber of its own: return the reply data for success, undefined for failure
   * (replies still go out in the order the requests came). Without a handler every request fails.
   */
  readonly onGlobalRequest?: ((name: string, data: Uint8Array) => Effect.Effect<Uint8Array | undefined>) | undefined
  /** Keepalive: interval in ms (0 = off) and how many unanswered probes end the connection. */
  readonly keepaliveIntervalMs?: number | undefined
  readonly keepaliveCountMax?: number | undefined
}

/**
 * A peer's request to open a channel, delivered as a value.
 *
 * @example
 * ```ts
 * onChannelOpen: (incoming) =>
 *   incoming.channelType === "session"
 *     ? Effect.flatMap(incoming.accept(), (channel) => serveSession(channel))
 *     : incoming.reject(N.ChannelOpenFailure.ADMINISTRATIVELY_PROHIBITED, "sessions only")
 * ```
 */
export interface IncomingChannel {
  readonly channelType: string
  /** Type-specific data of the CHANNEL_OPEN (the channel's to keep). */
  readonly data: Uint8Array
  /** Confirms the channel; closing the scope closes it. */
  readonly accept: (options?: ChannelOptions) => Effect.Effect<SshChannel, SshError.SshError, Scope.Scope>
  /** Refuses the channel with a reason code (`N.ChannelOpenFailure`) and a description. */
  readonly reject: (code: number, description: string) => Effect.Effect<void, SshError.SshError>
}

/**
 * A handler for requests the peer sends on a channel: whether it succeeded,
 * optionally with an effect to run once the reply is on its way (a server
 * starts the command only then, so its output cannot overtake the reply).
 */
export type ChannelRequestHandler = (
  request: string,
  data: Uint8Array,
  wantReply: boolean
) => Effect.Effect<boolean | { readonly success: boolean; readonly afterReply: Effect.Effect<void> }>

/** What `consumeStdout` / `consumeStderr` hand each batch of chunks to: the chunks are its to keep. */
export type Consumer<E, R> = (chunks: Arr.NonEmptyReadonlyArray<Uint8Array>) => Effect.Effect<void, E, R>

/**
 * What `borrowStdout` / `borrowStderr` lend each batch of chunks to: the chunks are valid only while its effect
 * runs (their memory is freed when it succeeds).
 */
export type Borrower<E, R> = (chunks: Arr.NonEmptyReadonlyArray<Uint8Array>) => Effect.Effect<void, E, R>

/**
 * One open channel.
 *
 * @example
 * ```ts
 * const channel = yield* connection.openChannel("session")
 * yield* channel.request("exec", Requests.encodeString("ls"), true)
 * yield* channel.stdout.pipe(Stream.runForEach((chunk) => Console.log(chunk.length)))
 * ```
 */
export interface SshChannel {
  readonly localId: number
  readonly remoteId: number
  readonly channelType: string
  /**
   * Data from the peer (CHANNEL_DATA). Pulling it is what grants the peer more window. Each chunk is the
   * consumer's to keep (see `borrowStdout` for the zero-copy alternative).
   */
  readonly stdout: Stream.Stream<Uint8Array, SshError.SshError>
  /**
   * Extended data of type 1 (stderr). It shares the window with stdout, so stderr that nobody reads would
   * stall stdout: until stderr is first pulled (here or by `consumeStderr`), at most `UNREAD_STDERR_LIMIT` bytes
   * of it (or half the window, when that is less) are kept, and what comes beyond is discarded with a logged
   * warning. Pull it from the start to get all of it, or `mergeStderr` / `discardStderr`.
   */
  readonly stderr: Stream.Stream<Uint8Array, SshError.SshError>
  /**
   * Drains `stdout`, handing each batch of chunks to `f` as it arrives: the same bytes as `stdout`, without a
   * Stream per chunk. The chunks are `f`'s to keep: they stay valid after `f` returns. Use one of `stdout`,
   * `consumeStdout` and `borrowStdout`, not two.
   *
   * @example
   * ```ts
   * const kept: Array<Uint8Array> = []
   * yield* channel.consumeStdout((chunks) => Effect.sync(() => kept.push(...chunks)))
   * ```
   */
  readonly consumeStdout: <E = never, R = never>(f: Consumer<E, R>) => Effect.Effect<void, SshError.SshError | E, R>
  /** `consumeStdout` for stderr. */
  readonly consumeStderr: <E = never, R = never>(f: Consumer<E, R>) => Effect.Effect<void, SshError.SshError | E, R>
  /**
   * Drains `stdout` zero-copy, lending each batch of chunks to `f` while its effect runs: `f` borrows the batch,
   * and the packet memory under it is freed as soon as `f`'s effect succeeds — from then on the chunks read as
   * empty. So `f` must be done with the chunks when its effect completes: write them to a file or socket, hash
   * them, or copy out (`Uint8Array.from(chunk)`) what it keeps. In return no dead packet waits for the garbage
   * collector, which roughly halves the CPU per byte of a bulk transfer and keeps memory flat. If `f` fails or is
   * interrupted, the batch is not freed (a write it started may still be reading it): it is left to the garbage
   * collector. Use one of `stdout`, `consumeStdout` and `borrowStdout`, not two.
   *
   * @example
   * ```ts
   * const file = yield* Effect.acquireRelease(Effect.promise(() => FsPromises.open("dump.bin", "w")), (f) => Effect.promise(() => f.close()))
   * // writev has finished with the chunks when its promise settles
   * yield* channel.borrowStdout((chunks) => Effect.promise(() => file.writev(chunks)))
   * ```
   */
  readonly borrowStdout: <E = never, R = never>(f: Borrower<E, R>) => Effect.Effect<void, SshError.SshError | E, R>
  /** `borrowStdout` for stderr. */
  readonly borrowStderr: <E = never, R = never>(f: Borrower<E, R>) => Effect.Effect<void, SshError.SshError | E, R>
  /**
   * Sends data, waiting for window; `dataType` 1 sends it as stderr (extended data). Completes once every
   * byte is sealed into a packet: `data` may be reused or freed at once.
   */
  readonly write: (data: Uint8Array, dataType?: number) => Effect.Effect<void, SshError.SshError>
  /**
   * Enlarges the window we grant the peer to `size` bytes for the rest of the channel's life (one WINDOW_ADJUST
   * now; nothing if it is that large already): for a channel that turns out to carry bulk data over a long path,
   * such as a server's SFTP subsystem.
   *
   * @example
   * ```ts
   * yield* session.channel.growWindow(8 * 1024 * 1024) // from the default 2 MiB
   * ```
   */
  readonly growWindow: (size: number) => Effect.Effect<void, SshError.SshError>
  /** A sink writing to the channel; sends EOF when the stream ends. */
  readonly stdin: Sink.Sink<void, Uint8Array, never, SshError.SshError>
  /** Sends EOF: no more data from us. */
  readonly eof: Effect.Effect<void, SshError.SshError>
  /** Sends a channel request; with `wantReply` waits for and returns the peer's answer. */
  readonly request: (name: string, data: Uint8Array, wantReply: boolean) => Effect.Effect<boolean, SshError.SshError>
  /**
   * Installs the handler for requests from the peer (exit-status, pty-req, ...). It runs in a fiber of the
   * channel's own, one request after another; requests that came before it was installed wait for it (up to
   * `UNHANDLED_REQUEST_LIMIT`; later ones are refused).
   */
  readonly onRequest: (handler: ChannelRequestHandler) => void
  /** Forwards stderr into stdout (extended data is then delivered on stdout). */
  readonly mergeStderr: () => void
  /** Discards stderr as it arrives (granting its window back at once). */
  readonly discardStderr: () => void
  /** Completes when the peer sent EOF. */
  readonly remoteEof: Deferred.Deferred<void>
  /** Completes when the channel is fully closed (also when the connection died: see `failure`). */
  readonly closed: Deferred.Deferred<void>
  /** Why the channel ended abnormally (the connection died), if it did. */
  readonly failure: () => SshError.SshError | undefined
  /** Sends CLOSE and waits (bounded) for the peer's. */
  readonly close: Effect.Effect<void>
}

/**
 * A live connection-protocol multiplexer.
 *
 * @example
 * ```ts
 * const connection = yield* Connection.make(transport, { keepaliveIntervalMs: 15_000 })
 * const channel = yield* connection.openChannel("session")
 * ```
 */
export interface Connection {
  readonly transport: Transport
  /** Opens a channel; closing the scope closes it. */
  readonly openChannel: (
    channelType: string,
    data?: Uint8Array,
    options?: ChannelOptions
  ) => Effect.Effect<SshChannel, SshError.SshError, Scope.Scope>
  /** Sends a global request; with `wantReply` returns the reply data, or undefined on failure. */
  readonly globalRequest: (
    name: string,
    data: Uint8Array,
    wantReply: boolean
  ) => Effect.Effect<Uint8Array | undefined, SshError.SshError>
  /** Number of channels currently allocated. */
  readonly channelCount: () => number
  /** Fails with the reason once the connection is dead. */
  readonly closed: Deferred.Deferred<never, SshError.SshError>
}

interface QueuedRequest {
  readonly request: string
  readonly data: Uint8Array
  readonly slot: number | undefined
}

/** The shell's side of one channel: its consumers' buffers and the fibers waiting on it. */
interface ChannelHandle {
  readonly localId: number
  readonly channelType: string
  readonly stdoutInbox: Inbox
  readonly stderrInbox: Inbox
  stderrMode: "separate" | "merge" | "discard"
  readonly windowLatch: Latch.Latch
  readonly writeLock: Semaphore.Semaphore
  readonly pendingRequests: Array<Deferred.Deferred<boolean, SshError.SshError>>
  readonly opened: Deferred.Deferred<void, SshError.SshError>
  readonly remoteEof: Deferred.Deferred<void>
  readonly closed: Deferred.Deferred<void>
  requestHandler: ChannelRequestHandler | undefined
  /** The peer's requests waiting for the handler, in order. */
  readonly queuedRequests: Array<QueuedRequest>
  /** Whether a fiber is working through `queuedRequests`. */
  working: boolean
  /** Whether the channel's number is free again (the channel is closed once `working` ends). */
  released: boolean
  /** Bytes of requests that came before the handler was installed. */
  unhandledBytes: number
  remoteClosed: boolean
  failure: SshError.SshError | undefined
  /** Bytes of unread stderr discarded (see `SshChannel.stderr`). */
  stderrDropped: number
}

const errorOf = (reason: SshError.SshErrorReason) => new SshError.SshError({ reason })

/**
 * Starts the connection protocol on an authenticated transport. The reader
 * fiber, the sender fiber, the handlers' fibers and all channels live in the
 * current scope.
 *
 * @example
 * ```ts
 * const connection = yield* Connection.make(transport, {})
 * ```
 */
export const make = Effect.fnUntraced(function*(transport: Transport, options: ConnectionOptions = {}) {
  const scope = yield* Effect.scope
  const services = yield* Effect.context<never>()
  const clock = yield* Clock.Clock
  // the connection protocol runs only on an authenticated transport: its pre-authentication limits end here
  yield* transport.authenticated
  const windowSize = options.windowSize ?? DEFAULT_WINDOW
  const maxPacket = Math.min(options.maxPacket ?? DEFAULT_MAX_PACKET, MAX_CHANNEL_PACKET)
  const machine = new ConnectionMachine({
    maxChannels: options.maxChannels ?? 1024,
    windowSize,
    maxPacket,
    windowLimit: options.windowLimit
  })
  const handles = new Map<number, ChannelHandle>()
  /**
   * Channels whose number is free again but whose handler is still working through the requests that came
   * before the CLOSE: the connection's death must close them too, since their number is no longer in `handles`
   * and a worker interrupted before it started never reports back.
   */
  const draining = new Set<ChannelHandle>()
  const pendingGlobal: Array<Deferred.Deferred<Uint8Array | undefined, SshError.SshError>> = []
  const closed = yield* Deferred.make<never, SshError.SshError>()
  let failure: SshError.SshError | undefined
  let queuedRequestBytes = 0
  const requestRoom = Latch.makeUnsafe(true)
  const dequeued = (bytes: number) => {
    queuedRequestBytes -= bytes
    if (queuedRequestBytes <= QUEUED_REQUEST_LIMIT) requestRoom.openUnsafe()
  }
  let globalHandlers = 0

  // ---- the connection's own sender: what synchronous code must send goes out from here, in order
  let control: Array<Uint8Array> = []
  let controlBytes = 0
  const controlReady = Latch.makeUnsafe(false)
  const controlRoom = Latch.makeUnsafe(true)
  const queueControl = (payload: Uint8Array): void => {
    control.push(payload)
    controlBytes += payload.length + 64
    controlReady.openUnsafe()
    if (controlBytes > CONTROL_HIGH) controlRoom.closeUnsafe()
  }
  const sender = Effect.forever(Effect.gen(function*() {
    yield* controlReady.await
    const batch = control
    control = []
    controlReady.closeUnsafe()
    for (const payload of batch) {
      yield* transport.send(payload)
      controlBytes -= payload.length + 64
    }
    if (controlBytes <= CONTROL_HIGH) controlRoom.openUnsafe()
  }))

  // ---- work started by synchronous code (the reader, `onRequest`): forked from here into the connection's scope
  let launches: Array<Effect.Effect<void>> = []
  const launchReady = Latch.makeUnsafe(false)
  const launch = (effect: Effect.Effect<void>): void => {
    launches.push(effect)
    launchReady.openUnsafe()
  }
  const launcher = Effect.forever(Effect.gen(function*() {
    yield* launchReady.await
    const batch = launches
    launches = []
    launchReady.closeUnsafe()
    for (const effect of batch) yield* Effect.forkIn(effect, scope)
  }))

  const makeHandle = (localId: number, channelType: string): ChannelHandle => {
    const handle: ChannelHandle = {
      localId,
      channelType,
      stdoutInbox: new Inbox((n) => credit(handle, n)),
      stderrInbox: new Inbox((n) => credit(handle, n)),
      stderrMode: "separate",
      windowLatch: Latch.makeUnsafe(false),
      writeLock: Semaphore.makeUnsafe(1),
      pendingRequests: [],
      opened: Deferred.makeUnsafe(),
      remoteEof: Deferred.makeUnsafe(),
      closed: Deferred.makeUnsafe(),
      requestHandler: undefined,
      queuedRequests: [],
      working: false,
      released: false,
      unhandledBytes: 0,
      remoteClosed: false,
      failure: undefined,
      stderrDropped: 0
    }
    handles.set(localId, handle)
    Telemetry.openChannels.modifyUnsafe(1, services)
    Telemetry.channelsOpened.modifyUnsafe(1, services)
    return handle
  }

  /** The consumer took `n` bytes: the machine says when to grant them back. */
  const credit = (handle: ChannelHandle, n: number) => {
    if (failure !== undefined) return
    const adjust = machine.consumed(handle.localId, n, clock.currentTimeMillisUnsafe())
    if (adjust !== undefined) queueControl(adjust)
  }

  const channelGone = (handle: ChannelHandle) =>
    errorOf(new SshError.ChannelRequestFailed({ request: "write", message: `channel ${handle.localId} is closed` }))

  const endStreams = (handle: ChannelHandle) => {
    handle.stdoutInbox.end()
    handle.stderrInbox.end()
    Deferred.doneUnsafe(handle.remoteEof, Exit.void)
  }

  /** The channel's number is free: it is closed once its handler has seen the requests that came before the CLOSE. */
  const release = (handle: ChannelHandle) => {
    if (handles.get(handle.localId) === handle) {
      handles.delete(handle.localId)
      Telemetry.openChannels.modifyUnsafe(-1, services)
    }
    handle.released = true
    endStreams(handle)
    // the error (and its stack) is made only when someone is still waiting for it
    const waiting = handle.pendingRequests.splice(0)
    if (!Deferred.isDoneUnsafe(handle.opened) || waiting.length > 0) {
      const gone = channelGone(handle)
      Deferred.doneUnsafe(handle.opened, Exit.fail(gone))
      for (const d of waiting) Deferred.doneUnsafe(d, Exit.fail(gone))
    }
    handle.windowLatch.openUnsafe()
    settle(handle)
  }

  const settle = (handle: ChannelHandle) => {
    if (!handle.released) return
    if (handle.working && failure === undefined) {
      draining.add(handle)
      return
    }
    draining.delete(handle)
    dequeued(handle.queuedRequests.reduce((n, r) => n + r.data.length, 0))
    handle.queuedRequests.length = 0
    Deferred.doneUnsafe(handle.closed, Exit.void)
  }

  const failChannel = (handle: ChannelHandle, error: SshError.SshError) => {
    handle.failure ??= error
    handle.stdoutInbox.fail(error)
    handle.stderrInbox.fail(error)
    Deferred.doneUnsafe(handle.opened, Exit.fail(error))
    for (const d of handle.pendingRequests.splice(0)) Deferred.doneUnsafe(d, Exit.fail(error))
    handle.windowLatch.openUnsafe()
    Deferred.doneUnsafe(handle.remoteEof, Exit.void)
    release(handle)
  }

  const die = (error: SshError.SshError) => {
    if (failure) return
    failure = error
    for (const handle of [...handles.values()]) failChannel(handle, error)
    for (const handle of [...draining]) settle(handle)
    machine.forgetAll()
    for (const d of pendingGlobal.splice(0)) Deferred.doneUnsafe(d, Exit.fail(error))
    controlReady.openUnsafe()
    controlRoom.openUnsafe()
    requestRoom.openUnsafe()
    Deferred.doneUnsafe(closed, Exit.fail(error))
  }

  // ---- carrying out the machine's actions

  /** Warnings for the reader to log once its synchronous work is done. */
  let warnings: Array<string> = []

  const unreadStderrFull = (handle: ChannelHandle, n: number): boolean =>
    !handle.stderrInbox.claimed &&
    handle.stderrInbox.buffered + n > Math.min(UNREAD_STDERR_LIMIT, (machine.channel(handle.localId)?.receive.size ?? 0) / 2)

  const dropStderr = (handle: ChannelHandle, n: number) => {
    if (handle.stderrDropped === 0) {
      warnings.push(
        `channel ${handle.localId}: discarding stderr nobody reads (${handle.stderrInbox.buffered} bytes kept) so that stdout keeps flowing`
      )
    }
    handle.stderrDropped += n
    credit(handle, n)
  }

  const deliverData = (handle: ChannelHandle, dataType: number | undefined, data: Uint8Array) => {
    if (dataType === undefined) handle.stdoutInbox.push(data)
    else if (dataType !== 1 || handle.stderrMode === "discard") credit(handle, data.length)
    else if (handle.stderrMode === "merge") handle.stdoutInbox.push(data)
    else if (unreadStderrFull(handle, data.length)) dropStderr(handle, data.length)
    else handle.stderrInbox.push(data)
  }

  /**
   * Carries out actions synchronously; what they send goes to the sender fiber. For the reader and for
   * consumers, which must not wait.
   */
  const apply = (actions: ReadonlyArray<Action>): void => {
    for (const action of actions) {
      if (action._tag === "Send") queueControl(action.payload)
      else deliver(action)
    }
  }

  /**
   * Carries out actions from a fiber that may wait: what they send goes out from this fiber, before it goes on
   * (a confirmation before the channel's first data, a reply before what the request started).
   */
  const perform = (actions: ReadonlyArray<Action>): Effect.Effect<void, SshError.SshError> =>
    Effect.forEach(actions, (action) =>
      action._tag === "Send" ? transport.send(action.payload) : Effect.sync(() => deliver(action)), { discard: true })

  const deliver = (action: Exclude<Action, { _tag: "Send" }>): void => {
    switch (action._tag) {
      case "Data": {
        const handle = handles.get(action.localId)
        if (handle !== undefined) deliverData(handle, action.dataType, action.data)
        return
      }
      case "WindowOpened":
        handles.get(action.localId)?.windowLatch.openUnsafe()
        return
      case "Eof": {
        const handle = handles.get(action.localId)
        if (handle !== undefined) endStreams(handle)
        return
      }
      case "RemoteClosed": {
        const handle = handles.get(action.localId)
        if (handle === undefined) return
        handle.remoteClosed = true
        const waiting = handle.pendingRequests.splice(0)
        if (waiting.length > 0) {
          const gone = channelGone(handle)
          for (const d of waiting) Deferred.doneUnsafe(d, Exit.fail(gone))
        }
        handle.windowLatch.openUnsafe()
        return
      }
      case "Closed": {
        const handle = handles.get(action.localId)
        if (handle !== undefined) release(handle)
        return
      }
      case "Opened": {
        const handle = handles.get(action.localId)
        if (handle === undefined) return
        if ((machine.channel(action.localId)?.send.available ?? 0) > 0) handle.windowLatch.openUnsafe()
        Deferred.doneUnsafe(handle.opened, Exit.void)
        return
      }
      case "OpenFailed": {
        const handle = handles.get(action.localId)
        if (handle === undefined) return
        Deferred.doneUnsafe(
          handle.opened,
          Exit.fail(errorOf(new SshError.ChannelOpenFailed({ code: action.code, description: action.description })))
        )
        return
      }
      case "RequestReply": {
        const pending = handles.get(action.localId)?.pendingRequests.shift()
        if (pending !== undefined) Deferred.doneUnsafe(pending, Exit.succeed(action.success))
        return
      }
      case "GlobalReply": {
        const pending = pendingGlobal.shift()
        if (pending !== undefined) Deferred.doneUnsafe(pending, Exit.succeed(action.data))
        return
      }
      case "IncomingOpen":
        return incomingOpen(action.localId, action.channelType, action.data)
      case "IncomingRequest":
        return incomingRequest(action.localId, { request: action.request, data: action.data, slot: action.slot })
      case "IncomingGlobalRequest":
        return incomingGlobalRequest(action.name, action.data, action.slot)
    }
  }

  // ---- the peer's requests, handed to their handlers off the reading fiber

  const incomingOpen = (localId: number, channelType: string, data: Uint8Array) => {
    const handler = options.onChannelOpen
    if (handler === undefined) {
      return apply(machine.reject(localId, N.ChannelOpenFailure.UNKNOWN_CHANNEL_TYPE, `${channelType} channels are not accepted`))
    }
    const handle = makeHandle(localId, channelType)
    let answered = false
    const incoming: IncomingChannel = {
      channelType,
      data: handOver(data),
      accept: (flow) =>
        Effect.suspend(() => {
          if (failure) return Effect.fail(failure)
          if (answered) return Effect.fail(channelGone(handle))
          answered = true
          return Effect.gen(function*() {
            yield* Effect.addFinalizer(() => closeChannel(handle))
            yield* perform(machine.accept(localId, flow?.windowSize))
            if ((machine.channel(localId)?.send.available ?? 0) > 0) handle.windowLatch.openUnsafe()
            Deferred.doneUnsafe(handle.opened, Exit.void)
            return toChannel(handle)
          })
        }),
      reject: (code, description) =>
        Effect.suspend(() => {
          if (answered || failure) return Effect.void
          answered = true
          return perform(machine.reject(localId, code, description))
        })
    }
    launch(
      Effect.scoped(handler(incoming)).pipe(
        Effect.ignore,
        Effect.ensuring(Effect.suspend(() =>
          Effect.ignore(incoming.reject(N.ChannelOpenFailure.ADMINISTRATIVELY_PROHIBITED, `${channelType} channel not accepted`))
        ))
      )
    )
  }

  const refuseRequest = (localId: number, slot: number | undefined) => {
    if (slot !== undefined) apply(machine.replyRequest(localId, slot, false))
  }

  const incomingRequest = (localId: number, request: QueuedRequest) => {
    const handle = handles.get(localId)
    if (handle === undefined) return refuseRequest(localId, request.slot)
    if (
      handle.requestHandler === undefined &&
      (handle.queuedRequests.length >= UNHANDLED_REQUEST_LIMIT || handle.unhandledBytes + request.data.length > UNHANDLED_REQUEST_BYTES)
    ) {
      return refuseRequest(localId, request.slot)
    }
    queuedRequestBytes += request.data.length
    if (handle.requestHandler === undefined) handle.unhandledBytes += request.data.length
    // the handlers are behind: the reader waits for them (TCP backpressure) rather than buffer more
    if (queuedRequestBytes > QUEUED_REQUEST_LIMIT) requestRoom.closeUnsafe()
    handle.queuedRequests.push(request)
    startWorking(handle)
  }

  /** Hands the channel's queued requests to its handler, one after another, in a fiber of their own. */
  const startWorking = (handle: ChannelHandle) => {
    if (handle.working || handle.requestHandler === undefined || handle.queuedRequests.length === 0) return
    handle.working = true
    const next: Effect.Effect<void, SshError.SshError> = Effect.suspend(() => {
      const request = handle.queuedRequests.shift()
      const handler = handle.requestHandler
      if (request === undefined || handler === undefined) return Effect.void
      dequeued(request.data.length)
      return handler(request.request, request.data, request.slot !== undefined).pipe(
        Effect.flatMap((outcome) => {
          const ok = typeof outcome === "boolean" ? outcome : outcome.success
          const reply = request.slot === undefined ? Effect.void : perform(machine.replyRequest(handle.localId, request.slot, ok))
          return typeof outcome === "boolean" ? reply : Effect.andThen(reply, outcome.afterReply)
        }),
        Effect.andThen(next)
      )
    })
    launch(Effect.ignore(Effect.ensuring(next, Effect.sync(() => {
      handle.working = false
      settle(handle)
    }))))
  }

  const incomingGlobalRequest = (name: string, data: Uint8Array, slot: number | undefined) => {
    const handler = options.onGlobalRequest
    if (handler === undefined) {
      if (slot !== undefined) apply(machine.replyGlobal(slot, undefined))
      return
    }
    if (globalHandlers >= GLOBAL_REQUEST_LIMIT) {
      throw new SshError.LimitExceeded({
        limit: "global requests",
        message: `more than ${GLOBAL_REQUEST_LIMIT} global requests are being handled at once`
      })
    }
    globalHandlers++
    launch(
      handler(name, handOver(data)).pipe(
        Effect.orElseSucceed(() => undefined),
        Effect.flatMap((reply) => Effect.sync(() => {
          if (slot !== undefined && failure === undefined) apply(machine.replyGlobal(slot, reply))
        })),
        Effect.ensuring(Effect.sync(() => {
          globalHandlers--
        }))
      )
    )
  }

  // ---- what users do on a channel

  const write = (handle: ChannelHandle, data: Uint8Array, dataType?: number): Effect.Effect<void, SshError.SshError> =>
    handle.writeLock.withPermit(Effect.suspend(() => {
      let offset = 0
      const loop: Effect.Effect<void, SshError.SshError> = Effect.suspend(() => {
        if (failure) return Effect.fail(failure)
        if (offset >= data.length) return Effect.void
        const n = machine.takeWindow(handle.localId, data.length - offset)
        if (n === undefined || handle.remoteClosed) return Effect.fail(channelGone(handle))
        if (n === 0) {
          handle.windowLatch.closeUnsafe()
          return Effect.andThen(handle.windowLatch.await, loop)
        }
        const chunk = data.subarray(offset, offset + n)
        offset += n
        const remoteId = machine.channel(handle.localId)!.remoteId
        return Effect.andThen(transport.send([Messages.channelDataHeader(remoteId, chunk.length, dataType), chunk]), loop)
      })
      return loop
    }))

  const sendEof = (handle: ChannelHandle) =>
    handle.writeLock.withPermit(Effect.suspend(() => {
      if (failure || handle.remoteClosed) return Effect.void
      const eof = machine.eof(handle.localId)
      return eof === undefined ? Effect.void : transport.send(eof)
    }))

  const closeChannel = (handle: ChannelHandle): Effect.Effect<void> =>
    Effect.suspend(() => {
      if (Deferred.isDoneUnsafe(handle.closed)) return Effect.void
      const phase = machine.channel(handle.localId)?.phase
      if (phase === "opening") {
        // not confirmed yet: kept until the peer answers, so that a late confirmation is answered with CLOSE
        apply(machine.close(handle.localId))
        Deferred.doneUnsafe(handle.opened, Exit.fail(channelGone(handle)))
        return Effect.void
      }
      handle.stdoutInbox.end()
      handle.stderrInbox.end()
      if (failure) return Effect.void
      return Effect.ignore(perform(machine.close(handle.localId))).pipe(
        Effect.andThen(Effect.timeoutOrElse(Deferred.await(handle.closed), {
          duration: 10_000,
          // a released number may be another channel's by now
          orElse: () =>
            Effect.sync(() => {
              if (handles.get(handle.localId) === handle) apply(machine.forget(handle.localId))
            })
        }))
      )
    })

  const requestOn = (handle: ChannelHandle, name: string, data: Uint8Array, wantReply: boolean) =>
    Effect.suspend(() => {
      if (failure) return Effect.fail(failure)
      const payload = handle.remoteClosed ? undefined : machine.request(handle.localId, name, wantReply, data)
      if (payload === undefined) return Effect.fail(channelGone(handle))
      if (!wantReply) return Effect.as(transport.send(payload), true)
      const reply = Deferred.makeUnsafe<boolean, SshError.SshError>()
      handle.pendingRequests.push(reply)
      return Effect.andThen(transport.send(payload), Deferred.await(reply))
    })

  const toChannel = (handle: ChannelHandle): SshChannel => ({
    localId: handle.localId,
    get remoteId() {
      return machine.channel(handle.localId)?.remoteId ?? -1
    },
    channelType: handle.channelType,
    stdout: Stream.fromPull(Effect.succeed(handle.stdoutInbox.pull)),
    stderr: Stream.fromPull(Effect.succeed(handle.stderrInbox.pull)),
    consumeStdout: (f) => handle.stdoutInbox.consume(f),
    consumeStderr: (f) => handle.stderrInbox.consume(f),
    borrowStdout: (f) => handle.stdoutInbox.lend(f),
    borrowStderr: (f) => handle.stderrInbox.lend(f),
    write: (data, dataType) => write(handle, data, dataType),
    growWindow: (size) =>
      Effect.suspend(() => {
        if (failure) return Effect.fail(failure)
        if (handle.remoteClosed || !machine.isOpen(handle.localId)) return Effect.fail(channelGone(handle))
        const adjust = machine.growWindow(handle.localId, size)
        return adjust === undefined ? Effect.void : transport.send(adjust)
      }),
    stdin: Sink.forEach((chunk: Uint8Array) => write(handle, chunk)).pipe(
      Sink.mapEffect(() => sendEof(handle))
    ),
    eof: sendEof(handle),
    request: (name, data, wantReply) => requestOn(handle, name, data, wantReply),
    onRequest: (handler) => {
      // the request's data is a view of the packet it arrived in, and the handler may keep it
      handle.requestHandler = (request, data, wantReply) => handler(request, handOver(data), wantReply)
      handle.unhandledBytes = 0
      startWorking(handle)
    },
    mergeStderr: () => {
      handle.stderrMode = "merge"
    },
    discardStderr: () => {
      handle.stderrMode = "discard"
      handle.stderrInbox.discard()
    },
    remoteEof: handle.remoteEof,
    closed: handle.closed,
    failure: () => handle.failure,
    close: closeChannel(handle)
  })

  // The wait for the peer's answer is interruptible: the channel's finalizer is in place before it, and an
  // abandoned open stays known until the peer answers (see `closeChannel`).
  const openChannel = (channelType: string, data?: Uint8Array, flow?: ChannelOptions) =>
    Effect.withSpan(openChannelNow(channelType, data, flow), "ssh.channel.open", { attributes: { "ssh.channel.type": channelType } })

  const openChannelNow = (channelType: string, data?: Uint8Array, flow?: ChannelOptions) =>
    Effect.gen(function*() {
      if (failure) return yield* Effect.fail(failure)
      const opening = machine.open(channelType, flow?.windowSize ?? windowSize, flow?.maxPacket ?? maxPacket, data)
      if (opening === undefined) {
        return yield* Effect.fail(errorOf(new SshError.ChannelOpenFailed({ code: N.ChannelOpenFailure.RESOURCE_SHORTAGE, description: "too many open channels" })))
      }
      const handle = makeHandle(opening.localId, channelType)
      yield* Effect.addFinalizer(() => closeChannel(handle))
      yield* transport.send(opening.send)
      yield* Deferred.await(handle.opened)
      yield* Effect.logDebug(`channel ${opening.localId}: ${channelType} open (remote ${machine.channel(opening.localId)?.remoteId})`)
      return toChannel(handle)
    })

  const globalRequest = (name: string, data: Uint8Array, wantReply: boolean) =>
    Effect.suspend(() => {
      if (failure) return Effect.fail(failure)
      const payload = machine.globalRequest(name, wantReply, data)
      if (!wantReply) return Effect.as(transport.send(payload), undefined)
      const reply = Deferred.makeUnsafe<Uint8Array | undefined, SshError.SshError>()
      pendingGlobal.push(reply)
      return Effect.andThen(transport.send(payload), Deferred.await(reply))
    })

  // ---- the reader

  const withWarnings = (effect: Effect.Effect<void, SshError.SshError>): Effect.Effect<void, SshError.SshError> => {
    if (warnings.length === 0) return effect
    const pending = warnings
    warnings = []
    return Effect.andThen(Effect.forEach(pending, (w) => Effect.logWarning(w), { discard: true }), effect)
  }

  /** Feeds a batch to the machine and carries out its actions, all synchronously; a violation ends the connection. */
  const receiveBatch = (batch: ReadonlyArray<Uint8Array>): Effect.Effect<void, SshError.SshError> => {
    try {
      const now = clock.currentTimeMillisUnsafe()
      for (const payload of batch) apply(machine.receive(payload, now))
      return withWarnings(Effect.andThen(controlRoom.await, requestRoom.await))
    } catch (u) {
      return withWarnings(SshError.failOrDie(u))
    }
  }

  const pump = Effect.forever(Effect.flatMap(transport.receiveAll, receiveBatch))

  const keepalive = Effect.gen(function*() {
    const interval = options.keepaliveIntervalMs ?? 0
    const countMax = options.keepaliveCountMax ?? 3
    if (interval <= 0) return
    let missed = 0
    for (;;) {
      yield* Effect.sleep(interval)
      if ((yield* Clock.currentTimeMillis) - transport.lastReceivedAt() < interval) {
        missed = 0
        continue
      }
      missed++
      if (missed > countMax) {
        return yield* Effect.fail(errorOf(new SshError.Timeout({ message: `no answer from the peer to ${countMax} keepalives ${interval} ms apart` })))
      }
      yield* Effect.forkIn(Effect.ignore(globalRequest("keepalive@openssh.com", new Uint8Array(0), true)), scope)
    }
  })

  /** The error that is ending the connection while its DISCONNECT is being sent. */
  let fatal: SshError.SshError | undefined

  const onFatal = (cause: Cause.Cause<SshError.SshError>) =>
    Effect.suspend(() => {
      if (Cause.hasInterruptsOnly(cause)) return Effect.void
      const error = SshError.fromCauseOrInternal(cause)
      // a bug of ours is logged, not blamed on the peer
      const logged = SshError.fromCause(cause) === undefined ? Effect.logError("connection failed", cause) : Effect.void
      fatal ??= error
      // DISCONNECT goes out before the channels learn of the error: a caller that then closes its
      // scope would otherwise get its own "closed by application" DISCONNECT out first
      return logged.pipe(
        Effect.andThen(Effect.ignore(transport.disconnect(
          error.reason._tag === "Timeout" ? N.DisconnectReason.CONNECTION_LOST : N.DisconnectReason.PROTOCOL_ERROR,
          error.reason.message
        ))),
        Effect.ensuring(Effect.sync(() => die(error)))
      )
    })

  const fibers = [
    yield* Effect.forkIn(Effect.catchCause(pump, onFatal), scope),
    yield* Effect.forkIn(Effect.catchCause(sender, onFatal), scope),
    yield* Effect.forkIn(launcher, scope),
    yield* Effect.forkIn(Effect.catchCause(keepalive, onFatal), scope)
  ]
  yield* Scope.addFinalizer(scope, Effect.forEach(fibers.reverse(), Fiber.interrupt, { discard: true }))
  // A dead transport ends every channel, even if no one is reading.
  yield* Effect.forkIn(
    Effect.catchCause(Deferred.await(transport.closed), (cause) =>
      Effect.sync(() => die(fatal ?? SshError.fromCauseOrInternal(cause)))),
    scope
  )

  const connection: Connection = {
    transport,
    openChannel,
    globalRequest,
    channelCount: () => machine.channelCount,
    closed
  }
  return connection
})
