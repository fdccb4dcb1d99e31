/**
 * ProxyCommand: the connection is a child process's stdin and stdout. The
 * command runs through `/bin/sh -c` (with `exec`, as ssh runs it, so that
 * the shell does not linger), with `%h`, `%p`, `%r`, `%n`, `%%` and the
 * local tokens expanded; its stderr is ours. The child starts when the
 * connection reads the socket and is killed when it stops.
 *
 * @example
 * ```ts
 * const proxy = yield* ProxyCommand.spawn(ProxyCommand.expand("ssh -W %h:%p bastion", { h: "db", p: "22", r: "me", n: "db" }))
 * const ssh = yield* SshClient.connect({ host: "db", username: "me", socket: proxy.socket, auth, hostKeys })
 * ```
 * @since 0.1.0
 */
import * as NodeSocket from "@effect/platform-node/NodeSocket"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Socket from "effect/socket/Socket"
import * as ChildProcess from "node:child_process"
import { Duplex } from "node:stream"
import * as SshConfig from "./SshConfig.ts"

/** A running ProxyCommand. */
export interface Proxy {
  /** The child's stdout (what we read) and stdin (what we write). */
  readonly socket: Socket.Socket
  /** How the child ended (`exit 1`, `signal SIGTERM`), undefined while it runs (or before it started). */
  readonly exited: () => string | undefined
  /** How the child ended, waiting for it up to a second (its stdout may close a moment before it exits). */
  readonly awaitExit: Effect.Effect<string | undefined>
  readonly command: string
}

/**
 * The tokens of a ProxyCommand for a resolved destination: `%h` (HostName),
 * `%p`, `%r` (remote user), `%n` (the name as given), `%k` (HostKeyAlias or
 * the name) and the local ones (`%u`, `%d`, `%i`, `%l`, `%L`).
 *
 * @example
 * ```ts
 * ProxyCommand.tokens(resolved, context) // { h: "10.0.0.7", p: "22", r: "deploy", n: "web", ... }
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
 * ProxyCommand.expand("nc %h %p # 100%%", { h: "db", p: "22" }) // "nc db 22 # 100%"
 * ```
 */
export const expand = (command: string, values: Readonly<Record<string, string>>): string =>
  SshConfig.expandTokens(command, values, "ProxyCommand")

/**
 * The command's stdio as a Socket: acquiring the reader starts it (`/bin/sh
 * -c "exec <command>"`), as dialing does for TCP, and releasing the reader
 * kills it (SIGTERM) if it still runs. Writes wait for the reader, and fail
 * once the child is gone.
 *
 * @example
 * ```ts
 * const proxy = yield* ProxyCommand.spawn("ssh -W db:22 bastion")
 * ```
 */
export const spawn = (command: string): Effect.Effect<Proxy> =>
  Effect.gen(function*() {
    let exitedAs: string | undefined
    const gone = Deferred.makeUnsafe<never, Socket.SocketError>()
    const end = (why: string) => {
      exitedAs ??= why
      Deferred.doneUnsafe(gone, Exit.fail(new Socket.SocketError({ reason: new Socket.SocketWriteError({ cause: new Error(`ProxyCommand ${why}`) }) })))
    }
    const start = Effect.try({
      try: () => ChildProcess.spawn("/bin/sh", ["-c", `exec ${command}`], { stdio: ["pipe", "pipe", "inherit"] }),
      catch: (cause) => new Socket.SocketError({ reason: new Socket.SocketOpenError({ kind: "Unknown", cause }) })
    })
    const open = Effect.map(
      Effect.acquireRelease(start, (child) =>
        Effect.sync(() => {
          if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM")
        })),
      (child) => {
        child.once("exit", (code, signal) => end(signal !== null ? `signal ${signal}` : `exit ${code}`))
        // a spawn failure (no /bin/sh) arrives as an event; the socket then ends
        child.once("error", (error) => end(error.message))
        child.stdin.on("error", () => {}) // EPIPE once the child is gone: the read side reports the end
        const duplex = Duplex.from({ readable: child.stdout, writable: child.stdin })
        // the child ending closes the pair early ("premature close"): the read side reports the end, an unheard
        // error event must not take the process down once the socket's own listeners are gone
        duplex.on("error", () => {})
        return duplex
      }
    )
    const pair = yield* NodeSocket.fromDuplex(open)
    // a write to a pair whose child is gone would wait for a drain that never comes: it fails instead
    const socket = Socket.make({
      reader: pair.reader,
      writer: Effect.map(pair.writer, (writer): Socket.Writer => ({
        write: (chunk) => Effect.raceFirst(writer.write(chunk), Deferred.await(gone)),
        writeAll: (chunks) => Effect.raceFirst(writer.writeAll(chunks), Deferred.await(gone))
      }))
    })
    const awaitExit = Deferred.await(gone).pipe(
      Effect.ignore,
      Effect.timeout("1 second"),
      Effect.ignore,
      Effect.map(() => exitedAs)
    )
    return { socket, exited: () => exitedAs, awaitExit, command }
  })

