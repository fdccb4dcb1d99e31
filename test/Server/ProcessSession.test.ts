/**
 * ProcessSession: real processes behind exec and shell requests — first
 * driven through an in-memory ServerSession, then over real SSH (our server
 * on loopback, our client).
 */
import { describe, expect, it } from "vitest"
import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Queue from "effect/Queue"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as Sink from "effect/Sink"
import * as Stream from "effect/Stream"
import { createHash, randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { runScoped } from "../helpers.ts"
import * as ProcessSession from "../../src/Server/ProcessSession.ts"
import * as Pty from "../../src/Server/Pty.ts"
import * as SshClient from "../../src/Client.ts"
import * as SshServer from "../../src/Server.ts"
import * as Auth from "../../src/Auth/ClientAuth.ts"
import * as HostKeys from "../../src/Auth/HostKeys.ts"
import * as PrivateKey from "../../src/Auth/PrivateKey.ts"
import type { ServerSession, SessionResult } from "../../src/Channel/ServerSession.ts"
import type { SshChannel } from "../../src/Channel/Connection.ts"
import type { PtyRequest, WindowSize } from "../../src/Channel/Requests.ts"
import type { SshError } from "../../src/SshError.ts"
import type { SshProcess } from "../../src/Channel/Session.ts"

const decoder = new TextDecoder()
const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest("hex")
const concat = (chunks: ReadonlyArray<Uint8Array>) => Buffer.concat(chunks.map((c) => Buffer.from(c.buffer, c.byteOffset, c.length)))

/** Whether a pid is still running (zombies count as gone). */
const isRunning = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
  } catch {
    return false
  }
  try {
    return !/^\S+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, "utf8"))
  } catch {
    return false
  }
}

/** Polls until `f` holds (or fails after `ms`). */
const eventually = (f: () => boolean, ms = 10_000, what = "condition"): Effect.Effect<void> =>
  Effect.gen(function*() {
    const deadline = Date.now() + ms
    while (!f()) {
      if (Date.now() > deadline) return yield* Effect.die(new Error(`timed out waiting for ${what}`))
      yield* Effect.sleep(20)
    }
  })

/** An in-memory ServerSession: stdin from a queue, output collected. */
const fakeSession = (options: {
  readonly pty?: PtyRequest | undefined
  readonly env?: Record<string, string> | undefined
  readonly beforeWrite?: Effect.Effect<void> | undefined
} = {}) =>
  Effect.gen(function*() {
    const input = yield* Queue.make<Uint8Array, Cause.Done>()
    const closed = yield* Deferred.make<void>()
    const stdout: Array<Uint8Array> = []
    const stderr: Array<Uint8Array> = []
    const resizeListeners: Array<(size: WindowSize) => void> = []
    const signalListeners: Array<(signal: string) => void> = []
    const encoder = new TextEncoder()
    const session: ServerSession = {
      user: "alice",
      remoteAddress: "192.0.2.7",
      remotePort: 40022,
      channel: { closed } as unknown as SshChannel,
      pty: options.pty,
      env: options.env ?? {},
      stdin: Stream.fromQueue(input),
      consumeStdin: (f) => Stream.runForEachArray(Stream.fromQueue(input), f),
      write: (data, stream) =>
        Effect.andThen(
          options.beforeWrite ?? Effect.void,
          // copies, as the channel's write does (sealing): the caller may free `data` once this completes
          Effect.sync(() => void (stream === "stderr" ? stderr : stdout).push(typeof data === "string" ? encoder.encode(data) : new Uint8Array(data)))
        ),
      stdout: Sink.drain as unknown as ServerSession["stdout"],
      onResize: (f) => void resizeListeners.push(f),
      onSignal: (f) => void signalListeners.push(f)
    }
    return {
      session,
      closed,
      stdoutBytes: () => concat(stdout),
      stdout: () => decoder.decode(concat(stdout)),
      stderr: () => decoder.decode(concat(stderr)),
      send: (text: string | Uint8Array) => Queue.offer(input, typeof text === "string" ? encoder.encode(text) : text),
      eof: Queue.end(input),
      resize: (size: WindowSize) => resizeListeners.forEach((f) => f(size)),
      signal: (name: string) => signalListeners.forEach((f) => f(name))
    }
  })

