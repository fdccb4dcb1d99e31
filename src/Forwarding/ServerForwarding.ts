/**
 * The server's side of forwarding, for one connection: it dials for the
 * client (`direct-tcpip`, `direct-streamlocal@openssh.com`: `ssh -L`, `-D`,
 * `-W`) and listens for it (`tcpip-forward`, `streamlocal-forward@openssh.com`:
 * `ssh -R`), opening a `forwarded-*` channel to the client for each connection
 * a listener accepts. Everything is refused unless the policy allows it; its
 * handlers see the user, the target or bind address, and the origin.
 *
 * Listeners live in the connection's scope and each in its own: a cancel
 * request closes one, the end of the connection closes all.
 *
 * X11 (`ssh -X`, `-Y`): a session's `x11-req`, when the policy allows it,
 * gets a proxy display on loopback (sshd's X11UseLocalhost): the first free
 * port from 6000 + `x11DisplayOffset`, whose every connection becomes an
 * `x11` channel to the client. The client's (fake) cookie is filed for the
 * display with `xauth`, as sshd does, so X clients of the session present it.
 * The proxy lives in the session's scope.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import * as ChildProcess from "node:child_process"
import * as fs from "node:fs"
import type * as net from "node:net"
import type { IncomingChannel, SshChannel } from "../Channel/Connection.ts"
import * as KeyOptions from "../Auth/KeyOptions.ts"
import { fromNetSocket } from "../internal/netSocket.ts"
import type * as SshError from "../SshError.ts"
import * as N from "../Wire/MessageNumber.ts"
import { bridge } from "./Bridge.ts"
import { dial } from "./Dial.ts"
import { type BoundAt, listen, type ListenAt } from "./Listener.ts"
import * as Messages from "./Messages.ts"
import * as X11 from "./X11.ts"

/** A client asks the server to connect to `host`:`port` for it (`ssh -L`, `-D`, `-W`). */
export interface LocalForwardRequest {
  readonly user: string
  readonly host: string
  readonly port: number
  /** Where the client says the connection came from. */
  readonly originHost: string
  readonly originPort: number
}

/** A client asks the server to listen on `address`:`port` for it (`ssh -R`; port 0: any). */
export interface RemoteForwardRequest {
  readonly user: string
  readonly address: string
  readonly port: number
}

/** A client asks to connect to (`connect`) or listen on (`listen`) a Unix socket on the server. */
export interface StreamLocalRequest {
  readonly user: string
  readonly path: string
  readonly direction: "connect" | "listen"
}

/** A session asks the server to forward the X11 connections of its programs (`ssh -X`, `-Y`). */
export interface X11ForwardRequest {
  readonly user: string
  /** Forward only the first connection. */
  readonly singleConnection: boolean
  /** e.g. "MIT-MAGIC-COOKIE-1". */
  readonly authProtocol: string
  readonly screen: number
}

/**
 * What a server allows, default nothing. Each handler decides one request; `true` allows it.
 *
 * @example
 * ```ts
 * SshServer.serve({ ...serverOptions, forwarding: {
 *   local: ({ host, port }) => Effect.succeed(host === "localhost" && port === 5432),
 *   remote: ({ port }) => Effect.succeed(port === 0 || port >= 1024)
 * } })
 * ```
 */
export interface ForwardingPolicy {
  readonly local?: ((request: LocalForwardRequest) => Effect.Effect<boolean>) | undefined
  readonly remote?: ((request: RemoteForwardRequest) => Effect.Effect<boolean>) | undefined
  readonly streamLocal?: ((request: StreamLocalRequest) => Effect.Effect<boolean>) | undefined
  /**
   * sshd's GatewayPorts: `false` (default) binds every remote listener to loopback, whatever address the client
   * asked for; `true` binds the address asked for (`""`, `"0.0.0.0"`, `"*"`: every interface).
   */
  readonly gatewayPorts?: boolean | undefined
  /** X11Forwarding: whether a session's `x11-req` gets a proxy display. */
  readonly x11?: ((request: X11ForwardRequest) => Effect.Effect<boolean>) | undefined
  /** X11DisplayOffset: the first display number tried for a proxy (default 10, as sshd). */
  readonly x11DisplayOffset?: number | undefined
  /**
   * XAuthLocation: the xauth that files a session's cookie (default `/usr/bin/xauth` when it exists, else `xauth` on
   * `PATH`). It runs in the server's own environment (its `XAUTHORITY`, or `~/.Xauthority`), which is the session
   * user's when sessions run as the server's user, as `ProcessSession` does.
   */
  readonly xauthLocation?: string | undefined
}

