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
import type * as FileSystem from "effect/FileSystem"
import type * as Scope from "effect/Scope"
import type * as Socket from "effect/socket/Socket"
import * as Client from "../Client.ts"
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

/**
 * The files of a configuration, with the command-line options as a file of
 * their own first, and a resolver for any destination.
 *
 * @example
 * ```ts
 * const config = yield* loadConfig({ configFile: "./ssh_config", config: ["User deploy"] })
 * config.resolve("web").user // "deploy"
 * ```
 */
export const loadConfig = (
  options: Pick<ConnectToOptions, "configFile" | "config" | "context" | "username" | "port"> = {}
): Effect.Effect<
  {
    readonly resolve: (destination: string) => SshConfig.ResolvedConfig
    readonly resolveJumpHost: (hop: SshConfig.JumpHost) => SshConfig.ResolvedConfig
  },
  SshError.SshError,
  FileSystem.FileSystem
> =>
  Effect.gen(function*() {
    const context = ConnectConfig.localContext(options.context)
    const loaded = yield* SshConfig.load({
      file: options.configFile,
      homeDirectory: context.homeDirectory,
      includeHome: context.environment.HOME ?? context.homeDirectory
    })
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
    const { configFile: _file, config: _config, context: _context, jumpHosts, ...overrides } = options
    const config = yield* loadConfig(options)
    const reported = new Set<string>()
    const context = ConnectConfig.localContext(options.context)

    const establish = (
      resolved: SshConfig.ResolvedConfig,
      own: ConnectConfig.Overrides,
      depth: number
    ): Effect.Effect<Client.SshConnection, SshError.SshError, Scope.Scope | Client.Connector | FileSystem.FileSystem> =>
      Effect.gen(function*() {
        yield* ConnectConfig.reportUnsupported(resolved, reported)
        const socket = yield* path(resolved, depth)
        const connectOptions = yield* ConnectConfig.connectOptions(resolved, own)
        return yield* Client.connect(socket === undefined ? connectOptions : { ...connectOptions, socket })
      })

    const hopOverrides: ConnectConfig.Overrides = {
      passphrase: overrides.passphrase,
      hashKnownHosts: overrides.hashKnownHosts,
      environment: overrides.environment,
      ...jumpHosts
    }

    /** The socket to the destination: a channel of the last hop, a ProxyCommand's stdio, or none (TCP). */
    const path = (
      resolved: SshConfig.ResolvedConfig,
      depth: number
    ): Effect.Effect<Socket.Socket | undefined, SshError.SshError, Scope.Scope | Client.Connector | FileSystem.FileSystem> =>
      Effect.gen(function*() {
        if (resolved.proxyJump !== undefined) {
          if (depth >= MAX_DEPTH) {
            return yield* Effect.fail(SshError.make(new SshError.ConfigParseError({
              message: `ProxyJump of ${resolved.host} nests more than ${MAX_DEPTH} jump hosts deep (a loop?)`
            })))
          }
          let previous: Client.SshConnection | undefined
          for (const hop of resolved.proxyJump) {
            const hopConfig = config.resolveJumpHost(hop)
            const name = hopName(hop, hopConfig)
            previous = yield* (previous === undefined
              ? establish(hopConfig, hopOverrides, depth + 1)
              : viaJumpHost(previous, hopConfig, hopOverrides)).pipe(Effect.mapError((e) => namedAfter(`jump host ${name}`, hopConfig, e)))
          }
          const last = previous!
          return yield* last.forwardOut({ host: resolved.hostName, port: resolved.port }).pipe(
            Effect.mapError((e) => namedAfter(`${resolved.hostName}:${resolved.port} through jump host ${last.info.username}@${last.info.host}`, resolved, e))
          )
        }
        if (resolved.proxyCommand !== undefined) {
          const command = ProxyCommand.expand(resolved.proxyCommand, ProxyCommand.tokens(resolved, context))
          const proxy = yield* ProxyCommand.spawn(command)
          return proxy.socket
        }
        return undefined
      })

    /** A hop after the first: its socket is a channel of the previous hop; its own ProxyJump is not followed. */
    const viaJumpHost = (previous: Client.SshConnection, hopConfig: SshConfig.ResolvedConfig, own: ConnectConfig.Overrides) =>
      Effect.gen(function*() {
        yield* ConnectConfig.reportUnsupported(hopConfig, reported)
        const socket = yield* previous.forwardOut({ host: hopConfig.hostName, port: hopConfig.port })
        const connectOptions = yield* ConnectConfig.connectOptions(hopConfig, own)
        return yield* Client.connect({ ...connectOptions, socket })
      })

    return yield* establish(config.resolve(destination), overrides, 0)
  })

/** `user@host:port` of a jump host, as written (the name) with its resolved user and port. */
const hopName = (hop: SshConfig.JumpHost, resolved: SshConfig.ResolvedConfig): string =>
  `${resolved.user}@${hop.host.includes(":") ? `[${hop.host}]` : hop.host}:${resolved.port}`

/**
 * A failure on the way to the destination as `ConnectFailed` naming where it
 * happened; the original error is the cause.
 */
const namedAfter = (where: string, resolved: SshConfig.ResolvedConfig, error: SshError.SshError): SshError.SshError =>
  SshError.make(new SshError.ConnectFailed({
    message: `${where}: ${error.message}`,
    host: resolved.hostName,
    port: resolved.port,
    cause: error
  }))
