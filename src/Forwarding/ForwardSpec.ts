/**
 * OpenSSH's forwarding specifications, as `ssh -L`, `-R`, `-D` and `-W` and
 * the `LocalForward`, `RemoteForward` and `DynamicForward` keywords of
 * ssh_config(5) write them:
 *
 * ```
 * -L [bind_address:]port:host:hostport    -R [bind_address:]port:host:hostport
 * -L [bind_address:]port:remote_socket    -R [bind_address:]port:local_socket
 * -L local_socket:host:hostport           -R remote_socket:host:hostport
 * -L local_socket:remote_socket           -R remote_socket:local_socket
 * -D [bind_address:]port                  -R [bind_address:]port   (SOCKS on the remote listener)
 * -W host:port                            -W socket_path
 * ```
 *
 * Fields are separated by ":". A field in square brackets is taken
 * literally (that is how an IPv6 address is written: `[::1]:8080:[fe80::1]:80`);
 * elsewhere a backslash takes the next character literally. A field holding
 * a "/" is a Unix socket path. Ports are decimal, 0–65535 (OpenSSH also
 * looks up service names such as "http"; we do not).
 *
 * The bind address is kept as written; `localBindAddress` and
 * `remoteBindAddress` say what it means. With none, a local listener binds
 * to loopback unless GatewayPorts is on, and a remote one asks for
 * "localhost"; "*" or the empty string (`:8080:host:80`) mean every
 * interface (for a remote listener the server grants that only when its
 * own GatewayPorts allows it); "localhost" means loopback only.
 *
 * Bad input throws a `ConfigParseError` reason naming the problem. We are
 * stricter than OpenSSH in a few places, each a likely typo there: a
 * trailing ":" (OpenSSH ignores it), an empty destination host, a "/" in a
 * host name, and service names for ports.
 *
 * @since 0.1.0
 */
import { ConfigParseError } from "../SshError.ts"

// ---------------------------------------------------------------------------
// models
// ---------------------------------------------------------------------------

/**
 * A TCP listener: `host` is the bind address as written (absent: the
 * default, see `localBindAddress`/`remoteBindAddress`); port 0 asks a remote
 * server to pick one.
 *
 * @category models
 */
export interface TcpListen {
  readonly host?: string | undefined
  readonly port: number
}

/**
 * A host and port to connect to.
 *
 * @category models
 */
export interface HostPort {
  readonly host: string
  readonly port: number
}

/**
 * A Unix-domain socket, to listen on or connect to.
 *
 * @category models
 */
export interface UnixSocket {
  readonly path: string
}

/** @category models */
export type Listen = TcpListen | UnixSocket

/** @category models */
export type Target = HostPort | UnixSocket

/**
 * A forwarding with a fixed destination (`-L`, and `-R` with a target).
 *
 * @category models
 */
export interface Forward {
  readonly listen: Listen
  readonly connect: Target
}

/**
 * A forwarding whose destination each connection names with SOCKS (`-D`,
 * and `-R` without a target).
 *
 * @category models
 */
export interface DynamicForward {
  readonly listen: Listen
}

/**
 * What `-R` specifies: a fixed destination, or none (SOCKS).
 *
 * @category models
 */
export interface RemoteForward {
  readonly listen: Listen
  readonly connect?: Target | undefined
}

/**
 * Where a listener binds: every interface, loopback only, or one address.
 *
 * @category models
 */
export type ListenAddress =
  | { readonly _tag: "AllInterfaces" }
  | { readonly _tag: "Loopback" }
  | { readonly _tag: "Address"; readonly address: string }

// ---------------------------------------------------------------------------
// guards
// ---------------------------------------------------------------------------

/**
 * Whether an endpoint is a Unix socket rather than TCP.
 *
 * @example
 * ```ts
 * ForwardSpec.isUnixSocket(ForwardSpec.parseLocalForward("/tmp/s:host:80").listen) // true
 * ```
 * @category guards
 */
