import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import * as F from "../../src/Forwarding/Messages.ts"
import { fromHex, toHex } from "../../src/internal/bytes.ts"
import { build } from "../../src/Wire/Writer.ts"
import { text, uint32 } from "../Wire/arbitraries.ts"
import { protocolError, returnsOrProtocolError } from "../Wire/throws.ts"

const port = fc.integer({ min: 0, max: 0xffff })
const hexCookie = fc.uint8Array({ minLength: 1, maxLength: 32 }).map(toHex)
const protocolName = fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), minLength: 1, maxLength: 24 })

const directTcpip = fc.record({ host: text, port, originatorAddress: text, originatorPort: port })
const forwardedTcpip = fc.record({ connectedAddress: text, connectedPort: port, originatorAddress: text, originatorPort: port })
const streamlocal = fc.record({ path: text })
const x11Channel = fc.record({ originatorAddress: text, originatorPort: port })
const tcpipForward = fc.record({ bindAddress: text, bindPort: port })
const x11Request = fc.record({ singleConnection: fc.boolean(), authProtocol: protocolName, authCookie: hexCookie, screen: uint32 })

const forwardingOpen: fc.Arbitrary<F.ForwardingOpen> = fc.oneof(
  directTcpip.map((o) => ({ _tag: "DirectTcpip" as const, ...o })),
  forwardedTcpip.map((o) => ({ _tag: "ForwardedTcpip" as const, ...o })),
  streamlocal.map((o) => ({ _tag: "DirectStreamlocal" as const, ...o })),
  streamlocal.map((o) => ({ _tag: "ForwardedStreamlocal" as const, ...o })),
  x11Channel.map((o) => ({ _tag: "X11" as const, ...o }))
)

/** Every codec, as a pair of an arbitrary value and its encoding and decoding. */
const codecs = [
  { name: "direct-tcpip", value: directTcpip, encode: F.encodeDirectTcpip, decode: F.decodeDirectTcpip },
  { name: "forwarded-tcpip", value: forwardedTcpip, encode: F.encodeForwardedTcpip, decode: F.decodeForwardedTcpip },
  { name: "direct-streamlocal", value: streamlocal, encode: F.encodeDirectStreamlocal, decode: F.decodeDirectStreamlocal },
  { name: "forwarded-streamlocal", value: streamlocal, encode: F.encodeForwardedStreamlocal, decode: F.decodeForwardedStreamlocal },
  { name: "x11", value: x11Channel, encode: F.encodeX11Channel, decode: F.decodeX11Channel },
  { name: "tcpip-forward", value: tcpipForward, encode: F.encodeTcpipForward, decode: F.decodeTcpipForward },
  { name: "streamlocal-forward", value: streamlocal, encode: F.encodeStreamlocalForward, decode: F.decodeStreamlocalForward },
  { name: "x11-req", value: x11Request, encode: F.encodeX11Request, decode: F.decodeX11Request }
] as unknown as ReadonlyArray<{
  readonly name: string
  readonly value: fc.Arbitrary<object>
  readonly encode: (value: object) => Uint8Array
  readonly decode: (data: Uint8Array) => object
}>

