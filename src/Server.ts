/**
 * `SshServer.serve`: an SSH server on the same transport, multiplexer and
 * codecs as the client, in the server role. The server is a scoped resource
 * exposing its bound address; each connection lives in its own scope;
 * closing the server stops accepting and closes every connection with
 * DISCONNECT.
 *
 * @example
 * ```ts
 * const server = yield* SshServer.serve({
 *   port: 0,
 *   hostKeys: [PrivateKey.generate("ssh-ed25519")],
 *   auth: { password: ({ password }) => Effect.succeed(Redacted.value(password) === "pw") },
 *   session: { exec: (session, command) => Effect.as(session.write(`ran ${command}\n`), 0) }
 * })
 * console.log(server.address.port)
 * ```
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Scope from "effect/Scope"
import * as net from "node:net"
import * as SshError from "./SshError.ts"
import { acceptedTcp } from "./internal/netSocket.ts"
import * as N from "./Wire/MessageNumber.ts"
import * as Transport from "./Transport/Transport.ts"
import * as Algorithms from "./Transport/Algorithms.ts"
import * as AgentForwarding from "./Auth/AgentForwarding.ts"
import * as Certificate from "./Auth/Certificate.ts"
import * as ServerAuth from "./Auth/ServerAuth.ts"
import type * as PrivateKey from "./Auth/PrivateKey.ts"
import * as PublicKey from "./Auth/PublicKey.ts"
import * as Connection from "./Channel/Connection.ts"
import * as ServerSession from "./Channel/ServerSession.ts"
// --- SFTP (issue 4) ---
import type { SessionHandler } from "./Channel/ServerSession.ts"

/** Forwarding requests; each is refused unless a handler allows it. */
export interface ForwardingHandlers {
  /** direct-tcpip (ssh -L): return true to allow. The forwarding itself comes in a later release. */
  readonly directTcpip?: ((request: { readonly host: string; readonly port: number; readonly user: string }) => Effect.Effect<boolean>) | undefined
  /** tcpip-forward (ssh -R): return true to allow. */
  readonly tcpipForward?: ((request: { readonly address: string; readonly port: number; readonly user: string }) => Effect.Effect<boolean>) | undefined
}

/** Options of `serve`. */
export interface ServeOptions {
  readonly host?: string | undefined
  /** 0 picks a free port (see `address`). */
  readonly port?: number | undefined
  /** Host keys to offer; the client picks the algorithm. */
  readonly hostKeys: ReadonlyArray<PrivateKey.PrivateKey>
  readonly auth: ServerAuth.ServerAuthOptions
  readonly session?: ServerSession.SessionHandlers | undefined
  /** The "sftp" subsystem, e.g. `SftpServer.fileSystem({ root })` (overrides `session.subsystems.sftp`). */
  readonly sftp?: SessionHandler<void> | undefined
  readonly forwarding?: ForwardingHandlers | undefined
  /**
   * AllowAgentForwarding: a session that asks for it gets an `SSH_AUTH_SOCK`
   * reaching the client's agent (default false; a user certificate without
   * permit-agent-forwarding never gets it).
   */
  readonly agentForwarding?: boolean | undefined
  readonly algorithms?: Algorithms.AlgorithmOptions | undefined
  /** Most connections at once (default 1000); more are closed at once. */
  readonly maxConnections?: number | undefined
  /** Most channels per connection (default 64). */
  readonly maxChannels?: number | undefined
  readonly windowSize?: number | undefined
  readonly maxPacket?: number | undefined
  /** Called for each connection event. */
  readonly onEvent?: ((event: ServerEvent) => Effect.Effect<void>) | undefined
}

/**
 * What a server reports about its connections. Every `Connected` is followed
 * by one `Closed`, whose `error` is absent for an orderly end (the client's
 * DISCONNECT "by application", or the server shutting down) and otherwise
 * says why the connection ended (a cut connection is `ConnectionClosed`, a
 * handshake not finished within `auth.loginGraceTime` is `Timeout`).
 */
