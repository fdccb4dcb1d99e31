/**
 * The session of `effect-ssh exec`: a command or the login shell, with our
 * stdin, stdout and stderr joined to it as ssh's clientloop.c joins them.
 * With a pty (ssh's RequestTTY: a shell on a terminal, `-t`, `-tt`; never
 * with `-T`) our terminal is put in raw mode so that every key reaches the
 * remote side, its size follows ours, and the escape character after a
 * newline gives `~.` (disconnect), `~?` (help) and `~~`; the terminal is
 * restored however the session ends. The exit code is the remote one.
 *
 * @since 0.1.0
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as Requests from "../Channel/Requests.ts"
import * as Session from "../Channel/Session.ts"
import * as SshError from "../SshError.ts"
import { terminalLine } from "../internal/terminalText.ts"
import type { RequestTty } from "./Args.ts"
import * as Terminal from "./Terminal.ts"

/** How the session is run, decided before it starts. */
export interface SessionPlan {
  /** Ask the server for a pty. */
  readonly pty: boolean
  /** Put our terminal in raw mode (a pty was requested and stdin is a terminal). */
  readonly raw: boolean
  /** Copy our stdin to the remote side (not with `-n`). */
  readonly forwardStdin: boolean
  /** The escape character, or undefined when escapes are off (no pty, or `-e none`). */
  readonly escapeChar: number | undefined
  /** ssh's notice when a pty was asked for but stdin is not a terminal. */
  readonly warning: string | undefined
}

/** What `planSession` decides from. */
export interface PlanInput {
  /** Undefined for the login shell. */
  readonly command: string | undefined
  readonly requestTty?: RequestTty | undefined
  readonly escapeChar?: number | "none" | undefined
  readonly noStdin: boolean
  readonly stdinIsTerminal: boolean
}

/**
 * Decides pty, raw mode, stdin and escapes as ssh.c does: a pty with `-t`
 * (or `RequestTTY yes`) or for a shell on a terminal, never with `-T`; on
 * an input that is not a terminal (or with `-n`) only `-tt` still asks,
 * otherwise ssh's "Pseudo-terminal will not be allocated" notice.
 *
 * @example
 * ```ts
 * planSession({ command: undefined, requestTty: undefined, escapeChar: undefined, noStdin: false, stdinIsTerminal: true })
 * // { pty: true, raw: true, forwardStdin: true, escapeChar: 126, warning: undefined }
 * ```
 */
export const planSession = (input: PlanInput): SessionPlan => {
  const mode = input.requestTty ?? "auto"
  let pty = mode === "yes" || mode === "force" || (mode === "auto" && input.command === undefined && input.stdinIsTerminal)
  let warning: string | undefined
  if ((!input.stdinIsTerminal || input.noStdin) && mode !== "force") {
    if (pty) warning = "Pseudo-terminal will not be allocated because stdin is not a terminal."
    pty = false
  }
  const raw = pty && input.stdinIsTerminal && !input.noStdin
  const escapeChar = pty && input.escapeChar !== "none" ? input.escapeChar ?? Terminal.DEFAULT_ESCAPE_CHAR : undefined
  return { pty, raw, forwardStdin: !input.noStdin, escapeChar, warning }
}

/**
 * The pty request for our terminal: `TERM` and its current size.
 *
 * @example
 * ```ts
 * yield* ssh.shell({ pty: ptyRequest() })
 * ```
 */
export const ptyRequest = (env: Readonly<Record<string, string | undefined>> = process.env): Requests.PtyRequest => ({
  term: env.TERM ?? "",
  ...Terminal.windowSize()
})

/**
 * Writes to a Node stream, waiting for `drain` when its buffer is full.
 *
 * @example
 * ```ts
 * yield* Stream.runForEach(proc.stdout, writeTo(process.stdout))
 * ```
 */
export const writeTo = (stream: NodeJS.WriteStream) => (chunk: Uint8Array) =>
  Effect.callback<void>((resume) => {
    if (stream.write(chunk)) resume(Effect.void)
    else stream.once("drain", () => resume(Effect.void))
  })

/**
 * Our stdin, read once: when its reader stops, stdin is closed so that it
 * keeps the process alive no more.
 *
 * @example
 * ```ts
 * yield* stdinStream.pipe(Stream.run(proc.stdin))
 * ```
 */
export const stdinStream: Stream.Stream<Uint8Array, SshError.SshError> = Stream.fromAsyncIterable(
  process.stdin as AsyncIterable<Uint8Array>,
  (e) => SshError.make(new SshError.ConnectionClosed({ message: `stdin: ${String(e)}` }))
).pipe(Stream.ensuring(Effect.sync(() => process.stdin.destroy())))