/** The connection a forwarding serves. */
export interface ForwardingPeer {
  readonly user: string
  /** False when a user certificate lacks permit-port-forwarding: nothing is forwarded then. */
  readonly permitted: boolean
  /** False when a user certificate lacks permit-X11-forwarding (default: `permitted`). */
  readonly x11Permitted?: boolean | undefined
  /** The only direct-tcpip targets allowed (the key's `permitopen=`); undefined for any the policy allows. */
  readonly permitOpen?: ReadonlyArray<KeyOptions.HostPort> | undefined
  /** The only tcpip-forward addresses allowed (the key's `permitlisten=`); undefined for any the policy allows. */
  readonly permitListen?: ReadonlyArray<KeyOptions.HostPort> | undefined
  /** Opens a channel to the client (the connection's `openChannel`). */
  readonly openChannel: (channelType: string, data: Uint8Array) => Effect.Effect<SshChannel, SshError.SshError, Scope.Scope>
}

const prohibited = (incoming: IncomingChannel, what: string) =>
  incoming.reject(N.ChannelOpenFailure.ADMINISTRATIVELY_PROHIBITED, `${what} is not allowed`)

const allowed = (decide: ((request: never) => Effect.Effect<boolean>) | undefined, request: unknown, permitted: boolean) =>
  decide === undefined || !permitted ? Effect.succeed(false) : Effect.orElseSucceed((decide as (r: unknown) => Effect.Effect<boolean>)(request), () => false)

/**
 * One connection's forwarding: its channel-open handler (`undefined` for channel types that are not
 * forwarding) and its global-request handler (`undefined` for requests that are not forwarding).
 *
 * @example
 * ```ts
 * const policy: ServerForwarding.ForwardingPolicy = { local: ({ host, port }) => Effect.succeed(host === "localhost" && port === 5432) }
 * const forwardingOf = (user: string, connection: Connection.Connection) =>
 *   ServerForwarding.make(policy, { user, permitted: true, openChannel: connection.openChannel })
 * ```
 */