export type ServerEvent =
  | { readonly _tag: "Connected"; readonly remoteAddress: string; readonly remotePort: number }
  | { readonly _tag: "Authenticated"; readonly remoteAddress: string; readonly user: string; readonly methods: ReadonlyArray<string> }
  | { readonly _tag: "Closed"; readonly remoteAddress: string; readonly remotePort: number; readonly error?: SshError.SshError | undefined }

/**
 * A running server.
 *
 * @example
 * ```ts
 * const { address } = yield* SshServer.serve(options)
 * ```
 */
export interface SshServer {
  readonly address: { readonly host: string; readonly port: number }
  /** Connections currently open. */
  readonly connectionCount: () => number
  /** Channels currently open over all connections. */
  readonly channelCount: () => number
}

/** sshd's LoginGraceTime default. */
const DEFAULT_LOGIN_GRACE = Duration.seconds(120)

/**
 * A host key as the transport needs it.
 *
 * @example
 * ```ts
 * const signer = hostKeySigner(PrivateKey.generate("ssh-ed25519"))
 * ```
 */
export const hostKeySigner = (key: PrivateKey.PrivateKey): Transport.HostKeySigner => ({
  blob: key.publicKey.blob,
  algorithms: PublicKey.signatureAlgorithms(key.publicKey).filter((a) => a !== "ssh-rsa"),
  sign: (data, algorithm) => key.sign(data, algorithm)
})

/**
 * Starts listening; the server runs until the scope closes.
 *
 * @example
 * ```ts
 * const server = yield* SshServer.serve({ port: 0, hostKeys: [key], auth, session })
 * ```
 */
