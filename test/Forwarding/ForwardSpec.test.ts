import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import * as Spec from "../../src/Forwarding/ForwardSpec.ts"
import { ConfigParseError } from "../../src/SshError.ts"
import { thrownReason } from "../Wire/throws.ts"

const problem = (f: () => unknown): string => thrownReason(ConfigParseError, f).message

describe("ForwardSpec: -L", () => {
  const cases: ReadonlyArray<readonly [string, Spec.Forward]> = [
    ["8080:localhost:80", { listen: { port: 8080 }, connect: { host: "localhost", port: 80 } }],
    ["127.0.0.1:8080:example.com:80", { listen: { host: "127.0.0.1", port: 8080 }, connect: { host: "example.com", port: 80 } }],
    ["[::1]:8080:[fe80::1]:80", { listen: { host: "::1", port: 8080 }, connect: { host: "fe80::1", port: 80 } }],
    ["8080:[2001:db8::1]:443", { listen: { port: 8080 }, connect: { host: "2001:db8::1", port: 443 } }],
    ["*:8080:db:5432", { listen: { host: "*", port: 8080 }, connect: { host: "db", port: 5432 } }],
    [":8080:db:5432", { listen: { host: "", port: 8080 }, connect: { host: "db", port: 5432 } }],
    ["localhost:8080:db:5432", { listen: { host: "localhost", port: 8080 }, connect: { host: "db", port: 5432 } }],
    ["8080:/run/app.sock", { listen: { port: 8080 }, connect: { path: "/run/app.sock" } }],
    ["localhost:8080:/run/app.sock", { listen: { host: "localhost", port: 8080 }, connect: { path: "/run/app.sock" } }],
    ["/tmp/local.sock:db:5432", { listen: { path: "/tmp/local.sock" }, connect: { host: "db", port: 5432 } }],
    ["/tmp/a.sock:/tmp/b.sock", { listen: { path: "/tmp/a.sock" }, connect: { path: "/tmp/b.sock" } }],
    ["[/tmp/with:colon]:/b", { listen: { path: "/tmp/with:colon" }, connect: { path: "/b" } }],
    ["/tmp/with\\:colon:/b", { listen: { path: "/tmp/with:colon" }, connect: { path: "/b" } }],
    ["  8080:h:1  ", { listen: { port: 8080 }, connect: { host: "h", port: 1 } }],
    ["65535:h:65535", { listen: { port: 65535 }, connect: { host: "h", port: 65535 } }]
  ]
  for (const [spec, expected] of cases) {
    it(spec, () => expect(Spec.parseLocalForward(spec)).toEqual(expected))
  }

  const invalid: ReadonlyArray<readonly [string, string | RegExp]> = [
    ["", "it is empty"],
    ["8080", "no destination (host:hostport or a socket path)"],
    ["8080:host", "no destination (host:hostport or a socket path)"],
    ["65536:host:80", "port 65536 is out of range (0-65535)"],
    ["8080:host:65536", "host port 65536 is out of range (0-65535)"],
    ["8080:host:99999999", 'host port "99999999" is not a number'],
    ["0:host:80", "the local port is 0"],
    ["8080:host:0", "the port to connect to is 0"],
    ["8080::80", "the host to connect to is empty"],
    ["http:host:80", 'port "http" is not a number'],
    ["8080:host:-1", 'host port "-1" is not a number'],
    ["[::1:8080:host:80", 'unbalanced "[" at offset 0'],
    ["8080:[::1]x:80", '"]" at offset 9 is not the end of a field'],
    ["a:1:b:2:c", "more than 4 fields"],
    ["8080:host:80:", 'it ends with ":"'],
    ["8080:host\\", "it ends with a backslash"],
    ["/tmp/s:8080", "a socket path cannot be followed by a port"],
    ["/tmp/s:8080:h:1", "a socket path cannot be followed by a port and a destination"],
    ["a/b:8080:h:1", "a socket path cannot be followed by a port and a destination"],
    ["8080:a/b:80", 'host "a/b" contains "/"'],
    [`8080:${"h".repeat(1025)}:80`, "host is longer than 1024 characters"],
    [`/${"p".repeat(107)}:h:80`, "socket path is longer than 107 bytes"]
  ]
  for (const [spec, message] of invalid) {
    it(`refuses ${JSON.stringify(spec.length > 40 ? spec.slice(0, 40) + "…" : spec)}`, () => {
      const error = problem(() => Spec.parseLocalForward(spec))
      expect(error.startsWith(`bad forwarding specification ${JSON.stringify(spec)}: `)).toBe(true)
      if (typeof message === "string") expect(error).toBe(`bad forwarding specification ${JSON.stringify(spec)}: ${message}`)
    })
  }
})

