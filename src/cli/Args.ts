/**
 * Command-line parsing for `effect-ssh`, pure: argv in, a parsed command or
 * a usage error out. The flags follow OpenSSH's (`-p`, `-l`, `-i`, `-o
 * Option=value`) so existing habits carry over; `-o` accepts the ssh_config
 * keywords we support, with OpenSSH's list syntax for algorithms.
 *
 * @since 0.1.0
 */
import * as SshConfig from "../Config/SshConfig.ts"
import * as ForwardSpec from "../Forwarding/ForwardSpec.ts"
import { ConfigParseError } from "../SshError.ts"

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
  /** `-F`: the one configuration file to read (`none`: none); default `~/.ssh/config` and `/etc/ssh/ssh_config`. */
  readonly configFile?: string | undefined
  /** `-J` as ProxyJump and `-A` as ForwardAgent, as ssh_config lines (read before the `-o` options and the files). */
  readonly configLines?: ReadonlyArray<string> | undefined
  /** `-v` given this many times: protocol events on stderr (see `Verbose.withVerbosity`). */
  readonly verbose?: number | undefined
}

/** What `-L`, `-R`, `-D`, `-W` and the forwarding keywords of `-o` ask for. */
export interface ForwardingArgs {
  /** `-L`, `LocalForward`: a listener here, a target reached from the server. */
  readonly local: ReadonlyArray<ForwardSpec.Forward>
  /** `-R`, `RemoteForward`: a listener on the server, a target reached from here. */
  readonly remote: ReadonlyArray<ForwardSpec.Forward>
  /** `-D`, `DynamicForward`: a SOCKS listener here. */
  readonly dynamic: ReadonlyArray<ForwardSpec.DynamicForward>
  /** `-W`: our stdin and stdout become a connection to this target, made by the server. */
  readonly stdio: ForwardSpec.Target | undefined
  /** `-o ExitOnForwardFailure=yes`: a forwarding that cannot be set up is fatal (exit 255), not a warning. */
  readonly exitOnForwardFailure: boolean
  /** `-o GatewayPorts=yes`: our listeners without a bind address listen on every interface, not loopback. */
  readonly gatewayPorts: boolean
}

/** `effect-ssh exec ... [user@]host -- command...` */
export interface ExecArgs extends ConnectionArgs {
  readonly _tag: "Exec"
  /** The remote command; undefined with `-N` or `-W`, which run none. */
  readonly command: string | undefined
  /** `-n`: do not read stdin. */
  readonly noStdin: boolean
  /** `-t` was given (`requestTty` says what was asked for). */
  readonly tty: boolean
  /** `-T` (no), `-t` (yes), `-tt` (force), `-o RequestTTY`; undefined: auto (a pty for a shell on a terminal). */
  readonly requestTty?: RequestTty | undefined
  /** `-e` / `-o EscapeChar`: the escape character's code, or "none"; undefined: `~`. */
  readonly escapeChar?: number | "none" | undefined
  /** `-N`: run no command, keep the forwardings until interrupted. */
  readonly noCommand: boolean
  /** `-X` / `-Y`: X11 forwarding was asked for. */
  readonly x11: boolean
  readonly forwarding: ForwardingArgs
}

/** ssh's RequestTTY: whether the session asks for a pty. */
export type RequestTty = "no" | "yes" | "force" | "auto"

/** ssh_config keywords accepted by `-o` (lower-case): those the configuration resolves, and HashKnownHosts. */
export const supportedOptions: ReadonlyArray<string> = [...new Set([
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
  "compression",
  "stricthostkeychecking",
  "hashknownhosts",
  "localforward",
  "remoteforward",
  "dynamicforward",
  "exitonforwardfailure",
  "gatewayports",
  "batchmode",
  "numberofpasswordprompts",
  "requesttty",
  "escapechar",
  ...SshConfig.keywords.filter((k) => k !== "host")
])]

/**
 * `-o` keywords that are not configuration lines: IdentityFile and UserKnownHostsFile are carried by
 * `identities` and `knownHosts`, HashKnownHosts and EscapeChar by the CLI itself.
 *
 * @example
 * ```ts
 * notConfigLines.has("identityfile") // true
 * ```
 */
export const notConfigLines: ReadonlySet<string> = new Set(["identityfile", "userknownhostsfile", "hashknownhosts", "escapechar"])

/**
 * Checks a ProxyJump value (`-J`): `[user@]host[:port][,...]` or `none`.
 *
 * @example
 * ```ts
 * checkJump("me@b1:2200,b2") // undefined
 * checkJump("a,,b")          // UsageError
 * ```
 */
export const checkJump = (value: string): UsageError | undefined => {
  try {
    SshConfig.parse(`ProxyJump ${value}`, "-J")
    return undefined
  } catch (error) {
    return new UsageError(`-J ${value}: ${error instanceof ConfigParseError ? error.message : String(error)}`)
  }
}

