/**
 * `effect-ssh serve` in a child process, for the hostile-peer tests: they
 * attack it over loopback and read its resident memory from /proc, so what
 * they measure is the server alone, not the test runner.
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import * as PrivateKey from "../../src/Auth/PrivateKey.ts"

const childScript = fileURLToPath(new URL("./serveChild.ts", import.meta.url))

/** The password every test login uses, for `user`. */
export const user = "alice"
export const password = "wonderland"

/** A running `effect-ssh serve`. */
export interface ServeProcess {
  readonly port: number
  readonly pid: number
  /** A temp dir holding the server's files; `sftpRoot` (when asked for) lives in it. */
  readonly dir: string
  readonly sftpRoot: string
  readonly hostKey: PrivateKey.PrivateKey
  /** Resident set size of the server process now, in bytes (VmRSS). */
  readonly rssBytes: () => number
  /**
   * Resident set size after the server ran two full garbage collections: what
   * it holds, not garbage it has not collected yet.
   */
  readonly heldBytes: () => Promise<number>
  /**
   * `process.memoryUsage()` of the server after two full garbage collections:
   * `heapUsed + external` is what its live objects hold, whatever the
   * allocator keeps of memory freed earlier (which RSS still counts).
   */
  readonly liveMemory: () => Promise<NodeJS.MemoryUsage>
  /** The highest resident set size so far (VmHWM), in bytes. */
  readonly peakRssBytes: () => number
  /** Everything the server logged to stderr so far. */
  readonly log: () => string
  /** SIGTERM, then SIGKILL after 5 s; removes `dir`. */
  readonly stop: () => Promise<void>
}

export interface ServeProcessOptions {
  /** Extra `serve` flags. */
  readonly args?: ReadonlyArray<string> | undefined
  /** Serve `<dir>/sftp-root` over SFTP (default true). */
  readonly sftp?: boolean | undefined
  /** Extra environment variables for the child. */
  readonly env?: Record<string, string> | undefined
  /** Node flags for the child (e.g. `--max-old-space-size=512`). */
  readonly nodeArgs?: ReadonlyArray<string> | undefined
}

const statusField = (pid: number, field: string): number => {
  const status = Fs.readFileSync(`/proc/${pid}/status`, "utf8")
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)
  if (match === null) throw new Error(`no ${field} in /proc/${pid}/status`)
  return Number(match[1]) * 1024
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/**
 * Starts `effect-ssh serve --port 0` with a fresh host key and a password file
 * (`user`:`password`), and waits for its "Listening on" line.
 *
 * @example
 * ```ts
 * const server = await startServe({ args: ["--max-startups", "10:30:100"] })
 * const before = server.rssBytes()
 * ```
 */
export const startServe = async (options: ServeProcessOptions = {}): Promise<ServeProcess> => {
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-ssh-hostile-"))
  const hostKey = PrivateKey.generate("ssh-ed25519")
  const hostKeyFile = Path.join(dir, "host_key")
  Fs.writeFileSync(hostKeyFile, PrivateKey.toOpenSsh(hostKey), { mode: 0o600 })
  const passwordFile = Path.join(dir, "passwords")
  Fs.writeFileSync(passwordFile, `${user}:${password}\n`, { mode: 0o600 })
  const sftpRoot = Path.join(dir, "sftp-root")
  Fs.mkdirSync(sftpRoot)
  const argv = [
    "--expose-gc",
    ...(options.nodeArgs ?? []),
    childScript,
    "serve",
    "--listen", "127.0.0.1",
    "--port", "0",
    "--host-key", hostKeyFile,
    "--password-file", passwordFile,
    ...(options.sftp === false ? [] : ["--sftp-root", sftpRoot]),
    ...(options.args ?? [])
  ]
  const child = ChildProcess.spawn(process.execPath, argv, { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, ...options.env } })
  let stderr = ""
  child.stderr.on("data", (b: Buffer) => {
    // keep the log bounded: a flood test may log a lot
    stderr = (stderr + b.toString()).slice(-4 * 1024 * 1024)
  })
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM")
      const killer = setTimeout(() => child.kill("SIGKILL"), 5000)
      await exited
      clearTimeout(killer)
    }
    Fs.rmSync(dir, { recursive: true, force: true })
  }
  /** Two full collections in the child (see serveChild.ts), each followed by its `memory:` line. */
  const collect = async () => {
    for (let i = 0; i < 2; i++) {
      const seen = stderr.split("memory: ").length
      process.kill(child.pid!, "SIGUSR2")
      for (const deadline = Date.now() + 5000; stderr.split("memory: ").length === seen && Date.now() < deadline;) await sleep(20)
    }
  }
  for (const deadline = Date.now() + 30_000;;) {
    const port = /Listening on 127\.0\.0\.1:(\d+)/.exec(stderr)?.[1]
    if (port !== undefined) {
      const pid = child.pid!
      return {
        port: Number(port),
        pid,
        dir,
        sftpRoot,
        hostKey,
        rssBytes: () => statusField(pid, "VmRSS"),
        heldBytes: async () => {
          await collect()
          return statusField(pid, "VmRSS")
        },
        liveMemory: async () => {
          await collect()
          const lines = stderr.split("\n").filter((line) => line.startsWith("memory: "))
          return JSON.parse(lines[lines.length - 1]!.slice("memory: ".length)) as NodeJS.MemoryUsage
        },
        peakRssBytes: () => statusField(pid, "VmHWM"),
        log: () => stderr,
        stop
      }
    }
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop()
      throw new Error(`serve did not start:\n${stderr}`)
    }
    await sleep(25)
  }
}

/** Bytes as MiB with one decimal, for messages. */
export const mib = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MiB`
