/**
 * `SshServer.serve`: an SSH server on the same transport, multiplexer and
 * codecs as the client, in the server role. The server is a scoped resource
 * exposing its bound address; each connection lives in its own scope;
 * closing the server stops accepting and closes every connection with
 * DISCONNECT.
 *
 * Before any SSH work, each new TCP connection is admitted or refused as
 * sshd does (see `Server/Admission`): MaxStartups' random early drop over
 * the connections not yet authenticated, PerSourceMaxStartups per source
 * address block, PerSourcePenalties for sources whose connections failed to
 * authenticate, timed out or never tried, and `maxConnections` in all. A
 * refused connection costs next to nothing: it is sent sshd's "Not allowed
 * at this time" line and closed at once, and reported as a `Refused` event
 * (at most one per reason per `refusalEventInterval`, with a count of the
 * ones left out). Authenticated connections are never dropped.
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
import * as Metric from "effect/Metric"
import * as Scope from "effect/Scope"
import type * as Socket from "effect/socket/Socket"
import * as net from "node:net"
import * as SshError from "./SshError.ts"
import { acceptedTcp, ownedOrHandedOver } from "./internal/netSocket.ts"
import * as Telemetry from "./internal/telemetry.ts"
import * as N from "./Wire/MessageNumber.ts"
import * as Transport from "./Transport/Transport.ts"
import * as Algorithms from "./Transport/Algorithms.ts"
import * as Compression from "./Transport/Compression.ts"
import * as AgentForwarding from "./Auth/AgentForwarding.ts"
import * as KeyOptions from "./Auth/KeyOptions.ts"
import * as ServerAuth from "./Auth/ServerAuth.ts"
import type * as PrivateKey from "./Auth/PrivateKey.ts"
import * as PublicKey from "./Auth/PublicKey.ts"
import * as Connection from "./Channel/Connection.ts"
import * as ServerSession from "./Channel/ServerSession.ts"
import * as ServerForwarding from "./Forwarding/ServerForwarding.ts"
import * as Admission from "./Server/Admission.ts"
import type { NetBlockSize } from "./Server/AddressBlock.ts"
import { defaultPenalties, type Overflow, type PenaltyConfig, type PenaltyKind } from "./Server/Penalties.ts"
import * as Extensions from "./Server/Extensions.ts"
import { RefusalLog } from "./Server/RefusalLog.ts"
import type { SessionHandler } from "./Channel/ServerSession.ts"

export type { ChannelHandler, ConnectionPeer, GlobalRequestHandler } from "./Server/Extensions.ts"
export type { Decision, SessionContext, SessionDecisions } from "./Server/Decisions.ts"

/** What a server forwards for its clients (`ServerForwarding.ForwardingPolicy`): nothing unless a handler allows it. */
export type ForwardingHandlers = ServerForwarding.ForwardingPolicy

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
  /**
   * Port and Unix-socket forwarding (`ssh -L`, `-R`, `-D`, `-W`): `local` decides direct-tcpip, `remote`
   * tcpip-forward, `streamLocal` both directions of Unix-socket forwarding; without a handler, that kind is
   * refused. A user certificate without permit-port-forwarding, or a key whose authorized_keys options say
   * `no-port-forwarding` (or `restrict`), is refused all of them; a key's `permitopen=` and `permitlisten=` narrow
   * what the handlers may allow (anything else is ADMINISTRATIVELY_PROHIBITED, as sshd).
   */
  readonly forwarding?: ForwardingHandlers | undefined
  /**
   * AllowAgentForwarding: a session that asks for it gets an `SSH_AUTH_SOCK`
   * reaching the client's agent (default false; `session.decide.agentForwarding`
   * replaces it with a decision per user and session; a user certificate without
   * permit-agent-forwarding, or a key with `no-agent-forwarding`, never gets it).
   */
  readonly agentForwarding?: boolean | undefined
  /**
   * PermitUserEnvironment: whether a key's `environment="NAME=value"` options (authorized_keys, or the
   * key's options given to `ServerAuth.authorizedKeys`) set variables in its sessions: true for every name,
   * a predicate for some (sshd's pattern list, e.g. `(name) => name === "LANG" || name.startsWith("LC_")`), false
   * or absent for none, as sshd's default: whoever can write a key's options could otherwise set `LD_PRELOAD`
   * or `BASH_ENV` for the programs the server runs.
   *
   * @example
   * ```ts
   * yield* SshServer.serve({
   *   port: 2222,
   *   hostKeys: [hostKey],
   *   auth: { publicKey: ({ key }) => Effect.succeed(PublicKey.equals(key, userKey.publicKey)) },
   *   permitUserEnvironment: (name) => name.startsWith("APP_")
   * })
   * ```
   */
  readonly permitUserEnvironment?: boolean | ((name: string) => boolean) | undefined
  /**
   * Channel types of the application's own, by name (paramiko's `check_channel_request`): the handler accepts
   * or rejects each CHANNEL_OPEN of its type. "session" and the forwarding types are the server's own and never
   * reach these; a type with no handler is refused with ADMINISTRATIVELY_PROHIBITED, as sshd does.
   *
   * @example
   * ```ts
   * SshServer.serve({ port: 2222, hostKeys: [hostKey], auth: {}, channels: {
   *   "echo@example.com": (incoming, peer) =>
   *     peer.user === "alice"
   *       ? Effect.flatMap(incoming.accept(), (channel) => channel.stdout.pipe(Stream.run(channel.stdin)))
   *       : incoming.reject(1, "not for you") // SSH_OPEN_ADMINISTRATIVELY_PROHIBITED
   * } })
   * ```
   */
  readonly channels?: Readonly<Record<string, Extensions.ChannelHandler>> | undefined
  /**
   * Global requests of the application's own, by name (paramiko's `check_global_request`), for names the
   * forwarding does not handle: the handler answers `true`, reply data, or `false` (REQUEST_FAILURE). A name with
   * no handler fails, as sshd answers it (`keepalive@openssh.com` included).
   *
   * @example
   * ```ts
   * SshServer.serve({ port: 2222, hostKeys: [hostKey], auth: {}, globalRequests: {
   *   "version@example.com": () => Effect.succeed(new TextEncoder().encode("1.0"))
   * } })
   * ```
   */
  readonly globalRequests?: Readonly<Record<string, Extensions.GlobalRequestHandler>> | undefined
  readonly algorithms?: Algorithms.AlgorithmOptions | undefined
  /**
   * Most connections at once, authenticated or not (default 1000); more are
   * refused. MaxStartups keeps the unauthenticated ones far fewer, so this
   * bounds what authenticated clients hold (memory and file descriptors of
   * one process).
   */
  readonly maxConnections?: number | undefined
  /**
   * sshd's MaxStartups, `"start:rate:full"` or one number (default
   * `10:30:100`): with `start` or more unauthenticated connections, a new
   * one is refused with probability rate%, rising linearly to 100% at
   * `full`; one number `n` refuses all at `n`. Authenticated connections
   * are not counted.
   */
  readonly maxStartups?: string | number | Admission.MaxStartups | undefined
  /**
   * sshd's PerSourceMaxStartups: unauthenticated connections allowed from
   * one source address block, or `"none"` (default 3, where sshd's is none:
   * see `Admission.DEFAULT_PER_SOURCE_MAX_STARTUPS`).
   */
  readonly perSourceMaxStartups?: number | "none" | undefined
  /**
   * sshd's PerSourceNetBlockSize, `"ipv4:ipv6"` prefix lengths: the block
   * of addresses counted as one source by PerSourceMaxStartups and
   * PerSourcePenalties (default `32:64`, where sshd's is 32:128: see
   * `Admission.DEFAULT_NET_BLOCK_SIZE`).
   */
  readonly perSourceNetBlockSize?: string | NetBlockSize | undefined
  /**
   * sshd's PerSourcePenalties (default on, with sshd's settings): `false`
   * turns them off, a string takes sshd's syntax (`"authfail:30s max:1h"`),
   * an object overrides single settings.
   */
  readonly perSourcePenalties?: boolean | string | PenaltyOptions | undefined
  /** sshd's PerSourcePenaltyExemptList: addresses and CIDR ranges never penalised (`"10.0.0.0/8,192.0.2.7"`). */
  readonly perSourcePenaltyExemptList?: string | undefined
  /** The shortest time between two `Refused` events of one reason (default 10 s). */
  readonly refusalEventInterval?: Duration.Input | undefined
  /** Most channels per connection (default 64; sshd's MaxSessions, 10, counts sessions only). */
  readonly maxChannels?: number | undefined
  readonly windowSize?: number | undefined
  /** Largest a channel's window grows to while its consumer keeps up (default: no growth; see `ConnectOptions.windowLimit`). */
  readonly windowLimit?: number | undefined
  readonly maxPacket?: number | undefined
  /** The transport's bounds on what a peer can cost (`Transport.defaultLimits`: packet size before authentication, ...). */
  readonly transportLimits?: Partial<Transport.TransportLimits> | undefined
  /** Called for each connection event. */
  readonly onEvent?: ((event: ServerEvent) => Effect.Effect<void>) | undefined
}

