/**
 * Command-line parsing for `effect-ssh`, pure: argv in, a parsed command or
 * a usage error out. The flags follow OpenSSH's (`-p`, `-l`, `-i`, `-o
 * Option=value`) so existing habits carry over; `-o` accepts the ssh_config
 * keywords we support, with OpenSSH's list syntax for algorithms.
 *
 * @since 0.1.0
 */

/** A usage error: the CLI prints it with the usage text and exits 2. */
export class UsageError {
  readonly _tag = "UsageError"
  readonly message: string
  constructor(message: string) {
    this.message = message
  }
}

/** Connection flags shared by exec, get and put. */
export interface ConnectionArgs {
  readonly host: string
  readonly port: number | undefined
  readonly user: string | undefined
  readonly identities: ReadonlyArray<string>
  /** `-o` options, keyword lower-cased → value (repeated keywords keep the first, as ssh does). */
  readonly options: Readonly<Record<string, string>>
  readonly knownHosts: string | undefined
  readonly fingerprint: string | undefined
}

/** `effect-ssh exec ... [user@]host -- command...` */
export interface ExecArgs extends ConnectionArgs {
  readonly _tag: "Exec"
  readonly command: string
  /** `-n`: do not read stdin. */
  readonly noStdin: boolean
  /** `-t`: request a pty. */
  readonly tty: boolean
}

/** ssh_config keywords accepted by `-o` (lower-case). */
export const supportedOptions: ReadonlyArray<string> = [
  "ciphers",
  "kexalgorithms",
  "macs",
  "hostkeyalgorithms",
  "connecttimeout",
  "serveraliveinterval",
  "serveralivecountmax",
  "port",
  "user",
  "identityfile",
  "userknownhostsfile",
  "rekeylimit",
  "stricthostkeychecking",
  "hashknownhosts"
]

export const execUsage =
  "usage: effect-ssh exec [-nt] [-p PORT] [-l USER] [-i KEYFILE]... [-o Option=value]...\n" +
  "                       [--known-hosts FILE | --host-key-fingerprint SHA256:...] [user@]host -- command..."

/**
 * Splits `user@host` (the last `@` separates, as in ssh).
 *
 * @example
 * ```ts
 * splitUserHost("deploy@example.com") // { user: "deploy", host: "example.com" }
 * ```
 */
export const splitUserHost = (target: string): { readonly user: string | undefined; readonly host: string } => {
  const at = target.lastIndexOf("@")
  return at < 0 ? { user: undefined, host: target } : { user: target.slice(0, at), host: target.slice(at + 1) }
}

const parsePort = (value: string): number | UsageError => {
  const n = /^\d+$/.test(value) ? Number(value) : Number.NaN
  return n > 0 && n < 65536 ? n : new UsageError(`bad port "${value}"`)
}

/**
 * Parses `-o Keyword=value` (or `Keyword value`).
 *
 * @example
 * ```ts
 * parseOption("Ciphers=+aes128-ctr") // ["ciphers", "+aes128-ctr"]
 * ```
 */
export const parseOption = (text: string): readonly [string, string] | UsageError => {
  const m = /^\s*([A-Za-z]+)\s*(?:=\s*|\s+)(.*?)\s*$/.exec(text)
  if (!m) return new UsageError(`bad -o option "${text}" (expected Keyword=value)`)
  const keyword = m[1]!.toLowerCase()
  if (!supportedOptions.includes(keyword)) {
    return new UsageError(`unsupported option "${m[1]}" (supported: ${supportedOptions.join(", ")})`)
  }
  if (m[2]!.length === 0) return new UsageError(`option "${m[1]}" needs a value`)
  return [keyword, m[2]!]
}

/**
 * Parses the arguments after `exec`.
 *
 * @example
 * ```ts
 * parseExec(["-p", "2222", "me@host", "--", "uname", "-a"])
 * ```
 */
export const parseExec = (argv: ReadonlyArray<string>): ExecArgs | UsageError => {
  try {
    return parseExecFlags(argv)
  } catch (u) {
    if (u instanceof UsageError) return u
    throw u
  }
}

