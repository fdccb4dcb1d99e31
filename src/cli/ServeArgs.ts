/**
 * Command-line parsing for `effect-ssh serve`, pure: argv in, the server's
 * settings or a usage error out; and the `--password-file` format
 * (`user:password` lines). Long flags take their value as the next argument
 * or after `=` (`--port 2222`, `--port=2222`). The limits take sshd_config's
 * names and syntax (`--max-startups 10:30:100`, `--login-grace-time 2m`).
 *
 * @example
 * ```ts
 * parseServe(["--port", "2222", "--host-key", "/etc/ssh/ssh_host_ed25519_key", "--authorized-keys", "keys"])
 * ```
 * @since 0.1.0
 */
import { ConfigParseError } from "../SshError.ts"
import { contentLines } from "../internal/lines.ts"
import * as Admission from "../Server/Admission.ts"
import type { NetBlockSize } from "../Server/AddressBlock.ts"
import type { PenaltyConfig } from "../Server/Penalties.ts"
import { UsageError } from "./Args.ts"

/** `effect-ssh serve ...`: what the server needs to start. */
export interface ServeArgs {
  readonly _tag: "Serve"
  /** Address to listen on (default 127.0.0.1: exposing the server is a choice). */
  readonly listen: string
  /** TCP port; 0 picks a free one (default 2222). */
  readonly port: number
  /** OpenSSH private key files; none means a fresh in-memory ed25519 key. */
  readonly hostKeys: ReadonlyArray<string>
  readonly authorizedKeys?: string | undefined
  readonly passwordFile?: string | undefined
  readonly sftpRoot?: string | undefined
  /** SFTP refuses every change (`SftpServer.fileSystem({ readOnly })`). */
  readonly readOnly?: boolean | undefined
  /** The limits below are absent unless given; `SshServer.serve`'s defaults apply then. */
  readonly maxConnections?: number | undefined
  readonly maxStartups?: Admission.MaxStartups | undefined
  readonly perSourceMaxStartups?: number | "none" | undefined
  readonly perSourceNetBlockSize?: NetBlockSize | undefined
  /** `false`: penalties off. */
  readonly perSourcePenalties?: PenaltyConfig | false | undefined
  readonly perSourcePenaltyExemptList?: string | undefined
  /** Milliseconds; 0 for no limit. */
  readonly loginGraceTime?: number | undefined
  readonly maxAuthTries?: number | undefined
  /** Channels per connection (`ServeOptions.maxChannels`). */
  readonly maxSessions?: number | undefined
  /** Open SFTP handles over all sessions (`SftpServer.fileSystem({ maxHandles })`). */
  readonly sftpMaxHandles?: number | undefined
  /** Open SFTP handles per session (`maxHandlesPerSession`). */
  readonly sftpMaxHandlesPerSession?: number | undefined
  /** Kinds of forwarding allowed (`--allow-forwarding`); none when absent. */
  readonly allowForwarding?: ReadonlyArray<ForwardingKind> | undefined
  /** `--permit-user-environment`: "yes", or a pattern list of the variable names allowed; none when absent. */
  readonly permitUserEnvironment?: string | undefined
}

/** What `--allow-forwarding` can allow: `-L`/`-D`/`-W` (local), `-R` (remote), Unix sockets both ways (unix). */
export type ForwardingKind = "local" | "remote" | "unix"

const forwardingKinds: ReadonlyArray<ForwardingKind> = ["local", "remote", "unix"]

/**
 * Parses `--allow-forwarding`'s comma-separated kinds (`all` for every one).
 *
 * @example
 * ```ts
 * parseForwardingKinds("local,remote") // ["local", "remote"]
 * ```
 */
export const parseForwardingKinds = (text: string): ReadonlyArray<ForwardingKind> | UsageError => {
  if (text === "all") return forwardingKinds
  const kinds = text.split(",").map((k) => k.trim())
  const unknown = kinds.find((k) => !(forwardingKinds as ReadonlyArray<string>).includes(k))
  if (unknown !== undefined) return new UsageError(`bad --allow-forwarding kind "${unknown}" (expected local, remote, unix or all)`)
  return [...new Set(kinds as Array<ForwardingKind>)]
}

/** `effect-ssh serve --help`. */
export interface ServeHelp {
  readonly _tag: "Help"
}

/** One `--password-file` entry. */
export interface PasswordEntry {
  readonly user: string
  readonly password: string
}

/**
 * The port `serve` listens on without `--port` (22 needs privileges).
 *
 * @example
 * ```ts
 * parseServe(["--password-file", "users"]) // { ..., port: DEFAULT_PORT }
 * ```
 */
export const DEFAULT_PORT = 2222

