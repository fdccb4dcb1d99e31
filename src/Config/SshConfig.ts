/**
 * ssh_config(5): parse configuration text into plain data, and resolve it
 * for one destination the way `ssh` does.
 *
 * `parse` is pure and validates every supported keyword's value (an error
 * is a `ConfigParseError` naming the file and line). `resolve` is pure too:
 * it walks the files as `ssh` reads them — Host and Match sections, Include
 * (already read by `load`), first obtained value wins, multi-valued keywords
 * accumulate — and fills in ssh's defaults. `load` is the thin shell that
 * reads `~/.ssh/config` and `/etc/ssh/ssh_config` (or one `-F` file) and
 * every file their Include lines can reach, through `FileSystem`.
 *
 * Two passes, as ssh: the first matches `Host` patterns against the name
 * given on the command line; `Match canonical` and `Match final` never
 * match in it. When some `Match final` was seen, the files are read again
 * with the final host name (after `HostName`, lowercased): `Host` patterns
 * now see that name, `canonical`/`final` match, and only options still
 * unset are taken (multi-valued ones accumulate again, as in ssh).
 * Hostname canonicalization itself (DNS) is not done: `CanonicalizeHostname`
 * is reported as unsupported.
 *
 * Keywords outside the supported set are collected in `unsupported`, never
 * dropped silently.
 *
 * @example
 * ```ts
 * import { SshConfig } from "effect-ssh"
 *
 * const file = SshConfig.parse("Host web\n  HostName web.internal\n  User deploy\n", "~/.ssh/config")
 * const resolved = SshConfig.resolve([file], "web", SshConfig.makeContext({ localUser: "me", homeDirectory: "/home/me" }))
 * resolved.hostName // "web.internal"
 * resolved.get("user") // ["deploy"]
 * ```
 * @since 0.1.0
 */
import { sha1 } from "@noble/hashes/legacy.js"
import * as Effect from "effect/Effect"
import * as FileSystem from "effect/FileSystem"
import { matchWildcard } from "../Auth/KnownHosts.ts"
import { matchCidrList } from "../internal/cidr.ts"
import * as SshError from "../SshError.ts"

// ---------------------------------------------------------------------------
// Models
// ---------------------------------------------------------------------------

/** Where a directive was written. */
export interface Location {
  readonly file: string
  readonly line: number
}

/** One criterion of a `Match` line: `!user admin` is `{ attribute: "user", negated: true, argument: "admin" }`. */
export interface MatchCriterion {
  readonly attribute: "all" | "canonical" | "final" | "exec" | "host" | "originalhost" | "user" | "localuser" | "localnetwork" | "tagged"
  readonly negated: boolean
  readonly argument: string | undefined
}

/** One line of a configuration file that does something. */
export type Directive =
  | { readonly _tag: "Host"; readonly patterns: ReadonlyArray<string>; readonly at: Location }
  | { readonly _tag: "Match"; readonly criteria: ReadonlyArray<MatchCriterion>; readonly at: Location }
  | { readonly _tag: "Include"; readonly paths: ReadonlyArray<string>; readonly at: Location }
  | { readonly _tag: "Option"; readonly keyword: Keyword; readonly args: ReadonlyArray<string>; readonly rest: string; readonly at: Location }
  | { readonly _tag: "Unsupported"; readonly keyword: string; readonly at: Location }

/**
 * A parsed file. `kind` decides how relative Include paths and `~` are
 * treated: `user` files (`~/.ssh/config`, `-F`) include relative to
 * `~/.ssh`, `system` files relative to `/etc/ssh` and may not use `~`.
 */
export interface ConfigFile {
  readonly file: string
  readonly kind: "user" | "system"
  readonly directives: ReadonlyArray<Directive>
}

/** The keywords we resolve, lowercase, in the order `ssh -G` prints them. */
export const keywords = [
  "host",
  "user",
  "hostname",
  "port",
  "batchmode",
  "checkhostip",
  "compression",
  "exitonforwardfailure",
  "gatewayports",
  "identitiesonly",
  "requesttty",
  "stricthostkeychecking",
  "numberofpasswordprompts",
  "serveralivecountmax",
  "serveraliveinterval",
  "ciphers",
  "hostkeyalgorithms",
  "hostkeyalias",
  "identityagent",
  "kexalgorithms",
  "loglevel",
  "macs",
  "preferredauthentications",
  "pubkeyacceptedalgorithms",
  "tag",
  "dynamicforward",
  "localforward",
  "remoteforward",
  "identityfile",
  "certificatefile",
  "globalknownhostsfile",
  "userknownhostsfile",
  "sendenv",
  "setenv",
  "forwardagent",
  "connecttimeout",
  "rekeylimit",
  "proxycommand",
  "proxyjump"
] as const

/** A keyword of `keywords`. */
export type Keyword = typeof keywords[number]

const optionKeywords: ReadonlySet<string> = new Set(keywords.filter((k) => k !== "host"))

/** The algorithm-list keywords whose `+`, `-` and `^` forms are kept as written. */
export type AlgorithmKeyword = "ciphers" | "macs" | "kexalgorithms" | "hostkeyalgorithms" | "pubkeyacceptedalgorithms"

/** A forwarding: a TCP port (with an optional bind address or host) or a Unix socket path on each end. */
export type ForwardEnd =
  | { readonly _tag: "Port"; readonly host: string | undefined; readonly port: number }
  | { readonly _tag: "Path"; readonly path: string }

/** One LocalForward, RemoteForward or DynamicForward. `connect` is undefined for a dynamic (SOCKS) forward. */
export interface Forward {
  readonly listen: ForwardEnd
  readonly connect: ForwardEnd | undefined
}

/** The ProxyJump hops, first hop first, as `[user@]host[:port]`. */
export interface JumpHost {
  readonly user: string | undefined
  readonly host: string
  readonly port: number | undefined
}

/**
 * Facts about the local side that resolution needs: who we are, the
 * command-line overrides (`-l`, `-p`), and the injectable effects of
 * `Match exec` and `Match localnetwork`.
 */
export interface Context {
  /** `%u`, and the user when none is configured. */
  readonly localUser: string
  /** `%d` and `~`: the user's home from the password database, as ssh uses it. */
  readonly homeDirectory: string
  /** `%i`. */
  readonly uid: string
  /** `%l`; `%L` is its first label. */
  readonly localHostname: string
  /** `-l`: wins over every User line. */
  readonly user?: string | undefined
  /** `-p`: wins over every Port line. */
  readonly port?: number | undefined
  /** `${NAME}` values. */
  readonly environment: Readonly<Record<string, string | undefined>>
  /** Runs a `Match exec` command (tokens already expanded): true when it exits 0. */
  readonly exec: (command: string) => boolean
  /** Addresses of the local interfaces, for `Match localnetwork`. */
  readonly localAddresses: ReadonlyArray<string>
  /**
   * Default (and optionally all supported) names per algorithm keyword, so
   * that `get` can print the assembled list as ssh does. Without them `get`
   * prints the configured value as written, or nothing.
   */
  /**
   * Debian's ssh defaults ServerAliveInterval to 300 seconds under
   * BatchMode and names the QUIET log level SILENT; `"debian"` does the
   * same. Default `"openssh"`.
   */
  readonly flavor?: "openssh" | "debian" | undefined
  readonly algorithms?: Partial<Record<AlgorithmKeyword, { readonly defaults: ReadonlyArray<string>; readonly supported?: ReadonlyArray<string> | undefined }>> | undefined
}

/**
 * A context with neutral values for what is not given: no environment,
 * `Match exec` never matching, no local addresses.
 *
 * @example
 * ```ts
 * const context = SshConfig.makeContext({ localUser: "me", homeDirectory: "/home/me", user: "deploy" })
 * ```
 */
export const makeContext = (
  context: Partial<Context> & { readonly localUser: string; readonly homeDirectory: string }
): Context => ({
  uid: "0",
  localHostname: "localhost",
  environment: {},
  exec: () => false,
  localAddresses: [],
  ...context
})

/**
 * The configuration for one destination: typed fields for connecting, and
 * `get`/`lines` for the `ssh -G` view.
 */