/** The flag loop of `parseExec`; a missing flag value throws its `UsageError`. */
const parseExecFlags = (argv: ReadonlyArray<string>): ExecArgs | UsageError => {
  let port: number | undefined
  let user: string | undefined
  let knownHosts: string | undefined
  let fingerprint: string | undefined
  let noStdin = false
  let tty = false
  const identities: Array<string> = []
  const options: Record<string, string> = {}
  let target: string | undefined
  let command: Array<string> | undefined
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    const value = (): string => {
      const v = argv[++i]
      if (v === undefined) throw new UsageError(`${arg} needs a value`)
      return v
    }
    if (arg === "--") {
      command = argv.slice(i + 1) as Array<string>
      break
    }
    if (target !== undefined) {
      // OpenSSH style: everything after the host is the command
      command = argv.slice(i) as Array<string>
      break
    }
    switch (arg) {
      case "-p": {
        const v = value()
        const p = parsePort(v)
        if (p instanceof UsageError) return p
        port = p
        break
      }
      case "-l": {
        const v = value()
        user = v
        break
      }
      case "-i": {
        const v = value()
        identities.push(v)
        break
      }
      case "-o": {
        const v = value()
        const o = parseOption(v)
        if (o instanceof UsageError) return o
        if (!(o[0] in options)) options[o[0]] = o[1]
        break
      }
      case "--known-hosts": {
        const v = value()
        knownHosts = v
        break
      }
      case "--host-key-fingerprint": {
        const v = value()
        fingerprint = v
        break
      }
      case "-n":
        noStdin = true
        break
      case "-t":
        tty = true
        break
      case "-nt":
      case "-tn":
        noStdin = true
        tty = true
        break
      default:
        if (arg.startsWith("-")) return new UsageError(`unknown flag ${arg}`)
        target = arg
    }
  }
  if (target === undefined) return new UsageError("missing host")
  if (command === undefined || command.join(" ").length === 0) return new UsageError("missing command")
  if (knownHosts !== undefined && fingerprint !== undefined) {
    return new UsageError("--known-hosts and --host-key-fingerprint are exclusive")
  }
  const split = splitUserHost(target)
  if (split.host.length === 0) return new UsageError("empty host name")
  if (split.user === "") return new UsageError("empty user name")
  if (options.port !== undefined && port === undefined) {
    const p = parsePort(options.port)
    if (p instanceof UsageError) return p
    port = p
  }
  if (options.identityfile !== undefined) identities.push(options.identityfile)
  return {
    _tag: "Exec",
    host: split.host,
    port,
    user: user ?? split.user ?? options.user,
    identities,
    options,
    knownHosts: knownHosts ?? options.userknownhostsfile,
    fingerprint,
    command: command.join(" "),
    noStdin,
    tty
  }
}

/**
 * Parses a duration in ssh_config form: seconds, or with a unit suffix (s, m, h).
 *
 * @example
 * ```ts
 * parseSeconds("30") // 30
 * parseSeconds("2m") // 120
 * ```
 */
export const parseSeconds = (value: string): number | UsageError => {
  const m = /^(\d+)([smh]?)$/i.exec(value.trim())
  if (!m) return new UsageError(`bad time value "${value}"`)
  const unit = m[2]!.toLowerCase()
  return Number(m[1]) * (unit === "m" ? 60 : unit === "h" ? 3600 : 1)
}

/**
 * Parses a byte size with an optional K, M or G suffix (RekeyLimit's first field).
 *
 * @example
 * ```ts
 * parseBytes("1G") // 1073741824
 * ```
 */
export const parseBytes = (value: string): number | UsageError => {
  const m = /^(\d+)([KMG]?)$/i.exec(value.trim())
  if (!m) return new UsageError(`bad size "${value}"`)
  const unit = m[2]!.toUpperCase()
  return Number(m[1]) * (unit === "K" ? 1024 : unit === "M" ? 1024 ** 2 : unit === "G" ? 1024 ** 3 : 1)
}
