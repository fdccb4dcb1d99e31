/**
 * `effect-ssh get` and `effect-ssh put`: copy files over SFTP, with the same
 * connection flags as `exec` (`-p`, `-l`, `-i`, `-o`, `--known-hosts`,
 * `--host-key-fingerprint`), `-r` for directories, `--resume` and
 * `--preserve`. A progress bar (bytes, rate, ETA) is drawn when stderr is a
 * terminal; otherwise the command is silent unless it fails.
 *
 * ```sh
 * effect-ssh get -p 2222 me@host:/var/log/syslog ./syslog
 * effect-ssh put -r ./site me@host:/srv/www
 * ```
 *
 * Parsing is pure (`parseTransfer`); the connection flags are validated by
 * the `exec` parser so both commands accept exactly the same ones.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FileSystem from "effect/FileSystem"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import type * as Scope from "effect/Scope"
import * as SshClient from "../Client.ts"
import * as Attributes from "../Sftp/Attributes.ts"
import type { Progress, TransferResult } from "../Sftp/Transfer.ts"
import * as NodeSsh from "../NodeSsh.ts"
import * as SshError from "../SshError.ts"
import { type ConnectionArgs, UsageError, parseExec } from "./Args.ts"
import { connectOptions, errorLine } from "./Exec.ts"
import { interruptOnHangup, signalExitCode, watchSignals } from "./Signals.ts"
import { verboseFlags, withVerbosity } from "./Verbose.ts"
import { terminalLine } from "../internal/terminalText.ts"

/** `effect-ssh get|put [options] SOURCE DESTINATION` */
export interface TransferArgs extends ConnectionArgs {
  readonly _tag: "Get" | "Put"
  readonly remote: string
  readonly local: string
  readonly recursive: boolean
  readonly resume: boolean
  readonly preserve: boolean
  /** Files at once in a recursive transfer. */
  readonly concurrency: number | undefined
  /** SFTP channels one large upload is split over (`put` only). */
  readonly channels: number | undefined
}

/**
 * Usage text of `get` and `put`.
 *
 * @example
 * ```ts
 * process.stderr.write(transferUsage)
 * ```
 */
export const transferUsage =
  "usage: effect-ssh get [-r] [--resume] [--preserve] [-j N] [connection options] [user@]host:REMOTE LOCAL\n" +
  "       effect-ssh put [-r] [--resume] [--preserve] [-j N] [--channels N] [connection options] LOCAL [user@]host:REMOTE\n" +
  "  -r            copy directories recursively\n" +
  "  -v            protocol events on stderr (-vv, -vvv: every packet too)\n" +
  "  --resume      continue a partial copy (keep the bytes the destination has)\n" +
  "  --preserve    copy modification times and permissions\n" +
  "  -j N          files transferred at once with -r (default 4)\n" +
  "  --channels N  put: split each file of 32 MiB or more over N SFTP channels (faster over long round trips)\n" +
  "  connection options as for exec: -p PORT, -l USER, -i KEYFILE, -o Option=value, -F CONFIG,\n" +
  "  -J [user@]host[:port][,...], -A, --known-hosts FILE, --host-key-fingerprint SHA256:..."

/** Connection flags that take a value (passed on to the exec parser). */
const valueFlags: ReadonlySet<string> = new Set(["-p", "-l", "-i", "-o", "-F", "-J", "--known-hosts", "--host-key-fingerprint"])

/**
 * Splits `[user@]host:path` at the first ":" outside brackets (`[::1]:/tmp`).
 * Returns undefined when there is no host part.
 *
 * @example
 * ```ts
 * splitRemote("me@example.com:/tmp/x") // { target: "me@example.com", path: "/tmp/x" }
 * ```
 */
export const splitRemote = (spec: string): { readonly target: string; readonly path: string } | undefined => {
  const at = spec.lastIndexOf("@", spec.indexOf(":") < 0 ? spec.length : spec.indexOf(":"))
  const hostStart = at + 1
  let colon: number
  if (spec[hostStart] === "[") {
    const close = spec.indexOf("]", hostStart)
    if (close < 0 || spec[close + 1] !== ":") return undefined
    colon = close + 1
    const target = spec.slice(0, hostStart) + spec.slice(hostStart + 1, close)
    return { target, path: spec.slice(colon + 1) }
  }
  colon = spec.indexOf(":", hostStart)
  if (colon <= hostStart) return undefined
  return { target: spec.slice(0, colon), path: spec.slice(colon + 1) }
}

