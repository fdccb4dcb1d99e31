/**
 * ProxyCommand: the connection is a child process's stdin and stdout. The
 * command runs through `/bin/sh -c` (with `exec`, as ssh runs it, so that
 * the shell does not linger), with `%h`, `%p`, `%r`, `%n`, `%%` and the
 * local tokens expanded; its stderr is ours. The child is killed when the
 * scope closes.
 *
 * @example
 * ```ts
 * const proxy = yield* ProxyCommand.spawn(ProxyCommand.expand("ssh -W %h:%p bastion", { h: "db", p: "22", r: "me", n: "db" }))
 * const ssh = yield* SshClient.connect({ host: "db", username: "me", socket: proxy.socket, auth, hostKeys })
 * ```
 * @since 0.1.0
 */
import * as NodeSocket from "@effect/platform-node/NodeSocket"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type * as Socket from "effect/socket/Socket"
import * as ChildProcess from "node:child_process"
import { Duplex } from "node:stream"
import * as SshError from "../SshError.ts"
import * as SshConfig from "./SshConfig.ts"

/** A running ProxyCommand. */
export interface Proxy {
  /** The child's stdout (what we read) and stdin (what we write). */
  readonly socket: Socket.Socket
  /** How the child ended (`exit 1`, `signal SIGTERM`), undefined while it runs. */
  readonly exited: () => string | undefined
  readonly command: string
}

/**
 * The tokens of a ProxyCommand for a resolved destination: `%h` (HostName),
 * `%p`, `%r` (remote user), `%n` (the name as given), `%k` (HostKeyAlias or
 * the name) and the local ones (`%u`, `%d`, `%i`, `%l`, `%L`).
 *
 * @example
 * ```ts
 * tokens(resolved, context) // { h: "10.0.0.7", p: "22", r: "deploy", n: "web", ... }
 * ```
 */
export const tokens = (resolved: SshConfig.ResolvedConfig, context: SshConfig.Context): Record<string, string> => ({
  u: context.localUser,
  d: context.homeDirectory,
  i: context.uid,
  l: context.localHostname,
  L: context.localHostname.split(".")[0] ?? context.localHostname,
  h: resolved.hostName,
  p: String(resolved.port),
  r: resolved.user,
  n: resolved.host,
  k: resolved.hostKeyAlias ?? resolved.host
})

/**
 * Expands a ProxyCommand's tokens; an unknown token is a `ConfigParseError`.
 *
 * @example
 * ```ts
 * expand("nc %h %p # 100%%", { h: "db", p: "22" }) // "nc db 22 # 100%"
 * ```
 */
export const expand = (command: string, values: Readonly<Record<string, string>>): string =>
  SshConfig.expandTokens(command, values, "ProxyCommand")

/**
 * Starts the command (`/bin/sh -c "exec <command>"`) and makes its stdio a
 * Socket; the child is killed (SIGTERM) when the scope closes, if it still runs.
 *
 * @example
 * ```ts
 * const proxy = yield* ProxyCommand.spawn("ssh -W db:22 bastion")
 * ```
 */
export const spawn = (command: string): Effect.Effect<Proxy, SshError.SshError, Scope.Scope> =>
  Effect.gen(function*() {
    const child = yield* Effect.acquireRelease(
      Effect.try({
        try: () => ChildProcess.spawn("/bin/sh", ["-c", `exec ${command}`], { stdio: ["pipe", "pipe", "inherit"] }),
        catch: (cause) => failed(command, String(cause))
      }),
      (child) =>
        Effect.sync(() => {
          if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM")
        })
    )
    let exitedAs: string | undefined
    child.once("exit", (code, signal) => {
      exitedAs = signal !== null ? `signal ${signal}` : `exit ${code}`
    })
    // a spawn failure (no /bin/sh) arrives as an event; the socket then ends and the error names the command
    child.once("error", (error) => {
      exitedAs ??= error.message
    })
    child.stdin.on("error", () => {}) // EPIPE once the child is gone: the read side reports the end
    const duplex = Duplex.from({ readable: child.stdout, writable: child.stdin })
    // the child ending closes the pair early ("premature close"): the read side reports the end, an unheard
    // error event must not take the process down once the socket's own listeners are gone
    duplex.on("error", () => {})
    const socket = yield* NodeSocket.fromDuplex(Effect.succeed(duplex))
    return { socket, exited: () => exitedAs, command }
  })

const failed = (command: string, why: string) =>
  SshError.make(SshError.connectFailed({ host: undefined, port: undefined }, new Error(`ProxyCommand "${command}": ${why}`)))
