/**
 * `StrictHostKeyChecking ask`, as ssh's sshconnect.c does it: a known key is
 * trusted and a changed one refused with ssh's big warning (never
 * promptable), exactly as the strict known_hosts policy decides; an unknown
 * host's fingerprint is shown and the user asked to confirm it — `yes` or
 * the fingerprint itself adds the key to the first known_hosts file, `no`
 * (or an empty answer, or EOF) refuses, anything else asks again. Without a
 * way to ask (no terminal, BatchMode) the host is refused with a hint at
 * `accept-new`. A cancelled prompt (Ctrl-D, askpass cancelled) refuses.
 *
 * @example
 * ```ts
 * const policy = HostKeyPrompt.ask({ files: ["~/.ssh/known_hosts"] })
 * yield* SshClient.connect({ host, username, auth, hostKeys: policy })
 * ```
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import type * as FileSystem from "effect/FileSystem"
import * as net from "node:net"
import * as HostKeys from "../Auth/HostKeys.ts"
import * as KnownHosts from "../Auth/KnownHosts.ts"
import * as KnownHostsFile from "../Auth/KnownHostsFile.ts"
import * as PublicKey from "../Auth/PublicKey.ts"
import * as SshError from "../SshError.ts"
import { type AskpassEnv, askpassProgram, promptMethod, runAskpass } from "./Askpass.ts"
import { promptHidden } from "./Prompt.ts"

/** Asks a question and reads the answer (echoed); `undefined` when there is no one to ask. */
export type Confirm = (question: string) => Effect.Effect<string | undefined, SshError.SshError>

/** Options of `ask`. */
export interface AskOptions extends HostKeys.KnownHostsOptions {
  /** How to ask (default `confirmOnTerminal()`). */
  readonly confirm?: Confirm | undefined
  /** Where messages go (default stderr). */
  readonly write?: ((text: string) => void) | undefined
  /** `BatchMode yes`: never ask. */
  readonly batchMode?: boolean | undefined
}

/** What the user's answer to the host-key question means. */
export type Answer = "yes" | "no" | "again"

/**
 * Reads an answer as ssh's `confirm` does: surrounding blanks ignored;
 * `yes` (any case) or the exact fingerprint accept; empty or `no` refuse;
 * anything else asks again.
 *
 * @example
 * ```ts
 * judgeAnswer(" YES ", "SHA256:abc")  // "yes"
 * judgeAnswer("SHA256:abc", "SHA256:abc") // "yes"
 * judgeAnswer("maybe", "SHA256:abc")  // "again"
 * ```
 */
export const judgeAnswer = (answer: string, fingerprint: string): Answer => {
  const word = answer.replace(/^[ \t]+/, "").split(/[ \t\n]/)[0] ?? ""
  if (word === "" || word.toLowerCase() === "no") return "no"
  if (word.toLowerCase() === "yes" || word === fingerprint) return "yes"
  return "again"
}

/**
 * The key type as ssh names it in messages (`sshkey_type`).
 *
 * @example
 * ```ts
 * keyTypeName("ssh-ed25519") // "ED25519"
 * ```
 */
export const keyTypeName = (type: PublicKey.KeyType): string =>
  type === "ssh-ed25519" ? "ED25519" : type === "ssh-rsa" ? "RSA" : "ECDSA"

/** ssh names an address host "host (ip)"; we know the address only when the host is one. */
const hostLabel = (host: string, port: number): string => {
  const name = KnownHosts.hostPattern(host, port)
  return net.isIP(host) === 0 ? name : `${name} (${name})`
}

/**
 * The question ssh asks about an unknown host.
 *
 * @example
 * ```ts
 * unknownHostQuestion("example.com", 22, key)
 * // "The authenticity of host 'example.com' can't be established.\nED25519 key fingerprint is SHA256:....\nAre you sure ..."
 * ```
 */
export const unknownHostQuestion = (host: string, port: number, key: PublicKey.PublicKey): string =>
  `The authenticity of host '${hostLabel(host, port)}' can't be established.\n` +
  `${keyTypeName(key.type)} key fingerprint is ${PublicKey.fingerprint(key)}.\n` +
  "Are you sure you want to continue connecting (yes/no/[fingerprint])? "

/** ssh's question when the answer was neither yes, no nor the fingerprint. */
export const AGAIN = "Please type 'yes', 'no' or the fingerprint: "

/**
 * ssh's warning for a host whose key is not the one recorded.
 *
 * @example
 * ```ts
 * process.stderr.write(changedKeyWarning("example.com", 22, key, "~/.ssh/known_hosts"))
 * ```
 */
export const changedKeyWarning = (host: string, port: number, key: PublicKey.PublicKey, file: string | undefined): string =>
  [
    "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@",
    "@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @",
    "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@",
    "IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!",
    "Someone could be eavesdropping on you right now (man-in-the-middle attack)!",
    "It is also possible that a host key has just been changed.",
    `The fingerprint for the ${keyTypeName(key.type)} key sent by the remote host is`,
    `${PublicKey.fingerprint(key)}.`,
    "Please contact your system administrator.",
    ...(file === undefined ? [] : [`Add correct host key in ${file} to get rid of this message.`]),
    `Host key for ${KnownHosts.hostPattern(host, port)} has changed and you have requested strict checking.`,
    ""
  ].join("\n")

