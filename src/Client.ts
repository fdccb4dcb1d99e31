/**
 * `SshClient.connect`: an authenticated SSH connection as a scoped resource.
 * One `connectTimeout` covers the TCP connect, the key exchange and
 * authentication; keepalive is on by default; closing the scope sends
 * DISCONNECT and closes the socket and every channel opened through it.
 *
 * @example
 * ```ts
 * import { Effect, Redacted } from "effect"
 * import { Auth, HostKeys, NodeSsh, SshClient } from "effect-ssh"
 *
 * const program = Effect.gen(function*() {
 *   const ssh = yield* SshClient.connect({
 *     host: "example.com", username: "deploy",
 *     auth: [Auth.privateKeyFile("~/.ssh/id_ed25519")],
 *     hostKeys: HostKeys.knownHosts()
 *   })
 *   const { stdout } = yield* ssh.run("uname -a")
 * })
 * program.pipe(Effect.scoped, Effect.provide(NodeSsh.layer), NodeRuntime.runMain)
 * ```
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import type * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import type * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Semaphore from "effect/Semaphore"
import type * as FileSystem from "effect/FileSystem"
import * as Scope from "effect/Scope"
import type * as Socket from "effect/socket/Socket"
import * as SshError from "./SshError.ts"
import * as OptionSchemas from "./internal/optionSchemas.ts"
import * as Located from "./internal/located.ts"
import * as Telemetry from "./internal/telemetry.ts"
import { ownedOrHandedOver } from "./internal/netSocket.ts"
import * as Transport from "./Transport/Transport.ts"
import * as Algorithms from "./Transport/Algorithms.ts"
import * as Compression from "./Transport/Compression.ts"
import type { Negotiated } from "./Transport/Negotiation.ts"
import * as ClientAuth from "./Auth/ClientAuth.ts"
import * as AgentForwarding from "./Auth/AgentForwarding.ts"
import * as Certificate from "./Auth/Certificate.ts"
import type { HostKeyPolicy } from "./Auth/HostKeys.ts"
import * as PublicKey from "./Auth/PublicKey.ts"
import * as Connection from "./Channel/Connection.ts"
import * as ClientForwarding from "./Forwarding/ClientForwarding.ts"
import * as Extensions from "./Server/Extensions.ts"
import * as ForwardingMessages from "./Forwarding/Messages.ts"
import * as X11Client from "./Forwarding/X11Client.ts"
import * as Session from "./Channel/Session.ts"
import * as SftpClient from "./Sftp/SftpClient.ts"
import * as Jump from "./Config/Jump.ts"

/**
 * Opens byte streams to hosts. `NodeSsh.layer` provides TCP; tests and
 * tunnels (ProxyJump) can provide others.
 *
 * @example
 * ```ts
 * const tcp = Layer.succeed(SshClient.Connector)({ connect: (host, port) => NodeSocket.makeNet({ host, port }) })
 * ```
 */
export class Connector extends Context.Service<Connector, {
  readonly connect: (host: string, port: number) => Effect.Effect<Socket.Socket, SshError.SshError>
}>()("effect-ssh/Connector") {}

