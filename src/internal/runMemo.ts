/**
 * A memo of what one run reads from files: parsed identity files and
 * known_hosts contents, keyed by path, so that a run over many hosts (the
 * CLI's `pexec`) reads and parses each file once instead of once per host.
 * Off unless a run provides one (`RunMemo`); a fresh memo per run, so a file
 * that changes between runs is read again. Writers through us (known_hosts
 * additions) `invalidate` their file, and a read that started before a write
 * is not remembered.
 *
 * @internal
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"

/** @internal */
export interface RunMemo {
  readonly entries: Map<string, unknown>
  /** Bumped by every invalidation: a read that saw it change is not stored. */
  generation: number
}

/** @internal */
export const make = (): RunMemo => ({ entries: new Map(), generation: 0 })

/** The run's memo; `undefined` (the default) remembers nothing. @internal */
export const RunMemo = Context.Reference<RunMemo | undefined>("effect-ssh/internal/RunMemo", { defaultValue: () => undefined })

/**
 * `load` once per run and `key` (its successes; failures are not remembered).
 *
 * @internal
 */
export const memoized = <A, E, R>(key: string, load: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.flatMap(RunMemo, (memo) => {
    if (memo === undefined) return load
    if (memo.entries.has(key)) return Effect.succeed(memo.entries.get(key) as A)
    const generation = memo.generation
    return Effect.map(load, (value) => {
      if (memo.generation === generation) memo.entries.set(key, value)
      return value
    })
  })

/**
 * Forgets what is remembered under keys starting with `prefix` (a file that was written).
 *
 * @internal
 */
export const invalidate = (prefix: string): Effect.Effect<void> =>
  Effect.flatMap(RunMemo, (memo) =>
    Effect.sync(() => {
      if (memo === undefined) return
      memo.generation++
      for (const key of [...memo.entries.keys()]) if (key.startsWith(prefix)) memo.entries.delete(key)
    }))