/**
 * Asks on the terminal (echo on), or through `SSH_ASKPASS` when readpass.c
 * would (no terminal and a display, or `SSH_ASKPASS_REQUIRE`); `undefined`
 * when neither is possible, "" when the prompt was cancelled.
 *
 * @example
 * ```ts
 * HostKeyPrompt.ask({ confirm: confirmOnTerminal() })
 * ```
 */
export const confirmOnTerminal = (
  env: AskpassEnv = process.env,
  hasTerminal: boolean = process.stdin.isTTY === true
): Confirm =>
(question) => {
  switch (promptMethod(env, hasTerminal)) {
    case "askpass":
      return Effect.map(runAskpass(askpassProgram(env), question, env), (answer) => answer ?? "")
    case "terminal":
      // Ctrl-D: an empty answer, which refuses
      return Effect.catch(promptHidden(question, true), (error) =>
        error.reason._tag === "AuthFailed" ? Effect.succeed("") : Effect.fail(error))
    case "unavailable":
      return Effect.succeed(undefined)
  }
}

const rejected = (check: HostKeys.HostKeyCheck, message: string) =>
  SshError.make(
    new SshError.HostKeyRejected({
      host: KnownHosts.hostPattern(check.host, check.port),
      keyType: check.key.type,
      fingerprint: PublicKey.fingerprint(check.key),
      message
    })
  )

/**
 * The `ask` policy (see the module doc).
 *
 * @example
 * ```ts
 * HostKeyPrompt.ask({ files: ["./known_hosts"], hashed: true })
 * ```
 */
export const ask = (options: AskOptions = {}): HostKeys.HostKeyPolicy => {
  const files = options.files ?? [KnownHostsFile.defaultFile()]
  const known = { files, hashed: options.hashed }
  const strict = HostKeys.knownHosts(known)
  const confirm = options.confirm ?? confirmOnTerminal()
  const write = options.write ?? ((text: string) => void process.stderr.write(text))
  /** Hosts and keys confirmed by this policy value, trusted even if the file could not be written. */
  const confirmed: Array<HostKeys.HostKeyCheck> = []
  const wasConfirmed = (check: HostKeys.HostKeyCheck) =>
    confirmed.some((c) => c.host === check.host && c.port === check.port && PublicKey.equals(c.key, check.key))

  const isUnknown = (check: HostKeys.HostKeyCheck) =>
    Effect.map(KnownHostsFile.readAll(files), (entries) =>
      (check.certificate === undefined || HostKeys.checkCertificate(entries, check, check.certificate) === undefined) &&
      HostKeys.classify(entries, check)._tag === "Unknown")

  /** The user's decision; "unavailable" when there is no way to ask. */
  const askUser = (check: HostKeys.HostKeyCheck): Effect.Effect<"accepted" | "refused" | "unavailable", SshError.SshError> => {
    const fingerprint = PublicKey.fingerprint(check.key)
    const loop = (question: string): Effect.Effect<"accepted" | "refused" | "unavailable", SshError.SshError> =>
      Effect.flatMap(confirm(question), (answer) => {
        if (answer === undefined) return Effect.succeed("unavailable" as const)
        const verdict = judgeAnswer(answer, fingerprint)
        return verdict === "again" ? loop(AGAIN) : Effect.succeed(verdict === "yes" ? "accepted" as const : "refused" as const)
      })
    return options.batchMode === true ? Effect.succeed("unavailable") : loop(unknownHostQuestion(check.host, check.port, check.key))
  }

  const record = (check: HostKeys.HostKeyCheck) => {
    const name = KnownHosts.hostPattern(check.host, check.port)
    confirmed.push(check)
    if (files.length === 0) return Effect.void
    return KnownHostsFile.addHost(files[0]!, check.host, check.port, check.key, { hashed: options.hashed }).pipe(
      Effect.andThen(Effect.sync(() =>
        write(`Warning: Permanently added '${name}' (${keyTypeName(check.key.type)}) to the list of known hosts.\n`)
      )),
      Effect.catch(() => Effect.sync(() => write(`Failed to add the host to the list of known hosts (${files[0]}).\n`)))
    )
  }

  const onUnknown = (check: HostKeys.HostKeyCheck) =>
    Effect.flatMap(askUser(check), (decision) => {
      if (decision === "accepted") return record(check)
      if (decision === "refused") return Effect.fail(rejected(check, "Host key verification failed."))
      const name = KnownHosts.hostPattern(check.host, check.port)
      return Effect.fail(rejected(
        check,
        `host ${name} is not in ${files.join(", ")} and there is no terminal to confirm its ` +
          `${keyTypeName(check.key.type)} key ${PublicKey.fingerprint(check.key)}; ` +
          "add it to known_hosts, or connect with -o StrictHostKeyChecking=accept-new"
      ))
    })

  return {
    _tag: "HostKeyPolicy",
    preferredAlgorithms: strict.preferredAlgorithms,
    verify: (check): Effect.Effect<void, SshError.SshError, FileSystem.FileSystem> => {
      if (wasConfirmed(check)) return Effect.void
      return Effect.catch(strict.verify(check), (error) => {
        const reason = error.reason
        if (reason._tag === "HostKeyChanged") {
          return Effect.andThen(Effect.sync(() => write(changedKeyWarning(check.host, check.port, check.key, files[0]))), Effect.fail(error))
        }
        if (reason._tag !== "HostKeyRejected") return Effect.fail(error)
        return Effect.flatMap(isUnknown(check), (unknown) => unknown ? onUnknown(check) : Effect.fail(error))
      })
    }
  }
}