export const make = (policy: ForwardingPolicy, peer: ForwardingPeer) =>
  Effect.gen(function*() {
    // the key's permitopen/permitlisten narrow what the policy may allow (sshd checks both)
    const keyLimits = { ...KeyOptions.unrestricted, permitOpen: peer.permitOpen, permitListen: peer.permitListen }
    const scope = yield* Effect.scope
    const listeners = new Map<string, Scope.Closeable>()
    // a cancel must not overtake the listen it cancels
    const requests = yield* Semaphore.make(1)

    /** direct-tcpip and direct-streamlocal: decide, dial, then confirm and bridge. */
    const onChannelOpen = (incoming: IncomingChannel): Effect.Effect<void, SshError.SshError, Scope.Scope> | undefined => {
      if (incoming.channelType !== Messages.ChannelType.directTcpip && incoming.channelType !== Messages.ChannelType.directStreamlocal) {
        return undefined
      }
      return Effect.gen(function*() {
        const open = yield* Effect.orElseSucceed(
          Effect.try({ try: () => Messages.decodeChannelOpen(incoming.channelType, incoming.data), catch: (u) => u }),
          () => undefined
        )
        const target = open?._tag === "DirectTcpip"
          ? { host: open.host, port: open.port }
          : open?._tag === "DirectStreamlocal"
          ? { path: open.path }
          : undefined
        if (target === undefined) return yield* incoming.reject(N.ChannelOpenFailure.CONNECT_FAILED, "malformed forwarding request")
        const ok = open!._tag === "DirectTcpip"
          ? KeyOptions.permitsOpen(keyLimits, open!.host, open!.port) && (yield* allowed(policy.local, {
            user: peer.user,
            host: open!.host,
            port: open!.port,
            originHost: open!.originatorAddress,
            originPort: open!.originatorPort
          } satisfies LocalForwardRequest, peer.permitted))
          : yield* allowed(policy.streamLocal, { user: peer.user, path: (target as { path: string }).path, direction: "connect" } satisfies StreamLocalRequest, peer.permitted)
        if (!ok) return yield* prohibited(incoming, `forwarding to ${"path" in target ? target.path : `${target.host}:${target.port}`}`)
        const dialed = yield* Effect.result(dial(target))
        if (dialed._tag === "Failure") return yield* incoming.reject(N.ChannelOpenFailure.CONNECT_FAILED, dialed.failure.reason.message)
        const conn = dialed.success
        yield* Effect.addFinalizer(() => Effect.sync(() => conn.destroy()))
        const channel = yield* incoming.accept()
        yield* Effect.ignore(bridge(channel, fromNetSocket(() => conn)))
      })
    }

    /** Opens a forwarded-* channel to the client for one connection a listener accepted. */
    const forwardToClient = (channelType: string, data: Uint8Array, conn: net.Socket) =>
      Effect.scoped(Effect.gen(function*() {
        const channel = yield* peer.openChannel(channelType, data)
        yield* bridge(channel, fromNetSocket(() => conn))
      })).pipe(Effect.ignore)

    const startListener = (key: string, at: ListenAt, onConnection: (conn: net.Socket) => Effect.Effect<void>) =>
      Effect.gen(function*() {
        const child = yield* Scope.fork(scope)
        const bound = yield* Effect.exit(Scope.provide(listen(at, onConnection), child))
        if (Exit.isFailure(bound)) {
          yield* Scope.close(child, Exit.void)
          return undefined
        }
        listeners.set(key, child)
        return bound.value
      })

    const stopListener = (key: string) =>
      Effect.suspend(() => {
        const child = listeners.get(key)
        if (child === undefined) return Effect.succeed(false)
        listeners.delete(key)
        return Effect.as(Scope.close(child, Exit.void), true)
      })

    const bindAddress = (address: string): string | undefined =>
      policy.gatewayPorts === true ? (address === "0.0.0.0" ? "" : address) : "localhost"

    const tcpipForward = (address: string, port: number) =>
      Effect.gen(function*() {
        if (!KeyOptions.permitsListen(keyLimits, address, port)) return undefined
        if (!(yield* allowed(policy.remote, { user: peer.user, address, port } satisfies RemoteForwardRequest, peer.permitted))) return undefined
        const host = bindAddress(address)
        let boundPort = port
        const bound: BoundAt | undefined = yield* startListener(`tcp:${address}:${port}`, { host, port }, (conn) =>
          forwardToClient(
            Messages.ChannelType.forwardedTcpip,
            Messages.encodeForwardedTcpip({
              connectedAddress: address,
              connectedPort: boundPort,
              originatorAddress: conn.remoteAddress ?? "",
              originatorPort: conn.remotePort ?? 0
            }),
            conn
          ))
        if (bound === undefined || "path" in bound) return undefined
        boundPort = bound.port
        if (port === 0) {
          // known from now on by the port it got, which is what the client cancels
          const child = listeners.get(`tcp:${address}:0`)!
          listeners.delete(`tcp:${address}:0`)
          listeners.set(`tcp:${address}:${bound.port}`, child)
        }
        return Messages.encodeTcpipForwardReply({ bindAddress: address, bindPort: port }, bound.port)
      })

    const streamlocalForward = (path: string) =>
      Effect.gen(function*() {
        if (!(yield* allowed(policy.streamLocal, { user: peer.user, path, direction: "listen" } satisfies StreamLocalRequest, peer.permitted))) return undefined
        const bound = yield* startListener(`unix:${path}`, { path }, (conn) =>
          forwardToClient(Messages.ChannelType.forwardedStreamlocal, Messages.encodeForwardedStreamlocal({ path }), conn))
        return bound === undefined ? undefined : new Uint8Array(0)
      })

    /** tcpip-forward, streamlocal-forward and their cancels: the reply data, or undefined for failure. */
    const onGlobalRequest = (name: string, data: Uint8Array): Effect.Effect<Uint8Array | undefined> | undefined => {
      let request: Messages.ForwardingRequest | undefined
      try {
        request = Messages.decodeGlobalRequest(name, data)
      } catch {
        return Effect.succeed(undefined)
      }
      if (request === undefined) return undefined
      const handled = request
      return requests.withPermit(Effect.suspend((): Effect.Effect<Uint8Array | undefined> => {
        switch (handled._tag) {
          case "TcpipForward":
            return tcpipForward(handled.bindAddress, handled.bindPort)
          case "CancelTcpipForward":
            return Effect.map(stopListener(`tcp:${handled.bindAddress}:${handled.bindPort}`), (ok) => ok ? new Uint8Array(0) : undefined)
          case "StreamlocalForward":
            return streamlocalForward(handled.path)
          case "CancelStreamlocalForward":
            return Effect.map(stopListener(`unix:${handled.path}`), (ok) => ok ? new Uint8Array(0) : undefined)
        }
      }))
    }

    /**
     * A session's `x11-req`: the DISPLAY its programs get, or undefined when it is refused (or no display is
     * free). The proxy listens in the caller's scope, the session's.
     */
    const x11 = (request: Messages.X11Request): Effect.Effect<string | undefined, never, Scope.Scope> =>
      Effect.gen(function*() {
        const decision = { user: peer.user, singleConnection: request.singleConnection, authProtocol: request.authProtocol, screen: request.screen }
        if (!(yield* allowed(policy.x11, decision satisfies X11ForwardRequest, peer.x11Permitted ?? peer.permitted))) return undefined
        // what xauth will be given comes from the client: refused before listening unless it is a plain name and hex
        const safe = yield* Effect.option(Effect.try(() => X11.xauthAddInput(0, request.screen, request.authProtocol, request.authCookie)))
        if (safe._tag === "None") return undefined
        let forwarded = 0
        const proxy = yield* listenDisplay(policy.x11DisplayOffset ?? DEFAULT_X11_DISPLAY_OFFSET, (conn) => {
          // single-connection: the first connection only; later ones are dropped as they come
          if (request.singleConnection && forwarded++ > 0) return Effect.void
          return forwardToClient(
            Messages.ChannelType.x11,
            Messages.encodeX11Channel({ originatorAddress: conn.remoteAddress ?? "127.0.0.1", originatorPort: conn.remotePort ?? 0 }),
            conn
          )
        })
        if (proxy === undefined) {
          yield* Effect.logWarning("X11 forwarding: no free display to listen on")
          return undefined
        }
        const input = X11.xauthAddInput(proxy, request.screen, request.authProtocol, request.authCookie)
        const filed = yield* xauthRun(policy.xauthLocation ?? defaultXauth(), input)
        if (filed !== undefined) yield* Effect.logWarning(`X11 forwarding: xauth failed: ${filed}`)
        return X11.proxyDisplay(proxy, request.screen)
      })

    /** Listens on the first free loopback port from display `offset` on, in the current scope: the display number. */
    const listenDisplay = (offset: number, onConnection: (conn: net.Socket) => Effect.Effect<void>) =>
      Effect.gen(function*() {
        const scope = yield* Effect.scope
        for (let display = offset; display < offset + X11_MAX_DISPLAYS && X11.X11_BASE_PORT + display <= 0xffff; display++) {
          const child = yield* Scope.fork(scope)
          const bound = yield* Effect.exit(Scope.provide(listen({ host: "localhost", port: X11.X11_BASE_PORT + display }, onConnection), child))
          if (Exit.isSuccess(bound)) return display
          yield* Scope.close(child, Exit.void)
        }
        return undefined
      })

    return { onChannelOpen, onGlobalRequest, x11 }
  })

/** sshd's X11DisplayOffset default. */
const DEFAULT_X11_DISPLAY_OFFSET = 10
/** How many display numbers from the offset are tried, as sshd. */
const X11_MAX_DISPLAYS = 1000
const DEFAULT_XAUTH = "/usr/bin/xauth"
const XAUTH_TIMEOUT_MS = 10_000

const defaultXauth = (): string => fs.existsSync(DEFAULT_XAUTH) ? DEFAULT_XAUTH : "xauth"

/** Runs `xauth -q -` with `input` as its commands: undefined when it succeeded, else what went wrong. */
const xauthRun = (xauth: string, input: string): Effect.Effect<string | undefined> =>
  Effect.callback<string | undefined>((resume) => {
    const child = ChildProcess.execFile(xauth, ["-q", "-"], { timeout: XAUTH_TIMEOUT_MS, encoding: "utf8" }, (error, _stdout, stderr) =>
      resume(Effect.succeed(error === null ? undefined : `${error.message} ${stderr}`.trim())))
    child.stdin?.on("error", () => {})
    child.stdin?.end(input)
    return Effect.sync(() => child.kill())
  })