/**
 * Parses the arguments after `get` or `put`.
 *
 * @example
 * ```ts
 * parseTransfer("get", ["-r", "-p", "2222", "me@host:/var/log", "./logs"])
 * ```
 */
export const parseTransfer = (command: "get" | "put", argv: ReadonlyArray<string>): TransferArgs | UsageError => {
  const connection: Array<string> = []
  const positional: Array<string> = []
  let recursive = false
  let resume = false
  let preserve = false
  let concurrency: number | undefined
  let channels: number | undefined
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (valueFlags.has(arg)) {
      const value = argv[++i]
      if (value === undefined) return new UsageError(`${arg} needs a value`)
      connection.push(arg, value)
    } else if (arg === "-A" || verboseFlags(arg) !== undefined) connection.push(arg)
    else if (arg === "-r") recursive = true
    else if (arg === "--resume") resume = true
    else if (arg === "--preserve") preserve = true
    else if (arg === "-j" || arg === "--channels") {
      const value = Number(argv[++i])
      if (!Number.isSafeInteger(value) || value < 1) return new UsageError(`${arg} needs a positive number`)
      if (arg === "-j") concurrency = value
      else if (command === "put") channels = value
      else return new UsageError("--channels splits uploads only (put)")
    } else if (arg.startsWith("-") && arg !== "-") return new UsageError(`unknown flag ${arg}`)
    else positional.push(arg)
  }
  if (positional.length !== 2) return new UsageError(`${command} needs a source and a destination`)
  const [source, destination] = positional as [string, string]
  const remoteSpec = command === "get" ? source : destination
  const local = command === "get" ? destination : source
  const remote = splitRemote(remoteSpec)
  if (remote === undefined) {
    return new UsageError(`${command === "get" ? "source" : "destination"} must be [user@]host:path, got "${remoteSpec}"`)
  }
  // The exec parser validates the connection flags and the target; its command is a placeholder.
  const parsed = parseExec([...connection, remote.target, "--", "sftp"])
  if (parsed instanceof UsageError) return parsed
  const { _tag: _exec, command: _command, noStdin: _noStdin, tty: _tty, ...rest } = parsed
  return {
    ...rest,
    _tag: command === "get" ? "Get" : "Put",
    remote: remote.path === "" ? "." : remote.path,
    local,
    recursive,
    resume,
    preserve,
    concurrency,
    channels
  }
}

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"]

/**
 * A byte count for people: "1.5 MiB".
 *
 * @example
 * ```ts
 * formatBytes(1536) // "1.5 KiB"
 * ```
 */
