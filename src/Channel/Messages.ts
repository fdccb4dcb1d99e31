/**
 * Connection-protocol messages (RFC 4254): global requests, channel open,
 * data, window adjust, EOF/CLOSE and channel requests. Encoders build whole
 * payloads; `decode` turns a payload into a tagged value and throws a
 * `ProtocolError` reason on malformed input.
 *
 * @since 0.1.0
 */
import * as N from "../Wire/MessageNumber.ts"
import { Reader } from "../Wire/Reader.ts"
import { Writer, build } from "../Wire/Writer.ts"
import { ProtocolError } from "../SshError.ts"

/** A decoded connection-protocol message. */
export type ConnectionMessage =
  | { readonly _tag: "GlobalRequest"; readonly name: string; readonly wantReply: boolean; readonly data: Uint8Array }
  | { readonly _tag: "RequestSuccess"; readonly data: Uint8Array }
  | { readonly _tag: "RequestFailure" }
  | {
    readonly _tag: "ChannelOpen"
    readonly channelType: string
    readonly sender: number
    readonly window: number
    readonly maxPacket: number
    readonly data: Uint8Array
  }
  | {
    readonly _tag: "ChannelOpenConfirmation"
    readonly recipient: number
    readonly sender: number
    readonly window: number
    readonly maxPacket: number
    readonly data: Uint8Array
  }
  | {
    readonly _tag: "ChannelOpenFailure"
    readonly recipient: number
    readonly code: number
    readonly description: string
  }
  | { readonly _tag: "WindowAdjust"; readonly recipient: number; readonly bytes: number }
  | { readonly _tag: "Data"; readonly recipient: number; readonly data: Uint8Array }
  | { readonly _tag: "ExtendedData"; readonly recipient: number; readonly dataType: number; readonly data: Uint8Array }
  | { readonly _tag: "Eof"; readonly recipient: number }
  | { readonly _tag: "Close"; readonly recipient: number }
  | {
    readonly _tag: "ChannelRequest"
    readonly recipient: number
    readonly request: string
    readonly wantReply: boolean
    readonly data: Uint8Array
  }
  | { readonly _tag: "ChannelSuccess"; readonly recipient: number }
  | { readonly _tag: "ChannelFailure"; readonly recipient: number }

/**
 * Whether a message number belongs to the connection protocol (80..127).
 *
 * @example
 * ```ts
 * isConnectionMessage(94) // true
 * ```
 */
export const isConnectionMessage = (n: number): boolean => n >= 80 && n <= 127

/**
 * Decodes a connection-protocol payload.
 *
 * @example
 * ```ts
 * const msg = decode(payload)
 * if (msg._tag === "Data") consume(msg.data)
 * ```
 */
export const decode = (payload: Uint8Array): ConnectionMessage => {
  const r = new Reader(payload)
  const type = r.byte()
  switch (type) {
    case N.GLOBAL_REQUEST: {
      const name = r.name("request name")
      const wantReply = r.boolean()
      return { _tag: "GlobalRequest", name, wantReply, data: r.rest() }
    }
    case N.REQUEST_SUCCESS:
      return { _tag: "RequestSuccess", data: r.rest() }
    case N.REQUEST_FAILURE:
      return { _tag: "RequestFailure" }
    case N.CHANNEL_OPEN: {
      const channelType = r.name("channel type")
      const sender = r.uint32()
      const window = r.uint32()
      const maxPacket = r.uint32()
      return { _tag: "ChannelOpen", channelType, sender, window, maxPacket, data: r.rest() }
    }
    case N.CHANNEL_OPEN_CONFIRMATION: {
      const recipient = r.uint32()
      const sender = r.uint32()
      const window = r.uint32()
      const maxPacket = r.uint32()
      return { _tag: "ChannelOpenConfirmation", recipient, sender, window, maxPacket, data: r.rest() }
    }
    case N.CHANNEL_OPEN_FAILURE: {
      const recipient = r.uint32()
      const code = r.uint32()
      const description = r.utf8("description")
      if (r.remaining > 0) r.string("language tag")
      return { _tag: "ChannelOpenFailure", recipient, code, description }
    }
    case N.CHANNEL_WINDOW_ADJUST: {
      const recipient = r.uint32()
      const bytes = r.uint32()
      r.end("CHANNEL_WINDOW_ADJUST")
      return { _tag: "WindowAdjust", recipient, bytes }
    }
    case N.CHANNEL_DATA: {
      const recipient = r.uint32()
      const data = r.string("channel data")
      r.end("CHANNEL_DATA")
      return { _tag: "Data", recipient, data }
    }
    case N.CHANNEL_EXTENDED_DATA: {
      const recipient = r.uint32()
      const dataType = r.uint32()
      const data = r.string("channel data")
      r.end("CHANNEL_EXTENDED_DATA")
      return { _tag: "ExtendedData", recipient, dataType, data }
    }
    case N.CHANNEL_EOF:
      return { _tag: "Eof", recipient: r.uint32() }
    case N.CHANNEL_CLOSE:
      return { _tag: "Close", recipient: r.uint32() }
    case N.CHANNEL_REQUEST: {
      const recipient = r.uint32()
      const request = r.name("request type")
      const wantReply = r.boolean()
      return { _tag: "ChannelRequest", recipient, request, wantReply, data: r.rest() }
    }
    case N.CHANNEL_SUCCESS:
      return { _tag: "ChannelSuccess", recipient: r.uint32() }
    case N.CHANNEL_FAILURE:
      return { _tag: "ChannelFailure", recipient: r.uint32() }
    default:
      throw new ProtocolError({ message: `unexpected connection-protocol message ${type}` })
  }
}

