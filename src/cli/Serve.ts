/**
 * `effect-ssh serve`: a standalone SSH server on `SshServer.serve`. Exec and
 * shell requests run through the server owner's shell (`ProcessSession`),
 * with a real pty when the client asks for one; publickey logins check an
 * authorized_keys file, every line's options enforced as sshd does
 * (`command=`, `from=`, `no-pty`, `restrict`, `permitopen=`, `environment=`,
 * `expiry-time=`, `cert-authority`, ...; a line with an option it cannot
 * enforce, such as `tunnel=`, is skipped with a warning naming it);
 * password and keyboard-interactive logins a
 * `user:password` file. Every connection is logged to stderr (Connected,
 * Authenticated, Closed with the error if any), and so are refused
 * connections (rate-limited: one line per reason per 10 s, counting the
 * ones left out) and sources whose penalty starts refusing them.
 *
 * It admits connections as sshd does, with sshd's limits as flags: MaxStartups
 * (`--max-startups 10:30:100`), PerSourceMaxStartups (default 3),
 * PerSourceNetBlockSize (default 32:64), PerSourcePenalties (on),
 * PerSourcePenaltyExemptList, LoginGraceTime (120 s), MaxAuthTries (6),
 * MaxSessions (`--max-sessions`, channels per connection) and a total
 * `--max-connections` (see `SshServer.serve` and `Server/Admission`).
 * SIGINT or SIGTERM closes the
 * server's scope — clients get DISCONNECT, session processes SIGHUP — and the
 * process exits 0; a second signal exits at once.
 *
 * All sessions run as the user running the server, whatever name a client
 * logs in with (see `ProcessSession`). With `--sftp-root` the "sftp"
 * subsystem serves that directory as "/" (`SftpServer.fileSystem`), with
 * `--read-only` refusing every change.
 *
 * @example
 * ```sh
 * effect-ssh serve --port 2222 --host-key ./ssh_host_ed25519_key --authorized-keys ~/.ssh/authorized_keys
 * effect-ssh serve --listen 0.0.0.0 --password-file users --max-startups 20:30:60 --per-source-max-startups 5 \
 *   --per-source-penalties "authfail:30s max:1h" --per-source-penalty-exempt-list 10.0.0.0/8 --login-grace-time 30s
 * ```
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { sha256 } from "@noble/hashes/sha2.js"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs/promises"
import * as SshServer from "../Server.ts"
import * as AuthorizedKeys from "../Auth/AuthorizedKeys.ts"
import * as KeyOptions from "../Auth/KeyOptions.ts"
import type * as Admission from "../Server/Admission.ts"
import * as PrivateKey from "../Auth/PrivateKey.ts"
import * as PublicKey from "../Auth/PublicKey.ts"
import * as ServerAuth from "../Auth/ServerAuth.ts"
import * as ProcessSession from "../Server/ProcessSession.ts"
import * as SftpServer from "../Sftp/SftpServer.ts"
import * as SshError from "../SshError.ts"
import { core } from "../Transport/Transport.ts"
import { equalConstantTime, utf8 } from "../internal/bytes.ts"
import { logField } from "../internal/terminalText.ts"
import { matchPatternList } from "../Config/SshConfig.ts"
import { UsageError } from "./Args.ts"
import { type ForwardingKind, type PasswordEntry, type ServeArgs, parsePasswordFile, parseServe, serveUsage } from "./ServeArgs.ts"

/** Writes one log line (without its newline). */
export type Log = (line: string) => Effect.Effect<void>

const configError = (message: string) => SshError.make(new SshError.ConfigParseError({ message }))

const readText = (file: string, what: string): Effect.Effect<string, SshError.SshError> =>
  Effect.tryPromise({
    try: () => fs.readFile(file, "utf8"),
    catch: (cause) => configError(`cannot read ${what} ${file}: ${cause instanceof Error ? cause.message : String(cause)}`)
  })