/** PerSourcePenalties settings over sshd's defaults (see `Server/Penalties`). */
export interface PenaltyOptions {
  /** The connection's handler died (default 90 s). */
  readonly crash?: Duration.Input | undefined
  /** Ended after failed authentication attempts (default 5 s). */
  readonly authfail?: Duration.Input | undefined
  /** Ended without attempting authentication (default 1 s). */
  readonly noauth?: Duration.Input | undefined
  /** Not authenticated within the login grace time (default 10 s). */
  readonly graceExceeded?: Duration.Input | undefined
  /** The most penalty a block accumulates (default 10 min). */
  readonly max?: Duration.Input | undefined
  /** Penalty a block must accumulate before it is refused (default 15 s). */
  readonly min?: Duration.Input | undefined
  /** IPv4 blocks tracked at most (default 65536). */
  readonly maxSources4?: number | undefined
  /** IPv6 blocks tracked at most (default 65536). */
  readonly maxSources6?: number | undefined
  /** Past the limit: forget the penalties closest to expiring (`permissive`, default) or refuse everyone (`deny-all`). */
  readonly overflow?: Overflow | undefined
  readonly overflow6?: Overflow | undefined
}

/**
 * What a server reports about its connections. Every `Connected` is followed
 * by one `Closed`, whose `error` is absent for an orderly end (the client's
 * DISCONNECT "by application", or the server shutting down) and otherwise
 * says why the connection ended (a cut connection is `ConnectionClosed`, a
 * handshake not finished within `auth.loginGraceTime` is `Timeout`).
 *
 * A `Refused` connection gets no `Connected`: it is reported, at most once
 * per reason per `refusalEventInterval`, with `suppressed` counting the
 * refusals of that reason since the previous `Refused` that got no event of
 * their own (each such count is reported at most one interval late).
 * `PenaltyActivated` says a source block is refused from now on, for
 * `duration`, because of the penalty a closing connection added.
 */
