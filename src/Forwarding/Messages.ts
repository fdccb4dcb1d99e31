/**
 * The wire data of port, Unix-socket and X11 forwarding (RFC 4254 §6.3 and
 * §7, OpenSSH `PROTOCOL` §2.4): the type-specific part of the channel opens
 * `direct-tcpip`, `forwarded-tcpip`, `direct-streamlocal@openssh.com`,
 * `forwarded-streamlocal@openssh.com` and `x11`; the global requests that set
 * up and cancel remote listeners; and the `x11-req` channel request.
 *
 * Each value is plain data with an encoder and a decoder. Decoders throw a
 * `ProtocolError` reason on truncated or malformed data (a port above 65535,
 * a cookie that is not hexadecimal, trailing bytes); `Wire.attempt` turns
 * that into a value.
 *
 * @since 0.1.0
 */
import { ProtocolError } from "../SshError.ts"
import { Reader } from "../Wire/Reader.ts"
import { build } from "../Wire/Writer.ts"

/**
 * Channel types of forwarded connections.
 *
 * @example
 * ```ts
 * channelOpen(ChannelType.directTcpip, sender, window, maxPacket, encodeDirectTcpip(target))
 * ```
 * @category constants
 */
export const ChannelType = {
  directTcpip: "direct-tcpip",
  forwardedTcpip: "forwarded-tcpip",
  directStreamlocal: "direct-streamlocal@openssh.com",
  forwardedStreamlocal: "forwarded-streamlocal@openssh.com",
  x11: "x11"
} as const

/**
 * Names of the global requests that start and stop remote listeners, and of
 * the X11 channel request.
 *
 * @example
 * ```ts
 * globalRequest(RequestName.tcpipForward, true, encodeTcpipForward({ bindAddress: "localhost", bindPort: 0 }))
 * ```
 * @category constants
 */
export const RequestName = {
  tcpipForward: "tcpip-forward",
  cancelTcpipForward: "cancel-tcpip-forward",
  streamlocalForward: "streamlocal-forward@openssh.com",
  cancelStreamlocalForward: "cancel-streamlocal-forward@openssh.com",
  x11: "x11-req"
} as const

/** Largest TCP port. */
const MAX_PORT = 0xffff

// ---------------------------------------------------------------------------
// models
// ---------------------------------------------------------------------------

/**
 * `direct-tcpip`: connect to `host`:`port` from the receiving side (`ssh -L`,
 * `-D`, `-W`). The originator is where the forwarded connection came from.
 *
 * @category models
 */
export interface DirectTcpip {
  readonly host: string
  readonly port: number
  readonly originatorAddress: string
  readonly originatorPort: number
}

/**
 * `forwarded-tcpip`: a connection arrived on a listener set up by
 * `tcpip-forward` (`ssh -R`); `connectedAddress`:`connectedPort` name that
 * listener as it was requested.
 *
 * @category models
 */
export interface ForwardedTcpip {
  readonly connectedAddress: string
  readonly connectedPort: number
  readonly originatorAddress: string
  readonly originatorPort: number
}

/**
 * `direct-streamlocal@openssh.com`: connect to the Unix socket at `path` on
 * the receiving side.
 *
 * @category models
 */
export interface DirectStreamlocal {
  readonly path: string
}

/**
 * `forwarded-streamlocal@openssh.com`: a connection arrived on a Unix-socket
 * listener set up by `streamlocal-forward@openssh.com`; `path` names it.
 *
 * @category models
 */
export interface ForwardedStreamlocal {
  readonly path: string
}

/**
 * `x11`: a client connected to the forwarded X display on the server.
 *
 * @category models
 */
export interface X11Channel {
  readonly originatorAddress: string
  readonly originatorPort: number
}

/**
 * `tcpip-forward` and `cancel-tcpip-forward`: listen on (or stop listening
 * on) `bindAddress`:`bindPort` on the receiving side. RFC 4254 §7.1 gives
 * the address "" (all families), "0.0.0.0", "::", "localhost", "127.0.0.1"
 * and "::1" their usual meaning; port 0 asks the server to pick one.
 *
 * @category models
 */
export interface TcpipForward {
  readonly bindAddress: string
  readonly bindPort: number
}

/**
 * `streamlocal-forward@openssh.com` and
 * `cancel-streamlocal-forward@openssh.com`: listen on (or stop listening on)
 * the Unix socket at `path` on the receiving side.
 *
 * @category models
 */