export interface ResolvedConfig {
  /** The name given on the command line (`%n`). */
  readonly host: string
  /** Where to connect: HostName (with `%h` expanded) or the given name, lowercased unless an address. */
  readonly hostName: string
  readonly port: number
  readonly user: string
  /** IdentityFile paths with `~`, tokens and `${ENV}` expanded; ssh's default list when none is configured. */
  readonly identityFiles: ReadonlyArray<string>
  /** Whether the identity files are ssh's defaults rather than configured. */
  readonly identityFilesAreDefault: boolean
  readonly certificateFiles: ReadonlyArray<string>
  /**
   * Why IdentityFile or CertificateFile values could not be expanded (an unset `${VAR}`, an unknown token):
   * ssh reports it when it loads them, not when it resolves (`ssh -G` prints them as written); so do we
   * (`ConnectConfig.credentials` fails with them). Such a value is kept as written in its list.
   */
  readonly identityErrors: ReadonlyArray<string>
  readonly identitiesOnly: boolean
  /** IdentityAgent expanded: a socket path, `SSH_AUTH_SOCK`, or `none`. */
  readonly identityAgent: string | undefined
  readonly proxyJump: ReadonlyArray<JumpHost> | undefined
  /** ProxyCommand as written (its tokens are expanded when it runs). */
  readonly proxyCommand: string | undefined
  /** Seconds; undefined when none. */
  readonly connectTimeout: number | undefined
  readonly serverAliveInterval: number
  readonly serverAliveCountMax: number
  readonly strictHostKeyChecking: "yes" | "no" | "ask" | "accept-new"
  /** Expanded; empty for `none`. */
  readonly userKnownHostsFiles: ReadonlyArray<string>
  readonly globalKnownHostsFiles: ReadonlyArray<string>
  readonly hostKeyAlias: string | undefined
  readonly checkHostIp: boolean
  /** The algorithm lists as written (`+`, `-`, `^` kept); see `assembleAlgorithms`. */
  readonly algorithms: Readonly<Partial<Record<AlgorithmKeyword, string>>>
  /** `true`, `false`, or an agent socket path to forward. */
  readonly forwardAgent: boolean | string
  readonly localForwards: ReadonlyArray<Forward>
  readonly remoteForwards: ReadonlyArray<Forward>
  readonly dynamicForwards: ReadonlyArray<Forward>
  /** Bytes (0: the cipher's default) and seconds (0: none). */
  readonly rekeyLimit: { readonly bytes: number; readonly seconds: number }
  readonly setEnv: ReadonlyArray<readonly [name: string, value: string]>
  readonly sendEnv: ReadonlyArray<string>
  readonly requestTty: "auto" | "yes" | "no" | "force"
  readonly batchMode: boolean
  readonly preferredAuthentications: ReadonlyArray<string> | undefined
  readonly numberOfPasswordPrompts: number
  readonly logLevel: string
  readonly compression: boolean
  readonly exitOnForwardFailure: boolean
  readonly gatewayPorts: boolean
  readonly tag: string | undefined
  /** Keywords we do not support, once per line that used them. */
  readonly unsupported: ReadonlyArray<{ readonly keyword: string; readonly file: string; readonly line: number }>
  /** The values `ssh -G` prints for a keyword (one per line; empty when it prints none). */
  readonly get: (keyword: string) => ReadonlyArray<string>
  /** Every line `ssh -G` prints for the supported keywords, in its order: `keyword value`. */
  readonly lines: () => ReadonlyArray<string>
}

// ---------------------------------------------------------------------------
// Tokenizing, as ssh's strdelim and argv_split
// ---------------------------------------------------------------------------

const isSpace = (c: string | undefined) => c === " " || c === "\t" || c === "\r" || c === "\n"

const fail = (at: Location, message: string): never => {
  throw new SshError.ConfigParseError({ message: `${at.file} line ${at.line}: ${message}` })
}

/** Splits `keyword[ =]rest` the way ssh's strdelim does for the keyword. */
const splitKeyword = (line: string): { readonly keyword: string; readonly rest: string } | undefined => {
  const text = line.replace(/[ \t\r\n\f]+$/, "").replace(/^[ \t\r\n]+/, "")
  if (text === "" || text.startsWith("#")) return undefined
  let i = 0
  while (i < text.length && !isSpace(text[i]) && text[i] !== "=" && text[i] !== "\"") i++
  const keyword = text.slice(0, i)
  let sawEquals = text[i] === "="
  i++
  while (isSpace(text[i])) i++
  if (!sawEquals && text[i] === "=") {
    i++
    while (isSpace(text[i])) i++
  }
  return { keyword, rest: text.slice(Math.min(i, text.length)) }
}

/** ssh's argv_split with comments ending the line: quotes and backslash escapes. */
const argvSplit = (text: string, at: Location): Array<string> => {
  const args: Array<string> = []
  let i = 0
  while (i < text.length) {
    const c = text[i]!
    if (c === " " || c === "\t") {
      i++
      continue
    }
    if (c === "#") break
    let quote: string | undefined
    let arg = ""
    for (; i < text.length; i++) {
      const ch = text[i]!
      if (ch === "\\") {
        const next = text[i + 1]
        if (next === "'" || next === "\"" || next === "\\" || (quote === undefined && next === " ")) {
          arg += next
          i++
        } else arg += ch
      } else if (quote === undefined && (ch === " " || ch === "\t")) break
      else if (quote === undefined && (ch === "\"" || ch === "'")) quote = ch
      else if (quote !== undefined && ch === quote) quote = undefined
      else arg += ch
    }
    if (quote !== undefined) fail(at, "invalid quotes")
    args.push(arg)
  }
  return args
}

/** ssh's strdelim loop over a Match line: `"` quotes, whitespace or one `=` between words. */
const matchWords = (text: string, at: Location): Array<string> => {
  const words: Array<string> = []
  let i = 0
  while (i < text.length) {
    while (isSpace(text[i]) || text[i] === "=") i++
    if (i >= text.length) break
    if (text[i] === "\"") {
      const end = text.indexOf("\"", i + 1)
      if (end === -1) fail(at, "invalid quotes")
      words.push(text.slice(i + 1, end))
      i = end + 1
      continue
    }
    let j = i
    while (j < text.length && !isSpace(text[j]) && text[j] !== "=" && text[j] !== "\"") j++
    words.push(text.slice(i, j))
    i = j
  }
  const comment = words.findIndex((w) => w.startsWith("#"))
  return comment === -1 ? words : words.slice(0, comment)
}

// ---------------------------------------------------------------------------
// Value syntax
// ---------------------------------------------------------------------------

const flags: Readonly<Record<string, boolean>> = { yes: true, true: true, no: false, false: false }

const parseFlag = (value: string, at: Location): boolean => {
  const flag = flags[value.toLowerCase()]
  return flag === undefined ? fail(at, `unsupported option "${value}"`) : flag
}

const strictValues: Readonly<Record<string, ResolvedConfig["strictHostKeyChecking"]>> = {
  yes: "yes",
  true: "yes",
  no: "no",
  false: "no",
  off: "no",
  ask: "ask",
  "accept-new": "accept-new"
}

const ttyValues: Readonly<Record<string, ResolvedConfig["requestTty"]>> = {
  yes: "yes",
  true: "yes",
  no: "no",
  false: "no",
  force: "force",
  auto: "auto"
}

const logLevels: Readonly<Record<string, string>> = {
  silent: "QUIET",
  quiet: "QUIET",
  fatal: "FATAL",
  error: "ERROR",
  info: "INFO",
  verbose: "VERBOSE",
  debug: "DEBUG",
  debug1: "DEBUG",
  debug2: "DEBUG2",
  debug3: "DEBUG3"
}

/**
 * ssh's time format: seconds, or a sequence of `<number>[smhdw]`.
 *
 * @example
 * ```ts
 * SshConfig.parseTime("1m30s") // 90
 * SshConfig.parseTime("soon")  // undefined
 * ```
 */
