/**
 * Pseudo-terminals for server sessions, without native code.
 *
 * Node cannot allocate a pty by itself (no `ioctl`, no `setsid` + `TIOCSCTTY`),
 * so a helper process owns the terminal and relays bytes over pipes. Two
 * helpers are supported; `detect` picks the first one found on PATH:
 *
 * - **python** (preferred): `python3 -I` running a small standard-library
 *   helper. It forks the program on a new pty (its controlling terminal) with
 *   the requested size and terminal modes, relays stdin → terminal → stdout
 *   with `select()` and one bounded buffer per direction (so a full SSH window
 *   stops the program), and takes commands on fd 3: `winch` sets the size on
 *   the master (the kernel then sends SIGWINCH), `kill N` signals the program
 *   itself, as sshd does. It reports the program's pid and its real exit
 *   status (code, or signal and core flag) back on fd 3.
 * - **script**: util-linux `script -qfec` (Debian's essential `bsdutils`). A
 *   `/bin/sh` wrapper on the pty reports its pid and tty on fd 3, sets the
 *   size with `stty`, then execs the program; window changes run
 *   `stty -F /dev/pts/N rows R cols C` from outside (the kernel sends
 *   SIGWINCH); signals go to the program's pid. Limits: terminal modes from
 *   the pty request are not applied, and a program killed by a signal is
 *   reported as exit code 128+N (script's convention).
 *
 * With neither, `detect` returns undefined and `ProcessSession` refuses pty
 * requests, so the client knows (like sshd's "PTY allocation request
 * failed"), and sessions run over pipes.
 *
 * Common behaviour and limits: Linux (or another system with `/dev/pts` and
 * these tools); output and errors of the program both arrive on the terminal
 * (stdout), as with any pty; EOF from the client is passed on as the
 * terminal's EOF character when the terminal is in canonical mode (python)
 * or as ^D (script), otherwise ignored, as sshd does; the terminal is hung up
 * (SIGHUP to the program's session) when the helper is signalled or dies,
 * and `kill` also SIGKILLs the program's process group.
 *
 * @since 0.1.0
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as path from "node:path"
import type * as net from "node:net"
import type { ExitStatus } from "../Channel/Session.ts"
import type { PtyRequest, WindowSize } from "../Channel/Requests.ts"
import type * as SshError from "../SshError.ts"
import { findExecutable, signalGroup, signalNameOf, signalNumber, signalProcess } from "../internal/osProcess.ts"
import type { SpawnedProcess, Spawner } from "../internal/spawner.ts"
import type { RunningProcess } from "./ProcessSession.ts"

/** Which helper provides the terminal. */
export type Backend = "python" | "script"

/** A pty helper found on this machine. */
export interface Helper {
  readonly backend: Backend
  readonly executable: string
}

/** What to run on a new terminal. */
export interface SpawnOptions {
  readonly program: string
  readonly args: ReadonlyArray<string>
  /** Start the program as a login shell ("-sh" as argv[0], or "-l" with script). */
  readonly login: boolean
  readonly cwd: string
  /** The program's environment (TERM included). */
  readonly env: Readonly<Record<string, string>>
  readonly pty: PtyRequest
}

/**
 * Finds a pty helper on PATH: the preferred backend if given and present,
 * else python3, else util-linux script.
 *
 * @example
 * ```ts
 * const helper = Pty.detect() // { backend: "python", executable: "/usr/bin/python3" } | undefined
 * ```
 */
export const detect = (prefer?: Backend, searchPath?: string): Helper | undefined => {
  const order: ReadonlyArray<Backend> = prefer === "script" ? ["script"] : prefer === "python" ? ["python"] : ["python", "script"]
  for (const backend of order) {
    const executable = findExecutable(backend === "python" ? "python3" : "script", searchPath)
    if (executable !== undefined) return { backend, executable }
  }
  return undefined
}

/**
 * Starts a program on a new terminal through the helper, via `spawner`
 * (requests in `queue` take turns with other queues). The helper's stdin
 * is the terminal's input, its stdout the terminal's output; its stderr
 * carries only the helper's own errors.
 *
 * @example
 * ```ts
 * const running = yield* Pty.spawn(spawner, helper, {
 *   program: "/bin/sh", args: ["-c", "tty"], login: false, cwd: "/", env: { TERM: "xterm" },
 *   pty: { term: "xterm", columns: 80, rows: 24 }
 * }, "203.0.113.5:50022")
 * ```
 */
export const spawn = (
  spawner: Spawner,
  helper: Helper,
  options: SpawnOptions,
  queue: string
): Effect.Effect<RunningProcess, SshError.SshError> =>
  helper.backend === "python"
    ? spawnPython(spawner, helper.executable, options, queue)
    : spawnScript(spawner, helper.executable, options, queue)

