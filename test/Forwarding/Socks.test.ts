import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import * as IpAddress from "../../src/internal/ipAddress.ts"
import * as Socks from "../../src/Forwarding/Socks.ts"
import { concat, fromHex, toHex, utf8 } from "../../src/internal/bytes.ts"
import { split } from "../chunks.ts"

/** Feeds chunks until the handshake is decided; the replies written along the way, and the decision. */
const run = (chunks: ReadonlyArray<Uint8Array>) => {
  let handshake = Socks.start
  const replies: Array<Uint8Array> = []
  for (let i = 0; i < chunks.length; i++) {
    const step = Socks.feed(handshake, chunks[i]!)
    replies.push(step.reply)
    if (step._tag === "NeedMore") {
      handshake = step.handshake
      continue
    }
    const unfed = concat(chunks.slice(i + 1))
    return {
      reply: toHex(concat(replies)),
      outcome: step._tag === "Connect"
        ? { _tag: step._tag, request: step.request, leftover: toHex(concat([step.leftover, unfed])) }
        : { _tag: step._tag, reason: step.reason }
    }
  }
  return { reply: toHex(concat(replies)), outcome: { _tag: "NeedMore" as const } }
}

const hex = (s: string) => fromHex(s.replace(/\s+/g, ""))

/** Byte-exact handshakes written from the SOCKS4, SOCKS4a and RFC 1928 documents. */
const vectors: ReadonlyArray<{
  readonly name: string
  readonly client: Uint8Array
  readonly reply: string
  readonly outcome: ReturnType<typeof run>["outcome"]
}> = [
  {
    name: "SOCKS4 CONNECT 66.102.7.99:80, user Fred",
    client: hex("04 01 0050 42660763 46726564 00"),
    reply: "",
    outcome: { _tag: "Connect", request: { version: 4, host: "66.102.7.99", port: 80, addressType: "ipv4", userId: "Fred" }, leftover: "" }
  },
  {
    name: "SOCKS4 with an empty user id",
    client: hex("04 01 1f90 7f000001 00"),
    reply: "",
    outcome: { _tag: "Connect", request: { version: 4, host: "127.0.0.1", port: 8080, addressType: "ipv4", userId: "" }, leftover: "" }
  },
  {
    name: "SOCKS4a CONNECT www.example.com:80 (DSTIP 0.0.0.1)",
    client: concat([hex("04 01 0050 00000001 46726564 00"), utf8("www.example.com"), hex("00")]),
    reply: "",
    outcome: { _tag: "Connect", request: { version: 4, host: "www.example.com", port: 80, addressType: "domain", userId: "Fred" }, leftover: "" }
  },
  {
    name: "SOCKS4 BIND is refused with 91",
    client: hex("04 02 0050 42660763 00"),
    reply: "005b000000000000",
    outcome: { _tag: "Refuse", reason: "SOCKS4 command 2 is not CONNECT" }
  },
  {
    name: "SOCKS4 to port 0 is refused",
    client: hex("04 01 0000 7f000001 00"),
    reply: "005b000000000000",
    outcome: { _tag: "Refuse", reason: "SOCKS4 destination port 0" }
  },
  {
    name: "SOCKS4a with a host name holding a space is refused",
    client: concat([hex("04 01 0050 000000ff 00"), utf8("a b"), hex("00")]),
    reply: "005b000000000000",
    outcome: { _tag: "Refuse", reason: "SOCKS4a host name is empty or not printable" }
  },
  {
    name: "SOCKS5 no-auth, CONNECT 192.0.2.7:80",
    client: hex("05 01 00  05 01 00 01 c0000207 0050"),
    reply: "0500",
    outcome: { _tag: "Connect", request: { version: 5, host: "192.0.2.7", port: 80, addressType: "ipv4" }, leftover: "" }
  },
  {
    name: "SOCKS5 offering GSSAPI, user/password and no-auth, CONNECT example.com:443",
    client: concat([hex("05 03 01 02 00  05 01 00 03 0b"), utf8("example.com"), hex("01bb")]),
    reply: "0500",
    outcome: { _tag: "Connect", request: { version: 5, host: "example.com", port: 443, addressType: "domain" }, leftover: "" }
  },
  {
    name: "SOCKS5 CONNECT [2001:db8::1]:22",
    client: hex("05 01 00  05 01 00 04 20010db8000000000000000000000001 0016"),
    reply: "0500",
    outcome: { _tag: "Connect", request: { version: 5, host: "2001:db8::1", port: 22, addressType: "ipv6" }, leftover: "" }
  },
  {
    name: "SOCKS5 offering only username/password is told no acceptable method",
    client: hex("05 01 02"),
    reply: "05ff",
    outcome: { _tag: "Refuse", reason: "SOCKS5 client offers no method without authentication" }
  },
  {
    name: "SOCKS5 offering no method at all",
    client: hex("05 00"),
    reply: "05ff",
    outcome: { _tag: "Refuse", reason: "SOCKS5 client offers no method without authentication" }
  },
  {
    name: "SOCKS5 BIND: command not supported (07)",
    client: hex("05 01 00  05 02 00 01 c0000207 0050"),
    reply: "0500" + "05070001000000000000",
    outcome: { _tag: "Refuse", reason: "SOCKS5 command 2 is not CONNECT" }
  },
  {
    name: "SOCKS5 UDP ASSOCIATE: command not supported (07)",
    client: hex("05 01 00  05 03 00 01 00000000 0000"),
    reply: "0500" + "05070001000000000000",
    outcome: { _tag: "Refuse", reason: "SOCKS5 command 3 is not CONNECT" }
  },
  {
    name: "SOCKS5 address type 5: address type not supported (08)",
    client: hex("05 01 00  05 01 00 05 00000000 0000"),
    reply: "0500" + "05080001000000000000",
    outcome: { _tag: "Refuse", reason: "SOCKS5 address type 5" }
  },
  {
    name: "SOCKS5 request with version 4: general failure (01)",
    client: hex("05 01 00  04 01 00 01 7f000001 0050"),
    reply: "0500" + "05010001000000000000",
    outcome: { _tag: "Refuse", reason: "SOCKS5 request version 4" }
  },
  {
    name: "SOCKS5 with a non-zero reserved byte",
    client: hex("05 01 00  05 01 07 01 7f000001 0050"),
    reply: "0500" + "05010001000000000000",
    outcome: { _tag: "Refuse", reason: "SOCKS5 reserved byte 7 is not 0" }
  },
  {
    name: "SOCKS5 with an empty domain name",
    client: hex("05 01 00  05 01 00 03 00 0050"),
    reply: "0500" + "05010001000000000000",
    outcome: { _tag: "Refuse", reason: "SOCKS5 domain name is empty or not printable" }
  },
  {
    name: "an HTTP request is not SOCKS: refused with nothing to write",
    client: utf8("GET / HTTP/1.1\r\n\r\n"),
    reply: "",
    outcome: { _tag: "Refuse", reason: "not a SOCKS4 or SOCKS5 handshake (first byte 0x47)" }
  }
]