export const execUsage =
  "usage: effect-ssh exec [-AnNtTXv] [-e CHAR] [-F CONFIG] [-J [user@]host[:port][,...]] [-p PORT] [-l USER] [-i KEYFILE]...\n" +
  "                       [-o Option=value]...\n" +
  "                       [-L [bind:]port:host:hostport | -L [bind:]port:/socket | -L /socket:host:hostport]...\n" +
  "                       [-R [bind:]port:host:hostport | -R /socket:host:hostport]... [-D [bind:]port]... [-C]\n" +
  "                       [-W host:port] [--known-hosts FILE | --host-key-fingerprint SHA256:...]\n" +
  "                       [user@]host [--] [command...]   (no command: a login shell)"

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
  const m = /^\s*([A-Za-z][A-Za-z0-9]*)\s*(?:=\s*|\s+)(.*?)\s*$/.exec(text)
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
 * parseExec(["-N", "-L", "8080:localhost:80", "-R", "0:127.0.0.1:3000", "me@host"])
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

/** Flags without a value; they may be bundled (`-nNt`). */
const SWITCHES = "AnNtTXY"
/** Flags with a value, attached (`-p22`) or in the next argument; one may end a bundle (`-NL8080:h:80`). */
const VALUE_FLAGS = "plioLRDWeFJ"

/**
 * Parses an escape character as ssh's `-e` and `EscapeChar` take it: one
 * character, `^X` for a control character, or `none`.
 *
 * @example
 * ```ts
 * parseEscapeChar("~")    // 126
 * parseEscapeChar("^]")   // 29
 * parseEscapeChar("none") // "none"
 * ```
 */
export const parseEscapeChar = (value: string): number | "none" | UsageError => {
  if (value === "none") return "none"
  if (value.length === 1) return value.charCodeAt(0)
  if (value.length === 2 && value[0] === "^") return value.charCodeAt(1) & 31
  return new UsageError(`bad escape character "${value}" (one character, ^X or none)`)
}

const requestTtyValues: ReadonlyArray<RequestTty> = ["no", "yes", "force", "auto"]

const forwardKeywords = {
  localforward: "LocalForward",
  remoteforward: "RemoteForward",
  dynamicforward: "DynamicForward"
} as const

/** Runs one of ForwardSpec's parsers, its `ConfigParseError` thrown as a `UsageError` naming the flag. */
const forwardSpec = <A>(flag: string, parse: () => A): A => {
  try {
    return parse()
  } catch (error) {
    if (error instanceof ConfigParseError) throw new UsageError(`${flag}: ${error.message}`)
    throw error
  }
}

/** A remote forwarding needs a target here: SOCKS on the server's listener is not something we can serve. */
const withTarget = (flag: string, forward: ForwardSpec.RemoteForward): ForwardSpec.Forward => {
  if (forward.connect !== undefined) return { listen: forward.listen, connect: forward.connect }
  throw new UsageError(
    `${flag} ${ForwardSpec.formatForward(forward)}: remote dynamic forwarding (SOCKS on the server's listener) ` +
      "is not supported yet; give a destination: -R [bind:]port:host:hostport"
  )
}

const yesNo = (keyword: string, value: string | undefined): boolean => {
  if (value === undefined) return false
  const answer = value.toLowerCase()
  if (answer !== "yes" && answer !== "no") throw new UsageError(`bad ${keyword} "${value}" (yes or no)`)
  return answer === "yes"
}