describe("ForwardSpec: -R", () => {
  it("port 0 asks the server to pick one", () => {
    expect(Spec.parseRemoteForward("0:localhost:22")).toEqual({ listen: { port: 0 }, connect: { host: "localhost", port: 22 } })
  })

  it("without a destination it is a SOCKS listener on the server", () => {
    expect(Spec.parseRemoteForward("1080")).toEqual({ listen: { port: 1080 } })
    expect(Spec.parseRemoteForward("*:1080")).toEqual({ listen: { host: "*", port: 1080 } })
    expect(Spec.parseRemoteForward("[::]:0")).toEqual({ listen: { host: "::", port: 0 } })
  })

  it("Unix sockets on either side", () => {
    expect(Spec.parseRemoteForward("/run/user/1000/remote.sock:/tmp/local.sock")).toEqual({
      listen: { path: "/run/user/1000/remote.sock" },
      connect: { path: "/tmp/local.sock" }
    })
    expect(Spec.parseRemoteForward("2222:/tmp/local.sock")).toEqual({ listen: { port: 2222 }, connect: { path: "/tmp/local.sock" } })
    expect(Spec.parseRemoteForward("/remote.sock")).toEqual({ listen: { path: "/remote.sock" } })
  })

  it("refuses what -L refuses, but port 0", () => {
    expect(problem(() => Spec.parseRemoteForward("70000:h:1"))).toMatch(/port 70000 is out of range/)
    expect(problem(() => Spec.parseRemoteForward("1:h:0"))).toMatch(/the port to connect to is 0/)
    expect(problem(() => Spec.parseRemoteForward("x"))).toMatch(/port "x" is not a number/)
  })
})

describe("ForwardSpec: -D and -W", () => {
  it("-D [bind_address:]port", () => {
    expect(Spec.parseDynamicForward("1080")).toEqual({ listen: { port: 1080 } })
    expect(Spec.parseDynamicForward("localhost:1080")).toEqual({ listen: { host: "localhost", port: 1080 } })
    expect(Spec.parseDynamicForward("[::1]:1080")).toEqual({ listen: { host: "::1", port: 1080 } })
    expect(Spec.parseDynamicForward(":1080")).toEqual({ listen: { host: "", port: 1080 } })
    expect(Spec.parseDynamicForward("/tmp/socks.sock")).toEqual({ listen: { path: "/tmp/socks.sock" } })
  })

  it("-D refuses a destination, port 0 and out-of-range ports", () => {
    expect(problem(() => Spec.parseDynamicForward("1080:h:80"))).toMatch(/a dynamic forwarding is only \[bind_address:\]port$/)
    expect(problem(() => Spec.parseDynamicForward("1080:/tmp/s"))).toMatch(/a dynamic forwarding has no destination$/)
    expect(problem(() => Spec.parseDynamicForward("0"))).toMatch(/the local port is 0$/)
    expect(problem(() => Spec.parseDynamicForward("65536"))).toMatch(/port 65536 is out of range/)
    expect(problem(() => Spec.parseDynamicForward("[::1:1080"))).toMatch(/unbalanced "\["/)
  })

  it("-W host:port or a socket path", () => {
    expect(Spec.parseStdioForward("db.internal:5432")).toEqual({ host: "db.internal", port: 5432 })
    expect(Spec.parseStdioForward("[2001:db8::7]:22")).toEqual({ host: "2001:db8::7", port: 22 })
    expect(Spec.parseStdioForward("/run/app.sock")).toEqual({ path: "/run/app.sock" })
    expect(problem(() => Spec.parseStdioForward("host"))).toMatch(/expected host:port$/)
    expect(problem(() => Spec.parseStdioForward("a:1:b:2"))).toMatch(/expected host:port$/)
    expect(problem(() => Spec.parseStdioForward(":22"))).toMatch(/the host to connect to is empty$/)
    expect(problem(() => Spec.parseStdioForward("h:0"))).toMatch(/the port to connect to is 0$/)
  })
})

describe("ForwardSpec: ssh_config keywords", () => {
  it("LocalForward listener destination", () => {
    expect(Spec.parseForwardOption("LocalForward", ["8080", "localhost:80"])).toEqual({
      listen: { port: 8080 },
      connect: { host: "localhost", port: 80 }
    })
    expect(Spec.parseForwardOption("LocalForward", ["[::1]:8080", "[::1]:80"])).toEqual({
      listen: { host: "::1", port: 8080 },
      connect: { host: "::1", port: 80 }
    })
    expect(Spec.parseForwardOption("LocalForward", ["/tmp/l.sock", "/tmp/r.sock"])).toEqual({
      listen: { path: "/tmp/l.sock" },
      connect: { path: "/tmp/r.sock" }
    })
  })

  it("RemoteForward with one argument is SOCKS, with two a fixed destination", () => {
    expect(Spec.parseForwardOption("RemoteForward", ["localhost:1080"])).toEqual({ listen: { host: "localhost", port: 1080 } })
    expect(Spec.parseForwardOption("RemoteForward", ["0", "localhost:22"])).toEqual({
      listen: { port: 0 },
      connect: { host: "localhost", port: 22 }
    })
    expect(problem(() => Spec.parseForwardOption("RemoteForward", ["8080:h:80"]))).toMatch(
      /a listener is \[bind_address:\]port or a socket path$/
    )
  })

  it("DynamicForward listener", () => {
    expect(Spec.parseForwardOption("DynamicForward", ["*:1080"])).toEqual({ listen: { host: "*", port: 1080 } })
  })

  it("the wrong number of arguments is named", () => {
    expect(problem(() => Spec.parseForwardOption("LocalForward", ["8080"]))).toBe(
      "LocalForward takes a listener and a destination, got 1 argument(s)"
    )
    expect(problem(() => Spec.parseForwardOption("RemoteForward", []))).toBe(
      "RemoteForward takes a listener and an optional destination, got 0 argument(s)"
    )
    expect(problem(() => Spec.parseForwardOption("DynamicForward", ["1", "2"]))).toBe(
      "DynamicForward takes a listener, got 2 argument(s)"
    )
  })
})

