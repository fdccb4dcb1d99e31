/**
 * Pty: each available helper (python3, util-linux script) run directly:
 * terminal size and modes, login shells, EOF, exit statuses, backpressure.
 */
import { describe, expect, it } from "vitest"
import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Pty from "../../src/Server/Pty.ts"
import type { RunningProcess } from "../../src/Server/ProcessSession.ts"
import { makeGroupWatch } from "../../src/internal/osProcess.ts"
import { makeSpawner } from "../../src/internal/spawner.ts"
import { TerminalMode, type PtyRequest } from "../../src/Channel/Requests.ts"

const env = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: os.homedir(), TERM: "xterm", SHELL: "/bin/sh" }
const pty: PtyRequest = { term: "xterm", columns: 80, rows: 24 }

const spawner = makeSpawner()
const watch = makeGroupWatch()

const start = (helper: Pty.Helper, script: string, options: Partial<Pty.SpawnOptions> = {}): Promise<RunningProcess> =>
  Effect.runPromise(Pty.spawn(spawner, helper, { program: "/bin/sh", args: ["-c", script], login: false, cwd: os.tmpdir(), env, pty, ...options }, "test"))

/** Reads all terminal output and the status. */
const collect = async (running: RunningProcess) => {
  let text = ""
  running.output.setEncoding("utf8")
  running.output.on("data", (chunk: string) => void (text += chunk))
  running.output.resume()
  const status = await Effect.runPromise(running.exit)
  return { text, status }
}

const available = (["python", "script"] as const).map((b) => Pty.detect(b)).filter((h) => h !== undefined)

describe("Pty.detect", () => {
  it("finds nothing on an empty PATH, and honours a preference", () => {
    expect(Pty.detect(undefined, "")).toBeUndefined()
    expect(Pty.detect("script", "")).toBeUndefined()
    for (const helper of available) {
      expect(Pty.detect(helper.backend)?.backend).toBe(helper.backend)
      expect(fs.existsSync(helper.executable)).toBe(true)
    }
    if (available.length > 0) expect(Pty.detect()).toEqual(available[0])
  })
})

for (const helper of available) {
  describe(`Pty.spawn (${helper.backend})`, () => {
    it("runs the program on a terminal of the requested size, with SSH_TTY", async () => {
      const { text, status } = await collect(await start(helper, "tty; stty size; echo \"$SSH_TTY\"", { pty: { ...pty, columns: 132, rows: 50 } }))
      expect(status).toEqual({ _tag: "Exited", code: 0 })
      const [tty, size, sshTty] = text.split("\r\n")
      expect(tty).toMatch(/^\/dev\/pts\/\d+$/)
      expect(size).toBe("50 132")
      expect(sshTty).toBe(tty)
    })

    it("clamps absurd sizes to what the kernel holds", async () => {
      const { text } = await collect(await start(helper, "stty size", { pty: { ...pty, columns: 2 ** 32 - 1, rows: 70_000 } }))
      expect(text).toBe("65535 65535\r\n")
    })

    it("passes exit codes through", async () => {
      const { status } = await collect(await start(helper, "exit 9"))
      expect(status).toEqual({ _tag: "Exited", code: 9 })
    })

    it("EOF from the client ends a canonical-mode reader", async () => {
      const running = await start(helper, "cat; echo end")
      running.input.end("one\n")
      const { text, status } = await collect(running)
      expect(status).toEqual({ _tag: "Exited", code: 0 })
      expect(text.replaceAll("\r\n", "\n")).toMatch(/one\n(.*\n)?end\n$/)
    })

    it("a large output arrives intact, and a stalled reader stops the program", async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pty-"))
      try {
        const counter = path.join(dir, "n")
        const running = await start(helper, `i=0; while [ $i -lt 200 ]; do head -c 20000 /dev/zero | tr '\\0' a; i=$((i+1)); echo $i > ${counter}; done`)
        running.output.pause()
        await new Promise((r) => setTimeout(r, 800))
        const stalledAt = Number(fs.readFileSync(counter, "utf8"))
        const { text, status } = await collect(running)
        expect(stalledAt).toBeLessThan(60)
        expect(status).toEqual({ _tag: "Exited", code: 0 })
        expect(text.length).toBe(200 * 20000)
        expect(/^a*$/.test(text)).toBe(true)
      } finally {
        fs.rmSync(dir, { recursive: true, force: true })
      }
    })

    it("a resize asked for at once, before the terminal is known to the server, is not lost", async () => {
      const running = await start(helper, "sleep 0.5; stty size")
      running.resize({ columns: 99, rows: 29, width: 0, height: 0 })
      const { text } = await collect(running)
      expect(text).toBe("29 99\r\n")
    })

    it("a resize reaches the terminal", async () => {
      const running = await start(helper, "trap 'stty size; exit 0' WINCH; echo ready; while :; do sleep 0.02; done")
      let text = ""
      running.output.setEncoding("utf8")
      running.output.on("data", (chunk: string) => {
        text += chunk
        if (text === "ready\r\n") running.resize({ columns: 101, rows: 31, width: 0, height: 0 })
      })
      await Effect.runPromise(running.exit)
      expect(text).toBe("ready\r\n31 101\r\n")
    })

    it("hangup ends the terminal's processes", async () => {
      const running = await start(helper, "echo $$; exec sleep 100")
      const pid = await new Promise<number>((resolve) => running.output.once("data", (d) => resolve(Number(String(d).trim()))))
      expect(await Effect.runPromise(watch.awaitGone(running.groups(), 100))).toBe(false)
      running.hangup()
      running.output.resume()
      await Effect.runPromise(running.exit)
      expect(await Effect.runPromise(watch.awaitGone(running.groups(), 5000))).toBe(true)
      // gone, or a zombie waiting for init
      const state = fs.existsSync(`/proc/${pid}/stat`) ? fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]![0] : "gone"
      expect(["gone", "Z"]).toContain(state)
    })
  })
}

const python = Pty.detect("python")

describe.skipIf(python === undefined)("Pty.spawn (python only)", () => {
  it("applies the terminal modes of the pty request", async () => {
    const modes = { [TerminalMode.ECHO]: 0, [TerminalMode.VINTR]: 7, [TerminalMode.ONLCR]: 0 }
    const { text } = await collect(await start(python!, "stty -a", { pty: { ...pty, modes } }))
    expect(text).toMatch(/ -echo /)
    expect(text).toMatch(/intr = \^G;/)
    expect(text).toMatch(/ -onlcr /)
  })

  it("starts a login shell with a dash in argv[0]", async () => {
    const running = await start(python!, "", { args: [], login: true })
    running.input.write("echo \"$0\"; exit\n")
    const { text } = await collect(running)
    expect(text).toContain("-sh\r\n")
  })

  it("reports the signal that killed the program", async () => {
    const running = await start(python!, "echo up; exec sleep 100")
    running.output.once("data", () => running.signal("USR1"))
    const { status } = await collect(running)
    expect(status).toEqual({ _tag: "Signaled", signal: "USR1", coreDumped: false, message: "" })
  })

  it("a program that cannot be run exits 127 with a message", async () => {
    const { text, status } = await collect(await start(python!, "", { program: "/nonexistent/prog", args: [] }))
    expect(status).toEqual({ _tag: "Exited", code: 127 })
    expect(text).toContain("/nonexistent/prog")
  })
})
