/**
 * `effect-ssh exec HOST` as an interactive shell, driven through a real
 * terminal (tmux) against our server's pty shell: the prompt, a typed
 * command, the window size following a resize, the exit code, `~.`, `~~`,
 * `~?`, `-t` with a command, and the local terminal restored afterwards.
 */
import * as ChildProcess from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Fixture, type Pane, clientEnv, runCli, startPane, startServer, sttyFlags, tmuxAvailable } from "./terminalFixtures.ts"

const restored = (stty: string) => {
  const flags = sttyFlags(stty)
  expect(flags.has("icanon")).toBe(true)
  expect(flags.has("echo")).toBe(true)
  expect(flags.has("-icanon")).toBe(false)
}

describe.skipIf(!tmuxAvailable())("Terminal.rawMode on a real terminal", () => {
  it("raw inside the scope; the terminal's own mode back after success, failure and interruption (process still running)", async () => {
    const socket = `effect-ssh-rawprobe-${process.pid}`
    const probe = new URL("./rawModeProbe.ts", import.meta.url).pathname
    const tmux = (...args: ReadonlyArray<string>) => ChildProcess.execFileSync("tmux", ["-L", socket, "-f", "/dev/null", ...args], { encoding: "utf8" })
    tmux("new-session", "-d", "-x", "100", "-y", "30", `${process.execPath} ${probe}; exec sleep 600`)
    try {
      let screen = ""
      for (let i = 0; i < 400 && !screen.includes("probe-done"); i++) {
        await new Promise((r) => setTimeout(r, 50))
        screen = tmux("capture-pane", "-p")
      }
      const phases = Object.fromEntries([...screen.matchAll(/^([a-z-]+): (.*)$/gm)].map((m) => [m[1], m[2]!.trim()]))
      expect(phases).toEqual({
        before: "icanon echo",
        inside: "-icanon -echo",
        "after-success": "icanon echo",
        "after-failure": "icanon echo",
        "after-interrupt": "icanon echo"
      })
    } finally {
      tmux("kill-server")
    }
  })
})

describe.skipIf(!tmuxAvailable())("interactive shell through tmux", () => {
  let fixture: Fixture
  const panes: Array<Pane> = []
  beforeAll(async () => {
    fixture = await startServer()
  })
  afterAll(async () => {
    panes.forEach((p) => p.kill())
    await fixture.close()
  })
  const shell = (extra: ReadonlyArray<string> = [], command: ReadonlyArray<string> = []) => {
    const pane = startPane(
      ["exec", "-p", String(fixture.port), "-i", fixture.keyFile, "--known-hosts", fixture.knownHosts, ...extra, "alice@127.0.0.1", ...command],
      clientEnv(fixture)
    )
    panes.push(pane)
    return pane
  }

  it("shows the prompt, runs what is typed, follows resizes, exits with the remote code, restores the terminal", async () => {
    const pane = shell()
    await pane.waitFor(/remote\$ $/m)
    pane.type("echo $((6 * 7)) $TERM")
    pane.send("Enter")
    // TERM is the pane's own (tmux sets it)
    await pane.waitFor(/^42 (tmux|screen)\S*$/m)
    pane.type("stty size")
    pane.send("Enter")
    await pane.waitFor(/^30 100$/m)
    pane.tmux("resize-window", "-x", "120", "-y", "40")
    // the resize reaches the server asynchronously: ask until the pty has it
    let size = ""
    for (let i = 0; i < 40 && size !== "40 120"; i++) {
      pane.type("stty size")
      pane.send("Enter")
      await new Promise((r) => setTimeout(r, 100))
      size = [...pane.capture().matchAll(/^(\d+ \d+)$/gm)].at(-1)?.[1] ?? ""
    }
    expect(size).toBe("40 120")
    // a key the local terminal would turn into SIGINT reaches the remote side instead
    pane.type("sleep 30")
    pane.send("Enter")
    await new Promise((r) => setTimeout(r, 300))
    pane.send("C-c")
    await pane.waitFor(/\^C\s*\n.*remote\$ $/m)
    pane.type("exit 3")
    pane.send("Enter")
    const { code, screen, stty } = await pane.result()
    expect(code).toBe(3)
    expect(screen).toContain("Connection to 127.0.0.1 closed.")
    restored(stty)
  })

  it("~. disconnects (255) and restores the terminal; ~? shows help; ~~ sends one ~", async () => {
    const pane = shell()
    await pane.waitFor(/remote\$ $/m)
    pane.type("read x; echo \"got[$x]\"")
    pane.send("Enter")
    await new Promise((r) => setTimeout(r, 300))
    pane.type("~~abc")
    pane.send("Enter")
    await pane.waitFor(/^got\[~abc\]$/m)
    pane.type("~?")
    await pane.waitFor(/~\.\s+- terminate connection/)
    pane.send("Enter")
    pane.type("~.")
    const { code, screen, stty } = await pane.result()
    expect(code).toBe(255)
    expect(screen).toMatch(/~\.\nConnection to 127\.0\.0\.1 closed\.\n/)
    restored(stty)
  })

  it("SIGTERM to the client in raw mode: exit 143, quiet, the terminal restored", async () => {
    const pane = shell()
    await pane.waitFor(/remote\$ $/m)
    const wrapper = pane.tmux("display-message", "-p", "#{pane_pid}").trim()
    const client = ChildProcess.execFileSync("ps", ["--ppid", wrapper, "-o", "pid="], { encoding: "utf8" }).trim()
    expect(client).toMatch(/^\d+$/)
    process.kill(Number(client), "SIGTERM")
    const { code, screen, stty } = await pane.result()
    expect(code).toBe(143)
    expect(screen).not.toContain("effect-ssh:")
    restored(stty)
  })

  it("-e none: ~. is sent as typed", async () => {
    const pane = shell(["-e", "none"])
    await pane.waitFor(/remote\$ $/m)
    pane.type("read x; echo \"got[$x]\"")
    pane.send("Enter")
    await new Promise((r) => setTimeout(r, 300))
    pane.type("~.")
    pane.send("Enter")
    await pane.waitFor(/^got\[~\.\]$/m)
    pane.type("exit")
    pane.send("Enter")
    const { code, stty } = await pane.result()
    expect(code).toBe(0)
    restored(stty)
  })

  it("exec -t HOST cmd forwards keystrokes in raw mode; -T runs the command without a pty", async () => {
    const pane = shell(["-t"], ["echo ready; read x; echo \"got[$x]\"; tty; exit 5"])
    await pane.waitFor(/^ready$/m)
    pane.type("hello")
    pane.send("Enter")
    const { code, screen, stty } = await pane.result()
    expect(screen).toMatch(/^got\[hello\]$/m)
    expect(screen).toMatch(/^\/dev\/pts\/\d+/m)
    expect(code).toBe(5)
    restored(stty)

    const plain = shell(["-T"], ["tty; exit 4"])
    const result = await plain.result()
    expect(result.screen).toMatch(/^not a tty$/m)
    expect(result.code).toBe(4)
    restored(result.stty)
  })
})