export type ServerEvent =
  | { readonly _tag: "Connected"; readonly remoteAddress: string; readonly remotePort: number }
  | { readonly _tag: "Authenticated"; readonly remoteAddress: string; readonly user: string; readonly methods: ReadonlyArray<string> }
  | { readonly _tag: "Closed"; readonly remoteAddress: string; readonly remotePort: number; readonly error?: SshError.SshError | undefined }
  | {
    readonly _tag: "Refused"
    readonly remoteAddress: string
    readonly remotePort: number
    readonly reason: Admission.RefusalReason
    readonly detail: string
    readonly suppressed: number
  }
  | {
    readonly _tag: "PenaltyActivated"
    readonly addressBlock: string
    readonly penalty: PenaltyKind
    readonly reason: string
    readonly duration: Duration.Duration
  }

/**
 * A running server.
 *
 * @example
 * ```ts
 * const { address } = yield* SshServer.serve({ port: 0, hostKeys: [hostKey], auth: { password: () => Effect.succeed(false) } })
 * ```
 */
export interface SshServer {
  readonly address: { readonly host: string; readonly port: number }
  /** Connections currently open. */
  readonly connectionCount: () => number
  /** Of those, the ones not authenticated yet (what MaxStartups counts). */
  readonly unauthenticatedCount: () => number
  /** Channels currently open over all connections. */
  readonly channelCount: () => number
}