describe("SOCKS handshake: byte-exact vectors", () => {
  for (const v of vectors) {
    it(v.name, () => {
      expect(run([v.client])).toEqual({ reply: v.reply, outcome: v.outcome })
    })
  }

  it("SOCKS5 writes the method choice as soon as the greeting is complete, once", () => {
    const greeting = Socks.feed(Socks.start, hex("05 02 00 02"))
    expect(greeting._tag).toBe("NeedMore")
    expect(toHex(greeting.reply)).toBe("0500")
    if (greeting._tag !== "NeedMore") return
    const partial = Socks.feed(greeting.handshake, hex("05 01 00"))
    expect(partial).toMatchObject({ _tag: "NeedMore", reply: new Uint8Array(0) })
    if (partial._tag !== "NeedMore") return
    const request = Socks.feed(partial.handshake, hex("01 7f000001 0016"))
    expect(request._tag).toBe("Connect")
    expect(toHex(request.reply)).toBe("")
  })

  it("a partial SOCKS4 request needs more and writes nothing", () => {
    expect(Socks.feed(Socks.start, hex("04 01 0050 7f00"))).toMatchObject({ _tag: "NeedMore", reply: new Uint8Array(0) })
    expect(Socks.feed(Socks.start, new Uint8Array(0))).toMatchObject({ _tag: "NeedMore" })
  })
})

