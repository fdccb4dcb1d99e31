/**
 * The connection protocol (RFC 4254) over an authenticated transport: one
 * reader fiber dispatches every incoming message to its channel, global
 * requests are answered in order, and channels are scoped resources whose
 * windows are the backpressure. Client and server use the same module; only
 * the handlers they install differ.
 *
 * A slow consumer on one channel never blocks the others: the reader only
 * appends to a channel's buffer, which the peer cannot overfill because it
 * may not send beyond the window we granted.
 *
 * @since 0.1.0
 */
import type * as Arr from "effect/Array"
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
import { core } from "../Transport/Transport.ts"
import * as Messages from "./Messages.ts"
import { Inbox } from "./Inbox.ts"
import { handOver } from "../internal/ownedBuffers.ts"
import { ReceiveWindow, SendWindow } from "./Window.ts"
import type { Payload } from "../internal/packetLayout.ts"

/** Channel defaults: window 2 MiB, max packet 32 KiB (OpenSSH's session values). */
export const DEFAULT_WINDOW = 2 * 1024 * 1024
export const DEFAULT_MAX_PACKET = 32 * 1024
/** Stderr kept for a consumer that has not pulled it yet (see `SshChannel.stderr`). */
export const UNREAD_STDERR_LIMIT = 1024 * 1024
/** Largest channel max packet: data plus message, padding and MAC must fit a 256 KiB transport packet. */
export const MAX_CHANNEL_PACKET = 256 * 1024 - 1024

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
  /** Largest data packet we accept per channel. */
  readonly maxPacket?: number | undefined
  /** Most channels open at once (default 1024). */
  readonly maxChannels?: number | undefined
  /** Incoming CHANNEL_OPEN: accept by returning a handler, refuse by failing with ChannelOpenFailed. */
  readonly onChannelOpen?: ((request: IncomingChannelOpen) => Effect.Effect<
    (channel: SshChannel) => Effect.Effect<void, SshError.SshError, Scope.Scope>,
    SshError.ChannelOpenFailed
  >) | undefined
  /** Incoming GLOBAL_REQUEST: return the reply data for success, undefined for failure. */
  readonly onGlobalRequest?: ((name: string, data: Uint8Array) => Effect.Effect<Uint8Array | undefined>) | undefined
  /** Keepalive: interval in ms (0 = off) and how many unanswered probes end the connection. */
  readonly keepaliveIntervalMs?: number | undefined
  readonly keepaliveCountMax?: number | undefined
}