/** Options of `connect`. Names follow ssh_config where one exists. */
export interface ConnectOptions {
  readonly host: string
  readonly port?: number | undefined
  readonly username: string
  /** Methods to try, in order of preference (OpenSSH picks the first the server allows, then the next...). */
  readonly auth: ReadonlyArray<ClientAuth.AuthMethod>
  /** How to trust the server's key. Required: there is no accept-anything default. */
  readonly hostKeys: HostKeyPolicy
  /** Algorithm preferences, as lists or in OpenSSH syntax ("+aes128-ctr", "-*-sha1", "^chacha20-poly1305@openssh.com"). */
  readonly algorithms?: Algorithms.AlgorithmOptions | undefined
  /**
   * ssh_config's PubkeyAcceptedAlgorithms, in OpenSSH's list syntax (`+`, `-`, `^`, wildcards) over OpenSSH 9's
   * defaults (`ClientAuth.publicKeyAlgorithmDefaults`): the algorithms keys may be offered with; a key none of
   * whose algorithms is accepted is not offered (named in `AuthFailed.tried`). Absent: every key is offered, RSA
   * with the best rsa-sha2 the server lists.
   *
   * @example
   * ```ts
   * const ssh = yield* SshClient.connect({ ...options, publicKeyAlgorithms: "+ssh-rsa" }) // an old server wanting SHA-1 RSA
   * ```
   */
  readonly publicKeyAlgorithms?: string | ReadonlyArray<string> | undefined
  /**
   * Compression (`ssh -C`): offer `zlib@openssh.com,zlib,none`, as OpenSSH's
   * `Compression yes`, instead of `none` (default false). `algorithms.compression`
   * is resolved against that list.
   */
  readonly compression?: boolean | undefined
  /** One timeout over TCP connect, key exchange and authentication (default 30 s). */
  readonly connectTimeout?: Duration.Input | undefined
  /** ServerAliveInterval: probe a silent server this often (default 15 s; 0 disables). */
  readonly keepaliveInterval?: Duration.Input | undefined
  /** ServerAliveCountMax: unanswered probes before the connection is declared dead (default 3). */
  readonly keepaliveCountMax?: number | undefined
  /** RekeyLimit: bytes (default 1 GiB) and time (default 1 hour). */
  readonly rekeyBytes?: number | undefined
  readonly rekeyInterval?: Duration.Input | undefined
  /** Channel window and max packet we grant the server. */
  readonly windowSize?: number | undefined
  /**
   * Largest a channel's window grows to, doubling from `windowSize` while the consumer keeps up over a long
   * path (default: no growth). Over a 50 ms round trip 2 MiB carries ~40 MB/s, 16 MiB ~100-150 MB/s (measured);
   * memory per channel stays bounded by it. Off by default: on loopback against sshd a large window measured slower.
   */
  readonly windowLimit?: number | undefined
  readonly maxPacket?: number | undefined
  /** The transport's bounds on what the server can cost us (`Transport.defaultLimits`). */
  readonly transportLimits?: Partial<Transport.TransportLimits> | undefined
  /** Called with each authentication banner. */
  readonly onBanner?: ((message: string) => Effect.Effect<void>) | undefined
  /**
   * Channel types of the application's own that the server may open, by name (paramiko's `Transport.accept`,
   * asyncssh's `SSHClient` channel hooks): the handler gets the CHANNEL_OPEN as a value and accepts or rejects
   * it; the channel lives in the handler's scope. The types the client serves itself (`forwarded-tcpip`,
   * `forwarded-streamlocal@openssh.com`, `x11`, `auth-agent@openssh.com`) never reach a handler; any other type
   * without one is refused.
   *
   * @example
   * ```ts
   * const ssh = yield* SshClient.connect({
   *   ...options,
   *   channels: {
   *     "events@example.com": (incoming) =>
   *       Effect.flatMap(incoming.accept(), (channel) => Stream.runForEach(channel.stdout, (chunk) => Console.log(chunk)))
   *   }
   * })
   * ```
   */
  readonly channels?: Readonly<Record<string, (incoming: Connection.IncomingChannel) => Effect.Effect<void, SshError.SshError, Scope.Scope>>> | undefined
  /**
   * Global requests from the server, by name: `true` answers success, reply data success with that data, `false`
   * failure. A name without a handler (OpenSSH's `hostkeys-00@openssh.com` among them) is answered with failure
   * when the server wants an answer.
   *
   * @example
   * ```ts
   * const ssh = yield* SshClient.connect({ ...options, globalRequests: { "ping@example.com": () => Effect.succeed(true) } })
   * ```
   */
  readonly globalRequests?: Readonly<Record<string, (data: Uint8Array) => Effect.Effect<boolean | Uint8Array>>> | undefined
  /** Run over this byte stream instead of dialing host:port (ProxyJump, ProxyCommand, tests). */
  readonly socket?: Socket.Socket | undefined
  /**
   * ForwardAgent: `true` forwards the agent at `SSH_AUTH_SOCK`, a string the
   * agent at that socket, to the sessions of this connection (default off).
   */
  readonly forwardAgent?: boolean | string | undefined
  /**
   * SetEnv / SendEnv: variables every session of this connection sends (exec, shell, subsystem); a session's
   * own `env` wins over them. Servers accept only those their AcceptEnv allows.
   */
  readonly env?: Readonly<Record<string, string>> | undefined
}

