/**
 * An `effect/socket` Socket over a `node:net` socket that hands over each
 * chunk Node read, as is. (`NodeSocket` reads with `stream.read()`, which on
 * Node < 26 concatenates everything buffered into a new buffer: one more
 * allocation and copy of every byte, which showed in profiles as GC time.)
 *
 * Backpressure: the socket is paused once `highWaterMark` bytes wait
 * unpulled, and resumed when a pull takes them.
 *
 * Ownership (`ownedBuffers`): a chunk written that the library owns (a
 * sealed packet) has its holder released once Node is done with it; any
 * other chunk is left alone. Chunks Node read, which only this adapter
 * listens to, are freed as soon as they are copied (`copyData`).
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import type * as Arr from "effect/Array"
import * as Scope from "effect/Scope"
import * as Socket from "effect/socket/Socket"
import * as net from "node:net"
import { discard, handOver, release } from "./ownedBuffers.ts"

type Resume = (effect: Effect.Effect<Arr.NonEmptyReadonlyArray<Uint8Array>, Socket.SocketError>) => void

const ownSockets = new WeakSet<Socket.Socket>()

/**
 * `socket` itself when it is one of this module's (code of ours, which releases the packets written to it);
 * otherwise the same socket with every chunk written to it handed over first (`ownedBuffers.handOver`): a
 * socket someone else wrote may keep what it is given, or pass it on to one that frees what it owns.
 *
 * @example
 * ```ts
 * const socket = ownedOrHandedOver(options.socket ?? (yield* connector.connect(host, port)))
 * ```
 */
export const ownedOrHandedOver = (socket: Socket.Socket): Socket.Socket =>
  ownSockets.has(socket) ? socket : Socket.make({
    reader: socket.reader,
    writer: Effect.map(socket.writer, (writer): Socket.Writer => ({
      write: (chunk) => writer.write(chunk instanceof Uint8Array ? handOver(chunk) : chunk),
      writeAll: (chunks) => {
        for (const chunk of chunks) if (chunk instanceof Uint8Array) handOver(chunk)
        return writer.writeAll(chunks)
      }
    }))
  })

const closeError = (code: number) => new Socket.SocketError({ reason: new Socket.SocketCloseError({ code }) })

/**
 * Adapts a connected (or connecting) `net.Socket`. Acquiring the reader waits
 * for the connection; releasing it destroys the socket.
 *
 * @example
 * ```ts
 * const socket = fromNetSocket(() => net.connect({ host, port, noDelay: true }))
 * ```
 */
