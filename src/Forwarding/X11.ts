/**
 * The pure side of X11 forwarding (RFC 4254 §6.3): where a `DISPLAY` says
 * the X server is, the fake MIT-MAGIC-COOKIE-1 sent in `x11-req`, the real
 * cookie found in `xauth list` output, and the check of each forwarded
 * connection's setup packet against the fake cookie, which is then
 * rewritten with the real one (the X protocol's "Connection Setup").
 *
 * The requesting side never gives the real cookie to the server: X clients
 * there authenticate with the fake one, and only connections that do reach
 * the local X server, carrying the real cookie instead.
 *
 * @since 0.1.0
 */
import { equalConstantTime, fromHex, toHex } from "../internal/bytes.ts"
import { ConfigParseError, ProtocolError } from "../SshError.ts"

/**
 * TCP port of display 0; display n listens on 6000 + n.
 *
 * @category constants
 */
export const X11_BASE_PORT = 6000

/**
 * Directory of the X servers' Unix sockets: display n listens on `X<n>` there.
 *
 * @category constants
 */
export const X11_UNIX_DIRECTORY = "/tmp/.X11-unix"

/**
 * The authentication protocol of a 16-byte shared secret, the one OpenSSH forwards.
 *
 * @category constants
 */
export const MIT_MAGIC_COOKIE_1 = "MIT-MAGIC-COOKIE-1"

// ---------------------------------------------------------------------------
// models
// ---------------------------------------------------------------------------

/**
 * Where to reach an X server.
 *
 * @category models
 */
export type X11Endpoint =
  | { readonly _tag: "Unix"; readonly path: string }
  | { readonly _tag: "Tcp"; readonly host: string; readonly port: number }

/**
 * A parsed `DISPLAY`.
 *
 * @category models
 */
export interface Display {
  readonly displayNumber: number
  readonly screen: number
  readonly endpoint: X11Endpoint
}

/**
 * An X11 authentication protocol name and its data.
 *
 * @category models
 */
export interface X11Cookie {
  readonly protocol: string
  readonly data: Uint8Array
}

/**
 * An entry of `xauth list` output: display name, protocol, data in hex.
 *
 * @category models
 */
export interface XauthEntry {
  readonly display: string
  readonly protocol: string
  readonly hex: string
}

// ---------------------------------------------------------------------------
// DISPLAY
// ---------------------------------------------------------------------------

const unixPath = (displayNumber: number) => `${X11_UNIX_DIRECTORY}/X${displayNumber}`

const DISPLAY_NUMBER = /^(\d{1,5})(?:\.(\d{1,5}))?$/

/**
 * Parses a `DISPLAY` value, `[protocol/][host]:display[.screen]`:
 *
 * - `:0`, `:0.1`, `unix:0`, `unix/:0`, `host/unix:0` (the form xauth
 *   writes), and any value starting with ":" — the Unix socket
 *   `/tmp/.X11-unix/X<display>`;
 * - `localhost:10.0`, `tcp/host:0`, `[::1]:0` — TCP to host, port 6000 +
 *   display (`tcp/:0`: to localhost);
 * - a path, as launchd sets on macOS
 *   (`/private/tmp/com.apple.launchd.X/org.xquartz:0`) or a socket path
 *   itself (`/tmp/.X11-unix/X0`) — that socket, with a trailing `.screen`
 *   cut off.
 *
 * @example
 * ```ts
 * parseDisplay(":0.1")
 * // { displayNumber: 0, screen: 1, endpoint: { _tag: "Unix", path: "/tmp/.X11-unix/X0" } }
 * parseDisplay("localhost:10.0")
 * // { displayNumber: 10, screen: 0, endpoint: { _tag: "Tcp", host: "localhost", port: 6010 } }
 * ```
 * @throws ConfigParseError when malformed.
 * @category DISPLAY
 */
