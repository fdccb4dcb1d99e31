/**
 * Password and keyboard-interactive authentication as ssh asks for them
 * (sshconnect2.c): on the terminal with echo off, or through `SSH_ASKPASS`
 * (`SSH_ASKPASS_REQUIRE`, `DISPLAY`: see `Askpass`); up to
 * `NumberOfPasswordPrompts` tries of each (default 3), with "Permission
 * denied, please try again." before every password try after the first;
 * none at all with `BatchMode yes` or when there is no way to ask. When
 * every method fails, ssh's `user@host: Permission denied (methods).` line.
 *
 * @example
 * ```ts
 * auth.push(...Passwords.authMethods({ user: "me", host: "example.com", tries: 3, batchMode: false }, answerOnTerminal))
 * ```
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Auth from "../Auth/ClientAuth.ts"
import * as SshError from "../SshError.ts"
import { type AskpassEnv, askpassProgram, promptMethod, runAskpass } from "./Askpass.ts"
import { promptHidden } from "./Prompt.ts"

/** Asks one question: (prompt, echo) → the answer. */
export type Ask = (question: string, echo: boolean) => Effect.Effect<string, SshError.SshError>

/** Turns an `Ask` into a keyboard-interactive responder (`Exec.answerOnTerminal`). */
export type Responder = (ask: Ask) => Auth.KeyboardInteractiveHandler

/** Options of `authMethods`. */
export interface PasswordOptions {
  readonly user: string
  readonly host: string
  /** NumberOfPasswordPrompts, as the configuration resolved it (ssh's default is 3). */
  readonly tries: number
  /** BatchMode: ask nothing. */
  readonly batchMode: boolean
  readonly env?: AskpassEnv | undefined
  readonly hasTerminal?: boolean | undefined
  readonly write?: ((text: string) => void) | undefined
}

/**
 * Whether `BatchMode yes` was asked for (no prompts of any kind).
 *
 * @example
 * ```ts
 * batchMode({ batchmode: "yes" }) // true
 * ```
 */
export const batchMode = (options: Readonly<Record<string, string>>): boolean => options.batchmode?.toLowerCase() === "yes"

/**
 * Asks a question as readpass.c does: `SSH_ASKPASS` when `Askpass.promptMethod`
 * says so (a cancelled program answers ""), else the terminal;
 * `undefined` when there is no way to ask.
 *
 * @example
 * ```ts
 * const ask = askFor(process.env, process.stdin.isTTY === true)
 * const answer = yield* ask!("me@host's password: ", false)
 * ```
 */
export const askFor = (env: AskpassEnv, hasTerminal: boolean): Ask | undefined => {
  switch (promptMethod(env, hasTerminal)) {
    case "askpass":
      return (question) => Effect.map(runAskpass(askpassProgram(env), question, env), (answer) => answer ?? "")
    case "terminal":
      return promptHidden
    case "unavailable":
      return undefined
  }
}

/**
 * The keyboard-interactive and password methods, `NumberOfPasswordPrompts`
 * of each (keyboard-interactive first, as ssh's PreferredAuthentications);
 * none with `BatchMode yes` or no way to ask.
 *
 * @example
 * ```ts
 * auth.push(...authMethods({ user, host, tries: resolved.numberOfPasswordPrompts, batchMode: resolved.batchMode }, answerOnTerminal))
 * ```
 */
export const authMethods = (options: PasswordOptions, respond: Responder): ReadonlyArray<Auth.AuthMethod> => {
  const tries = options.tries
  if (options.batchMode) return []
  const ask = askFor(options.env ?? process.env, options.hasTerminal ?? process.stdin.isTTY === true)
  if (ask === undefined) return []
  const write = options.write ?? ((text: string) => void process.stderr.write(text))
  const prompt = `${options.user}@${options.host}'s password: `
  let attempt = 0
  const password = Effect.suspend(() => {
    if (attempt++ > 0) write("Permission denied, please try again.\n")
    return Effect.map(ask(prompt, false), Redacted.make)
  })
  const keyboard = respond(ask)
  return [
    ...Array.from({ length: tries }, () => Auth.keyboardInteractive(keyboard)),
    ...Array.from({ length: tries }, () => Auth.password(password))
  ]
}

/**
 * ssh's last line when authentication failed: who, where, and the methods
 * the server still allowed; `undefined` for any other error.
 *
 * @example
 * ```ts
 * permissionDenied("me", "example.com", error) // "me@example.com: Permission denied (publickey,password)."
 * ```
 */
export const permissionDenied = (user: string, host: string, error: unknown): string | undefined => {
  if (!SshError.isSshError(error) || error.reason._tag !== "AuthFailed") return undefined
  return `${user}@${host}: Permission denied (${error.reason.methodsLeft.join(",")}).`
}