/** What the session needs of its surroundings; the defaults are the process's own stdio. */
export interface SessionIo {
  readonly input: Stream.Stream<Uint8Array, SshError.SshError>
  readonly stdout: (chunk: Uint8Array) => Effect.Effect<void>
  readonly stderr: (chunk: Uint8Array) => Effect.Effect<void>
  /** The host named in "Connection to HOST closed." */
  readonly host: string
}

const processIo = (host: string): SessionIo => ({
  input: stdinStream,
  stdout: writeTo(process.stdout),
  stderr: writeTo(process.stderr),
  host
})

const textEncoder = new TextEncoder()

/**
 * Copies typed input to the process through the escape scanner; succeeds
 * when the input ends (after sending EOF) or `~.` was typed (`disconnect`
 * completed).
 */
const pumpInput = (
  proc: Session.SshProcess,
  plan: SessionPlan,
  io: SessionIo,
  disconnect: Deferred.Deferred<void>
): Effect.Effect<void, SshError.SshError> => {
  if (!plan.forwardStdin) return proc.closeStdin
  const escapeChar = plan.escapeChar
  if (escapeChar === undefined) return io.input.pipe(Stream.run(proc.stdin))
  let state = Terminal.initialEscapeState
  return io.input.pipe(
    Stream.runForEachWhile((chunk) =>
      Effect.gen(function*() {
        const scanned = Terminal.scanEscapes(state, chunk, escapeChar)
        state = scanned.state
        for (const action of scanned.actions) {
          switch (action._tag) {
            case "Send":
              yield* proc.write(action.bytes)
              break
            case "Help":
              yield* io.stderr(textEncoder.encode(`${Terminal.escapeCharName(escapeChar)}?\r\n${Terminal.escapeHelp(escapeChar)}`))
              break
            case "Disconnect":
              yield* io.stderr(textEncoder.encode(`${Terminal.escapeCharName(escapeChar)}.\r\n`))
              yield* Deferred.succeed(disconnect, undefined)
              return false
          }
        }
        return true
      })
    ),
    Effect.andThen(Effect.suspend(() => Deferred.isDone(disconnect))),
    Effect.flatMap((disconnected) => disconnected ? Effect.void : proc.closeStdin)
  )
}

/**
 * Runs a started session to its end: output copied to ours, our input
 * (raw, with escapes, when the plan says so) to it, our window size
 * following; succeeds with the exit code — the remote one (128 + signal
 * number for a signal), 255 when there is none or after `~.`.
 *
 * @example
 * ```ts
 * const plan = planSession({ command: undefined, requestTty: undefined, escapeChar: undefined, noStdin: false, stdinIsTerminal: true })
 * const proc = yield* ssh.shell({ pty: ptyRequest() })
 * const code = yield* runSession(proc, plan, "example.com")
 * ```
 */
export const runSession = (
  proc: Session.SshProcess,
  plan: SessionPlan,
  host: string,
  io: SessionIo = processIo(host)
): Effect.Effect<number, SshError.SshError, Scope.Scope> =>
  Effect.gen(function*() {
    const disconnect = yield* Deferred.make<void>()
    const ended = yield* Effect.scoped(Effect.gen(function*() {
      if (plan.raw) yield* Terminal.rawMode()
      if (plan.pty) yield* Effect.forkScoped(Stream.runForEach(Terminal.resizes(), (size) => Effect.ignore(proc.resize(size))))
      // the output ending ends the session, as in ssh: our stdin may stay open (a pipe nobody closes)
      const input = yield* Effect.forkScoped(Effect.ignore(pumpInput(proc, plan, io, disconnect)))
      const output = Effect.all([
        Stream.runForEach(proc.stdout, io.stdout),
        Stream.runForEach(proc.stderr, io.stderr)
      ], { concurrency: "unbounded", discard: true })
      const result = yield* Effect.raceFirst(
        Effect.as(output, "exited" as const),
        Effect.as(Deferred.await(disconnect), "disconnected" as const)
      )
      yield* Fiber.interrupt(input)
      return result
    }))
    // printed once the terminal is back in its own mode, as ssh's quit message
    if (plan.pty) yield* io.stderr(textEncoder.encode(`Connection to ${terminalLine(io.host)} closed.\r\n`))
    if (ended === "disconnected") return 255
    const exit = yield* proc.exit
    if (exit._tag === "Signaled") {
      const detail = exit.message.length > 0 ? ` (${terminalLine(exit.message)})` : ""
      yield* io.stderr(textEncoder.encode(`effect-ssh: remote process killed by signal ${terminalLine(exit.signal)}${detail}\n`))
    }
    return Session.exitCode(exit) ?? 255
  })