export const isUnixSocket = (endpoint: Listen | Target): endpoint is UnixSocket => "path" in endpoint

// ---------------------------------------------------------------------------
// limits
// ---------------------------------------------------------------------------

/** Longest host name (NI_MAXHOST is 1025 with its NUL). */
const MAX_HOST_LENGTH = 1024
/** Longest socket path (sockaddr_un's sun_path holds 108 bytes on Linux, with its NUL). */
const MAX_PATH_LENGTH = 107
const MAX_PORT = 65535

// ---------------------------------------------------------------------------
// fields
// ---------------------------------------------------------------------------

interface Field {
  readonly text: string
  readonly isPath: boolean
}

const invalid = (spec: string, problem: string): ConfigParseError =>
  new ConfigParseError({ message: `bad forwarding specification ${JSON.stringify(spec)}: ${problem}` })

/** Splits a specification into its ":"-separated fields (brackets literal, backslash escapes). */
const fieldsOf = (spec: string): Array<Field> => {
  const text = spec.trim()
  if (text === "") throw invalid(spec, "it is empty")
  const fields: Array<Field> = []
  let i = 0
  while (true) {
    if (fields.length === 4) throw invalid(spec, "more than 4 fields")
    let value = ""
    if (text[i] === "[") {
      const close = text.indexOf("]", i + 1)
      if (close < 0) throw invalid(spec, `unbalanced "[" at offset ${i}`)
      value = text.slice(i + 1, close)
      i = close + 1
      if (i < text.length && text[i] !== ":") throw invalid(spec, `"]" at offset ${close} is not the end of a field`)
    } else {
      for (; i < text.length && text[i] !== ":"; i++) {
        if (text[i] === "\\") {
          i++
          if (i === text.length) throw invalid(spec, "it ends with a backslash")
        }
        value += text[i]
      }
    }
    fields.push({ text: value, isPath: value.includes("/") })
    if (i === text.length) return fields
    i++ // the ":"
    if (i === text.length) throw invalid(spec, "it ends with \":\"")
  }
}

const port = (spec: string, field: Field, what: string): number => {
  if (!/^\d{1,5}$/.test(field.text)) throw invalid(spec, `${what} ${JSON.stringify(field.text)} is not a number`)
  const n = Number(field.text)
  if (n > MAX_PORT) throw invalid(spec, `${what} ${n} is out of range (0-${MAX_PORT})`)
  return n
}

const host = (spec: string, field: Field, what: string): string => {
  if (field.isPath) throw invalid(spec, `${what} ${JSON.stringify(field.text)} contains "/"`)
  if (field.text.length > MAX_HOST_LENGTH) throw invalid(spec, `${what} is longer than ${MAX_HOST_LENGTH} characters`)
  return field.text
}

const connectHost = (spec: string, field: Field): string => {
  const name = host(spec, field, "host")
  if (name === "") throw invalid(spec, "the host to connect to is empty")
  return name
}

const connectPort = (spec: string, field: Field): number => {
  const n = port(spec, field, "host port")
  if (n === 0) throw invalid(spec, "the port to connect to is 0")
  return n
}

const socket = (spec: string, field: Field): UnixSocket => {
  if (field.text.length > MAX_PATH_LENGTH) throw invalid(spec, `socket path is longer than ${MAX_PATH_LENGTH} bytes`)
  return { path: field.text }
}

const hostPort = (spec: string, hostField: Field, portField: Field): HostPort => ({
  host: connectHost(spec, hostField),
  port: connectPort(spec, portField)
})

/** The listener named by its fields: a path, `port`, or `bind_address:port`. */
const listenerOf = (spec: string, fields: ReadonlyArray<Field>, hasBindAddress: boolean): Listen => {
  const first = fields[0]!
  if (first.isPath) return socket(spec, first)
  if (hasBindAddress) return { host: host(spec, first, "bind address"), port: port(spec, fields[1]!, "port") }
  return { port: port(spec, first, "port") }
}

