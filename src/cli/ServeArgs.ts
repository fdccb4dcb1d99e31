/**
 * Command-line parsing for `effect-ssh serve`, pure: argv in, the server's
 * settings or a usage error out; and the `--password-file` format
 * (`user:password` lines). Long flags take their value as the next argument
 * or after `=` (`--port 2222`, `--port=2222`).
 *
 * @example
 * ```ts
 * parseServe(["--port", "2222", "--host-key", "/etc/ssh/ssh_host_ed25519_key", "--authorized-keys", "keys"])
 * ```
 * @since 0.1.0
 */
import { ConfigParseError } from "../SshError.ts"
import { contentLines } from "../internal/lines.ts"
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
  "                        [--password-file FILE] [--sftp-root DIR]\n" +
  `  --listen ADDR           address to listen on (default ${DEFAULT_LISTEN}; 0.0.0.0 or :: for all)\n` +
  `  --port N                port, 0 for any free one (default ${DEFAULT_PORT})\n` +
  "  --host-key FILE         OpenSSH private host key, repeatable (default: a new in-memory ed25519 key)\n" +
  "  --authorized-keys FILE  public keys allowed to log in (publickey)\n" +
  "  --password-file FILE    user:password lines (password and keyboard-interactive)\n" +
  "  --sftp-root DIR         serve SFTP jailed to DIR\n" +
  "Sessions run as the user running the server, whatever name the client logs in with."

type ValueFlag = "--listen" | "--port" | "--host-key" | "--authorized-keys" | "--password-file" | "--sftp-root"

const valueFlags: ReadonlyArray<string> = ["--listen", "--port", "--host-key", "--authorized-keys", "--password-file", "--sftp-root"]

const isValueFlag = (flag: string): flag is ValueFlag => valueFlags.includes(flag)

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
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === "-h" || arg === "--help") return { _tag: "Help" }
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
  return {
    _tag: "Serve",
    listen,
    port,
    hostKeys,
    ...(authorizedKeys !== undefined ? { authorizedKeys } : {}),
    ...(passwordFile !== undefined ? { passwordFile } : {}),
    ...(sftpRoot !== undefined ? { sftpRoot } : {})
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
