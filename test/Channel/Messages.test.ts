import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import { fromHex, toHex } from "../../src/internal/bytes.ts"
import * as M from "../../src/Channel/Messages.ts"
import * as N from "../../src/Wire/MessageNumber.ts"
import { build } from "../../src/Wire/Writer.ts"
import { bytes, name, text, uint32 } from "../Wire/arbitraries.ts"
import { protocolError, returnsOrProtocolError } from "../Wire/throws.ts"

/** A message with its byte fields as hex, so that views and copies compare equal. */
const plain = (m: M.ConnectionMessage): Record<string, unknown> =>
  Object.fromEntries(Object.entries(m).map(([k, v]) => [k, v instanceof Uint8Array ? toHex(v) : v]))

/** Every message the encoders can build, paired with the payload they build for it. */
const encoded: fc.Arbitrary<readonly [M.ConnectionMessage, Uint8Array]> = fc.oneof(
  fc.tuple(name, fc.boolean(), bytes).map(([n, wantReply, data]) =>
    [{ _tag: "GlobalRequest", name: n, wantReply, data }, M.globalRequest(n, wantReply, data)] as const
  ),
  bytes.map((data) => [{ _tag: "RequestSuccess", data }, M.requestSuccess(data)] as const),
  fc.constant([{ _tag: "RequestFailure" }, M.requestFailure()] as const),
  fc.tuple(name, uint32, uint32, uint32, bytes).map(([channelType, sender, window, maxPacket, data]) =>
    [
      { _tag: "ChannelOpen", channelType, sender, window, maxPacket, data },
      M.channelOpen(channelType, sender, window, maxPacket, data)
    ] as const
  ),
  fc.tuple(uint32, uint32, uint32, uint32, bytes).map(([recipient, sender, window, maxPacket, data]) =>
    [
      { _tag: "ChannelOpenConfirmation", recipient, sender, window, maxPacket, data },
      M.channelOpenConfirmation(recipient, sender, window, maxPacket, data)
    ] as const
  ),
  fc.tuple(uint32, uint32, text).map(([recipient, code, description]) =>
    [{ _tag: "ChannelOpenFailure", recipient, code, description }, M.channelOpenFailure(recipient, code, description)] as const
  ),
  fc.tuple(uint32, uint32).map(([recipient, n]) =>
    [{ _tag: "WindowAdjust", recipient, bytes: n }, M.windowAdjust(recipient, n)] as const
  ),
  fc.tuple(uint32, bytes).map(([recipient, data]) =>
    [{ _tag: "Data", recipient, data }, M.channelData(recipient, data)] as const
  ),
  fc.tuple(uint32, uint32, bytes).map(([recipient, dataType, data]) =>
    [{ _tag: "ExtendedData", recipient, dataType, data }, M.channelData(recipient, data, dataType)] as const
  ),
  uint32.map((recipient) => [{ _tag: "Eof", recipient }, M.channelEof(recipient)] as const),
  uint32.map((recipient) => [{ _tag: "Close", recipient }, M.channelClose(recipient)] as const),
  fc.tuple(uint32, name, fc.boolean(), bytes).map(([recipient, request, wantReply, data]) =>
    [
      { _tag: "ChannelRequest", recipient, request, wantReply, data },
      M.channelRequest(recipient, request, wantReply, data)
    ] as const
  ),
  uint32.map((recipient) => [{ _tag: "ChannelSuccess", recipient }, M.channelSuccess(recipient)] as const),
  uint32.map((recipient) => [{ _tag: "ChannelFailure", recipient }, M.channelFailure(recipient)] as const)
)

