/**
 * The server side of a SOCKS handshake, as `ssh -D` speaks it: SOCKS4
 * CONNECT, SOCKS4a (a domain name instead of an address) and SOCKS5 (RFC
 * 1928) with the "no authentication" method and CONNECT to an IPv4, IPv6 or
 * domain-name destination.
 *
 * The parser is incremental and pure: `feed` takes the handshake so far and
 * the next chunk, in whatever pieces the socket delivers, and answers
 * `NeedMore` (with the next handshake state), `Connect` (where to, plus the
 * bytes the client sent after its request) or `Refuse`. Each step carries
 * the bytes to write to the client now — the SOCKS5 method choice, or the
 * refusal. After the connect attempt, `connectSucceeded`/`connectFailed`
 * give the final reply. A hostile client cannot make it allocate or wait
 * without limit: a handshake longer than `MAX_HANDSHAKE_BYTES` is refused,
 * and nothing it sends can make it throw.
 *
 * @example
 * ```ts
 * const negotiate = (
 *   chunks: Iterable<Uint8Array>,
 *   write: (bytes: Uint8Array) => void,
 *   connect: (host: string, port: number, leftover: Uint8Array) => void
 * ) => {
 *   let handshake = Socks.start
 *   for (const chunk of chunks) {
 *     const step = Socks.feed(handshake, chunk)
 *     write(step.reply)
 *     if (step._tag === "NeedMore") { handshake = step.handshake; continue }
 *     if (step._tag === "Connect") connect(step.request.host, step.request.port, step.leftover)
 *     break
 *   }
 * }
 * ```
 * @since 0.1.0
 */
import * as IpAddress from "../internal/ipAddress.ts"

/**
 * Most bytes a handshake may take before it is refused. The largest valid
 * SOCKS5 greeting and request together take 519 bytes; SOCKS4 is only
 * bounded by its NUL-terminated user id and host name.
 *
 * @category constants
 */
export const MAX_HANDSHAKE_BYTES = 600

/**
 * SOCKS5 reply codes (RFC 1928 §6).
 *
 * @example
 * ```ts
 * const step = Socks.feed(Socks.start, Uint8Array.of(4, 1, 0, 80, 192, 0, 2, 7, 0))
 * if (step._tag === "Connect") Socks.connectFailed(step.request, Socks.Socks5Reply.connectionRefused)
 * ```
 * @category constants
 */
export const Socks5Reply = {
  succeeded: 0,
  generalFailure: 1,
  notAllowed: 2,
  networkUnreachable: 3,
  hostUnreachable: 4,
  connectionRefused: 5,
  ttlExpired: 6,
  commandNotSupported: 7,
  addressTypeNotSupported: 8
} as const

/**
 * SOCKS4 reply codes: 90 granted, 91 rejected or failed (92 and 93 are
 * about identd, which we never consult).
 *
 * @category constants
 */
export const Socks4Reply = { granted: 90, rejected: 91 } as const

// ---------------------------------------------------------------------------
// models
// ---------------------------------------------------------------------------

/**
 * What a client asked to connect to. `host` is an address in text form
 * ("192.0.2.7", "2001:db8::1") or the domain name as sent.
 *
 * @category models
 */
export interface SocksRequest {
  readonly version: 4 | 5
  readonly host: string
  readonly port: number
  readonly addressType: "ipv4" | "ipv6" | "domain"
  /** SOCKS4's USERID field (not checked: we do no identd). */
  readonly userId?: string | undefined
}

/**
 * The handshake so far: bytes received that do not yet make a request, and
 * whether the SOCKS5 method choice was already written.
 *
 * @category models
 */
export interface SocksHandshake {
  readonly buffered: Uint8Array
  readonly methodAnswered: boolean
}

/**
 * The handshake is incomplete; write `reply` (possibly empty) and feed the
 * next chunk to `handshake`.
 *
 * @category models
 */
export interface NeedMore {
  readonly _tag: "NeedMore"
  readonly reply: Uint8Array
  readonly handshake: SocksHandshake
}

/**
 * The client asked for a connection: write `reply` (possibly empty),
 * attempt it, then answer with `connectSucceeded` or `connectFailed`.
 * `leftover` is what the client sent after its request.
 *
 * @category models
 */
export interface Connect {
  readonly _tag: "Connect"
  readonly reply: Uint8Array
  readonly request: SocksRequest
  readonly leftover: Uint8Array
}

/**
 * The handshake is refused: write `reply` (possibly empty: not SOCKS at
 * all), then close. `reason` says why, for a log line.
 *
 * @category models
 */