export const parseTime = (text: string): number | undefined => {
  if (!/^(\d+[sSmMhHdDwW]?)+$/.test(text)) return undefined
  const units: Readonly<Record<string, number>> = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 }
  let total = 0
  for (const [, digits, unit] of text.matchAll(/(\d+)([a-zA-Z]?)/g)) {
    total += Number(digits) * (unit === "" || unit === undefined ? 1 : units[unit.toLowerCase()]!)
  }
  return total > 2147483647 ? undefined : total
}

const parseInteger = (text: string, at: Location): number =>
  /^\d{1,10}$/.test(text) && Number(text) <= 2147483647 ? Number(text) : fail(at, `integer value "${text}" invalid`)

const parsePort = (text: string): number | undefined =>
  /^\d{1,5}$/.test(text) && Number(text) <= 65535 ? Number(text) : undefined

const parseScaled = (text: string, at: Location): number => {
  const m = /^(\d+(?:\.\d+)?)([kKmMgGtT]?)$/.exec(text)
  if (m === null) return fail(at, `Bad number '${text}'`)
  const scale: Readonly<Record<string, number>> = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }
  const value = Math.floor(Number(m[1]) * scale[m[2]!.toLowerCase()]!)
  return value !== 0 && value < 16 ? fail(at, "RekeyLimit too small") : value
}

const validEnvName = (name: string) => /^[A-Za-z_][A-Za-z0-9_]*$/.test(name)

/**
 * Parses a forwarding as ssh's parse_forward: `[bind:]port host:hostport`,
 * Unix socket paths (anything with a `/`), `[...]` for IPv6 addresses.
 */
const parseForward = (spec: string, dynamic: boolean, remote: boolean): Forward | undefined => {
  const fields: Array<{ readonly arg: string; readonly isPath: boolean }> = []
  let p = spec.replace(/^\s+/, "")
  while (fields.length < 4 && p !== "") {
    if (p.startsWith("[")) {
      const end = p.indexOf("]")
      if (end === -1 || (p[end + 1] !== ":" && p[end + 1] !== undefined)) return undefined
      const arg = p.slice(1, end)
      fields.push({ arg, isPath: arg.includes("/") })
      p = p.slice(end + 2)
      continue
    }
    let arg = ""
    let isPath = false
    let i = 0
    for (; i < p.length && p[i] !== ":"; i++) {
      if (p[i] === "\\") {
        i++
        if (i >= p.length) return undefined
      } else if (p[i] === "/") isPath = true
      arg += p[i]
    }
    fields.push({ arg, isPath })
    p = i < p.length ? p.slice(i + 1) : ""
  }
  if (p !== "") return undefined
  const port = (text: string) => parsePort(text) ?? -1
  const at = (i: number) => fields[i]!
  let listen: ForwardEnd
  let connect: ForwardEnd | undefined
  switch (fields.length) {
    case 1:
      listen = at(0).isPath ? { _tag: "Path", path: at(0).arg } : { _tag: "Port", host: undefined, port: port(at(0).arg) }
      connect = undefined
      break
    case 2:
      if (at(0).isPath && at(1).isPath) {
        listen = { _tag: "Path", path: at(0).arg }
        connect = { _tag: "Path", path: at(1).arg }
      } else if (at(1).isPath) {
        listen = { _tag: "Port", host: undefined, port: port(at(0).arg) }
        connect = { _tag: "Path", path: at(1).arg }
      } else {
        listen = { _tag: "Port", host: at(0).arg, port: port(at(1).arg) }
        connect = undefined
      }
      break
    case 3:
      if (at(0).isPath) {
        listen = { _tag: "Path", path: at(0).arg }
        connect = { _tag: "Port", host: at(1).arg, port: port(at(2).arg) }
      } else if (at(2).isPath) {
        listen = { _tag: "Port", host: at(0).arg, port: port(at(1).arg) }
        connect = { _tag: "Path", path: at(2).arg }
      } else {
        listen = { _tag: "Port", host: undefined, port: port(at(0).arg) }
        connect = { _tag: "Port", host: at(1).arg, port: port(at(2).arg) }
      }
      break
    case 4:
      listen = { _tag: "Port", host: at(0).arg, port: port(at(1).arg) }
      connect = { _tag: "Port", host: at(2).arg, port: port(at(3).arg) }
      break
    default:
      return undefined
  }
  if (dynamic) {
    if (fields.length > 2 || connect !== undefined) return undefined
  } else {
    if (connect === undefined) return undefined
    if (connect._tag === "Port" && connect.port <= 0) return undefined
  }
  if (listen._tag === "Port" && (listen.port < 0 || (!remote && listen.port === 0))) return undefined
  return { listen, connect }
}

const forwardEquals = (a: Forward, b: Forward) => JSON.stringify(a) === JSON.stringify(b)

/** `[user@]host[:port]` or `ssh://[user@]host[:port]`, as ssh's parse_user_host_port / parse_ssh_uri. */
const parseJumpHost = (text: string): JumpHost | undefined => {
  let rest = text.startsWith("ssh://") ? text.slice(6).replace(/\/$/, "") : text
  let user: string | undefined
  const atSign = rest.lastIndexOf("@")
  if (atSign !== -1) {
    user = rest.slice(0, atSign)
    rest = rest.slice(atSign + 1)
  }
  let host: string
  let portText: string | undefined
  if (rest.startsWith("[")) {
    const end = rest.indexOf("]")
    if (end === -1) return undefined
    host = rest.slice(1, end)
    const after = rest.slice(end + 1)
    if (after !== "" && !after.startsWith(":")) return undefined
    portText = after === "" ? undefined : after.slice(1)
  } else {
    const colon = rest.indexOf(":")
    host = colon === -1 ? rest : rest.slice(0, colon)
    portText = colon === -1 ? undefined : rest.slice(colon + 1)
  }
  if (host === "" || user === "") return undefined
  const port = portText === undefined ? undefined : parsePort(portText)
  if (portText !== undefined && (port === undefined || port === 0)) return undefined
  return { user, host, port }
}

const parseJump = (value: string): ReadonlyArray<JumpHost> | "none" | undefined => {
  if (value.toLowerCase() === "none") return "none"
  const hops = value.split(",").map(parseJumpHost)
  return hops.every((h) => h !== undefined) ? hops as ReadonlyArray<JumpHost> : undefined
}