/**
 * The address `serve` listens on without `--listen`.
 *
 * @example
 * ```ts
 * parseServe(["--password-file", "users"]) // { ..., listen: DEFAULT_LISTEN }
 * ```
 */
export const DEFAULT_LISTEN = "127.0.0.1"

/**
 * Usage text of `effect-ssh serve`.
 *
 * @example
 * ```ts
 * process.stderr.write(serveUsage + "\n")
 * ```
 */
export const serveUsage =
  "usage: effect-ssh serve [--listen ADDR] [--port N] [--host-key FILE]... [--authorized-keys FILE]\n" +
  "                        [--password-file FILE] [--sftp-root DIR [--read-only]] [limits]\n" +
  `  --listen ADDR           address to listen on (default ${DEFAULT_LISTEN}; 0.0.0.0 or :: for all)\n` +
  `  --port N                port, 0 for any free one (default ${DEFAULT_PORT})\n` +
  "  --host-key FILE         OpenSSH private host key, repeatable (default: a new in-memory ed25519 key)\n" +
  "  --authorized-keys FILE  public keys allowed to log in (publickey)\n" +
  "  --password-file FILE    user:password lines (password and keyboard-interactive)\n" +
  "  --sftp-root DIR         serve SFTP jailed to DIR\n" +
  "  --read-only             SFTP refuses every change\n" +
  "  --sftp-max-handles N    open SFTP handles over all sessions (default: from the file-descriptor limit,\n" +
  "                          keeping a reserve for logins)\n" +
  "  --sftp-max-handles-per-session N  open SFTP handles per session (default 1024)\n" +
  "  --allow-forwarding KINDS  allow port forwarding: local (ssh -L/-D/-W), remote (ssh -R), unix (Unix\n" +
  "                          sockets both ways), comma-separated, or all (default: none)\n" +
  "  --permit-user-environment yes|no|PATTERNS  apply the keys' environment= options: all, none (default),\n" +
  "                          or the names matching a pattern list such as LANG,LC_*\n" +
  "limits (sshd_config's names and syntax; times as 90, 30s, 10m, 1h30m):\n" +
  "  --max-startups S:R:F    with S unauthenticated connections refuse new ones with R% chance,\n" +
  "                          rising to 100% at F (default 10:30:100)\n" +
  `  --per-source-max-startups N|none  unauthenticated connections per source (default ${Admission.DEFAULT_PER_SOURCE_MAX_STARTUPS})\n` +
  `  --per-source-net-block-size V4[:V6]  prefix lengths grouping sources (default ${Admission.DEFAULT_NET_BLOCK_SIZE.ipv4}:${Admission.DEFAULT_NET_BLOCK_SIZE.ipv6})\n` +
  "  --per-source-penalties on|off|\"KEY:VALUE ...\"  refuse sources that fail to log in for a while\n" +
  "                          (default on: authfail:5s noauth:1s grace-exceeded:10s crash:90s min:15s max:10m)\n" +
  "  --per-source-penalty-exempt-list LIST  addresses/CIDR ranges never penalised (e.g. 10.0.0.0/8,192.0.2.7)\n" +
  "  --login-grace-time T    time to log in, 0 for none (default 120s)\n" +
  "  --max-auth-tries N      failed attempts per connection (default 6)\n" +
  `  --max-connections N     connections at once, authenticated or not (default ${Admission.defaults.maxConnections})\n` +
  "  --max-sessions N        channels per connection (default 64)\n" +
  "Sessions run as the user running the server, whatever name the client logs in with."

const valueFlags = [
  "--listen",
  "--port",
  "--host-key",
  "--authorized-keys",
  "--password-file",
  "--sftp-root",
  "--max-startups",
  "--per-source-max-startups",
  "--per-source-net-block-size",
  "--per-source-penalties",
  "--per-source-penalty-exempt-list",
  "--login-grace-time",
  "--max-auth-tries",
  "--max-connections",
  "--max-sessions",
  "--sftp-max-handles",
  "--sftp-max-handles-per-session",
  "--allow-forwarding",
  "--permit-user-environment"
] as const

type ValueFlag = typeof valueFlags[number]

const booleanFlags: ReadonlyArray<string> = ["--read-only"]

const isValueFlag = (flag: string): flag is ValueFlag => (valueFlags as ReadonlyArray<string>).includes(flag)

/** Runs a parser of sshd syntax, its ConfigParseError becoming a usage error naming the flag. */
const setting = <A>(flag: string, value: string | undefined, parse: (text: string) => A): A | undefined | UsageError => {
  if (value === undefined) return undefined
  try {
    return parse(value)
  } catch (e) {
    return new UsageError(`${flag}: ${e instanceof ConfigParseError ? e.message : String(e)}`)
  }
}