/** Everything but -W: the listener and, when given, the destination. */
const parseGeneral = (spec: string, fields: ReadonlyArray<Field>): RemoteForward => {
  const [a, b, c, d] = fields
  switch (fields.length) {
    case 1:
      return { listen: listenerOf(spec, fields, false) }
    case 2:
      if (b!.isPath) return { listen: listenerOf(spec, [a!], false), connect: socket(spec, b!) }
      if (a!.isPath) throw invalid(spec, "a socket path cannot be followed by a port")
      return { listen: listenerOf(spec, fields, true) }
    case 3:
      if (a!.isPath) return { listen: socket(spec, a!), connect: hostPort(spec, b!, c!) }
      if (c!.isPath) return { listen: listenerOf(spec, [a!, b!], true), connect: socket(spec, c!) }
      return { listen: listenerOf(spec, [a!], false), connect: hostPort(spec, b!, c!) }
    default:
      if (a!.isPath) throw invalid(spec, "a socket path cannot be followed by a port and a destination")
      return { listen: listenerOf(spec, [a!, b!], true), connect: hostPort(spec, c!, d!) }
  }
}

// ---------------------------------------------------------------------------
// parsing
// ---------------------------------------------------------------------------

/**
 * Parses a local forwarding (`ssh -L`, `LocalForward`): a listener on this
 * side, a destination reached from the server. Port 0 is refused: a local
 * listener must name its port.
 *
 * @example
 * ```ts
 * ForwardSpec.parseLocalForward("8080:localhost:80")
 * // { listen: { port: 8080 }, connect: { host: "localhost", port: 80 } }
 * ForwardSpec.parseLocalForward("[::1]:8080:[fe80::1]:80")
 * // { listen: { host: "::1", port: 8080 }, connect: { host: "fe80::1", port: 80 } }
 * ForwardSpec.parseLocalForward("/tmp/db.sock:/run/postgresql/.s.PGSQL.5432")
 * ```
 * @throws ConfigParseError when malformed.
 * @category parsing
 */
export const parseLocalForward = (spec: string): Forward => {
  const fields = fieldsOf(spec)
  const noDestination = () => invalid(spec, "no destination (host:hostport or a socket path)")
  if (fields.length < 3 && !fields.some((f) => f.isPath)) throw noDestination()
  const forward = parseGeneral(spec, fields)
  if (forward.connect === undefined) throw noDestination()
  if (!isUnixSocket(forward.listen) && forward.listen.port === 0) throw invalid(spec, "the local port is 0")
  return { listen: forward.listen, connect: forward.connect }
}

/**
 * Parses a remote forwarding (`ssh -R`, `RemoteForward`): a listener on the
 * server, a destination reached from this side — or none, and this side
 * answers SOCKS on it. Port 0 asks the server to pick the port.
 *
 * @example
 * ```ts
 * ForwardSpec.parseRemoteForward("0:localhost:22")   // { listen: { port: 0 }, connect: { host: "localhost", port: 22 } }
 * ForwardSpec.parseRemoteForward("*:1080")           // { listen: { host: "*", port: 1080 } }  (SOCKS)
 * ```
 * @throws ConfigParseError when malformed.
 * @category parsing
 */
export const parseRemoteForward = (spec: string): RemoteForward => parseGeneral(spec, fieldsOf(spec))

/**
 * Parses a dynamic forwarding (`ssh -D`, `DynamicForward`):
 * `[bind_address:]port`, or a socket path. Port 0 is refused.
 *
 * @example
 * ```ts
 * ForwardSpec.parseDynamicForward("1080")             // { listen: { port: 1080 } }
 * ForwardSpec.parseDynamicForward("localhost:1080")   // { listen: { host: "localhost", port: 1080 } }
 * ```
 * @throws ConfigParseError when malformed.
 * @category parsing
 */