/** Checks a supported option's arguments; throws `ConfigParseError` as ssh would reject the line. */
const checkOption = (keyword: Keyword, args: ReadonlyArray<string>, rest: string, at: Location): void => {
  const one = (): string => {
    const value = args[0]
    if (value === undefined || value === "") return fail(at, "missing argument")
    if (args.length > 1) fail(at, `keyword ${keyword} extra arguments at end of line`)
    return value
  }
  switch (keyword) {
    case "port":
      if ((parsePort(one()) ?? 0) <= 0) fail(at, `Bad port '${args[0]}'`)
      return
    case "batchmode":
    case "checkhostip":
    case "exitonforwardfailure":
    case "gatewayports":
    case "identitiesonly":
      parseFlag(one(), at)
      return
    case "compression": {
      const v = one().toLowerCase()
      if (v !== "yes" && v !== "no") fail(at, `unsupported option "${args[0]}"`)
      return
    }
    case "requesttty":
      if (ttyValues[one().toLowerCase()] === undefined) fail(at, `unsupported option "${args[0]}"`)
      return
    case "stricthostkeychecking":
      if (strictValues[one().toLowerCase()] === undefined) fail(at, `unsupported option "${args[0]}"`)
      return
    case "numberofpasswordprompts":
    case "serveralivecountmax":
      parseInteger(one(), at)
      return
    case "serveraliveinterval":
    case "connecttimeout": {
      const v = one()
      if (v !== "none" && parseTime(v) === undefined) fail(at, "invalid time value")
      return
    }
    case "loglevel":
      if (logLevels[one().toLowerCase()] === undefined) fail(at, `unsupported log level '${args[0]}'`)
      return
    case "rekeylimit": {
      const bytes = args[0]
      if (bytes === undefined || bytes === "") fail(at, "Missing argument")
      if (bytes !== "default") parseScaled(bytes!, at)
      const interval = args[1]
      if (args.length > 2) fail(at, `keyword ${keyword} extra arguments at end of line`)
      if (interval !== undefined && interval !== "none" && parseTime(interval) === undefined) fail(at, "invalid time value")
      return
    }
    case "globalknownhostsfile":
    case "userknownhostsfile":
      if (args.some((a) => a === "")) fail(at, `keyword ${keyword} empty argument`)
      if (args.some((a) => a.toLowerCase() === "none") && args.length > 1) {
        fail(at, `keyword ${keyword} "none" argument must appear alone`)
      }
      return
    case "sendenv":
      for (const a of args) if (a === "" || a.includes("=")) fail(at, "Invalid environment name")
      return
    case "setenv":
      for (const a of args) if (!a.includes("=")) fail(at, "Invalid SetEnv")
      return
    case "localforward":
    case "remoteforward":
    case "dynamicforward": {
      const first = args[0]
      if (first === undefined || first === "") fail(at, "Missing argument")
      const dynamic = keyword === "dynamicforward" || (keyword === "remoteforward" && (args[1] ?? "") === "")
      if (keyword === "localforward" && (args[1] ?? "") === "") fail(at, "Missing target argument")
      if (args.length > (dynamic ? 1 : 2)) fail(at, `keyword ${keyword} extra arguments at end of line`)
      const spec = dynamic ? first! : `${first}:${args[1]}`
      // `${ENV}` is expanded when resolving; only what needs no environment is checked here.
      if (!spec.includes("${") && parseForward(spec, dynamic, keyword === "remoteforward") === undefined) {
        fail(at, "Bad forwarding specification")
      }
      return
    }
    case "proxyjump":
      if (parseJump(jumpText(rest)) === undefined) fail(at, `Invalid ProxyJump "${rest}"`)
      return
    case "identityagent":
    case "forwardagent": {
      const v = one()
      if (keyword === "forwardagent" && flags[v.toLowerCase()] !== undefined) return
      checkDollar(v, at)
      if (v.startsWith("$") && !v.startsWith("${") && !validEnvName(v.slice(1))) fail(at, `Invalid environment name ${v}`)
      return
    }
    case "proxycommand":
      return
    default:
      one()
  }
}

const checkDollar = (text: string, at: Location) => {
  let i = text.indexOf("${")
  while (i !== -1) {
    const end = text.indexOf("}", i)
    if (end === -1 || !validEnvName(text.slice(i + 2, end))) fail(at, `Invalid environment expansion ${text}`)
    i = text.indexOf("${", end)
  }
}

