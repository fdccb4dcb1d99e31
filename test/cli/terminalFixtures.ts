/**
 * Shared by the interactive CLI tests: our server with a real shell on a pty
 * (alice: publickey with `userKey` or password "secret"), a client home with
 * no keys of its own, the CLI run in a tmux pane (a real terminal) or as a
 * plain child process, and pane helpers that wait for text.
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as PrivateKey from "../../src/Auth/PrivateKey.ts"
import * as PublicKey from "../../src/Auth/PublicKey.ts"
import * as Redacted from "effect/Redacted"
import * as SshServer from "../../src/Server.ts"
import * as ProcessSession from "../../src/Server/ProcessSession.ts"
import * as NodeSsh from "../../src/NodeSsh.ts"
import * as SftpServer from "../../src/Sftp/SftpServer.ts"
import { hostKey, tempDir, userKey } from "../Sftp/fixtures.ts"

export { hostKey, userKey }

export const main = new URL("../../src/cli/main.ts", import.meta.url).pathname

export const PASSWORD = "secret"

/** A running server and the client-side files that go with it. */
export interface Fixture {
  readonly port: number
  readonly dir: string
  /** The client's HOME: no keys, no agent. */
  readonly home: string
  readonly keyFile: string
  /** A known_hosts file that trusts the server. */
  readonly knownHosts: string
  /** A known_hosts file that does not exist yet. */
  readonly emptyKnownHosts: string
  readonly close: () => Promise<void>
}

/** Options of `startServer`. */
export interface ServerOptions {
  /** Accept passwords only (no publickey, no keyboard-interactive). */
  readonly passwordOnly?: boolean | undefined
  readonly sftpRoot?: string | undefined
}

/** Starts our server on a free port (pty shell `/bin/sh` with prompt "remote$ "). */
export const startServer = async (options: ServerOptions = {}): Promise<Fixture> => {
  const temp = tempDir("effect-ssh-shell-")
  const scope = Scope.makeUnsafe()
  // a login sh reads /etc/profile (which sets root's "# "), then $ENV: our prompt comes last
  const rc = Path.join(temp.path, "shrc")
  Fs.writeFileSync(rc, "PS1='remote$ '\n")
  const checkPassword = (user: string, password: Redacted.Redacted<string>) => user === "alice" && Redacted.value(password) === PASSWORD
  const server = await Effect.runPromise(Scope.provide(
    SshServer.serve({
      port: 0,
      hostKeys: [hostKey],
      auth: {
        publicKey: options.passwordOnly === true
          ? undefined
          : ({ user, key }) => Effect.succeed(user === "alice" && PublicKey.equals(key, userKey.publicKey)),
        password: ({ user, password }) => Effect.succeed(checkPassword(user, password)),
        maxTries: 20
      },
      session: ProcessSession.handlers({ shell: "/bin/sh", env: { ENV: rc, HOME: temp.path } }),
      sftp: options.sftpRoot === undefined ? undefined : SftpServer.fileSystem({ root: options.sftpRoot }),
      perSourceMaxStartups: "none",
      maxStartups: 1000,
      perSourcePenalties: false
    }),
    scope
  ).pipe(Effect.provide(NodeSsh.layer)))
  const port = server.address.port
  const home = Path.join(temp.path, "home")
  Fs.mkdirSync(Path.join(home, ".ssh"), { recursive: true, mode: 0o700 })
  const keyFile = Path.join(temp.path, "id")
  Fs.writeFileSync(keyFile, PrivateKey.toOpenSsh(userKey), { mode: 0o600 })
  const knownHosts = Path.join(temp.path, "known_hosts")
  Fs.writeFileSync(knownHosts, `[127.0.0.1]:${port} ${PublicKey.toOpenSsh(hostKey.publicKey)}\n`)
  return {
    port,
    dir: temp.path,
    home,
    keyFile,
    knownHosts,
    emptyKnownHosts: Path.join(temp.path, "new_known_hosts"),
    close: async () => {
      await Effect.runPromise(Scope.close(scope, Exit.void))
      temp.remove()
    }
  }
}

/** The client's environment: its own HOME, no agent, no askpass unless given. */
export const clientEnv = (fixture: Fixture, extra: Record<string, string> = {}): Record<string, string> => {
  const env: Record<string, string> = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && !k.startsWith("SSH_") && k !== "DISPLAY" && k !== "WAYLAND_DISPLAY") env[k] = v
  }
  return { ...env, HOME: fixture.home, ...extra }
}

