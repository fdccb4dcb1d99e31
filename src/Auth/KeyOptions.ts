/**
 * The options of an authorized_keys line, as sshd(8) "AUTHORIZED_KEYS FILE
 * FORMAT" defines them, read into typed restrictions: what a connection
 * authenticated with the key may do (`Restrictions`, the same shape a user
 * certificate's permit-* extensions and critical options give), and what
 * decides whether the key is accepted at all (`from=`, `expiry-time=`, and
 * for a `cert-authority` line, `principals=`).
 *
 * Options apply in order, as sshd's: `restrict` turns off pty, forwarding,
 * agent and X11 forwarding and ~/.ssh/rc, and a later `pty`,
 * `port-forwarding`, `agent-forwarding`, `X11-forwarding` or `user-rc` turns
 * one back on. Names are case-insensitive; values are double-quoted, with
 * `\"` for a quote inside. An option this module does not know, or does not
 * enforce (`tunnel=`), makes the whole line unusable, never a key with fewer
 * restrictions than it was written with.
 *
 * When a key's options and a certificate both apply (a `cert-authority`
 * line), the connection gets their intersection (sshd's `sshauthopt_merge`):
 * a permission must be granted by both, verify-required by either, and two
 * different forced commands refuse the key.
 *
 * @example
 * ```ts
 * const options = KeyOptions.parse(['from="10.0.0.0/8"', "restrict", "pty", 'command="uptime"'])
 * KeyOptions.refusal(options, { remoteAddress: "10.1.2.3" }) // undefined: the key may be used
 * options.restrictions.pty                                    // true
 * options.restrictions.portForwarding                         // false
 * ```
 * @since 0.1.0
 */
import * as SshError from "../SshError.ts"
import { matchCidrList } from "../internal/cidr.ts"
import * as Certificate from "./Certificate.ts"
import { matchWildcard } from "./KnownHosts.ts"

/**
 * A forwarding target (`permitopen`) or listen address (`permitlisten`); `*` for any host or any port.
 *
 * @category models
 */
export interface HostPort {
  readonly host: string
  readonly port: number | "*"
}

/**
 * What a connection may do: from its key's authorized_keys options, its user certificate, or both combined.
 *
 * @category models
 */
export interface Restrictions {
  readonly pty: boolean
  readonly portForwarding: boolean
  readonly agentForwarding: boolean
  readonly x11Forwarding: boolean
  readonly userRc: boolean
  /** Security key signatures need not assert that a user touched the key (`no-touch-required`). */
  readonly noTouchRequired: boolean
  /** Security key signatures must assert user verification, PIN or biometrics (`verify-required`). */
  readonly verifyRequired: boolean
  /** Every exec, shell or subsystem runs this instead (`command=`, a certificate's force-command). */
  readonly forceCommand: string | undefined
  /** Variables set in every session (`environment=`; the first of a name wins). */
  readonly environment: Readonly<Record<string, string>>
  /** The only targets direct-tcpip may reach (`permitopen=`); undefined for any. */
  readonly permitOpen: ReadonlyArray<HostPort> | undefined
  /** The only addresses tcpip-forward may listen on (`permitlisten=`); undefined for any. */
  readonly permitListen: ReadonlyArray<HostPort> | undefined
}

/**
 * An authorized_keys line's options: the restrictions it gives, and what decides whether its key is accepted.
 *
 * @category models
 */
export interface KeyOptions {
  readonly restrictions: Restrictions
  /** `from=`: the patterns the client's address must match (see `matchFrom`). */
  readonly from: string | undefined
  /** `expiry-time=`: the key is refused from this time on (milliseconds since the epoch). */
  readonly expiresAt: number | undefined
  /** `cert-authority`: the key is a CA, and the line accepts user certificates it signed. */
  readonly certAuthority: boolean
  /** `principals=` of a cert-authority line: a certificate must list one of these (default: the user name). */
  readonly principals: ReadonlyArray<string> | undefined
}

/**
 * A connection with no restrictions: what a key without options gets.
 *
 * @category constructors
 * @example
 * ```ts
 * KeyOptions.unrestricted.pty // true
 * ```
 */
export const unrestricted: Restrictions = {
  pty: true,
  portForwarding: true,
  agentForwarding: true,
  x11Forwarding: true,
  userRc: true,
  noTouchRequired: false,
  verifyRequired: false,
  forceCommand: undefined,
  environment: {},
  permitOpen: undefined,
  permitListen: undefined
}

const fail = (message: string, line: number | undefined): never => {
  throw new SshError.ConfigParseError({ message: line === undefined ? message : `line ${line}: ${message}` })
}

