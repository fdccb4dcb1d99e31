/**
 * Connections kept and shared by destination: `SshPool` opens one
 * connection per destination (host, port, user and the options that change
 * what a connection is), lends it to every caller at once, keeps it for an
 * idle time after the last one is done, and drops it as soon as it dies, so
 * that the next caller connects again. Built on Effect's `RcMap`.
 *
 * @example
 * ```ts
 * const pool = yield* SshPool.make({ idleTimeToLive: "1 minute" })
 * const results = yield* Effect.forEach(hosts, (host) => pool.run({ ...options, host }, "uptime"), { concurrency: 20 })
 * ```
 * @since 0.1.0
 */
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as FileSystem from "effect/FileSystem"
import * as RcMap from "effect/RcMap"
import type * as Scope from "effect/Scope"
import type * as Session from "./Channel/Session.ts"
import * as SshClient from "./Client.ts"
import type * as SshError from "./SshError.ts"

/** Options of a pool. */
export interface PoolOptions {
  /** How long a connection nobody uses is kept (default 30 s). */
  readonly idleTimeToLive?: Duration.Input | undefined
  /** Connections per destination, used in turn (default 1: SSH multiplexes channels over one). */
  readonly maxPerDestination?: number | undefined
}

/** A pool of connections. */
export interface SshPool {
  /** A connection to the destination of `options`, lent for the scope (shared with other callers). */
  readonly connection: (options: SshClient.ConnectOptions) => Effect.Effect<SshClient.SshConnection, SshError.SshError, Scope.Scope>
  /** Runs a command on a pooled connection. */
  readonly run: (
    options: SshClient.ConnectOptions,
    command: string,
    runOptions?: Parameters<SshClient.SshConnection["run"]>[1]
  ) => Effect.Effect<Session.RunResult, SshError.SshError>
  /** Connections open now (in use or idle). */
  readonly size: Effect.Effect<number>
}

/**
 * What makes two connect options the same destination: where, as whom, and the options that change the
 * connection (algorithms, limits); authentication and host-key policies are assumed equal for equal
 * destinations.
 */
export const destinationKey = (options: SshClient.ConnectOptions): string =>
  JSON.stringify([
    options.host,
    options.port ?? 22,
    options.username,
    options.algorithms ?? null,
    options.forwardAgent ?? false,
    options.windowSize ?? null,
    options.maxPacket ?? null
  ])

/**
 * A pool that lives as long as the scope: closing it closes every connection.
 *
 * @example
 * ```ts
 * const pool = yield* SshPool.make()
 * const ssh = yield* pool.connection(options) // scoped lease
 * ```
 */
export const make = (
  poolOptions: PoolOptions = {}
): Effect.Effect<SshPool, never, Scope.Scope | SshClient.Connector | FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const perDestination = Math.max(1, poolOptions.maxPerDestination ?? 1)
    /** The options each key was first asked with: what its lookup connects with. */
    const optionsByKey = new Map<string, SshClient.ConnectOptions>()
    const turns = new Map<string, number>()
    const map: RcMap.RcMap<string, SshClient.SshConnection, SshError.SshError> = yield* RcMap.make({
      lookup: (key: string) =>
        Effect.gen(function*() {
          const ssh = yield* SshClient.connect(optionsByKey.get(key)!)
          // a dead connection leaves the pool at once: the next caller gets a new one
          yield* Effect.forkScoped(Effect.ignore(Effect.andThen(Effect.exit(Deferred.await(ssh.closed)), RcMap.invalidate(map, key))))
          return ssh
        }),
      idleTimeToLive: poolOptions.idleTimeToLive ?? Duration.seconds(30)
    })

    const slotKey = (options: SshClient.ConnectOptions): string => {
      const destination = destinationKey(options)
      const turn = ((turns.get(destination) ?? -1) + 1) % perDestination
      turns.set(destination, turn)
      const key = `${destination}#${turn}`
      if (!optionsByKey.has(key)) optionsByKey.set(key, options)
      return key
    }

    const connection: SshPool["connection"] = (options) =>
      Effect.suspend(() => {
        const key = slotKey(options)
        return Effect.flatMap(RcMap.get(map, key), (ssh) =>
          // died between its death and the invalidation: connect again
          Deferred.isDoneUnsafe(ssh.closed) ? Effect.andThen(RcMap.invalidate(map, key), RcMap.get(map, key)) : Effect.succeed(ssh))
      })

    return {
      connection,
      run: (options, command, runOptions) => Effect.scoped(Effect.flatMap(connection(options), (ssh) => ssh.run(command, runOptions))),
      size: Effect.map(RcMap.keys(map), (keys) => [...keys].length)
    }
  })
