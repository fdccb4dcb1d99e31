/**
 * Connecting by ssh_config alias, through ProxyJump hops or a ProxyCommand.
 *
 * The destination is resolved as `ssh` resolves it (command-line options,
 * then `~/.ssh/config` and `/etc/ssh/ssh_config`, or one `-F` file). With
 * `ProxyJump a,b` the first hop is itself resolved and connected (its own
 * HostName, User, Port, IdentityFile, known hosts, and its own ProxyJump or
 * ProxyCommand); every next hop, then the destination, is reached through a
 * `direct-tcpip` channel of the previous one and checks its own host key and
 * authenticates with its own credentials. The hops live in the caller's
 * scope and close in reverse order after the destination. A hop that fails
 * is named: `ConnectFailed` "jump host me@bastion:22: ..." with the hop's
 * own `SshError` as `cause`. With `ProxyCommand` the connection is the
 * command's stdio (`ProxyCommand.spawn`).
 *
 * @example
 * ```ts
 * const ssh = yield* Jump.connectTo("db")                              // ProxyJump in ~/.ssh/config
 * const viaTwo = yield* Jump.connectTo("db", { config: ["ProxyJump b1,b2"] })   // as ssh -J b1,b2 db
 * ```
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as FileSystem from "effect/FileSystem"
import * as Scope from "effect/Scope"
import * as EffectSocket from "effect/socket/Socket"
import type * as Socket from "effect/socket/Socket"
import * as Client from "../Client.ts"
import * as RunMemo from "../internal/runMemo.ts"
import * as SshError from "../SshError.ts"
import * as ConnectConfig from "./ConnectConfig.ts"
import * as ProxyCommand from "./ProxyCommand.ts"
import * as SshConfig from "./SshConfig.ts"

/** Options of `connectTo`: where the configuration comes from, and what wins over it. */
export interface ConnectToOptions extends ConnectConfig.Overrides {
  /** `-F`: read only this file (`"none"`: none); default `~/.ssh/config` then `/etc/ssh/ssh_config`. */
  readonly configFile?: string | undefined
  /**
   * Command-line options (`ssh -o`), one `Keyword value` each, read before the files (so they win) and for the
   * destination only, as ssh passes them to no jump host: `["ProxyJump b1,b2", "ForwardAgent yes"]`.
   */
  readonly config?: ReadonlyArray<string> | undefined
  /** Facts about the local side (default `ConnectConfig.localContext()`). */
  readonly context?: Partial<SshConfig.Context> | undefined
  /** Options for every jump host (the destination's `overrides` are the destination's only). */
  readonly jumpHosts?: ConnectConfig.Overrides | undefined
}

/** How deep jump hosts may name jump hosts of their own before we call it a loop. */
const MAX_DEPTH = 8

/** Where `loadConfig` reads from, and the user and port that win over the destination's User and Port (`-l`, `-p`). */
export interface ConfigSource {
  readonly configFile?: string | undefined
  readonly config?: ReadonlyArray<string> | undefined
  readonly context?: Partial<SshConfig.Context> | undefined
  readonly username?: string | undefined
  readonly port?: number | undefined
}

/** A loaded configuration: the destination's resolution and a jump host's. */
export interface LoadedConfig {
  /** The destination (`alias`, `user@alias`), with the command-line options and the given user and port winning. */
  readonly resolve: (destination: string) => SshConfig.ResolvedConfig
  /** A jump host: the files only, its `user@` and `:port` winning (as ssh runs `ssh -l user -p port host`). */
  readonly resolveJumpHost: (hop: SshConfig.JumpHost) => SshConfig.ResolvedConfig
}

/**
 * The files of a configuration, with the command-line options as a file of
 * their own first, and a resolver for any destination.
 *
 * @example
 * ```ts
 * const config = yield* Jump.loadConfig({ configFile: "./ssh_config", config: ["User deploy"] })
 * config.resolve("web").user // "deploy"
 * ```
 */
export const loadConfig = (
  options: ConfigSource = {}
): Effect.Effect<LoadedConfig, SshError.SshError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    // under a `RunMemo` (pexec) the process's context and the files are looked at once per run
    const context = options.context === undefined
      ? yield* RunMemo.memoized("config:localContext", Effect.sync(() => ConnectConfig.localContext()))
      : ConnectConfig.localContext(options.context)
    const loadOptions = {
      file: options.configFile,
      homeDirectory: context.homeDirectory,
      includeHome: context.environment.HOME ?? context.homeDirectory
    }
    const loaded = yield* RunMemo.memoized(`config:${JSON.stringify(loadOptions)}`, SshConfig.load(loadOptions))
    const commandLine = yield* Effect.try({
      try: () => SshConfig.parse((options.config ?? []).join("\n"), "command line"),
      catch: SshError.fromUnknown
    })
    const resolving = (files: ReadonlyArray<SshConfig.ConfigFile>, destination: string, local: SshConfig.Context) =>
      SshConfig.resolve(files, destination, local, loaded.included)
    const destinationContext: SshConfig.Context = {
      ...context,
      user: options.username ?? context.user,
      port: options.port ?? context.port
    }
    return {
      resolve: (destination) => resolving([commandLine, ...loaded.files], destination, destinationContext),
      // ssh runs each jump host as `ssh -l user -p port host`: the files only, the hop's user and port winning
      resolveJumpHost: (hop) => resolving(loaded.files, hop.host, { ...context, user: hop.user, port: hop.port })
    }
  })

