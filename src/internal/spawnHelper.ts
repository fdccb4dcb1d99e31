/**
 * The process spawner's helper: a small Node program, started by
 * `spawner.ts` with an IPC channel, that starts session processes on the
 * server's behalf. Node's `spawn` blocks its caller until the child has
 * called exec(); on a busy machine the forked child waits for a CPU first,
 * so each spawn can hold an event loop for hundreds of milliseconds. Here
 * that wait blocks only this helper, never the server's connections.
 *
 * Messages (JSON over the IPC channel):
 * - in: `{ op: "spawn", id, file, args, argv0?, cwd, env, pipes }`;
 * - out: `{ op: "pipe", id, fd }` once per stdio pipe, carrying that pipe's
 *   socket as the message's handle (fd 0 first); then `{ op: "exit", id,
 *   code, signal }`; or `{ op: "failed", id, message }` if it could not start.
 *
 * Each process gets its own session and process group (setsid). When the
 * channel closes (the server exited, even by SIGKILL) every group still
 * running gets SIGHUP, then SIGKILL two seconds later, and the helper exits.
 * It lives in its own session too, so a terminal's ^C reaches the server,
 * which hangs its sessions up itself, and not the helper.
 *
 * Only Node's own modules are imported: this starts in a few tens of ms.
 *
 * @internal
 */
import { spawn, type ChildProcess } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"

/** A request to start a process. */
export interface SpawnMessage {
  readonly op: "spawn"
  readonly id: number
  readonly file: string
  readonly args: ReadonlyArray<string>
  readonly argv0?: string | undefined
  /** Working directory; "/" if it is not a directory. */
  readonly cwd: string
  readonly env: Readonly<Record<string, string>>
  /** How many stdio pipes: stdin, stdout, stderr and maybe a control socket on fd 3. */
  readonly pipes: number
}

/** What the helper reports. */
export type HelperMessage =
  | { readonly op: "pipe"; readonly id: number; readonly fd: number; readonly pid: number }
  | { readonly op: "exit"; readonly id: number; readonly code: number | null; readonly signal: NodeJS.Signals | null }
  | { readonly op: "failed"; readonly id: number; readonly message: string }

/** Node's socket internals: the native pipe behind a stream. */
interface PipeHandle {
  readStop?: () => number
}

const live = new Set<number>()

const send = (message: HelperMessage, handle?: net.Socket) => {
  if (process.connected) process.send!(message, handle, {}, () => {})
}

const directoryOr = (dir: string, fallback: string): string => {
  try {
    return fs.statSync(dir).isDirectory() ? dir : fallback
  } catch {
    return fallback
  }
}

/**
 * Takes a stdio pipe away from its ChildProcess stream, which would read
 * from it (data then lost with the handle) and destroy stdin on exit,
 * possibly before the handle has been sent: a fresh socket that never reads
 * holds it until it is sent, then the send closes our copy.
 */
const detach = (stream: unknown): net.Socket => {
  const socket = stream as { _handle: PipeHandle | null }
  const handle = socket._handle!
  socket._handle = null
  handle.readStop?.()
  return new net.Socket({ handle, readable: false, writable: false } as net.SocketConstructorOpts)
}

const start = (request: SpawnMessage) => {
  let child: ChildProcess
  try {
    child = spawn(request.file, [...request.args], {
      cwd: directoryOr(request.cwd, "/"),
      env: request.env,
      stdio: Array.from({ length: request.pipes }, () => "pipe" as const),
      detached: true,
      ...(request.argv0 === undefined ? {} : { argv0: request.argv0 })
    })
  } catch (cause) {
    // arguments spawn cannot pass, e.g. a NUL byte
    return send({ op: "failed", id: request.id, message: cause instanceof Error ? cause.message : String(cause) })
  }
  const pid = child.pid
  if (pid === undefined) {
    child.once("error", (cause) => send({ op: "failed", id: request.id, message: cause.message }))
    return
  }
  live.add(pid)
  child.on("error", () => {})
  const pipes = child.stdio.map(detach)
  child.once("exit", (code, signal) => {
    live.delete(pid)
    send({ op: "exit", id: request.id, code, signal })
    if (!process.connected && live.size === 0) process.exit(0)
  })
  pipes.forEach((pipe, fd) => send({ op: "pipe", id: request.id, fd, pid }, pipe))
}

const hangUpAll = () => {
  const signalAll = (signal: NodeJS.Signals) => {
    for (const pid of live) {
      try {
        process.kill(-pid, signal)
      } catch {
        live.delete(pid)
      }
    }
  }
  signalAll("SIGHUP")
  if (live.size === 0) return process.exit(0)
  setTimeout(() => {
    signalAll("SIGKILL")
    process.exit(0)
  }, 2000)
}

process.on("message", (message: SpawnMessage) => {
  if (message.op === "spawn") start(message)
})
process.on("disconnect", hangUpAll)
