/**
 * The client's forwardings over one connection: out to a target through the
 * server (`direct-tcpip`, `direct-streamlocal`: `-L`, `-D`, `-W`), and in from
 * listeners the server opens for us (`tcpip-forward`, `streamlocal-forward`:
 * `-R`). Every one is a scoped resource: closing its scope stops listening
 * (or cancels the server's listener) and closes its tunnels.
 *
 * The incoming side is a router: the connection hands each channel the server
 * opens to `onChannelOpen`, which gives a `forwarded-*` channel to the remote
 * forwarding it belongs to, and refuses the rest.
 *
 * @since 0.1.0
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import type * as Socket from "effect/socket/Socket"
import * as Stream from "effect/Stream"
import * as net from "node:net"
import type { Connection, ConnectionOptions, IncomingChannel, SshChannel } from "../Channel/Connection.ts"
import { fromNetSocket } from "../internal/netSocket.ts"
import * as SshError from "../SshError.ts"
import * as N from "../Wire/MessageNumber.ts"
import { bridge, channelSocket } from "./Bridge.ts"
import { dial } from "./Dial.ts"
import { type BoundAt, describeAddress, listen, type ListenAt } from "./Listener.ts"
import * as Messages from "./Messages.ts"
import * as Socks from "./Socks.ts"

/** A TCP target (`host` as the server resolves it) or a Unix socket on the server. */
export type Target = { readonly host: string; readonly port: number } | { readonly path: string }

/** Where a connection came from, as told to the server (default: the local end of the accepted connection). */
export interface Origin {
  readonly host: string
  readonly port: number
}

/** A connection the server forwarded to us from one of its listeners. */
export interface ForwardedConnection {
  /** Who connected to the server's listener (TCP; undefined for a Unix socket). */
  readonly origin: Origin | undefined
  /** The connection: reading ends at its EOF; releasing the writer sends ours; a `CloseEvent` closes it. */
  readonly socket: Socket.Socket
  /** The channel under it. */
  readonly channel: SshChannel
}

/** A listener of ours whose connections go through the server (`-L`, `-D`). */
export interface LocalForward {
  /** Where it listens (the port the system chose, when 0 was asked). */
  readonly address: BoundAt
}

/** A listener the server opened for us (`-R`). */
export interface RemoteForward {
  /** Where the server listens (the port it allocated, when 0 was asked). */
  readonly address: BoundAt
  /**
   * The connections it forwards, when no `to` was given: each is open until either end closes it or the
   * forwarding's scope closes. At most 64 wait to be taken; more are refused.
   */
  readonly connections: Stream.Stream<ForwardedConnection>
}

/** The forwarding operations of a client connection (see `SshConnection`). */
export interface ClientForwarding {
  readonly forwardOut: (target: Target & { readonly origin?: Origin | undefined }) => Effect.Effect<Socket.Socket, SshError.SshError, Scope.Scope>
  readonly forwardLocal: (options: { readonly listen: ListenAt; readonly to: Target }) => Effect.Effect<LocalForward, SshError.SshError, Scope.Scope>
  readonly forwardRemote: (options: { readonly bind: ListenAt; readonly to?: Target | undefined }) => Effect.Effect<RemoteForward, SshError.SshError, Scope.Scope>
  readonly socks: (options: { readonly listen: ListenAt }) => Effect.Effect<LocalForward, SshError.SshError, Scope.Scope>
}

const PENDING_CONNECTIONS = 64
const DEFAULT_ORIGIN: Origin = { host: "127.0.0.1", port: 0 }

const forwardFailed = (kind: "refused" | "bind" | "connect", address: string, message: string, cause?: unknown) =>
  SshError.make(new SshError.ForwardFailed({ kind, address, message, cause }))

/** A refused channel open as the forwarding error it means. */
const openFailed = (target: Target) => (error: SshError.SshError): SshError.SshError => {
  if (error.reason._tag !== "ChannelOpenFailed") return error
  const address = describeAddress(target)
  const prohibited = error.reason.code === N.ChannelOpenFailure.ADMINISTRATIVELY_PROHIBITED
  return forwardFailed(
    prohibited ? "refused" : "connect",
    address,
    `${prohibited ? "the server refused to forward to" : "the server could not connect to"} ${address}: ${error.reason.description}`,
    error.reason
  )
}

/** The origin a listener reports for an accepted connection. */
const originOf = (conn: net.Socket): Origin => ({ host: conn.remoteAddress ?? "127.0.0.1", port: conn.remotePort ?? 0 })

const encodeUnix = (path: string) => Messages.encodeDirectStreamlocal({ path })

/**
 * One `onChannelOpen` handler out of several, chosen by channel type; a type without one is refused. For the
 * `fallback` of `router`: X11, agent and whatever else a connection takes in.
 *
 * @example
 * ```ts
 * const router = ClientForwarding.router(ClientForwarding.byChannelType({
 *   [Messages.ChannelType.x11]: x11.onChannelOpen,
 *   [AgentForwarding.CHANNEL_TYPE]: AgentForwarding.acceptChannels(agentSocket)
 * }))
 * ```
 */