export const parseDynamicForward = (spec: string): DynamicForward => {
  const fields = fieldsOf(spec)
  if (fields.length > 2) throw invalid(spec, "a dynamic forwarding is only [bind_address:]port")
  const forward = parseGeneral(spec, fields)
  if (forward.connect !== undefined) throw invalid(spec, "a dynamic forwarding has no destination")
  if (!isUnixSocket(forward.listen) && forward.listen.port === 0) throw invalid(spec, "the local port is 0")
  return { listen: forward.listen }
}

/**
 * Parses the destination of `ssh -W`: `host:port`, or a socket path.
 *
 * @example
 * ```ts
 * ForwardSpec.parseStdioForward("db.internal:5432")  // { host: "db.internal", port: 5432 }
 * ForwardSpec.parseStdioForward("[2001:db8::7]:22")  // { host: "2001:db8::7", port: 22 }
 * ```
 * @throws ConfigParseError when malformed.
 * @category parsing
 */
export const parseStdioForward = (spec: string): Target => {
  const fields = fieldsOf(spec)
  if (fields.length === 1 && fields[0]!.isPath) return socket(spec, fields[0]!)
  if (fields.length !== 2) throw invalid(spec, "expected host:port")
  return hostPort(spec, fields[0]!, fields[1]!)
}

/**
 * Parses the arguments of an ssh_config forwarding keyword, split as the
 * configuration line was: `LocalForward` takes a listener and a
 * destination, `RemoteForward` one or both, `DynamicForward` a listener.
 *
 * @example
 * ```ts
 * ForwardSpec.parseForwardOption("LocalForward", ["8080", "localhost:80"])
 * ForwardSpec.parseForwardOption("RemoteForward", ["[::]:2222"])   // SOCKS on the server's port 2222
 * ```
 * @throws ConfigParseError when malformed, or for the wrong number of arguments.
 * @category parsing
 */
export const parseForwardOption = (
  keyword: "LocalForward" | "RemoteForward" | "DynamicForward",
  args: ReadonlyArray<string>
): RemoteForward => {
  const usage = (expected: string) =>
    new ConfigParseError({ message: `${keyword} takes ${expected}, got ${args.length} argument(s)` })
  switch (keyword) {
    case "LocalForward":
      if (args.length !== 2) throw usage("a listener and a destination")
      return parseLocalForward(`${args[0]}:${args[1]}`)
    case "RemoteForward":
      if (args.length !== 1 && args.length !== 2) throw usage("a listener and an optional destination")
      return args.length === 1 ? parseDynamicRemote(args[0]!) : parseRemoteForward(`${args[0]}:${args[1]}`)
    case "DynamicForward":
      if (args.length !== 1) throw usage("a listener")
      return parseDynamicForward(args[0]!)
  }
}

const parseDynamicRemote = (spec: string): RemoteForward => {
  const fields = fieldsOf(spec)
  if (fields.length > 2) throw invalid(spec, "a listener is [bind_address:]port or a socket path")
  const forward = parseGeneral(spec, fields)
  if (forward.connect !== undefined) throw invalid(spec, "a listener is [bind_address:]port or a socket path")
  return forward
}

/**
 * Parses `host:port`, `[host]:port` or `host/port` — the "/" form is the one
 * OpenSSH accepts where a port follows an IPv6 address without brackets
 * (`PermitOpen`, `PermitListen`, cancelling with `-KR`), not in forwarding
 * specifications, where "/" marks a socket path.
 *
 * @example
 * ```ts
 * ForwardSpec.parseHostPort("example.com:443")  // { host: "example.com", port: 443 }
 * ForwardSpec.parseHostPort("2001:db8::1/22")   // { host: "2001:db8::1", port: 22 }
 * ```
 * @throws ConfigParseError when malformed.
 * @category parsing
 */