/** Terminal sizes are 16-bit in the kernel; clients may send anything in a uint32. */
const clampSize = (size: WindowSize) =>
  [size.rows, size.columns, size.width ?? 0, size.height ?? 0].map((n) => Math.max(0, Math.min(65535, Math.floor(n))))

/**
 * The most control commands waiting for the helper to read them; beyond
 * it, further signal and resize requests are dropped rather than buffered
 * (a stopped helper reads nothing, a client may send any number).
 */
const CONTROL_BACKLOG = 64 * 1024

/** Calls `f` with the words of each line the helper writes on its control socket (lines are short; a longer one is dropped). */
const onControlLines = (control: net.Socket, f: (words: ReadonlyArray<string>) => void) => {
  let pending = ""
  control.setEncoding("utf8")
  control.on("data", (text: string) => {
    pending += text
    let newline = pending.indexOf("\n")
    while (newline >= 0) {
      f(pending.slice(0, newline).split(" "))
      pending = pending.slice(newline + 1)
      newline = pending.indexOf("\n")
    }
    if (pending.length > 4096) pending = ""
  })
}

/** Resolves once the socket has closed (both ways), at once if it already has. */
const closed = (socket: net.Socket): Effect.Effect<void> => {
  const done = Deferred.makeUnsafe<void>()
  if (socket.closed) Deferred.doneUnsafe(done, Effect.void)
  else socket.once("close", () => Deferred.doneUnsafe(done, Effect.void))
  return Deferred.await(done)
}

const terminalProcess = (
  child: SpawnedProcess,
  programPid: () => number | undefined,
  reported: () => ExitStatus | undefined,
  control: {
    readonly signal: (n: number) => void
    readonly resize: (size: WindowSize) => void
    readonly hangup: () => void
  }
): RunningProcess => ({
  input: child.stdio[0]!,
  output: child.stdio[1]!,
  errors: child.stdio[2]!,
  // the status line on the control socket may still be in flight when the helper's exit is known
  exit: Effect.map(Effect.zip(child.exit, closed(child.stdio[3]!)), ([status]) => reported() ?? status),
  signal: (name) => {
    const n = signalNumber(name)
    if (n !== undefined) control.signal(n)
  },
  resize: control.resize,
  hangup: control.hangup,
  kill: () => {
    signalGroup(child.pid, "SIGKILL")
    signalGroup(programPid(), "SIGKILL")
  },
  groups: () => [child.pid, programPid()].filter((pid): pid is number => pid !== undefined)
})

const spawnPython = (
  spawner: Spawner,
  executable: string,
  options: SpawnOptions,
  queue: string
): Effect.Effect<RunningProcess, SshError.SshError> => {
  const argv0 = options.login ? `-${path.basename(options.program)}` : options.program
  const args = ["-I", "-c", PYTHON_HELPER, ...clampSize(options.pty).map(String), JSON.stringify(options.pty.modes ?? {}), argv0, options.program, ...options.args]
  return Effect.map(spawner.spawn({ file: executable, args, cwd: options.cwd, env: options.env, pipes: 4 }, queue), (child) => {
    const control = child.stdio[3]!
    let programPid: number | undefined
    let reported: ExitStatus | undefined
    onControlLines(control, ([what, a, b]) => {
      if (what === "pid") programPid = Number(a)
      else if (what === "exit") reported = { _tag: "Exited", code: Number(a) }
      else if (what === "signal") reported = { _tag: "Signaled", signal: signalNameOf(Number(a)), coreDumped: b === "1", message: "" }
    })
    const command = (line: string) => {
      if (control.writable && control.writableLength < CONTROL_BACKLOG) control.write(`${line}\n`)
    }
    return terminalProcess(child, () => programPid, () => reported, {
      signal: (n) => command(`kill ${n}`),
      resize: (size) => command(`winch ${clampSize(size).join(" ")}`),
      // the helper dies, the kernel closes the master: a real hang-up of the terminal
      hangup: () => void signalGroup(child.pid, "SIGHUP")
    })
  })
}