export const formatBytes = (bytes: number): string => {
  let value = bytes
  let unit = 0
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024
    unit++
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${UNITS[unit]}`
}

const formatDuration = (seconds: number): string => {
  if (!Number.isFinite(seconds) || seconds < 0) return "--:--"
  const s = Math.round(seconds)
  const h = Math.floor(s / 3600)
  const mm = String(Math.floor((s % 3600) / 60)).padStart(2, "0")
  const ss = String(s % 60).padStart(2, "0")
  return h > 0 ? `${h}:${mm}:${ss}` : `${mm}:${ss}`
}

/**
 * One progress line: percentage, bytes, rate and ETA (pure, for the bar and its tests).
 *
 * @example
 * ```ts
 * progressLine("big.iso", { bytes: 512, total: 1024 }, 2) // "big.iso  50%  512 B / 1.0 KiB  256 B/s  ETA 00:02"
 * ```
 */
export const progressLine = (name: string, progress: Progress, elapsedSeconds: number): string => {
  const rate = elapsedSeconds > 0 ? progress.bytes / elapsedSeconds : 0
  const total = progress.total
  if (total === undefined || total === 0) return `${name}  ${formatBytes(progress.bytes)}  ${formatBytes(Math.round(rate))}/s`
  const percent = Math.min(100, Math.floor((progress.bytes / total) * 100))
  const eta = rate > 0 ? (total - progress.bytes) / rate : Number.NaN
  return `${name}  ${String(percent).padStart(3)}%  ${formatBytes(progress.bytes)} / ${formatBytes(total)}  ${
    formatBytes(Math.round(rate))
  }/s  ETA ${formatDuration(eta)}`
}

/** A progress bar on stderr, redrawn at most every 100 ms (and once at the end). */
const progressBar = (remoteName: string) => {
  const name = terminalLine(remoteName)
  const started = performance.now()
  let drawn = 0
  const draw = (progress: Progress) => {
    const line = progressLine(name, progress, (performance.now() - started) / 1000)
    const width = process.stderr.columns ?? 80
    process.stderr.write(`\r${line.slice(0, width - 1).padEnd(width - 1)}`)
  }
  return {
    onProgress: (progress: Progress) =>
      Effect.sync(() => {
        const now = performance.now()
        if (now - drawn < 100 && progress.bytes !== progress.total) return
        drawn = now
        draw(progress)
      }),
    done: (result: TransferResult) =>
      Effect.sync(() => {
        draw({ bytes: result.bytes, total: result.bytes })
        process.stderr.write("\n")
      })
  }
}

const basename = (path: string): string => path.replace(/\/+$/, "").split("/").pop() ?? path

/**
 * Runs `get` or `put`; succeeds with the exit code (0).
 *
 * @example
 * ```ts
 * const code = yield* runTransfer(args)
 * ```
 */
export const runTransfer = (
  args: TransferArgs
): Effect.Effect<number, SshError.SshError, Scope.Scope | SshClient.Connector | FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const ssh = yield* SshClient.connect(yield* connectOptions(args))
    const sftp = yield* ssh.sftp()
    const bar = process.stderr.isTTY === true ? progressBar(basename(args._tag === "Get" ? args.remote : args.local)) : undefined
    const options = {
      recursive: args.recursive,
      resume: args.resume,
      preserve: args.preserve,
      concurrency: args.concurrency,
      channels: args.channels,
      onProgress: bar?.onProgress
    }
    let result: TransferResult
    if (args._tag === "Get") {
      // Like scp: into an existing local directory, keep the remote name.
      const isDir = yield* Effect.orElseSucceed(Effect.map(fs.stat(args.local), (info) => info.type === "Directory"), () => false)
      const local = isDir ? `${args.local.replace(/\/+$/, "")}/${basename(args.remote)}` : args.local
      result = yield* sftp.get(args.remote, local, options)
    } else {
      const isDir = yield* Effect.orElseSucceed(Effect.map(sftp.stat(args.remote), Attributes.isDirectory), () => false)
      const remote = isDir ? `${args.remote.replace(/\/+$/, "")}/${basename(args.local)}` : args.remote
      result = yield* sftp.put(args.local, remote, options)
    }
    if (bar !== undefined) yield* bar.done(result)
    return 0
  })

/**
 * The `get`/`put` entry point of the CLI: parses, runs, and sets the exit
 * code (0 done, 1 failed, 2 usage error, 128 + signal number when a signal
 * stopped it).
 *
 * @example
 * ```ts
 * transferMain("get", ["me@host:/etc/hosts", "./hosts"])
 * ```
 */
export const transferMain = (command: "get" | "put", argv: ReadonlyArray<string>): void => {
  if (argv.includes("-h") || argv.includes("--help")) {
    process.stdout.write(transferUsage + "\n")
    return
  }
  const args = parseTransfer(command, argv)
  if (args instanceof UsageError) {
    process.stderr.write(`effect-ssh: ${args.message}\n${transferUsage}\n`)
    process.exitCode = 2
    return
  }
  const program = runTransfer(args).pipe(withVerbosity(args.verbose ?? 0), Effect.scoped, Effect.provide(NodeSsh.layer), interruptOnHangup)
  const signals = watchSignals()
  NodeRuntime.runMain(program, {
    disableErrorReporting: true,
    teardown: (exit, onExit) => {
      signals.stop()
      if (Exit.isSuccess(exit)) return onExit(0)
      // interrupted by a signal: quietly, the partial file kept for --resume
      const signal = signals.received()
      if (signal !== undefined) return onExit(signalExitCode(signal))
      process.stderr.write(errorLine(Cause.squash(exit.cause)))
      onExit(1)
    }
  })
}