describe("ForwardSpec: host/port", () => {
  it("host:port, [v6]:port, and the host/port form", () => {
    expect(Spec.parseHostPort("example.com:443")).toEqual({ host: "example.com", port: 443 })
    expect(Spec.parseHostPort("[::1]:22")).toEqual({ host: "::1", port: 22 })
    expect(Spec.parseHostPort("[::1]/22")).toEqual({ host: "::1", port: 22 })
    expect(Spec.parseHostPort("2001:db8::1/22")).toEqual({ host: "2001:db8::1", port: 22 })
    expect(Spec.parseHostPort("db/5432")).toEqual({ host: "db", port: 5432 })
  })

  it("refuses what is not one", () => {
    for (const bad of ["example.com", "::1:22", "[::1", "[::1]22", ":22", "h:", "h:65536", "h/x"]) {
      expect(problem(() => Spec.parseHostPort(bad))).toMatch(/^bad host and port /)
    }
  })
})

describe("ForwardSpec: bind addresses (GatewayPorts)", () => {
  it("a local listener: loopback by default, every interface with GatewayPorts, * or empty", () => {
    expect(Spec.localBindAddress(undefined, false)).toEqual({ _tag: "Loopback" })
    expect(Spec.localBindAddress(undefined, true)).toEqual({ _tag: "AllInterfaces" })
    expect(Spec.localBindAddress("*", false)).toEqual({ _tag: "AllInterfaces" })
    expect(Spec.localBindAddress("", false)).toEqual({ _tag: "AllInterfaces" })
    expect(Spec.localBindAddress("localhost", true)).toEqual({ _tag: "Loopback" })
    expect(Spec.localBindAddress("192.0.2.1", false)).toEqual({ _tag: "Address", address: "192.0.2.1" })
  })

  it("a remote listener: the address to bind sent in tcpip-forward", () => {
    expect(Spec.remoteBindAddress(undefined)).toBe("localhost")
    expect(Spec.remoteBindAddress("*")).toBe("")
    expect(Spec.remoteBindAddress("")).toBe("")
    expect(Spec.remoteBindAddress("::")).toBe("::")
  })
})

describe("ForwardSpec: parse ∘ format = id", () => {
  const hostChar = fc.constantFrom(..."abcxyz019.-_:[]\\*%".split(""))
  const host = fc.string({ unit: hostChar, minLength: 1, maxLength: 20 })
  const path = fc.string({ unit: fc.constantFrom(..."ab/.:-[]\\ ".split("")), maxLength: 30 }).map((p) => `/${p}x`)
  const port = fc.integer({ min: 1, max: 65535 })
  const tcpListen = fc.record({ host: fc.option(fc.oneof(host, fc.constant("")), { nil: undefined }), port }).map((l) =>
    l.host === undefined ? { port: l.port } : l
  )
  const listen: fc.Arbitrary<Spec.Listen> = fc.oneof(tcpListen, path.map((p) => ({ path: p })))
  const target: fc.Arbitrary<Spec.Target> = fc.oneof(fc.record({ host, port }), path.map((p) => ({ path: p })))

  it("local forwardings", () => {
    fc.assert(
      fc.property(listen, target, (l, c) => {
        const forward = { listen: l, connect: c }
        expect(Spec.parseLocalForward(Spec.formatForward(forward))).toEqual(forward)
      }),
      { numRuns: 1000 }
    )
  })

  it("dynamic forwardings", () => {
    fc.assert(
      fc.property(listen, (l) => {
        expect(Spec.parseRemoteForward(Spec.formatForward({ listen: l }))).toEqual({ listen: l })
        expect(Spec.parseDynamicForward(Spec.formatForward({ listen: l }))).toEqual({ listen: l })
      }),
      { numRuns: 500 }
    )
  })

  it("anything else parses or throws a ConfigParseError, nothing else", () => {
    const text = fc.string({ unit: fc.constantFrom(..."0123456789:[]/\\*ab. ".split("")), maxLength: 30 })
    fc.assert(
      fc.property(text, (spec) => {
        for (const parse of [Spec.parseLocalForward, Spec.parseRemoteForward, Spec.parseDynamicForward, Spec.parseStdioForward, Spec.parseHostPort]) {
          try {
            parse(spec)
          } catch (e) {
            expect(e).toBeInstanceOf(ConfigParseError)
          }
        }
      }),
      { numRuns: 2000 }
    )
  })
})
