/**
 * Which signal ended the CLI, for its exit code: `NodeRuntime.runMain`
 * interrupts the program on SIGINT and SIGTERM without saying which, and a
 * command ended by a signal exits 128 + its number, quietly, as a shell
 * reports it (130 for Ctrl-C, 143 for SIGTERM, 129 for a hangup).
 * `interruptOnHangup` makes SIGHUP (the terminal closed) interrupt the
 * program too, so that its finalizers run: Node would otherwise die on the
 * spot, leaving the terminal in raw mode and the connection unclosed.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as os from "node:os"

/** The signals recorded: `runMain`'s two and SIGHUP. */
const watched: ReadonlyArray<NodeJS.Signals> = ["SIGINT", "SIGTERM", "SIGHUP"]

/** What `watchSignals` gives: the first signal received, and a way to stop watching. */
export interface SignalWatch {
  readonly received: () => NodeJS.Signals | undefined
  readonly stop: () => void
}

/**
 * Starts recording SIGINT, SIGTERM and SIGHUP (alongside `runMain`'s own
 * handlers, which do the interrupting; for SIGHUP see `interruptOnHangup`).
 * Listening to SIGHUP keeps Node from dying of it: a program watching
 * signals must run under `interruptOnHangup`.
 *
 * @example
 * ```ts
 * const signals = watchSignals()
 * // ... in the teardown:
 * const signal = signals.received() // "SIGINT" after Ctrl-C
 * ```
 */
export const watchSignals = (): SignalWatch => {
  let first: NodeJS.Signals | undefined
  const listeners = watched.map((signal) => {
    const listener = () => {
      first ??= signal
    }
    process.on(signal, listener)
    return [signal, listener] as const
  })
  return {
    received: () => first,
    stop: () => listeners.forEach(([signal, listener]) => process.off(signal, listener))
  }
}

/**
 * The exit code for a process ended by `signal`: 128 + its number.
 *
 * @example
 * ```ts
 * signalExitCode("SIGINT")  // 130
 * signalExitCode("SIGTERM") // 143
 * ```
 */
export const signalExitCode = (signal: NodeJS.Signals): number => 128 + (os.constants.signals[signal] ?? 0)

/**
 * Runs `effect` until it ends or SIGHUP arrives; a hangup interrupts it
 * (its finalizers run).
 *
 * @example
 * ```ts
 * NodeRuntime.runMain(interruptOnHangup(program))
 * ```
 */
export const interruptOnHangup = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.raceFirst(
    effect,
    Effect.callback<never>((resume) => {
      const onHangup = () => resume(Effect.interrupt)
      process.once("SIGHUP", onHangup)
      return Effect.sync(() => void process.off("SIGHUP", onHangup))
    })
  )
