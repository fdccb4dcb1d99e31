/**
 * Small helpers for the OS processes behind server sessions: signal names
 * and numbers, process-group signalling, waiting for groups to end, exit
 * statuses, and PATH lookup. Linux/POSIX only.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import type { ExitStatus } from "../Channel/Session.ts"

const signalNumbers: Readonly<Record<string, number>> = os.constants.signals

/**
 * The number of a signal given by its SSH name (without "SIG"), if the OS knows it.
 *
 * @example
 * ```ts
 * signalNumber("TERM") // 15
 * signalNumber("tea@example.com") // undefined
 * ```
 * @internal
 */
export const signalNumber = (name: string): number | undefined =>
  Object.hasOwn(signalNumbers, `SIG${name}`) ? signalNumbers[`SIG${name}`] : undefined

/**
 * The SSH name (without "SIG") of a signal number; unknown numbers keep their number.
 *
 * @example
 * ```ts
 * signalNameOf(9) // "KILL"
 * ```
 * @internal
 */
export const signalNameOf = (n: number): string => {
  for (const [name, value] of Object.entries(signalNumbers)) {
    if (value === n && name !== "SIGIOT" && name !== "SIGPOLL") return name.slice(3)
  }
  return String(n)
}

/**
 * An exit status from Node's `(code, signal)` pair of a child's "exit" event.
 * Node does not report whether a core was dumped.
 *
 * @example
 * ```ts
 * statusOf(null, "SIGTERM") // { _tag: "Signaled", signal: "TERM", coreDumped: false, message: "" }
 * ```
 * @internal
 */
export const statusOf = (code: number | null, signal: NodeJS.Signals | null): ExitStatus =>
  signal !== null
    ? { _tag: "Signaled", signal: signal.slice(3), coreDumped: false, message: "" }
    : { _tag: "Exited", code: code ?? 0 }

/**
 * Sends a signal to a process group (0 only probes); returns false if the group is gone.
 *
 * @example
 * ```ts
 * signalGroup(child.pid!, "SIGHUP")
 * ```
 * @internal
 */
export const signalGroup = (pgid: number | undefined, signal: NodeJS.Signals | 0): boolean =>
  signalProcess(pgid === undefined ? undefined : -pgid, signal)

/** Options of `makeGroupWatch`. */
export interface GroupWatchOptions {
  /** How often a waiter probes its groups with kill(2), in ms (default 25). */
  readonly probeInterval?: number | undefined
  /** The shortest time between two scans of /proc, in ms (default 100). */
  readonly scanInterval?: number | undefined
}

/**
 * Waits for process groups to end, for every session of a server at once.
 *
 * @example
 * ```ts
 * const watch = makeGroupWatch()
 * signalGroup(pgid, "SIGHUP")
 * const gone = yield* watch.awaitGone([pgid], 2000)
 * ```
 * @internal
 */
export interface GroupWatch {
  /**
   * Waits until none of the groups has a member that is not a zombie, or
   * `ms` have passed; true if they are gone.
   */
  readonly awaitGone: (pgids: ReadonlyArray<number>, ms: number) => Effect.Effect<boolean>
}

/** One look at the process table: the groups with a member that is not a zombie (undefined without /proc). */
interface Scan {
  readonly id: number
  readonly liveGroups: ReadonlySet<number> | undefined
}

/**
 * A `GroupWatch`. Whether a group exists is one kill(2) probe; but orphaned
 * members of a hung-up group are zombies until init reaps them (some
 * container inits never do), and kill(2) counts zombies. For groups that
 * still exist, the watch reads /proc — once for all its waiters, at most
 * every `scanInterval`, asynchronously — so supervising n sessions costs
 * O(processes) per scan, not O(n × processes) on the event loop. A group
 * counts as gone when two successive scans found no live member (a member
 * forking while a scan reads the table shows up in the next one).
 *
 * @example
 * ```ts
 * const watch = makeGroupWatch({ scanInterval: 200 })
 * ```
 * @internal
 */