export interface Refuse {
  readonly _tag: "Refuse"
  readonly reply: Uint8Array
  readonly reason: string
}

/**
 * One step of the handshake.
 *
 * @category models
 */
export type SocksStep = NeedMore | Connect | Refuse

// ---------------------------------------------------------------------------
// parsing
// ---------------------------------------------------------------------------

const empty = new Uint8Array(0)

/**
 * The handshake before any byte arrived.
 *
 * @example
 * ```ts
 * const first = Socks.feed(Socks.start, Uint8Array.of(5, 1, 0)) // SOCKS5, one method: no authentication
 * first._tag // "NeedMore", first.reply: Uint8Array [5, 0]
 * ```
 * @category constructors
 */
export const start: SocksHandshake = { buffered: empty, methodAnswered: false }

/** What parsing the buffered bytes from the start found. */
type Parsed =
  | { readonly _tag: "More"; readonly greeted: boolean }
  | { readonly _tag: "Request"; readonly greeted: boolean; readonly request: SocksRequest; readonly length: number }
  | { readonly _tag: "Invalid"; readonly greeted: boolean; readonly reply: Uint8Array; readonly reason: string }

const methodNoAuth = Uint8Array.of(5, 0)
const methodNoneAcceptable = Uint8Array.of(5, 0xff)

/**
 * Feeds the next chunk of the client's bytes to a handshake.
 *
 * @example
 * ```ts
 * const step = Socks.feed(Socks.start, Uint8Array.of(4, 1, 0, 80, 192, 0, 2, 7, 0))
 * step._tag === "Connect" && step.request.host // "192.0.2.7"
 * ```
 * @category parsing
 */
export const feed = (handshake: SocksHandshake, chunk: Uint8Array): SocksStep => {
  const room = MAX_HANDSHAKE_BYTES - handshake.buffered.length
  const taken = chunk.subarray(0, room)
  const buffered = concat(handshake.buffered, taken)
  const parsed = parse(buffered)
  // the method choice is written once: in the step that completed the greeting
  const methodReply = parsed.greeted && !handshake.methodAnswered ? methodNoAuth : empty
  switch (parsed._tag) {
    case "More":
      if (buffered.length >= MAX_HANDSHAKE_BYTES) {
        return refuse(
          concat(methodReply, refusalFor(buffered)),
          `handshake longer than ${MAX_HANDSHAKE_BYTES} bytes`
        )
      }
      return { _tag: "NeedMore", reply: methodReply, handshake: { buffered, methodAnswered: parsed.greeted } }
    case "Invalid":
      return refuse(concat(methodReply, parsed.reply), parsed.reason)
    case "Request": {
      const rest = buffered.subarray(parsed.length)
      const untaken = chunk.subarray(taken.length)
      return {
        _tag: "Connect",
        reply: methodReply,
        request: parsed.request,
        leftover: rest.length === 0 ? untaken : concat(rest, untaken)
      }
    }
  }
}

const refuse = (reply: Uint8Array, reason: string): Refuse => ({ _tag: "Refuse", reply, reason })

/** The reply refusing a handshake that grew too long, in its own version. */
const refusalFor = (buffered: Uint8Array): Uint8Array =>
  buffered[0] === 4 ? socks4Reply(Socks4Reply.rejected) : socks5Reply(Socks5Reply.generalFailure)

const parse = (b: Uint8Array): Parsed => {
  if (b.length === 0) return { _tag: "More", greeted: false }
  switch (b[0]) {
    case 4:
      return parseSocks4(b)
    case 5:
      return parseSocks5(b)
    default:
      return {
        _tag: "Invalid",
        greeted: false,
        reply: empty,
        reason: `not a SOCKS4 or SOCKS5 handshake (first byte 0x${b[0]!.toString(16).padStart(2, "0")})`
      }
  }
}

/**
 * SOCKS4: VN=4, CD, DSTPORT(2), DSTIP(4), USERID, NUL; SOCKS4a puts
 * 0.0.0.x (x ≠ 0) in DSTIP and the host name, NUL, after the user id.
 */
