/**
 * Terminal prompts for the CLI: a line read from the controlling terminal
 * with echo off for secrets.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as SshError from "../SshError.ts"

/**
 * Asks a question on stderr and reads one line from stdin (a TTY); with
 * `echo` false the typed characters are not shown. Ctrl-C interrupts the
 * program (SIGINT), Ctrl-D on an empty line cancels.
 *
 * @example
 * ```ts
 * const password = yield* promptHidden("Password: ", false)
 * ```
 */
export const promptHidden = (question: string, echo: boolean): Effect.Effect<string, SshError.SshError> =>
  Effect.callback<string, SshError.SshError>((resume) => {
    const stdin = process.stdin
    if (!stdin.isTTY) {
      resume(Effect.fail(SshError.make(new SshError.AuthFailed({ methodsLeft: [], partial: false, tried: ["prompt (no terminal)"] }))))
      return
    }
    process.stderr.write(question)
    let answer = ""
    stdin.setRawMode(true)
    stdin.resume()
    const finish = (result: Effect.Effect<string, SshError.SshError>) => {
      stdin.off("data", onData)
      stdin.setRawMode(false)
      stdin.pause()
      process.stderr.write("\n")
      resume(result)
    }
    const onData = (data: Buffer) => {
      for (const ch of data.toString("utf8")) {
        if (ch === "\r" || ch === "\n") return finish(Effect.succeed(answer))
        if (ch === "\u0003") {
          // Ctrl-C interrupts the program, as it would in the terminal's own mode (readpassphrase re-raises it)
          stdin.off("data", onData)
          stdin.setRawMode(false)
          process.stderr.write("\n")
          process.kill(process.pid, "SIGINT")
          return
        }
        if (ch === "\u0004" && answer.length === 0) {
          return finish(Effect.fail(SshError.make(new SshError.AuthFailed({ methodsLeft: [], partial: false, tried: ["prompt (cancelled)"] }))))
        }
        if (ch === "\u007f" || ch === "\b") {
          if (echo && answer.length > 0) process.stderr.write("\b \b")
          answer = answer.slice(0, -1)
        } else {
          answer += ch
          if (echo) process.stderr.write(ch)
        }
      }
    }
    stdin.on("data", onData)
    return Effect.sync(() => {
      stdin.off("data", onData)
      if (stdin.isTTY) stdin.setRawMode(false)
    })
  })
