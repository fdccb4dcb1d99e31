#!/usr/bin/env node
/**
 * The `effect-ssh` command.
 *
 * @example
 * ```sh
 * effect-ssh exec me@host                  # an interactive shell
 * effect-ssh exec -p 2222 -i ~/.ssh/id_ed25519 me@host -- uname -a
 * effect-ssh exec -N -L 8080:localhost:80 -D 1080 me@host
 * ```
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Cause from "effect/Cause"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { UsageError, execUsage, parseExec } from "./Args.ts"
import { errorLine, runExec } from "./Exec.ts"
import { serveMain } from "./Serve.ts"
import { serveUsage } from "./ServeArgs.ts"
import { transferMain, transferUsage } from "./Transfer.ts"
import { keygenMain, keygenUsage } from "./Keygen.ts"
import { pexecMain, pexecUsage } from "./Pexec.ts"
import { withVerbosity } from "./Verbose.ts"
import * as NodeSsh from "../NodeSsh.ts"
import * as os from "node:os"
import { permissionDenied } from "./Passwords.ts"
import { interruptOnHangup, signalExitCode, watchSignals } from "./Signals.ts"

const usage = `usage: effect-ssh <command> [options]

commands:
  exec    open a shell on a server, or run a command and stream its output
  serve   run an SSH server (exec and shell through your shell)
  get     download files over SFTP
  put     upload files over SFTP
  keygen  generate a key pair (openssh-key-v1 + .pub)
  pexec   run a command on many hosts at once (parallel-ssh)
  config  print the configuration ssh_config gives a host, as ssh -G (effect-ssh config -h)
${execUsage}
${serveUsage}
${transferUsage}
${keygenUsage}
${pexecUsage}`

const fail = (message: string, code: number): never => {
  process.stderr.write(`effect-ssh: ${message}\n`)
  process.exit(code)
}

const main = (argv: ReadonlyArray<string>) => {
  const [command, ...rest] = argv
  if (command === undefined || command === "-h" || command === "--help") {
    process.stdout.write(usage + "\n")
    process.exit(command === undefined ? 2 : 0)
  }
  if (command === "serve") return serveMain(rest)
  if (command === "get" || command === "put") return transferMain(command, rest)
  if (command === "keygen") return keygenMain(rest)
  if (command === "pexec") return pexecMain(rest)
  if (command === "config") return void import("./Config.ts").then((config) => config.configMain(rest))
  if (command !== "exec") return fail(`unknown command "${command}"\n${usage}`, 2)
  const args = parseExec(rest)
  if (args instanceof UsageError) return fail(`${args.message}\n${execUsage}`, 2)
  const program = runExec(args).pipe(withVerbosity(args.verbose ?? 0), Effect.scoped, Effect.provide(NodeSsh.layer), interruptOnHangup)
  const signals = watchSignals()
  // -N (and -W) run until interrupted: SIGINT or SIGTERM is their normal end
  const signalIsSuccess = args.noCommand || args.forwarding.stdio !== undefined
  const user = args.user ?? os.userInfo().username
  NodeRuntime.runMain(
    Effect.onExit(program, (exit) =>
      Effect.sync(() => {
        signals.stop()
        const signal = signals.received()
        if (Exit.isSuccess(exit)) {
          process.exitCode = exit.value
          return
        }
        // ended by a signal: quietly, with the shell's 128 + signal number
        if (signal !== undefined) {
          process.exitCode = signalIsSuccess ? 0 : signalExitCode(signal)
          return
        }
        process.exitCode = 255
        if (Cause.hasInterruptsOnly(exit.cause)) return
        const error = Cause.squash(exit.cause)
        const denied = permissionDenied(user, args.host, error)
        process.stderr.write(denied === undefined ? errorLine(error) : `${denied}\n`)
      })).pipe(Effect.ignore),
    { disableErrorReporting: true, teardown: (_exit, onExit) => onExit(Number(process.exitCode ?? 0)) }
  )
}

main(process.argv.slice(2))