/** What was negotiated and learned while connecting. */
export interface ConnectionInfo {
  readonly host: string
  readonly port: number
  readonly username: string
  readonly serverVersion: string
  readonly hostKey: PublicKey.PublicKey
  /** The host certificate the server presented (`hostKey` is the key it certifies). */
  readonly hostCertificate?: Certificate.Certificate | undefined
  readonly algorithms: Negotiated
  readonly banners: ReadonlyArray<string>
  readonly authMethods: ReadonlyArray<string>
}

/**
 * An authenticated connection.
 *
 * @example
 * ```ts
 * const r = yield* ssh.run("echo hi")       // { stdout: "hi\n", exitCode: 0, ... }
 * const proc = yield* ssh.exec("cat")        // scoped SshProcess
 * ```
 */
export interface SshConnection {
  readonly info: ConnectionInfo
  /** Runs a command to completion and collects its output (pyssh's `Result`). */
  readonly run: (
    command: string,
    options?: Session.SessionOptions & { readonly stdin?: Uint8Array | string | undefined }
  ) => Effect.Effect<Session.RunResult, SshError.SshError>
  /** Starts a command; it lives until the scope closes (pyssh's `LazyResult`). */
  readonly exec: (command: string, options?: Session.SessionOptions) => Effect.Effect<Session.SshProcess, SshError.SshError, Scope.Scope>
  /** Starts the login shell. */
  readonly shell: (options?: Session.SessionOptions) => Effect.Effect<Session.SshProcess, SshError.SshError, Scope.Scope>
  /** Starts an SFTP session on the "sftp" subsystem; it ends (channel closed) when the scope closes. */
  readonly sftp: (options?: SftpClient.SftpClientOptions) => Effect.Effect<SftpClient.SftpClient, SshError.SshError, Scope.Scope>
  /** Starts a subsystem (e.g. "sftp"). */
  readonly subsystem: (name: string, options?: Session.SessionOptions) => Effect.Effect<Session.SshProcess, SshError.SshError, Scope.Scope>
  /** Opens a raw channel of any type. */
  readonly openChannel: (channelType: string, data?: Uint8Array) => Effect.Effect<Connection.SshChannel, SshError.SshError, Scope.Scope>
  /** Sends a global request. */
  readonly globalRequest: (name: string, data: Uint8Array, wantReply: boolean) => Effect.Effect<Uint8Array | undefined, SshError.SshError>
  /**
   * A connection to `host`:`port` (or the Unix socket `path`) made by the server (`direct-tcpip`): an
   * `effect/socket` Socket, closed with the scope. Pass it as `socket` to `SshClient.connect` to reach a host
   * behind this one (ProxyJump), or to any client that takes a Socket.
   *
   * @example
   * ```ts
   * const socket = yield* ssh.forwardOut({ host: "db.internal", port: 22 })
   * const inner = yield* SshClient.connect({ host: "db.internal", username: "me", socket, auth, hostKeys })
   * ```
   */
  readonly forwardOut: ClientForwarding.ClientForwarding["forwardOut"]
  /**
   * Local forwarding (`ssh -L`): listens at `listen` (port 0: any free port, see `address`) and tunnels each
   * connection to `to` through the server. Closing the scope stops listening and closes the tunnels.
   *
   * @example
   * ```ts
   * const { address } = yield* ssh.forwardLocal({ listen: { port: 0 }, to: { host: "localhost", port: 5432 } })
   * ```
   */
  readonly forwardLocal: ClientForwarding.ClientForwarding["forwardLocal"]
  /**
   * Remote forwarding (`ssh -R`): asks the server to listen at `bind` (port 0: the server picks, see `address`).
   * With `to`, each connection is piped to that local target; without, they arrive on `connections`. Closing the
   * scope cancels the server's listener.
   *
   * @example
   * ```ts
   * const { address } = yield* ssh.forwardRemote({ bind: { port: 0 }, to: { host: "127.0.0.1", port: 3000 } })
   * ```
   */
  readonly forwardRemote: ClientForwarding.ClientForwarding["forwardRemote"]
  /**
   * Dynamic forwarding (`ssh -D`): a SOCKS4, SOCKS4a and SOCKS5 (CONNECT, no authentication) server at
   * `listen`, each connection tunnelled to the target it names (domain names resolved by the server).
   *
   * @example
   * ```ts
   * const { address } = yield* ssh.socks({ listen: { port: 1080 } })
   * ```
   */
  readonly socks: ClientForwarding.ClientForwarding["socks"]
  /** Re-runs the key exchange now. */
  readonly rekey: Effect.Effect<void, SshError.SshError>
  /** Sends SSH_MSG_IGNORE (padding the peer discards; hides keystroke timing, keeps middleboxes awake). */
  readonly sendIgnore: (data?: Uint8Array | number) => Effect.Effect<void, SshError.SshError>
  /** Fails with the reason once the connection is dead. */
  readonly closed: Deferred.Deferred<never, SshError.SshError>
  /** Transport counters. */
  readonly stats: () => Transport.TransportStats
  /** The underlying multiplexer. */
  readonly connection: Connection.Connection
}

