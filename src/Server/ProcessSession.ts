/**
 * The server's default session handlers: exec and shell requests run real
 * OS processes, through pipes or on a pseudo-terminal (see `Pty`).
 *
 * - exec runs `shell -c command`; shell runs the login shell (`-sh` as
 *   argv[0]) — on a pty if the client asked for one, else over pipes, like
 *   `ssh -T`. The shell is the server process owner's login shell (from the
 *   password database, else `$SHELL`, else `/bin/sh`).
 * - **One OS user.** The server does not switch users (no setuid, PAM, login
 *   records or limits): every session runs as the user running the server,
 *   whatever name the client authenticated as. HOME, USER, LOGNAME and SHELL
 *   are that owner's; PATH and LANG come from the server's environment
 *   (LANG defaults to C.UTF-8); SSH_CONNECTION and SSH_CLIENT describe the
 *   peer, SSH_TTY and TERM the pty. The variables the client sent (those the
 *   session's `acceptEnv` let through) come next, and `options.env` last, as
 *   sshd's SetEnv overrides AcceptEnv.
 * - Many sessions at once: processes are started by a helper process (see
 *   `Spawner`), because Node's spawn blocks until the child has exec'd, which
 *   on a busy machine takes long enough to stall every connection; requests
 *   from different connections take turns, so one client opening dozens of
 *   sessions delays another's login by a few spawns at most. Waiting for
 *   hung-up process groups shares one asynchronous look at /proc between
 *   all sessions.
 * - Backpressure end to end: the client's data is pulled (granting SSH
 *   window) only as fast as the program's stdin drains; the program's output
 *   is read only while the previous chunk's SSH write has completed, so a
 *   slow client fills the pipe and stops the program. Memory per session is
 *   bounded by Node's stream buffers.
 * - How it ends: when the program has exited and its output is drained
 *   (background jobs still holding stdout keep the session open, as with
 *   sshd), the status goes back as exit-status or exit-signal. A signal
 *   request signals the program (sshd semantics: the process, not its
 *   group). If the session ends first — the client closed the channel, the
 *   connection died, the server shut down — the program's whole process group
 *   (each session runs in its own, via setsid) gets SIGHUP, then SIGKILL after
 *   `killTimeout`: no orphans, `nohup` included. Processes that left the
 *   group (`setsid`, daemons) are out of reach, as with any supervisor
 *   without cgroups. If the Node process itself dies (even by SIGKILL), the
 *   spawner's helper hangs up the groups whose leader is still running.
 *
 * @since 0.1.0
 */
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as os from "node:os"
import * as path from "node:path"
import type { Readable, Writable } from "node:stream"
import type * as SshError from "../SshError.ts"
import type { WindowSize } from "../Channel/Requests.ts"
import type { ExitStatus } from "../Channel/Session.ts"
import type { ServerSession, SessionHandlers, SessionPeer } from "../Channel/ServerSession.ts"
import { discard } from "../internal/ownedBuffers.ts"
import { findExecutable, type GroupWatch, makeGroupWatch, signalGroup, signalNumber, signalProcess } from "../internal/osProcess.ts"
import { sharedSpawner, type Spawner } from "../internal/spawner.ts"
import * as Pty from "./Pty.ts"

/** Options of `handlers`. */
export interface ProcessSessionOptions {
  /** The shell for exec and shell requests (default: the owner's login shell, else `$SHELL`, else /bin/sh). */
  readonly shell?: string | undefined
  /** Working directory for a user (default: the owner's home directory, or / if it does not exist). */
  readonly cwd?: ((user: string) => string) | undefined
  /** Extra environment, applied last (like sshd's SetEnv). */
  readonly env?: Readonly<Record<string, string>> | ((peer: SessionPeer) => Readonly<Record<string, string>>) | undefined
  /** Pty helper: "auto" (default: python, else script), one of them, or "none" to refuse pty requests. */
  readonly pty?: Pty.Backend | "auto" | "none" | undefined
  /** How long a hung-up process group has before SIGKILL (default 2 seconds). */
  readonly killTimeout?: Duration.Input | undefined
}

/**
 * A started program as a session drives it, whether on pipes or on a pty.
 *
 * @example
 * ```ts
 * const hangUp = (running: ProcessSession.RunningProcess) => {
 *   running.resize({ columns: 120, rows: 40 })
 *   running.hangup()
 *   return running.exit // the program's ExitStatus, once it has ended
 * }
 * ```
 */
export interface RunningProcess {
  /** The program's stdin. */
  readonly input: Writable
  /** The program's stdout (on a pty: the terminal, stderr included). */
  readonly output: Readable
  /** The program's stderr (on a pty: the helper's own errors). */
  readonly errors: Readable
  /** Resolves when the program has ended. */
  readonly exit: Effect.Effect<ExitStatus>
  /** Delivers a signal request (name without SIG) to the program. */
  readonly signal: (name: string) => void
  /** Resizes the terminal (no-op on pipes). */
  readonly resize: (size: WindowSize) => void
  /** Hangs up: SIGHUP to the program's process group (and its terminal). */
  readonly hangup: () => void
  /** SIGKILL to everything the session started that is still reachable. */
  readonly kill: () => void
  /** The process groups the session started, to wait for them to end. */
  readonly groups: () => ReadonlyArray<number>
}