const run = (
  handler: Effect.Effect<SessionResult, SshError, Scope.Scope>
) => Effect.scoped(handler)

const execIn = (fake: { session: ServerSession }, command: string, options: ProcessSession.ProcessSessionOptions = {}) =>
  run(ProcessSession.handlers({ shell: "/bin/sh", ...options }).exec!(fake.session, command))

const runFake = <A, E>(effect: Effect.Effect<A, E, Scope.Scope>) => Effect.runPromise(Effect.scoped(effect))

const backends = (["python", "script"] as const).filter((b) => Pty.detect(b) !== undefined)

describe("ProcessSession (in-memory session)", () => {
  it("exec: stdout, stderr kept apart, exit code", async () => {
    const out = await runFake(Effect.gen(function*() {
      const fake = yield* fakeSession()
      yield* fake.eof
      const status = yield* execIn(fake, "echo out; echo err >&2; exit 3")
      return { status, stdout: fake.stdout(), stderr: fake.stderr() }
    }))
    expect(out).toEqual({ status: { _tag: "Exited", code: 3 }, stdout: "out\n", stderr: "err\n" })
  })

  it("exec: 8 MiB of stdin through cat comes back intact", async () => {
    const data = randomBytes(8 * 1024 * 1024)
    const out = await runFake(Effect.gen(function*() {
      const fake = yield* fakeSession()
      const feed = Effect.gen(function*() {
        for (let o = 0; o < data.length; o += 100_000) yield* fake.send(data.subarray(o, o + 100_000))
        yield* fake.eof
      })
      const [, status] = yield* Effect.all([feed, execIn(fake, "cat")], { concurrency: "unbounded" })
      return { status, hash: sha256(fake.stdoutBytes()) }
    }))
    expect(out).toEqual({ status: { _tag: "Exited", code: 0 }, hash: sha256(data) })
  })

  it("exec: a program killed by a signal reports it", async () => {
    const status = await runFake(Effect.gen(function*() {
      const fake = yield* fakeSession()
      return yield* execIn(fake, "kill -TERM $$")
    }))
    expect(status).toEqual({ _tag: "Signaled", signal: "TERM", coreDumped: false, message: "" })
  })

  it("exec: a signal request reaches the program", async () => {
    const status = await runFake(Effect.gen(function*() {
      const fake = yield* fakeSession()
      const fiber = yield* Effect.forkChild(execIn(fake, "echo ready; exec sleep 100"))
      yield* eventually(() => fake.stdout() === "ready\n")
      fake.signal("INT")
      return yield* Fiber.join(fiber)
    }))
    expect(status).toEqual({ _tag: "Signaled", signal: "INT", coreDumped: false, message: "" })
  })

  it("exec: the environment describes the owner, the peer and the client's variables", async () => {
    const out = await runFake(Effect.gen(function*() {
      const fake = yield* fakeSession({ env: { LANG: "fr_FR.UTF-8", LC_ALL: "C" } })
      yield* execIn(fake, `printf '%s|' "$USER" "$HOME" "$SHELL" "$LANG" "$SSH_CONNECTION" "$SSH_CLIENT" "$EXTRA" "$LC_ALL" "$TERM" "$PWD"`, {
        env: (peer) => ({ EXTRA: `for ${peer.user}`, LC_ALL: "POSIX" }),
        cwd: () => os.tmpdir()
      })
      return fake.stdout()
    }))
    const me = os.userInfo()
    expect(out.split("|")).toEqual([
      me.username,
      me.homedir,
      "/bin/sh",
      "fr_FR.UTF-8",
      "192.0.2.7 40022 0.0.0.0 0",
      "192.0.2.7 40022 0",
      "for alice",
      "POSIX",
      "",
      fs.realpathSync(os.tmpdir()),
      ""
    ])
  })

  it("shell without a pty: a login shell reading commands from stdin", async () => {
    const out = await runFake(Effect.gen(function*() {
      const fake = yield* fakeSession()
      yield* fake.send("echo \"$0\"; tty || true; exit 5\n")
      const status = yield* run(ProcessSession.handlers({ shell: "/bin/sh" }).shell!(fake.session, undefined))
      return { status, stdout: fake.stdout() }
    }))
    expect(out).toEqual({ status: { _tag: "Exited", code: 5 }, stdout: "-sh\nnot a tty\n" })
  })

  it("a shell that cannot be started fails with a typed reason", async () => {
    const error = await runFake(Effect.gen(function*() {
      const fake = yield* fakeSession()
      return yield* Effect.flip(execIn(fake, "true", { shell: "/nonexistent/shell" }))
    }))
    expect(error.reason._tag).toBe("ChannelRequestFailed")
    expect(error.message).toContain("/nonexistent/shell")
  })

  it("a command or environment spawn cannot pass fails with a typed reason", async () => {
    const errors = await runFake(Effect.gen(function*() {
      const fake = yield* fakeSession()
      const nul = yield* Effect.flip(execIn(fake, "echo a\u0000b"))
      const env = yield* Effect.flip(execIn(fake, "true", { env: { BAD: "x\u0000y" } }))
      return [nul, env].map((e) => e.reason._tag)
    }))
    expect(errors).toEqual(["ChannelRequestFailed", "ChannelRequestFailed"])
  })

  it("closing the session's scope hangs up the whole process group", async () => {
    const pids = await runFake(Effect.gen(function*() {
      const fake = yield* fakeSession()
      const fiber = yield* Effect.forkChild(execIn(fake, "sleep 100 & echo $$ $!; wait"))
      yield* eventually(() => /^\d+ \d+\n$/.test(fake.stdout()))
      const pids = fake.stdout().trim().split(" ").map(Number)
      expect(pids.every(isRunning)).toBe(true)
      yield* Fiber.interrupt(fiber)
      return pids
    }))
    expect(pids.filter(isRunning)).toEqual([])
  })

  it("a process ignoring SIGHUP is killed after killTimeout", async () => {
    const started = Date.now()
    const pid = await runFake(Effect.gen(function*() {
      const fake = yield* fakeSession()
      const fiber = yield* Effect.forkChild(execIn(fake, "trap '' HUP; echo $$; while :; do sleep 0.05; done", { killTimeout: "300 millis" }))
      yield* eventually(() => /^\d+\n$/.test(fake.stdout()))
      yield* Fiber.interrupt(fiber)
      return Number(fake.stdout())
    }))
    expect(isRunning(pid)).toBe(false)
    expect(Date.now() - started).toBeGreaterThanOrEqual(300)
  })

  it("the client closing the channel ends the session and its program", async () => {
    const out = await runFake(Effect.gen(function*() {
      const fake = yield* fakeSession()
      const fiber = yield* Effect.forkChild(execIn(fake, "echo $$; exec sleep 100"))
      yield* eventually(() => /^\d+\n$/.test(fake.stdout()))
      yield* Deferred.succeed(fake.closed, undefined)
      const status = yield* Fiber.join(fiber)
      return { status, pid: Number(fake.stdout()) }
    }))
    expect(out.status).toEqual({ _tag: "Unknown" })
    expect(isRunning(out.pid)).toBe(false)
  })

  it("a stalled client stops the program (bounded buffering)", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "procsess-"))
    const counter = path.join(dir, "count")
    try {
      const progress = await runFake(Effect.gen(function*() {
        const gate = yield* Deferred.make<void>()
        let writes = 0
        const fake = yield* fakeSession({
          beforeWrite: Effect.suspend(() => ++writes > 1 ? Deferred.await(gate) : Effect.void)
        })
        yield* fake.eof
        const fiber = yield* Effect.forkChild(
          execIn(fake, `i=0; while [ $i -lt 300 ]; do head -c 65536 /dev/zero; i=$((i+1)); echo $i > ${counter}; done`)
        )
        yield* Effect.sleep(1000)
        const stalledAt = Number(fs.readFileSync(counter, "utf8"))
        yield* Deferred.succeed(gate, undefined)
        const status = yield* Fiber.join(fiber)
        return { stalledAt, status, total: fake.stdoutBytes().length }
      }))
      // 64 KiB blocks: the pipe, the socket and Node's buffer hold a few hundred KiB, not 300 blocks.
      expect(progress.stalledAt).toBeLessThan(32)
      expect(progress.status).toEqual({ _tag: "Exited", code: 0 })
      expect(progress.total).toBe(300 * 65536)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it("a program that does not read its stdin does not block the client", async () => {
    const status = await runFake(Effect.gen(function*() {
      const fake = yield* fakeSession()
      const feed = Effect.gen(function*() {
        for (let i = 0; i < 64; i++) yield* fake.send(new Uint8Array(65536))
        yield* fake.eof
      })
      const [, status] = yield* Effect.all([feed, execIn(fake, "exec 0<&-; sleep 0.2; echo done")], { concurrency: "unbounded" })
      return { status, stdout: fake.stdout() }
    }))
    expect(status).toEqual({ status: { _tag: "Exited", code: 0 }, stdout: "done\n" })
  })

  it("refuses pty requests when asked to", () => {
    expect(ProcessSession.handlers({ pty: "none" }).allowPty).toBe(false)
    expect(ProcessSession.handlers().allowPty).toBe(Pty.detect() !== undefined)
  })

  for (const backend of backends) {
    describe(`on a pty (${backend})`, () => {
      const pty: PtyRequest = { term: "xterm-256color", columns: 100, rows: 30 }

      it("exec: tty, size, TERM; a resize is seen", async () => {
        const out = await runFake(Effect.gen(function*() {
          const fake = yield* fakeSession({ pty })
          const fiber = yield* Effect.forkChild(execIn(
            fake,
            "trap 'echo W=$(stty size)' WINCH; echo T=$(tty) S=$(stty size) E=$TERM; while ! read line; do :; done; echo got $line",
            { pty: backend }
          ))
          yield* eventually(() => /E=\S+\r\n/.test(fake.stdout()), 10_000, "first output")
          fake.resize({ columns: 132, rows: 43 })
          yield* eventually(() => fake.stdout().includes("W=43 132"), 10_000, "the resize")
          yield* fake.send("hello\n")
          const status = yield* Fiber.join(fiber)
          return { status, stdout: fake.stdout() }
        }))
        expect(out.status).toEqual({ _tag: "Exited", code: 0 })
        expect(out.stdout).toMatch(/^T=\/dev\/pts\/\d+ S=30 100 E=xterm-256color\r\n/)
        expect(out.stdout).toContain("got hello\r\n")
      })

      it("exec: a signal request kills the program", async () => {
        const status = await runFake(Effect.gen(function*() {
          const fake = yield* fakeSession({ pty })
          const fiber = yield* Effect.forkChild(execIn(fake, "echo ready; exec sleep 100", { pty: backend }))
          yield* eventually(() => fake.stdout().includes("ready"))
          fake.signal("TERM")
          return yield* Fiber.join(fiber)
        }))
        expect(status).toEqual(
          backend === "python" ? { _tag: "Signaled", signal: "TERM", coreDumped: false, message: "" } : { _tag: "Exited", code: 143 }
        )
      })

      it("closing the scope hangs up the terminal", async () => {
        const pid = await runFake(Effect.gen(function*() {
          const fake = yield* fakeSession({ pty })
          const fiber = yield* Effect.forkChild(execIn(fake, "echo pid=$$; exec sleep 100", { pty: backend }))
          yield* eventually(() => /pid=\d+/.test(fake.stdout()))
          yield* Fiber.interrupt(fiber)
          return Number(/pid=(\d+)/.exec(fake.stdout())![1])
        }))
        expect(isRunning(pid)).toBe(false)
      })

      it("shell: an interactive login shell on the terminal", async () => {
        const out = await runFake(Effect.gen(function*() {
          const fake = yield* fakeSession({ pty })
          const fiber = yield* Effect.forkChild(
            run(ProcessSession.handlers({ shell: "/bin/sh", pty: backend }).shell!(fake.session, undefined))
          )
          yield* fake.send("echo \"A=$(tty) $(stty size)\"\n")
          yield* eventually(() => /A=\/dev\/pts\/\d+ 30 100/.test(fake.stdout()), 10_000, "tty and size")
          fake.resize({ columns: 90, rows: 20 })
          yield* Effect.sleep(100)
          yield* fake.send("echo \"B=$(stty size)\"\n")
          yield* eventually(() => /B=20 90/.test(fake.stdout()), 10_000, "the new size")
          yield* fake.send("exit 7\n")
          return yield* Fiber.join(fiber)
        }))
        expect(out).toEqual({ _tag: "Exited", code: 7 })
      })
    })
  }
})