export const parseDisplay = (display: string): Display => {
  const bad = (problem: string) =>
    new ConfigParseError({ message: `bad DISPLAY ${JSON.stringify(display)}: ${problem}` })
  if (display.startsWith("/") && !/:\d+(\.\d+)?$/.test(display)) {
    // a socket path itself: its display number, if any, is in its name
    const socketNumber = /\/X(\d{1,5})$/.exec(display)
    const displayNumber = socketNumber === null ? 0 : Number(socketNumber[1])
    return { displayNumber, screen: 0, endpoint: { _tag: "Unix", path: display } }
  }
  const colon = display.lastIndexOf(":")
  if (colon < 0) throw bad('no ":display"')
  const match = DISPLAY_NUMBER.exec(display.slice(colon + 1))
  if (match === null) throw bad("the display number is not [0-9]+ or [0-9]+.[0-9]+")
  const displayNumber = Number(match[1])
  const screen = match[2] === undefined ? 0 : Number(match[2])
  const at = (endpoint: X11Endpoint): Display => ({ displayNumber, screen, endpoint })

  if (display.startsWith("/")) {
    return at({ _tag: "Unix", path: match[2] === undefined ? display : display.slice(0, display.lastIndexOf(".")) })
  }
  if (display.startsWith(":")) return at({ _tag: "Unix", path: unixPath(displayNumber) })

  let host = display.slice(0, colon)
  const slash = host.indexOf("/")
  if (slash >= 0) {
    const protocol = host.slice(0, slash).toLowerCase()
    const rest = host.slice(slash + 1)
    if (rest === "unix" || protocol === "unix" || protocol === "local") {
      return at({ _tag: "Unix", path: unixPath(displayNumber) })
    }
    if (protocol !== "tcp" && protocol !== "inet" && protocol !== "inet6") throw bad(`unknown protocol "${protocol}"`)
    // an explicit TCP protocol without a host means this host, over TCP
    host = rest === "" ? "localhost" : rest
  } else if (host === "unix") {
    return at({ _tag: "Unix", path: unixPath(displayNumber) })
  }
  if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1)
  if (host === "" || /[[\]/\s]/.test(host)) throw bad(`bad host "${host}"`)
  if (displayNumber > 0xffff - X11_BASE_PORT) throw bad(`display ${displayNumber} is beyond the last TCP port`)
  return at({ _tag: "Tcp", host, port: X11_BASE_PORT + displayNumber })
}

// ---------------------------------------------------------------------------
// cookies
// ---------------------------------------------------------------------------

/**
 * A fake MIT-MAGIC-COOKIE-1 for `x11-req`: 16 random bytes (or the ones
 * given) and their hex, the form the request carries.
 *
 * @example
 * ```ts
 * const fake = fakeCookie()
 * encodeX11Request({ singleConnection: false, authProtocol: fake.protocol, authCookie: fake.hex, screen: 0 })
 * ```
 * @category cookies
 */
export const fakeCookie = (
  random: Uint8Array = crypto.getRandomValues(new Uint8Array(16))
): X11Cookie & { readonly hex: string } => ({ protocol: MIT_MAGIC_COOKIE_1, data: random, hex: toHex(random) })

/**
 * The name to ask `xauth list` about for a `DISPLAY`: a `localhost:n`
 * display's cookie is filed under the local form `unix:n`, as OpenSSH's
 * client asks for it.
 *
 * @example
 * ```ts
 * xauthDisplayName("localhost:10.0") // "unix:10.0"
 * xauthDisplayName(":0")             // ":0"
 * ```
 * @category cookies
 */
export const xauthDisplayName = (display: string): string =>
  display.startsWith("localhost:") ? `unix:${display.slice("localhost:".length)}` : display

/**
 * The entries of `xauth list` output, one per line: display name,
 * protocol, hexadecimal data, separated by blanks. Lines that are not
 * such an entry are skipped.
 *
 * @example
 * ```ts
 * parseXauthList("myhost/unix:0  MIT-MAGIC-COOKIE-1  0123456789abcdef0123456789abcdef\n")
 * // [{ display: "myhost/unix:0", protocol: "MIT-MAGIC-COOKIE-1", hex: "0123456789abcdef0123456789abcdef" }]
 * ```
 * @category cookies
 */