describe("Forwarding messages: known encodings (RFC 4254 §6.3, §7; OpenSSH PROTOCOL §2.4)", () => {
  it("direct-tcpip: host, port, originator address, originator port", () => {
    const data = F.encodeDirectTcpip({ host: "example.com", port: 80, originatorAddress: "127.0.0.1", originatorPort: 50000 })
    expect(toHex(data)).toBe(
      "0000000b6578616d706c652e636f6d" + "00000050" + "000000093132372e302e302e31" + "0000c350"
    )
  })

  it("forwarded-tcpip: connected address and port, then the originator", () => {
    const data = F.encodeForwardedTcpip({ connectedAddress: "", connectedPort: 8080, originatorAddress: "::1", originatorPort: 1 })
    expect(toHex(data)).toBe("00000000" + "00001f90" + "000000033a3a31" + "00000001")
  })

  it("direct-streamlocal carries an empty reserved string and a zero reserved uint32", () => {
    expect(toHex(F.encodeDirectStreamlocal({ path: "/s" }))).toBe("000000022f73" + "00000000" + "00000000")
  })

  it("forwarded-streamlocal carries an empty reserved string", () => {
    expect(toHex(F.encodeForwardedStreamlocal({ path: "/s" }))).toBe("000000022f73" + "00000000")
  })

  it("x11 channel: originator address and port", () => {
    expect(toHex(F.encodeX11Channel({ originatorAddress: "1.2.3.4", originatorPort: 6010 }))).toBe(
      "00000007312e322e332e34" + "0000177a"
    )
  })

  it("tcpip-forward, and its reply only when port 0 was asked", () => {
    expect(toHex(F.encodeTcpipForward({ bindAddress: "localhost", bindPort: 0 }))).toBe(
      "000000096c6f63616c686f7374" + "00000000"
    )
    expect(toHex(F.encodeTcpipForwardReply({ bindAddress: "", bindPort: 0 }, 40123))).toBe("00009cbb")
    expect(toHex(F.encodeTcpipForwardReply({ bindAddress: "", bindPort: 22 }, 22))).toBe("")
  })

  it("streamlocal-forward: the socket path alone", () => {
    expect(toHex(F.encodeStreamlocalForward({ path: "/tmp/x" }))).toBe("000000062f746d702f78")
  })

  it("x11-req: single connection, protocol, hex cookie, screen", () => {
    const data = F.encodeX11Request({ singleConnection: true, authProtocol: "MIT-MAGIC-COOKIE-1", authCookie: "00ff", screen: 2 })
    expect(toHex(data)).toBe(
      "01" + "000000124d49542d4d414749432d434f4f4b49452d31" + "000000043030666600000002"
    )
  })

  it("channel types and request names are the protocol's", () => {
    expect(Object.values(F.ChannelType)).toEqual([
      "direct-tcpip",
      "forwarded-tcpip",
      "direct-streamlocal@openssh.com",
      "forwarded-streamlocal@openssh.com",
      "x11"
    ])
    expect(Object.values(F.RequestName)).toEqual([
      "tcpip-forward",
      "cancel-tcpip-forward",
      "streamlocal-forward@openssh.com",
      "cancel-streamlocal-forward@openssh.com",
      "x11-req"
    ])
  })
})

describe("Forwarding messages: decode ∘ encode = id", () => {
  for (const codec of codecs) {
    it(codec.name, () => {
      fc.assert(fc.property(codec.value, (value) => {
        expect(codec.decode(codec.encode(value))).toEqual(value)
      }), { numRuns: 300 })
    })
  }

  it("decodeChannelOpen ∘ encodeChannelOpen = id", () => {
    fc.assert(fc.property(forwardingOpen, (open) => {
      const { channelType, data } = F.encodeChannelOpen(open)
      expect(F.decodeChannelOpen(channelType, data)).toEqual(open)
    }), { numRuns: 500 })
  })

  it("decodeGlobalRequest ∘ encodeGlobalRequest = id", () => {
    const request: fc.Arbitrary<F.ForwardingRequest> = fc.oneof(
      tcpipForward.map((r) => ({ _tag: "TcpipForward" as const, ...r })),
      tcpipForward.map((r) => ({ _tag: "CancelTcpipForward" as const, ...r })),
      streamlocal.map((r) => ({ _tag: "StreamlocalForward" as const, ...r })),
      streamlocal.map((r) => ({ _tag: "CancelStreamlocalForward" as const, ...r }))
    )
    fc.assert(fc.property(request, (r) => {
      const { name, data } = F.encodeGlobalRequest(r)
      expect(F.decodeGlobalRequest(name, data)).toEqual(r)
    }), { numRuns: 300 })
    expect(F.decodeGlobalRequest("keepalive@openssh.com", new Uint8Array(0))).toBeUndefined()
  })

  it("decodeChannelOpen leaves other channel types alone", () => {
    expect(F.decodeChannelOpen("session", new Uint8Array(0))).toBeUndefined()
    expect(F.decodeChannelOpen("auth-agent@openssh.com", fromHex("ff"))).toBeUndefined()
  })

  it("the tcpip-forward reply gives the allocated port, or the one asked for", () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 0xffff }), (bound) => {
      const asked = { bindAddress: "", bindPort: 0 }
      expect(F.decodeTcpipForwardReply(F.encodeTcpipForwardReply(asked, bound), asked)).toBe(bound)
      const fixed = { bindAddress: "", bindPort: bound }
      expect(F.decodeTcpipForwardReply(F.encodeTcpipForwardReply(fixed, bound), fixed)).toBe(bound)
    }))
  })
})

