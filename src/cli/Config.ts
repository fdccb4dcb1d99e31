/**
 * `effect-ssh config [-F file] [-o Option=value]... [-p PORT] [-l USER]
 * [-J jumps] [-A] [user@]host...`: prints the configuration resolved for a
 * host the way `ssh -G` prints it, one `keyword value` line each, for the
 * keywords we resolve. The algorithm lists are the ones effect-ssh would
 * offer (our defaults with the configured `+`, `-`, `^` applied), not
 * OpenSSH's. Several hosts print one block each, separated by an empty line.
 *
 * ```sh
 * effect-ssh config -F ./ssh_config web
 * ```
 *
 * @since 0.1.0
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Logger from "effect/Logger"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as ConnectConfig from "../Config/ConnectConfig.ts"
import * as Jump from "../Config/Jump.ts"
import type * as SshConfig from "../Config/SshConfig.ts"
import * as Algorithms from "../Transport/Algorithms.ts"
import { UsageError, parseExec } from "./Args.ts"
import { configSource, errorLine } from "./Exec.ts"

/** `effect-ssh config ...` */
export interface ConfigArgs {
  readonly source: Jump.ConfigSource
  readonly hosts: ReadonlyArray<string>
}

/**
 * Usage text of `config`.
 *
 * @example
 * ```ts
 * process.stderr.write(configUsage)
 * ```
 */
export const configUsage =
  "usage: effect-ssh config [-A] [-F CONFIG] [-J [user@]host[:port][,...]] [-o Option=value]... [-p PORT] [-l USER]\n" +
  "                         [user@]host...   print the resolved configuration, as ssh -G"

/** Flags of `config` that take a value; all of them are connection flags of exec. */
const valueFlags: ReadonlySet<string> = new Set(["-F", "-J", "-o", "-p", "-l", "-i"])

/**
 * Parses the arguments after `config` (the connection flags through the exec
 * parser, so they mean the same).
 *
 * @example
 * ```ts
 * parseConfig(["-F", "./ssh_config", "-o", "User=deploy", "web", "db"]) // { source: {...}, hosts: ["web", "db"] }
 * ```
 */
export const parseConfig = (argv: ReadonlyArray<string>): ConfigArgs | UsageError => {
  const flags: Array<string> = []
  const hosts: Array<string> = []
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (valueFlags.has(arg)) {
      const value = argv[++i]
      if (value === undefined) return new UsageError(`${arg} needs a value`)
      flags.push(arg, value)
    } else if (arg === "-A") flags.push(arg)
    else if (arg.startsWith("-") && arg !== "-") return new UsageError(`unknown flag ${arg}`)
    else hosts.push(arg)
  }
  if (hosts.length === 0) return new UsageError("missing host")
  const parsed = parseExec([...flags, "host", "--", "true"])
  if (parsed instanceof UsageError) return parsed
  // a user of -l wins over user@ for every host (as in ssh); user@ is resolved per host
  return { source: configSource(parsed), hosts }
}

/**
 * Our algorithm lists, so that `lines` prints the lists effect-ssh assembles.
 * PubkeyAcceptedAlgorithms is printed as written (we do not filter on it).
 */
const algorithmLists: SshConfig.Context["algorithms"] = {
  ciphers: { defaults: Algorithms.cipherDefaults, supported: Algorithms.cipherSupported },
  macs: { defaults: Algorithms.macDefaults, supported: Algorithms.macSupported },
  kexalgorithms: { defaults: Algorithms.kexDefaults, supported: Algorithms.kexSupported },
  hostkeyalgorithms: { defaults: Algorithms.hostKeyDefaults, supported: Algorithms.hostKeySupported }
}

/**
 * The lines `config` prints for each host, blocks separated by an empty line.
 *
 * @example
 * ```ts
 * const text = yield* configText({ source: { configFile: "./ssh_config" }, hosts: ["web"] })
 * ```
 */
export const configText = (args: ConfigArgs) =>
  Effect.gen(function*() {
    const config = yield* Jump.loadConfig({ ...args.source, context: { algorithms: algorithmLists } })
    const blocks: Array<string> = []
    const reported = new Set<string>()
    for (const host of args.hosts) {
      const resolved = yield* Effect.try({ try: () => config.resolve(host), catch: (e) => e })
      yield* ConnectConfig.reportUnsupported(resolved, reported)
      blocks.push(resolved.lines().map((line) => `${line}\n`).join(""))
    }
    return blocks.join("\n")
  })

/**
 * Runs `effect-ssh config` as a program: prints, or exits 255 with the error
 * (an unreadable `-F` file, a bad line), 2 on a usage error.
 *
 * @example
 * ```ts
 * configMain(["-F", "./ssh_config", "web"])
 * ```
 */
export const configMain = (argv: ReadonlyArray<string>): void => {
  const args = parseConfig(argv)
  if (args instanceof UsageError) {
    process.stderr.write(`effect-ssh: ${args.message}\n${configUsage}\n`)
    process.exit(2)
  }
  NodeRuntime.runMain(
    configText(args).pipe(
      Effect.provide(NodeFileSystem.layer),
      // stdout carries the configuration only
      Effect.provideService(Logger.LogToStderr, true),
      Effect.onExit((exit) =>
        Effect.sync(() => {
          if (Exit.isSuccess(exit)) {
            process.stdout.write(exit.value)
            return
          }
          process.stderr.write(errorLine(Cause.squash(exit.cause)))
          process.exitCode = 255
        })
      ),
      Effect.ignore
    ),
    { disableErrorReporting: true, teardown: (_exit, onExit) => onExit(Number(process.exitCode ?? 0)) }
  )
}
