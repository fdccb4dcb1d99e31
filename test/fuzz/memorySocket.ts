/**
 * A connected pair in memory: an `effect/socket` `Socket` for our transport
 * (our own socket adapter, the one accepted TCP connections use, over one end of a `duplexPair`)
 * and the other end for the scripted peer (`SshPeer`), which uses the parts
 * of `net.Socket` a Duplex has (data/close events, write, end, destroy). No
 * kernel: a fuzz suite can run thousands of real transports (version
 * exchange, key exchange, ciphers) in seconds.
 */
import type * as net from "node:net"
import { duplexPair } from "node:stream"
import type * as Socket from "effect/socket/Socket"
import { fromNetSocket } from "../../src/internal/netSocket.ts"

/** Our end and the peer's end of an in-memory connection. */
export interface SocketPair {
  readonly socket: Socket.Socket
  /** The peer's end, shaped as the `net.Socket` the peer expects. */
  readonly peer: net.Socket
}

let nextPort = 40000

/**
 * A new in-memory connection.
 *
 * @example
 * ```ts
 * const { socket, peer } = socketPair()
 * const client = new SshPeer(peer, "client")
 * yield* Transport.make(socket, { role: "server", algorithms, hostKeys })
 * ```
 */
export const socketPair = (): SocketPair => {
  const [ours, theirs] = duplexPair()
  // a peer's end closes when ours ends: the peer reads no more (as a TCP socket without half-close)
  ours.once("finish", () => theirs.destroy())
  ours.once("close", () => theirs.destroy())
  theirs.once("end", () => theirs.destroy())
  copyWrites(ours)
  const peer = Object.assign(theirs, { localPort: nextPort++, remotePort: 22, setNoDelay: () => peer }) as unknown as net.Socket
  // the socket adapter our server uses for accepted connections, over the Duplex (it uses only what a Duplex has)
  const socket = fromNetSocket(() => ours as unknown as net.Socket, { highWaterMark: 1024 * 1024, copyData: true })
  return { socket, peer }
}

/** Both ends of an in-memory connection as `effect/socket` Sockets: two of our transports, one per end. */
export interface TransportSockets {
  readonly client: Socket.Socket
  readonly server: Socket.Socket
}

/**
 * A new in-memory connection between two of our transports, with no kernel
 * and no timers: a `TestClock` drives everything time-based in them.
 *
 * @example
 * ```ts
 * const sockets = transportSockets()
 * const [client, server] = yield* Effect.all([
 *   Transport.make(sockets.client, clientConfig),
 *   Transport.make(sockets.server, serverConfig)
 * ], { concurrency: 2 })
 * ```
 */
export const transportSockets = (): TransportSockets => {
  const [a, b] = duplexPair()
  const end = (side: typeof a): Socket.Socket => {
    copyWrites(side)
    side.once("close", () => (side === a ? b : a).destroy())
    return fromNetSocket(() => side as unknown as net.Socket, { highWaterMark: 1024 * 1024, copyData: true })
  }
  return { client: end(a), server: end(b) }
}

/**
 * A kernel copies what is written to a TCP socket, and our socket adapter frees a sealed packet once its write
 * is done; a duplexPair hands the very buffer to the other end instead, whose reader would see it freed.
 */
const copyWrites = (side: ReturnType<typeof duplexPair>[0]): void => {
  const write = side.write.bind(side) as (chunk: unknown, ...rest: Array<unknown>) => boolean
  side.write = ((chunk: unknown, ...rest: Array<unknown>) =>
    write(chunk instanceof Uint8Array ? Buffer.from(chunk) : chunk, ...rest)) as typeof side.write
}