export interface StreamlocalForward {
  readonly path: string
}

/**
 * `x11-req`: forward X11 connections of a session. `authCookie` is the
 * cookie in hexadecimal, as on the wire — normally a fake one that the
 * requesting side swaps for the real cookie (see `X11.rewriteSetup`).
 *
 * @category models
 */
export interface X11Request {
  /** Forward only the first X11 connection. */
  readonly singleConnection: boolean
  /** e.g. "MIT-MAGIC-COOKIE-1". */
  readonly authProtocol: string
  readonly authCookie: string
  readonly screen: number
}

/**
 * A forwarding channel open, told apart by its channel type.
 *
 * @category models
 */
export type ForwardingOpen =
  | ({ readonly _tag: "DirectTcpip" } & DirectTcpip)
  | ({ readonly _tag: "ForwardedTcpip" } & ForwardedTcpip)
  | ({ readonly _tag: "DirectStreamlocal" } & DirectStreamlocal)
  | ({ readonly _tag: "ForwardedStreamlocal" } & ForwardedStreamlocal)
  | ({ readonly _tag: "X11" } & X11Channel)

/**
 * A global request that starts or stops a remote listener, told apart by
 * its request name.
 *
 * @category models
 */
export type ForwardingRequest =
  | ({ readonly _tag: "TcpipForward" } & TcpipForward)
  | ({ readonly _tag: "CancelTcpipForward" } & TcpipForward)
  | ({ readonly _tag: "StreamlocalForward" } & StreamlocalForward)
  | ({ readonly _tag: "CancelStreamlocalForward" } & StreamlocalForward)

// ---------------------------------------------------------------------------
// shared field readers
// ---------------------------------------------------------------------------

const fail = (message: string): never => {
  throw new ProtocolError({ message })
}

const readPort = (r: Reader, what: string): number => {
  const port = r.uint32()
  if (port > MAX_PORT) fail(`${what} ${port} is out of range (0-${MAX_PORT})`)
  return port
}

const readHexCookie = (r: Reader): string => {
  const cookie = r.name("x11 authentication cookie")
  if (cookie.length === 0 || cookie.length % 2 !== 0 || !/^[0-9a-fA-F]+$/.test(cookie)) {
    fail("x11 authentication cookie is not a non-empty even-length hexadecimal string")
  }
  return cookie
}

// ---------------------------------------------------------------------------
// channel opens
// ---------------------------------------------------------------------------

/**
 * Encodes the data of a `direct-tcpip` channel open.
 *
 * @example
 * ```ts
 * encodeDirectTcpip({ host: "example.com", port: 80, originatorAddress: "127.0.0.1", originatorPort: 50000 })
 * ```
 * @category encoding
 */
export const encodeDirectTcpip = (open: DirectTcpip): Uint8Array =>
  build((w) => w.string(open.host).uint32(open.port).string(open.originatorAddress).uint32(open.originatorPort))

/**
 * Decodes the data of a `direct-tcpip` channel open.
 *
 * @example
 * ```ts
 * decodeDirectTcpip(message.data).host // "example.com"
 * ```
 * @category decoding
 */
export const decodeDirectTcpip = (data: Uint8Array): DirectTcpip => {
  const r = new Reader(data)
  const host = r.utf8("host to connect")
  const port = readPort(r, "port to connect")
  const originatorAddress = r.utf8("originator address")
  const originatorPort = readPort(r, "originator port")
  r.end("direct-tcpip")
  return { host, port, originatorAddress, originatorPort }
}

/**
 * Encodes the data of a `forwarded-tcpip` channel open.
 *
 * @example
 * ```ts
 * encodeForwardedTcpip({
 *   connectedAddress: "", connectedPort: 8080, originatorAddress: "192.0.2.7", originatorPort: 41000
 * })
 * ```
 * @category encoding
 */
export const encodeForwardedTcpip = (open: ForwardedTcpip): Uint8Array =>
  build((w) =>
    w.string(open.connectedAddress).uint32(open.connectedPort).string(open.originatorAddress).uint32(
      open.originatorPort
    )
  )

/**
 * Decodes the data of a `forwarded-tcpip` channel open.
 *
 * @example
 * ```ts
 * decodeForwardedTcpip(message.data).connectedPort // 8080
 * ```
 * @category decoding
 */
