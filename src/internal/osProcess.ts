/**
 * Small helpers for the OS processes behind server sessions: signal names
 * and numbers, process-group signalling and liveness, exit statuses, and
 * PATH lookup. Linux/POSIX only.
 *
 * @internal
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import type { ChildProcess } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import type { ExitStatus } from "../Channel/Session.ts"
import * as SshError from "../SshError.ts"

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

/**
 * Whether a process group has a member that is not a zombie. Zombies count
 * as gone: after a hang-up, orphans wait for init to reap them, which can
 * take a while. Without /proc, any member counts.
 *
 * @example
 * ```ts
 * groupAlive(child.pid!) // false once the whole group has exited
 * ```
 * @internal
 */
export const groupAlive = (pgid: number | undefined): boolean => {
  if (!signalGroup(pgid, 0)) return false
  // A member may fork while we scan (and its parent exit): rescan until no new pid shows up.
  const seen = new Set<string>()
  for (let round = 0; round < 5; round++) {
    let entries: Array<string>
    try {
      entries = fs.readdirSync("/proc")
    } catch {
      return true
    }
    const fresh = entries.filter((entry) => /^\d+$/.test(entry) && !seen.has(entry))
    if (fresh.length === 0) return false
    for (const entry of fresh) {
      seen.add(entry)
      const fields = procStat(entry)
      if (fields !== undefined && Number(fields[2]) === pgid && fields[0] !== "Z") return true
    }
  }
  return signalGroup(pgid, 0)
}

/** The fields of /proc/<pid>/stat after the command name: state, ppid, pgrp, ... */
const procStat = (pid: string): Array<string> | undefined => {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "latin1")
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

/**
 * Whether a path is an existing directory.
 *
 * @example
 * ```ts
 * isDirectory("/tmp") // true
 * ```
 * @internal
 */
export const isDirectory = (dir: string): boolean => {
  try {
    return fs.statSync(dir).isDirectory()
  } catch {
    return false
  }
}

/**
 * How a child process ends: its status on `event` ("exit" when output is
 * drained separately, "close" when a status line may still be in flight on
 * its stdio), or a `ChannelRequestFailed` if it could not be started.
 * `reported` overrides the status Node saw (a helper relaying its child's).
 *
 * @example
 * ```ts
 * const exit = watchExit(spawn("sh", ["-c", "exit 3"]), "sh", "exit")
 * ```
 * @internal
 */
export const watchExit = (
  child: ChildProcess,
  command: string,
  event: "exit" | "close",
  reported: () => ExitStatus | undefined = () => undefined
): Effect.Effect<ExitStatus, SshError.SshError> => {
  const done = Deferred.makeUnsafe<ExitStatus, SshError.SshError>()
  child.once("error", (cause) => {
    if (child.pid !== undefined) return // a failed kill(), not a failed start
    const message = `cannot start ${command}: ${cause.message}`
    Deferred.doneUnsafe(done, Effect.fail(SshError.make(new SshError.ChannelRequestFailed({ request: "exec", message }))))
  })
  child.once(event, (code: number | null, signal: NodeJS.Signals | null) => {
    Deferred.doneUnsafe(done, Effect.succeed(reported() ?? statusOf(code, signal)))
  })
  // The program may exit without reading its input: EPIPE is then expected, not a crash.
  child.stdin?.on("error", () => {})
  return Deferred.await(done)
}