// ---------------------------------------------------------------------------------------------
// Over SSH: our server with ProcessSession.handlers, our client.

const hostKey = PrivateKey.generate("ssh-ed25519")

const withConnection = <A>(
  f: (ssh: SshClient.SshConnection) => Effect.Effect<A, SshError, Scope.Scope>,
  options: ProcessSession.ProcessSessionOptions = {}
) =>
  runScoped(Effect.gen(function*() {
    const server = yield* SshServer.serve({
      port: 0,
      hostKeys: [hostKey],
      auth: { password: ({ password }) => Effect.succeed(Redacted.value(password) === "pw") },
      session: ProcessSession.handlers(options)
    })
    const ssh = yield* SshClient.connect({
      host: "127.0.0.1",
      port: server.address.port,
      username: "tester",
      auth: [Auth.password("pw")],
      hostKeys: HostKeys.fixed(hostKey.publicKey),
      connectTimeout: "20 seconds"
    })
    return yield* f(ssh)
  }))

/** Collects a process's stdout in the background; `waitFor` polls it. */
const watchOutput = (proc: SshProcess) =>
  Effect.gen(function*() {
    const chunks: Array<Uint8Array> = []
    yield* Effect.forkScoped(Stream.runForEach(proc.stdout, (c) => Effect.sync(() => void chunks.push(c))).pipe(Effect.ignore))
    const text = () => decoder.decode(concat(chunks))
    return { text, waitFor: (re: RegExp, what: string) => Effect.map(eventually(() => re.test(text()), 10_000, what), text) }
  })

