import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import * as X11 from "../../src/Forwarding/X11.ts"
import { concat, fromHex, toHex, utf8 } from "../../src/internal/bytes.ts"
import { ConfigParseError, ProtocolError } from "../../src/SshError.ts"
import { thrownReason } from "../Wire/throws.ts"

const unix = (n: number) => ({ _tag: "Unix", path: `/tmp/.X11-unix/X${n}` })

describe("X11: DISPLAY", () => {
  const cases: ReadonlyArray<readonly [string, X11.Display]> = [
    [":0", { displayNumber: 0, screen: 0, endpoint: unix(0) } as X11.Display],
    [":0.1", { displayNumber: 0, screen: 1, endpoint: unix(0) } as X11.Display],
    [":12", { displayNumber: 12, screen: 0, endpoint: unix(12) } as X11.Display],
    ["unix:0", { displayNumber: 0, screen: 0, endpoint: unix(0) } as X11.Display],
    ["unix:3.2", { displayNumber: 3, screen: 2, endpoint: unix(3) } as X11.Display],
    ["unix/:1", { displayNumber: 1, screen: 0, endpoint: unix(1) } as X11.Display],
    ["local/myhost:1", { displayNumber: 1, screen: 0, endpoint: unix(1) } as X11.Display],
    ["myhost/unix:0", { displayNumber: 0, screen: 0, endpoint: unix(0) } as X11.Display],
    ["::0", { displayNumber: 0, screen: 0, endpoint: unix(0) } as X11.Display],
    ["localhost:10.0", { displayNumber: 10, screen: 0, endpoint: { _tag: "Tcp", host: "localhost", port: 6010 } }],
    ["192.0.2.5:0", { displayNumber: 0, screen: 0, endpoint: { _tag: "Tcp", host: "192.0.2.5", port: 6000 } }],
    ["tcp/xserver.example:2.1", { displayNumber: 2, screen: 1, endpoint: { _tag: "Tcp", host: "xserver.example", port: 6002 } }],
    ["tcp/:4", { displayNumber: 4, screen: 0, endpoint: { _tag: "Tcp", host: "localhost", port: 6004 } }],
    ["inet6/[::1]:3", { displayNumber: 3, screen: 0, endpoint: { _tag: "Tcp", host: "::1", port: 6003 } }],
    ["[2001:db8::1]:0", { displayNumber: 0, screen: 0, endpoint: { _tag: "Tcp", host: "2001:db8::1", port: 6000 } }],
    [
      "/private/tmp/com.apple.launchd.AbC123/org.xquartz:0",
      { displayNumber: 0, screen: 0, endpoint: { _tag: "Unix", path: "/private/tmp/com.apple.launchd.AbC123/org.xquartz:0" } }
    ],
    [
      "/private/tmp/com.apple.launchd.AbC123/org.xquartz:0.1",
      { displayNumber: 0, screen: 1, endpoint: { _tag: "Unix", path: "/private/tmp/com.apple.launchd.AbC123/org.xquartz:0" } }
    ],
    ["/tmp/.X11-unix/X7", { displayNumber: 7, screen: 0, endpoint: { _tag: "Unix", path: "/tmp/.X11-unix/X7" } }],
    ["/run/xsock", { displayNumber: 0, screen: 0, endpoint: { _tag: "Unix", path: "/run/xsock" } }],
    ["host:59535", { displayNumber: 59535, screen: 0, endpoint: { _tag: "Tcp", host: "host", port: 65535 } }]
  ]
  for (const [display, expected] of cases) {
    it(display, () => expect(X11.parseDisplay(display)).toEqual(expected))
  }

  const invalid: ReadonlyArray<readonly [string, string]> = [
    ["", 'no ":display"'],
    ["localhost", 'no ":display"'],
    ["localhost:", "the display number is not [0-9]+ or [0-9]+.[0-9]+"],
    [":x", "the display number is not [0-9]+ or [0-9]+.[0-9]+"],
    [":0.", "the display number is not [0-9]+ or [0-9]+.[0-9]+"],
    [":-1", "the display number is not [0-9]+ or [0-9]+.[0-9]+"],
    ["decnet/host:0", 'unknown protocol "decnet"'],
    ["host:59536", "display 59536 is beyond the last TCP port"],
    ["tcp/[]:0", 'bad host ""'],
    ["[::1:0", 'bad host "[::1"'],
    ["a b:0", 'bad host "a b"']
  ]
  for (const [display, problem] of invalid) {
    it(`refuses ${JSON.stringify(display)}`, () => {
      expect(thrownReason(ConfigParseError, () => X11.parseDisplay(display)).message).toBe(
        `bad DISPLAY ${JSON.stringify(display)}: ${problem}`
      )
    })
  }

  it("anything parses or throws a ConfigParseError", () => {
    fc.assert(fc.property(fc.string({ unit: fc.constantFrom(..."01:./[]unixtcp ".split("")), maxLength: 16 }), (d) => {
      try {
        X11.parseDisplay(d)
      } catch (e) {
        expect(e).toBeInstanceOf(ConfigParseError)
      }
    }), { numRuns: 2000 })
  })
})