const DEFAULT_CONNECT_TIMEOUT = Duration.seconds(30)
/**
 * The SFTP channel's window and packets. The window bounds unrequested data only: replies never exceed the
 * requests in flight, which the client bounds (`SftpClientOptions.maxInFlight` blocks). 32 MiB lets 128 blocks of
 * 255 KiB cross a long path in one round trip.
 */
const SFTP_FLOW = { windowSize: 32 * 1024 * 1024, maxPacket: 128 * 1024 } as const
const DEFAULT_KEEPALIVE = Duration.seconds(15)

/** The scalar fields of `ConnectOptions`, checked before anything is opened. */
const CheckedOptions = Schema.Struct({
  host: Schema.String.check(Schema.makeFilter((h: string) => h.length > 0 || "expected a host name or address")),
  port: Schema.optional(OptionSchemas.Port),
  username: Schema.String,
  connectTimeout: Schema.optional(OptionSchemas.DurationInput),
  keepaliveInterval: Schema.optional(OptionSchemas.DurationInput),
  keepaliveCountMax: Schema.optional(OptionSchemas.IntBetween(0, 1_000_000)),
  rekeyBytes: Schema.optional(OptionSchemas.IntBetween(1, Number.MAX_SAFE_INTEGER)),
  rekeyInterval: Schema.optional(OptionSchemas.DurationInput),
  windowSize: Schema.optional(OptionSchemas.IntBetween(1, 0xffff_ffff)),
  maxPacket: Schema.optional(OptionSchemas.IntBetween(1, 0xffff_ffff))
})

/**
 * Connects, verifies the host key, authenticates, and returns the connection.
 *
 * @example
 * ```ts
 * const ssh = yield* SshClient.connect({ host: "127.0.0.1", port: 2222, username: "me",
 *   auth: [Auth.password("secret")], hostKeys: HostKeys.fingerprint("SHA256:...") })
 * ```
 */