describe("ProcessSession over SSH", () => {
  it("exec: output, exit codes, stderr apart", async () => {
    const results = await withConnection((ssh) =>
      Effect.all([ssh.run("echo hello; echo oops >&2; exit 42"), ssh.run("true"), ssh.run("printf %s \"$SSH_CONNECTION\"")])
    )
    expect(results.map((r) => [r.stdout, r.stderr, r.exitCode])).toEqual([
      ["hello\n", "oops\n", 42],
      ["", "", 0],
      [expect.stringMatching(/^127\.0\.0\.1 \d+ /), "", 0]
    ])
  })

  it("exec: 8 MiB through cat, compared by hash", async () => {
    const data = randomBytes(8 * 1024 * 1024)
    const result = await withConnection((ssh) => ssh.run("cat", { stdin: data }))
    expect(result.exitCode).toBe(0)
    expect(result.stdoutBytes.length).toBe(data.length)
    expect(sha256(result.stdoutBytes)).toBe(sha256(data))
  })

  it("exec: kill -TERM $$ is reported as exit-signal TERM", async () => {
    const result = await withConnection((ssh) => ssh.run("kill -TERM $$"))
    expect(result.exit).toEqual({ _tag: "Signaled", signal: "TERM", coreDumped: false, message: "" })
    expect(result.exitCode).toBe(143)
  })

  it.skipIf(backends.length === 0)("exec with a pty: a signal request kills sleep", async () => {
    const exit = await withConnection((ssh) =>
      Effect.gen(function*() {
        const proc = yield* ssh.exec("echo ready; exec sleep 100", { pty: true })
        const out = yield* watchOutput(proc)
        yield* out.waitFor(/ready/, "ready")
        yield* proc.signal("TERM")
        return yield* proc.exit
      }))
    expect(exit).toEqual(
      backends[0] === "python" ? { _tag: "Signaled", signal: "TERM", coreDumped: false, message: "" } : { _tag: "Exited", code: 143 }
    )
  })

  it("closing the client's scope kills a long-running child", async () => {
    const pids = await withConnection((ssh) =>
      Effect.gen(function*() {
        const text = yield* Effect.scoped(Effect.gen(function*() {
          const proc = yield* ssh.exec("sleep 100 & echo $$ $!; wait")
          const out = yield* watchOutput(proc)
          const text = yield* out.waitFor(/^\d+ \d+\n/, "the pids")
          expect(text.trim().split(" ").map(Number).every((pid) => pid > 1 && isRunning(pid))).toBe(true)
          return text
        }))
        return text.trim().split(" ").map(Number)
      }))
    // The channel's CLOSE reached the server: the session's process group is hung up.
    await Effect.runPromise(eventually(() => pids.every((pid) => !isRunning(pid)), 10_000, "the children to die"))
    expect(pids.filter(isRunning)).toEqual([])
  })

  it("closing the whole connection kills a long-running child", async () => {
    const pid = await withConnection((ssh) =>
      Effect.gen(function*() {
        const proc = yield* ssh.exec("echo $$; exec sleep 100")
        const out = yield* watchOutput(proc)
        const pid = Number(yield* out.waitFor(/^\d+\n/, "the pid"))
        expect(pid > 1 && isRunning(pid)).toBe(true)
        return pid
      }))
    await Effect.runPromise(eventually(() => !isRunning(pid), 10_000, "the child to die"))
    expect(isRunning(pid)).toBe(false)
  })

  it("a program that does not read its stdin holds the client's writes at the window", async () => {
    const sent = await withConnection((ssh) =>
      Effect.gen(function*() {
        const proc = yield* ssh.exec("sleep 5")
        const chunk = new Uint8Array(64 * 1024)
        let bytes = 0
        const offered = Stream.range(1, 128).pipe(Stream.map(() => chunk), Stream.tap(() => Effect.sync(() => void (bytes += chunk.length))))
        const writer = yield* Effect.forkChild(Stream.run(offered, proc.stdin))
        yield* Effect.sleep(1500)
        yield* Fiber.interrupt(writer)
        return bytes
      }), { shell: "/bin/sh" })
    // Not the 8 MiB offered: at most the batch lent to the pipe and the 2 MiB window behind it (the
    // channel credits a batch when it is taken, not when the pipe is done with it), and a chunk in flight.
    expect(sent).toBeGreaterThan(1024 * 1024)
    expect(sent).toBeLessThanOrEqual(2 * 2 * 1024 * 1024 + 2 * 64 * 1024)
  })

  it.skipIf(backends.length === 0)("a pty shell: tty, stty size, window-change", async () => {
    const out = await withConnection((ssh) =>
      Effect.gen(function*() {
        const proc = yield* ssh.shell({ pty: { term: "vt100", columns: 111, rows: 33 } })
        const out = yield* watchOutput(proc)
        yield* proc.write("echo \"A=$(tty) $(stty size) $TERM\"\n")
        const first = yield* out.waitFor(/A=\/dev\/pts\/\d+ 33 111 vt100/, "tty and size")
        yield* proc.resize({ columns: 77, rows: 22 })
        yield* Effect.sleep(200)
        yield* proc.write("echo \"B=$(stty size)\"\n")
        yield* out.waitFor(/B=22 77/, "the new size")
        yield* proc.write("exit 3\n")
        const exit = yield* proc.exit
        return { first, exit }
      }), { shell: "/bin/sh" })
    expect(out.first).toMatch(/A=\/dev\/pts\/\d+ 33 111 vt100/)
    expect(out.exit).toEqual({ _tag: "Exited", code: 3 })
  })
})