/** The flag loop of `parseExec`; a bad flag or value throws its `UsageError`. */
const parseExecFlags = (argv: ReadonlyArray<string>): ExecArgs | UsageError => {
  let port: number | undefined
  let user: string | undefined
  let knownHosts: string | undefined
  let fingerprint: string | undefined
  let stdio: ForwardSpec.Target | undefined
  let configFile: string | undefined
  let jump: string | undefined
  const switches = new Set<string>()
  let ttyFlags = 0
  let escapeChar: number | "none" | undefined
  const identities: Array<string> = []
  const options: Record<string, string> = {}
  const local: Array<ForwardSpec.Forward> = []
  const remote: Array<ForwardSpec.Forward> = []
  const dynamic: Array<ForwardSpec.DynamicForward> = []
  let target: string | undefined
  let command: Array<string> | undefined
  let verbose = 0

  const option = (text: string) => {
    const o = parseOption(text)
    if (o instanceof UsageError) throw o
    const [keyword, value] = o
    if (keyword in forwardKeywords) {
      // forwarding keywords add up, as in ssh_config
      const name = forwardKeywords[keyword as keyof typeof forwardKeywords]
      const forward = forwardSpec(name, () => ForwardSpec.parseForwardOption(name, value.split(/\s+/)))
      if (name === "LocalForward") local.push(withTarget(name, forward))
      else if (name === "RemoteForward") remote.push(withTarget(name, forward))
      else dynamic.push({ listen: forward.listen })
    } else if (!(keyword in options)) options[keyword] = value
  }

  const valueFlag = (letter: string, value: string) => {
    switch (letter) {
      case "p": {
        const p = parsePort(value)
        if (p instanceof UsageError) throw p
        port = p
        break
      }
      case "l":
        user = value
        break
      case "i":
        identities.push(value)
        break
      case "o":
        option(value)
        break
      case "L":
        local.push(forwardSpec("-L", () => ForwardSpec.parseLocalForward(value)))
        break
      case "R":
        remote.push(withTarget("-R", forwardSpec("-R", () => ForwardSpec.parseRemoteForward(value))))
        break
      case "D":
        dynamic.push(forwardSpec("-D", () => ForwardSpec.parseDynamicForward(value)))
        break
      case "e": {
        const e = parseEscapeChar(value)
        if (e instanceof UsageError) throw e
        escapeChar = e
        break
      }
      case "F":
        configFile ??= value
        break
      case "J": {
        const bad = checkJump(value)
        if (bad !== undefined) throw bad
        jump ??= value
        break
      }
      case "W":
        if (stdio !== undefined) throw new UsageError("-W may be given once")
        stdio = forwardSpec("-W", () => ForwardSpec.parseStdioForward(value))
        break
    }
  }

  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === "--") {
      command = argv.slice(i + 1) as Array<string>
      break
    }
    if (target !== undefined) {
      // OpenSSH style: everything after the host is the command
      command = argv.slice(i) as Array<string>
      break
    }
    if (arg === "--known-hosts" || arg === "--host-key-fingerprint") {
      const v = argv[++i]
      if (v === undefined) throw new UsageError(`${arg} needs a value`)
      if (arg === "--known-hosts") knownHosts = v
      else fingerprint = v
      continue
    }
    if (!arg.startsWith("-")) {
      target = arg
      continue
    }
    if (arg === "-" || arg.startsWith("--")) throw new UsageError(`unknown flag ${arg}`)
    for (let j = 1; j < arg.length; j++) {
      const letter = arg[j]!
      // -C asks for compression, as in ssh, whatever -o Compression says
      if (letter === "C") {
        options.compression = "yes"
        continue
      }
      if (letter === "v") {
        verbose++
        continue
      }
      if (SWITCHES.includes(letter)) {
        switches.add(letter)
        if (letter === "t") ttyFlags++
        continue
      }
      if (!VALUE_FLAGS.includes(letter)) throw new UsageError(`unknown flag -${letter}`)
      const v = j + 1 < arg.length ? arg.slice(j + 1) : argv[++i]
      if (v === undefined) throw new UsageError(`-${letter} needs a value`)
      valueFlag(letter, v)
      break
    }
  }
  if (target === undefined) return new UsageError("missing host")
  yesNo("Compression", options.compression)
  const commandLine = command === undefined || command.join(" ").length === 0 ? undefined : command.join(" ")
  const noCommand = switches.has("N")
  if (stdio !== undefined) {
    if (commandLine !== undefined) return new UsageError("-W runs no command; drop the command")
    if (local.length + remote.length + dynamic.length > 0) return new UsageError("-W cannot be combined with -L, -R or -D")
  } else if (noCommand) {
    if (commandLine !== undefined) return new UsageError("-N runs no command; drop the command or -N")
  }
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
  if (escapeChar === undefined && options.escapechar !== undefined) {
    const e = parseEscapeChar(options.escapechar)
    if (e instanceof UsageError) return e
    escapeChar = e
  }
  if (options.numberofpasswordprompts !== undefined && !/^\d+$/.test(options.numberofpasswordprompts)) {
    return new UsageError(`bad NumberOfPasswordPrompts "${options.numberofpasswordprompts}"`)
  }
  const requestTtyOption = options.requesttty?.toLowerCase() as RequestTty | undefined
  if (requestTtyOption !== undefined && !requestTtyValues.includes(requestTtyOption)) {
    return new UsageError(`bad RequestTTY "${options.requesttty}" (no, yes, force or auto)`)
  }
  // as ssh: -T wins, then -t (twice: force), then -o RequestTTY
  const requestTty: RequestTty | undefined = switches.has("T")
    ? "no"
    : ttyFlags >= 2
    ? "force"
    : ttyFlags === 1
    ? "yes"
    : requestTtyOption === "auto"
    ? undefined
    : requestTtyOption
  // as in ssh, -J and -A come before the -o options (a -J beats -o ProxyJump)
  const lines = [
    ...(jump === undefined ? [] : [`ProxyJump ${jump}`]),
    ...(switches.has("A") ? ["ForwardAgent yes"] : [])
  ]
  return {
    _tag: "Exec",
    configFile,
    configLines: lines.length === 0 ? undefined : lines,
    host: split.host,
    port,
    user: user ?? split.user ?? options.user,
    identities,
    options,
    knownHosts: knownHosts ?? options.userknownhostsfile,
    fingerprint,
    verbose: verbose > 0 ? verbose : undefined,
    command: commandLine,
    noStdin: switches.has("n"),
    tty: switches.has("t"),
    requestTty,
    escapeChar,
    noCommand,
    x11: switches.has("X") || switches.has("Y"),
    forwarding: {
      local,
      remote,
      dynamic,
      stdio,
      // -W implies ExitOnForwardFailure, as in ssh
      exitOnForwardFailure: yesNo("ExitOnForwardFailure", options.exitonforwardfailure) || stdio !== undefined,
      gatewayPorts: yesNo("GatewayPorts", options.gatewayports)
    }
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
