/**
 * Asking for a passphrase the way OpenSSH's `read_passphrase` does: on the
 * terminal with echo off, or through the `SSH_ASKPASS` program when there is
 * no terminal and a display (`DISPLAY` / `WAYLAND_DISPLAY`) is set.
 * `SSH_ASKPASS_REQUIRE` overrides: `force` always uses the program (even
 * without a display), `prefer` uses it whenever a display is set, `never`
 * never does. The program gets the prompt as its argument and prints the
 * answer on stdout; a non-zero exit means "cancelled".
 *
 * An empty answer, a cancelled program, or no way to ask at all mean "no
 * passphrase": ssh then skips the key and tries the next one, and so do we.
 *
 * @example
 * ```ts
 * const auth = yield* Identities.authMethods({ passphrase: Askpass.keyPassphrase })
 * ```
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as ChildProcess from "node:child_process"
import * as SshError from "../SshError.ts"
import { promptHidden } from "./Prompt.ts"

/** Where a passphrase is read from. */
export type PromptMethod = "askpass" | "terminal" | "unavailable"

/** The environment variables the decision reads. */
export type AskpassEnv = Readonly<Record<string, string | undefined>>

/** OpenSSH's default askpass program, used when `SSH_ASKPASS` is unset. */
export const DEFAULT_ASKPASS = "/usr/bin/ssh-askpass"

const nonEmpty = (value: string | undefined): boolean => value !== undefined && value !== ""

/**
 * Decides how to ask, as readpass.c does: a display allows askpass, no
 * terminal calls for it; `SSH_ASKPASS_REQUIRE` (force / prefer / never,
 * case-insensitive) overrides.
 *
 * @example
 * ```ts
 * promptMethod({ SSH_ASKPASS_REQUIRE: "force", SSH_ASKPASS: "/bin/pw" }, true) // "askpass"
 * promptMethod({}, true)                                                    // "terminal"
 * promptMethod({ DISPLAY: ":0" }, false)                                    // "askpass"
 * ```
 */
export const promptMethod = (env: AskpassEnv, hasTerminal: boolean): PromptMethod => {
  let allowAskpass = nonEmpty(env.DISPLAY) || nonEmpty(env.WAYLAND_DISPLAY)
  let useAskpass = !hasTerminal
  switch (env.SSH_ASKPASS_REQUIRE?.toLowerCase()) {
    case "force":
      useAskpass = true
      allowAskpass = true
      break
    case "prefer":
      useAskpass = allowAskpass
      break
    case "never":
      allowAskpass = false
      break
  }
  if (useAskpass && allowAskpass) return "askpass"
  return hasTerminal ? "terminal" : "unavailable"
}

/**
 * The askpass program: `SSH_ASKPASS`, or OpenSSH's default.
 *
 * @example
 * ```ts
 * askpassProgram({ SSH_ASKPASS: "/usr/lib/ssh/x11-ssh-askpass" }) // "/usr/lib/ssh/x11-ssh-askpass"
 * ```
 */
export const askpassProgram = (env: AskpassEnv): string => nonEmpty(env.SSH_ASKPASS) ? env.SSH_ASKPASS! : DEFAULT_ASKPASS

/** A passphrase is short; an askpass program printing more than this is cut off and refused. */
const MAX_ANSWER_BYTES = 64 * 1024

/**
 * Runs an askpass program with the prompt as its argument; its stdout up to
 * the first line break, or `undefined` when it exits non-zero (cancelled).
 *
 * @example
 * ```ts
 * const answer = yield* runAskpass("/usr/bin/ssh-askpass", "Enter passphrase: ")
 * ```
 */
export const runAskpass = (
  program: string,
  prompt: string,
  env: AskpassEnv = process.env
): Effect.Effect<string | undefined, SshError.SshError> =>
  Effect.callback<string | undefined, SshError.SshError>((resume) => {
    const child = ChildProcess.execFile(
      program,
      [prompt],
      { env: { ...env }, maxBuffer: MAX_ANSWER_BYTES, encoding: "utf8" },
      (error, stdout) => {
        if (error === null) resume(Effect.succeed(stdout.split(/\r?\n/)[0] ?? ""))
        else if (typeof error.code === "number") resume(Effect.succeed(undefined))
        else {
          resume(Effect.fail(SshError.make(new SshError.AuthFailed({
            methodsLeft: [],
            partial: false,
            tried: [`askpass ${program}: ${error.message}`]
          }))))
        }
      }
    )
    child.stdin?.end()
    return Effect.sync(() => void child.kill())
  })

/** Options of `readPassphrase`, for tests and embedding. */
export interface ReadOptions {
  readonly env?: AskpassEnv | undefined
  readonly hasTerminal?: boolean | undefined
}

/**
 * Reads a passphrase (see the module doc); `undefined` for no answer.
 *
 * @example
 * ```ts
 * const passphrase = yield* readPassphrase("Enter passphrase for key '/home/me/.ssh/id_ed25519': ")
 * ```
 */
export const readPassphrase = (
  prompt: string,
  options?: ReadOptions
): Effect.Effect<Redacted.Redacted<string> | undefined, SshError.SshError> => {
  const env = options?.env ?? process.env
  const method = promptMethod(env, options?.hasTerminal ?? process.stdin.isTTY === true)
  const answer = method === "askpass"
    ? runAskpass(askpassProgram(env), prompt, env)
    : method === "terminal"
    ? promptHidden(prompt, false)
    : Effect.succeed(undefined)
  return Effect.map(answer, (text) => text === undefined || text === "" ? undefined : Redacted.make(text))
}

/**
 * The passphrase prompt for an encrypted key, worded as ssh words it.
 *
 * @example
 * ```ts
 * Identities.authMethods({ passphrase: keyPassphrase })
 * ```
 */
export const keyPassphrase = (
  file: string,
  attempt: number,
  options?: ReadOptions
): Effect.Effect<Redacted.Redacted<string> | undefined, SshError.SshError> =>
  readPassphrase(attempt === 1 ? `Enter passphrase for key '${file}': ` : `Bad passphrase, try again for ${file}: `, options)