const shellQuote = (word: string): string => `'${word.replaceAll("'", `'\\''`)}'`

/**
 * Runs `stty -F tty rows R cols C` for the latest size asked for, one at a
 * time: a flood of window-change requests costs one stty per completed
 * stty, not one spawn each. A size asked for before the terminal's device is
 * known (its control line may come after the program's first output) waits
 * for `ready`.
 */
const sttyResizer = (spawner: Spawner, queue: string, searchPath: string | undefined) => {
  let busy = false
  let wanted: WindowSize | undefined
  let device: string | undefined
  const next = (): void => {
    const size = wanted
    if (size === undefined || device === undefined) {
      busy = false
      return
    }
    wanted = undefined
    busy = true
    const [rows, columns] = clampSize(size)
    const run = Effect.flatMap(
      spawner.spawn({
        file: "stty",
        args: ["-F", device, "rows", String(rows), "cols", String(columns)],
        cwd: "/",
        env: searchPath === undefined ? {} : { PATH: searchPath },
        pipes: 3
      }, queue),
      (stty) => {
        for (const socket of stty.stdio) socket.destroy()
        return stty.exit
      }
    )
    Effect.runFork(run.pipe(Effect.ignore, Effect.ensuring(Effect.sync(next))))
  }
  return {
    resize: (size: WindowSize) => {
      wanted = size
      if (!busy) next()
    },
    ready: (tty: string) => {
      device = tty
      if (!busy) next()
    }
  }
}

const spawnScript = (
  spawner: Spawner,
  executable: string,
  options: SpawnOptions,
  queue: string
): Effect.Effect<RunningProcess, SshError.SshError> => {
  const [rows, columns] = clampSize(options.pty)
  const argv = [options.program, ...(options.login ? ["-l"] : options.args)]
  const wrapper = [
    `tty=$(tty)`,
    `printf 'pid %s %s\\n' "$$" "$tty" >&3`,
    `exec 3>&-`,
    `export SSH_TTY="$tty" SHELL=${shellQuote(options.env.SHELL ?? "/bin/sh")}`,
    `stty rows ${rows} cols ${columns} 2>/dev/null`,
    `exec ${argv.map(shellQuote).join(" ")}`
  ].join("; ")
  return Effect.map(
    spawner.spawn({
      file: executable,
      args: ["-qfec", wrapper, "/dev/null"],
      cwd: options.cwd,
      // script runs its -c command with $SHELL: make that a POSIX shell for the wrapper.
      env: { ...options.env, SHELL: "/bin/sh" },
      pipes: 4
    }, queue),
    (child) => {
      let programPid: number | undefined
      const resizer = sttyResizer(spawner, queue, options.env.PATH)
      onControlLines(child.stdio[3]!, ([what, pid, device]) => {
        if (what === "pid") {
          programPid = Number(pid)
          if (device !== undefined) resizer.ready(device)
        }
      })
      return terminalProcess(child, () => programPid, () => undefined, {
        signal: (n) => void signalProcess(programPid, n),
        resize: resizer.resize,
        // script holds SIGHUP until its child exits: hang up the program's group directly
        hangup: () => {
          signalGroup(programPid, "SIGHUP")
          signalGroup(child.pid, "SIGHUP")
        }
      })
    }
  )
}

/**
 * The python helper: argv = rows cols xpixel ypixel modes-json argv0 program args...;
 * fd 3 is a control socket (in: "winch r c x y", "kill N"; out: "pid N", then
 * "exit N" or "signal N core"). Terminal modes are RFC 4254 §8 opcodes.
 */
const PYTHON_HELPER = String.raw`
import fcntl, json, os, pty, select, signal, struct, sys, termios
rows, cols, xpix, ypix = (int(a) for a in sys.argv[1:5])
modes = json.loads(sys.argv[5])
argv0, program, args = sys.argv[6], sys.argv[7], sys.argv[8:]
CTL = 3
CC = {1: "VINTR", 2: "VQUIT", 3: "VERASE", 4: "VKILL", 5: "VEOF", 6: "VEOL", 7: "VEOL2", 8: "VSTART", 9: "VSTOP",
      10: "VSUSP", 12: "VREPRINT", 13: "VWERASE", 14: "VLNEXT", 18: "VDISCARD"}
FLAGS = {30: (0, "IGNPAR"), 31: (0, "PARMRK"), 32: (0, "INPCK"), 33: (0, "ISTRIP"), 34: (0, "INLCR"), 35: (0, "IGNCR"),
         36: (0, "ICRNL"), 37: (0, "IUCLC"), 38: (0, "IXON"), 39: (0, "IXANY"), 40: (0, "IXOFF"), 41: (0, "IMAXBEL"),
         42: (0, "IUTF8"), 50: (3, "ISIG"), 51: (3, "ICANON"), 52: (3, "XCASE"), 53: (3, "ECHO"), 54: (3, "ECHOE"),
         55: (3, "ECHOK"), 56: (3, "ECHONL"), 57: (3, "NOFLSH"), 58: (3, "TOSTOP"), 59: (3, "IEXTEN"), 60: (3, "ECHOCTL"),
         61: (3, "ECHOKE"), 62: (3, "PENDIN"), 70: (1, "OPOST"), 71: (1, "OLCUC"), 72: (1, "ONLCR"), 73: (1, "OCRNL"),
         74: (1, "ONOCR"), 75: (1, "ONLRET"), 90: (2, "CS7"), 91: (2, "CS8"), 92: (2, "PARENB"), 93: (2, "PARODD")}