const connectionNumbers = [
  N.GLOBAL_REQUEST,
  N.REQUEST_SUCCESS,
  N.REQUEST_FAILURE,
  N.CHANNEL_OPEN,
  N.CHANNEL_OPEN_CONFIRMATION,
  N.CHANNEL_OPEN_FAILURE,
  N.CHANNEL_WINDOW_ADJUST,
  N.CHANNEL_DATA,
  N.CHANNEL_EXTENDED_DATA,
  N.CHANNEL_EOF,
  N.CHANNEL_CLOSE,
  N.CHANNEL_REQUEST,
  N.CHANNEL_SUCCESS,
  N.CHANNEL_FAILURE
]

describe("Channel messages: known encodings (RFC 4254)", () => {
  it("CHANNEL_OPEN session", () => {
    expect(toHex(M.channelOpen("session", 0, 2 * 1024 * 1024, 32768))).toBe(
      "5a" + "0000000773657373696f6e" + "00000000" + "00200000" + "00008000"
    )
  })

  it("CHANNEL_OPEN_CONFIRMATION with type-specific data", () => {
    expect(toHex(M.channelOpenConfirmation(1, 2, 3, 4, fromHex("ab")))).toBe(
      "5b" + "00000001" + "00000002" + "00000003" + "00000004" + "ab"
    )
  })

  it("CHANNEL_OPEN_FAILURE carries an empty language tag", () => {
    expect(toHex(M.channelOpenFailure(7, 1, "no"))).toBe("5c" + "00000007" + "00000001" + "000000026e6f" + "00000000")
  })

  it("WINDOW_ADJUST, DATA, EXTENDED_DATA (stderr), EOF, CLOSE, SUCCESS, FAILURE", () => {
    expect(toHex(M.windowAdjust(3, 0xffffffff))).toBe("5d" + "00000003" + "ffffffff")
    expect(toHex(M.channelData(3, fromHex("6869")))).toBe("5e" + "00000003" + "00000002" + "6869")
    expect(toHex(M.channelData(3, fromHex("6869"), 1))).toBe("5f" + "00000003" + "00000001" + "00000002" + "6869")
    expect(toHex(M.channelEof(5))).toBe("6000000005")
    expect(toHex(M.channelClose(5))).toBe("6100000005")
    expect(toHex(M.channelSuccess(5))).toBe("6300000005")
    expect(toHex(M.channelFailure(5))).toBe("6400000005")
  })

  it("GLOBAL_REQUEST and CHANNEL_REQUEST with and without data", () => {
    expect(toHex(M.globalRequest("a@b", true))).toBe("50" + "00000003614062" + "01")
    expect(toHex(M.globalRequest("x", false, fromHex("0102")))).toBe("50" + "0000000178" + "00" + "0102")
    expect(toHex(M.channelRequest(9, "exec", true, build((w) => w.string("ls"))))).toBe(
      "62" + "00000009" + "0000000465786563" + "01" + "00000002" + "6c73"
    )
    expect(toHex(M.requestSuccess())).toBe("51")
    expect(toHex(M.requestFailure())).toBe("52")
  })

  it("channelData fills a buffer of exactly the packet size", () => {
    const data = new Uint8Array(32768).fill(7)
    const payload = M.channelData(1, data)
    expect(payload.length).toBe(9 + data.length)
    expect(payload.buffer.byteLength).toBe(9 + data.length)
    expect(M.channelData(1, data, 1).buffer.byteLength).toBe(13 + data.length)
  })
})

describe("Channel messages: decode ∘ encode = id", () => {
  it("for every encoder", () => {
    fc.assert(
      fc.property(encoded, ([message, payload]) => {
        expect(plain(M.decode(payload))).toEqual(plain(message))
      }),
      { numRuns: 500 }
    )
  })

  it("recipientOf reads the recipient of any channel message", () => {
    fc.assert(
      fc.property(encoded, ([message, payload]) => {
        if ("recipient" in message) expect(M.recipientOf(payload)).toBe(message.recipient)
      })
    )
  })

  it("isConnectionMessage is exactly 80..127 and covers every number decode knows", () => {
    expect([79, 80, 127, 128].map(M.isConnectionMessage)).toEqual([false, true, true, false])
    for (const n of connectionNumbers) expect(M.isConnectionMessage(n)).toBe(true)
  })
})