export const makeGroupWatch = (options: GroupWatchOptions = {}): GroupWatch => {
  const probeInterval = options.probeInterval ?? 25
  const scanInterval = options.scanInterval ?? 100
  let latest: Scan = { id: 0, liveGroups: new Set() }
  let running: Promise<Scan> | undefined
  let lastStart = 0

  /** A scan newer than `after`: the latest, the one under way, or a new one once `scanInterval` has passed. */
  const scanAfter = (after: number): Promise<Scan> => {
    if (latest.id > after) return Promise.resolve(latest)
    if (running !== undefined) return running
    const id = latest.id + 1
    const wait = Math.max(0, lastStart + scanInterval - Date.now())
    running = new Promise<void>((resolve) => setTimeout(resolve, wait)).then(async () => {
      lastStart = Date.now()
      const scan: Scan = { id, liveGroups: await liveProcessGroups() }
      latest = scan
      running = undefined
      return scan
    })
    return running
  }

  const awaitGone = (pgids: ReadonlyArray<number>, ms: number): Effect.Effect<boolean> =>
    Effect.gen(function*() {
      const deadline = Date.now() + ms
      // the first scan that found no live member of a group, while kill(2) still saw the group
      const absentSince = new Map<number, number>()
      let seen = latest.id
      for (;;) {
        const existing = pgids.filter((pgid) => signalGroup(pgid, 0))
        if (existing.length === 0) return true
        const scan = yield* Effect.promise(() => scanAfter(seen))
        seen = scan.id
        const groups = scan.liveGroups
        if (groups !== undefined) {
          for (const pgid of existing) {
            if (groups.has(pgid)) absentSince.delete(pgid)
            else if (!absentSince.has(pgid)) absentSince.set(pgid, scan.id)
          }
          if (existing.every((pgid) => absentSince.get(pgid)! < scan.id)) return true
        }
        if (Date.now() >= deadline) return false
        yield* Effect.sleep(Math.min(probeInterval, Math.max(1, deadline - Date.now())))
      }
    })

  return { awaitGone }
}

const numeric = /^\d+$/

/**
 * The process groups that have a member which is not a zombie, from
 * /proc/<pid>/stat (read asynchronously, a few at a time); undefined
 * without /proc.
 */
const liveProcessGroups = async (): Promise<ReadonlySet<number> | undefined> => {
  let entries: Array<string>
  try {
    entries = await fs.promises.readdir("/proc")
  } catch {
    return undefined
  }
  const pids = entries.filter((entry) => numeric.test(entry))
  const groups = new Set<number>()
  const batch = 16
  for (let i = 0; i < pids.length; i += batch) {
    await Promise.all(pids.slice(i, i + batch).map(async (pid) => {
      const fields = await procStat(pid)
      if (fields !== undefined && fields[0] !== "Z") groups.add(Number(fields[2]))
    }))
  }
  return groups
}

/** The fields of /proc/<pid>/stat after the command name: state, ppid, pgrp, ... */
const procStat = async (pid: string): Promise<Array<string> | undefined> => {
  try {
    const stat = await fs.promises.readFile(`/proc/${pid}/stat`, "latin1")
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")
  } catch {
    return undefined
  }
}

/**
 * Sends a signal to one process (0 only probes); returns false if it is gone.
 *
 * @example
 * ```ts
 * signalProcess(pid, "SIGTERM")
 * ```
 * @internal
 */
export const signalProcess = (pid: number | undefined, signal: NodeJS.Signals | number): boolean => {
  if (pid === undefined || pid === 0 || pid === -1) return false
  try {
    process.kill(pid, signal)
    return true
  } catch (e) {
    // EPERM: it exists but is not ours (a group member that switched users) — still alive.
    return (e as NodeJS.ErrnoException).code === "EPERM"
  }
}

/**
 * The first executable of that name on PATH (or the path itself, if it contains a slash).
 *
 * @example
 * ```ts
 * findExecutable("python3") // "/usr/bin/python3"
 * ```
 * @internal
 */
export const findExecutable = (name: string, searchPath: string = process.env.PATH ?? ""): string | undefined => {
  const candidates = name.includes("/") ? [name] : searchPath.split(":").filter((dir) => dir !== "").map((dir) => path.join(dir, name))
  return candidates.find(isExecutableFile)
}

const isExecutableFile = (file: string): boolean => {
  try {
    fs.accessSync(file, fs.constants.X_OK)
    return fs.statSync(file).isFile()
  } catch {
    return false
  }
}