export const parseXauthList = (output: string): Array<XauthEntry> => {
  const entries: Array<XauthEntry> = []
  for (const line of output.split("\n")) {
    const fields = line.trim().split(/\s+/)
    if (fields.length !== 3) continue
    const [display, protocol, hex] = fields as [string, string, string]
    if (!display.includes(":") || hex.length === 0 || hex.length % 2 !== 0 || !/^[0-9a-fA-F]+$/.test(hex)) continue
    entries.push({ display, protocol, hex: hex.toLowerCase() })
  }
  return entries
}

/**
 * The real cookie for a display among `xauth list` entries: the first of
 * `protocol` whose display number is the display's (`xauth list <display>`
 * has already picked the host), or `undefined`.
 *
 * @example
 * ```ts
 * const real = findCookie(parseXauthList(output), parseDisplay(":0"))
 * ```
 * @category cookies
 */
export const findCookie = (
  entries: ReadonlyArray<XauthEntry>,
  display: Display,
  protocol: string = MIT_MAGIC_COOKIE_1
): X11Cookie | undefined => {
  const entry = entries.find((e) => e.protocol === protocol && entryDisplayNumber(e.display) === display.displayNumber)
  return entry === undefined ? undefined : { protocol, data: fromHex(entry.hex) }
}

const entryDisplayNumber = (display: string): number | undefined => {
  const match = DISPLAY_NUMBER.exec(display.slice(display.lastIndexOf(":") + 1))
  return match === null ? undefined : Number(match[1])
}

/**
 * The `DISPLAY` a server gives a session whose X11 proxy listens on
 * loopback port 6000 + `displayNumber`.
 *
 * @example
 * ```ts
 * proxyDisplay(10, 0) // "localhost:10.0"
 * ```
 * @category cookies
 */
export const proxyDisplay = (displayNumber: number, screen: number): string => `localhost:${displayNumber}.${screen}`

/**
 * What a server writes to `xauth -q -` to file a session's cookie (from
 * its `x11-req`) under the proxy display: remove, then add, the display's
 * local name `unix:n.screen`, as sshd does. The protocol and cookie come
 * from the peer, so they are checked first: a protocol of letters, digits
 * and `.:/_-`, a hex cookie — nothing that could add an xauth command.
 *
 * @example
 * ```ts
 * xauthAddInput(10, 0, "MIT-MAGIC-COOKIE-1", request.authCookie)
 * // "remove unix:10.0\nadd unix:10.0 MIT-MAGIC-COOKIE-1 <cookie>\n"
 * ```
 * @throws ProtocolError when the protocol or the cookie holds anything else.
 * @category cookies
 */
export const xauthAddInput = (displayNumber: number, screen: number, protocol: string, cookieHex: string): string => {
  if (!/^[A-Za-z0-9._:/-]+$/.test(protocol)) {
    throw new ProtocolError({ message: `x11 authentication protocol ${JSON.stringify(protocol)} is not a valid name` })
  }
  if (!/^(?:[0-9a-fA-F]{2})+$/.test(cookieHex)) {
    throw new ProtocolError({ message: "x11 authentication cookie is not hexadecimal" })
  }
  const display = `unix:${displayNumber}.${screen}`
  return `remove ${display}\nadd ${display} ${protocol} ${cookieHex}\n`
}

// ---------------------------------------------------------------------------
// connection setup
// ---------------------------------------------------------------------------

/**
 * What the check of a forwarded connection's first bytes found:
 *
 * - `NeedMore`: fewer than `needed` bytes are in; wait for them (at most the
 *   fixed 12 bytes plus the fake cookie's padded fields, so it is bounded);
 * - `Accept`: the setup packet carried the fake cookie; send `bytes` to the
 *   X server — the packet rewritten with the real cookie, then whatever
 *   followed it;
 * - `Reject`: close the channel; `reason` says why.
 *
 * @category connection setup
 */