/** The value of `name="value"`: the quotes removed and `\"` unescaped. */
const dequote = (name: string, raw: string, line: number | undefined): string => {
  if (raw.length < 2 || !raw.startsWith("\"") || !raw.endsWith("\"")) return fail(`option ${name} needs a double-quoted value`, line)
  let out = ""
  const inner = raw.slice(1, -1)
  for (let i = 0; i < inner.length; i++) {
    const c = inner[i]!
    if (c === "\\" && inner[i + 1] === "\"") {
      out += "\""
      i++
    } else if (c === "\"") return fail(`option ${name} has a stray quote`, line)
    else out += c
  }
  return out
}

const PORT = /^[1-9][0-9]{0,4}$/

/**
 * A `permitopen` target or `permitlisten` address: `host:port`, `[v6]:port`, `*` for any port; a bare port
 * (permitlisten only) listens on any host.
 */
const parseHostPort = (value: string, bareAllowed: boolean, name: string, line: number | undefined): HostPort => {
  let host: string
  let port: string
  if (value.startsWith("[")) {
    const close = value.indexOf("]")
    if (close < 0 || value[close + 1] !== ":") return fail(`invalid ${name} address ${value}`, line)
    host = value.slice(1, close)
    port = value.slice(close + 2)
  } else {
    const colon = value.indexOf(":")
    if (colon < 0 && !bareAllowed) return fail(`invalid ${name} target ${value} (host:port)`, line)
    host = colon < 0 ? "*" : value.slice(0, colon)
    port = colon < 0 ? value : value.slice(colon + 1)
  }
  if (host.length === 0 || host.length >= 1025) return fail(`invalid ${name} host in ${value}`, line)
  if (port === "*") return { host, port }
  if (!PORT.test(port) || Number(port) > 0xffff) return fail(`invalid ${name} port in ${value}`, line)
  return { host, port: Number(port) }
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/

/** sshd's bounds on one line: environment options (SSH_AUTHOPT_ENV_MAX) and permitopen/permitlisten (SSH_AUTHOPT_PERMIT_MAX). */
const MAX_ENVIRONMENT = 1024
const MAX_PERMITS = 4096

/**
 * `expiry-time`'s `YYYYMMDD[HHMM[SS]][Z]`: local time unless it ends in Z (UTC), as sshd's. In milliseconds since
 * the epoch.
 *
 * @throws ConfigParseError for another form or an impossible date.
 * @example
 * ```ts
 * KeyOptions.parseExpiryTime("20300101Z")       // Date.UTC(2030, 0, 1)
 * KeyOptions.parseExpiryTime("203001011230")    // 12:30 local time
 * ```
 */
export const parseExpiryTime = (text: string, line?: number): number => {
  const match = /^(\d{4})(\d{2})(\d{2})(?:(\d{2})(\d{2})(\d{2})?)?(Z?)$/i.exec(text)
  if (match === null) return fail(`invalid expiry-time ${text}`, line)
  const [year, month, day, hour = 0, minute = 0, second = 0] = match.slice(1, 7).map((f) => f === undefined ? undefined : Number(f)) as Array<number>
  const utc = match[7] !== ""
  const date = utc
    ? new Date(Date.UTC(year!, month! - 1, day!, hour, minute, second))
    : new Date(year!, month! - 1, day!, hour, minute, second)
  const back = utc
    ? [date.getUTCFullYear(), date.getUTCMonth() + 1, date.getUTCDate(), date.getUTCHours(), date.getUTCMinutes(), date.getUTCSeconds()]
    : [date.getFullYear(), date.getMonth() + 1, date.getDate(), date.getHours(), date.getMinutes(), date.getSeconds()]
  if (back.join() !== [year, month, day, hour, minute, second].join() || date.getTime() <= 0) {
    return fail(`invalid expiry-time ${text}`, line)
  }
  return date.getTime()
}

/** The flags `restrict` turns off, by their option name (and `no-` name). */
const FLAGS = {
  "pty": "pty",
  "port-forwarding": "portForwarding",
  "agent-forwarding": "agentForwarding",
  "x11-forwarding": "x11Forwarding",
  "user-rc": "userRc"
} as const satisfies Record<string, keyof Restrictions>

type Mutable<A> = { -readonly [K in keyof A]: A[K] }

/**
 * Reads an authorized_keys line's options (as `AuthorizedKeys` splits them: `no-pty`, `command="uptime"`), in
 * order. `line` goes into error messages.
 *
 * @throws ConfigParseError naming the option for one that is unknown, unsupported (`tunnel=`), malformed, or
 * repeated where sshd refuses a repeat (`command=`, `from=`, `principals=`); and for `principals=` without
 * `cert-authority`.
 * @example
 * ```ts
 * const { restrictions } = KeyOptions.parse(["restrict", "port-forwarding", 'permitopen="db:5432"'])
 * restrictions.permitOpen // [{ host: "db", port: 5432 }]
 * ```
 */
export const parse = (options: ReadonlyArray<string>, line?: number): KeyOptions => {
  const r: Mutable<Restrictions> = { ...unrestricted, environment: {} }
  const environment: Record<string, string> = Object.create(null)
  const permitOpen: Array<HostPort> = []
  const permitListen: Array<HostPort> = []
  let from: string | undefined
  let expiresAt: number | undefined
  let certAuthority = false
  let principals: ReadonlyArray<string> | undefined
  for (const option of options) {
    const equals = option.indexOf("=")
    const name = (equals < 0 ? option : option.slice(0, equals)).toLowerCase()
    if (equals < 0) {
      const negated = name.startsWith("no-")
      const flag = negated ? name.slice(3) : name
      if (name === "restrict") {
        for (const key of Object.values(FLAGS)) r[key] = false
      } else if (name === "cert-authority") {
        certAuthority = true
      } else if (Object.hasOwn(FLAGS, flag)) {
        r[FLAGS[flag as keyof typeof FLAGS]] = !negated
      } else if (flag === "touch-required") {
        r.noTouchRequired = negated
      } else if (flag === "verify-required") {
        r.verifyRequired = !negated
      } else {
        fail(`unknown key option ${option}`, line)
      }
      continue
    }
    const value = dequote(name, option.slice(equals + 1), line)
    switch (name) {
      case "command":
        if (r.forceCommand !== undefined) fail("multiple command options", line)
        r.forceCommand = value
        break
      case "from":
        if (from !== undefined) fail("multiple from options", line)
        if (value.length === 0) fail("empty from option", line)
        from = value
        break
      case "principals":
        if (principals !== undefined) fail("multiple principals options", line)
        principals = value.split(",").filter((p) => p.length > 0)
        break
      case "expiry-time": {
        const at = parseExpiryTime(value, line)
        // the earliest of several wins
        expiresAt = expiresAt === undefined ? at : Math.min(expiresAt, at)
        break
      }
      case "environment": {
        const split = value.indexOf("=")
        const variable = split < 0 ? "" : value.slice(0, split)
        if (!ENV_NAME.test(variable)) fail(`invalid environment option ${value}`, line)
        if (Object.keys(environment).length >= MAX_ENVIRONMENT) fail("too many environment options", line)
        if (!Object.hasOwn(environment, variable)) environment[variable] = value.slice(split + 1)
        break
      }
      case "permitopen":
        if (permitOpen.length >= MAX_PERMITS) fail("too many permitopen options", line)
        permitOpen.push(parseHostPort(value, false, name, line))
        break
      case "permitlisten":
        if (permitListen.length >= MAX_PERMITS) fail("too many permitlisten options", line)
        permitListen.push(parseHostPort(value, true, name, line))
        break
      case "tunnel":
        fail("key option tunnel is not supported", line)
        break
      default:
        fail(`unknown key option ${name}`, line)
    }
  }
  if (principals !== undefined && !certAuthority) fail("principals option without cert-authority", line)
  r.environment = { ...environment }
  r.permitOpen = permitOpen.length > 0 ? permitOpen : undefined
  r.permitListen = permitListen.length > 0 ? permitListen : undefined
  return { restrictions: r, from, expiresAt, certAuthority, principals }
}

/**
 * Whether the client's address matches a `from=` pattern list (sshd's `match_host_and_ip`, without DNS: the
 * host name is the address): entries are CIDR ranges or `*`/`?` wildcards, `!` negates, and a negated match
 * refuses whatever else matches. A malformed entry refuses too.
 *
 * @example
 * ```ts
 * KeyOptions.matchFrom("10.0.0.0/8,!10.0.0.1", "10.9.9.9") // true
 * KeyOptions.matchFrom("10.0.0.0/8,!10.0.0.1", "10.0.0.1") // false
 * KeyOptions.matchFrom("192.168.*", "192.168.4.4")         // true
 * ```
 */
export const matchFrom = (patterns: string, address: string, hostName: string = address): boolean => {
  const name = hostName.toLowerCase()
  let matched = false
  for (const entry of patterns.split(",")) {
    const negated = entry.startsWith("!")
    const pattern = negated ? entry.slice(1) : entry
    if (pattern.length === 0) return false
    const cidr = matchCidrList(pattern, address)
    const hit = cidr ?? (matchWildcard(pattern, address) || matchWildcard(pattern.toLowerCase(), name))
    if (!hit) continue
    if (negated) return false
    matched = true
  }
  return matched
}

/**
 * Why a key with these options is refused for a connection, or undefined when it may be used: `from=` does not
 * match the client's address, or `expiry-time` has passed.
 *
 * @example
 * ```ts
 * KeyOptions.refusal(KeyOptions.parse(['from="10.0.0.0/8"']), { remoteAddress: "192.0.2.1" }) // "source address 192.0.2.1 does not match from=..."
 * ```
 */
export const refusal = (
  options: KeyOptions,
  connection: { readonly remoteAddress: string; readonly now?: number | undefined }
): string | undefined => {
  if (options.from !== undefined && !matchFrom(options.from, connection.remoteAddress)) {
    return `source address ${connection.remoteAddress} does not match from="${options.from}"`
  }
  if (options.expiresAt !== undefined && options.expiresAt < (connection.now ?? Date.now())) {
    return `key expired at ${new Date(options.expiresAt).toISOString()}`
  }
  return undefined
}

/**
 * The restrictions a user certificate gives: its permit-* extensions, no-touch-required, and its force-command and
 * verify-required critical options (its source-address is checked when it is accepted).
 *
 * @example
 * ```ts
 * KeyOptions.fromCertificate(certificate).pty // whether the certificate carries permit-pty
 * ```
 */
export const fromCertificate = (cert: Certificate.Certificate): Restrictions => ({
  pty: Certificate.hasExtension(cert, "permit-pty"),
  portForwarding: Certificate.hasExtension(cert, "permit-port-forwarding"),
  agentForwarding: Certificate.hasExtension(cert, "permit-agent-forwarding"),
  x11Forwarding: Certificate.hasExtension(cert, "permit-X11-forwarding"),
  userRc: Certificate.hasExtension(cert, "permit-user-rc"),
  noTouchRequired: Certificate.hasExtension(cert, "no-touch-required"),
  verifyRequired: Certificate.option(cert.criticalOptions, "verify-required") !== undefined,
  forceCommand: Certificate.forceCommand(cert),
  environment: {},
  permitOpen: undefined,
  permitListen: undefined
})

/**
 * Two sets of restrictions that both apply (sshd's `sshauthopt_merge`, `primary` being the key's options): a
 * permission needs both, verify-required either; environment, permitopen and permitlisten come from `primary`
 * when it has them. Undefined when both force a command and the commands differ: the key is refused then.
 *
 * @example
 * ```ts
 * KeyOptions.merge(KeyOptions.parse(["no-pty"]).restrictions, KeyOptions.fromCertificate(certificate))?.pty // false
 * ```
 */
export const merge = (primary: Restrictions, additional: Restrictions): Restrictions | undefined => {
  if (primary.forceCommand !== undefined && additional.forceCommand !== undefined && primary.forceCommand !== additional.forceCommand) {
    return undefined
  }
  return {
    pty: primary.pty && additional.pty,
    portForwarding: primary.portForwarding && additional.portForwarding,
    agentForwarding: primary.agentForwarding && additional.agentForwarding,
    x11Forwarding: primary.x11Forwarding && additional.x11Forwarding,
    userRc: primary.userRc && additional.userRc,
    noTouchRequired: primary.noTouchRequired && additional.noTouchRequired,
    verifyRequired: primary.verifyRequired || additional.verifyRequired,
    forceCommand: primary.forceCommand ?? additional.forceCommand,
    environment: Object.keys(primary.environment).length > 0 ? primary.environment : additional.environment,
    permitOpen: primary.permitOpen ?? additional.permitOpen,
    permitListen: primary.permitListen ?? additional.permitListen
  }
}

/**
 * Whether direct-tcpip may reach `host`:`port` (sshd's `open_match`: hosts compared literally, no lookup; `*`
 * matches any host or port).
 *
 * @example
 * ```ts
 * KeyOptions.permitsOpen(KeyOptions.parse(['permitopen="db:5432"']).restrictions, "db", 5432) // true
 * KeyOptions.permitsOpen(KeyOptions.parse(['permitopen="db:5432"']).restrictions, "db", 22)   // false
 * ```
 */
export const permitsOpen = (restrictions: Restrictions, host: string, port: number): boolean =>
  restrictions.permitOpen === undefined ||
  restrictions.permitOpen.some((p) => (p.port === "*" || p.port === port) && (p.host === "*" || p.host === host))

/**
 * Whether tcpip-forward may listen on `address`:`port` (sshd's `remote_open_match`: the address, lowercased,
 * against the permitted host as a wildcard pattern; `ssh -R` without an address sends "localhost").
 *
 * @example
 * ```ts
 * KeyOptions.permitsListen(KeyOptions.parse(['permitlisten="8080"']).restrictions, "localhost", 8080) // true
 * KeyOptions.permitsListen(KeyOptions.parse(['permitlisten="8080"']).restrictions, "localhost", 9090) // false
 * ```
 */
export const permitsListen = (restrictions: Restrictions, address: string, port: number): boolean =>
  restrictions.permitListen === undefined ||
  restrictions.permitListen.some((p) => (p.port === "*" || p.port === port) && matchWildcard(p.host, address.toLowerCase()))