/**
 * Session handlers that run real processes: exec, shell, and pty requests
 * when a pty helper is available.
 *
 * @example
 * ```ts
 * yield* SshServer.serve({ port: 2222, hostKeys: [hostKey], auth: serverAuth, session: ProcessSession.handlers() })
 * ```
 */
export const handlers = (options: ProcessSessionOptions = {}): SessionHandlers => {
  const account = owner()
  const shell = options.shell ?? ownerShell(account)
  const helper = options.pty === "none" ? undefined : Pty.detect(options.pty === "auto" ? undefined : options.pty)
  const killTimeout = Duration.toMillis(Duration.fromInputUnsafe(options.killTimeout ?? Duration.seconds(2)))
  const settings: Settings = { shell, helper, killTimeout, options, owner: account, spawner: sharedSpawner(), watch: makeGroupWatch() }
  return {
    exec: (session, command) => serveProcess(session, settings, { args: ["-c", command], login: false }),
    shell: (session) => serveProcess(session, settings, { args: [], login: true }),
    allowPty: helper !== undefined
  }
}

interface Settings {
  readonly shell: string
  readonly helper: Pty.Helper | undefined
  readonly killTimeout: number
  readonly options: ProcessSessionOptions
  /** Looked up once: getpwuid can be slow (NSS, LDAP). */
  readonly owner: Owner
  readonly spawner: Spawner
  readonly watch: GroupWatch
}

interface Invocation {
  readonly args: ReadonlyArray<string>
  readonly login: boolean
}

interface Owner {
  readonly username: string
  readonly homedir: string
  readonly shell: string | undefined
}

const owner = (): Owner => {
  try {
    const info = os.userInfo()
    return { username: info.username, homedir: info.homedir, shell: info.shell ?? undefined }
  } catch {
    // no passwd entry for our uid (containers)
    return { username: process.env.USER ?? String(process.getuid?.() ?? ""), homedir: os.homedir(), shell: undefined }
  }
}

const ownerShell = (account: Owner): string =>
  [account.shell, process.env.SHELL].find((s) => s !== undefined && s !== "" && findExecutable(s) !== undefined) ?? "/bin/sh"

const sessionEnv = (session: ServerSession, settings: Settings): Record<string, string> => {
  const { username, homedir } = settings.owner
  const localAddress = "localAddress" in session && typeof session.localAddress === "string" ? session.localAddress : "0.0.0.0"
  const localPort = "localPort" in session && typeof session.localPort === "number" ? session.localPort : 0
  const extra = settings.options.env
  return {
    PATH: process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin",
    HOME: homedir,
    USER: username,
    LOGNAME: username,
    SHELL: settings.shell,
    LANG: process.env.LANG ?? "C.UTF-8",
    SSH_CONNECTION: `${session.remoteAddress} ${session.remotePort} ${localAddress} ${localPort}`,
    SSH_CLIENT: `${session.remoteAddress} ${session.remotePort} ${localPort}`,
    ...(session.pty ? { TERM: session.pty.term } : {}),
    ...session.env,
    ...(typeof extra === "function" ? extra(session) : extra)
  }
}

/** The session's working directory; the helper falls back to / if it is not a directory. */
const sessionCwd = (session: ServerSession, settings: Settings): string =>
  settings.options.cwd?.(session.user) ?? settings.owner.homedir

/** Spawn requests take turns by connection. */
const connectionKey = (session: ServerSession): string => `${session.remoteAddress}:${session.remotePort}`

const spawnPiped = (
  spawner: Spawner,
  program: string,
  invocation: Invocation,
  cwd: string,
  env: Record<string, string>,
  queue: string
): Effect.Effect<RunningProcess, SshError.SshError> =>
  Effect.map(
    spawner.spawn({
      file: program,
      args: invocation.args,
      argv0: invocation.login ? `-${path.basename(program)}` : undefined,
      cwd,
      env,
      pipes: 3
    }, queue),
    (child): RunningProcess => ({
      input: child.stdio[0]!,
      output: child.stdio[1]!,
      errors: child.stdio[2]!,
      exit: child.exit,
      signal: (name) => {
        const n = signalNumber(name)
        if (n !== undefined) signalProcess(child.pid, n)
      },
      resize: () => {},
      hangup: () => void signalGroup(child.pid, "SIGHUP"),
      kill: () => void signalGroup(child.pid, "SIGKILL"),
      groups: () => [child.pid]
    })
  )

