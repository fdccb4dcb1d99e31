/**
 * Session channels from the client side (RFC 4254 §6): exec, shell and
 * subsystem, with pty, environment, window-change and signals. A remote
 * process is a scoped `SshProcess`: stdout and stderr are Streams whose pull
 * drives the window, stdin is a Sink, and `exit` resolves to how the process
 * ended.
 *
 * @since 0.1.0
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Sink from "effect/Sink"
import * as Stream from "effect/Stream"
import type { X11Forwarding, X11Options } from "../Forwarding/X11Client.ts"
import * as SshError from "../SshError.ts"
import type { ChannelOptions, Connection, SshChannel } from "./Connection.ts"
import * as Requests from "./Requests.ts"
import { concat } from "../internal/bytes.ts"

/** How a remote process ended. */
export type ExitStatus =
  | { readonly _tag: "Exited"; readonly code: number }
  | {
    readonly _tag: "Signaled"
    readonly signal: string
    readonly coreDumped: boolean
    readonly message: string
  }
  /** The channel closed without exit-status or exit-signal. */
  | { readonly _tag: "Unknown" }

/**
 * The exit code a shell would report: the code, or 128 + signal number.
 *
 * @example
 * ```ts
 * Session.exitCode({ _tag: "Signaled", signal: "KILL", coreDumped: false, message: "" }) // 137
 * ```
 */
export const exitCode = (status: ExitStatus): number | undefined =>
  status._tag === "Exited"
    ? status.code
    : status._tag === "Signaled"
    ? 128 + (Requests.signalNumbers[status.signal] ?? 0)
    : undefined

/** Options of exec, shell and subsystem. */
export interface SessionOptions {
  /** Request a pseudo-terminal (true = xterm 80×24). */
  readonly pty?: boolean | Requests.PtyRequest | undefined
  /** Environment variables (servers accept only those allowed by AcceptEnv). */
  readonly env?: Readonly<Record<string, string>> | undefined
  /** "separate" (default): stderr is its own stream; "merge": into stdout; "discard": dropped. */
  readonly stderr?: "separate" | "merge" | "discard" | undefined
  /** Window and max packet for this channel (default: the connection's). */
  readonly flow?: ChannelOptions | undefined
  /**
   * ForwardX11 (`ssh -X`): X clients started in the session show on the local display (`true`: `$DISPLAY`).
   * Fails before the session opens when there is no display; a server that refuses the request gets a logged
   * warning and the session goes on. Needs the connection's X11 forwarding (`SessionForwarding.x11`), which
   * `SshClient.connect` supplies.
   */
  readonly x11?: true | X11Options | undefined
}

/**
 * What a session needs of its connection's forwardings, beyond the channel itself: the `x11-req` of a session
 * with `x11` comes from the forwarding that also handles the `x11` channels the server then opens.
 */
export interface SessionForwarding {
  readonly x11?: X11Forwarding["prepare"] | undefined
}

/**
 * A running remote command, shell or subsystem.
 *
 * @example
 * ```ts
 * const proc = yield* ssh.exec("tail -f /var/log/syslog")
 * yield* proc.stdout.pipe(Stream.decodeText(), Stream.splitLines, Stream.take(10), Stream.runForEach(Console.log))
 * ```
 */
