/**
 * `effect-ssh pexec`: one command over many hosts, as parallel-ssh's `pssh`
 * (same flags where they do not clash with ours, same status lines and exit
 * codes), on `SshFleet`.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import type * as FileSystem from "effect/FileSystem"
import * as Stream from "effect/Stream"
import * as fs from "node:fs"
import * as path from "node:path"
import type * as SshClient from "../Client.ts"
import * as SshFleet from "../Fleet.ts"
import type * as SshError from "../SshError.ts"
import * as RunMemo from "../internal/runMemo.ts"
import { terminalBlock, terminalLine } from "../internal/terminalText.ts"
import { type ConnectionArgs, splitUserHost, UsageError } from "./Args.ts"
import { connectOptions, errorLine } from "./Exec.ts"
import { verboseFlags, withVerbosity } from "./Verbose.ts"
import * as NodeSsh from "../NodeSsh.ts"

/** `effect-ssh pexec ...` */
export interface PexecArgs {
  readonly hosts: ReadonlyArray<string>
  readonly hostFiles: ReadonlyArray<string>
  readonly parallelism: number
  /** Seconds per host, 0 for none. */
  readonly timeout: number
  readonly user: string | undefined
  readonly identities: ReadonlyArray<string>
  readonly options: Readonly<Record<string, string>>
  readonly knownHosts: string | undefined
  readonly inline: boolean
  readonly outDir: string | undefined
  readonly errDir: string | undefined
  /** `-v` given this many times (see `Verbose.withVerbosity`). */
  readonly verbose: number
  readonly command: string
}

export const pexecUsage =
  "usage: effect-ssh pexec [-h HOSTS_FILE]... [-H [user@]host[:port]]... [-p PARALLELISM] [-t TIMEOUT] [-l USER]\n" +
  "                        [--identity FILE]... [-O Option=value]... [--known-hosts FILE] [-i] [-o OUTDIR] [-e ERRDIR] [-v]\n" +
  "                        -- command..."

const positiveInt = (flag: string, v: string, allowZero = false): number | UsageError => {
  const n = /^\d+$/.test(v) ? Number(v) : Number.NaN
  return Number.isSafeInteger(n) && (allowZero ? n >= 0 : n > 0) ? n : new UsageError(`bad ${flag} "${v}"`)
}

/**
 * Parses `pexec` flags (pure).
 *
 * @example
 * ```ts
 * parsePexec(["-H", "a", "-H", "b:2222", "-p", "10", "--", "uptime"]) // { hosts: ["a", "b:2222"], parallelism: 10, ... }
 * ```
 */
export const parsePexec = (argv: ReadonlyArray<string>): PexecArgs | UsageError => {
  const hosts: Array<string> = []
  const hostFiles: Array<string> = []
  const identities: Array<string> = []
  const options: Record<string, string> = {}
  let parallelism = 32
  let timeout = 0
  let user: string | undefined
  let knownHosts: string | undefined
  let inline = false
  let outDir: string | undefined
  let errDir: string | undefined
  let verbose = 0
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    const value = (): string | UsageError => argv[++i] ?? new UsageError(`${arg} needs a value`)
    if (arg === "--") {
      const command = argv.slice(i + 1).join(" ")
      if (command === "") return new UsageError("no command given")
      if (hosts.length === 0 && hostFiles.length === 0) return new UsageError("no hosts: give -H HOST or -h HOSTS_FILE")
      return { hosts, hostFiles, parallelism, timeout, user, identities, options, knownHosts, inline, outDir, errDir, verbose, command }
    }
    const vs = verboseFlags(arg)
    if (vs !== undefined) {
      verbose += vs
      continue
    }
    const v = arg === "-i" ? "" : value()
    if (v instanceof UsageError) return v
    switch (arg) {
      case "-H":
        hosts.push(...v.split(/\s+/).filter((h) => h !== ""))
        break
      case "-h":
        hostFiles.push(v)
        break
      case "-p": {
        const n = positiveInt("-p", v)
        if (n instanceof UsageError) return n
        parallelism = n
        break
      }
      case "-t": {
        const n = positiveInt("-t", v, true)
        if (n instanceof UsageError) return n
        timeout = n
        break
      }
      case "-l":
        user = v
        break
      case "--identity":
        identities.push(v)
        break
      case "-O": {
        const eq = v.indexOf("=")
        if (eq <= 0) return new UsageError(`bad -O "${v}" (expected Option=value)`)
        const key = v.slice(0, eq).toLowerCase()
        options[key] ??= v.slice(eq + 1)
        break
      }
      case "--known-hosts":
        knownHosts = v
        break
      case "-i":
        inline = true
        break
      case "-o":
        outDir = v
        break
      case "-e":
        errDir = v
        break
      default:
        return new UsageError(`unknown flag "${arg}"`)
    }
  }
  return new UsageError("missing -- before the command")
}