/** Runs a pure parse, naming the file in its error. */
const parseFile = <A>(file: string, what: string, parse: () => A): Effect.Effect<A, SshError.SshError> =>
  Effect.mapError(core(parse), (e) => configError(`${what} ${file}: ${e.message}`))

/**
 * The lines of an authorized_keys file this server honours, every option enforced (`command=`, `from=`,
 * `no-pty`, `restrict`, `permitopen=`, `environment=`, `expiry-time=`, `cert-authority`, ...: see
 * `KeyOptions`), and a warning for each line it cannot use: unparsable, or with an option it does not know or
 * enforce (named in the warning), which must not become access without that restriction.
 *
 * @example
 * ```ts
 * const { entries, warnings } = usableAuthorizedKeys('tunnel="0" ssh-ed25519 AAAA...\nno-pty ssh-ed25519 AAAA... ok\n')
 * // entries: the second line; warnings: ["line 1: key option tunnel is not supported; key skipped"]
 * ```
 */
export const usableAuthorizedKeys = (
  text: string
): { readonly entries: ReadonlyArray<AuthorizedKeys.AuthorizedKey>; readonly warnings: ReadonlyArray<string> } => {
  const { entries, errors } = AuthorizedKeys.parse(text)
  const warnings = errors.map((e) => `line ${e.line}: ${e.message}; skipped`)
  const usable: Array<AuthorizedKeys.AuthorizedKey> = []
  for (const entry of entries) {
    try {
      KeyOptions.parse(entry.options, entry.line)
      usable.push(entry)
    } catch (u) {
      if (!(u instanceof SshError.ConfigParseError)) throw u
      warnings.push(`${u.message}; key skipped`)
    }
  }
  return { entries: usable, warnings }
}

/**
 * A password check over `--password-file` entries that takes the same time
 * whatever the password and whether the user exists: both sides are hashed
 * to 32 bytes and compared in constant time.
 *
 * @example
 * ```ts
 * const check = passwordVerifier([{ user: "alice", password: "wonderland" }])
 * check("alice", "wonderland") // true
 * check("bob", "wonderland")   // false
 * ```
 */
export const passwordVerifier = (entries: ReadonlyArray<PasswordEntry>): (user: string, password: string) => boolean => {
  const digests = new Map(entries.map((e) => [e.user, sha256(utf8(e.password))] as const))
  const decoy = randomBytes(32)
  return (user, password) => {
    const expected = digests.get(user)
    const matches = equalConstantTime(expected ?? decoy, sha256(utf8(password)))
    return expected !== undefined && matches
  }
}

/**
 * The server's auth handlers: publickey against `keys` (any user name, no restrictions) and authorized_keys
 * `entries` (their options enforced), and
 * with `checkPassword` both password and keyboard-interactive (one hidden
 * "Password: " prompt, as sshd with PAM asks).
 *
 * @example
 * ```ts
 * const auth = authHandlers({ keys: [key.publicKey], checkPassword: passwordVerifier(entries) })
 * ```
 */
export const authHandlers = (options: {
  readonly keys?: ReadonlyArray<PublicKey.PublicKey> | undefined
  readonly entries?: ReadonlyArray<AuthorizedKeys.AuthorizedKey> | undefined
  readonly checkPassword?: ((user: string, password: string) => boolean) | undefined
}): ServerAuth.ServerAuthOptions => {
  const { keys, entries, checkPassword } = options
  return {
    ...(entries === undefined ? {} : ServerAuth.authorizedKeys(entries)),
    publicKey: keys === undefined ? undefined : ({ key }) => Effect.succeed(keys.some((k) => PublicKey.equals(k, key))),
    password: checkPassword === undefined
      ? undefined
      : ({ user, password }) => Effect.sync(() => checkPassword(user, Redacted.value(password))),
    keyboardInteractive: checkPassword === undefined ? undefined : ({ user, prompt }) =>
      Effect.map(
        prompt({ name: "", instruction: "", prompts: [{ prompt: "Password: ", echo: false }] }),
        (answers) => checkPassword(user, answers[0] ?? "")
      )
  }
}

