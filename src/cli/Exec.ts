/**
 * `effect-ssh exec`: connect, run one command or the login shell (see
 * `Shell`: pty, raw mode, escapes), stream its stdout and stderr to ours,
 * forward our stdin (unless `-n`), and return the remote exit code (128 +
 * signal number on a signal), as `ssh host [cmd]` does; with ssh's
 * forwarding flags (`-L`, `-R`, `-D`, `-N`, `-W`) around it.
 *
 * @since 0.1.0
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import type * as FileSystem from "effect/FileSystem"
import * as Logger from "effect/Logger"
import * as Stream from "effect/Stream"
import * as SshClient from "../Client.ts"
import * as Auth from "../Auth/ClientAuth.ts"
import * as HostKeys from "../Auth/HostKeys.ts"
import * as ConnectConfig from "../Config/ConnectConfig.ts"
import * as Jump from "../Config/Jump.ts"
import type * as SshConfig from "../Config/SshConfig.ts"
import * as SshError from "../SshError.ts"
import { type ConnectionArgs, type ExecArgs, notConfigLines, UsageError } from "./Args.ts"
import { keyPassphrase } from "./Askpass.ts"
import { configuredForwarding, startForwardings, stdioForward, x11Unavailable } from "./Forwarding.ts"
import * as HostKeyPrompt from "./HostKeyPrompt.ts"
import * as Passwords from "./Passwords.ts"
import * as Shell from "./Shell.ts"
import { stdinStream, writeTo } from "./Shell.ts"
import { terminalBlock, terminalLine } from "../internal/terminalText.ts"

/**
 * The line the CLI prints for an error: the message escaped for the terminal,
 * since it may carry text from the server (a DISCONNECT reason, an SFTP
 * status message, a remote path).
 *
 * @example
 * ```ts
 * process.stderr.write(errorLine(error)) // "effect-ssh: PeerDisconnected: peer disconnected (code 2): bye\\033[2J\n"
 * ```
 */
export const errorLine = (error: unknown): string => {
  // not ours (an interruption, a defect): described as is, never passed off as a reason
  if (!SshError.isSshError(error) && !SshError.isSshErrorReason(error)) return `effect-ssh: ${terminalLine(SshError.describeThrown(error))}\n`
  const reason = SshError.fromUnknown(error).reason
  const path = reason._tag === "SftpStatus" && reason.path !== undefined ? ` (${terminalLine(reason.path)})` : ""
  return `effect-ssh: ${reason._tag}: ${terminalLine(reason.message)}${path}\n`
}

/**
 * Answers a keyboard-interactive round on the terminal, as ssh does: the
 * round's name and instruction first, then each prompt; all of it comes from
 * the server, so all of it is escaped (instructions and prompts may span lines).
 *
 * @example
 * ```ts
 * Auth.keyboardInteractive(answerOnTerminal(promptHidden))
 * ```
 */
export const answerOnTerminal = (
  ask: (question: string, echo: boolean) => Effect.Effect<string, SshError.SshError>,
  write: (text: string) => void = (text) => void process.stderr.write(text)
) =>
(request: { readonly name: string; readonly instruction: string; readonly prompts: ReadonlyArray<{ readonly prompt: string; readonly echo: boolean }> }) =>
  Effect.suspend(() => {
    if (request.name.length > 0) write(`${terminalLine(request.name)}\n`)
    if (request.instruction.length > 0) {
      const instruction = terminalBlock(request.instruction)
      write(instruction.endsWith("\n") ? instruction : `${instruction}\n`)
    }
    return Effect.forEach(request.prompts, (p) => ask(terminalBlock(p.prompt), p.echo))
  })

/**
 * Prints a server's banner (USERAUTH_BANNER) on stderr, escaped: it arrives
 * before the user is authenticated, from any server the user connects to.
 *
 * @example
 * ```ts
 * const options = { ...connect, onBanner: printBanner }
 * ```
 */
export const printBanner = (message: string, write: (text: string) => void = (text) => void process.stderr.write(text)) =>
  Effect.sync(() => write(terminalBlock(message)))

const usageFailure = (e: UsageError) => Effect.fail(SshError.make(new SshError.ConfigParseError({ message: e.message })))