const shellQuote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** A tmux pane running the CLI; after it ends the pane shows `rc=N`, `stty -a` and `END`. */
export interface Pane {
  readonly capture: () => string
  /** Waits for `pattern` in the pane (polling; the event loop stays free for the server in this process). */
  readonly waitFor: (pattern: RegExp, timeoutMs?: number) => Promise<string>
  /** tmux send-keys arguments (`"text"`, `"Enter"`, `"C-c"`); `literal` sends the text as is. */
  readonly send: (...keys: ReadonlyArray<string>) => void
  readonly type: (text: string) => void
  readonly tmux: (...args: ReadonlyArray<string>) => string
  /** Waits for the CLI to end: its exit code and `stty -a` afterwards. */
  readonly result: (timeoutMs?: number) => Promise<{ readonly code: number; readonly stty: string; readonly screen: string }>
  readonly kill: () => void
}

let paneCount = 0

/**
 * Runs `effect-ssh <args>` in a new tmux server (its own socket) on a
 * `columns`×`rows` terminal.
 */
export const startPane = (
  args: ReadonlyArray<string>,
  env: Record<string, string>,
  size: { readonly columns: number; readonly rows: number } = { columns: 100, rows: 30 }
): Pane => {
  const socket = `effect-ssh-test-${process.pid}-${++paneCount}`
  const tmux = (...tmuxArgs: ReadonlyArray<string>) =>
    ChildProcess.execFileSync("tmux", ["-L", socket, ...tmuxArgs], { encoding: "utf8", env: { ...env, TMUX: "" } })
  const client = [process.execPath, main, ...args].map(shellQuote).join(" ")
  const script = `${client}; echo "rc=$?"; stty -a | tr '\\n' ' '; echo; echo END; exec sleep 600`
  tmux("-f", "/dev/null", "new-session", "-d", "-x", String(size.columns), "-y", String(size.rows), `sh -c ${shellQuote(script)}`)
  tmux("set-option", "-g", "history-limit", "5000")
  const capture = () => tmux("capture-pane", "-p", "-J", "-S", "-1000")
  const waitFor = async (pattern: RegExp, timeoutMs = 20_000) => {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const screen = capture()
      if (pattern.test(screen)) return screen
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${pattern} in the pane:\n${screen}`)
      await sleep(50)
    }
  }
  return {
    capture,
    waitFor,
    tmux,
    send: (...keys) => void tmux("send-keys", ...keys),
    type: (text) => void tmux("send-keys", "-l", text),
    result: async (timeoutMs) => {
      const screen = await waitFor(/^END$/m, timeoutMs)
      const code = Number(/rc=(\d+)$/m.exec(screen)?.[1] ?? Number.NaN)
      const stty = /rc=\d+\n(.*)\nEND/s.exec(screen)?.[1] ?? ""
      return { code, stty, screen }
    },
    kill: () => {
      try {
        tmux("kill-server")
      } catch {
        // already gone
      }
    }
  }
}

/** `stty -a` flags as a set (`icanon`, `-echo`, ...). */
export const sttyFlags = (stty: string): ReadonlySet<string> => new Set(stty.split(/[\s;]+/))

/** Runs the CLI as a child process without a terminal. */
export const runCli = (
  args: ReadonlyArray<string>,
  env: Record<string, string>,
  options: { readonly input?: string | undefined; readonly onSpawn?: ((child: ChildProcess.ChildProcess) => void) | undefined } = {}
) =>
  new Promise<{ readonly code: number | null; readonly signal: NodeJS.Signals | null; readonly stdout: string; readonly stderr: string }>((resolve) => {
    const child = ChildProcess.spawn(process.execPath, [main, ...args], { stdio: ["pipe", "pipe", "pipe"], env })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (d) => stdout += d)
    child.stderr.on("data", (d) => stderr += d)
    child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr }))
    if (options.input !== undefined) child.stdin.end(options.input)
    options.onSpawn?.(child)
  })

/** Whether tmux can be run here (the interactive tests need it). */
export const tmuxAvailable = (): boolean => {
  try {
    ChildProcess.execFileSync("tmux", ["-V"], { stdio: "ignore" })
    return true
  } catch {
    return false
  }
}