export const connect = (
  options: ConnectOptions
): Effect.Effect<SshConnection, SshError.SshError, Scope.Scope | Connector | FileSystem.FileSystem> =>
  Effect.gen(function*() {
    yield* OptionSchemas.validate(CheckedOptions, "connect options", options)
    const port = options.port ?? 22
    const timeout = options.connectTimeout ?? DEFAULT_CONNECT_TIMEOUT
    const context = yield* Effect.context<FileSystem.FileSystem>()
    const x11 = X11Client.make()
    const establish = Effect.gen(function*() {
      yield* Effect.logDebug(`connecting to ${options.host} port ${port} as ${options.username}`)
      const algorithms = yield* Transport.core(() =>
        Algorithms.resolve(options.algorithms ?? {}, { compression: Compression.clientOffer(options.compression === true) })
      )
      const publicKeyAlgorithms = options.publicKeyAlgorithms === undefined
        ? undefined
        : yield* Transport.core(() => ClientAuth.resolvePublicKeyAlgorithms(options.publicKeyAlgorithms!))
      const preferred = options.hostKeys.preferredAlgorithms && options.algorithms?.hostKey === undefined
        ? yield* options.hostKeys.preferredAlgorithms(options.host, port)
        : []
      // a policy may ask for host certificates (a known @cert-authority) even though they are not in the defaults
      const hostKeyOrder = [
        ...preferred.filter((a) => algorithms.hostKey.includes(a) || Certificate.isCertificateAlgorithm(a)),
        ...algorithms.hostKey
      ]
      // the sealed packets are the library's: written to a socket of someone else's, they are handed over to it
      const socket = ownedOrHandedOver(options.socket ?? (yield* Effect.flatMap(Connector, (c) => c.connect(options.host, port))))
      const agentSocket = options.forwardAgent === undefined || options.forwardAgent === false
        ? undefined
        : yield* AgentForwarding.localSocket(options.forwardAgent)
      let hostKey: PublicKey.PublicKey | undefined
      let hostCertificate: Certificate.Certificate | undefined
      const kexStarted = yield* Clock.currentTimeMillis
      const transport = yield* Transport.make(socket, {
        role: "client",
        limits: options.transportLimits,
        algorithms: { ...algorithms, hostKey: [...new Set(hostKeyOrder)] },
        rekeyBytes: options.rekeyBytes,
        rekeyIntervalMs: options.rekeyInterval === undefined ? undefined : Duration.toMillis(Duration.fromInputUnsafe(options.rekeyInterval)),
        verifyHostKey: (blob, algorithm) =>
          Effect.flatMap(Transport.core(() => hostKeyOf(blob, algorithm)), ({ key, certificate }) => {
            hostKey = key
            hostCertificate = certificate
            return Effect.andThen(
              Effect.logDebug(`server host key: ${algorithm} ${PublicKey.fingerprint(key)}`),
              Effect.provideContext(options.hostKeys.verify({ host: options.host, port, key, algorithm, certificate }), context)
            )
          })
      }).pipe(Effect.withSpan("ssh.kex"))
      yield* Metric.update(Telemetry.kexDuration, Duration.millis((yield* Clock.currentTimeMillis) - kexStarted))
      yield* annotateNegotiated(transport.negotiated())
      yield* Effect.logDebug(`connected to ${options.host}:${port} (${transport.peerVersion}); ${describeNegotiated(transport.negotiated())}`)
      // what the connection moved is counted when it ends
      yield* Effect.addFinalizer(() => Effect.suspend(() => {
        const stats = transport.stats()
        return Effect.andThen(Metric.update(Telemetry.bytesIn, stats.bytesIn), Metric.update(Telemetry.bytesOut, stats.bytesOut))
      }))
      const outcome = yield* Effect.provideContext(
        ClientAuth.authenticate(transport, { username: options.username, methods: options.auth, onBanner: options.onBanner, publicKeyAlgorithms }),
        context
      ).pipe(
        Effect.tapError((e) => e.reason._tag === "AuthFailed" ? Metric.update(Telemetry.authFailures, 1) : Effect.void),
        Effect.withSpan("ssh.auth")
      )
      // channels the server opens: forwarded connections go to their forwardings, agent channels to the agent,
      // X11 channels to the display (when a session asked for it)
      const globalRequests = options.globalRequests
      const incoming = ClientForwarding.router(ClientForwarding.byChannelType({
        ...options.channels,
        [ForwardingMessages.ChannelType.forwardedTcpip]: undefined,
        [ForwardingMessages.ChannelType.forwardedStreamlocal]: undefined,
        [ForwardingMessages.ChannelType.x11]: x11.onChannelOpen,
        [AgentForwarding.CHANNEL_TYPE]: agentSocket === undefined ? undefined : AgentForwarding.acceptChannels(agentSocket)
      }))
      const connection = yield* Connection.make(transport, {
        windowSize: options.windowSize,
        windowLimit: options.windowLimit,
        maxPacket: options.maxPacket,
        keepaliveIntervalMs: Duration.toMillis(Duration.fromInputUnsafe(options.keepaliveInterval ?? DEFAULT_KEEPALIVE)),
        keepaliveCountMax: options.keepaliveCountMax ?? 3,
        onChannelOpen: incoming.onChannelOpen,
        onGlobalRequest: globalRequests === undefined ? undefined : (name, data) => {
          const handler = Extensions.globalRequestHandler(globalRequests, name)
          return handler === undefined ? Effect.succeed(undefined) : Extensions.runGlobalRequest(() => handler(data))
        }
      })
      return {
        transport,
        connection,
        outcome,
        hostKey: hostKey!,
        hostCertificate,
        forwarding: agentSocket !== undefined,
        tunnels: incoming.forwarding(connection)
      }
    })
    const { transport, connection, outcome, hostKey, hostCertificate, forwarding, tunnels } = yield* establish.pipe(
      // the socket layer does not know where it was connecting to: say it
      Effect.mapError((e) =>
        e.reason._tag === "ConnectFailed" && e.reason.host === undefined
          ? SshError.make(SshError.connectFailed({ host: options.host, port }, e.reason.cause))
          : e
      ),
      Effect.timeoutOrElse({
        duration: timeout,
        orElse: () =>
          Effect.fail(SshError.make(new SshError.Timeout({ message: `connecting to ${options.host}:${port} took longer than ${Duration.format(Duration.fromInputUnsafe(timeout))}` })))
      }),
      Effect.withSpan("ssh.connect", { attributes: { "ssh.host": options.host, "ssh.port": port, "ssh.user": options.username } })
    )
    const info: ConnectionInfo = {
      host: options.host,
      port,
      username: options.username,
      serverVersion: transport.peerVersion,
      hostKey,
      hostCertificate,
      algorithms: transport.negotiated(),
      banners: outcome.banners,
      authMethods: outcome.methods
    }
    // with ForwardAgent every session asks for the agent
    const sessions = forwarding ? AgentForwarding.requestingSessions(connection) : connection
    // SFTP moves bulk data both ways with many requests in flight: a larger window and packets pay off
    const openSftp = (sftpOptions?: SftpClient.SftpClientOptions): Effect.Effect<SftpClient.SftpClient, SshError.SshError, Scope.Scope> =>
      Effect.flatMap(
        Session.subsystem(connection, "sftp", { flow: SFTP_FLOW }),
        (proc) => Effect.provideContext(SftpClient.make(proc, sftpOptions, openSftp(sftpOptions)), context)
      )
    const sessionForwarding: Session.SessionForwarding = { x11: x11.prepare }
    const withEnv = sessionEnv(options.env)
    const where = Located.whereOf({ ...options, port })
    const ssh: SshConnection = Located.locateOperations({
      info,
      run: (command, runOptions) => Session.run(sessions, command, withEnv(runOptions), sessionForwarding),
      exec: (command, execOptions) => Session.exec(sessions, command, withEnv(execOptions), sessionForwarding),
      shell: (shellOptions) => Session.shell(sessions, withEnv(shellOptions), sessionForwarding),
      subsystem: (name, subOptions) => Session.subsystem(sessions, name, withEnv(subOptions), sessionForwarding),
      sftp: openSftp,
      openChannel: connection.openChannel,
      globalRequest: connection.globalRequest,
      ...tunnels,
      rekey: Effect.withSpan(transport.rekey, "ssh.rekey"),
      sendIgnore: (data) =>
        transport.sendIgnore(
          typeof data === "number" ? globalThis.crypto.getRandomValues(new Uint8Array(Math.min(data, 65536))) : data ?? new Uint8Array(0)
        ),
      closed: yield* Located.locateClosed(connection.closed, where.destination),
      stats: transport.stats,
      connection
    } satisfies SshConnection, where, { exec: true, shell: true, subsystem: true, sftp: { open: true } })
    return ssh
  }).pipe(
    // every error of a connection names where it was going
    Effect.mapError((error) => SshError.withDestination(error, SshError.formatDestination(options)))
  )