export type SetupCheck =
  | { readonly _tag: "NeedMore"; readonly needed: number }
  | { readonly _tag: "Accept"; readonly bytes: Uint8Array }
  | { readonly _tag: "Reject"; readonly reason: string }

const SETUP_HEADER = 12
const BIG_ENDIAN = 0x42 // "B"
const LITTLE_ENDIAN = 0x6c // "l"

const pad4 = (n: number) => (n + 3) & ~3

/**
 * Checks the bytes an X client sent first on a forwarded connection — the
 * setup packet: byte order ("B" or "l"), unused, protocol major and minor
 * version, authorization-protocol-name length n, -data length d, unused,
 * the name padded to 4, the data padded to 4 — against the fake cookie, and
 * rewrites it with the real one. The comparison of the data is constant
 * time. Feed it everything received so far until it stops answering
 * `NeedMore`.
 *
 * @example
 * ```ts
 * const check = rewriteSetup(received, fake, real)
 * if (check._tag === "Accept") writeToXServer(check.bytes)
 * ```
 * @category connection setup
 */
export const rewriteSetup = (received: Uint8Array, fake: X11Cookie, real: X11Cookie): SetupCheck => {
  if (received.length === 0) return { _tag: "NeedMore", needed: SETUP_HEADER }
  const order = received[0]
  if (order !== BIG_ENDIAN && order !== LITTLE_ENDIAN) {
    return { _tag: "Reject", reason: `bad byte order 0x${order!.toString(16).padStart(2, "0")}` }
  }
  if (received.length < SETUP_HEADER) return { _tag: "NeedMore", needed: SETUP_HEADER }
  const bigEndian = order === BIG_ENDIAN
  const card16 = (at: number) =>
    bigEndian ? (received[at]! << 8) | received[at + 1]! : received[at]! | (received[at + 1]! << 8)
  const major = card16(2)
  if (major !== 11) return { _tag: "Reject", reason: `X protocol version ${major} is not 11` }
  const nameLength = card16(6)
  const dataLength = card16(8)
  const fakeName = latin1Bytes(fake.protocol)
  if (nameLength !== fakeName.length || dataLength !== fake.data.length) {
    return { _tag: "Reject", reason: "authorization protocol or data length differs from the fake cookie's" }
  }
  const dataAt = SETUP_HEADER + pad4(nameLength)
  const end = dataAt + pad4(dataLength)
  if (received.length < end) return { _tag: "NeedMore", needed: end }
  const name = received.subarray(SETUP_HEADER, SETUP_HEADER + nameLength)
  if (!equalConstantTime(name, fakeName)) {
    return { _tag: "Reject", reason: "authorization protocol differs from the fake cookie's" }
  }
  if (!equalConstantTime(received.subarray(dataAt, dataAt + dataLength), fake.data)) {
    return { _tag: "Reject", reason: "authorization data does not match the fake cookie" }
  }
  return { _tag: "Accept", bytes: setupWith(received.subarray(0, SETUP_HEADER), real, received.subarray(end)) }
}

/** A setup packet with this header's byte order and versions, carrying `cookie`, then `rest`. */
const setupWith = (header: Uint8Array, cookie: X11Cookie, rest: Uint8Array): Uint8Array => {
  const name = latin1Bytes(cookie.protocol)
  const dataAt = SETUP_HEADER + pad4(name.length)
  const end = dataAt + pad4(cookie.data.length)
  const out = new Uint8Array(end + rest.length)
  out.set(header)
  const putCard16 = (at: number, n: number) => {
    const [hi, lo] = [(n >> 8) & 0xff, n & 0xff]
    out[at] = header[0] === BIG_ENDIAN ? hi : lo
    out[at + 1] = header[0] === BIG_ENDIAN ? lo : hi
  }
  putCard16(6, name.length)
  putCard16(8, cookie.data.length)
  out.set(name, SETUP_HEADER)
  out.set(cookie.data, dataAt)
  out.set(rest, end)
  return out
}

const latin1Bytes = (text: string): Uint8Array => Uint8Array.from(text, (c) => c.charCodeAt(0) & 0xff)