/** A peer's request to open a channel. */
export interface IncomingChannelOpen {
  readonly channelType: string
  readonly data: Uint8Array
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
  /** Installs the handler for requests from the peer (exit-status, pty-req, ...). */
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

interface ChannelState {
  readonly localId: number
  remoteId: number
  readonly channelType: string
  readonly receive: ReceiveWindow
  /** Largest data packet we accept on this channel. */
  readonly maxPacket: number
  send: SendWindow
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
  failure: SshError.SshError | undefined
  sentEof: boolean
  sentClose: boolean
  receivedClose: boolean
  /** Opened by us and given up before the peer answered: a late confirmation is answered with CLOSE. */
  abandoned: boolean
  /** Bytes of unread stderr discarded (see `SshChannel.stderr`). */
  stderrDropped: number
}

const errorOf = (reason: SshError.SshErrorReason) => new SshError.SshError({ reason })

/**
 * Starts the connection protocol on an authenticated transport. The reader
 * fiber and all channels live in the current scope.
 *
 * @example
 * ```ts
 * const connection = yield* Connection.make(transport, {})
 * ```
 */
export const make = Effect.fnUntraced(function*(transport: Transport, options: ConnectionOptions = {}) {
  const scope = yield* Effect.scope
  // the connection protocol runs only on an authenticated transport: its pre-authentication limits end here
  yield* transport.authenticated
  const windowSize = options.windowSize ?? DEFAULT_WINDOW
  const maxPacket = Math.min(options.maxPacket ?? DEFAULT_MAX_PACKET, MAX_CHANNEL_PACKET)
  const maxChannels = options.maxChannels ?? 1024
  const channels = new Map<number, ChannelState>()
  const pendingGlobal: Array<Deferred.Deferred<Uint8Array | undefined, SshError.SshError>> = []
  const closed = yield* Deferred.make<never, SshError.SshError>()
  let failure: SshError.SshError | undefined
  let nextId = 0

  const allocateId = (): number | undefined => {
    if (channels.size >= maxChannels) return undefined
    while (channels.has(nextId)) nextId = (nextId + 1) >>> 0
    const id = nextId
    nextId = (nextId + 1) >>> 0
    return id
  }

  const send = (payload: Payload) => transport.send(payload)

  const makeState = (localId: number, channelType: string, flow?: ChannelOptions): ChannelState => {
    const receive = new ReceiveWindow(flow?.windowSize ?? windowSize)
    const state: ChannelState = {
      localId,
      remoteId: -1,
      channelType,
      receive,
      maxPacket: Math.min(flow?.maxPacket ?? maxPacket, MAX_CHANNEL_PACKET),
      send: new SendWindow(0, 0),
      stdoutInbox: new Inbox((n) => credit(state, n)),
      stderrInbox: new Inbox((n) => credit(state, n)),
      stderrMode: "separate",
      windowLatch: Latch.makeUnsafe(false),
      writeLock: Semaphore.makeUnsafe(1),
      pendingRequests: [],
      opened: Deferred.makeUnsafe(),
      remoteEof: Deferred.makeUnsafe(),
      closed: Deferred.makeUnsafe(),
      requestHandler: undefined,
      failure: undefined,
      sentEof: false,
      sentClose: false,
      receivedClose: false,
      abandoned: false,
      stderrDropped: 0
    }
    return state
  }

  /** The consumer took `n` bytes: grant them back to the peer when the batch is large enough. */
  const credit = (state: ChannelState, n: number) => {
    const grant = state.receive.consume(n)
    if (grant > 0 && !state.sentClose && !state.receivedClose && failure === undefined) {
      // Fire and forget: the adjust must not make the consumer wait for the socket.
      Effect.runFork(Effect.ignore(send(Messages.windowAdjust(state.remoteId, grant))))
    }
  }

  const release = (state: ChannelState) => {
    if (channels.get(state.localId) === state) channels.delete(state.localId)
    Deferred.doneUnsafe(state.closed, Exit.void)
  }

  const failChannel = (state: ChannelState, error: SshError.SshError) => {
    state.failure ??= error
    state.stdoutInbox.fail(error)
    state.stderrInbox.fail(error)
    Deferred.doneUnsafe(state.opened, Exit.fail(error))
    for (const d of state.pendingRequests.splice(0)) Deferred.doneUnsafe(d, Exit.fail(error))
    state.windowLatch.openUnsafe()
    Deferred.doneUnsafe(state.remoteEof, Exit.void)
    release(state)
  }

  const die = (error: SshError.SshError) => {
    if (failure) return
    failure = error
    for (const state of [...channels.values()]) failChannel(state, error)
    for (const d of pendingGlobal.splice(0)) Deferred.doneUnsafe(d, Exit.fail(error))
    Deferred.doneUnsafe(closed, Exit.fail(error))
  }

  const channelGone = (state: ChannelState) =>
    errorOf(new SshError.ChannelRequestFailed({ request: "write", message: `channel ${state.localId} is closed` }))

  const write = (state: ChannelState, data: Uint8Array, dataType?: number): Effect.Effect<void, SshError.SshError> =>
    state.writeLock.withPermit(Effect.suspend(() => {
      let offset = 0
      const loop: Effect.Effect<void, SshError.SshError> = Effect.suspend(() => {
        if (failure) return Effect.fail(failure)
        if (state.sentEof || state.sentClose || state.receivedClose) return Effect.fail(channelGone(state))
        if (offset >= data.length) return Effect.void
        const n = state.send.take(data.length - offset)
        if (n === 0) {
          state.windowLatch.closeUnsafe()
          return Effect.andThen(state.windowLatch.await, loop)
        }
        const chunk = data.subarray(offset, offset + n)
        offset += n
        return Effect.andThen(send([Messages.channelDataHeader(state.remoteId, chunk.length, dataType), chunk]), loop)
      })
      return loop
    }))

  const sendEof = (state: ChannelState) =>
    state.writeLock.withPermit(Effect.suspend(() => {
      if (state.sentEof || state.sentClose || state.receivedClose || failure) return Effect.void
      state.sentEof = true
      return send(Messages.channelEof(state.remoteId))
    }))

  const sendClose = (state: ChannelState) =>
    Effect.suspend(() => {
      if (state.sentClose || failure) return Effect.void
      state.sentClose = true
      state.windowLatch.openUnsafe()
      return send(Messages.channelClose(state.remoteId))
    })

  const closeChannel = (state: ChannelState): Effect.Effect<void> =>
    Effect.suspend(() => {
      if (Deferred.isDoneUnsafe(state.closed)) return Effect.void
      if (state.remoteId < 0) {
        // not confirmed yet: kept until the peer answers, so that a late confirmation is answered with CLOSE
        state.abandoned = true
        Deferred.doneUnsafe(state.opened, Exit.fail(channelGone(state)))
        return Effect.void
      }
      state.stdoutInbox.end()
      state.stderrInbox.end()
      return Effect.ignore(sendClose(state)).pipe(
        Effect.andThen(Effect.timeoutOrElse(Deferred.await(state.closed), {
          duration: 10_000,
          orElse: () => Effect.sync(() => release(state))
        }))
      )
    })

  const requestOn = (state: ChannelState, name: string, data: Uint8Array, wantReply: boolean) =>
    Effect.suspend(() => {
      if (failure) return Effect.fail(failure)
      if (state.sentClose || state.receivedClose) return Effect.fail(channelGone(state))
      if (!wantReply) return Effect.as(send(Messages.channelRequest(state.remoteId, name, false, data)), true)
      const reply = Deferred.makeUnsafe<boolean, SshError.SshError>()
      state.pendingRequests.push(reply)
      return Effect.andThen(send(Messages.channelRequest(state.remoteId, name, true, data)), Deferred.await(reply))
    })

  const toChannel = (state: ChannelState): SshChannel => ({
    localId: state.localId,
    get remoteId() {
      return state.remoteId
    },
    channelType: state.channelType,
    stdout: Stream.fromPull(Effect.succeed(state.stdoutInbox.pull)),
    stderr: Stream.fromPull(Effect.succeed(state.stderrInbox.pull)),
    consumeStdout: (f) => state.stdoutInbox.consume(f),
    consumeStderr: (f) => state.stderrInbox.consume(f),
    borrowStdout: (f) => state.stdoutInbox.lend(f),
    borrowStderr: (f) => state.stderrInbox.lend(f),
    write: (data, dataType) => write(state, data, dataType),
    growWindow: (size) =>
      Effect.suspend(() => {
        if (failure) return Effect.fail(failure)
        if (state.sentClose || state.receivedClose) return Effect.fail(channelGone(state))
        const grant = state.receive.grow(size - state.receive.size)
        return grant > 0 ? send(Messages.windowAdjust(state.remoteId, grant)) : Effect.void
      }),
    stdin: Sink.forEach((chunk: Uint8Array) => write(state, chunk)).pipe(
      Sink.mapEffect(() => sendEof(state))
    ),
    eof: sendEof(state),
    request: (name, data, wantReply) => requestOn(state, name, data, wantReply),
    onRequest: (handler) => {
      // the request's data is a view of the packet it arrived in, and the handler may keep it
      state.requestHandler = (request, data, wantReply) => handler(request, handOver(data), wantReply)
    },
    mergeStderr: () => {
      state.stderrMode = "merge"
    },
    discardStderr: () => {
      state.stderrMode = "discard"
      state.stderrInbox.discard()
    },
    remoteEof: state.remoteEof,
    closed: state.closed,
    failure: () => state.failure,
    close: closeChannel(state)
  })

  // The wait for the peer's answer is interruptible: the channel's finalizer is in place before it, and an
  // abandoned open stays known until the peer answers (see `closeChannel`).
  const openChannel = (channelType: string, data?: Uint8Array, flow?: ChannelOptions) =>
    Effect.gen(function*() {
      if (failure) return yield* Effect.fail(failure)
      const id = allocateId()
      if (id === undefined) {
        return yield* Effect.fail(errorOf(new SshError.ChannelOpenFailed({ code: 4, description: "too many open channels" })))
      }
      const state = makeState(id, channelType, flow)
      channels.set(id, state)
      yield* Effect.addFinalizer(() => closeChannel(state))
      yield* send(Messages.channelOpen(channelType, id, state.receive.size, state.maxPacket, data))
      yield* Deferred.await(state.opened)
      return toChannel(state)
    })

  const globalRequest = (name: string, data: Uint8Array, wantReply: boolean) =>
    Effect.suspend(() => {
      if (failure) return Effect.fail(failure)
      if (!wantReply) return Effect.as(send(Messages.globalRequest(name, false, data)), undefined)
      const reply = Deferred.makeUnsafe<Uint8Array | undefined, SshError.SshError>()
      pendingGlobal.push(reply)
      return Effect.andThen(send(Messages.globalRequest(name, true, data)), Deferred.await(reply))
    })

  const channelFor = (recipient: number): ChannelState | undefined => channels.get(recipient)

  const unknownChannel = (recipient: number) =>
    Effect.fail(errorOf(new SshError.ProtocolError({ message: `message for unknown channel ${recipient}` })))

  /** The channel a message is for, which must be open (a peer may say nothing of a channel before answering its open). */
  const openChannelFor = (recipient: number): ChannelState | undefined => {
    const state = channels.get(recipient)
    return state !== undefined && state.remoteId >= 0 ? state : undefined
  }

  const acceptIncoming = (msg: Extract<Messages.ConnectionMessage, { _tag: "ChannelOpen" }>) =>
    Effect.gen(function*() {
      const handler = options.onChannelOpen
      const refuse = (code: number, description: string) =>
        send(Messages.channelOpenFailure(msg.sender, code, description))
      if (!handler) return yield* refuse(N.ChannelOpenFailure.UNKNOWN_CHANNEL_TYPE, `${msg.channelType} channels are not accepted`)
      const decided = yield* Effect.result(handler({ channelType: msg.channelType, data: msg.data }))
      if (decided._tag === "Failure") return yield* refuse(decided.failure.code, decided.failure.description)
      const id = allocateId()
      if (id === undefined) return yield* refuse(N.ChannelOpenFailure.RESOURCE_SHORTAGE, "too many open channels")
      const state = makeState(id, msg.channelType)
      state.remoteId = msg.sender
      state.send = new SendWindow(msg.window, Math.max(1, Math.min(msg.maxPacket, MAX_CHANNEL_PACKET)))
      if (msg.window > 0) state.windowLatch.openUnsafe()
      Deferred.doneUnsafe(state.opened, Exit.void)
      channels.set(id, state)
      yield* send(Messages.channelOpenConfirmation(msg.sender, id, windowSize, maxPacket))
      const run = decided.success
      yield* Effect.forkIn(
        Effect.scoped(Effect.ensuring(Effect.ignore(run(toChannel(state))), closeChannel(state))),
        scope
      )
    })

  /** Channel data, handled synchronously (it is most of the traffic); throws a reason on a violation. */
  const receiveData = (payload: Uint8Array): void => {
    const m = Messages.decode(payload) as Extract<Messages.ConnectionMessage, { _tag: "Data" | "ExtendedData" }>
    const state = openChannelFor(m.recipient)
    if (!state) throw new SshError.ProtocolError({ message: `message for unknown channel ${m.recipient}` })
    if (state.receivedClose) return
    if (m.data.length > state.maxPacket) {
      throw new SshError.ProtocolError({ message: `channel packet of ${m.data.length} bytes exceeds our max packet ${state.maxPacket}` })
    }
    state.receive.receive(m.data.length)
    if (m._tag === "Data") state.stdoutInbox.push(m.data)
    else if (m.dataType !== 1 || state.stderrMode === "discard") credit(state, m.data.length)
    else if (state.stderrMode === "merge") state.stdoutInbox.push(m.data)
    else if (unreadStderrFull(state, m.data.length)) dropStderr(state, m.data.length)
    else state.stderrInbox.push(m.data)
  }

  const unreadStderrFull = (state: ChannelState, n: number): boolean =>
    !state.stderrInbox.claimed &&
    state.stderrInbox.buffered + n > Math.min(UNREAD_STDERR_LIMIT, state.receive.size / 2)

  /** Warnings for the pump to log once its synchronous work is done. */
  let warnings: Array<string> = []

  const dropStderr = (state: ChannelState, n: number) => {
    if (state.stderrDropped === 0) {
      warnings.push(
        `channel ${state.localId}: discarding stderr nobody reads (${state.stderrInbox.buffered} bytes kept) so that stdout keeps flowing`
      )
    }
    state.stderrDropped += n
    credit(state, n)
  }

  const withWarnings = (effect: Effect.Effect<void, SshError.SshError>): Effect.Effect<void, SshError.SshError> => {
    if (warnings.length === 0) return effect
    const pending = warnings
    warnings = []
    return Effect.andThen(Effect.forEach(pending, (w) => Effect.logWarning(w), { discard: true }), effect)
  }

  /** Dispatches a batch in order; only messages that must send or call handlers become effects. */
  const dispatchAll = (batch: ReadonlyArray<Uint8Array>, from = 0): Effect.Effect<void, SshError.SshError> => {
    try {
      for (let i = from; i < batch.length; i++) {
        const payload = batch[i]!
        const type = payload[0]
        if (type === N.CHANNEL_DATA || type === N.CHANNEL_EXTENDED_DATA) {
          receiveData(payload)
          continue
        }
        return withWarnings(Effect.andThen(dispatch(payload), Effect.suspend(() => dispatchAll(batch, i + 1))))
      }
      return withWarnings(Effect.void)
    } catch (u) {
      return Effect.fail(SshError.fromUnknown(u))
    }
  }

  const dispatch = (payload: Uint8Array): Effect.Effect<void, SshError.SshError> => {
    return Effect.flatMap(core(() => Messages.decode(payload)), (msg): Effect.Effect<void, SshError.SshError> => {
      switch (msg._tag) {
        case "WindowAdjust": {
          const state = openChannelFor(msg.recipient)
          if (!state) return unknownChannel(msg.recipient)
          state.send.adjust(msg.bytes)
          state.windowLatch.openUnsafe()
          return Effect.void
        }
        case "Eof": {
          const state = openChannelFor(msg.recipient)
          if (!state) return unknownChannel(msg.recipient)
          state.stdoutInbox.end()
          state.stderrInbox.end()
          Deferred.doneUnsafe(state.remoteEof, Exit.void)
          return Effect.void
        }
        case "Close": {
          const state = openChannelFor(msg.recipient)
          if (!state) return unknownChannel(msg.recipient)
          state.receivedClose = true
          state.stdoutInbox.end()
          state.stderrInbox.end()
          Deferred.doneUnsafe(state.remoteEof, Exit.void)
          const gone = channelGone(state)
          for (const d of state.pendingRequests.splice(0)) Deferred.doneUnsafe(d, Exit.fail(gone))
          state.windowLatch.openUnsafe()
          return Effect.ensuring(Effect.ignore(sendClose(state)), Effect.sync(() => release(state)))
        }
        case "ChannelRequest": {
          const state = openChannelFor(msg.recipient)
          if (!state) return unknownChannel(msg.recipient)
          const handler = state.requestHandler
          const handled = handler ? handler(msg.request, msg.data, msg.wantReply) : Effect.succeed(false)
          return Effect.flatMap(handled, (outcome) => {
            const ok = typeof outcome === "boolean" ? outcome : outcome.success
            const reply = msg.wantReply && !state.sentClose
              ? send(ok ? Messages.channelSuccess(state.remoteId) : Messages.channelFailure(state.remoteId))
              : Effect.void
            return typeof outcome === "boolean" ? reply : Effect.andThen(reply, outcome.afterReply)
          })
        }
        case "ChannelSuccess":
        case "ChannelFailure": {
          const state = openChannelFor(msg.recipient)
          if (!state) return unknownChannel(msg.recipient)
          const pending = state.pendingRequests.shift()
          if (!pending) {
            return Effect.fail(errorOf(new SshError.ProtocolError({ message: `unexpected channel reply on channel ${msg.recipient}` })))
          }
          Deferred.doneUnsafe(pending, Exit.succeed(msg._tag === "ChannelSuccess"))
          return Effect.void
        }
        case "ChannelOpenConfirmation": {
          const state = channelFor(msg.recipient)
          if (!state || state.remoteId >= 0) {
            return Effect.fail(errorOf(new SshError.ProtocolError({ message: `unexpected open confirmation for channel ${msg.recipient}` })))
          }
          state.remoteId = msg.sender
          if (state.abandoned) {
            // we gave up waiting: close it at once; the peer's CLOSE releases it
            state.stdoutInbox.end()
            state.stderrInbox.end()
            return Effect.ignore(sendClose(state))
          }
          state.send = new SendWindow(msg.window, Math.max(1, Math.min(msg.maxPacket, MAX_CHANNEL_PACKET)))
          if (msg.window > 0) state.windowLatch.openUnsafe()
          Deferred.doneUnsafe(state.opened, Exit.void)
          return Effect.void
        }
        case "ChannelOpenFailure": {
          const state = channelFor(msg.recipient)
          if (!state || state.remoteId >= 0) {
            return Effect.fail(errorOf(new SshError.ProtocolError({ message: `unexpected open failure for channel ${msg.recipient}` })))
          }
          Deferred.doneUnsafe(state.opened, Exit.fail(errorOf(new SshError.ChannelOpenFailed({ code: msg.code, description: msg.description }))))
          release(state)
          return Effect.void
        }
        case "ChannelOpen":
          return acceptIncoming(msg)
        case "GlobalRequest": {
          const handler = options.onGlobalRequest
          const handled = handler ? handler(msg.name, msg.data) : Effect.succeed(undefined)
          return Effect.flatMap(handled, (reply) =>
            msg.wantReply ? send(reply ? Messages.requestSuccess(reply) : Messages.requestFailure()) : Effect.void)
        }
        case "RequestSuccess":
        case "RequestFailure": {
          const pending = pendingGlobal.shift()
          if (!pending) return Effect.fail(errorOf(new SshError.ProtocolError({ message: "unexpected global request reply" })))
          Deferred.doneUnsafe(pending, Exit.succeed(msg._tag === "RequestSuccess" ? msg.data : undefined))
          return Effect.void
        }
        default:
          return Effect.void
      }
    })
  }

  const pump = Effect.forever(Effect.flatMap(transport.receiveAll, (batch) => dispatchAll(batch)))

  const keepalive = Effect.gen(function*() {
    const interval = options.keepaliveIntervalMs ?? 0
    const countMax = options.keepaliveCountMax ?? 3
    if (interval <= 0) return
    let missed = 0
    for (;;) {
      yield* Effect.sleep(interval)
      if (Date.now() - transport.lastReceivedAt() < interval) {
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
      const error = SshError.fromUnknown(Cause.squash(cause))
      fatal ??= error
      // DISCONNECT goes out before the channels learn of the error: a caller that then closes its
      // scope would otherwise get its own "closed by application" DISCONNECT out first
      return Effect.ignore(transport.disconnect(
        error.reason._tag === "Timeout" ? N.DisconnectReason.CONNECTION_LOST : N.DisconnectReason.PROTOCOL_ERROR,
        error.reason.message
      )).pipe(Effect.ensuring(Effect.sync(() => die(error))))
    })

  const pumpFiber = yield* Effect.forkIn(Effect.catchCause(pump, onFatal), scope)
  const keepaliveFiber = yield* Effect.forkIn(Effect.catchCause(keepalive, onFatal), scope)
  yield* Scope.addFinalizer(scope, Effect.andThen(Fiber.interrupt(keepaliveFiber), Fiber.interrupt(pumpFiber)))
  // A dead transport ends every channel, even if no one is reading.
  yield* Effect.forkIn(
    Effect.catchCause(Deferred.await(transport.closed), (cause) =>
      Effect.sync(() => die(fatal ?? SshError.fromUnknown(Cause.squash(cause))))),
    scope
  )

  const connection: Connection = {
    transport,
    openChannel,
    globalRequest,
    channelCount: () => channels.size,
    closed
  }
  return connection
})