/**
 * One log line for a server event.
 *
 * @example
 * ```ts
 * formatEvent({ _tag: "Connected", remoteAddress: "127.0.0.1", remotePort: 50000 }) // "Connected 127.0.0.1:50000"
 * ```
 */
export const formatEvent = (event: SshServer.ServerEvent): string => {
  switch (event._tag) {
    case "Connected":
      return `Connected ${event.remoteAddress}:${event.remotePort}`
    case "Authenticated":
      return `Authenticated ${logField(event.user)} from ${event.remoteAddress} (${event.methods.join(",")})`
    case "Closed":
      // user names and peers' messages are the peer's text: escaped, so a log line is one line and no terminal escape
      return `Closed ${event.remoteAddress}:${event.remotePort}${event.error === undefined ? "" : ` with error ${logField(event.error.message)}`}`
    case "Refused":
      return `Refused ${hostPort(event.remoteAddress, event.remotePort)} (${event.reason}): ${event.detail}` +
        (event.suppressed > 0 ? `; ${event.suppressed} more refused for ${event.reason} since the last such line` : "")
    case "PenaltyActivated":
      return `Penalty: refusing ${event.addressBlock} for ${(Duration.toMillis(event.duration) / 1000).toFixed(1)} s (${event.reason})`
  }
}