const jumpText = (rest: string) => rest.replace(/^[ \t=]+/, "").replace(/#.*$/, "").replace(/\s+$/, "")

// ---------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------

const matchAttributes: ReadonlySet<string> = new Set([
  "all",
  "canonical",
  "final",
  "exec",
  "host",
  "originalhost",
  "user",
  "localuser",
  "localnetwork",
  "tagged"
])

const parseMatch = (rest: string, at: Location): ReadonlyArray<MatchCriterion> => {
  const words = matchWords(rest, at)
  const criteria: Array<MatchCriterion> = []
  for (let i = 0; i < words.length; i++) {
    const word = words[i]!
    const negated = word.startsWith("!")
    const attribute = (negated ? word.slice(1) : word).toLowerCase()
    if (!matchAttributes.has(attribute)) fail(at, `Unsupported Match attribute ${word}`)
    if (attribute === "all") {
      if (criteria.length > 1 || i + 1 < words.length) fail(at, `'${word}' cannot be combined with other Match attributes`)
      criteria.push({ attribute, negated, argument: undefined })
      break
    }
    if (attribute === "canonical" || attribute === "final") {
      criteria.push({ attribute, negated, argument: undefined })
      continue
    }
    const argument = words[++i]
    if (argument === undefined || argument === "") fail(at, `Missing Match criteria for ${attribute}`)
    if (attribute === "localnetwork" && matchCidrList(argument!, "0.0.0.0") === undefined) {
      fail(at, `invalid CIDR list "${argument}"`)
    }
    criteria.push({ attribute: attribute as MatchCriterion["attribute"], negated, argument })
  }
  if (criteria.length === 0) fail(at, "One or more attributes required for Match")
  return criteria
}

/**
 * Parses ssh_config text into directives, checking every supported
 * keyword's value as ssh does. Keywords are case-insensitive; `=` may
 * separate a keyword from its value; `"..."` quotes; `#` starts a comment.
 *
 * @throws ConfigParseError with the file and line for a malformed line.
 * @example
 * ```ts
 * const file = SshConfig.parse("Host *.example.com !bastion.example.com\n  Port=2222\n", "/home/me/.ssh/config")
 * file.directives[0] // { _tag: "Host", patterns: ["*.example.com", "!bastion.example.com"], ... }
 * ```
 */
export const parse = (text: string, file: string, kind: ConfigFile["kind"] = "user"): ConfigFile => {
  const directives: Array<Directive> = []
  const lines = text.split("\n")
  for (let index = 0; index < lines.length; index++) {
    const at: Location = { file, line: index + 1 }
    const split = splitKeyword(lines[index]!)
    if (split === undefined) continue
    const keyword = split.keyword.toLowerCase()
    if (split.rest === "") fail(at, `no argument after keyword "${keyword}"`)
    if (keyword === "match") {
      directives.push({ _tag: "Match", criteria: parseMatch(split.rest, at), at })
      continue
    }
    const args = argvSplit(split.rest, at)
    if (keyword === "host") {
      if (args.some((a) => a === "")) fail(at, "keyword host empty argument")
      directives.push({ _tag: "Host", patterns: args, at })
    } else if (keyword === "include") {
      for (const path of args) {
        if (path === "") fail(at, "keyword include empty argument")
        if (path.startsWith("~") && kind === "system") fail(at, `bad include path ${path}`)
      }
      directives.push({ _tag: "Include", paths: args, at })
    } else if (optionKeywords.has(keyword)) {
      checkOption(keyword as Keyword, args, split.rest, at)
      directives.push({ _tag: "Option", keyword: keyword as Keyword, args, rest: split.rest, at })
    } else {
      directives.push({ _tag: "Unsupported", keyword, at })
    }
  }
  return { file, kind, directives }
}

// ---------------------------------------------------------------------------
// Patterns
// ---------------------------------------------------------------------------

/**
 * ssh's match_pattern: `*` is any run of characters, `?` one character,
 * everything else literal (case-sensitive).
 *
 * @example
 * ```ts
 * SshConfig.matchPattern("web1.example.com", "web?.*") // true
 * ```
 */
export const matchPattern = (s: string, pattern: string): boolean => matchWildcard(pattern, s)

/**
 * ssh's match_pattern_list over a comma-separated list with `!negation`:
 * 1 for a positive match, -1 when a negated pattern matches, 0 otherwise.
 * With `lowercase`, the patterns are lowercased (the caller lowercases the string).
 *
 * @example
 * ```ts
 * SshConfig.matchPatternList("db1", "db*,!db1", false) // -1
 * ```
 */
export const matchPatternList = (s: string, list: string, lowercase: boolean): -1 | 0 | 1 => {
  let positive = false
  for (const entry of list.split(",")) {
    const negated = entry.startsWith("!")
    const pattern = negated ? entry.slice(1) : entry
    if (matchPattern(s, lowercase ? pattern.toLowerCase() : pattern)) {
      if (negated) return -1
      positive = true
    }
  }
  return positive ? 1 : 0
}

const matchHost = (host: string, patterns: ReadonlyArray<string>): boolean => {
  let active = false
  for (const arg of patterns) {
    const negated = arg.startsWith("!")
    if (matchPattern(host, negated ? arg.slice(1) : arg)) {
      if (negated) return false
      active = true
    }
  }
  return active
}

// ---------------------------------------------------------------------------
// Expansion
// ---------------------------------------------------------------------------

/**
 * Replaces `%x` tokens: `%%` is `%`; a token not in `tokens` is an error, as in ssh.
 *
 * @throws ConfigParseError for an unknown token or a trailing `%`.
 * @example
 * ```ts
 * SshConfig.expandTokens("~/.ssh/%h_%r", { h: "web", r: "deploy" }) // "~/.ssh/web_deploy"
 * ```
 */
export const expandTokens = (text: string, tokens: Readonly<Record<string, string>>, where = "configuration"): string => {
  let out = ""
  for (let i = 0; i < text.length; i++) {
    if (text[i] !== "%") {
      out += text[i]
      continue
    }
    const key = text[++i]
    if (key === undefined) throw new SshError.ConfigParseError({ message: `${where}: invalid format "${text}"` })
    if (key === "%") out += "%"
    else if (Object.hasOwn(tokens, key)) out += tokens[key]
    else throw new SshError.ConfigParseError({ message: `${where}: unknown key %${key} in "${text}"` })
  }
  return out
}

/**
 * Replaces `${NAME}` with the environment's value; an unset variable is an error, as in ssh.
 *
 * @throws ConfigParseError for an unset variable or an unterminated `${`.
 * @example
 * ```ts
 * SshConfig.expandEnvironment("${HOME}/.ssh/id", { HOME: "/home/me" }) // "/home/me/.ssh/id"
 * ```
 */
export const expandEnvironment = (
  text: string,
  environment: Readonly<Record<string, string | undefined>>,
  where = "configuration"
): string =>
  text.replace(/\$\{([^}]*)\}|\$\{.*$/g, (whole, name: string | undefined) => {
    const value = name === undefined ? undefined : environment[name]
    if (value === undefined) {
      throw new SshError.ConfigParseError({
        message: name === undefined ? `${where}: unterminated \${ in "${text}"` : `${where}: environment variable \${${name}} has no value`
      })
    }
    return value
  })

/**
 * `~` and `~/...` become the home directory; `~user/...` only for the local user.
 *
 * @example
 * ```ts
 * SshConfig.expandTilde("~/.ssh/id_ed25519", "/home/me", "me") // "/home/me/.ssh/id_ed25519"
 * ```
 */
export const expandTilde = (path: string, home: string, localUser: string): string => {
  if (!path.startsWith("~")) return path
  const slash = path.indexOf("/")
  const user = slash === -1 ? path.slice(1) : path.slice(1, slash)
  if (user !== "" && user !== localUser) {
    throw new SshError.ConfigParseError({ message: `cannot expand ~${user}: unknown user` })
  }
  return slash === -1 ? home : `${home}${path.slice(slash)}`
}

const isAddress = (host: string) => /^[0-9.]+$/.test(host) && matchCidrList("0.0.0.0/0", host) !== undefined || host.includes(":")

/**
 * Assembles an algorithm list as ssh does from a configured value: `+names`
 * appends to the defaults, `-patterns` removes from them, `^names` puts
 * names first, anything else replaces them; patterns (`aes*`) expand
 * against `supported` (the defaults when not given).
 *
 * @example
 * ```ts
 * SshConfig.assembleAlgorithms("+aes128-cbc", ["aes128-ctr", "aes256-ctr"]) // ["aes128-ctr", "aes256-ctr", "aes128-cbc"]
 * SshConfig.assembleAlgorithms("-*-ctr", ["aes128-ctr", "chacha20-poly1305@openssh.com"]) // ["chacha20-poly1305@openssh.com"]
 * ```
 */
export const assembleAlgorithms = (
  value: string | undefined,
  defaults: ReadonlyArray<string>,
  supported?: ReadonlyArray<string>
): ReadonlyArray<string> => {
  if (value === undefined || value === "") return defaults
  const concat = (a: ReadonlyArray<string>, b: ReadonlyArray<string>) => {
    const out = [...a]
    for (const name of b) if (name !== "" && matchPatternList(name, out.join(","), false) !== 1) out.push(name)
    return out
  }
  const names = (text: string) => text.split(",")
  if (value.startsWith("-")) return defaults.filter((name) => matchPatternList(name, value.slice(1), false) !== 1)
  const list = value.startsWith("+")
    ? concat(defaults, names(value.slice(1)))
    : value.startsWith("^")
    ? concat(names(value.slice(1)), defaults)
    : names(value)
  const all = supported ?? [...new Set([...defaults, ...list.filter((n) => !/[*?]/.test(n))])]
  let out: ReadonlyArray<string> = []
  for (const pattern of list) out = concat(out, all.filter((name) => matchPattern(name, pattern)))
  return out
}

// ---------------------------------------------------------------------------
// Resolution
// ---------------------------------------------------------------------------

/** Files reached by Include, by the path pattern after `~` and ~/.ssh or /etc/ssh anchoring. */
export type Included = (pattern: string) => ReadonlyArray<ConfigFile>

interface State {
  readonly single: Map<Keyword, ReadonlyArray<string>>
  proxyCommand: string | undefined
  jump: ReadonlyArray<JumpHost> | "none" | undefined
  jumpRaw: string | undefined
  readonly identityFiles: Array<string>
  readonly certificateFiles: Array<string>
  readonly localForwards: Array<Forward>
  readonly remoteForwards: Array<Forward>
  readonly sendEnv: Array<string>
  readonly setEnv: Array<string>
  userKnownHostsFiles: ReadonlyArray<string> | undefined
  globalKnownHostsFiles: ReadonlyArray<string> | undefined
  readonly unsupported: Array<{ readonly keyword: string; readonly file: string; readonly line: number }>
}

interface Pass {
  readonly final: boolean
  /** What `Host` patterns see: the given name, then the final host name. */
  readonly host: string
  readonly originalHost: string
  readonly context: Context
  readonly included: Included
  wantFinal: boolean
}

const includeDepthLimit = 16

/** Include path anchoring: relative paths live in ~/.ssh (user files) or /etc/ssh (system files). */
export const includePattern = (path: string, kind: ConfigFile["kind"]): string =>
  path.startsWith("/") || path.startsWith("~") ? path : kind === "user" ? `~/.ssh/${path}` : `/etc/ssh/${path}`

const singleValued = (state: State, keyword: Keyword, values: ReadonlyArray<string>) => {
  if (!state.single.has(keyword)) state.single.set(keyword, values)
}

const applyOption = (state: State, directive: Extract<Directive, { _tag: "Option" }>, pass: Pass) => {
  const { args, at, keyword } = directive
  switch (keyword) {
    case "identityfile":
      if (!state.identityFiles.includes(args[0]!)) state.identityFiles.push(args[0]!)
      return
    case "certificatefile":
      if (!state.certificateFiles.includes(args[0]!)) state.certificateFiles.push(args[0]!)
      return
    case "localforward":
    case "remoteforward":
    case "dynamicforward": {
      const remote = keyword === "remoteforward"
      const dynamic = keyword === "dynamicforward" || (remote && (args[1] ?? "") === "")
      const spec = expandEnvironment(dynamic ? args[0]! : `${args[0]}:${args[1]}`, pass.context.environment, `${at.file} line ${at.line}`)
      const forward = parseForward(spec, dynamic, remote)
      if (forward === undefined) return fail(at, "Bad forwarding specification")
      const list = remote ? state.remoteForwards : state.localForwards
      if (!list.some((f) => forwardEquals(f, forward))) list.push(forward)
      return
    }
    case "sendenv":
      for (const name of args) {
        if (name.startsWith("-")) {
          for (let i = state.sendEnv.length - 1; i >= 0; i--) {
            if (matchPattern(state.sendEnv[i]!, name.slice(1))) state.sendEnv.splice(i, 1)
          }
        } else state.sendEnv.push(name)
      }
      return
    case "setenv": {
      if (state.setEnv.length > 0) return
      const added: Array<string> = []
      for (const entry of args) {
        const name = entry.slice(0, entry.indexOf("="))
        if (!added.some((e) => e.slice(0, e.indexOf("=")) === name)) added.push(entry)
      }
      state.setEnv.push(...added)
      return
    }
    case "userknownhostsfile":
      if (state.userKnownHostsFiles === undefined) state.userKnownHostsFiles = args
      return
    case "globalknownhostsfile":
      if (state.globalKnownHostsFiles === undefined) state.globalKnownHostsFiles = args
      return
    case "proxycommand":
      // A ProxyJump of "none" does not hold a later ProxyCommand back (as ssh 9.2 behaves).
      if (state.proxyCommand === undefined && (state.jump === undefined || state.jump === "none")) {
        state.proxyCommand = directive.rest.replace(/^[ \t=]+/, "")
      }
      return
    case "proxyjump":
      if (state.proxyCommand === undefined && state.jump === undefined) {
        const jump = parseJump(jumpText(directive.rest))!
        state.jump = jump
        state.jumpRaw = jumpText(directive.rest)
        if (jump !== "none") state.proxyCommand = "none"
      }
      return
    case "connecttimeout":
    case "serveraliveinterval":
      // "none" leaves the option unset, so a later line can still set it (as ssh).
      if (args[0] !== "none") singleValued(state, keyword, args)
      return
    case "rekeylimit":
      if (!state.single.has("rekeylimit")) state.single.set("rekeylimit", [args[0]!])
      if (args[1] !== undefined && args[1] !== "none" && !state.single.has("rekeylimit-interval" as Keyword)) {
        state.single.set("rekeylimit-interval" as Keyword, [args[1]])
      }
      return
    default:
      singleValued(state, keyword, args)
  }
}

const matchHostName = (state: State, pass: Pass): string => {
  if (pass.final) return state.single.get("hostname")![0]!
  const hostname = state.single.get("hostname")?.[0]
  return hostname === undefined ? pass.host : expandTokens(hostname, { h: pass.host }, "HostName")
}

const evaluateMatch = (state: State, directive: Extract<Directive, { _tag: "Match" }>, pass: Pass): boolean => {
  const { context } = pass
  const host = matchHostName(state, pass)
  const port = state.single.has("port") ? Number(state.single.get("port")![0]) : 22
  const ruser = state.single.get("user")?.[0] ?? context.localUser
  let result = true
  for (const { argument, attribute, negated } of directive.criteria) {
    let matched: boolean
    switch (attribute) {
      case "all":
        return result ? !negated : false
      case "canonical":
      case "final":
        if (attribute === "final") pass.wantFinal = true
        matched = pass.final
        break
      case "host":
        matched = matchPatternList(host.toLowerCase(), argument!, true) === 1
        break
      case "originalhost":
        matched = matchPatternList(pass.originalHost.toLowerCase(), argument!, true) === 1
        break
      case "user":
        matched = matchPatternList(ruser, argument!, false) === 1
        break
      case "localuser":
        matched = matchPatternList(context.localUser, argument!, false) === 1
        break
      case "tagged":
        matched = matchPatternList(state.single.get("tag")?.[0] ?? "", argument!, false) === 1
        break
      case "localnetwork":
        matched = context.localAddresses.some((address) => matchCidrList(argument!, address) === true)
        break
      case "exec": {
        const tokens = {
          ...localTokens(context),
          C: connectionHash(context.localHostname, host, String(port), ruser, ""),
          h: host,
          k: state.single.get("hostkeyalias")?.[0] ?? host,
          n: pass.originalHost,
          p: String(port),
          r: ruser
        }
        const command = expandTokens(argument!, tokens, `${directive.at.file} line ${directive.at.line}: Match exec`)
        // Like ssh, a command is not run once an earlier criterion failed.
        if (!result) continue
        matched = context.exec(command)
        break
      }
    }
    if (matched === negated) result = false
  }
  return result
}

const readFile = (state: State, file: ConfigFile, pass: Pass, active: { value: boolean }, neverMatch: boolean, depth: number) => {
  if (depth > includeDepthLimit) {
    throw new SshError.ConfigParseError({ message: `${file.file}: too many recursive configuration includes` })
  }
  for (const directive of file.directives) {
    switch (directive._tag) {
      case "Host":
        active.value = neverMatch ? false : matchHost(pass.host, directive.patterns)
        break
      case "Match": {
        const value = evaluateMatch(state, directive, pass)
        active.value = neverMatch ? false : value
        break
      }
      case "Include": {
        const outer = active.value
        for (const path of directive.paths) {
          for (const included of pass.included(includePattern(path, file.kind))) {
            readFile(state, included, pass, active, neverMatch || !outer, depth + 1)
            // An included file's Host and Match lines do not leak into the including file.
            active.value = outer
          }
        }
        break
      }
      case "Option":
        if (active.value) applyOption(state, directive, pass)
        break
      case "Unsupported":
        if (!pass.final) state.unsupported.push({ keyword: directive.keyword, file: directive.at.file, line: directive.at.line })
        break
    }
  }
}

const readAll = (state: State, files: ReadonlyArray<ConfigFile>, pass: Pass) => {
  for (const file of files) readFile(state, file, pass, { value: true }, false, 0)
}

const localTokens = (context: Context): Record<string, string> => ({
  L: context.localHostname.split(".")[0]!,
  l: context.localHostname,
  d: context.homeDirectory,
  i: context.uid,
  u: context.localUser
})

const connectionHash = (localHostname: string, host: string, port: string, user: string, jump: string): string =>
  Array.from(sha1(new TextEncoder().encode(`${localHostname}${host}${port}${user}${jump}`)), (b) => b.toString(16).padStart(2, "0")).join("")

/** ssh's identity files when none is configured (OpenSSH 9.x). */
export const defaultIdentityFiles: ReadonlyArray<string> = [
  "~/.ssh/id_rsa",
  "~/.ssh/id_ecdsa",
  "~/.ssh/id_ecdsa_sk",
  "~/.ssh/id_ed25519",
  "~/.ssh/id_ed25519_sk",
  "~/.ssh/id_xmss",
  "~/.ssh/id_dsa"
]

/**
 * Resolves the configuration for `host` (the name as given, optionally
 * `user@host`) over files read in order (the user's file before the system
 * file, as ssh), with Include targets looked up in `included`.
 *
 * @throws ConfigParseError when a value cannot be expanded (unknown token, unset `${ENV}`) or an Include recurses too deep.
 * @example
 * ```ts
 * const files = [SshConfig.parse("Match user root\n  Port 2222\n", "config")]
 * const resolved = SshConfig.resolve(files, "root@db", SshConfig.makeContext({ localUser: "me", homeDirectory: "/home/me" }))
 * resolved.port // 2222
 * ```
 */
export const resolve = (
  files: ReadonlyArray<ConfigFile>,
  destination: string,
  context: Context,
  included: Included = () => []
): ResolvedConfig => {
  const state: State = {
    single: new Map(),
    proxyCommand: undefined,
    jump: undefined,
    jumpRaw: undefined,
    identityFiles: [],
    certificateFiles: [],
    localForwards: [],
    remoteForwards: [],
    sendEnv: [],
    setEnv: [],
    userKnownHostsFiles: undefined,
    globalKnownHostsFiles: undefined,
    unsupported: []
  }
  let hostArg = destination
  const atSign = destination.lastIndexOf("@")
  if (context.user !== undefined) state.single.set("user", [context.user])
  if (atSign !== -1) {
    if (context.user === undefined) state.single.set("user", [destination.slice(0, atSign)])
    hostArg = destination.slice(atSign + 1)
  }
  if (context.port !== undefined) state.single.set("port", [String(context.port)])

  const first: Pass = { final: false, host: hostArg, originalHost: hostArg, context, included, wantFinal: false }
  readAll(state, files, first)
  const configuredName = state.single.get("hostname")?.[0]
  let host = configuredName === undefined ? hostArg : expandTokens(configuredName, { h: hostArg }, "HostName")
  if (!isAddress(host)) host = host.toLowerCase()
  if (first.wantFinal) {
    state.single.set("hostname", [host])
    readAll(state, files, { final: true, host, originalHost: hostArg, context, included, wantFinal: false })
  }
  return finish(state, hostArg, host, context)
}

const finish = (state: State, hostArg: string, host: string, context: Context): ResolvedConfig => {
  const single = (keyword: Keyword) => state.single.get(keyword)?.[0]
  const flag = (keyword: Keyword) => single(keyword) === undefined ? false : flags[single(keyword)!.toLowerCase()]!
  const user = single("user") ?? context.localUser
  const port = single("port") === undefined ? 22 : Number(single("port"))
  const hostKeyAlias = single("hostkeyalias")?.toLowerCase()
  const jump = state.jump === "none" || state.jump === undefined ? undefined : state.jump
  const lastHop = jump?.[jump.length - 1]
  const tokens: Record<string, string> = {
    ...localTokens(context),
    C: connectionHash(context.localHostname, host, String(port), user, lastHop?.host ?? ""),
    h: host,
    k: hostKeyAlias ?? hostArg,
    n: hostArg,
    p: String(port),
    r: user,
    j: lastHop?.host ?? ""
  }
  const expandPath = (path: string, where: string) =>
    expandTokens(expandEnvironment(expandTilde(path, context.homeDirectory, context.localUser), context.environment, where), tokens, where)
  // ssh expands identity and certificate files only when it loads them: ssh -G prints them as written
  const identityErrors: Array<string> = []
  const expandLater = (path: string, where: string) => {
    try {
      return expandPath(path, where)
    } catch (error) {
      identityErrors.push(error instanceof SshError.ConfigParseError ? error.message : String(error))
      return path
    }
  }
  const identityFilesAreDefault = state.identityFiles.length === 0
  const rawIdentityFiles = identityFilesAreDefault ? defaultIdentityFiles : state.identityFiles
  const forwardAgentValue = single("forwardagent")
  const forwardAgent = forwardAgentValue === undefined
    ? false
    : flags[forwardAgentValue.toLowerCase()] ?? expandPath(forwardAgentValue, "ForwardAgent")
  const identityAgentValue = single("identityagent")
  const identityAgent = identityAgentValue === undefined ? undefined : expandPath(identityAgentValue, "IdentityAgent")
  const userKnown = state.userKnownHostsFiles ?? ["~/.ssh/known_hosts", "~/.ssh/known_hosts2"]
  const userKnownHostsFiles = userKnown[0]?.toLowerCase() === "none" ? [] : userKnown.map((f) => expandPath(f, "UserKnownHostsFile"))
  const globalKnown = state.globalKnownHostsFiles ?? ["/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"]
  const globalKnownHostsFiles = globalKnown[0]?.toLowerCase() === "none" ? [] : globalKnown
  const expandForwardPaths = (f: Forward): Forward => {
    const end = (e: ForwardEnd | undefined): ForwardEnd | undefined =>
      e?._tag === "Path" ? { _tag: "Path", path: expandTokens(e.path, tokens, "forwarding path") } : e
    return { listen: end(f.listen)!, connect: end(f.connect) }
  }
  const localForwards = state.localForwards.map(expandForwardPaths)
  const remoteForwards = state.remoteForwards.map(expandForwardPaths)
  const algorithms: Partial<Record<AlgorithmKeyword, string>> = {}
  for (const k of ["ciphers", "macs", "kexalgorithms", "hostkeyalgorithms", "pubkeyacceptedalgorithms"] as const) {
    const value = single(k)
    if (value !== undefined) algorithms[k] = value
  }
  const rekeyBytes = single("rekeylimit")
  const rekeyInterval = state.single.get("rekeylimit-interval" as Keyword)?.[0]
  const proxyCommand = state.proxyCommand === undefined || state.proxyCommand.toLowerCase() === "none" || jump !== undefined
    ? undefined
    : state.proxyCommand
  const timeOf = (keyword: Keyword) => single(keyword) === undefined ? undefined : parseTime(single(keyword)!)
  const preferred = single("preferredauthentications")

  const resolved: Omit<ResolvedConfig, "get" | "lines"> = {
    host: hostArg,
    hostName: host,
    port,
    user,
    identityFiles: rawIdentityFiles.map((f) => expandLater(f, "IdentityFile")),
    identityFilesAreDefault,
    certificateFiles: state.certificateFiles.map((f) => expandLater(f, "CertificateFile")),
    identityErrors,
    identitiesOnly: flag("identitiesonly"),
    identityAgent,
    proxyJump: jump,
    proxyCommand,
    connectTimeout: timeOf("connecttimeout"),
    serverAliveInterval: timeOf("serveraliveinterval") ?? (context.flavor === "debian" && flag("batchmode") ? 300 : 0),
    serverAliveCountMax: single("serveralivecountmax") === undefined ? 3 : Number(single("serveralivecountmax")),
    strictHostKeyChecking: strictValues[single("stricthostkeychecking")?.toLowerCase() ?? "ask"]!,
    userKnownHostsFiles,
    globalKnownHostsFiles,
    hostKeyAlias,
    checkHostIp: flag("checkhostip"),
    algorithms,
    forwardAgent,
    localForwards: localForwards.filter((f) => f.connect !== undefined),
    remoteForwards,
    dynamicForwards: localForwards.filter((f) => f.connect === undefined),
    rekeyLimit: {
      bytes: rekeyBytes === undefined || rekeyBytes === "default" ? 0 : parseScaled(rekeyBytes, { file: "RekeyLimit", line: 0 }),
      seconds: rekeyInterval === undefined ? 0 : parseTime(rekeyInterval)!
    },
    setEnv: state.setEnv.map((e) => [e.slice(0, e.indexOf("=")), e.slice(e.indexOf("=") + 1)] as const),
    sendEnv: [...state.sendEnv],
    requestTty: ttyValues[single("requesttty")?.toLowerCase() ?? "auto"]!,
    batchMode: flag("batchmode"),
    preferredAuthentications: preferred === undefined ? undefined : preferred.split(","),
    numberOfPasswordPrompts: single("numberofpasswordprompts") === undefined ? 3 : Number(single("numberofpasswordprompts")),
    logLevel: logLevels[single("loglevel")?.toLowerCase() ?? "info"]!,
    compression: single("compression")?.toLowerCase() === "yes",
    exitOnForwardFailure: flag("exitonforwardfailure"),
    gatewayPorts: flag("gatewayports"),
    tag: single("tag"),
    unsupported: [...state.unsupported]
  }
  const view = sshGView(resolved, state, rawIdentityFiles, localForwards, context)
  return { ...resolved, get: (keyword) => view.get(keyword.toLowerCase()) ?? [], lines: () => keywords.flatMap((k) => (view.get(k) ?? []).map((v) => `${k} ${v}`)) }
}

const yesNo = (b: boolean) => b ? "yes" : "no"

const formatEnd = (end: ForwardEnd): string =>
  end._tag === "Path" ? end.path : end.host === undefined ? String(end.port) : `[${end.host}]:${end.port}`

const formatForward = (f: Forward, withConnect: boolean): string =>
  withConnect
    ? `${formatEnd(f.listen)} ${f.connect === undefined ? "[socks]:0" : formatEnd(f.connect)}`
    : formatEnd(f.listen)

const formatJump = (hops: ReadonlyArray<JumpHost>, raw: string): string => {
  const last = hops[hops.length - 1]!
  const comma = raw.lastIndexOf(",")
  const extra = comma > 0 ? `${raw.slice(0, comma)},` : ""
  const numeric = last.host.includes(":") || /^[0-9.]*$/.test(last.host)
  const host = numeric ? `[${last.host}]` : last.host
  return `${extra}${last.user === undefined ? "" : `${last.user}@`}${host}${last.port === undefined ? "" : `:${last.port}`}`
}

const sshGView = (
  r: Omit<ResolvedConfig, "get" | "lines">,
  state: State,
  rawIdentityFiles: ReadonlyArray<string>,
  localForwards: ReadonlyArray<Forward>,
  context: Context
): ReadonlyMap<string, ReadonlyArray<string>> => {
  const view = new Map<string, ReadonlyArray<string>>()
  const set = (k: Keyword, v: string | undefined) => {
    if (v !== undefined) view.set(k, [v])
  }
  set("host", r.host)
  set("user", r.user)
  set("hostname", r.hostName)
  set("port", String(r.port))
  set("batchmode", yesNo(r.batchMode))
  set("checkhostip", yesNo(r.checkHostIp))
  set("compression", yesNo(r.compression))
  set("exitonforwardfailure", yesNo(r.exitOnForwardFailure))
  set("gatewayports", yesNo(r.gatewayPorts))
  set("identitiesonly", yesNo(r.identitiesOnly))
  set("requesttty", { yes: "true", no: "false", force: "force", auto: "auto" }[r.requestTty])
  set("stricthostkeychecking", { yes: "true", no: "false", ask: "ask", "accept-new": "accept-new" }[r.strictHostKeyChecking])
  set("numberofpasswordprompts", String(r.numberOfPasswordPrompts))
  set("serveralivecountmax", String(r.serverAliveCountMax))
  set("serveraliveinterval", String(r.serverAliveInterval))
  for (const k of ["ciphers", "hostkeyalgorithms", "kexalgorithms", "macs", "pubkeyacceptedalgorithms"] as const) {
    const lists = context.algorithms?.[k]
    set(k, lists === undefined ? r.algorithms[k] : assembleAlgorithms(r.algorithms[k], lists.defaults, lists.supported).join(","))
  }
  set("hostkeyalias", r.hostKeyAlias)
  set("identityagent", r.identityAgent)
  set("loglevel", context.flavor === "debian" && r.logLevel === "QUIET" ? "SILENT" : r.logLevel)
  set("preferredauthentications", r.preferredAuthentications?.join(","))
  set("tag", r.tag)
  // ssh -G lists a forwarding to a Unix socket under dynamicforward too (its connect host is unset, not "socks").
  view.set("dynamicforward", localForwards.filter((f) => f.connect?._tag !== "Port").map((f) => formatForward(f, false)))
  view.set("localforward", localForwards.filter((f) => f.connect !== undefined).map((f) => formatForward(f, true)))
  view.set("remoteforward", r.remoteForwards.map((f) => formatForward(f, true)))
  // ssh -G prints identity and certificate files as configured: they are expanded when loaded.
  view.set("identityfile", rawIdentityFiles)
  view.set("certificatefile", state.certificateFiles)
  set("globalknownhostsfile", r.globalKnownHostsFiles.length === 0 ? "none" : r.globalKnownHostsFiles.join(" "))
  set("userknownhostsfile", r.userKnownHostsFiles.length === 0 ? "none" : r.userKnownHostsFiles.join(" "))
  view.set("sendenv", r.sendEnv)
  view.set("setenv", state.setEnv)
  set("forwardagent", typeof r.forwardAgent === "string" ? r.forwardAgent : yesNo(r.forwardAgent))
  set("connecttimeout", r.connectTimeout === undefined ? "none" : String(r.connectTimeout))
  set("rekeylimit", `${r.rekeyLimit.bytes} ${r.rekeyLimit.seconds}`)
  set("proxycommand", r.proxyCommand)
  if (r.proxyJump !== undefined) set("proxyjump", formatJump(r.proxyJump, state.jumpRaw ?? ""))
  return view
}

// ---------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------

/** The files `resolve` reads, with everything their Include lines reach. */
export interface Loaded {
  readonly files: ReadonlyArray<ConfigFile>
  readonly included: Included
}

/** Which files to read: one `-F` file, or the user's and the system's. */
export interface LoadOptions {
  /** `-F`: read only this file (as a user file); it must exist. `"none"` reads nothing. */
  readonly file?: string | undefined
  /** The user's file; default `<home>/.ssh/config`. */
  readonly user?: string | undefined
  /** The system file; default `/etc/ssh/ssh_config`. */
  readonly system?: string | undefined
  /** The home directory of `~/.ssh/config` (from the password database, as ssh). */
  readonly homeDirectory: string
  /** Where Include's `~` points: ssh's glob uses `$HOME`, falling back to the home directory. */
  readonly includeHome?: string | undefined
}

const hasGlob = (s: string) => /[*?[]/.test(s)

/** Shell-style glob of one path component: `*`, `?`, `[...]`; a leading `.` only matches explicitly. */
const globComponent = (name: string, pattern: string): boolean => {
  if (name.startsWith(".") && !pattern.startsWith(".")) return false
  let re = "^"
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!
    if (c === "*") re += "[^/]*"
    else if (c === "?") re += "[^/]"
    else if (c === "[") {
      const end = pattern.indexOf("]", i + 2)
      if (end === -1) re += "\\["
      else {
        const body = pattern.slice(i + 1, end)
        re += `[${body.startsWith("!") ? `^${body.slice(1)}` : body.replace(/\\/g, "\\\\")}]`
        i = end
      }
    } else re += c.replace(/[.+^${}()|\\]/g, "\\$&")
  }
  return new RegExp(`${re}$`).test(name)
}

const glob = (fs: FileSystem.FileSystem, pattern: string): Effect.Effect<ReadonlyArray<string>> =>
  Effect.gen(function*() {
    const parts = pattern.split("/").filter((p, i) => p !== "" || i === 0)
    let paths: Array<string> = [parts[0] === "" ? "" : "."]
    for (const part of parts.slice(1)) {
      const next: Array<string> = []
      for (const dir of paths) {
        if (!hasGlob(part)) {
          next.push(`${dir}/${part}`)
          continue
        }
        const entries = yield* Effect.orElseSucceed(fs.readDirectory(dir === "" ? "/" : dir), () => [] as Array<string>)
        for (const entry of [...entries].sort()) if (globComponent(entry, part)) next.push(`${dir}/${entry}`)
      }
      paths = next
    }
    const existing: Array<string> = []
    for (const path of paths) if (yield* Effect.orElseSucceed(fs.exists(path), () => false)) existing.push(path)
    return existing
  })

const toSshError = (u: unknown) => SshError.fromUnknown(u)

/**
 * Reads the configuration files as ssh does — one `-F` file, or the user's
 * `~/.ssh/config` then `/etc/ssh/ssh_config` (missing ones are skipped) —
 * and every file their Include lines can reach, whether or not the Include
 * is in a matching section (matching is `resolve`'s job).
 *
 * @example
 * ```ts
 * const loaded = yield* SshConfig.load({ homeDirectory: "/home/me" })
 * const config = SshConfig.resolve(loaded.files, "web", context, loaded.included)
 * ```
 */
export const load = (options: LoadOptions): Effect.Effect<Loaded, SshError.SshError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const includes = new Map<string, ReadonlyArray<ConfigFile>>()
    const read = (path: string, kind: ConfigFile["kind"], required: boolean): Effect.Effect<ConfigFile | undefined, SshError.SshError> =>
      fs.readFileString(path).pipe(
        Effect.matchEffect({
          onFailure: (e) =>
            required
              ? Effect.fail(SshError.make(new SshError.ConfigParseError({ message: `Can't open user config file ${path}: ${e.message}` })))
              : Effect.succeed(undefined),
          onSuccess: (text) => Effect.try({ try: () => parse(text, path, kind), catch: toSshError })
        })
      )
    const includeHome = options.includeHome ?? options.homeDirectory
    const follow = (file: ConfigFile, depth: number): Effect.Effect<void, SshError.SshError> =>
      Effect.gen(function*() {
        if (depth > includeDepthLimit) {
          return yield* Effect.fail(SshError.make(new SshError.ConfigParseError({ message: `${file.file}: too many recursive configuration includes` })))
        }
        for (const directive of file.directives) {
          if (directive._tag !== "Include") continue
          for (const path of directive.paths) {
            const pattern = includePattern(path, file.kind)
            if (includes.has(pattern)) continue
            const expanded = pattern.startsWith("~") ? expandTilde(pattern, includeHome, "") : pattern
            const found: Array<ConfigFile> = []
            includes.set(pattern, found)
            for (const match of yield* glob(fs, expanded)) {
              const included = yield* read(match, file.kind, false)
              if (included === undefined) continue
              found.push(included)
              yield* follow(included, depth + 1)
            }
          }
        }
      })
    const sources: Array<readonly [string, ConfigFile["kind"], boolean]> = options.file !== undefined
      ? options.file.toLowerCase() === "none" ? [] : [[options.file, "user", true]]
      : [[options.user ?? `${options.homeDirectory}/.ssh/config`, "user", false], [options.system ?? "/etc/ssh/ssh_config", "system", false]]
    const files: Array<ConfigFile> = []
    for (const [path, kind, required] of sources) {
      const file = yield* read(path, kind, required)
      if (file === undefined) continue
      files.push(file)
      yield* follow(file, 0)
    }
    return { files, included: (pattern: string) => includes.get(pattern) ?? [] }
  })