describe("Forwarding messages: malformed input", () => {
  it("a port above 65535 is a ProtocolError naming the field", () => {
    const data = build((w) => w.string("h").uint32(65536).string("o").uint32(1))
    expect(protocolError(() => F.decodeDirectTcpip(data)).message).toBe("port to connect 65536 is out of range (0-65535)")
    const originator = build((w) => w.string("h").uint32(1).string("o").uint32(0xffffffff))
    expect(protocolError(() => F.decodeForwardedTcpip(originator)).message).toMatch(/^originator port 4294967295/)
    expect(protocolError(() => F.decodeTcpipForward(build((w) => w.string("").uint32(70000)))).message).toMatch(
      /^port to bind 70000/
    )
  })

  it("the reply to a port-0 tcpip-forward must carry a non-zero port", () => {
    const asked = { bindAddress: "", bindPort: 0 }
    expect(protocolError(() => F.decodeTcpipForwardReply(new Uint8Array(0), asked)).message).toMatch(/^truncated uint32/)
    expect(protocolError(() => F.decodeTcpipForwardReply(fromHex("00000000"), asked)).message).toBe(
      "allocated port 0 in the reply to tcpip-forward"
    )
    expect(protocolError(() => F.decodeTcpipForwardReply(fromHex("0000000100"), asked)).message).toBe(
      "1 trailing bytes after tcpip-forward reply"
    )
  })

  it("x11-req: the cookie must be hexadecimal, of even length, the protocol printable", () => {
    const request = (protocol: string, cookie: string) =>
      build((w) => w.boolean(false).string(protocol).string(cookie).uint32(0))
    for (const cookie of ["", "abc", "zz", "00 11"]) {
      expect(protocolError(() => F.decodeX11Request(request("MIT-MAGIC-COOKIE-1", cookie))).message).toMatch(
        /x11 authentication cookie/
      )
    }
    expect(protocolError(() => F.decodeX11Request(request("", "00"))).message).toBe("x11 authentication protocol is empty")
    expect(protocolError(() => F.decodeX11Request(request("MIT\n", "00"))).message).toMatch(/non-printable/)
  })

  it("streamlocal opens accept missing reserved fields but not extra bytes", () => {
    expect(F.decodeDirectStreamlocal(build((w) => w.string("/s")))).toEqual({ path: "/s" })
    expect(F.decodeForwardedStreamlocal(build((w) => w.string("/s")))).toEqual({ path: "/s" })
    expect(protocolError(() => F.decodeForwardedStreamlocal(build((w) => w.string("/s").string("").byte(0)))).message)
      .toBe("1 trailing bytes after forwarded-streamlocal@openssh.com")
  })

  it("a path that is not UTF-8 is a ProtocolError", () => {
    expect(protocolError(() => F.decodeStreamlocalForward(build((w) => w.string(fromHex("ff")))))).toBeDefined()
  })

  for (const codec of codecs) {
    it(`${codec.name}: every truncation and every extension decodes or throws a ProtocolError`, () => {
      fc.assert(fc.property(codec.value, fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 8 }), (value, at, extra) => {
        const data = codec.encode(value)
        returnsOrProtocolError(() => codec.decode(data.subarray(0, at % (data.length + 1))))
        returnsOrProtocolError(() => codec.decode(Uint8Array.of(...data, ...extra)))
      }), { numRuns: 200 })
    })

    it(`${codec.name}: random bytes decode or throw a ProtocolError, nothing else`, () => {
      fc.assert(fc.property(fc.uint8Array({ maxLength: 48 }), (garbage) => {
        returnsOrProtocolError(() => codec.decode(garbage))
      }), { numRuns: 1000 })
    })
  }

  it("a truncated fixed-length message names the missing field", () => {
    const data = F.encodeDirectTcpip({ host: "h", port: 1, originatorAddress: "o", originatorPort: 2 })
    expect(protocolError(() => F.decodeDirectTcpip(data.subarray(0, data.length - 1))).message).toBe(
      "truncated uint32: need 4 bytes, 3 left"
    )
  })
})
