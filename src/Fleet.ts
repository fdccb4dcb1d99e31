/**
 * One command over many hosts, as parallel-ssh, Fabric's ThreadingGroup or
 * an Ansible ad-hoc run: each host is connected to, runs the command, and
 * reports a result — exit status, the tails of its output, how long it took,
 * or the typed error that stopped it — as a Stream, in the order they finish.
 *
 * @example
 * ```ts
 * const results = yield* SshFleet.collect(hosts.map((host) => ({ ...options, host })), "uptime", { concurrency: 20 })
 * for (const r of results) console.log(r.host, r._tag === "Done" ? r.exitCode : r.error.message)
 * ```
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as FileSystem from "effect/FileSystem"
import * as Semaphore from "effect/Semaphore"
import * as Stream from "effect/Stream"
import type * as Session from "./Channel/Session.ts"
import * as SshClient from "./Client.ts"
import * as SshError from "./SshError.ts"

/** Options of a fleet run. */
export interface FleetOptions {
  /** Hosts worked on at once (default 32). */
  readonly concurrency?: number | undefined
  /**
   * Connections being established at once — TCP, key exchange and authentication — below `concurrency`
   * (default 48). A burst of connects beyond a server's listen backlog (sshd's is 128) loses SYNs that come back
   * only after TCP's retransmission timeouts (1 s, then 3 s, 7 s...), and two hundred key exchanges at once only
   * share one CPU: commands run `concurrency` at a time, handshakes `startups` at a time.
   */
  readonly startups?: number | undefined
  /** Time allowed per host, connect included (default none). */
  readonly timeout?: Duration.Input | undefined
  /** Bytes of stdout and of stderr kept per host, the last ones (default 64 KiB each). */
  readonly keepBytes?: number | undefined
  /** Options of the command's session (env, pty, stderr handling). */
  readonly session?: Session.SessionOptions | undefined
}

/** What one host did. */
export type HostResult =
  | {
    readonly _tag: "Done"
    readonly host: string
    readonly port: number
    readonly exitCode: number | undefined
    readonly exit: Session.ExitStatus
    /** The last `keepBytes` of its output (all of it when shorter). */
    readonly stdout: string
    readonly stderr: string
    /** Whether output was cut to its tail. */
    readonly truncated: boolean
    readonly duration: Duration.Duration
  }
  | {
    readonly _tag: "Failed"
    readonly host: string
    readonly port: number
    /** The error, naming the host. */
    readonly error: SshError.SshError
    readonly duration: Duration.Duration
  }

const decoder = new TextDecoder()

/** Keeps the last `limit` bytes of what it is given. */
const tail = (limit: number) => {
  const chunks: Array<Uint8Array> = []
  let size = 0
  let truncated = false
  return {
    push: (chunk: Uint8Array) => {
      chunks.push(chunk)
      size += chunk.length
      while (size - chunks[0]!.length >= limit) {
        size -= chunks.shift()!.length
        truncated = true
      }
    },
    text: () => {
      const all = new Uint8Array(size)
      let offset = 0
      for (const chunk of chunks) {
        all.set(chunk, offset)
        offset += chunk.length
      }
      const cut = Math.max(0, size - limit)
      if (cut > 0) truncated = true
      return decoder.decode(all.subarray(cut))
    },
    get truncated() {
      return truncated
    }
  }
}

/** The error naming its host (`SshClient.connect` already does; a timeout of the whole host does not). */
const onHost = (destination: SshClient.ConnectOptions, error: SshError.SshError): SshError.SshError =>
  SshError.withDestination(error, SshError.formatDestination(destination))

/** Runs the command on one host: its result, never a failure. */
const runOn = (
  destination: SshClient.ConnectOptions,
  command: string,
  options: FleetOptions,
  startups: Semaphore.Semaphore
): Effect.Effect<HostResult, never, SshClient.Connector | FileSystem.FileSystem> => {
  const keep = options.keepBytes ?? 64 * 1024
  const started = performance.now()
  const elapsed = () => Duration.millis(performance.now() - started)
  const work = Effect.scoped(Effect.gen(function*() {
    const ssh = yield* startups.withPermit(SshClient.connect(destination))
    const proc = yield* ssh.exec(command, options.session)
    const out = tail(keep)
    const err = tail(keep)
    yield* Effect.all([
      proc.closeStdin,
      proc.consumeStdout((chunks) => Effect.sync(() => chunks.forEach(out.push))),
      proc.consumeStderr((chunks) => Effect.sync(() => chunks.forEach(err.push)))
    ], { concurrency: "unbounded", discard: true })
    const exit = yield* proc.exit
    const exitCode = exit._tag === "Exited" ? exit.code : exit._tag === "Signaled" ? 128 + signalNumber(exit.signal) : undefined
    const stdout = out.text()
    const stderr = err.text()
    return {
      _tag: "Done",
      host: destination.host,
      port: destination.port ?? 22,
      exitCode,
      exit,
      stdout,
      stderr,
      truncated: out.truncated || err.truncated,
      duration: elapsed()
    } satisfies HostResult
  }))
  const limited = options.timeout === undefined ? work : Effect.timeoutOrElse(work, {
    duration: options.timeout,
    orElse: () =>
      Effect.fail(SshError.make(new SshError.Timeout({ message: `no result within ${Duration.format(Duration.fromInputUnsafe(options.timeout!))}` })))
  })
  return Effect.catch(limited, (error) =>
    Effect.succeed({ _tag: "Failed", host: destination.host, port: destination.port ?? 22, error: onHost(destination, error), duration: elapsed() } satisfies HostResult)).pipe(
      Effect.withSpan("ssh.fleet.host", { attributes: { "ssh.host": destination.host, "ssh.port": destination.port ?? 22 } })
    )
}

const DEFAULT_STARTUPS = 48

const signals: Readonly<Record<string, number>> = { HUP: 1, INT: 2, QUIT: 3, ILL: 4, ABRT: 6, FPE: 8, KILL: 9, SEGV: 11, PIPE: 13, ALRM: 14, TERM: 15 }
const signalNumber = (name: string): number => signals[name] ?? 0

/**
 * The command on every host, `concurrency` at a time: one result per host, as each finishes.
 *
 * @example
 * ```ts
 * yield* SshFleet.run(destinations, "uptime", { concurrency: 20, timeout: "30 seconds" }).pipe(
 *   Stream.runForEach((r) => Console.log(`${r.host} ${r._tag}`))
 * )
 * ```
 */
export const run = (
  destinations: Iterable<SshClient.ConnectOptions>,
  command: string,
  options: FleetOptions = {}
): Stream.Stream<HostResult, never, SshClient.Connector | FileSystem.FileSystem> =>
  Stream.unwrap(Effect.map(Semaphore.make(options.startups ?? DEFAULT_STARTUPS), (startups) =>
    Stream.fromIterable(destinations).pipe(
      Stream.mapEffect((destination) => runOn(destination, command, options, startups), { concurrency: options.concurrency ?? 32, unordered: true })
    )))

/**
 * `run`, collected: every host's result, in the order they finished.
 *
 * @example
 * ```ts
 * const results = yield* SshFleet.collect(destinations, "systemctl is-active nginx")
 * const failed = results.filter((r) => r._tag === "Failed" || r.exitCode !== 0)
 * ```
 */
export const collect = (
  destinations: Iterable<SshClient.ConnectOptions>,
  command: string,
  options: FleetOptions = {}
): Effect.Effect<ReadonlyArray<HostResult>, never, SshClient.Connector | FileSystem.FileSystem> =>
  Stream.runCollect(run(destinations, command, options))