export const parseHostPort = (text: string): HostPort => {
  const bad = (problem: string) =>
    new ConfigParseError({ message: `bad host and port ${JSON.stringify(text)}: ${problem}` })
  let hostText: string
  let portText: string
  if (text.startsWith("[")) {
    const close = text.indexOf("]")
    if (close < 0) throw bad('unbalanced "["')
    const delimiter = text[close + 1]
    if (delimiter !== ":" && delimiter !== "/") throw bad('"]" must be followed by ":" or "/" and a port')
    hostText = text.slice(1, close)
    portText = text.slice(close + 2)
  } else {
    const slash = text.indexOf("/")
    const at = slash >= 0 ? slash : text.indexOf(":")
    if (at < 0) throw bad("no port")
    if (slash < 0 && text.indexOf(":", at + 1) >= 0) throw bad("an IPv6 address needs brackets or \"/port\"")
    hostText = text.slice(0, at)
    portText = text.slice(at + 1)
  }
  if (hostText === "") throw bad("the host is empty")
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > MAX_PORT) {
    throw bad(`port ${JSON.stringify(portText)} is not 0-65535`)
  }
  return { host: hostText, port: Number(portText) }
}

// ---------------------------------------------------------------------------
// bind addresses
// ---------------------------------------------------------------------------

/**
 * Where a listener on this side binds (`-L`, `-D`): no bind address means
 * loopback, or every interface when GatewayPorts is on; "" and "*" every
 * interface; "localhost" loopback; anything else that address.
 *
 * @example
 * ```ts
 * ForwardSpec.localBindAddress(undefined, false) // { _tag: "Loopback" }
 * ForwardSpec.localBindAddress("*", false)       // { _tag: "AllInterfaces" }
 * ```
 * @category bind addresses
 */
export const localBindAddress = (host: string | undefined, gatewayPorts: boolean): ListenAddress => {
  if (host === undefined) return gatewayPorts ? { _tag: "AllInterfaces" } : { _tag: "Loopback" }
  if (host === "" || host === "*") return { _tag: "AllInterfaces" }
  if (host === "localhost") return { _tag: "Loopback" }
  return { _tag: "Address", address: host }
}

/**
 * The "address to bind" to send in `tcpip-forward` for a remote listener
 * (`-R`): no bind address asks for "localhost"; "" and "*" ask for every
 * interface (""); anything else is sent as written. The server decides
 * with its own GatewayPorts whether to honour it.
 *
 * @example
 * ```ts
 * ForwardSpec.remoteBindAddress(undefined) // "localhost"
 * ForwardSpec.remoteBindAddress("*")       // ""
 * ```
 * @category bind addresses
 */
export const remoteBindAddress = (host: string | undefined): string =>
  host === undefined ? "localhost" : host === "*" ? "" : host

// ---------------------------------------------------------------------------
// formatting
// ---------------------------------------------------------------------------

/**
 * Writes a forwarding back in the syntax the parsers read (brackets around
 * hosts with ":", backslashes before other special characters).
 *
 * @example
 * ```ts
 * ForwardSpec.formatForward({ listen: { host: "::1", port: 8080 }, connect: { host: "db", port: 5432 } })
 * // "[::1]:8080:db:5432"
 * ```
 * @category formatting
 */
export const formatForward = (forward: RemoteForward): string => {
  const listen = isUnixSocket(forward.listen)
    ? formatField(forward.listen.path)
    : forward.listen.host === undefined
    ? `${forward.listen.port}`
    : `${formatField(forward.listen.host)}:${forward.listen.port}`
  if (forward.connect === undefined) return listen
  const connect = isUnixSocket(forward.connect)
    ? formatField(forward.connect.path)
    : `${formatField(forward.connect.host)}:${forward.connect.port}`
  return `${listen}:${connect}`
}

const formatField = (text: string): string =>
  text.includes(":") && !text.includes("]") ? `[${text}]` : text.replace(/^\[|[\\:]/g, (c) => `\\${c}`)