export const decodeForwardedTcpip = (data: Uint8Array): ForwardedTcpip => {
  const r = new Reader(data)
  const connectedAddress = r.utf8("connected address")
  const connectedPort = readPort(r, "connected port")
  const originatorAddress = r.utf8("originator address")
  const originatorPort = readPort(r, "originator port")
  r.end("forwarded-tcpip")
  return { connectedAddress, connectedPort, originatorAddress, originatorPort }
}

/**
 * Encodes the data of a `direct-streamlocal@openssh.com` channel open, with
 * its two reserved fields empty, as OpenSSH sends them.
 *
 * @example
 * ```ts
 * encodeDirectStreamlocal({ path: "/run/app.sock" })
 * ```
 * @category encoding
 */
export const encodeDirectStreamlocal = (open: DirectStreamlocal): Uint8Array =>
  build((w) => w.string(open.path).string("").uint32(0))

/**
 * Decodes the data of a `direct-streamlocal@openssh.com` channel open. The
 * reserved fields are ignored, and may be absent.
 *
 * @example
 * ```ts
 * decodeDirectStreamlocal(message.data).path // "/run/app.sock"
 * ```
 * @category decoding
 */
export const decodeDirectStreamlocal = (data: Uint8Array): DirectStreamlocal => {
  const r = new Reader(data)
  const path = r.utf8("socket path")
  if (r.remaining > 0) r.string("reserved string")
  if (r.remaining > 0) r.uint32()
  r.end("direct-streamlocal@openssh.com")
  return { path }
}

/**
 * Encodes the data of a `forwarded-streamlocal@openssh.com` channel open,
 * with its reserved field empty.
 *
 * @example
 * ```ts
 * encodeForwardedStreamlocal({ path: "/tmp/agent.sock" })
 * ```
 * @category encoding
 */
export const encodeForwardedStreamlocal = (open: ForwardedStreamlocal): Uint8Array =>
  build((w) => w.string(open.path).string(""))

/**
 * Decodes the data of a `forwarded-streamlocal@openssh.com` channel open.
 * The reserved field is ignored, and may be absent.
 *
 * @example
 * ```ts
 * decodeForwardedStreamlocal(message.data).path // "/tmp/agent.sock"
 * ```
 * @category decoding
 */
export const decodeForwardedStreamlocal = (data: Uint8Array): ForwardedStreamlocal => {
  const r = new Reader(data)
  const path = r.utf8("socket path")
  if (r.remaining > 0) r.string("reserved string")
  r.end("forwarded-streamlocal@openssh.com")
  return { path }
}

/**
 * Encodes the data of an `x11` channel open.
 *
 * @example
 * ```ts
 * encodeX11Channel({ originatorAddress: "127.0.0.1", originatorPort: 45022 })
 * ```
 * @category encoding
 */
export const encodeX11Channel = (open: X11Channel): Uint8Array =>
  build((w) => w.string(open.originatorAddress).uint32(open.originatorPort))

/**
 * Decodes the data of an `x11` channel open.
 *
 * @example
 * ```ts
 * decodeX11Channel(message.data).originatorAddress // "127.0.0.1"
 * ```
 * @category decoding
 */
export const decodeX11Channel = (data: Uint8Array): X11Channel => {
  const r = new Reader(data)
  const originatorAddress = r.utf8("originator address")
  const originatorPort = readPort(r, "originator port")
  r.end("x11")
  return { originatorAddress, originatorPort }
}

/**
 * Decodes the data of a forwarding channel open by its channel type;
 * `undefined` for a channel type that is not about forwarding (`session`,
 * `auth-agent@openssh.com`, ...).
 *
 * @example
 * ```ts
 * const open = decodeChannelOpen(message.channelType, message.data)
 * if (open?._tag === "DirectTcpip") console.log(open.host, open.port)
 * ```
 * @category decoding
 */
export const decodeChannelOpen = (channelType: string, data: Uint8Array): ForwardingOpen | undefined => {
  switch (channelType) {
    case ChannelType.directTcpip:
      return { _tag: "DirectTcpip", ...decodeDirectTcpip(data) }
    case ChannelType.forwardedTcpip:
      return { _tag: "ForwardedTcpip", ...decodeForwardedTcpip(data) }
    case ChannelType.directStreamlocal:
      return { _tag: "DirectStreamlocal", ...decodeDirectStreamlocal(data) }
    case ChannelType.forwardedStreamlocal:
      return { _tag: "ForwardedStreamlocal", ...decodeForwardedStreamlocal(data) }
    case ChannelType.x11:
      return { _tag: "X11", ...decodeX11Channel(data) }
    default:
      return undefined
  }
}