/**
 * Channels per connection without `maxChannels`.
 *
 * @example
 * ```ts
 * SshServer.serve({ port: 2222, hostKeys: [hostKey], auth: {}, maxChannels: SshServer.DEFAULT_MAX_CHANNELS / 4 })
 * ```
 */
export const DEFAULT_MAX_CHANNELS = 64

const DEFAULT_REFUSAL_EVENT_INTERVAL = Duration.seconds(10)

/** What sshd writes to a connection it refuses, before closing it. */
const NOT_ALLOWED = "Not allowed at this time\r\n"

const millis = (input: Duration.Input | undefined, fallback: number): number =>
  input === undefined ? fallback : Duration.toMillis(Duration.fromInputUnsafe(input))

const penaltyConfig = (option: ServeOptions["perSourcePenalties"]): PenaltyConfig | undefined => {
  if (option === undefined || option === true) return defaultPenalties
  if (option === false) return undefined
  if (typeof option === "string") return Admission.parsePenalties(option)
  const d = defaultPenalties
  const count = (n: number | undefined, fallback: number, what: string) => {
    if (n === undefined) return fallback
    if (!Number.isInteger(n) || n < 1) throw new SshError.ConfigParseError({ message: `bad PerSourcePenalties ${what} ${n}` })
    return n
  }
  return {
    crash: millis(option.crash, d.crash),
    authfail: millis(option.authfail, d.authfail),
    noauth: millis(option.noauth, d.noauth),
    graceExceeded: millis(option.graceExceeded, d.graceExceeded),
    max: millis(option.max, d.max),
    min: millis(option.min, d.min),
    maxSources4: count(option.maxSources4, d.maxSources4, "maxSources4"),
    maxSources6: count(option.maxSources6, d.maxSources6, "maxSources6"),
    overflow: option.overflow ?? d.overflow,
    overflow6: option.overflow6 ?? option.overflow ?? d.overflow6
  }
}

/**
 * The admission settings of `options`, with the defaults filled in.
 *
 * @throws ConfigParseError for a malformed or out-of-range setting.
 * @example
 * ```ts
 * SshServer.admissionConfig({ port: 2222, hostKeys: [hostKey], auth: {}, maxStartups: "20:30:60" }).maxStartups // { start: 20, rate: 30, full: 60 }
 * ```
 */
export const admissionConfig = (options: ServeOptions): Admission.AdmissionConfig => {
  const d = Admission.defaults
  const maxConnections = options.maxConnections ?? d.maxConnections
  if (!Number.isInteger(maxConnections) || maxConnections < 1) {
    throw new SshError.ConfigParseError({ message: `bad maxConnections ${maxConnections}` })
  }
  const perSource = options.perSourceMaxStartups
  return {
    maxConnections,
    maxStartups: options.maxStartups === undefined
      ? d.maxStartups
      : typeof options.maxStartups === "string" || typeof options.maxStartups === "number"
      ? Admission.parseMaxStartups(String(options.maxStartups))
      : Admission.validMaxStartups(options.maxStartups),
    perSourceMaxStartups: perSource === undefined
      ? d.perSourceMaxStartups
      : perSource === "none"
      ? undefined
      : Admission.parsePerSourceMaxStartups(String(perSource)),
    perSourceNetBlockSize: options.perSourceNetBlockSize === undefined
      ? d.perSourceNetBlockSize
      : typeof options.perSourceNetBlockSize === "string"
      ? Admission.parseNetBlockSize(options.perSourceNetBlockSize)
      : Admission.validNetBlockSize(options.perSourceNetBlockSize),
    perSourcePenalties: penaltyConfig(options.perSourcePenalties),
    perSourcePenaltyExemptList: options.perSourcePenaltyExemptList === undefined
      ? undefined
      : Admission.validExemptList(options.perSourcePenaltyExemptList)
  }
}