/**
 * Connects to an ssh_config destination (`alias`, `user@alias`), through
 * its ProxyJump hops or ProxyCommand; the overrides win over the
 * configuration for the destination (see the module comment).
 * Keywords we do not support are logged as warnings, once each.
 *
 * @example
 * ```ts
 * const ssh = yield* Jump.connectTo("build", { configFile: "./ssh_config", connectTimeout: "10 seconds" })
 * const { stdout } = yield* ssh.run("uname -a")
 * ```
 */
export const connectTo = (
  destination: string,
  options: ConnectToOptions = {}
): Effect.Effect<Client.SshConnection, SshError.SshError, Scope.Scope | Client.Connector | FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const { configFile: _file, config: _config, context: _context, jumpHosts: _jumpHosts, ...overrides } = options
    const config = yield* loadConfig(options)
    return yield* router(config, options).establish(yield* resolving(() => config.resolve(destination)), overrides, 0)
  })

/**
 * The way to a resolved destination, opened in the scope: a `direct-tcpip`
 * channel of its last ProxyJump hop (the hops connected first), its
 * ProxyCommand's stdio, or `undefined` when it is dialed directly. What
 * `connectTo` connects over; the CLI passes it as `socket` to `SshClient.connect`.
 *
 * @example
 * ```ts
 * const config = yield* Jump.loadConfig({ config: ["ProxyJump b1,b2"] })
 * const resolved = config.resolve("db")
 * const socket = yield* Jump.socketTo(config, resolved)
 * const ssh = yield* SshClient.connect({ ...(yield* ConnectConfig.connectOptions(resolved)), socket })
 * ```
 */
export const socketTo = (
  config: LoadedConfig,
  resolved: SshConfig.ResolvedConfig,
  options: RouteOptions = {}
): Effect.Effect<Socket.Socket | undefined, SshError.SshError, Scope.Scope | Client.Connector | FileSystem.FileSystem> =>
  Effect.map(router(config, options).path(resolved, 0), (route) => route?.socket)

/**
 * `socketTo` opened now in a scope of its own, which the returned Socket
 * owns: the route (jump connections, a ProxyCommand child) closes when the
 * socket's reader is released, as `SshClient.connect` releases it when the
 * connection ends or fails. For callers that build `ConnectOptions` without
 * a scope at hand (the CLI); a socket never read keeps its route open until
 * the process ends. `undefined` for a destination dialed directly.
 *
 * @example
 * ```ts
 * const socket = yield* Jump.routedSocket(config, resolved)
 * const ssh = yield* SshClient.connect({ ...options, socket })
 * ```
 */
export const routedSocket = (
  config: LoadedConfig,
  resolved: SshConfig.ResolvedConfig,
  options: RouteOptions = {}
): Effect.Effect<Socket.Socket | undefined, SshError.SshError, Client.Connector | FileSystem.FileSystem> =>
  Effect.gen(function*() {
    if (resolved.proxyJump === undefined && resolved.proxyCommand === undefined) return undefined
    const route = yield* Scope.make()
    const close = Scope.close(route, Exit.void)
    const socket = yield* Scope.provide(socketTo(config, resolved, options), route).pipe(Effect.onError(() => close))
    if (socket === undefined) {
      yield* close
      return undefined
    }
    return EffectSocket.make({
      // added before the reader is acquired, so that it runs after the reader's own release
      reader: Effect.andThen(Effect.addFinalizer(() => close), socket.reader),
      writer: socket.writer
    })
  })

/** What the way to a destination needs beyond the configuration. */
export type RouteOptions = Pick<ConnectToOptions, "context" | "jumpHosts" | "passphrase" | "hashKnownHosts" | "environment"> & {
  /** Ignored keywords already reported (each is logged once per set). */
  readonly reported?: Set<string> | undefined
}

/** The way to a destination: a socket, and the ProxyCommand behind it if any. */
interface Route {
  readonly socket: Socket.Socket
  readonly proxy: ProxyCommand.Proxy | undefined
}

type Requirements = Scope.Scope | Client.Connector | FileSystem.FileSystem

