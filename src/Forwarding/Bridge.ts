/**
 * Joining a channel to a socket, and a channel seen as a socket: the two
 * shapes every kind of forwarding is made of.
 *
 * Both directions keep their own end: the channel's EOF half-closes the
 * socket (TCP shutdown of the write side) and the socket's end sends the
 * channel's EOF, while the other direction flows on. Backpressure is the
 * window one way and the socket's buffer the other: the channel is read only
 * as fast as the socket drains, and the socket only as fast as the window
 * opens, so a slow end holds its sender without buffering anything more.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Pull from "effect/Pull"
import type * as Scope from "effect/Scope"
import * as Socket from "effect/socket/Socket"
import * as Stream from "effect/Stream"
import type { SshChannel } from "../Channel/Connection.ts"
import { utf8 } from "../internal/bytes.ts"
import type * as SshError from "../SshError.ts"

/** Whether a socket error is the orderly end of its input. */
const isEnd = (error: Socket.SocketError): boolean =>
  error.reason._tag === "SocketCloseError" && error.reason.code === 1000

/**
 * Copies bytes both ways between a channel and a socket until both directions have ended (or one fails, which
 * cuts the other). The socket is closed with the scope; so, by its owner, is the channel.
 *
 * @example
 * ```ts
 * const open = ForwardingMessages.encodeDirectTcpip({ host: "db.internal", port: 5432, originatorAddress: "127.0.0.1", originatorPort: 0 })
 * const channel = yield* ssh.connection.openChannel("direct-tcpip", open)
 * yield* Bridge.bridge(channel, yield* NodeSocket.makeNet({ host: "localhost", port: 15432 }))
 * ```
 */
export const bridge = (
  channel: SshChannel,
  socket: Socket.Socket
): Effect.Effect<void, SshError.SshError | Socket.SocketError, Scope.Scope> =>
  Effect.gen(function*() {
    const reader = yield* socket.reader
    // releasing the writer half-closes the socket: the program there sees the end of its input
    const toSocket = Effect.scoped(Effect.flatMap(socket.writer, (writer) =>
      channel.consumeStdout((chunks) => writer.writeAll(chunks))))
    const fromSocket = Effect.forever(
      Effect.flatMap(reader.pull, (chunks) =>
        Effect.forEach(chunks, (chunk) => channel.write(typeof chunk === "string" ? utf8(chunk) : chunk), { discard: true })),
      { disableYield: true }
    ).pipe(
      Effect.catch((error) => error._tag === "SocketError" && isEnd(error) ? channel.eof : Effect.fail(error))
    )
    yield* Effect.all([toSocket, fromSocket], { concurrency: 2, discard: true })
  })

const writeError = (cause: unknown) => new Socket.SocketError({ reason: new Socket.SocketWriteError({ cause }) })
const readError = (cause: unknown) => new Socket.SocketError({ reason: new Socket.SocketReadError({ cause }) })
const ended = new Socket.SocketError({ reason: new Socket.SocketCloseError({ code: 1000 }) })

/**
 * A channel as an `effect/socket` Socket: reading pulls the channel's data (its EOF is the socket's orderly
 * close), writing sends data, releasing the writer sends EOF, and writing a `CloseEvent` closes the channel. For
 * anything that takes a Socket: `SshClient.connect({ socket })` through a jump host, an HTTP client, a database
 * driver.
 *
 * @example
 * ```ts
 * const open = ForwardingMessages.encodeDirectTcpip({ host: "inner", port: 22, originatorAddress: "127.0.0.1", originatorPort: 0 })
 * const channel = yield* ssh.connection.openChannel("direct-tcpip", open)
 * const socket = Bridge.channelSocket(channel)
 * const ssh2 = yield* SshClient.connect({ host: "inner", username: "me", socket, auth, hostKeys })
 * ```
 */
export const channelSocket = (channel: SshChannel): Socket.Socket =>
  Socket.make({
    reader: Effect.map(Stream.toPull(channel.stdout), (pull): Socket.Reader<Uint8Array> => ({
      pull: pull.pipe(
        Pull.catchDone(() => Effect.fail(ended)),
        Effect.mapError((error) => error._tag === "SocketError" ? error : readError(error))
      ),
      upgrade: () =>
        Effect.fail(new Socket.SocketError({ reason: new Socket.SocketUpgradeError({ cause: new Error("TLS upgrade is not supported on a channel") }) }))
    })),
    writer: Effect.acquireRelease(
      Effect.succeed<Socket.Writer>({
        write: (chunk) =>
          Socket.isCloseEvent(chunk)
            ? channel.close
            : Effect.mapError(channel.write(typeof chunk === "string" ? utf8(chunk) : chunk), writeError),
        writeAll: (chunks) =>
          Effect.forEach(chunks, (chunk) => channel.write(typeof chunk === "string" ? utf8(chunk) : chunk), { discard: true }).pipe(
            Effect.mapError(writeError)
          )
      }),
      () => Effect.ignore(channel.eof)
    )
  })