const hostPort = (host: string, port: number) => host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`

const hostKeyLine = (key: PrivateKey.PrivateKey, origin: string) =>
  `Host key ${key.publicKey.type} ${PublicKey.fingerprint(key.publicKey)} (${origin})`

/**
 * Loads the host keys (OpenSSH or PEM private key files, unencrypted), or
 * generates an in-memory ed25519 key when there are none; logs each key's
 * fingerprint.
 *
 * @example
 * ```ts
 * const keys = yield* loadHostKeys(["/etc/ssh/ssh_host_ed25519_key"], log)
 * ```
 */
export const loadHostKeys = (files: ReadonlyArray<string>, log: Log): Effect.Effect<ReadonlyArray<PrivateKey.PrivateKey>, SshError.SshError> =>
  Effect.gen(function*() {
    if (files.length === 0) {
      const key = PrivateKey.generate("ssh-ed25519")
      yield* log(hostKeyLine(key, "generated, in memory only"))
      return [key]
    }
    return yield* Effect.forEach(files, (file) =>
      Effect.gen(function*() {
        const text = yield* readText(file, "host key")
        const key = yield* parseFile(file, "host key", () => PrivateKey.parse(text))
        yield* log(hostKeyLine(key, file))
        return key
      }))
  })

/** `--allow-forwarding`'s kinds as a policy allowing every request of those kinds. */
const forwardingPolicy = (kinds: ReadonlyArray<ForwardingKind>): SshServer.ForwardingHandlers => {
  const yes = () => Effect.succeed(true)
  return {
    local: kinds.includes("local") ? yes : undefined,
    remote: kinds.includes("remote") ? yes : undefined,
    streamLocal: kinds.includes("unix") ? yes : undefined
  }
}

/**
 * Turns parsed `serve` flags into `SshServer.serve` options: reads the host
 * keys, authorized_keys and password files (failing with a message naming
 * the file), and logs what it loaded.
 *
 * @example
 * ```ts
 * const options = yield* serveOptions(args, log)
 * ```
 */
export const serveOptions = (args: ServeArgs, log: Log): Effect.Effect<SshServer.ServeOptions, SshError.SshError> =>
  Effect.gen(function*() {
    const hostKeys = yield* loadHostKeys(args.hostKeys, log)
    let entries: ReadonlyArray<AuthorizedKeys.AuthorizedKey> | undefined
    if (args.authorizedKeys !== undefined) {
      const file = args.authorizedKeys
      const usable = usableAuthorizedKeys(yield* readText(file, "authorized keys"))
      yield* Effect.forEach(usable.warnings, (w) => log(`Warning: ${file} ${w}`), { discard: true })
      yield* log(`Authorized keys: ${usable.entries.length} from ${file}`)
      entries = usable.entries
    }
    let checkPassword: ((user: string, password: string) => boolean) | undefined
    if (args.passwordFile !== undefined) {
      const file = args.passwordFile
      const text = yield* readText(file, "password file")
      const entries = yield* parseFile(file, "password file", () => parsePasswordFile(text))
      yield* log(`Password logins: ${entries.length} user(s) from ${file}`)
      const mode = yield* Effect.promise(() => fs.stat(file).then((s) => s.mode, () => 0))
      if ((mode & 0o077) !== 0) yield* log(`Warning: ${file} is readable by other users (chmod 600 it)`)
      checkPassword = passwordVerifier(entries)
    }
    const sftpRoot = args.sftpRoot
    if (sftpRoot !== undefined) {
      const isDirectory = yield* Effect.promise(() => fs.stat(sftpRoot).then((s) => s.isDirectory(), () => false))
      if (!isDirectory) return yield* Effect.fail(configError(`--sftp-root ${sftpRoot}: not a directory`))
      yield* log(`SFTP: serving ${sftpRoot} as /${args.readOnly === true ? " (read-only)" : ""}`)
    }
    return {
      host: args.listen,
      port: args.port,
      hostKeys,
      auth: {
        ...authHandlers({ entries, checkPassword }),
        maxTries: args.maxAuthTries,
        loginGraceTime: args.loginGraceTime
      },
      session: ProcessSession.handlers(),
      sftp: sftpRoot === undefined ? undefined : SftpServer.fileSystem({
        root: sftpRoot,
        readOnly: args.readOnly === true,
        maxHandles: args.sftpMaxHandles,
        maxHandlesPerSession: args.sftpMaxHandlesPerSession
      }),
      maxConnections: args.maxConnections,
      maxStartups: args.maxStartups,
      perSourceMaxStartups: args.perSourceMaxStartups,
      perSourceNetBlockSize: args.perSourceNetBlockSize,
      perSourcePenalties: args.perSourcePenalties,
      perSourcePenaltyExemptList: args.perSourcePenaltyExemptList,
      maxChannels: args.maxSessions,
      forwarding: forwardingPolicy(args.allowForwarding ?? []),
      permitUserEnvironment: userEnvironment(args.permitUserEnvironment),
      onEvent: (event) => log(formatEvent(event))
    } satisfies SshServer.ServeOptions
  })

/** sshd's PermitUserEnvironment: "yes" for every name, otherwise the names a pattern list matches. */
const userEnvironment = (setting: string | undefined): SshServer.ServeOptions["permitUserEnvironment"] =>
  setting === undefined ? false : setting === "yes" ? true : (name) => matchPatternList(name, setting, false) === 1

/**
 * Starts the server for parsed flags and logs its address; it runs until the
 * scope closes.
 *
 * @example
 * ```ts
 * const server = yield* start(args, log)
 * server.address.port
 * ```
 */
export const start = (args: ServeArgs, log: Log): Effect.Effect<SshServer.SshServer, SshError.SshError, Scope.Scope> =>
  Effect.gen(function*() {
    const options = yield* serveOptions(args, log)
    const server = yield* SshServer.serve(options)
    yield* log(limitsLine(yield* core(() => SshServer.admissionConfig(options)), options))
    const { host, port } = server.address
    yield* log(`Listening on ${host.includes(":") ? `[${host}]` : host}:${port}`)
    return server
  })

const seconds = (ms: number) => `${ms / 1000}s`

/**
 * The limits a server runs with, as one log line in sshd_config's terms.
 *
 * @example
 * ```ts
 * limitsLine(SshServer.admissionConfig(options), options)
 * // "Limits: MaxStartups 10:30:100, PerSourceMaxStartups 3, PerSourceNetBlockSize 32:64, PerSourcePenalties authfail:5s ..."
 * ```
 */
export const limitsLine = (config: Admission.AdmissionConfig, options: SshServer.ServeOptions): string => {
  const m = config.maxStartups
  const p = config.perSourcePenalties
  const grace = options.auth.loginGraceTime === undefined
    ? ServerAuth.DEFAULT_LOGIN_GRACE_TIME_MS
    : Duration.toMillis(Duration.fromInputUnsafe(options.auth.loginGraceTime))
  return [
    `Limits: MaxStartups ${m.start}:${m.rate}:${m.full}`,
    `PerSourceMaxStartups ${config.perSourceMaxStartups ?? "none"}`,
    `PerSourceNetBlockSize ${config.perSourceNetBlockSize.ipv4}:${config.perSourceNetBlockSize.ipv6}`,
    `PerSourcePenalties ${p === undefined ? "no" : `authfail:${seconds(p.authfail)} noauth:${seconds(p.noauth)} grace-exceeded:${seconds(p.graceExceeded)} crash:${seconds(p.crash)} min:${seconds(p.min)} max:${seconds(p.max)}`}`,
    ...(config.perSourcePenaltyExemptList === undefined ? [] : [`PerSourcePenaltyExemptList ${config.perSourcePenaltyExemptList}`]),
    `LoginGraceTime ${grace === 0 ? "none" : seconds(grace)}`,
    `MaxAuthTries ${options.auth.maxTries ?? ServerAuth.DEFAULT_MAX_TRIES}`,
    `MaxSessions ${options.maxChannels ?? SshServer.DEFAULT_MAX_CHANNELS}`,
    `max connections ${config.maxConnections}`
  ].join(", ")
}

const stderrLog: Log = (line) => Effect.sync(() => void process.stderr.write(`${new Date().toISOString()} ${line}\n`))

/** Logs the first SIGINT/SIGTERM (the runtime interrupts us on it); a second one exits at once. */
const forceExitOnSecondSignal = (log: Log): Effect.Effect<void, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      let signals = 0
      const onSignal = () => {
        signals++
        if (signals === 1) Effect.runFork(log("Shutting down (signal again to exit at once)"))
        else process.exit(130)
      }
      process.on("SIGINT", onSignal)
      process.on("SIGTERM", onSignal)
      return onSignal
    }),
    (onSignal) =>
      Effect.sync(() => {
        process.off("SIGINT", onSignal)
        process.off("SIGTERM", onSignal)
      })
  )

/**
 * The `serve` command: parses `argv` (usage errors exit 2), runs the server
 * until SIGINT/SIGTERM (exit 0), and reports a startup failure (exit 1).
 *
 * @example
 * ```ts
 * serveMain(process.argv.slice(3))
 * ```
 */
export const serveMain = (argv: ReadonlyArray<string>): void => {
  const args = parseServe(argv)
  if (args._tag === "Help") {
    process.stdout.write(serveUsage + "\n")
    return
  }
  if (args instanceof UsageError) {
    process.stderr.write(`effect-ssh: ${args.message}\n${serveUsage}\n`)
    process.exitCode = 2
    return
  }
  const log = stderrLog
  const program = Effect.gen(function*() {
    yield* forceExitOnSecondSignal(log)
    yield* start(args, log)
    return yield* Effect.never
  }).pipe(
    Effect.scoped,
    Effect.onExit((exit) => Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause) ? log("Stopped") : Effect.void)
  )
  NodeRuntime.runMain(program, {
    disableErrorReporting: true,
    teardown: (exit, onExit) => {
      if (Exit.isSuccess(exit) || Cause.hasInterruptsOnly(exit.cause)) return onExit(0)
      const error = SshError.fromCause(exit.cause)
      process.stderr.write(`effect-ssh: ${error === undefined ? Cause.pretty(exit.cause) : error.reason.message}\n`)
      onExit(1)
    }
  })
}
