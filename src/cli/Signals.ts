/**
 * Which signal ended the CLI, for its exit code: `NodeRuntime.runMain`
 * interrupts the program on SIGINT and SIGTERM without saying which, and a
 * command ended by a signal exits 128 + its number, quietly, as a shell
 * reports it (130 for Ctrl-C, 143 for SIGTERM).
 *
 * @since 0.1.0
 */
import * as os from "node:os"

/** The signals `runMain` interrupts on. */
const watched: ReadonlyArray<NodeJS.Signals> = ["SIGINT", "SIGTERM"]

/** What `watchSignals` gives: the first signal received, and a way to stop watching. */
export interface SignalWatch {
  readonly received: () => NodeJS.Signals | undefined
  readonly stop: () => void
}

/**
 * Starts recording SIGINT and SIGTERM (alongside `runMain`'s own handlers,
 * which do the interrupting).
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
