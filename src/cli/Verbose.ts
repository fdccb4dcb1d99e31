/**
 * `-v`, `-vv`, `-vvv`: the library's protocol events on stderr as `ssh -v`
 * prints them. `-v` shows Debug logs (`debug1:` connecting, algorithms
 * chosen, the host key, each authentication method and its outcome, channel
 * opens, exit status); `-vv` and `-vvv` add Trace logs (`debug2:` every packet
 * sent and received, by message type). Other logs keep their usual logger.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as References from "effect/References"
import { terminalLine } from "../internal/terminalText.ts"

/**
 * The `debugN: message` line of a Debug or Trace log (`undefined` for other
 * levels), escaped for the terminal: messages may quote the peer.
 *
 * @example
 * ```ts
 * debugLine("Debug", ["auth: publickey → Success"]) // "debug1: auth: publickey → Success\n"
 * debugLine("Info", ["hello"]) // undefined
 * ```
 */
export const debugLine = (level: string, message: unknown): string | undefined => {
  if (level !== "Debug" && level !== "Trace") return undefined
  const parts = Array.isArray(message) ? message : [message]
  const text = parts.map((part) => typeof part === "string" ? part : String(part)).join(" ")
  return `debug${level === "Debug" ? 1 : 2}: ${terminalLine(text)}\n`
}

/** Debug and Trace logs as `debugN:` lines on stderr; the others to the default logger. */
const stderrDebugLogger = Logger.make((options) => {
  const line = debugLine(options.logLevel, options.message)
  if (line === undefined) Logger.defaultLogger.log(options)
  else process.stderr.write(line)
})

/**
 * Runs `effect` at the verbosity of `-v` given `level` times (0: as is).
 *
 * @example
 * ```ts
 * runExec(args).pipe(withVerbosity(args.verbose ?? 0))
 * ```
 */
export const withVerbosity = (level: number) => <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  level <= 0 ? effect : effect.pipe(
    Effect.provideService(References.MinimumLogLevel, level === 1 ? "Debug" : "Trace"),
    Effect.provide(Logger.layer([stderrDebugLogger]))
  )

/**
 * Counts `-v` flags, bundled or not (`-v -v`, `-vv`): how many there are, or `undefined` when `arg` is not one.
 *
 * @example
 * ```ts
 * verboseFlags("-vvv") // 3
 * verboseFlags("-x") // undefined
 * ```
 */
export const verboseFlags = (arg: string): number | undefined => /^-v+$/.test(arg) ? arg.length - 1 : undefined