export interface SshProcess {
  readonly channel: SshChannel
  readonly stdout: Stream.Stream<Uint8Array, SshError.SshError>
  /**
   * Until it is first pulled, at most 1 MiB of stderr is kept (more is discarded with a logged warning) so that
   * stderr nobody reads never stalls stdout: pull it from the start to get all of it (see `SshChannel.stderr`).
   */
  readonly stderr: Stream.Stream<Uint8Array, SshError.SshError>
  /**
   * Drains stdout, handing each batch of chunks to `f`; the chunks are `f`'s to keep (see
   * `SshChannel.consumeStdout`).
   *
   * @example
   * ```ts
   * const kept: Array<Uint8Array> = []
   * yield* proc.consumeStdout((chunks) => Effect.sync(() => kept.push(...chunks))) // kept stays valid
   * ```
   */
  readonly consumeStdout: SshChannel["consumeStdout"]
  /** `consumeStdout` for stderr. */
  readonly consumeStderr: SshChannel["consumeStderr"]
  /**
   * Drains stdout zero-copy: `f` borrows each batch while its effect runs, and the batch's memory is freed when
   * that effect succeeds (the chunks then read as empty: copy what you keep). For bulk output going to a file or
   * socket; see `SshChannel.borrowStdout`.
   *
   * @example
   * ```ts
   * const file = yield* Effect.acquireRelease(Effect.promise(() => FsPromises.open("dump.bin", "w")), (f) => Effect.promise(() => f.close()))
   * yield* proc.borrowStdout((chunks) => Effect.promise(() => file.writev(chunks)))
   * ```
   */
  readonly borrowStdout: SshChannel["borrowStdout"]
  /** `borrowStdout` for stderr. */
  readonly borrowStderr: SshChannel["borrowStderr"]
  /** Writes to the remote stdin and sends EOF when the stream ends. */
  readonly stdin: Sink.Sink<void, Uint8Array, never, SshError.SshError>
  readonly write: (data: Uint8Array | string) => Effect.Effect<void, SshError.SshError>
  /** Sends EOF on stdin. */
  readonly closeStdin: Effect.Effect<void, SshError.SshError>
  /** Waits for the channel to close and tells how the process ended; fails if the connection died first. */
  readonly exit: Effect.Effect<ExitStatus, SshError.SshError>
  /** Sends a signal (e.g. "TERM", "INT"). Many servers, OpenSSH among them, only honour it with a pty. */
  readonly signal: (name: string) => Effect.Effect<void, SshError.SshError>
  /** Tells the pty its new size. */
  readonly resize: (size: Requests.WindowSize) => Effect.Effect<void, SshError.SshError>
}

/** A completed command: pyssh's `Result`. */
export interface RunResult {
  readonly stdout: string
  readonly stderr: string
  readonly stdoutBytes: Uint8Array
  readonly stderrBytes: Uint8Array
  /** The exit code, or 128 + signal number; undefined if the server sent neither. */
  readonly exitCode: number | undefined
  readonly exit: ExitStatus
}

const textEncoder = new TextEncoder()

const requestOrFail = (channel: SshChannel, name: string, data: Uint8Array) =>
  Effect.flatMap(channel.request(name, data, true), (ok) =>
    ok
      ? Effect.void
      : Effect.fail(SshError.make(new SshError.ChannelRequestFailed({ request: name, message: `the server refused the ${name} request` }))))

/** The `x11-req` a session with `x11` sends, resolved before the session opens. */
const x11Request = (options: SessionOptions, forwarding: SessionForwarding) => {
  if (options.x11 === undefined) return Effect.succeed(undefined)
  if (forwarding.x11 === undefined) {
    return Effect.fail(SshError.make(new SshError.ConfigParseError({
      message: "X11 forwarding needs a connection that handles x11 channels (one made by SshClient.connect)"
    })))
  }
  return forwarding.x11(options.x11)
}

const startSession = (
  connection: Connection,
  options: SessionOptions,
  forwarding: SessionForwarding,
  start: (channel: SshChannel) => Effect.Effect<void, SshError.SshError>
): Effect.Effect<SshProcess, SshError.SshError, Scope.Scope> =>
  Effect.gen(function*() {
    const requestX11 = yield* x11Request(options, forwarding)
    const channel = yield* connection.openChannel("session", undefined, options.flow)
    let status: ExitStatus = { _tag: "Unknown" }
    channel.onRequest((request, data) =>
      Effect.sync(() => {
        try {
          if (request === "exit-status") status = { _tag: "Exited", code: Requests.decodeExitStatus(data) }
          else if (request === "exit-signal") status = { _tag: "Signaled", ...Requests.decodeExitSignal(data) }
          else return false
          return true
        } catch {
          return false
        }
      })
    )
    if (options.stderr === "merge") channel.mergeStderr()
    if (options.stderr === "discard") channel.discardStderr()
    if (requestX11 !== undefined) yield* requestX11(channel)
    for (const [name, value] of Object.entries(options.env ?? {})) {
      yield* channel.request("env", Requests.encodeEnv(name, value), false)
    }
    if (options.pty) {
      const pty: Requests.PtyRequest = options.pty === true ? { term: "xterm", columns: 80, rows: 24 } : options.pty
      yield* requestOrFail(channel, "pty-req", Requests.encodePtyRequest(pty))
    }
    yield* start(channel)
    // a channel cut by a dead connection reports why, rather than an "Unknown" exit
    const exit = Effect.flatMap(Deferred.await(channel.closed), () => {
      const failure = channel.failure()
      return status._tag === "Unknown" && failure !== undefined ? Effect.fail(failure) : Effect.succeed(status)
    })
    const process: SshProcess = {
      channel,
      stdout: channel.stdout,
      stderr: channel.stderr,
      consumeStdout: channel.consumeStdout,
      consumeStderr: channel.consumeStderr,
      borrowStdout: channel.borrowStdout,
      borrowStderr: channel.borrowStderr,
      stdin: channel.stdin,
      write: (data) => channel.write(typeof data === "string" ? textEncoder.encode(data) : data),
      closeStdin: channel.eof,
      exit: Effect.tap(exit, (status) => Effect.logDebug(`channel ${channel.localId}: exit ${status._tag === "Exited" ? `status ${status.code}` : status._tag === "Signaled" ? `signal ${status.signal}` : "status unknown"}`)),
      signal: (name) =>
        Effect.flatMap(
          Effect.try({ try: () => Requests.checkSignalName(name), catch: SshError.fromUnknown }),
          (bare) => Effect.asVoid(channel.request("signal", Requests.encodeString(bare), false))
        ),
      resize: (size) => Effect.asVoid(channel.request("window-change", Requests.encodeWindowChange(size), false))
    }
    return process
  })