/**
 * The channel type and data of a forwarding channel open.
 *
 * @example
 * ```ts
 * const { channelType, data } = encodeChannelOpen({ _tag: "DirectStreamlocal", path: "/run/app.sock" })
 * ```
 * @category encoding
 */
export const encodeChannelOpen = (
  open: ForwardingOpen
): { readonly channelType: string; readonly data: Uint8Array } => {
  switch (open._tag) {
    case "DirectTcpip":
      return { channelType: ChannelType.directTcpip, data: encodeDirectTcpip(open) }
    case "ForwardedTcpip":
      return { channelType: ChannelType.forwardedTcpip, data: encodeForwardedTcpip(open) }
    case "DirectStreamlocal":
      return { channelType: ChannelType.directStreamlocal, data: encodeDirectStreamlocal(open) }
    case "ForwardedStreamlocal":
      return { channelType: ChannelType.forwardedStreamlocal, data: encodeForwardedStreamlocal(open) }
    case "X11":
      return { channelType: ChannelType.x11, data: encodeX11Channel(open) }
  }
}

// ---------------------------------------------------------------------------
// global requests
// ---------------------------------------------------------------------------

/**
 * Encodes the data of `tcpip-forward` or `cancel-tcpip-forward` (both carry
 * the same fields).
 *
 * @example
 * ```ts
 * globalRequest(RequestName.tcpipForward, true, encodeTcpipForward({ bindAddress: "localhost", bindPort: 8080 }))
 * ```
 * @category encoding
 */
export const encodeTcpipForward = (request: TcpipForward): Uint8Array =>
  build((w) => w.string(request.bindAddress).uint32(request.bindPort))

/**
 * Decodes the data of `tcpip-forward` or `cancel-tcpip-forward`.
 *
 * @example
 * ```ts
 * decodeTcpipForward(message.data).bindPort // 8080
 * ```
 * @category decoding
 */
export const decodeTcpipForward = (data: Uint8Array): TcpipForward => {
  const r = new Reader(data)
  const bindAddress = r.utf8("address to bind")
  const bindPort = readPort(r, "port to bind")
  r.end("tcpip-forward")
  return { bindAddress, bindPort }
}

/**
 * Encodes the data of the REQUEST_SUCCESS answering a `tcpip-forward`: the
 * port the server allocated when port 0 was asked, nothing otherwise.
 *
 * @example
 * ```ts
 * requestSuccess(encodeTcpipForwardReply({ bindAddress: "", bindPort: 0 }, 40123)) // carries 40123
 * requestSuccess(encodeTcpipForwardReply({ bindAddress: "", bindPort: 8080 }, 8080)) // carries nothing
 * ```
 * @category encoding
 */
export const encodeTcpipForwardReply = (request: TcpipForward, boundPort: number): Uint8Array =>
  request.bindPort === 0 ? build((w) => w.uint32(boundPort), 4) : new Uint8Array(0)

/**
 * The port a `tcpip-forward` listens on, from the data of its
 * REQUEST_SUCCESS: the allocated port when port 0 was asked (it must be
 * there, and not 0), else the port asked for (whatever data came along).
 *
 * @example
 * ```ts
 * decodeTcpipForwardReply(Uint8Array.of(0, 0, 0x9c, 0x7b), { bindAddress: "", bindPort: 0 }) // 40059
 * ```
 * @category decoding
 */
export const decodeTcpipForwardReply = (data: Uint8Array, request: TcpipForward): number => {
  if (request.bindPort !== 0) return request.bindPort
  const r = new Reader(data)
  const port = readPort(r, "allocated port")
  if (port === 0) fail("allocated port 0 in the reply to tcpip-forward")
  r.end("tcpip-forward reply")
  return port
}

/**
 * Encodes the data of `streamlocal-forward@openssh.com` or
 * `cancel-streamlocal-forward@openssh.com`.
 *
 * @example
 * ```ts
 * globalRequest(RequestName.streamlocalForward, true, encodeStreamlocalForward({ path: "/tmp/app.sock" }))
 * ```
 * @category encoding
 */