/**
 * Connects to a destination as `ssh` names it: an ssh_config alias (`user@alias`), resolved through
 * `~/.ssh/config` and `/etc/ssh/ssh_config` (or `configFile`, ssh's `-F`), with HostName, Port, User, the
 * identities (agent, IdentityFile with its certificates), the known_hosts policy, the timers and algorithms,
 * ForwardAgent, SetEnv/SendEnv — and ProxyJump (every hop resolved, verified and authenticated on its own, the
 * hops closed with the scope after the destination) or ProxyCommand. Explicit options win over the
 * configuration; `config` takes command-line options (`ssh -o`, `-J` is `"ProxyJump a,b"`). See `Jump`.
 *
 * @example
 * ```ts
 * const ssh = yield* SshClient.connectTo("db")                                  // Host db in ~/.ssh/config
 * const viaJump = yield* SshClient.connectTo("deploy@db", { config: ["ProxyJump bastion"], connectTimeout: "10 seconds" })
 * ```
 */
export const connectTo = (
  destination: string,
  options?: Jump.ConnectToOptions
): Effect.Effect<SshConnection, SshError.SshError, Scope.Scope | Connector | FileSystem.FileSystem> => Jump.connectTo(destination, options)

/** A session's options with the connection's environment under its own (`ConnectOptions.env`). */
const sessionEnv = (env: Readonly<Record<string, string>> | undefined) =>
<O extends Session.SessionOptions>(options: O | undefined): O | undefined =>
  env === undefined ? options : { ...options, env: { ...env, ...options?.env } } as O