export const fromNetSocket = (
  open: () => net.Socket,
  options?: {
    readonly highWaterMark?: number | undefined
    /**
     * Gather incoming bytes here instead of handing out 'data' chunks: fed by the socket's `onread` (see
     * `connectTcp`), or with `copyData` by its 'data' events, each chunk copied and then freed at once (see
     * `acceptedTcp`).
     */
    readonly reads?: ReusedReads | undefined
    readonly copyData?: boolean | undefined
  }
): Socket.Socket => {
  const highWaterMark = options?.highWaterMark ?? 1024 * 1024
  const reads = options?.reads
  let conn: net.Socket | undefined
  let connected: Promise<net.Socket> | undefined

  const connect = (): Promise<net.Socket> => {
    if (connected) return connected
    const socket = open()
    conn = socket
    connected = new Promise((resolve, reject) => {
      if (!socket.connecting) return resolve(socket)
      const onError = (cause: Error) => reject(cause)
      socket.once("error", onError)
      socket.once("connect", () => {
        socket.off("error", onError)
        resolve(socket)
      })
    })
    return connected
  }

  const reader: Socket.Socket["reader"] = Effect.gen(function*() {
    const scope = yield* Effect.scope
    const socket = yield* Effect.tryPromise({
      try: connect,
      catch: (cause) => new Socket.SocketError({ reason: new Socket.SocketOpenError({ kind: "Unknown", cause }) })
    })
    let chunks: Array<Uint8Array> = []
    let buffered = 0
    let failure: Socket.SocketError | undefined
    let waiter: Resume | undefined

    const wake = () => {
      const resume = waiter
      if (resume === undefined) return
      const taken = take()
      if (taken === undefined) return
      waiter = undefined
      resume(taken)
    }
    const take = (): Effect.Effect<Arr.NonEmptyReadonlyArray<Uint8Array>, Socket.SocketError> | undefined => {
      if (reads !== undefined && reads.length > 0) {
        const out = reads.take()
        if (socket.isPaused()) socket.resume()
        return Effect.succeed([out])
      }
      if (chunks.length > 0) {
        const out = chunks as unknown as Arr.NonEmptyReadonlyArray<Uint8Array>
        chunks = []
        buffered = 0
        if (socket.isPaused()) socket.resume()
        return Effect.succeed(out)
      }
      return failure ? Effect.fail(failure) : undefined
    }
    const onData = (data: Buffer) => {
      chunks.push(data)
      buffered += data.length
      if (buffered >= highWaterMark) socket.pause()
      wake()
    }
    const onEnd = () => {
      failure ??= closeError(1000)
      wake()
    }
    const onError = (cause: Error) => {
      failure ??= new Socket.SocketError({ reason: new Socket.SocketReadError({ cause }) })
      wake()
    }
    const onClose = (hadError: boolean) => {
      failure ??= closeError(hadError ? 1006 : 1000)
      wake()
    }
    const onCopiedData = (data: Buffer) => {
      if (!reads!.append(data)) socket.pause()
      discard(data)
    }
    if (reads !== undefined) reads.onData = wake
    if (reads === undefined) socket.on("data", onData)
    else if (options?.copyData === true) socket.on("data", onCopiedData)
    socket.on("end", onEnd)
    socket.on("error", onError)
    socket.on("close", onClose)
    // a server socket accepted with pauseOnConnect starts paused
    socket.resume()
    yield* Scope.addFinalizer(
      scope,
      Effect.sync(() => {
        failure ??= closeError(1006)
        wake()
        socket.off("data", onData)
        socket.off("data", onCopiedData)
        socket.off("end", onEnd)
        socket.off("close", onClose)
        socket.destroy()
      })
    )
    const pull = Effect.callback<Arr.NonEmptyReadonlyArray<Uint8Array>, Socket.SocketError>((resume) => {
      const taken = take()
      if (taken !== undefined) return resume(taken)
      waiter = resume
      return Effect.sync(() => {
        if (waiter === resume) waiter = undefined
      })
    })
    const reader: Socket.Reader<Uint8Array> = {
      pull,
      upgrade: () =>
        Effect.fail(new Socket.SocketError({ reason: new Socket.SocketUpgradeError({ cause: new Error("TLS upgrade is not supported") }) }))
    }
    return reader
  })

  const write = (chunk: Uint8Array | string | Socket.CloseEvent): Effect.Effect<void, Socket.SocketError> =>
    Effect.flatMap(
      Effect.tryPromise({
        try: connect,
        catch: (cause) => new Socket.SocketError({ reason: new Socket.SocketOpenError({ kind: "Unknown", cause }) })
      }),
      (socket) =>
        Effect.callback<void, Socket.SocketError>((resume) => {
          if (Socket.isCloseEvent(chunk)) {
            socket.destroy()
            return resume(Effect.void)
          }
          if (socket.destroyed || socket.writableEnded) return resume(Effect.fail(closeError(1006)))
          const ok = socket.write(chunk, (error) => {
            if (chunk instanceof Uint8Array) release(chunk)
            if (error) resume(Effect.fail(new Socket.SocketError({ reason: new Socket.SocketWriteError({ cause: error }) })))
          })
          if (ok) return resume(Effect.void)
          const onDrain = () => {
            socket.off("close", onDrain)
            resume(Effect.void)
          }
          socket.once("drain", onDrain)
          socket.once("close", onDrain)
        })
    )

  const awaitDrain = (socket: net.Socket) =>
    Effect.callback<void, Socket.SocketError>((resume) => {
      const done = () => {
        socket.off("drain", done)
        socket.off("close", done)
        resume(socket.destroyed ? Effect.fail(closeError(1006)) : Effect.void)
      }
      socket.once("drain", done)
      socket.once("close", done)
    })

  const writer: Socket.Socket["writer"] = Effect.acquireRelease(
    Effect.succeed<Socket.Writer>({
      write,
      writeAll: (chunks) =>
        chunks.length === 1 ? write(chunks[0]) : Effect.suspend(() => {
          // one syscall for the batch: cork, queue everything, uncork, then wait for the buffer to drain
          const socket = conn
          if (socket === undefined) return Effect.forEach(chunks, write, { discard: true })
          if (socket.destroyed || socket.writableEnded) return Effect.fail(closeError(1006))
          socket.cork()
          let ok = true
          const last = chunks.length - 1
          for (let i = 0; i < last; i++) ok = socket.write(chunks[i]!)
          // callbacks run in order, once the data is with the kernel: then packet buffers can be freed
          ok = socket.write(chunks[last]!, () => {
            for (const chunk of chunks) if (chunk instanceof Uint8Array) release(chunk)
          })
          socket.uncork()
          return ok ? Effect.void : awaitDrain(socket)
        })
    }),
    () =>
      Effect.sync(() => {
        if (conn && !conn.destroyed && !conn.writableEnded) conn.end()
      })
  )

  const made = Socket.make({ reader, writer })
  ownSockets.add(made)
  return made
}