const router = (
  config: LoadedConfig,
  options: RouteOptions
) => {
  const reported = options.reported ?? new Set<string>()
  const context = ConnectConfig.localContext(options.context)
  const hopOverrides: ConnectConfig.Overrides = {
    passphrase: options.passphrase,
    hashKnownHosts: options.hashKnownHosts,
    environment: options.environment,
    ...options.jumpHosts
  }

  const establish = (
    resolved: SshConfig.ResolvedConfig,
    own: ConnectConfig.Overrides,
    depth: number
  ): Effect.Effect<Client.SshConnection, SshError.SshError, Requirements> =>
    Effect.gen(function*() {
      yield* ConnectConfig.reportIgnored(resolved, reported)
      const route = yield* path(resolved, depth)
      const connectOptions = yield* ConnectConfig.connectOptions(resolved, own)
      return yield* Client.connect(route === undefined ? connectOptions : { ...connectOptions, socket: route.socket }).pipe(
        Effect.catch((e) => {
          const proxy = route?.proxy
          if (proxy === undefined) return Effect.fail(e)
          return Effect.flatMap(proxy.awaitExit, (exited) =>
            Effect.fail(exited === undefined ? e : namedAfter(`ProxyCommand "${proxy.command}" ended (${exited})`, resolved, e)))
        })
      )
    })

  /** The socket to the destination: a channel of the last hop, a ProxyCommand's stdio, or none (TCP). */
  const path = (
    resolved: SshConfig.ResolvedConfig,
    depth: number
  ): Effect.Effect<Route | undefined, SshError.SshError, Requirements> =>
    Effect.gen(function*() {
      if (resolved.proxyJump !== undefined) {
        if (depth >= MAX_DEPTH) {
          return yield* Effect.fail(SshError.make(new SshError.ConfigParseError({
            message: `ProxyJump of ${resolved.host} nests more than ${MAX_DEPTH} jump hosts deep (a loop?)`
          })))
        }
        let previous: Client.SshConnection | undefined
        for (const hop of resolved.proxyJump) {
          const hopConfig = yield* resolving(() => config.resolveJumpHost(hop))
          const name = hopName(hop, hopConfig)
          previous = yield* (previous === undefined
            ? establish(hopConfig, hopOverrides, depth + 1)
            : viaJumpHost(previous, hopConfig)).pipe(Effect.mapError((e) => namedAfter(`jump host ${name}`, hopConfig, e)))
        }
        const last = previous!
        const socket = yield* last.forwardOut({ host: resolved.hostName, port: resolved.port }).pipe(
          Effect.mapError((e) =>
            namedAfter(`${resolved.hostName}:${resolved.port} through jump host ${last.info.username}@${last.info.host}`, resolved, e)
          )
        )
        return { socket, proxy: undefined }
      }
      if (resolved.proxyCommand !== undefined) {
        yield* reportProxyCommand(resolved)
        const command = ProxyCommand.expand(resolved.proxyCommand, ProxyCommand.tokens(resolved, context))
        const proxy = yield* ProxyCommand.spawn(command)
        return { socket: proxy.socket, proxy }
      }
      return undefined
    })

  /** A hop after the first: its socket is a channel of the previous hop; its own ProxyJump is not followed. */
  const viaJumpHost = (previous: Client.SshConnection, hopConfig: SshConfig.ResolvedConfig) =>
    Effect.gen(function*() {
      yield* ConnectConfig.reportIgnored(hopConfig, reported)
      const socket = yield* previous.forwardOut({ host: hopConfig.hostName, port: hopConfig.port })
      const connectOptions = yield* ConnectConfig.connectOptions(hopConfig, hopOverrides)
      return yield* Client.connect({ ...connectOptions, socket })
    })

  return { establish, path }
}

const reportProxyCommand = (resolved: SshConfig.ResolvedConfig) =>
  Effect.logDebug(`connecting to ${resolved.host} through ProxyCommand ${resolved.proxyCommand}`)

/**
 * A resolution as an effect: resolving throws `ConfigParseError` (an unset
 * `${VAR}`, an unknown token, an Include too deep), a typed failure here.
 *
 * @example
 * ```ts
 * const resolved = yield* Jump.resolving(() => config.resolve("web"))
 * ```
 */
export const resolving = (resolve: () => SshConfig.ResolvedConfig): Effect.Effect<SshConfig.ResolvedConfig, SshError.SshError> =>
  Effect.try({ try: resolve, catch: SshError.fromUnknown })

/** `user@host:port` of a jump host, as written (the name) with its resolved user and port. */
const hopName = (hop: SshConfig.JumpHost, resolved: SshConfig.ResolvedConfig): string =>
  `${resolved.user}@${hop.host.includes(":") ? `[${hop.host}]` : hop.host}:${resolved.port}`

/**
 * A failure on the way to the destination as `ConnectFailed` naming where it
 * happened; the original error is the cause.
 */
const namedAfter = (where: string, resolved: SshConfig.ResolvedConfig, error: SshError.SshError): SshError.SshError =>
  SshError.make(new SshError.ConnectFailed({
    // the hop's own destination is `where` already (by the name the configuration gave it)
    message: `${where}: ${SshError.make(error.reason).message}`,
    host: resolved.hostName,
    port: resolved.port,
    cause: error
  }))