const parseSocks4 = (b: Uint8Array): Parsed => {
  const invalid = (reason: string): Parsed => ({
    _tag: "Invalid",
    greeted: false,
    reply: socks4Reply(Socks4Reply.rejected),
    reason
  })
  if (b.length >= 2 && b[1] !== 1) return invalid(`SOCKS4 command ${b[1]} is not CONNECT`)
  if (b.length < 8) return { _tag: "More", greeted: false }
  const port = (b[2]! << 8) | b[3]!
  const userEnd = b.indexOf(0, 8)
  if (userEnd < 0) return { _tag: "More", greeted: false }
  const userId = latin1(b.subarray(8, userEnd))
  const isSocks4a = b[4] === 0 && b[5] === 0 && b[6] === 0 && b[7] !== 0
  let host: string
  let length = userEnd + 1
  if (isSocks4a) {
    const hostEnd = b.indexOf(0, length)
    if (hostEnd < 0) return { _tag: "More", greeted: false }
    const name = domainName(b.subarray(length, hostEnd))
    if (name === undefined) return invalid("SOCKS4a host name is empty or not printable")
    host = name
    length = hostEnd + 1
  } else {
    host = IpAddress.formatIpv4(b.subarray(4, 8))
  }
  if (port === 0) return invalid("SOCKS4 destination port 0")
  return {
    _tag: "Request",
    greeted: false,
    request: { version: 4, host, port, addressType: isSocks4a ? "domain" : "ipv4", userId },
    length
  }
}

/**
 * SOCKS5: VER=5, NMETHODS, METHODS; then VER=5, CMD, RSV=0, ATYP, DST.ADDR,
 * DST.PORT(2).
 */
const parseSocks5 = (b: Uint8Array): Parsed => {
  if (b.length < 2) return { _tag: "More", greeted: false }
  const methods = b[1]!
  if (b.length < 2 + methods) return { _tag: "More", greeted: false }
  if (!b.subarray(2, 2 + methods).includes(0)) {
    return {
      _tag: "Invalid",
      greeted: false,
      reply: methodNoneAcceptable,
      reason: "SOCKS5 client offers no method without authentication"
    }
  }
  const at = 2 + methods
  const invalid = (code: number, reason: string): Parsed => ({
    _tag: "Invalid",
    greeted: true,
    reply: socks5Reply(code),
    reason
  })
  const more: Parsed = { _tag: "More", greeted: true }
  if (b.length < at + 4) {
    if (b.length > at && b[at] !== 5) return invalid(Socks5Reply.generalFailure, `SOCKS5 request version ${b[at]}`)
    if (b.length > at + 1 && b[at + 1] !== 1) {
      return invalid(Socks5Reply.commandNotSupported, `SOCKS5 command ${b[at + 1]} is not CONNECT`)
    }
    return more
  }
  if (b[at] !== 5) return invalid(Socks5Reply.generalFailure, `SOCKS5 request version ${b[at]}`)
  if (b[at + 1] !== 1) return invalid(Socks5Reply.commandNotSupported, `SOCKS5 command ${b[at + 1]} is not CONNECT`)
  if (b[at + 2] !== 0) return invalid(Socks5Reply.generalFailure, `SOCKS5 reserved byte ${b[at + 2]} is not 0`)
  const addressAt = at + 4
  let host: string
  let addressType: SocksRequest["addressType"]
  let portAt: number
  switch (b[at + 3]) {
    case 1:
      portAt = addressAt + 4
      if (b.length < portAt + 2) return more
      host = IpAddress.formatIpv4(b.subarray(addressAt, portAt))
      addressType = "ipv4"
      break
    case 4:
      portAt = addressAt + 16
      if (b.length < portAt + 2) return more
      host = IpAddress.formatIpv6(b.subarray(addressAt, portAt))
      addressType = "ipv6"
      break
    case 3: {
      if (b.length < addressAt + 1) return more
      portAt = addressAt + 1 + b[addressAt]!
      if (b.length < portAt + 2) return more
      const name = domainName(b.subarray(addressAt + 1, portAt))
      if (name === undefined) return invalid(Socks5Reply.generalFailure, "SOCKS5 domain name is empty or not printable")
      host = name
      addressType = "domain"
      break
    }
    default:
      return invalid(Socks5Reply.addressTypeNotSupported, `SOCKS5 address type ${b[at + 3]}`)
  }
  const port = (b[portAt]! << 8) | b[portAt + 1]!
  if (port === 0) return invalid(Socks5Reply.generalFailure, "SOCKS5 destination port 0")
  return { _tag: "Request", greeted: true, request: { version: 5, host, port, addressType }, length: portAt + 2 }
}

/** A host name of printable US-ASCII without spaces; `undefined` otherwise. */
const domainName = (bytes: Uint8Array): string | undefined => {
  if (bytes.length === 0) return undefined
  for (const c of bytes) if (c <= 0x20 || c >= 0x7f) return undefined
  return latin1(bytes)
}

const latin1 = (bytes: Uint8Array): string => String.fromCharCode(...bytes)

