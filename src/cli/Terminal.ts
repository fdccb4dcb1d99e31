/**
 * The local terminal of an interactive session, as ssh's clientloop.c
 * handles it: raw mode as a scoped resource (restored whatever ends the
 * scope, and at process exit as a last resort), the window size and its
 * changes, and the escape sequences typed after a newline (`~.`, `~?`,
 * `~~`), recognised by a pure state machine.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Queue from "effect/Queue"
import type * as Requests from "../Channel/Requests.ts"

// --- escape sequences (pure) ---

/** ssh's default escape character, `~`. */
export const DEFAULT_ESCAPE_CHAR = 0x7e

/** Where the escape scanner is: at the start of a line (an escape may begin), and just after an escape character. */
export interface EscapeState {
  readonly atLineStart: boolean
  readonly pending: boolean
}

/** A session starts at the start of a line, as ssh's does. */
export const initialEscapeState: EscapeState = { atLineStart: true, pending: false }

/** What typed input amounts to: bytes for the remote side, or a request to this end. */
export type EscapeAction =
  | { readonly _tag: "Send"; readonly bytes: Uint8Array }
  | { readonly _tag: "Disconnect" }
  | { readonly _tag: "Help" }

const CR = 0x0d
const LF = 0x0a
const DOT = 0x2e
const QUESTION = 0x3f

/**
 * Scans typed bytes for escape sequences. An escape character is recognised
 * only at the start of a line and held back until the next byte decides:
 * `.` disconnects (the rest of the input is dropped), `?` asks for help,
 * the escape character again sends it once, anything else sends both.
 * Consecutive bytes to send come out as one `Send`.
 *
 * @example
 * ```ts
 * const text = (s: string) => new TextEncoder().encode(s)
 * scanEscapes(initialEscapeState, text("ls\r~."), DEFAULT_ESCAPE_CHAR).actions
 * // [{ _tag: "Send", bytes: "ls\r" }, { _tag: "Disconnect" }]
 * ```
 */
export const scanEscapes = (
  state: EscapeState,
  input: Uint8Array,
  escapeChar: number
): { readonly state: EscapeState; readonly actions: ReadonlyArray<EscapeAction> } => {
  const actions: Array<EscapeAction> = []
  let out: Array<number> = []
  const flush = () => {
    if (out.length > 0) actions.push({ _tag: "Send", bytes: Uint8Array.from(out) })
    out = []
  }
  let { atLineStart, pending } = state
  for (const byte of input) {
    if (pending) {
      pending = false
      if (byte === DOT) {
        flush()
        actions.push({ _tag: "Disconnect" })
        return { state: { atLineStart, pending }, actions }
      }
      if (byte === QUESTION) {
        flush()
        actions.push({ _tag: "Help" })
        continue // still at the start of a line: another escape may follow
      }
      if (byte !== escapeChar) out.push(escapeChar)
    } else if (atLineStart && byte === escapeChar) {
      pending = true
      continue
    }
    out.push(byte)
    atLineStart = byte === CR || byte === LF
  }
  flush()
  return { state: { atLineStart, pending }, actions }
}

/**
 * The help `~?` prints, for the given escape character, with the `\r\n`
 * line ends a terminal in raw mode needs.
 *
 * @example
 * ```ts
 * process.stderr.write(escapeHelp(DEFAULT_ESCAPE_CHAR))
 * ```
 */
export const escapeHelp = (escapeChar: number): string => {
  const e = escapeCharName(escapeChar)
  return [
    "Supported escape sequences:",
    ` ${e}.   - terminate connection`,
    ` ${e}?   - this message`,
    ` ${e}${e}   - send the escape character by typing it twice`,
    "(Note that escapes are only recognized immediately after newline.)",
    ""
  ].join("\r\n")
}

/**
 * How an escape character is shown: itself, or `^X` for a control character.
 *
 * @example
 * ```ts
 * escapeCharName(0x7e) // "~"
 * escapeCharName(29)   // "^]"
 * ```
 */
export const escapeCharName = (escapeChar: number): string =>
  escapeChar < 32 ? `^${String.fromCharCode(escapeChar + 64)}` : String.fromCharCode(escapeChar)

// --- the terminal itself (Node) ---

/**
 * Puts a terminal input in raw mode for the life of the scope: every key
 * (Ctrl-C included) reaches us as a byte, nothing is echoed. The previous
 * mode comes back when the scope closes — normal end, failure or
 * interruption — and, should the process exit first, at exit. Does nothing
 * on an input that is not a terminal.
 *
 * @example
 * ```ts
 * yield* Terminal.rawMode()   // inside Effect.scoped
 * ```
 */
export const rawMode = (input: NodeJS.ReadStream = process.stdin): Effect.Effect<void, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      if (input.isTTY !== true || input.isRaw) return undefined
      const restore = () => {
        if (input.isTTY === true && input.isRaw) input.setRawMode(false)
      }
      input.setRawMode(true)
      process.once("exit", restore)
      return restore
    }),
    (restore) =>
      Effect.sync(() => {
        if (restore === undefined) return
        process.off("exit", restore)
        restore()
      })
  )

const FALLBACK_SIZE: Requests.WindowSize = { columns: 80, rows: 24 }

/**
 * The terminal's size in characters, from the first of `outputs` that is a
 * terminal (80×24 when none is).
 *
 * @example
 * ```ts
 * windowSize() // { columns: 100, rows: 30 }
 * ```
 */
export const windowSize = (
  outputs: ReadonlyArray<NodeJS.WriteStream> = [process.stdout, process.stderr]
): Requests.WindowSize => {
  const tty = outputs.find((o) => o.isTTY === true)
  if (tty === undefined) return FALLBACK_SIZE
  const [columns, rows] = tty.getWindowSize()
  return { columns, rows }
}

/**
 * The terminal's new sizes (SIGWINCH), as long as the stream is consumed;
 * empty when `output` is not a terminal.
 *
 * @example
 * ```ts
 * yield* Effect.forkScoped(Stream.runForEach(Terminal.resizes(), (size) => proc.resize(size)))
 * ```
 */
export const resizes = (output: NodeJS.WriteStream = process.stdout): Stream.Stream<Requests.WindowSize> =>
  output.isTTY !== true
    ? Stream.empty
    : Stream.callback<Requests.WindowSize>((queue) => {
      const onResize = () => void Queue.offerUnsafe(queue, windowSize([output]))
      return Effect.acquireRelease(
        Effect.sync(() => output.on("resize", onResize)),
        () => Effect.sync(() => output.off("resize", onResize))
      )
    }, { bufferSize: 1, strategy: "sliding" })