/**
 * The host-key policy of the flags: `--host-key-fingerprint` pins a key;
 * otherwise known_hosts (`--known-hosts` / `UserKnownHostsFile`) with
 * `-o StrictHostKeyChecking`: ask (the default, as ssh's) → `HostKeyPrompt.ask`
 * (an unknown host is confirmed on the terminal, refused without one), yes →
 * strict, accept-new → `acceptNew`, no / off → `autoAdd` (unlike ssh, a
 * changed key is still refused). `-o HashKnownHosts=yes` hashes added names.
 *
 * @example
 * ```ts
 * hostKeyPolicy({ ...args, options: { stricthostkeychecking: "accept-new" } }) // HostKeys.acceptNew(...)
 * ```
 */
export const hostKeyPolicy = (args: ConnectionArgs): HostKeys.HostKeyPolicy | UsageError => {
  if (args.fingerprint !== undefined) return HostKeys.fingerprint(args.fingerprint)
  const hashed = args.options.hashknownhosts?.toLowerCase()
  if (hashed !== undefined && hashed !== "yes" && hashed !== "no") return new UsageError(`bad HashKnownHosts "${hashed}"`)
  const options = { files: args.knownHosts === undefined ? undefined : [args.knownHosts], hashed: hashed === "yes" }
  switch (args.options.stricthostkeychecking?.toLowerCase() ?? "ask") {
    case "yes":
      return HostKeys.knownHosts(options)
    case "ask":
      return HostKeyPrompt.ask({ ...options, batchMode: Passwords.batchMode(args.options) })
    case "accept-new":
      return HostKeys.acceptNew(options)
    case "no":
    case "off":
      return HostKeys.autoAdd(options)
    default:
      return new UsageError(`bad StrictHostKeyChecking "${args.options.stricthostkeychecking}" (yes, accept-new or no)`)
  }
}

/**
 * Where the configuration of a command line comes from: `-F` (or the user's
 * and the system's files), and the flags as ssh_config lines read first:
 * `-i` as IdentityFile, `--known-hosts` as UserKnownHostsFile, then `-J`,
 * `-A` and the `-o` options (the first of each keyword); `-l` and `-p` win
 * over User and Port lines.
 *
 * @example
 * ```ts
 * configSource({ ...args, identities: ["~/.ssh/ci"] }).config // ["IdentityFile \"~/.ssh/ci\"", ...]
 * ```
 */
export const configSource = (args: ConnectionArgs): Jump.ConfigSource => ({
  configFile: args.configFile,
  config: [
    ...args.identities.map((file) => `IdentityFile "${file}"`),
    ...(args.knownHosts === undefined ? [] : [`UserKnownHostsFile "${args.knownHosts}"`]),
    ...(args.configLines ?? []),
    ...Object.entries(args.options).filter(([keyword]) => !notConfigLines.has(keyword)).map(([keyword, value]) => `${keyword} ${value}`)
  ],
  username: args.user,
  port: args.port
})

/**
 * `--host-key-fingerprint` pins the key; otherwise the configuration's known_hosts policy, where
 * StrictHostKeyChecking `ask` (ssh's default) asks on the terminal (`HostKeyPrompt.ask`); `hostKeyPolicy` checks the flags.
 */
const hostKeysFor = (args: ConnectionArgs, resolved: SshConfig.ResolvedConfig) => {
  const flags = hostKeyPolicy(args)
  if (flags instanceof UsageError) return usageFailure(flags)
  if (args.fingerprint !== undefined) return Effect.succeed(flags)
  return Effect.succeed(ConnectConfig.hostKeyPolicy(resolved, {
    hashed: args.options.hashknownhosts?.toLowerCase() === "yes",
    ask: (known) => HostKeyPrompt.ask({ ...known, batchMode: resolved.batchMode })
  }))
}

/** Passwords and keyboard-interactive through the terminal or SSH_ASKPASS, NumberOfPasswordPrompts tries (none under BatchMode). */
const terminalMethods = (resolved: SshConfig.ResolvedConfig): ReadonlyArray<Auth.AuthMethod> =>
  Passwords.authMethods({
    user: resolved.user,
    host: resolved.host,
    tries: resolved.numberOfPasswordPrompts,
    batchMode: resolved.batchMode
  }, answerOnTerminal)

/**
 * Turns connection flags into `SshClient.connect` options, through the
 * ssh_config resolution of the host (see `configSource`): HostName, Port,
 * User, the agent and identity files with their certificates, the known_hosts
 * policy, timers, algorithms, ForwardAgent and SetEnv/SendEnv. With ProxyJump
 * (`-J`) or ProxyCommand the jump connections are made here and the options
 * carry the socket to the destination (closed with it).
 *
 * @example
 * ```ts
 * const options = yield* connectOptions(args)
 * ```
 */