/** The negotiated algorithms in one line, as `ssh -v` reports them. */
const describeNegotiated = (n: Negotiated): string =>
  `kex ${n.kex}, host key ${n.hostKey}, cipher ${n.cipherClientToServer}${n.macClientToServer === "" ? "" : ` ${n.macClientToServer}`}` +
  `, compression ${n.compressionClientToServer}${n.strictKex ? ", strict kex" : ""}`

/** The negotiated algorithms, as attributes of the current span (`ssh.connect`). */
const annotateNegotiated = (negotiated: Negotiated) =>
  Effect.annotateCurrentSpan({
    "ssh.kex": negotiated.kex,
    "ssh.host_key_algorithm": negotiated.hostKey,
    "ssh.cipher": negotiated.cipherClientToServer,
    "ssh.mac": negotiated.macClientToServer,
    "ssh.compression": negotiated.compressionClientToServer
  })

/** The key a host presented: a plain key, or the key certified by its host certificate. */
const hostKeyOf = (
  blob: Uint8Array,
  algorithm: string
): { readonly key: PublicKey.PublicKey; readonly certificate?: Certificate.Certificate | undefined } => {
  if (!Certificate.isCertificateAlgorithm(algorithm)) return { key: PublicKey.fromBlob(blob) }
  const certificate = Certificate.fromBlob(blob)
  if (!PublicKey.isKeyType(certificate.key.type)) {
    throw new SshError.KeyParseFailed({ message: `a ${certificate.type} cannot be a host key` })
  }
  return { key: certificate.key as PublicKey.PublicKey, certificate }
}

/**
 * A connection made on first use and again after it is lost: concurrent first users share one attempt; a use
 * after the connection died connects anew (retried by `reconnect`, a Schedule, when given). pyssh's
 * `new_session(connect_on_init=False)`, and what `SshClient.layer` provides.
 *
 * @example
 * ```ts
 * const ssh = yield* SshClient.lazy(options)       // no socket yet
 * const r = yield* ssh.run("uptime")               // connects now
 * ```
 */
export interface LazyConnection {
  /** The live connection, connecting if there is none. */
  readonly get: Effect.Effect<SshConnection, SshError.SshError>
  readonly run: (
    command: string,
    options?: Session.SessionOptions & { readonly stdin?: Uint8Array | string | undefined }
  ) => Effect.Effect<Session.RunResult, SshError.SshError>
  readonly exec: (command: string, options?: Session.SessionOptions) => Effect.Effect<Session.SshProcess, SshError.SshError, Scope.Scope>
  readonly sftp: (options?: SftpClient.SftpClientOptions) => Effect.Effect<SftpClient.SftpClient, SshError.SshError, Scope.Scope>
  /** Whether a connection is open now (no attempt is made). */
  readonly isConnected: Effect.Effect<boolean>
}

/**
 * A lazy connection living as long as the scope (see `LazyConnection`).
 *
 * @example
 * ```ts
 * const ssh = yield* SshClient.lazy(options, { reconnect: Schedule.recurs(5) })
 * ```
 */