/**
 * One host of a hosts file or `-H`: `[user@]host[:port]`, `[v6]:port`; blank lines and `#` comments skipped.
 *
 * @example
 * ```ts
 * parseHost("deploy@web1:2222") // { user: "deploy", host: "web1", port: 2222 }
 * ```
 */
export const parseHost = (text: string): { readonly user: string | undefined; readonly host: string; readonly port: number | undefined } | UsageError => {
  const { user, host: rest } = splitUserHost(text.trim())
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(rest)
  const plain = /^([^:]+)(?::(\d+))?$/.exec(rest)
  const match = bracketed ?? plain ?? (rest.includes(":") ? [rest, rest, undefined] as const : undefined)
  if (match === undefined || match[1] === undefined || match[1] === "") return new UsageError(`bad host "${text}"`)
  const port = match[2] === undefined ? undefined : Number(match[2])
  if (port !== undefined && !(port > 0 && port < 65536)) return new UsageError(`bad port in "${text}"`)
  return { user, host: match[1], port }
}

/** The hosts of the files and `-H`, in order. */
const hostsOf = (args: PexecArgs): ReadonlyArray<string> | UsageError => {
  const all = [...args.hosts]
  for (const file of args.hostFiles) {
    let text: string
    try {
      text = fs.readFileSync(file, "utf8")
    } catch (e) {
      return new UsageError(`cannot read hosts file ${file}: ${(e as Error).message}`)
    }
    for (const line of text.split("\n")) {
      const entry = line.replace(/#.*$/, "").trim()
      if (entry !== "") all.push(entry)
    }
  }
  return all
}

const clock = (date: Date) => date.toTimeString().slice(0, 8)

/** pssh's exit codes: 0 all well; 3 a host timed out; 4 a connection failed; 5 a command exited non-zero. */
export const exitCodeOf = (results: ReadonlyArray<SshFleet.HostResult>): number => {
  const failed = results.filter((r) => r._tag === "Failed")
  if (failed.some((r) => r._tag === "Failed" && r.error.reason._tag === "Timeout")) return 3
  if (failed.length > 0) return 4
  if (results.some((r) => r._tag === "Done" && r.exitCode !== 0)) return 5
  return 0
}

/** The status line of one result, as pssh prints it. */
export const statusLine = (n: number, result: SshFleet.HostResult, at: Date): string => {
  const where = result.port === 22 ? result.host : `${result.host}:${result.port}`
  if (result._tag === "Done" && result.exitCode === 0) return `[${n}] ${clock(at)} [SUCCESS] ${terminalLine(where)}\n`
  const why = result._tag === "Failed"
    ? terminalLine(result.error.message)
    : result.exitCode === undefined
    ? "Exited without a status"
    : `Exited with error code ${result.exitCode}`
  return `[${n}] ${clock(at)} [FAILURE] ${terminalLine(where)} ${why}\n`
}

/**
 * Runs `pexec`: the command on every host, a status line per host as it finishes (with `-i` its output after
 * it), outputs written to `OUTDIR/host` and `ERRDIR/host` when asked; returns the exit code.
 *
 * @example
 * ```ts
 * const code = yield* runPexec(args)
 * ```
 */
export const runPexec = (
  args: PexecArgs
): Effect.Effect<number, SshError.SshError | UsageError, FileSystem.FileSystem | SshClient.Connector> =>
  Effect.gen(function*() {
    const hosts = hostsOf(args)
    if (hosts instanceof UsageError) return yield* Effect.fail(hosts)
    const destinations: Array<SshClient.ConnectOptions> = []
    for (const text of hosts) {
      const parsed = parseHost(text)
      if (parsed instanceof UsageError) return yield* Effect.fail(parsed)
      const connection: ConnectionArgs = {
        host: parsed.host,
        port: parsed.port,
        user: parsed.user ?? args.user,
        identities: args.identities,
        options: args.options,
        knownHosts: args.knownHosts,
        fingerprint: undefined
      }
      // no terminal prompts for a fleet: keys and agent only
      const options = yield* connectOptions(connection)
      destinations.push({ ...options, auth: options.auth.filter((m) => m._tag !== "Password" && m._tag !== "KeyboardInteractive") })
    }
    for (const dir of [args.outDir, args.errDir]) if (dir !== undefined) fs.mkdirSync(dir, { recursive: true })
    const results: Array<SshFleet.HostResult> = []
    yield* SshFleet.run(destinations, args.command, {
      concurrency: args.parallelism,
      timeout: args.timeout > 0 ? `${args.timeout} seconds` : undefined,
      keepBytes: args.outDir !== undefined || args.errDir !== undefined ? 64 * 1024 * 1024 : 1024 * 1024
    }).pipe(Stream.runForEach((result) =>
      Effect.sync(() => {
        results.push(result)
        process.stdout.write(statusLine(results.length, result, new Date()))
        if (result._tag !== "Done") return
        const name = result.port === 22 ? result.host : `${result.host}:${result.port}`
        if (args.inline) {
          if (result.stdout !== "") process.stdout.write(terminalBlock(result.stdout))
          if (result.stderr !== "") process.stdout.write(`Stderr: ${terminalBlock(result.stderr)}`)
        }
        if (args.outDir !== undefined) fs.writeFileSync(path.join(args.outDir, name), result.stdout)
        if (args.errDir !== undefined) fs.writeFileSync(path.join(args.errDir, name), result.stderr)
      })
    ))
    return exitCodeOf(results)
  }).pipe(
    // the hosts share their files: each identity, known_hosts and ssh_config file is read and parsed once per run
    Effect.provideServiceEffect(RunMemo.RunMemo, Effect.sync(RunMemo.make))
  )

/**
 * The `pexec` command: parses, runs, exits with pssh's code (2 for usage errors).
 *
 * @example
 * ```ts
 * pexecMain(["-H", "web1", "-H", "web2", "--", "uptime"])
 * ```
 */
export const pexecMain = (argv: ReadonlyArray<string>): void => {
  const args = parsePexec(argv)
  if (args instanceof UsageError) {
    process.stderr.write(`effect-ssh: ${args.message}\n${pexecUsage}\n`)
    process.exit(2)
  }
  NodeRuntime.runMain(
    runPexec(args).pipe(
      withVerbosity(args.verbose),
      Effect.provide(NodeSsh.layer),
      Effect.matchCauseEffect({
        onSuccess: (code) => Effect.sync(() => void (process.exitCode = code)),
        onFailure: (cause) =>
          Effect.sync(() => {
            if (Cause.hasInterruptsOnly(cause)) return void (process.exitCode = 130)
            const error = Cause.squash(cause)
            if (error instanceof UsageError) {
              process.stderr.write(`effect-ssh: ${error.message}\n`)
              process.exitCode = 2
            } else {
              process.stderr.write(errorLine(error))
              process.exitCode = 1
            }
          })
      })
    ),
    { disableErrorReporting: true }
  )
}