export const connectOptions = (
  args: ConnectionArgs
): Effect.Effect<SshClient.ConnectOptions, SshError.SshError, FileSystem.FileSystem | SshClient.Connector> =>
  Effect.map(connectPlan(args), (plan) => plan.options)

/** What `connectPlan` gives: the options, and the configuration they were resolved from. */
export interface ConnectPlan {
  readonly options: SshClient.ConnectOptions
  readonly resolved: SshConfig.ResolvedConfig
}

/**
 * `connectOptions` with the resolved configuration beside them, for a caller that acts on more of it (exec sets up
 * the configured forwardings: `forwardsApplied` keeps them out of the warnings about what is not applied).
 *
 * @example
 * ```ts
 * const { options, resolved } = yield* connectPlan(args, { forwardsApplied: true })
 * ```
 */
export const connectPlan = (
  args: ConnectionArgs,
  { forwardsApplied = false }: { readonly forwardsApplied?: boolean | undefined } = {}
): Effect.Effect<ConnectPlan, SshError.SshError, FileSystem.FileSystem | SshClient.Connector> =>
  Effect.gen(function*() {
    const config = yield* Jump.loadConfig(configSource(args))
    const resolved = yield* Jump.resolving(() => config.resolve(args.host))
    const reported = new Set<string>()
    yield* ConnectConfig.reportIgnored(resolved, reported, { forwardsApplied })
    const passphrase = resolved.batchMode ? undefined : (file: string, attempt: number) => keyPassphrase(file, attempt)
    const options = yield* ConnectConfig.connectOptions(resolved, {
      hostKeys: yield* hostKeysFor(args, resolved),
      passphrase,
      extraAuth: terminalMethods(resolved),
      onBanner: (message) => printBanner(message)
    })
    const socket = yield* Jump.routedSocket(config, resolved, { passphrase, reported })
    return { options: socket === undefined ? options : { ...options, socket }, resolved }
  })

const warnOnStderr = (error: SshError.SshError) => Effect.sync(() => void process.stderr.write(errorLine(error)))

/**
 * Runs `effect-ssh exec`; succeeds with the exit code to use. The forwardings (`-L`, `-R`, `-D`) are set up
 * first and last as long as the command; with `-N` there is none and they last until the connection ends or
 * the program is interrupted; `-W` copies our stdin and stdout to and from its target instead.
 *
 * @example
 * ```ts
 * const code = yield* runExec(args)
 * ```
 */
export const runExec = (args: ExecArgs) =>
  Effect.gen(function*() {
    if (args.x11) return yield* Effect.fail(x11Unavailable)
    const { options, resolved } = yield* connectPlan(args, { forwardsApplied: true })
    const ssh = yield* SshClient.connect(options)
    if (args.forwarding.stdio !== undefined) {
      const input = args.noStdin ? Stream.empty : stdinStream
      return yield* stdioForward(ssh, args.forwarding.stdio, input, writeTo(process.stdout))
    }
    for (const { listen } of resolved.remoteForwards.filter((f) => f.connect === undefined)) {
      const at = listen._tag === "Path" ? listen.path : `${listen.host === undefined ? "" : `${listen.host}:`}${listen.port}`
      yield* Effect.logWarning(`ssh_config: ${resolved.host}: RemoteForward ${at} (remote SOCKS) is not supported; not set up`)
    }
    yield* startForwardings(ssh, configuredForwarding(args.forwarding, resolved), warnOnStderr)
    if (args.noCommand) return yield* Deferred.await(ssh.closed)
    // -T, -t, -tt and -o RequestTTY decide; otherwise the configuration's RequestTTY
    const requestTty = args.requestTty ?? resolved.requestTty
    const plan = Shell.planSession({ ...args, requestTty, stdinIsTerminal: process.stdin.isTTY === true })
    if (plan.warning !== undefined) process.stderr.write(`${plan.warning}\n`)
    const session = plan.pty ? { pty: Shell.ptyRequest() } : {}
    const proc = yield* (args.command === undefined ? ssh.shell(session) : ssh.exec(args.command, session))
    return yield* Shell.runSession(proc, plan, args.host)
  }).pipe(Effect.provideService(Logger.LogToStderr, true)) // stdout carries the remote output only
