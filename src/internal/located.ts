/**
 * Errors and spans that say where they happened: the operations of a
 * connection (and of the processes, SFTP sessions and files opened through
 * it) with every `SshError` they fail with naming the connection's
 * destination, and every span they make carrying its host, port and user.
 *
 * @internal
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Sink from "effect/Sink"
import * as Stream from "effect/Stream"
import * as SshError from "../SshError.ts"

/** Where a connection goes: its `user@host:port`, and the span attributes saying the same. */
export interface Where {
  readonly destination: string
  readonly attributes: Readonly<Record<string, unknown>>
}

/**
 * The `Where` of connect options.
 *
 * @example
 * ```ts
 * whereOf({ host: "web1", port: 22, username: "me" }).destination // "me@web1:22"
 * ```
 */
export const whereOf = (target: { readonly host: string; readonly port?: number | undefined; readonly username: string }): Where => ({
  destination: SshError.formatDestination(target),
  attributes: { "ssh.host": target.host, "ssh.port": target.port ?? 22, "ssh.user": target.username }
})

/** What `locate` does to a failure: an `SshError` names the destination, anything else passes as is. */
const naming = (destination: string) => (error: unknown): unknown =>
  SshError.isSshError(error) ? SshError.withDestination(error, destination) : error

/**
 * A value whose failures name the destination: an Effect (its spans
 * annotated with `where.attributes` too) or a Stream with its errors mapped,
 * a Sink likewise, anything else returned as is.
 *
 * @example
 * ```ts
 * const exit = locateValue(proc.exit, whereOf(options))
 * ```
 */
export const locateValue = <A>(value: A, where: Where): A => {
  const name = naming(where.destination)
  if (Deferred.isDeferred(value)) return value
  if (Stream.isStream(value)) return Stream.mapError(value, name) as A
  if (Sink.isSink(value)) return Sink.mapError(value, name) as A
  if (Effect.isEffect(value)) return Effect.annotateSpans(Effect.mapError(value, name), where.attributes) as A
  return value
}

/**
 * A record of operations whose failures name the destination: each Effect,
 * Stream or Sink property, and each function's Effect or Stream result, is
 * mapped with `locateValue`; `deep` names the functions whose successful
 * result is itself such a record (a process, an SFTP client and its files)
 * to locate in turn.
 * Accessors are kept as they are, so live getters stay live.
 *
 * @example
 * ```ts
 * const ssh = locateOperations(connection, whereOf(options), { exec: true, sftp: { open: true } })
 * ```
 */
/** Which functions of a record give records to locate in turn (`true`, or which of theirs do). */
export interface Deep {
  readonly [name: string]: true | Deep | undefined
}

export const locateOperations = <T extends object>(operations: T, where: Where, deep: Deep = {}): T => {
  const located: Record<PropertyKey, unknown> = Object.create(Object.getPrototypeOf(operations))
  for (const [key, descriptor] of Object.entries(Object.getOwnPropertyDescriptors(operations))) {
    if (!("value" in descriptor)) {
      Object.defineProperty(located, key, descriptor)
      continue
    }
    const value: unknown = descriptor.value
    const nested = deep[key]
    const wrapped = typeof value === "function"
      ? (...args: Array<unknown>) => {
        const result = locateValue((value as (...args: Array<unknown>) => unknown).apply(operations, args), where)
        return nested !== undefined && Effect.isEffect(result) && !Stream.isStream(result)
          ? Effect.map(result, (made) =>
            typeof made === "object" && made !== null ? locateOperations(made, where, nested === true ? {} : nested) : made)
          : result
      }
      : locateValue(value, where)
    Object.defineProperty(located, key, { ...descriptor, value: wrapped })
  }
  return located as T
}

/**
 * A Deferred that completes as `closed` does, its error naming `destination`.
 * The fiber copying the outcome is detached: it must outlive the connection's
 * scope, whose closing is what completes `closed`.
 *
 * @example
 * ```ts
 * const closed = yield* locateClosed(connection.closed, "me@web1:22")
 * ```
 */
export const locateClosed = <A>(
  closed: Deferred.Deferred<A, SshError.SshError>,
  destination: string
): Effect.Effect<Deferred.Deferred<A, SshError.SshError>> =>
  Effect.gen(function*() {
    const located = yield* Deferred.make<A, SshError.SshError>()
    yield* Deferred.await(closed).pipe(
      Effect.mapError((error) => SshError.withDestination(error, destination)),
      Effect.exit,
      Effect.flatMap((exit) => Deferred.done(located, exit)),
      Effect.forkDetach
    )
    return located
  })