/** The smallest read buffer: Node reads up to 64 KiB at a time. */
const MIN_READ_BUFFER = 64 * 1024

/**
 * Incoming bytes gathered into two buffers used in turn, from `onread`
 * callbacks (Node reads into one fixed buffer and we copy from it, so a fast
 * transfer allocates nothing per read) or from 'data' events (each copied,
 * then freed at once). A chunk handed out by a pull is valid until the next
 * pull (the transport copies it into its own buffer at once).
 */
class ReusedReads {
  // allocated on first use and grown to what the reads need: an idle connection holds none
  private current = new Uint8Array(0)
  private spare = new Uint8Array(0)
  length = 0
  onData: () => void = () => {}
  readonly highWaterMark: number

  constructor(highWaterMark: number) {
    this.highWaterMark = highWaterMark
  }

  /** The onread callback: false pauses the socket until a pull takes the bytes. */
  append(bytes: Uint8Array): boolean {
    if (this.length + bytes.length > this.current.length) {
      let size = Math.max(this.current.length * 2, MIN_READ_BUFFER)
      while (size < this.length + bytes.length) size *= 2
      const next = new Uint8Array(size)
      next.set(this.current.subarray(0, this.length))
      this.current = next
    }
    this.current.set(bytes, this.length)
    this.length += bytes.length
    this.onData()
    return this.length < this.highWaterMark
  }

  take(): Uint8Array {
    const out = this.current.subarray(0, this.length)
    const used = this.current
    this.current = this.spare
    this.spare = used
    this.length = 0
    return out
  }
}

/**
 * A client TCP connection read through one reused buffer (`onread`).
 *
 * @example
 * ```ts
 * const socket = connectTcp({ host: "example.com", port: 22 })
 * ```
 * @internal
 */
export const connectTcp = (options: { readonly host: string; readonly port: number }): Socket.Socket => {
  const highWaterMark = 1024 * 1024
  const reads = new ReusedReads(highWaterMark)
  const readBuffer = Buffer.allocUnsafe(64 * 1024)
  return fromNetSocket(
    () =>
      net.connect({
        host: options.host,
        port: options.port,
        noDelay: true,
        onread: { buffer: readBuffer, callback: (n, buffer) => reads.append(buffer.subarray(0, n)) }
      }),
    { highWaterMark, reads }
  )
}

/**
 * A TCP connection accepted by a server, read like `connectTcp`'s: Node hands each read over as a new buffer
 * ('data'), which is copied into two reused buffers and freed at once, so a fast upload leaves no dead buffers
 * for V8's collections (they ran every ~17 MiB of an SFTP upload to our server before).
 *
 * @example
 * ```ts
 * server.on("connection", (conn) => serve(acceptedTcp(conn)))
 * ```
 * @internal
 */
export const acceptedTcp = (conn: net.Socket): Socket.Socket => {
  const highWaterMark = 1024 * 1024
  return fromNetSocket(() => conn, { highWaterMark, reads: new ReusedReads(highWaterMark), copyData: true })
}
