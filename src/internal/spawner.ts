/**
 * Starting session processes without blocking the event loop.
 *
 * Node's `spawn` returns only once the forked child has called exec(). That
 * takes a few milliseconds on an idle machine, but when the machine is busy
 * — typically with the sessions' own shells running their rc files — the
 * child first waits for a CPU, and one spawn holds the event loop for
 * hundreds of milliseconds; a client opening 64 sessions at once stalls
 * every other connection for seconds. A `Spawner` hands the spawns to a
 * helper process (`spawnHelper.ts`) over an IPC channel: the helper's event
 * loop takes the wait, and the started process's stdio pipes come back as
 * sockets, so data flows between the program and the server directly.
 *
 * The helper starts with the first request (about 0.1 s) and exits after
 * `idleTimeout` without requests or running processes, or when the server
 * exits; it costs some 20 MiB of private memory while it runs. At
 * most `inFlight` requests are at the helper at once; the others wait in
 * one queue per caller-chosen key (a connection), and the key with the
 * fewest processes goes first, so a client that asks for 200 processes
 * delays another client's login by a couple of spawns, not 200.
 *
 * @internal
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import { fork, type ChildProcess } from "node:child_process"
import type * as net from "node:net"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import type { ExitStatus } from "../Channel/Session.ts"
import * as SshError from "../SshError.ts"
import { signalGroup, statusOf } from "./osProcess.ts"
import type { HelperMessage, SpawnMessage } from "./spawnHelper.ts"

/** A process to start: its own session and process group, `pipes` stdio pipes. */
export interface SpawnRequest {
  readonly file: string
  readonly args: ReadonlyArray<string>
  readonly argv0?: string | undefined
  /** Working directory; "/" if it is not a directory. */
  readonly cwd: string
  readonly env: Readonly<Record<string, string>>
  /** 3 (stdin, stdout, stderr), or 4 with a control socket on fd 3. */
  readonly pipes: 3 | 4
}

/** A started process. */
export interface SpawnedProcess {
  readonly pid: number
  /** One socket per pipe, fd order. */
  readonly stdio: ReadonlyArray<net.Socket>
  /** How it ended; Unknown if the helper went away before telling. */
  readonly exit: Effect.Effect<ExitStatus>
}

/**
 * Starts processes through a helper process.
 *
 * @example
 * ```ts
 * const spawner = makeSpawner()
 * const child = yield* spawner.spawn({ file: "/bin/sh", args: ["-c", "uname"], cwd: "/", env: {}, pipes: 3 }, "peer")
 * ```
 * @internal
 */
export interface Spawner {
  /** Starts a process once its turn in `queue` comes; fails with ChannelRequestFailed if it cannot start. */
  readonly spawn: (request: SpawnRequest, queue: string) => Effect.Effect<SpawnedProcess, SshError.SshError>
}

/** Options of `makeSpawner`. */
export interface SpawnerOptions {
  /** Requests at the helper at once (default 2). */
  readonly inFlight?: number | undefined
  /** How long an idle helper lives, in ms (default 30 s). */
  readonly idleTimeout?: number | undefined
}

/**
 * Queues that take turns: `shift` serves the key with the lowest load (the
 * fewest processes started for it and still running, say), and among
 * equals the one served longest ago — so a connection with no processes
 * goes before one that already has fifty, and one busy key cannot starve
 * the others.
 *
 * @example
 * ```ts
 * const q = new FairQueue<string>()
 * q.push("a", "a1"); q.push("a", "a2"); q.push("b", "b1")
 * q.shift(() => 0) // "a1", then "b1", then "a2"
 * ```
 * @internal
 */
export class FairQueue<A> {
  /** In rotation order: the key served longest ago first. */
  private readonly lanes = new Map<string, Array<A>>()
  private count = 0

  get size(): number {
    return this.count
  }

  push(key: string, item: A): void {
    const lane = this.lanes.get(key)
    if (lane === undefined) this.lanes.set(key, [item])
    else lane.push(item)
    this.count++
  }

  shift(load: (key: string) => number): A | undefined {
    let best: string | undefined
    let bestLoad = Infinity
    for (const key of this.lanes.keys()) {
      const l = load(key)
      if (l < bestLoad) {
        best = key
        bestLoad = l
      }
    }
    if (best === undefined) return undefined
    const lane = this.lanes.get(best)!
    const item = lane.shift()!
    // the key goes to the back of the rotation
    this.lanes.delete(best)
    if (lane.length > 0) this.lanes.set(best, lane)
    this.count--
    return item
  }

  /** Removes an item that is still queued; false if it is not there. */
  remove(key: string, item: A): boolean {
    const lane = this.lanes.get(key)
    const index = lane?.indexOf(item) ?? -1
    if (lane === undefined || index < 0) return false
    lane.splice(index, 1)
    if (lane.length === 0) this.lanes.delete(key)
    this.count--
    return true
  }
}

/** A request from queueing to exit. */
interface Job {
  readonly id: number
  readonly key: string
  readonly request: SpawnRequest
  readonly stdio: Array<net.Socket>
  readonly exit: Deferred.Deferred<ExitStatus>
  pid: number | undefined
  /** Whoever waits for the start; undefined once they gave up. */
  resume: ((result: Effect.Effect<SpawnedProcess, SshError.SshError>) => void) | undefined
}

const helperModule = (): string => {
  const self = fileURLToPath(import.meta.url)
  return path.join(path.dirname(self), `spawnHelper${path.extname(self)}`)
}

const unknownStatus: ExitStatus = { _tag: "Unknown" }

const cannotStart = (file: string, message: string) =>
  SshError.make(new SshError.ChannelRequestFailed({ request: "exec", message: `cannot start ${file}: ${message}` }))