describe("Channel messages: malformed input", () => {
  it("an unknown or non-connection message number is a ProtocolError", () => {
    for (const n of [0, 1, 50, 83, 89, 101, 127, 255]) {
      expect(protocolError(() => M.decode(Uint8Array.of(n, 0, 0, 0, 0))).message).toBe(
        `unexpected connection-protocol message ${n}`
      )
    }
    expect(protocolError(() => M.decode(new Uint8Array(0))).message).toMatch(/^truncated byte/)
  })

  it("fixed-size messages reject trailing bytes", () => {
    expect(protocolError(() => M.decode(fromHex("5d" + "00000003" + "00000001" + "00"))).message).toBe(
      "1 trailing bytes after CHANNEL_WINDOW_ADJUST"
    )
    expect(protocolError(() => M.decode(fromHex("5e" + "00000003" + "00000000" + "ff"))).message).toBe(
      "1 trailing bytes after CHANNEL_DATA"
    )
    expect(protocolError(() => M.decode(fromHex("5f" + "00000003" + "00000001" + "00000000" + "ff"))).message).toBe(
      "1 trailing bytes after CHANNEL_EXTENDED_DATA"
    )
  })

  it("CHANNEL_DATA with a length beyond the payload is a ProtocolError", () => {
    expect(protocolError(() => M.decode(fromHex("5e" + "00000003" + "ffffffff" + "00"))).message).toBe(
      "truncated channel data: need 4294967295 bytes, 1 left"
    )
  })

  it("CHANNEL_OPEN_FAILURE from a peer that omits the language tag still decodes", () => {
    expect(M.decode(fromHex("5c" + "00000007" + "00000002" + "000000026e6f"))).toEqual({
      _tag: "ChannelOpenFailure",
      recipient: 7,
      code: 2,
      description: "no"
    })
  })

  it("non-printable request and channel-type names are rejected", () => {
    expect(protocolError(() => M.decode(M.globalRequest("a\nb", false))).message).toMatch(/^request name has a non-printable/)
    expect(protocolError(() => M.decode(M.channelOpen("séssion", 0, 0, 0))).message).toMatch(/^channel type has a non-printable/)
    expect(protocolError(() => M.decode(M.channelRequest(0, "x\x00", false))).message).toMatch(/^request type has a non-printable/)
  })

  it("every truncation of a valid message decodes or throws a ProtocolError", () => {
    fc.assert(
      fc.property(encoded, fc.nat(), ([, payload], at) => {
        returnsOrProtocolError(() => M.decode(payload.subarray(0, at % (payload.length + 1))))
      })
    )
  })

  it("random bytes after a connection message number: a value or a ProtocolError, nothing else", () => {
    fc.assert(
      fc.property(fc.constantFrom(...connectionNumbers), fc.uint8Array({ maxLength: 40 }), (type, body) => {
        returnsOrProtocolError(() => M.decode(Uint8Array.of(type, ...body)))
      }),
      { numRuns: 2000 }
    )
    fc.assert(fc.property(fc.uint8Array({ maxLength: 40 }), (payload) => {
      returnsOrProtocolError(() => M.decode(payload))
      returnsOrProtocolError(() => M.recipientOf(payload))
    }))
  })
})

describe("channelDataHeader", () => {
  it("header + data is exactly channelData's payload, for data and extended data", () => {
    const data = Uint8Array.of(1, 2, 3, 4, 5)
    for (const dataType of [undefined, 1]) {
      const header = M.channelDataHeader(0x01020304, data.length, dataType)
      const joined = new Uint8Array(header.length + data.length)
      joined.set(header)
      joined.set(data, header.length)
      expect([...joined]).toEqual([...M.channelData(0x01020304, data, dataType)])
    }
  })
})