/**
 * Runs a command; the process lives until the scope closes (then its channel is closed).
 *
 * @example
 * ```ts
 * const proc = yield* Session.exec(ssh.connection, "ls -l", {})
 * ```
 */
export const exec = (
  connection: Connection,
  command: string,
  options: SessionOptions = {},
  forwarding: SessionForwarding = {}
) =>
  startSession(connection, options, forwarding, (channel) => requestOrFail(channel, "exec", Requests.encodeString(command))).pipe(
    Effect.withSpan("ssh.exec", { attributes: { "ssh.command": command } })
  )

/**
 * Starts the user's login shell (usually with a pty).
 *
 * @example
 * ```ts
 * const sh = yield* Session.shell(ssh.connection, { pty: true })
 * ```
 */
export const shell = (connection: Connection, options: SessionOptions = {}, forwarding: SessionForwarding = {}) =>
  startSession(connection, options, forwarding, (channel) => requestOrFail(channel, "shell", new Uint8Array(0)))

/**
 * Starts a subsystem such as "sftp".
 *
 * @example
 * ```ts
 * const sub = yield* Session.subsystem(ssh.connection, "sftp")
 * ```
 */
export const subsystem = (
  connection: Connection,
  name: string,
  options: SessionOptions = {},
  forwarding: SessionForwarding = {}
) =>
  startSession(connection, options, forwarding, (channel) => requestOrFail(channel, "subsystem", Requests.encodeString(name)))

const collect = (stream: Stream.Stream<Uint8Array, SshError.SshError>) =>
  Stream.runFold(stream, () => [] as Array<Uint8Array>, (acc, chunk) => {
    acc.push(chunk)
    return acc
  }).pipe(Effect.map(concat))

/**
 * Runs a command to completion, collecting stdout and stderr (both drained
 * concurrently, since they share the channel window).
 *
 * @example
 * ```ts
 * const { stdout, exitCode } = yield* Session.run(ssh.connection, "uname -a")
 * ```
 */
export const run = (
  connection: Connection,
  command: string,
  options: SessionOptions & { readonly stdin?: Uint8Array | string | undefined } = {},
  forwarding: SessionForwarding = {}
): Effect.Effect<RunResult, SshError.SshError> =>
  Effect.scoped(Effect.gen(function*() {
    const proc = yield* exec(connection, command, options, forwarding)
    const input = options.stdin
    const feed = input === undefined
      ? proc.closeStdin
      : Effect.andThen(proc.write(input), proc.closeStdin)
    const [, stdoutBytes, stderrBytes] = yield* Effect.all([
      feed,
      collect(proc.stdout),
      options.stderr === "separate" || options.stderr === undefined ? collect(proc.stderr) : Effect.succeed(new Uint8Array(0))
    ], { concurrency: "unbounded" })
    const exit = yield* proc.exit
    const decoder = new TextDecoder()
    return {
      stdout: decoder.decode(stdoutBytes),
      stderr: decoder.decode(stderrBytes),
      stdoutBytes,
      stderrBytes,
      exitCode: exitCode(exit),
      exit
    }
  }))