export const lazy = (
  options: ConnectOptions,
  lazyOptions: { readonly reconnect?: Schedule.Schedule<unknown, SshError.SshError> | undefined } = {}
): Effect.Effect<LazyConnection, SshError.SshError, Scope.Scope | Connector | FileSystem.FileSystem> =>
  Effect.gen(function*() {
    yield* OptionSchemas.validate(CheckedOptions, "connect options", options)
    const scope = yield* Effect.scope
    const context = yield* Effect.context<Connector | FileSystem.FileSystem>()
    const lock = yield* Semaphore.make(1)
    let current: { readonly ssh: SshConnection; readonly scope: Scope.Closeable } | undefined
    const alive = () => current !== undefined && !Deferred.isDoneUnsafe(current.ssh.closed)
    const attempt = Effect.gen(function*() {
      const child = yield* Scope.fork(scope)
      const made = yield* Effect.exit(Scope.provide(connect(options), child).pipe(Effect.provideContext(context)))
      if (made._tag === "Failure") {
        yield* Scope.close(child, made)
        return yield* Effect.failCause(made.cause)
      }
      return { ssh: made.value, scope: child }
    })
    const get = lock.withPermit(Effect.suspend(() => {
      if (alive()) return Effect.succeed(current!.ssh)
      const previous = current
      current = undefined
      const connectAgain = lazyOptions.reconnect === undefined ? attempt : Effect.retry(attempt, lazyOptions.reconnect)
      return Effect.andThen(
        previous === undefined ? Effect.void : Scope.close(previous.scope, Exit.void),
        Effect.map(connectAgain, (made) => {
          current = made
          return made.ssh
        })
      )
    }))
    return {
      get,
      run: (command, runOptions) => Effect.flatMap(get, (ssh) => ssh.run(command, runOptions)),
      exec: (command, execOptions) => Effect.flatMap(get, (ssh) => ssh.exec(command, execOptions)),
      sftp: (sftpOptions) => Effect.flatMap(get, (ssh) => ssh.sftp(sftpOptions)),
      isConnected: Effect.sync(alive)
    } satisfies LazyConnection
  })

/**
 * The client as a service: a `LazyConnection` provided by `SshClient.layer(options)` or `layerConfig(config)`.
 *
 * @example
 * ```ts
 * const program = Effect.gen(function*() {
 *   const ssh = yield* SshClient.SshClient
 *   return yield* ssh.run("uptime")
 * })
 * program.pipe(Effect.provide(SshClient.layer(options)), Effect.provide(NodeSsh.layer))
 * ```
 */
export class SshClient extends Context.Service<SshClient, LazyConnection>()("effect-ssh/SshClient") {}

/**
 * A layer of `SshClient` for these options; nothing connects until the first use, and the connection closes with
 * the layer.
 *
 * @example
 * ```ts
 * const live = SshClient.layer({ host: "build.example.com", username: "ci", auth: [Auth.agent()], hostKeys: HostKeys.knownHosts() })
 * ```
 */
export const layer = (
  options: ConnectOptions,
  lazyOptions?: { readonly reconnect?: Schedule.Schedule<unknown, SshError.SshError> | undefined }
): Layer.Layer<SshClient, SshError.SshError, Connector | FileSystem.FileSystem> => Layer.effect(SshClient, lazy(options, lazyOptions))

/**
 * `layer` with its options read from Effect's `Config` (environment variables, a config provider of yours).
 *
 * @example
 * ```ts
 * const live = SshClient.layerConfig(Config.all({ host: Config.String("SSH_HOST"), username: Config.String("SSH_USER") }).pipe(
 *   Config.map((c): SshClient.ConnectOptions => ({ ...c, auth: [Auth.agent()], hostKeys: HostKeys.knownHosts() }))
 * ))
 * ```
 */
export const layerConfig = (
  config: Config.Config<ConnectOptions>,
  lazyOptions?: { readonly reconnect?: Schedule.Schedule<unknown, SshError.SshError> | undefined }
): Layer.Layer<SshClient, SshError.SshError | Config.ConfigError, Connector | FileSystem.FileSystem> =>
  Layer.effect(SshClient, Effect.flatMap(config, (options: ConnectOptions) => lazy(options, lazyOptions)))