describe("X11: cookies and xauth", () => {
  it("a fake cookie is 16 random bytes and their hex", () => {
    const fake = X11.fakeCookie()
    expect(fake.protocol).toBe("MIT-MAGIC-COOKIE-1")
    expect(fake.data.length).toBe(16)
    expect(fake.hex).toBe(toHex(fake.data))
    expect(fake.hex).toMatch(/^[0-9a-f]{32}$/)
    expect(X11.fakeCookie().hex).not.toBe(fake.hex)
    expect(X11.fakeCookie(fromHex("00112233445566778899aabbccddeeff")).hex).toBe("00112233445566778899aabbccddeeff")
  })

  it("xauth is asked about localhost displays under their unix name", () => {
    expect(X11.xauthDisplayName("localhost:10.0")).toBe("unix:10.0")
    expect(X11.xauthDisplayName(":0")).toBe(":0")
    expect(X11.xauthDisplayName("otherhost:1")).toBe("otherhost:1")
  })

  const output = [
    "myhost/unix:0  MIT-MAGIC-COOKIE-1  0123456789ABCDEF0123456789abcdef",
    "myhost/unix:0  XDM-AUTHORIZATION-1  00112233445566778899aabbccddeeff",
    "myhost/unix:10  MIT-MAGIC-COOKIE-1  ffeeddccbbaa99887766554433221100",
    "#ffff#6d79686f7374#:11  MIT-MAGIC-COOKIE-1  aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "xauth:  file /home/u/.Xauthority does not exist",
    "",
    "broken/unix:0  MIT-MAGIC-COOKIE-1  xyz",
    "   "
  ].join("\n")

  it("xauth list output: display, protocol, hex per line; other lines skipped", () => {
    expect(X11.parseXauthList(output)).toEqual([
      { display: "myhost/unix:0", protocol: "MIT-MAGIC-COOKIE-1", hex: "0123456789abcdef0123456789abcdef" },
      { display: "myhost/unix:0", protocol: "XDM-AUTHORIZATION-1", hex: "00112233445566778899aabbccddeeff" },
      { display: "myhost/unix:10", protocol: "MIT-MAGIC-COOKIE-1", hex: "ffeeddccbbaa99887766554433221100" },
      { display: "#ffff#6d79686f7374#:11", protocol: "MIT-MAGIC-COOKIE-1", hex: "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" }
    ])
  })

  it("the real cookie is the first of its protocol for the display number", () => {
    const entries = X11.parseXauthList(output)
    expect(X11.findCookie(entries, X11.parseDisplay(":0"))).toEqual({
      protocol: "MIT-MAGIC-COOKIE-1",
      data: fromHex("0123456789abcdef0123456789abcdef")
    })
    expect(toHex(X11.findCookie(entries, X11.parseDisplay("localhost:10.0"))!.data)).toBe("ffeeddccbbaa99887766554433221100")
    expect(toHex(X11.findCookie(entries, X11.parseDisplay(":11"))!.data)).toBe("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
    expect(X11.findCookie(entries, X11.parseDisplay(":0"), "XDM-AUTHORIZATION-1")?.protocol).toBe("XDM-AUTHORIZATION-1")
    expect(X11.findCookie(entries, X11.parseDisplay(":3"))).toBeUndefined()
    expect(X11.findCookie([], X11.parseDisplay(":0"))).toBeUndefined()
  })
})

describe("X11: the server's proxy display", () => {
  it("DISPLAY for the proxy, and the xauth input filing the session's cookie", () => {
    expect(X11.proxyDisplay(10, 0)).toBe("localhost:10.0")
    expect(X11.parseDisplay(X11.proxyDisplay(10, 2))).toEqual({
      displayNumber: 10,
      screen: 2,
      endpoint: { _tag: "Tcp", host: "localhost", port: 6010 }
    })
    expect(X11.xauthAddInput(10, 0, "MIT-MAGIC-COOKIE-1", "00ff")).toBe(
      "remove unix:10.0\nadd unix:10.0 MIT-MAGIC-COOKIE-1 00ff\n"
    )
  })

  it("a peer's protocol or cookie that could smuggle xauth commands is a ProtocolError", () => {
    for (const [protocol, cookie] of [
      ["MIT-MAGIC-COOKIE-1 extra", "00"],
      ["MIT\nremove *", "00"],
      ["", "00"],
      ["MIT-MAGIC-COOKIE-1", "00 11"],
      ["MIT-MAGIC-COOKIE-1", "0\nadd"],
      ["MIT-MAGIC-COOKIE-1", "abc"],
      ["MIT-MAGIC-COOKIE-1", ""]
    ] as const) {
      expect(() => X11.xauthAddInput(10, 0, protocol, cookie)).toThrow(ProtocolError)
    }
  })
})

/** A Connection Setup packet as an X client writes it, in either byte order. */
const setupPacket = (
  order: "B" | "l",
  protocol: string,
  data: Uint8Array,
  options: { readonly major?: number; readonly minor?: number } = {}
): Uint8Array => {
  const card16 = (n: number) => (order === "B" ? [n >> 8, n & 0xff] : [n & 0xff, n >> 8])
  const pad = (n: number) => new Uint8Array((4 - (n % 4)) % 4)
  const name = utf8(protocol)
  return concat([
    Uint8Array.of(order.charCodeAt(0), 0, ...card16(options.major ?? 11), ...card16(options.minor ?? 0)),
    Uint8Array.of(...card16(name.length), ...card16(data.length), 0, 0),
    name,
    pad(name.length),
    data,
    pad(data.length)
  ])
}

describe("X11: connection setup", () => {
  const fake = X11.fakeCookie(fromHex("000102030405060708090a0b0c0d0e0f"))
  const real = { protocol: "MIT-MAGIC-COOKIE-1", data: fromHex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff") }

  it("the packet's layout, big-endian: 12 bytes, the name padded to 20, the data (16, no padding)", () => {
    const packet = setupPacket("B", fake.protocol, fake.data)
    expect(toHex(packet.subarray(0, 12))).toBe("4200000b0000" + "0012" + "0010" + "0000")
    expect(packet.length).toBe(12 + 20 + 16)
  })

  for (const order of ["B", "l"] as const) {
    it(`byte order "${order}": the fake cookie is replaced by the real one, the rest kept`, () => {
      const after = utf8("request bytes")
      const check = X11.rewriteSetup(concat([setupPacket(order, fake.protocol, fake.data, { minor: 3 }), after]), fake, real)
      expect(check).toEqual({ _tag: "Accept", bytes: concat([setupPacket(order, real.protocol, real.data, { minor: 3 }), after]) })
    })

    it(`byte order "${order}": a real cookie of another length and protocol rewrites the lengths`, () => {
      const other = { protocol: "XDM-AUTHORIZATION-1", data: fromHex("0102030405") }
      const check = X11.rewriteSetup(setupPacket(order, fake.protocol, fake.data), fake, other)
      expect(check).toEqual({ _tag: "Accept", bytes: setupPacket(order, other.protocol, other.data) })
    })

    it(`byte order "${order}": a wrong cookie, protocol or version is rejected`, () => {
      const wrong = fromHex("000102030405060708090a0b0c0d0eff")
      expect(X11.rewriteSetup(setupPacket(order, fake.protocol, wrong), fake, real)).toEqual({
        _tag: "Reject",
        reason: "authorization data does not match the fake cookie"
      })
      expect(X11.rewriteSetup(setupPacket(order, "MIT-MAGIC-COOKIE-2", fake.data), fake, real)).toEqual({
        _tag: "Reject",
        reason: "authorization protocol differs from the fake cookie's"
      })
      expect(X11.rewriteSetup(setupPacket(order, fake.protocol, fake.data.subarray(0, 8)), fake, real)).toEqual({
        _tag: "Reject",
        reason: "authorization protocol or data length differs from the fake cookie's"
      })
      expect(X11.rewriteSetup(setupPacket(order, "", new Uint8Array(0)), fake, real)._tag).toBe("Reject")
      expect(X11.rewriteSetup(setupPacket(order, fake.protocol, fake.data, { major: 10 }), fake, real)).toEqual({
        _tag: "Reject",
        reason: "X protocol version 10 is not 11"
      })
    })

    it(`byte order "${order}": every prefix of a good packet needs more, and says how much`, () => {
      const packet = setupPacket(order, fake.protocol, fake.data)
      for (let at = 0; at < packet.length; at++) {
        const check = X11.rewriteSetup(packet.subarray(0, at), fake, real)
        expect(check).toEqual({ _tag: "NeedMore", needed: at < 12 ? 12 : packet.length })
      }
      expect(X11.rewriteSetup(packet, fake, real)._tag).toBe("Accept")
    })
  }

  it("a bad byte order is rejected at once", () => {
    expect(X11.rewriteSetup(Uint8Array.of(0x47), fake, real)).toEqual({ _tag: "Reject", reason: "bad byte order 0x47" })
  })

  it("a client announcing huge fields is rejected from its header, without waiting for them", () => {
    const header = Uint8Array.of(0x42, 0, 0, 11, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0)
    expect(X11.rewriteSetup(header, fake, real)._tag).toBe("Reject")
  })

  it("with the real fake cookie, arbitrary cookies of the right length are rejected, never accepted", () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.constantFrom("B" as const, "l" as const), (guess, order) => {
      const check = X11.rewriteSetup(setupPacket(order, fake.protocol, guess), fake, real)
      expect(check._tag).toBe(toHex(guess) === fake.hex ? "Accept" : "Reject")
    }), { numRuns: 500 })
  })

  it("garbage never throws, and never asks for more than the fake cookie's packet", () => {
    const bound = setupPacket("B", fake.protocol, fake.data).length
    fc.assert(fc.property(fc.uint8Array({ maxLength: 80 }), fc.constantFrom(0x42, 0x6c, 0), (bytes, order) => {
      const check = X11.rewriteSetup(Uint8Array.of(order, ...bytes), fake, real)
      if (check._tag === "NeedMore") expect(check.needed).toBeLessThanOrEqual(bound)
    }), { numRuns: 2000 })
  })
})