/** Closes a refused connection at once, after sshd's one-line notice (best effort: nothing waits for the peer). */
const refuse = (conn: net.Socket): void => {
  conn.on("error", () => {})
  conn.write(NOT_ALLOWED)
  conn.destroySoon()
}

/** The penalty a connection that never authenticated earns, by how it ended. */
const penaltyFor = (exit: Exit.Exit<unknown, unknown>, graceExceeded: boolean, attempted: boolean): PenaltyKind => {
  if (graceExceeded) return "grace-exceeded"
  if (Exit.isFailure(exit) && Cause.hasDies(exit.cause)) return "crash"
  return attempted ? "authfail" : "noauth"
}

/**
 * A host key as the transport needs it.
 *
 * @example
 * ```ts
 * const signer = SshServer.hostKeySigner(PrivateKey.generate("ssh-ed25519"))
 * ```
 */
export const hostKeySigner = (key: PrivateKey.PrivateKey): Transport.HostKeySigner => ({
  blob: key.publicKey.blob,
  algorithms: PublicKey.signatureAlgorithms(key.publicKey).filter((a) => a !== "ssh-rsa"),
  sign: (data, algorithm) => key.sign(data, algorithm)
})

/** The variables of a key's `environment=` options that `permitUserEnvironment` lets through. */
const permittedEnvironment = (
  environment: Readonly<Record<string, string>>,
  permit: ServeOptions["permitUserEnvironment"]
): Readonly<Record<string, string>> => {
  if (permit === true) return environment
  if (permit === undefined || permit === false) return {}
  return Object.fromEntries(Object.entries(environment).filter(([name]) => permit(name)))
}

/** Session handlers whose sessions see `environment` (a key's `environment=` options) over what the client sent. */
const withEnvironment = (handlers: ServerSession.SessionHandlers, environment: Readonly<Record<string, string>>): ServerSession.SessionHandlers => {
  if (Object.keys(environment).length === 0) return handlers
  const wrap = <A>(handler: SessionHandler<A> | undefined): SessionHandler<A> | undefined =>
    handler === undefined ? undefined : (session, arg) => handler({ ...session, env: { ...session.env, ...environment } }, arg)
  const subsystems = handlers.subsystems === undefined
    ? undefined
    : Object.fromEntries(Object.entries(handlers.subsystems).map(([name, handler]) => [name, wrap(handler)!]))
  return { ...handlers, exec: wrap(handlers.exec), shell: wrap(handlers.shell), subsystems }
}

/** The forwarding policy's x11 when only the session's decision has a say. */
const allowX11 = () => Effect.succeed(true)

/** The two ends of a connection, as its sessions see them. */
export interface Endpoints {
  readonly remoteAddress: string
  readonly remotePort: number
  readonly localAddress?: string | undefined
  readonly localPort?: number | undefined
}

/** How a connection tells admission control what became of it (absent for `handle`). */
interface AdmissionTicket {
  readonly authenticated: () => void
  readonly closed: (penalty: PenaltyKind | undefined) => ReturnType<Admission.Admission["closed"]>
}