/**
 * The recipient channel of a channel message, read without a full decode.
 *
 * @example
 * ```ts
 * recipientOf(payload) // 3
 * ```
 */
export const recipientOf = (payload: Uint8Array): number => new Reader(payload, 1).uint32()

/** @example `globalRequest("keepalive@openssh.com", true)` */
export const globalRequest = (name: string, wantReply: boolean, data?: Uint8Array): Uint8Array =>
  build((w) => {
    w.byte(N.GLOBAL_REQUEST).string(name).boolean(wantReply)
    if (data) w.raw(data)
  })

/** @example `requestSuccess()` */
export const requestSuccess = (data?: Uint8Array): Uint8Array =>
  build((w) => {
    w.byte(N.REQUEST_SUCCESS)
    if (data) w.raw(data)
  })

/** @example `requestFailure()` */
export const requestFailure = (): Uint8Array => Uint8Array.of(N.REQUEST_FAILURE)

/** @example `channelOpen("session", 0, 2 * 1024 * 1024, 32768)` */
export const channelOpen = (
  channelType: string,
  sender: number,
  window: number,
  maxPacket: number,
  data?: Uint8Array
): Uint8Array =>
  build((w) => {
    w.byte(N.CHANNEL_OPEN).string(channelType).uint32(sender).uint32(window).uint32(maxPacket)
    if (data) w.raw(data)
  })

/** @example `channelOpenConfirmation(theirId, ourId, window, maxPacket)` */
export const channelOpenConfirmation = (
  recipient: number,
  sender: number,
  window: number,
  maxPacket: number,
  data?: Uint8Array
): Uint8Array =>
  build((w) => {
    w.byte(N.CHANNEL_OPEN_CONFIRMATION).uint32(recipient).uint32(sender).uint32(window).uint32(maxPacket)
    if (data) w.raw(data)
  })

/** @example `channelOpenFailure(theirId, 1, "administratively prohibited")` */
export const channelOpenFailure = (recipient: number, code: number, description: string): Uint8Array =>
  build((w) => w.byte(N.CHANNEL_OPEN_FAILURE).uint32(recipient).uint32(code).string(description).string(""))

/** @example `windowAdjust(theirId, 1048576)` */
export const windowAdjust = (recipient: number, bytes: number): Uint8Array =>
  build((w) => w.byte(N.CHANNEL_WINDOW_ADJUST).uint32(recipient).uint32(bytes), 9)

/**
 * CHANNEL_DATA, or CHANNEL_EXTENDED_DATA when `dataType` is given (1 = stderr).
 *
 * @example
 * ```ts
 * channelData(theirId, chunk)
 * channelData(theirId, chunk, 1) // stderr
 * ```
 */
export const channelData = (recipient: number, data: Uint8Array, dataType?: number): Uint8Array => {
  const header = dataType === undefined ? 9 : 13
  const w = new Writer(header + data.length)
  if (dataType === undefined) w.byte(N.CHANNEL_DATA).uint32(recipient)
  else w.byte(N.CHANNEL_EXTENDED_DATA).uint32(recipient).uint32(dataType)
  return w.string(data).finish()
}

/**
 * The header of CHANNEL_DATA (or EXTENDED_DATA with `dataType`) for `length`
 * bytes: sent as `[header, data]`, the data is sealed without being copied
 * into a payload first.
 *
 * @example
 * ```ts
 * transport.send([channelDataHeader(theirId, chunk.length), chunk])
 * ```
 */
export const channelDataHeader = (recipient: number, length: number, dataType?: number): Uint8Array => {
  // built by hand: one small array per data packet, on the hottest send path
  const out = new Uint8Array(dataType === undefined ? 9 : 13)
  out[0] = dataType === undefined ? N.CHANNEL_DATA : N.CHANNEL_EXTENDED_DATA
  putUint32(out, 1, recipient)
  if (dataType !== undefined) putUint32(out, 5, dataType)
  putUint32(out, out.length - 4, length)
  return out
}

const putUint32 = (out: Uint8Array, offset: number, n: number): void => {
  out[offset] = n >>> 24
  out[offset + 1] = (n >>> 16) & 0xff
  out[offset + 2] = (n >>> 8) & 0xff
  out[offset + 3] = n & 0xff
}

/** @example `channelEof(theirId)` */
export const channelEof = (recipient: number): Uint8Array =>
  build((w) => w.byte(N.CHANNEL_EOF).uint32(recipient), 5)

/** @example `channelClose(theirId)` */
export const channelClose = (recipient: number): Uint8Array =>
  build((w) => w.byte(N.CHANNEL_CLOSE).uint32(recipient), 5)

/** @example `channelRequest(theirId, "exec", true, build((w) => w.string("ls")))` */
export const channelRequest = (recipient: number, request: string, wantReply: boolean, data?: Uint8Array): Uint8Array =>
  build((w) => {
    w.byte(N.CHANNEL_REQUEST).uint32(recipient).string(request).boolean(wantReply)
    if (data) w.raw(data)
  })

/** @example `channelSuccess(theirId)` */
export const channelSuccess = (recipient: number): Uint8Array =>
  build((w) => w.byte(N.CHANNEL_SUCCESS).uint32(recipient), 5)

/** @example `channelFailure(theirId)` */
export const channelFailure = (recipient: number): Uint8Array =>
  build((w) => w.byte(N.CHANNEL_FAILURE).uint32(recipient), 5)