def apply_modes(fd):
    attrs = termios.tcgetattr(fd)
    for key, value in modes.items():
        op = int(key)
        if op in CC and hasattr(termios, CC[op]):
            attrs[6][getattr(termios, CC[op])] = bytes([0 if value == 255 else value & 255])
        elif op in FLAGS and hasattr(termios, FLAGS[op][1]):
            index, bit = FLAGS[op][0], getattr(termios, FLAGS[op][1])
            attrs[index] = attrs[index] | bit if value else attrs[index] & ~bit
    termios.tcsetattr(fd, termios.TCSANOW, attrs)

os.set_inheritable(CTL, False)
# closed by the child once it has set the terminal's first size: a window change must not come before it
sized_r, sized_w = os.pipe()
pid, master = pty.fork()
if pid == 0:
    try:
        os.close(sized_r)
        for s in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT):
            signal.signal(s, signal.SIG_DFL)
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, xpix, ypix))
        apply_modes(0)
        os.close(sized_w)
        os.environ["SSH_TTY"] = os.ttyname(0)
        os.execvp(program, [argv0] + args)
    except BaseException as e:
        os.write(2, ("%s: %s\r\n" % (program, e)).encode())
    os._exit(127)

def send(line):
    try:
        os.write(CTL, (line + "\n").encode())
    except OSError:
        pass

def read(fd):
    try:
        return os.read(fd, 65536)
    except BlockingIOError:
        return None
    except OSError:
        return b""

os.close(sized_w)
os.read(sized_r, 1)
os.close(sized_r)
wake_r, wake_w = os.pipe()
for fd in (0, 1, master, wake_r, wake_w):
    os.set_blocking(fd, False)
signal.signal(signal.SIGCHLD, lambda *_: None)
signal.set_wakeup_fd(wake_w)
send("pid %d" % pid)
inbuf, outbuf, ctlbuf = b"", b"", b""
stdin_open, master_open, status = True, True, None
while True:
    if status is None:
        done, st = os.waitpid(pid, os.WNOHANG)
        if done:
            status = st
    if status is not None and not master_open and not outbuf:
        break
    r = [CTL, wake_r] + ([master] if master_open and not outbuf else []) + ([0] if stdin_open and not inbuf else [])
    w = ([1] if outbuf else []) + ([master] if inbuf and master_open else [])
    ready_r, ready_w, _ = select.select(r, w, [], 0.1 if status is not None else None)
    if not ready_r and not ready_w and master in r:
        master_open = False  # the program is gone and its terminal has gone quiet
        continue
    if wake_r in ready_r:
        read(wake_r)
    if CTL in ready_r:
        data = read(CTL)
        if data == b"":
            break  # the server went away: hang up
        ctlbuf += data or b""
        while b"\n" in ctlbuf:
            line, ctlbuf = ctlbuf.split(b"\n", 1)
            cmd = line.decode().split()
            try:
                if cmd[0] == "winch":
                    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", *(int(v) for v in cmd[1:5])))
                elif cmd[0] == "kill":
                    os.kill(pid, int(cmd[1]))
            except Exception:
                pass
    while master in ready_r and master_open and len(outbuf) < 65536:
        data = read(master)  # a pty hands out at most a few KiB per read: gather them
        if data is None:
            break
        if data == b"":
            master_open = False
        outbuf += data
    if 0 in ready_r:
        data = read(0)
        if data == b"":
            stdin_open = False
            attrs = termios.tcgetattr(master)
            if attrs[3] & termios.ICANON:
                inbuf = attrs[6][termios.VEOF]
        elif data:
            inbuf = data
    if outbuf:
        try:
            outbuf = outbuf[os.write(1, outbuf):]
        except BlockingIOError:
            pass
        except OSError:
            break
    if inbuf and master_open:
        try:
            inbuf = inbuf[os.write(master, inbuf):]
        except BlockingIOError:
            pass
        except OSError:
            inbuf, stdin_open = b"", False
os.close(master)
if status is not None and os.WIFSIGNALED(status):
    send("signal %d %d" % (os.WTERMSIG(status), 1 if os.WCOREDUMP(status) else 0))
elif status is not None:
    send("exit %d" % os.WEXITSTATUS(status))
`