export const byChannelType = (
  handlers: Readonly<Record<string, ConnectionOptions["onChannelOpen"]>>
): NonNullable<ConnectionOptions["onChannelOpen"]> =>
(incoming) => {
  const handler = Object.hasOwn(handlers, incoming.channelType) ? handlers[incoming.channelType] : undefined
  return handler !== undefined
    ? handler(incoming)
    : incoming.reject(N.ChannelOpenFailure.ADMINISTRATIVELY_PROHIBITED, `${incoming.channelType} channels are not accepted`)
}

/**
 * The incoming side of a client's forwardings: one per connection, made before it (its `onChannelOpen` is the
 * connection's), then bound to the connection with `forwarding`.
 *
 * @example
 * ```ts
 * const router = ClientForwarding.router(AgentForwarding.acceptChannels(agentSocket))
 * const connection = yield* Connection.make(transport, { onChannelOpen: router.onChannelOpen })
 * const forwarding = router.forwarding(connection)
 * ```
 */
export const router = (fallback?: ConnectionOptions["onChannelOpen"]) => {
  /** Remote forwardings by the address the server reports in `forwarded-*` opens. */
  const remotes = new Map<string, (incoming: IncomingChannel, origin: Origin | undefined) => Effect.Effect<void, SshError.SshError, Scope.Scope>>()
  const keyOf = (at: BoundAt | { readonly host: string; readonly port: number }) => "path" in at ? `unix:${at.path}` : `${at.host}:${at.port}`

  const onChannelOpen: NonNullable<ConnectionOptions["onChannelOpen"]> = (incoming) =>
    Effect.suspend(() => {
      const decoded = Effect.try({
        try: () => Messages.decodeChannelOpen(incoming.channelType, incoming.data),
        catch: SshError.fromUnknown
      })
      return Effect.flatMap(Effect.orElseSucceed(decoded, () => undefined), (open) => {
        const route = open?._tag === "ForwardedTcpip"
          ? { key: keyOf({ host: open.connectedAddress, port: open.connectedPort }), origin: { host: open.originatorAddress, port: open.originatorPort } }
          : open?._tag === "ForwardedStreamlocal"
          ? { key: keyOf({ path: open.path }), origin: undefined }
          : undefined
        const handler = route === undefined ? undefined : remotes.get(route.key)
        if (handler !== undefined) return handler(incoming, route!.origin)
        if (route === undefined && fallback !== undefined) return fallback(incoming)
        return incoming.reject(N.ChannelOpenFailure.ADMINISTRATIVELY_PROHIBITED, `${incoming.channelType} channels are not accepted`)
      })
    })

  const forwarding = (connection: Connection): ClientForwarding => {
    const openDirect = (target: Target, origin: Origin) =>
      Effect.mapError(
        "path" in target
          ? connection.openChannel(Messages.ChannelType.directStreamlocal, encodeUnix(target.path))
          : connection.openChannel(Messages.ChannelType.directTcpip, Messages.encodeDirectTcpip({
            host: target.host,
            port: target.port,
            originatorAddress: origin.host,
            originatorPort: origin.port
          })),
        openFailed(target)
      )

    /** Tunnels one accepted connection to `target`. */
    const tunnel = (conn: net.Socket, target: Target) =>
      Effect.scoped(Effect.gen(function*() {
        const channel = yield* openDirect(target, originOf(conn))
        yield* bridge(channel, fromNetSocket(() => conn))
      })).pipe(
        Effect.catch((error) => error._tag === "SshError" ? Effect.logWarning(`forwarding to ${describeAddress(target)}: ${error.message}`) : Effect.void)
      )

    const forwardOut: ClientForwarding["forwardOut"] = (target) =>
      Effect.map(openDirect(target, target.origin ?? DEFAULT_ORIGIN), channelSocket)

    const forwardLocal: ClientForwarding["forwardLocal"] = ({ listen: at, to }) =>
      Effect.map(listen(at, (conn) => tunnel(conn, to)), (address) => ({ address }))

    const socks: ClientForwarding["socks"] = ({ listen: at }) =>
      Effect.map(listen(at, (conn) => socksConnection(conn)), (address) => ({ address }))

    /** One SOCKS client: its handshake, then the tunnel to what it asked for. */
    const socksConnection = (conn: net.Socket) =>
      Effect.gen(function*() {
        const step = yield* readHandshake(conn)
        if (step._tag === "Refuse") {
          if (step.reply.length > 0) conn.end(step.reply)
          return yield* Effect.logWarning(`SOCKS: ${step.reason}`)
        }
        if (step.reply.length > 0) conn.write(step.reply)
        const target = { host: step.request.host, port: step.request.port }
        yield* Effect.scoped(Effect.gen(function*() {
          const opened = yield* Effect.result(openDirect(target, originOf(conn)))
          if (opened._tag === "Failure") {
            const reason = opened.failure.reason
            const code = reason._tag === "ForwardFailed" && reason.cause instanceof SshError.ChannelOpenFailed
              ? Socks.replyForChannelOpenFailure(reason.cause.code)
              : Socks.Socks5Reply.generalFailure
            conn.end(Socks.connectFailed(step.request, code))
            return yield* Effect.logWarning(`SOCKS: ${opened.failure.message}`)
          }
          conn.write(Socks.connectSucceeded(step.request))
          // what the client sent after its request is the start of its data
          if (step.leftover.length > 0) yield* opened.success.write(step.leftover)
          yield* bridge(opened.success, fromNetSocket(() => conn))
        }))
      }).pipe(Effect.ignore)

    const forwardRemote: ClientForwarding["forwardRemote"] = ({ bind, to }) =>
      Effect.gen(function*() {
        const pending = yield* Queue.bounded<ForwardedConnection>(PENDING_CONNECTIONS)
        const address = yield* Effect.acquireRelease(requestListener(bind), (bound) =>
          Effect.ignore(cancelListener(bound)))
        const key = keyOf(address)
        const accept = (incoming: IncomingChannel, origin: Origin | undefined) =>
          to !== undefined
            ? Effect.flatMap(Effect.result(dial(to)), (dialed) =>
              dialed._tag === "Failure"
                ? Effect.andThen(
                  incoming.reject(N.ChannelOpenFailure.CONNECT_FAILED, dialed.failure.reason.message),
                  Effect.logWarning(`forwarding from ${describeAddress(address)}: ${dialed.failure.message}`)
                )
                : Effect.flatMap(incoming.accept(), (channel) =>
                  Effect.ignore(bridge(channel, fromNetSocket(() => dialed.success)))).pipe(
                    Effect.ensuring(Effect.sync(() => dialed.success.destroy()))
                  ))
            : Effect.flatMap(incoming.accept(), (channel) => {
              const offered = Queue.offerUnsafe(pending, { origin, socket: channelSocket(channel), channel })
              return offered ? Deferred.await(channel.closed) : channel.close
            })
        remotes.set(key, accept)
        yield* Effect.addFinalizer(() => Effect.sync(() => remotes.delete(key)))
        return { address, connections: Stream.fromQueue(pending) }
      })

    const requestListener = (bind: ListenAt): Effect.Effect<BoundAt, SshError.SshError> => {
      if ("path" in bind) {
        return Effect.flatMap(
          connection.globalRequest(Messages.RequestName.streamlocalForward, Messages.encodeStreamlocalForward({ path: bind.path }), true),
          (reply) => reply === undefined
            ? Effect.fail(forwardFailed("refused", bind.path, `the server refused to listen on ${bind.path}`))
            : Effect.succeed({ path: bind.path })
        )
      }
      const request = { bindAddress: bind.host ?? "localhost", bindPort: bind.port }
      return Effect.flatMap(
        connection.globalRequest(Messages.RequestName.tcpipForward, Messages.encodeTcpipForward(request), true),
        (reply) => {
          const address = describeAddress({ host: request.bindAddress, port: request.bindPort })
          if (reply === undefined) return Effect.fail(forwardFailed("refused", address, `the server refused to listen on ${address}`))
          return Effect.map(
            Effect.try({ try: () => Messages.decodeTcpipForwardReply(reply, request), catch: SshError.fromUnknown }),
            (port) => ({ host: request.bindAddress, port })
          )
        }
      )
    }

    const cancelListener = (bound: BoundAt) =>
      "path" in bound
        ? connection.globalRequest(Messages.RequestName.cancelStreamlocalForward, Messages.encodeStreamlocalForward({ path: bound.path }), true)
        : connection.globalRequest(
          Messages.RequestName.cancelTcpipForward,
          Messages.encodeTcpipForward({ bindAddress: bound.host, bindPort: bound.port }),
          true
        )

    return { forwardOut, forwardLocal, forwardRemote, socks }
  }

  return { onChannelOpen, forwarding }
}

/** Reads a SOCKS handshake from a paused connection; bytes after the request are kept for the tunnel. */
const readHandshake = (conn: net.Socket) =>
  Effect.callback<Socks.Connect | Socks.Refuse>((resume) => {
    let handshake = Socks.start
    const finish = (step: Socks.Connect | Socks.Refuse) => {
      conn.off("data", onData)
      conn.off("close", onClose)
      conn.pause()
      resume(Effect.succeed(step))
    }
    const onData = (chunk: Buffer) => {
      const step = Socks.feed(handshake, chunk)
      if (step._tag === "NeedMore") {
        if (step.reply.length > 0) conn.write(step.reply)
        handshake = step.handshake
        return
      }
      finish(step)
    }
    const onClose = () => finish({ _tag: "Refuse", reply: new Uint8Array(0), reason: "the client left during the handshake" })
    conn.on("data", onData)
    conn.on("close", onClose)
    conn.resume()
    return Effect.sync(() => {
      conn.off("data", onData)
      conn.off("close", onClose)
    })
  })