/**
 * A `Spawner` with its own helper process (started lazily).
 *
 * @example
 * ```ts
 * const spawner = makeSpawner({ inFlight: 2 })
 * ```
 * @internal
 */
export const makeSpawner = (options: SpawnerOptions = {}): Spawner => {
  const inFlightLimit = Math.max(1, options.inFlight ?? 2)
  const idleTimeout = options.idleTimeout ?? 30_000
  const queue = new FairQueue<Job>()
  /** At the helper, not yet started. */
  const starting = new Map<number, Job>()
  /** Started, not yet exited. */
  const running = new Map<number, Job>()
  let helper: ChildProcess | undefined
  let idleTimer: ReturnType<typeof setTimeout> | undefined
  let nextId = 1
  /** Processes starting or running, by queue key. */
  const load = new Map<string, number>()
  const addLoad = (key: string, n: number) => {
    const next = (load.get(key) ?? 0) + n
    if (next === 0) load.delete(key)
    else load.set(key, next)
  }

  const busy = () => queue.size + starting.size + running.size > 0

  /** Only pending work keeps the server's event loop alive through the helper. */
  const updateRef = () => {
    if (helper === undefined) return
    if (idleTimer !== undefined) clearTimeout(idleTimer)
    idleTimer = undefined
    if (busy()) {
      helper.ref()
      helper.channel?.ref()
      return
    }
    helper.unref()
    helper.channel?.unref()
    const idle = helper
    idleTimer = setTimeout(() => {
      if (helper !== idle || busy()) return
      helper = undefined
      if (idle.connected) idle.disconnect()
    }, idleTimeout)
    idleTimer.unref()
  }

  const finish = (job: Job, result: Effect.Effect<SpawnedProcess, SshError.SshError>) => {
    const resume = job.resume
    job.resume = undefined
    resume?.(result)
  }

  /** The job is over (started and exited, or failed): it no longer counts for its key. */
  const settle = (job: Job) => {
    if (starting.delete(job.id) || running.delete(job.id)) addLoad(job.key, -1)
  }

  /** The helper is gone: whatever it was doing fails or ends as Unknown. */
  const lost = (gone: ChildProcess, why: string) => {
    if (helper !== gone) return
    helper = undefined
    for (const job of [...starting.values()]) {
      settle(job)
      for (const socket of job.stdio) socket.destroy()
      finish(job, Effect.fail(cannotStart(job.request.file, why)))
    }
    for (const job of [...running.values()]) {
      settle(job)
      Deferred.doneUnsafe(job.exit, Effect.succeed(unknownStatus))
    }
    pump()
  }

  const onMessage = (message: HelperMessage, handle: unknown) => {
    const job = starting.get(message.id) ?? running.get(message.id)
    if (job === undefined) return
    switch (message.op) {
      case "pipe": {
        const socket = handle as net.Socket | undefined
        if (socket === undefined) return
        socket.on("error", () => {})
        job.stdio[message.fd] = socket
        job.pid = message.pid
        if (job.stdio.filter((s) => s !== undefined).length < job.request.pipes) return
        starting.delete(job.id)
        running.set(job.id, job)
        if (job.resume === undefined) {
          // nobody wants it any more
          signalGroup(job.pid, "SIGKILL")
          for (const s of job.stdio) s.destroy()
        } else {
          finish(job, Effect.succeed({ pid: job.pid, stdio: job.stdio, exit: Deferred.await(job.exit) }))
        }
        break
      }
      case "exit":
        settle(job)
        Deferred.doneUnsafe(job.exit, Effect.succeed(statusOf(message.code, message.signal)))
        break
      case "failed":
        settle(job)
        finish(job, Effect.fail(cannotStart(job.request.file, message.message)))
        break
    }
    pump()
  }

  const startHelper = (): ChildProcess => {
    const child = fork(helperModule(), [], {
      detached: true,
      execArgv: [],
      serialization: "json",
      stdio: ["ignore", "ignore", "inherit", "ipc"]
    })
    child.unref()
    child.on("message", onMessage)
    child.once("error", (cause) => lost(child, `process spawner failed: ${cause.message}`))
    child.once("exit", () => lost(child, "process spawner exited"))
    return child
  }

  const pump = () => {
    while (starting.size < inFlightLimit && queue.size > 0) {
      const job = queue.shift((key) => load.get(key) ?? 0)!
      helper ??= startHelper()
      starting.set(job.id, job)
      addLoad(job.key, 1)
      const { file, args, argv0, cwd, env, pipes } = job.request
      const message: SpawnMessage = { op: "spawn", id: job.id, file, args, argv0, cwd, env, pipes }
      helper.send(message, undefined, {}, (error) => {
        if (error !== null && starting.get(job.id) === job) {
          settle(job)
          finish(job, Effect.fail(cannotStart(file, `process spawner unreachable: ${error.message}`)))
          pump()
        }
      })
    }
    updateRef()
  }

  const spawn = (request: SpawnRequest, key: string): Effect.Effect<SpawnedProcess, SshError.SshError> =>
    Effect.callback<SpawnedProcess, SshError.SshError>((resume) => {
      const job: Job = { id: nextId++, key, request, stdio: [], exit: Deferred.makeUnsafe(), pid: undefined, resume }
      queue.push(key, job)
      pump()
      return Effect.sync(() => {
        job.resume = undefined
        if (queue.remove(key, job)) updateRef()
      })
    })

  return { spawn }
}

let shared: Spawner | undefined

/**
 * The process's shared `Spawner`: one helper for every server in this
 * process (queues are per connection anyway).
 *
 * @example
 * ```ts
 * const child = yield* sharedSpawner().spawn(request, "203.0.113.5:50022")
 * ```
 * @internal
 */
export const sharedSpawner = (): Spawner => (shared ??= makeSpawner())