const start = (session: ServerSession, settings: Settings, invocation: Invocation): Effect.Effect<RunningProcess, SshError.SshError> => {
  const cwd = sessionCwd(session, settings)
  const env = sessionEnv(session, settings)
  const queue = connectionKey(session)
  return session.pty !== undefined && settings.helper !== undefined
    ? Pty.spawn(settings.spawner, settings.helper, { program: settings.shell, ...invocation, cwd, env, pty: session.pty }, queue)
    : spawnPiped(settings.spawner, settings.shell, invocation, cwd, env, queue)
}

const serveProcess = (
  session: ServerSession,
  settings: Settings,
  invocation: Invocation
) =>
  Effect.gen(function*() {
    const running = yield* start(session, settings, invocation)
    let finished = false
    yield* Effect.addFinalizer(() => finished ? Effect.void : terminate(running, settings))
    session.onSignal(running.signal)
    session.onResize(running.resize)
    yield* Effect.forkScoped(feedInput(session, running.input))
    const [, , status] = yield* Effect.all([
      drainOutput(running.output, (chunk) => session.write(chunk)),
      drainOutput(running.errors, (chunk) => session.write(chunk, "stderr")),
      running.exit
    ], { concurrency: "unbounded" })
    finished = true
    return status
  }).pipe(
    // The client closed the channel (or the connection died): stop waiting; the finalizer hangs up.
    Effect.raceFirst(Effect.as(Deferred.await(session.channel.closed), unknownStatus))
  )

const unknownStatus: ExitStatus = { _tag: "Unknown" }

/**
 * SIGHUP to the session's processes, then SIGKILL for whatever is still
 * alive after `killTimeout`; returns once they are gone (SIGKILL takes
 * effect asynchronously too), or after a further second at most.
 */
const terminate = (running: RunningProcess, settings: Settings): Effect.Effect<void> =>
  Effect.gen(function*() {
    running.hangup()
    if (yield* settings.watch.awaitGone(running.groups(), settings.killTimeout)) return
    running.kill()
    yield* settings.watch.awaitGone(running.groups(), 1000)
  })

/**
 * Copies the client's data into the program's stdin and ends it at EOF. Each
 * batch is taken (`consumeStdin`) once the pipe has taken the one before, so
 * the client's window reopens only as fast as the program reads. Once the program
 * stops reading (EPIPE), further data is pulled and dropped so the client is
 * not blocked by a window that never opens.
 */
const feedInput = (session: ServerSession, input: Writable): Effect.Effect<void> =>
  session.consumeStdin((chunks) => writeInput(input, chunks)).pipe(
    Effect.ignore,
    Effect.ensuring(Effect.sync(() => input.end()))
  )

/** Writes the chunks; done when the last one's callback ran (written, or failed): then the pipe no longer needs them. */
const writeInput = (input: Writable, chunks: ReadonlyArray<Uint8Array>): Effect.Effect<void> =>
  Effect.callback<void>((resume) => {
    if (input.destroyed || input.writableEnded) return resume(Effect.void)
    const last = chunks.length - 1
    for (let i = 0; i < last; i++) input.write(chunks[i])
    input.write(chunks[last], () => resume(Effect.void))
  })

/**
 * Sends a Node stream's data with `write` until it ends. The stream stays
 * paused while a write is pending, so Node stops reading the pipe and the
 * program blocks: that is the backpressure. `read()` returns everything
 * buffered at once, which batches small writes of the program.
 */
const drainOutput = (
  output: Readable,
  write: (chunk: Uint8Array) => Effect.Effect<void, SshError.SshError>
): Effect.Effect<void, SshError.SshError> => {
  // A pipe error ends the output like EOF (the stream is then destroyed); never an uncaught 'error'.
  output.on("error", () => {})
  const next = nextChunk(output)
  // once sealed into packets the chunk Node read is done with: free it now rather than at the next GC
  const loop: Effect.Effect<void, SshError.SshError> = Effect.flatMap(next, (chunk) =>
    chunk === undefined ? Effect.void : write(chunk).pipe(Effect.tap(Effect.sync(() => discard(chunk))), Effect.andThen(loop)))
  return loop
}

/** One waiter on a paused Readable: its next buffered data, or undefined at the end. */
const nextChunk = (output: Readable): Effect.Effect<Uint8Array | undefined> =>
  Effect.callback<Uint8Array | undefined>((resume) => {
    const take = (): boolean => {
      const chunk: Uint8Array | null = output.read()
      if (chunk !== null) {
        resume(Effect.succeed(chunk))
        return true
      }
      if (output.readableEnded || output.destroyed) {
        resume(Effect.succeed(undefined))
        return true
      }
      return false
    }
    if (take()) return
    const events = ["readable", "end", "close", "error"] as const
    const listener = () => {
      if (take()) for (const event of events) output.off(event, listener)
    }
    for (const event of events) output.on(event, listener)
    return Effect.sync(() => {
      for (const event of events) output.off(event, listener)
    })
  })