/** What every connection of a server shares, and how one is served. */
const prepare = (options: ServeOptions) =>
  Effect.gen(function*() {
    const algorithms = yield* Transport.core(() => Algorithms.resolve(options.algorithms ?? {}, { compression: Compression.serverOffer() }))
    const signers = options.hostKeys.map(hostKeySigner)
    const loginGraceMs = millis(options.auth.loginGraceTime, ServerAuth.DEFAULT_LOGIN_GRACE_TIME_MS)
    // the failure delay's per-user jitter is keyed by a secret of this server
    const timingSecret = globalThis.crypto.getRandomValues(new Uint8Array(32))
    const connections = new Set<Connection.Connection>()
    let shuttingDown = false
    const emit = (event: ServerEvent) => options.onEvent ? options.onEvent(event) : Effect.void
    const sessionHandlers: ServerSession.SessionHandlers = options.sftp === undefined
      ? options.session ?? {}
      : { ...options.session, subsystems: { ...options.session?.subsystems, sftp: options.sftp } }

    const handle = (socket: Socket.Socket, endpoints: Endpoints, ticket: AdmissionTicket | undefined) =>
      Effect.gen(function*() {
        const { remoteAddress, remotePort } = endpoints
        yield* Metric.update(Telemetry.serverConnections, 1)
        yield* emit({ _tag: "Connected", remoteAddress, remotePort })
        // what the connection's end says about its source (sshd's penalty classes)
        let authenticated = false
        let attempted = false
        let graceExceeded = false
        yield* Effect.scoped(Effect.gen(function*() {
          let transport: Transport.Transport | undefined
          const preauth = Effect.gen(function*() {
            const t = yield* Transport.make(socket, { role: "server", algorithms, hostKeys: signers, limits: options.transportLimits })
            transport = t
            const authed = yield* ServerAuth.authenticate(t, { ...options.auth, loginGraceTime: 0 }, { remoteAddress, remotePort }, {
              onAttempt: () => {
                attempted = true
              },
              timingSecret
            })
            return { transport: t, authed }
          })
          // one login grace time, as sshd's, from the TCP accept to the end of authentication
          const { transport: authedTransport, authed } = yield* loginGraceMs <= 0 ? preauth : Effect.timeoutOrElse(preauth, {
            duration: loginGraceMs,
            orElse: () =>
              Effect.suspend(() => {
                graceExceeded = true
                const timeout = (message: string) => SshError.make(new SshError.Timeout({ message }))
                return transport === undefined
                  ? Effect.fail(timeout("login grace time exceeded before the key exchange finished"))
                  : Effect.andThen(
                    transport.disconnect(N.DisconnectReason.NO_MORE_AUTH_METHODS_AVAILABLE, "login grace time exceeded"),
                    Effect.fail(timeout("login grace time exceeded"))
                  )
              })
          })
          authenticated = true
          ticket?.authenticated()
          yield* emit({ _tag: "Authenticated", remoteAddress, user: authed.user, methods: authed.methods })
          // a user certificate or the key's authorized_keys options restrict the connection (both, combined)
          const restrictions = authed.restrictions ?? KeyOptions.unrestricted
          let connectionOpenChannel: Connection.Connection["openChannel"] | undefined
          const openChannel: Connection.Connection["openChannel"] = (channelType, data, flow) =>
            Effect.suspend(() => connectionOpenChannel!(channelType, data, flow))
          const decide = sessionHandlers.decide
          const connectionPeer: Extensions.ConnectionPeer = {
            user: authed.user,
            remoteAddress,
            remotePort,
            localAddress: endpoints.localAddress,
            localPort: endpoints.localPort,
            openChannel
          }
          const peer: ServerSession.SessionPeer = {
            ...connectionPeer,
            forceCommand: restrictions.forceCommand,
            // the session's decision, when there is one, replaces AllowAgentForwarding
            agentForwarding: (options.agentForwarding === true || decide?.agentForwarding !== undefined) && restrictions.agentForwarding
              ? AgentForwarding.listen((channelType) => openChannel(channelType))
              : undefined,
            x11Forwarding: (request) => Effect.suspend(() => forwarding.x11(request))
          }
          // without permit-pty no decision can grant a pty
          const handlers: ServerSession.SessionHandlers = withEnvironment(
            restrictions.pty ? sessionHandlers : { ...sessionHandlers, allowPty: false, decide: { ...decide, pty: undefined } },
            permittedEnvironment(restrictions.environment, options.permitUserEnvironment)
          )
          const forwardingPolicy = options.forwarding ?? {}
          const forwarding = yield* ServerForwarding.make(
            // a session's x11 decision stands on its own when the policy has no say of its own
            decide?.x11 !== undefined && forwardingPolicy.x11 === undefined ? { ...forwardingPolicy, x11: allowX11 } : forwardingPolicy,
            {
              user: authed.user,
              permitted: restrictions.portForwarding,
              x11Permitted: restrictions.x11Forwarding,
              permitOpen: restrictions.permitOpen,
              permitListen: restrictions.permitListen,
              openChannel: (channelType, data) => openChannel(channelType, data)
            }
          )
          const connection = yield* Connection.make(authedTransport, {
            windowSize: options.windowSize,
            windowLimit: options.windowLimit,
            maxPacket: options.maxPacket,
            maxChannels: options.maxChannels ?? DEFAULT_MAX_CHANNELS,
            onChannelOpen: (incoming) => {
              if (incoming.channelType === "session") {
                return Effect.flatMap(incoming.accept(), (channel) => ServerSession.serve(channel, peer, handlers))
              }
              const custom = Extensions.channelHandler(options.channels, incoming.channelType)
              return forwarding.onChannelOpen(incoming) ??
                (custom !== undefined
                  // a handler that throws costs its channel, not the connection's reading fiber
                  ? Effect.suspend(() => custom(incoming, connectionPeer))
                  : incoming.reject(N.ChannelOpenFailure.ADMINISTRATIVELY_PROHIBITED, `${incoming.channelType} channels are not allowed`))
            },
            onGlobalRequest: (name, data) => {
              const custom = Extensions.globalRequestHandler(options.globalRequests, name)
              return forwarding.onGlobalRequest(name, data) ??
                (custom !== undefined ? Extensions.runGlobalRequest(() => custom(data, connectionPeer)) : Effect.succeed(undefined))
            }
          })
          connectionOpenChannel = connection.openChannel
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
          Effect.onExit((exit) =>
            Effect.suspend(() => {
              const ours = shuttingDown || (Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause))
              const penalty = authenticated || ours ? undefined : penaltyFor(exit, graceExceeded, attempted)
              const activated = ticket?.closed(penalty)
              return Effect.andThen(
                emit({ _tag: "Closed", remoteAddress, remotePort, error: closeError(exit) }),
                activated === undefined ? Effect.void : emit({
                  _tag: "PenaltyActivated",
                  addressBlock: activated.block.label,
                  penalty: activated.kind,
                  reason: activated.reason,
                  duration: Duration.millis(activated.remaining)
                })
              )
            })
          ),
          Effect.ignore
        )
      })

    return {
      handle,
      connections,
      emit,
      shutDown: () => {
        shuttingDown = true
      }
    }
  })

/**
 * Starts listening; the server runs until the scope closes.
 *
 * @example
 * ```ts
 * const server = yield* SshServer.serve({
 *   port: 0,
 *   hostKeys: [hostKey],
 *   auth: { publicKey: ({ key }) => Effect.succeed(PublicKey.equals(key, userKey.publicKey)) },
 *   session: { exec: (session, command) => Effect.as(Effect.orDie(session.write(`ran ${command}\n`)), 0) }
 * })
 * ```
 */
export const serve = (options: ServeOptions): Effect.Effect<SshServer, SshError.SshError, Scope.Scope> =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const { handle: serveConnection, connections, emit, shutDown } = yield* prepare(options)
    const admission = Admission.make(yield* Transport.core(() => admissionConfig(options)))
    const refusals = new RefusalLog<Refusal>(millis(options.refusalEventInterval, Duration.toMillis(DEFAULT_REFUSAL_EVENT_INTERVAL)))
    const now = () => performance.now()
    const fibers = new Set<Fiber.Fiber<void>>()
    let shuttingDown = false

    const server = net.createServer({ pauseOnConnect: true, noDelay: true })
    const context = yield* Effect.context<never>()
    const runInBackground = (effect: Effect.Effect<void>) => {
      const fiber = Effect.runForkWith(context)(effect)
      fibers.add(fiber)
      fiber.addObserver(() => fibers.delete(fiber))
    }
    const refusedEvent = (refusal: Refusal, suppressed: number): ServerEvent => ({ _tag: "Refused", ...refusal, suppressed })
    const flushRefusals = (reason: Admission.RefusalReason, final = false) =>
      Effect.suspend(() => {
        const report = final ? refusals.drain(reason, now()) : refusals.flush(reason, now())
        return report === undefined ? Effect.void : emit(refusedEvent(report.refusal, report.suppressed))
      })
    const reportRefusal = (refusal: Refusal) => {
      const recorded = refusals.record(refusal.reason, refusal, now())
      if (recorded._tag === "Report") runInBackground(emit(refusedEvent(recorded.refusal, recorded.suppressed)))
      else if (recorded.flushAt !== undefined) {
        // a millisecond late, so the flush never comes before the interval's end
        runInBackground(Effect.andThen(Effect.sleep(Math.max(0, Math.ceil(recorded.flushAt - now())) + 1), flushRefusals(refusal.reason)))
      }
    }
    server.on("connection", (conn) => {
      const remoteAddress = conn.remoteAddress
      // already gone (reset before we got to it): nothing to admit
      if (remoteAddress === undefined || shuttingDown) {
        conn.destroy()
        return
      }
      const decision = admission.admit(remoteAddress, now(), Math.random)
      if (decision._tag === "Refused") {
        refuse(conn)
        reportRefusal({ remoteAddress, remotePort: conn.remotePort ?? 0, reason: decision.reason, detail: decision.detail })
        return
      }
      const { ticket } = decision
      const endpoints = { remoteAddress: ticket.address, remotePort: conn.remotePort ?? 0, localAddress: conn.localAddress, localPort: conn.localPort }
      runInBackground(Effect.ensuring(
        serveConnection(acceptedTcp(conn), endpoints, {
          authenticated: () => admission.authenticated(ticket),
          closed: (penalty) => admission.closed(ticket, penalty, now())
        }),
        // a fiber interrupted before its connection's scope opened still gives its place back
        Effect.sync(() => void admission.closed(ticket, undefined, now()))
      ))
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
        shutDown()
        // refusals not reported yet are reported now
        yield* Effect.forEach(
          ["PerSourcePenalties", "MaxStartups", "PerSourceMaxStartups", "MaxConnections"] as const,
          (reason) => flushRefusals(reason, true),
          { discard: true }
        )
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
      connectionCount: admission.connections,
      unauthenticatedCount: admission.unauthenticated,
      channelCount: () => [...connections].reduce((n, c) => n + c.channelCount(), 0)
    } satisfies SshServer
  })