export const encodeStreamlocalForward = (request: StreamlocalForward): Uint8Array =>
  build((w) => w.string(request.path))

/**
 * Decodes the data of `streamlocal-forward@openssh.com` or
 * `cancel-streamlocal-forward@openssh.com`.
 *
 * @example
 * ```ts
 * decodeStreamlocalForward(message.data).path // "/tmp/app.sock"
 * ```
 * @category decoding
 */
export const decodeStreamlocalForward = (data: Uint8Array): StreamlocalForward => {
  const r = new Reader(data)
  const path = r.utf8("socket path")
  r.end("streamlocal-forward@openssh.com")
  return { path }
}

/**
 * Decodes the data of a forwarding global request by its name; `undefined`
 * for a request that is not about forwarding (`keepalive@openssh.com`,
 * `no-more-sessions@openssh.com`, ...).
 *
 * @example
 * ```ts
 * const request = decodeGlobalRequest(message.name, message.data)
 * if (request?._tag === "TcpipForward") listen(request.bindAddress, request.bindPort)
 * ```
 * @category decoding
 */
export const decodeGlobalRequest = (name: string, data: Uint8Array): ForwardingRequest | undefined => {
  switch (name) {
    case RequestName.tcpipForward:
      return { _tag: "TcpipForward", ...decodeTcpipForward(data) }
    case RequestName.cancelTcpipForward:
      return { _tag: "CancelTcpipForward", ...decodeTcpipForward(data) }
    case RequestName.streamlocalForward:
      return { _tag: "StreamlocalForward", ...decodeStreamlocalForward(data) }
    case RequestName.cancelStreamlocalForward:
      return { _tag: "CancelStreamlocalForward", ...decodeStreamlocalForward(data) }
    default:
      return undefined
  }
}

/**
 * The request name and data of a forwarding global request.
 *
 * @example
 * ```ts
 * const { name, data } = encodeGlobalRequest({ _tag: "CancelTcpipForward", bindAddress: "localhost", bindPort: 8080 })
 * globalRequest(name, true, data)
 * ```
 * @category encoding
 */
export const encodeGlobalRequest = (
  request: ForwardingRequest
): { readonly name: string; readonly data: Uint8Array } => {
  switch (request._tag) {
    case "TcpipForward":
      return { name: RequestName.tcpipForward, data: encodeTcpipForward(request) }
    case "CancelTcpipForward":
      return { name: RequestName.cancelTcpipForward, data: encodeTcpipForward(request) }
    case "StreamlocalForward":
      return { name: RequestName.streamlocalForward, data: encodeStreamlocalForward(request) }
    case "CancelStreamlocalForward":
      return { name: RequestName.cancelStreamlocalForward, data: encodeStreamlocalForward(request) }
  }
}

// ---------------------------------------------------------------------------
// channel request
// ---------------------------------------------------------------------------

/**
 * Encodes the data of an `x11-req` channel request.
 *
 * @example
 * ```ts
 * channelRequest(session, RequestName.x11, true, encodeX11Request({
 *   singleConnection: false, authProtocol: "MIT-MAGIC-COOKIE-1", authCookie: fake.hex, screen: 0
 * }))
 * ```
 * @category encoding
 */
export const encodeX11Request = (request: X11Request): Uint8Array =>
  build((w) =>
    w.boolean(request.singleConnection).string(request.authProtocol).string(request.authCookie).uint32(
      request.screen
    )
  )

/**
 * Decodes the data of an `x11-req` channel request. The protocol name must
 * be printable US-ASCII and the cookie hexadecimal (RFC 4254 §6.3.1).
 *
 * @example
 * ```ts
 * decodeX11Request(message.data).authProtocol // "MIT-MAGIC-COOKIE-1"
 * ```
 * @category decoding
 */
export const decodeX11Request = (data: Uint8Array): X11Request => {
  const r = new Reader(data)
  const singleConnection = r.boolean()
  const authProtocol = r.name("x11 authentication protocol")
  if (authProtocol.length === 0) fail("x11 authentication protocol is empty")
  const authCookie = readHexCookie(r)
  const screen = r.uint32()
  r.end("x11-req")
  return { singleConnection, authProtocol, authCookie, screen }
}