const positive = (what: string) => (text: string): number => {
  const n = /^\d{1,9}$/.test(text) ? Number(text) : 0
  if (n < 1) throw new ConfigParseError({ message: `bad ${what} "${text}" (a whole number, at least 1)` })
  return n
}

/**
 * Parses a listening port: 0 (any free port) to 65535.
 *
 * @example
 * ```ts
 * parseListenPort("2222") // 2222
 * parseListenPort("0")    // 0
 * ```
 */
export const parseListenPort = (value: string): number | UsageError => {
  const n = /^\d{1,5}$/.test(value) ? Number(value) : Number.NaN
  return n >= 0 && n < 65536 ? n : new UsageError(`bad port "${value}" (0 to 65535)`)
}

/**
 * Parses a listening address: a host name, an IPv4 address or an IPv6
 * address (brackets optional).
 *
 * @example
 * ```ts
 * parseListenAddress("[::1]") // "::1"
 * ```
 */
export const parseListenAddress = (value: string): string | UsageError => {
  const bare = /^\[(.*)\]$/.exec(value)?.[1] ?? value
  return /^[A-Za-z0-9._:%-]+$/.test(bare) ? bare : new UsageError(`bad listen address "${value}"`)
}

/**
 * Parses the arguments after `serve`.
 *
 * @example
 * ```ts
 * parseServe(["--listen", "0.0.0.0", "--port=22", "--password-file", "users"])
 * // { _tag: "Serve", listen: "0.0.0.0", port: 22, hostKeys: [], passwordFile: "users" }
 * ```
 */