const concat = (a: Uint8Array, b: Uint8Array): Uint8Array => {
  if (a.length === 0) return b
  if (b.length === 0) return a
  const out = new Uint8Array(a.length + b.length)
  out.set(a)
  out.set(b, a.length)
  return out
}

// ---------------------------------------------------------------------------
// replies
// ---------------------------------------------------------------------------

/**
 * A SOCKS4 reply: VN=0, CD, then port and address, which clients ignore
 * after a CONNECT (zeros).
 *
 * @example
 * ```ts
 * Socks.socks4Reply(Socks.Socks4Reply.granted) // Uint8Array [0, 90, 0, 0, 0, 0, 0, 0]
 * ```
 * @category replies
 */
export const socks4Reply = (code: number): Uint8Array => Uint8Array.of(0, code, 0, 0, 0, 0, 0, 0)

/**
 * A SOCKS5 reply: VER=5, REP, RSV=0, then the bound address (an IPv4 or
 * IPv6 literal, else a domain name of at most 255 bytes) and port, by
 * default 0.0.0.0:0.
 *
 * @example
 * ```ts
 * Socks.socks5Reply(Socks.Socks5Reply.succeeded, { host: "127.0.0.1", port: 40000 })
 * // Uint8Array [5, 0, 0, 1, 127, 0, 0, 1, 0x9c, 0x40]
 * ```
 * @category replies
 */
export const socks5Reply = (
  code: number,
  bound: { readonly host: string; readonly port: number } = { host: "0.0.0.0", port: 0 }
): Uint8Array => {
  const address = encodeAddress(bound.host)
  const out = new Uint8Array(3 + address.length + 2)
  out.set([5, code, 0])
  out.set(address, 3)
  out[out.length - 2] = (bound.port >> 8) & 0xff
  out[out.length - 1] = bound.port & 0xff
  return out
}

/** ATYP and DST.ADDR of a host; a domain name longer than 255 bytes becomes 0.0.0.0. */
const encodeAddress = (host: string): Uint8Array => {
  const v4 = IpAddress.parseIpv4(host)
  if (v4 !== undefined) return Uint8Array.of(1, ...v4)
  const v6 = IpAddress.parseIpv6(host)
  if (v6 !== undefined) return Uint8Array.of(4, ...v6)
  const name = new TextEncoder().encode(host)
  return name.length >= 1 && name.length <= 255 ? Uint8Array.of(3, name.length, ...name) : Uint8Array.of(1, 0, 0, 0, 0)
}

/**
 * The reply telling the client its connection is open, in its SOCKS version;
 * `bound` is the local end of the connection, when known (SOCKS5 only).
 *
 * @example
 * ```ts
 * const step = Socks.feed(Socks.start, Uint8Array.of(4, 1, 0, 80, 192, 0, 2, 7, 0))
 * if (step._tag === "Connect") Socks.connectSucceeded(step.request) // Uint8Array [0, 90, 0, 0, 0, 0, 0, 0]
 * ```
 * @category replies
 */
export const connectSucceeded = (
  request: SocksRequest,
  bound?: { readonly host: string; readonly port: number }
): Uint8Array =>
  request.version === 4 ? socks4Reply(Socks4Reply.granted) : socks5Reply(Socks5Reply.succeeded, bound)

/**
 * The reply telling the client its connection failed, in its SOCKS version:
 * `code` is a SOCKS5 reply code (SOCKS4 has only "rejected or failed").
 *
 * @example
 * ```ts
 * const step = Socks.feed(Socks.start, Uint8Array.of(4, 1, 0, 80, 192, 0, 2, 7, 0))
 * const failure = new SshError.ChannelOpenFailed({ code: 2, description: "connect failed" })
 * if (step._tag === "Connect") Socks.connectFailed(step.request, Socks.replyForChannelOpenFailure(failure.code))
 * ```
 * @category replies
 */
export const connectFailed = (request: SocksRequest, code: number = Socks5Reply.generalFailure): Uint8Array =>
  request.version === 4 ? socks4Reply(Socks4Reply.rejected) : socks5Reply(code)

/**
 * The SOCKS5 reply code for an SSH channel open failure (RFC 4254 §5.1):
 * administratively prohibited is "not allowed", connect failed is "host
 * unreachable" (the server does not say more), anything else a general
 * failure.
 *
 * @example
 * ```ts
 * Socks.replyForChannelOpenFailure(1) // Socks.Socks5Reply.notAllowed
 * ```
 * @category replies
 */
export const replyForChannelOpenFailure = (code: number): number =>
  code === 1 ? Socks5Reply.notAllowed : code === 2 ? Socks5Reply.hostUnreachable : Socks5Reply.generalFailure