describe("SOCKS handshake: split at every offset", () => {
  for (const v of vectors) {
    it(`${v.name}: two pieces, any cut`, () => {
      const whole = run([v.client])
      for (let at = 0; at <= v.client.length; at++) {
        expect(run([v.client.subarray(0, at), v.client.subarray(at)])).toEqual(whole)
      }
    })
  }

  it("one byte at a time, and any number of cuts, give the same replies and outcome", () => {
    fc.assert(
      fc.property(fc.constantFrom(...vectors), fc.array(fc.nat(), { maxLength: 8 }), (v, cuts) => {
        const whole = run([v.client])
        expect(run(split(v.client, cuts))).toEqual(whole)
        expect(run(Array.from(v.client, (b) => Uint8Array.of(b)))).toEqual(whole)
      }),
      { numRuns: 500 }
    )
  })

  it("bytes pipelined after the request come back as leftover, however they are cut", () => {
    const pipelined = fc.uint8Array({ minLength: 1, maxLength: 64 })
    const connects = vectors.filter((v) => v.outcome._tag === "Connect")
    fc.assert(
      fc.property(fc.constantFrom(...connects), pipelined, fc.array(fc.nat(), { maxLength: 6 }), (v, data, cuts) => {
        const result = run(split(concat([v.client, data]), cuts))
        expect(result.outcome).toEqual({ ...v.outcome, leftover: toHex(data) })
        expect(result.reply).toBe(v.reply)
      }),
      { numRuns: 300 }
    )
  })

  it("a large first chunk keeps everything after the request", () => {
    const data = new Uint8Array(64 * 1024).fill(0x61)
    const step = Socks.feed(Socks.start, concat([hex("05 01 00  05 01 00 01 7f000001 0050"), data]))
    expect(step._tag).toBe("Connect")
    if (step._tag === "Connect") expect(step.leftover).toEqual(data)
  })
})

describe("SOCKS handshake: generated requests", () => {
  const port = fc.integer({ min: 1, max: 0xffff })
  const domain = fc.string({ unit: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)), minLength: 1, maxLength: 255 })
  const v4 = fc.uint8Array({ minLength: 4, maxLength: 4 })
  const v6 = fc.uint8Array({ minLength: 16, maxLength: 16 })
  const be16 = (n: number) => Uint8Array.of(n >> 8, n & 0xff)

  it("SOCKS5 CONNECT to any address or name, with any methods offering no-auth", () => {
    const methods = fc.uint8Array({ maxLength: 20 }).map((m) => Uint8Array.of(...m, 0))
    const address = fc.oneof(
      v4.map((b) => [Uint8Array.of(1, ...b), IpAddress.formatIpv4(b), "ipv4"] as const),
      v6.map((b) => [Uint8Array.of(4, ...b), IpAddress.formatIpv6(b), "ipv6"] as const),
      domain.map((d) => [Uint8Array.of(3, d.length, ...utf8(d)), d, "domain"] as const)
    )
    fc.assert(
      fc.property(methods, address, port, fc.array(fc.nat(), { maxLength: 5 }), (m, [atyp, host, addressType], p, cuts) => {
        const client = concat([Uint8Array.of(5, m.length, ...m), Uint8Array.of(5, 1, 0), atyp, be16(p)])
        expect(run(split(client, cuts))).toEqual({
          reply: "0500",
          outcome: { _tag: "Connect", request: { version: 5, host, port: p, addressType }, leftover: "" }
        })
      }),
      { numRuns: 500 }
    )
  })

  it("SOCKS4 and SOCKS4a CONNECT within the size bound", () => {
    const userId = fc.string({ unit: fc.integer({ min: 1, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 64 })
    fc.assert(
      fc.property(port, v4, userId, fc.option(domain, { nil: undefined }), fc.array(fc.nat(), { maxLength: 5 }), (p, ip, user, name, cuts) => {
        const dstIp = name === undefined ? ip : Uint8Array.of(0, 0, 0, 1 + (ip[3]! % 255))
        if (name === undefined && ip[0] === 0 && ip[1] === 0 && ip[2] === 0 && ip[3] !== 0) return
        const client = concat([
          Uint8Array.of(4, 1),
          be16(p),
          dstIp,
          utf8(user),
          Uint8Array.of(0),
          name === undefined ? new Uint8Array(0) : Uint8Array.of(...utf8(name), 0)
        ])
        const host = name ?? IpAddress.formatIpv4(ip)
        expect(run(split(client, cuts))).toEqual({
          reply: "",
          outcome: {
            _tag: "Connect",
            request: { version: 4, host, port: p, addressType: name === undefined ? "ipv4" : "domain", userId: user },
            leftover: ""
          }
        })
      }),
      { numRuns: 500 }
    )
  })
})