export const parseServe = (argv: ReadonlyArray<string>): ServeArgs | ServeHelp | UsageError => {
  const single = new Map<ValueFlag, string>()
  const hostKeys: Array<string> = []
  const switches = new Set<string>()
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === "-h" || arg === "--help") return { _tag: "Help" }
    if (booleanFlags.includes(arg)) {
      switches.add(arg)
      continue
    }
    const eq = arg.startsWith("--") ? arg.indexOf("=") : -1
    const flag = eq < 0 ? arg : arg.slice(0, eq)
    if (!isValueFlag(flag)) {
      return new UsageError(arg.startsWith("-") ? `unknown flag ${flag}` : `unexpected argument "${arg}"`)
    }
    const value = eq < 0 ? argv[++i] : arg.slice(eq + 1)
    if (value === undefined || value.length === 0) return new UsageError(`${flag} needs a value`)
    if (flag === "--host-key") hostKeys.push(value)
    else if (single.has(flag)) return new UsageError(`${flag} given twice`)
    else single.set(flag, value)
  }
  const listen = parseListenAddress(single.get("--listen") ?? DEFAULT_LISTEN)
  if (listen instanceof UsageError) return listen
  const port = parseListenPort(single.get("--port") ?? String(DEFAULT_PORT))
  if (port instanceof UsageError) return port
  const authorizedKeys = single.get("--authorized-keys")
  const passwordFile = single.get("--password-file")
  if (authorizedKeys === undefined && passwordFile === undefined) {
    return new UsageError("no way to log in: give --authorized-keys FILE and/or --password-file FILE")
  }
  const sftpRoot = single.get("--sftp-root")
  const readOnly = switches.has("--read-only")
  if (readOnly && sftpRoot === undefined) return new UsageError("--read-only applies to SFTP: give --sftp-root DIR")
  const maxStartups = setting("--max-startups", single.get("--max-startups"), Admission.parseMaxStartups)
  if (maxStartups instanceof UsageError) return maxStartups
  const perSourceMaxStartups = setting(
    "--per-source-max-startups",
    single.get("--per-source-max-startups"),
    (text) => Admission.parsePerSourceMaxStartups(text) ?? "none"
  )
  if (perSourceMaxStartups instanceof UsageError) return perSourceMaxStartups
  const perSourceNetBlockSize = setting("--per-source-net-block-size", single.get("--per-source-net-block-size"), (text) => Admission.parseNetBlockSize(text))
  if (perSourceNetBlockSize instanceof UsageError) return perSourceNetBlockSize
  const perSourcePenalties = setting("--per-source-penalties", single.get("--per-source-penalties"), (text) => Admission.parsePenalties(text) ?? false)
  if (perSourcePenalties instanceof UsageError) return perSourcePenalties
  const perSourcePenaltyExemptList = setting("--per-source-penalty-exempt-list", single.get("--per-source-penalty-exempt-list"), Admission.validExemptList)
  if (perSourcePenaltyExemptList instanceof UsageError) return perSourcePenaltyExemptList
  const loginGraceTime = setting("--login-grace-time", single.get("--login-grace-time"), Admission.parseTime)
  if (loginGraceTime instanceof UsageError) return loginGraceTime
  const maxAuthTries = setting("--max-auth-tries", single.get("--max-auth-tries"), positive("MaxAuthTries"))
  if (maxAuthTries instanceof UsageError) return maxAuthTries
  const maxConnections = setting("--max-connections", single.get("--max-connections"), positive("connection limit"))
  if (maxConnections instanceof UsageError) return maxConnections
  const maxSessions = setting("--max-sessions", single.get("--max-sessions"), positive("MaxSessions"))
  if (maxSessions instanceof UsageError) return maxSessions
  const sftpMaxHandles = setting("--sftp-max-handles", single.get("--sftp-max-handles"), positive("SFTP handle limit"))
  if (sftpMaxHandles instanceof UsageError) return sftpMaxHandles
  const sftpMaxHandlesPerSession = setting(
    "--sftp-max-handles-per-session",
    single.get("--sftp-max-handles-per-session"),
    positive("SFTP handle limit per session")
  )
  if (sftpMaxHandlesPerSession instanceof UsageError) return sftpMaxHandlesPerSession
  const forwardingText = single.get("--allow-forwarding")
  const allowForwarding = forwardingText === undefined ? undefined : parseForwardingKinds(forwardingText)
  if (allowForwarding instanceof UsageError) return allowForwarding
  const environmentText = single.get("--permit-user-environment")
  const permitUserEnvironment = environmentText === "no" ? undefined : environmentText
  if (permitUserEnvironment === "") return new UsageError("--permit-user-environment needs yes, no or a pattern list")
  if ((sftpMaxHandles !== undefined || sftpMaxHandlesPerSession !== undefined) && sftpRoot === undefined) {
    return new UsageError("--sftp-max-handles applies to SFTP: give --sftp-root DIR")
  }
  return {
    _tag: "Serve",
    listen,
    port,
    hostKeys,
    ...(authorizedKeys !== undefined ? { authorizedKeys } : {}),
    ...(passwordFile !== undefined ? { passwordFile } : {}),
    ...(sftpRoot !== undefined ? { sftpRoot } : {}),
    ...(readOnly ? { readOnly } : {}),
    ...(sftpMaxHandles !== undefined ? { sftpMaxHandles } : {}),
    ...(sftpMaxHandlesPerSession !== undefined ? { sftpMaxHandlesPerSession } : {}),
    ...(allowForwarding !== undefined ? { allowForwarding } : {}),
    ...(permitUserEnvironment !== undefined ? { permitUserEnvironment } : {}),
    ...(maxStartups !== undefined ? { maxStartups } : {}),
    ...(perSourceMaxStartups !== undefined ? { perSourceMaxStartups } : {}),
    ...(perSourceNetBlockSize !== undefined ? { perSourceNetBlockSize } : {}),
    ...(perSourcePenalties !== undefined ? { perSourcePenalties } : {}),
    ...(perSourcePenaltyExemptList !== undefined ? { perSourcePenaltyExemptList } : {}),
    ...(loginGraceTime !== undefined ? { loginGraceTime } : {}),
    ...(maxAuthTries !== undefined ? { maxAuthTries } : {}),
    ...(maxConnections !== undefined ? { maxConnections } : {}),
    ...(maxSessions !== undefined ? { maxSessions } : {})
  }
}

/**
 * Parses a password file: one `user:password` per line (the first `:`
 * separates, so passwords may contain `:`); lines are trimmed, and blank
 * lines and lines starting with `#` are skipped. Messages name the line,
 * never its password.
 *
 * @throws ConfigParseError for a line without `:`, an empty user or
 * password, or a user listed twice.
 * @example
 * ```ts
 * parsePasswordFile("# users\nalice:wonder:land\n") // [{ user: "alice", password: "wonder:land" }]
 * ```
 */
export const parsePasswordFile = (text: string): ReadonlyArray<PasswordEntry> => {
  const entries: Array<PasswordEntry> = []
  for (const { line, text: content } of contentLines(text)) {
    const bad = (why: string) => new ConfigParseError({ message: `password file line ${line}: ${why}` })
    const colon = content.indexOf(":")
    if (colon < 0) throw bad("expected user:password")
    const user = content.slice(0, colon)
    const password = content.slice(colon + 1)
    if (user.length === 0) throw bad("empty user name")
    if (password.length === 0) throw bad(`empty password for ${user} (not allowed)`)
    if (entries.some((e) => e.user === user)) throw bad(`user ${user} listed twice`)
    entries.push({ user, password })
  }
  if (entries.length === 0) throw new ConfigParseError({ message: "password file has no user:password line" })
  return entries
}