describe("a shell or -t without a terminal", () => {
  let fixture: Fixture
  beforeAll(async () => {
    fixture = await startServer()
  })
  afterAll(async () => {
    await fixture.close()
  })
  const base = () => ["exec", "-p", String(fixture.port), "-i", fixture.keyFile, "--known-hosts", fixture.knownHosts]

  it("no command, stdin a pipe: the login shell without a pty reads it (as ssh host < script)", async () => {
    const result = await runCli([...base(), "alice@127.0.0.1"], clientEnv(fixture), { input: "tty; echo \"hi $((1 + 1))\"; exit 7\n" })
    expect(result).toEqual({ code: 7, signal: null, stdout: "not a tty\nhi 2\n", stderr: "" })
  })

  it("-t without a terminal: ssh's notice and no pty; -tt forces one", async () => {
    const single = await runCli([...base(), "-t", "alice@127.0.0.1", "tty"], clientEnv(fixture), { input: "" })
    expect(single).toMatchObject({ code: 1, stdout: "not a tty\n", stderr: "Pseudo-terminal will not be allocated because stdin is not a terminal.\n" })
    const forced = await runCli([...base(), "-tt", "alice@127.0.0.1", "tty"], clientEnv(fixture), { input: "" })
    expect(forced.code).toBe(0)
    expect(forced.stdout).toMatch(/^\/dev\/pts\/\d+\r\n$/)
  })

  it("RequestTTY from the configuration file applies unless a flag says otherwise", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "effect-ssh-requesttty-"))
    const config = path.join(dir, "config")
    fs.writeFileSync(config, "Host *\n  RequestTTY force\n")
    const forced = await runCli([...base(), "-F", config, "alice@127.0.0.1", "tty"], clientEnv(fixture), { input: "" })
    expect(forced.code).toBe(0)
    expect(forced.stdout).toMatch(/^\/dev\/pts\/\d+\r\n$/)
    const refused = await runCli([...base(), "-F", config, "-T", "alice@127.0.0.1", "tty"], clientEnv(fixture), { input: "" })
    expect(refused).toMatchObject({ code: 1, stdout: "not a tty\n" })
    fs.rmSync(dir, { recursive: true, force: true })
  })
})