describe("SOCKS handshake: hostile and garbage input", () => {
  it(`a SOCKS4 user id that never ends is refused at ${Socks.MAX_HANDSHAKE_BYTES} bytes`, () => {
    let handshake = Socks.start
    const header = hex("04 01 0050 7f000001")
    let step = Socks.feed(handshake, header)
    for (let i = 0; step._tag === "NeedMore"; i++) {
      handshake = step.handshake
      expect(handshake.buffered.length).toBeLessThan(Socks.MAX_HANDSHAKE_BYTES)
      step = Socks.feed(handshake, new Uint8Array(100).fill(0x41))
      expect(i).toBeLessThan(10)
    }
    expect(step).toEqual({
      _tag: "Refuse",
      reply: fromHex("005b000000000000"),
      reason: `handshake longer than ${Socks.MAX_HANDSHAKE_BYTES} bytes`
    })
  })

  it("one oversized chunk is refused without keeping it", () => {
    const step = Socks.feed(Socks.start, concat([hex("04 01 0050 00000001"), new Uint8Array(1 << 20).fill(0x41)]))
    expect(step).toMatchObject({ _tag: "Refuse", reason: `handshake longer than ${Socks.MAX_HANDSHAKE_BYTES} bytes` })
  })

  it("a request of exactly the bound is still accepted", () => {
    const name = "h".repeat(Socks.MAX_HANDSHAKE_BYTES - 8 - 1 - 1)
    const client = concat([hex("04 01 0050 00000001 00"), utf8(name), hex("00")])
    expect(client.length).toBe(Socks.MAX_HANDSHAKE_BYTES)
    expect(run([client]).outcome).toMatchObject({ _tag: "Connect", request: { host: name } })
    expect(run([concat([client, hex("00")])]).outcome).toMatchObject({ _tag: "Connect", leftover: "00" })
  })

  it("random bytes, cut anywhere, never throw and always decide or ask for more", () => {
    const garbage = fc.oneof(
      fc.uint8Array({ maxLength: 700 }),
      fc.uint8Array({ maxLength: 700 }).map((b) => Uint8Array.of(4, ...b)),
      fc.uint8Array({ maxLength: 700 }).map((b) => Uint8Array.of(5, ...b)),
      fc.uint8Array({ maxLength: 40 }).map((b) => Uint8Array.of(5, 1, 0, 5, ...b))
    )
    fc.assert(
      fc.property(garbage, fc.array(fc.nat(), { maxLength: 8 }), (bytes, cuts) => {
        const result = run(split(bytes, cuts))
        expect(["NeedMore", "Connect", "Refuse"]).toContain(result.outcome._tag)
        expect(result).toEqual(run([bytes]))
        if (result.outcome._tag === "NeedMore") expect(bytes.length).toBeLessThan(Socks.MAX_HANDSHAKE_BYTES)
        if (result.outcome._tag === "Connect") {
          expect(result.outcome.request.port).toBeGreaterThan(0)
          expect(result.outcome.request.host.length).toBeGreaterThan(0)
        }
      }),
      { numRuns: 2000 }
    )
  })
})