export const serve = (options: ServeOptions): Effect.Effect<SshServer, SshError.SshError, Scope.Scope> =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const algorithms = yield* Transport.core(() => Algorithms.resolve(options.algorithms ?? {}))
    const signers = options.hostKeys.map(hostKeySigner)
    const maxConnections = options.maxConnections ?? 1000
    const loginGraceMs = Duration.toMillis(Duration.fromInputUnsafe(options.auth.loginGraceTime ?? DEFAULT_LOGIN_GRACE))
    const connections = new Set<Connection.Connection>()
    const fibers = new Set<Fiber.Fiber<void>>()
    let active = 0
    let shuttingDown = false
    const emit = (event: ServerEvent) => options.onEvent ? options.onEvent(event) : Effect.void
    const sessionHandlers: ServerSession.SessionHandlers = options.sftp === undefined
      ? options.session ?? {}
      : { ...options.session, subsystems: { ...options.session?.subsystems, sftp: options.sftp } }

    const handle = (conn: net.Socket) =>
      Effect.gen(function*() {
        const remoteAddress = conn.remoteAddress ?? "unknown"
        const remotePort = conn.remotePort ?? 0
        yield* emit({ _tag: "Connected", remoteAddress, remotePort })
        const socket = acceptedTcp(conn)
        yield* Effect.scoped(Effect.gen(function*() {
          // one login grace time, as sshd's, from the TCP accept to the end of authentication
          const started = Date.now()
          const transport = yield* Transport.make(socket, { role: "server", algorithms, hostKeys: signers }).pipe(
            Effect.timeoutOrElse({
              duration: loginGraceMs,
              orElse: () => Effect.fail(SshError.make(new SshError.Timeout({ message: "login grace time exceeded before the key exchange finished" })))
            })
          )
          const authed = yield* ServerAuth.authenticate(
            transport,
            { ...options.auth, loginGraceTime: Math.max(0, loginGraceMs - (Date.now() - started)) },
            { remoteAddress, remotePort }
          )
          yield* emit({ _tag: "Authenticated", remoteAddress, user: authed.user, methods: authed.methods })
          // a user certificate restricts the connection: force-command, and only the permit-* it grants
          const certificate = authed.certificate
          const permitted = (extension: string) => certificate === undefined || Certificate.hasExtension(certificate, extension)
          let openChannel: Connection.Connection["openChannel"] | undefined
          const peer: ServerSession.SessionPeer = {
            user: authed.user,
            remoteAddress,
            remotePort,
            localAddress: conn.localAddress,
            localPort: conn.localPort,
            forceCommand: certificate === undefined ? undefined : Certificate.forceCommand(certificate),
            agentForwarding: options.agentForwarding === true && permitted("permit-agent-forwarding")
              ? AgentForwarding.listen((channelType) => Effect.suspend(() => openChannel!(channelType)))
              : undefined
          }
          const handlers = permitted("permit-pty") ? sessionHandlers : { ...sessionHandlers, allowPty: false }
          const connection = yield* Connection.make(transport, {
            windowSize: options.windowSize,
            maxPacket: options.maxPacket,
            maxChannels: options.maxChannels ?? 64,
            onChannelOpen: (request) => {
              if (request.channelType === "session") {
                return Effect.succeed((channel: Connection.SshChannel) => ServerSession.serve(channel, peer, handlers))
              }
              return Effect.fail(new SshError.ChannelOpenFailed({
                code: N.ChannelOpenFailure.ADMINISTRATIVELY_PROHIBITED,
                description: `${request.channelType} channels are not allowed`
              }))
            },
            onGlobalRequest: () => Effect.succeed(undefined)
          })
          openChannel = connection.openChannel
          connections.add(connection)
          yield* Effect.ensuring(
            // only the client's DISCONNECT "by application" (or our shutdown) is an orderly end; a cut connection is reported
            Effect.catch(Deferred.await(connection.closed), (e) =>
              shuttingDown || (e.reason._tag === "PeerDisconnected" && e.reason.code === N.DisconnectReason.BY_APPLICATION)
                ? Effect.void
                : Effect.fail(e)),
            Effect.sync(() => connections.delete(connection))
          )
        })).pipe(
          // also when the server shuts down (interrupted): every Connected event gets its Closed event
          Effect.onExit((exit) => emit({ _tag: "Closed", remoteAddress, remotePort, error: closeError(exit) })),
          Effect.ignore
        )
      })

    const server = net.createServer({ pauseOnConnect: true, noDelay: true })
    const context = yield* Effect.context<never>()
    server.on("connection", (conn) => {
      if (active >= maxConnections) {
        conn.destroy()
        return
      }
      active++
      const fiber = Effect.runForkWith(context)(
        Effect.ensuring(handle(conn), Effect.sync(() => {
          active--
        }))
      )
      fibers.add(fiber)
      fiber.addObserver(() => fibers.delete(fiber))
    })
    const address = yield* Effect.callback<{ host: string; port: number }, SshError.SshError>((resume) => {
      server.once("error", (cause) =>
        resume(Effect.fail(SshError.make(new SshError.ConnectFailed({ message: `cannot listen: ${cause.message}`, cause })))))
      server.listen(options.port ?? 0, options.host ?? "127.0.0.1", () => {
        const a = server.address() as net.AddressInfo
        resume(Effect.succeed({ host: a.address, port: a.port }))
      })
    })
    yield* Scope.addFinalizer(
      scope,
      Effect.gen(function*() {
        server.close()
        shuttingDown = true
        // DISCONNECT first: closing a connection's scope closes its channels before its transport, and a
        // client whose session closes (OpenSSH's ssh) exits before it reads a DISCONNECT sent after that
        yield* Effect.forEach(
          connections,
          (c) => c.transport.disconnect(N.DisconnectReason.BY_APPLICATION, "server shutting down"),
          { concurrency: "unbounded", discard: true }
        )
        // interrupting a connection's fiber closes its scope: channels (their processes), then the socket
        yield* Fiber.interruptAll([...fibers])
      })
    )
    return {
      address,
      connectionCount: () => active,
      channelCount: () => [...connections].reduce((n, c) => n + c.channelCount(), 0)
    } satisfies SshServer
  })

/** The error a connection ended with; none for an orderly end or the server's own shutdown (interruption). */
const closeError = (exit: Exit.Exit<unknown, unknown>): SshError.SshError | undefined => {
  if (Exit.isSuccess(exit) || Cause.hasInterruptsOnly(exit.cause)) return undefined
  const failure = exit.cause.reasons.find(Cause.isFailReason)
  return SshError.fromUnknown(failure ? failure.error : Cause.squash(exit.cause))
}