/**
 * Serves one SSH connection over a socket of any kind (a connection accepted elsewhere, inetd style; a channel of
 * another SSH connection, `Bridge.channelSocket`; an in-memory pair): the same protocol, authentication, sessions,
 * SFTP and forwarding as `serve`, without listening or admission control (which need the listening socket).
 * Completes when the connection ends; interrupting it closes the connection.
 *
 * @example
 * ```ts
 * const net = yield* NodeSocket.makeNet({ host: "10.0.0.7", port: 2222 })
 * yield* SshServer.handle(net, {
 *   hostKeys: [hostKey],
 *   auth: { publicKey: ({ key }) => Effect.succeed(PublicKey.equals(key, userKey.publicKey)) }
 * }, { remoteAddress: "10.0.0.7", remotePort: 2222 })
 * ```
 */
export const handle = (
  socket: Socket.Socket,
  options: Omit<ServeOptions, "host" | "port">,
  endpoints: Endpoints = { remoteAddress: "unknown", remotePort: 0 }
): Effect.Effect<void, SshError.SshError> =>
  // the transport's sealed packets are the library's: a socket of someone else's is handed them for good
  Effect.flatMap(prepare(options), ({ handle: serveOne }) => serveOne(ownedOrHandedOver(socket), endpoints, undefined))

/** A refused connection, as its `Refused` event reports it. */
interface Refusal {
  readonly remoteAddress: string
  readonly remotePort: number
  readonly reason: Admission.RefusalReason
  readonly detail: string
}

/** The error a connection ended with; none for an orderly end or the server's own shutdown (interruption). */
const closeError = (exit: Exit.Exit<unknown, unknown>): SshError.SshError | undefined => {
  if (Exit.isSuccess(exit) || Cause.hasInterruptsOnly(exit.cause)) return undefined
  return SshError.fromCauseOrInternal(exit.cause)
}