describe("SOCKS replies", () => {
  const v4: Socks.SocksRequest = { version: 4, host: "192.0.2.7", port: 80, addressType: "ipv4", userId: "" }
  const v5: Socks.SocksRequest = { version: 5, host: "example.com", port: 443, addressType: "domain" }

  it("SOCKS4: 90 granted, 91 for any failure, 8 bytes", () => {
    expect(toHex(Socks.connectSucceeded(v4))).toBe("005a000000000000")
    expect(toHex(Socks.connectFailed(v4, Socks.Socks5Reply.connectionRefused))).toBe("005b000000000000")
  })

  it("SOCKS5: the reply code and the bound address in its own type", () => {
    expect(toHex(Socks.connectSucceeded(v5))).toBe("05000001000000000000")
    expect(toHex(Socks.connectSucceeded(v5, { host: "127.0.0.1", port: 40000 }))).toBe("050000017f0000019c40")
    expect(toHex(Socks.connectSucceeded(v5, { host: "::1", port: 1 }))).toBe(
      "05000004" + "00000000000000000000000000000001" + "0001"
    )
    expect(toHex(Socks.socks5Reply(0, { host: "ab.c", port: 2 }))).toBe("05000003" + "04" + "61622e63" + "0002")
    expect(toHex(Socks.socks5Reply(0, { host: "x".repeat(256), port: 2 }))).toBe("05000001000000000002")
    expect(toHex(Socks.connectFailed(v5, Socks.Socks5Reply.connectionRefused))).toBe("05050001000000000000")
    expect(toHex(Socks.connectFailed(v5))).toBe("05010001000000000000")
  })

  it("channel open failures map onto SOCKS5 reply codes", () => {
    expect([1, 2, 3, 4, 99].map(Socks.replyForChannelOpenFailure)).toEqual([2, 4, 1, 1, 1])
  })
})

describe("IpAddress", () => {
  it("IPv4 text round trip, and what is not an address", () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: 4, maxLength: 4 }), (b) => {
      expect(IpAddress.parseIpv4(IpAddress.formatIpv4(b))).toEqual(b)
    }))
    for (const bad of ["", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "a.b.c.d", " 1.2.3.4"]) {
      expect(IpAddress.parseIpv4(bad)).toBeUndefined()
    }
  })

  it("IPv6: RFC 5952 canonical text, and parse ∘ format = id", () => {
    const cases: ReadonlyArray<readonly [string, string]> = [
      ["0:0:0:0:0:0:0:0", "::"],
      ["0:0:0:0:0:0:0:1", "::1"],
      ["2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db8::1"],
      ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"],
      ["2001:0:0:1:0:0:0:1", "2001:0:0:1::1"],
      ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
      ["1::", "1::"],
      ["::ffff:192.0.2.1", "::ffff:c000:201"],
      ["1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0"]
    ]
    for (const [input, canonical] of cases) expect(IpAddress.formatIpv6(IpAddress.parseIpv6(input)!)).toBe(canonical)
    fc.assert(fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (b) => {
      expect(IpAddress.parseIpv6(IpAddress.formatIpv6(b))).toEqual(b)
    }), { numRuns: 500 })
    for (const bad of ["", ":", ":::", "1::2::3", "1:2:3:4:5:6:7", "1:2:3:4:5:6:7:8:9", "12345::", "fe80::1%eth0", "[::1]", "1.2.3.4::", "::1.2.3"]) {
      expect(IpAddress.parseIpv6(bad)).toBeUndefined()
    }
  })
})
