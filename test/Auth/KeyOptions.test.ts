import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import * as AuthorizedKeys from "../../src/Auth/AuthorizedKeys.ts"
import * as Certificate from "../../src/Auth/Certificate.ts"
import * as KeyOptions from "../../src/Auth/KeyOptions.ts"
import * as PrivateKey from "../../src/Auth/PrivateKey.ts"
import * as SshError from "../../src/SshError.ts"

const key = PrivateKey.generate("ssh-ed25519").publicKey
const line = (options: string) => AuthorizedKeys.parse(`${options} ${AuthorizedKeys.formatLine(key)}\n`).entries[0]!

/** The options of an authorized_keys line as written, parsed. */
const parseLine = (options: string) => {
  const entry = line(options)
  return KeyOptions.parse(entry.options, entry.line)
}

const parseError = (options: ReadonlyArray<string>): string => {
  try {
    KeyOptions.parse(options, 7)
  } catch (u) {
    expect(u).toBeInstanceOf(SshError.ConfigParseError)
    return (u as SshError.ConfigParseError).message
  }
  throw new Error(`parsed: ${options.join(",")}`)
}

describe("KeyOptions.parse", () => {
  it("reads the examples of sshd(8)", () => {
    const forced = parseLine('restrict,command="dump /home"').restrictions
    expect(forced).toMatchObject({ pty: false, portForwarding: false, agentForwarding: false, x11Forwarding: false, userRc: false })
    expect(forced.forceCommand).toBe("dump /home")

    expect(parseLine('permitopen="192.0.2.1:80",permitopen="192.0.2.2:25"').restrictions.permitOpen).toEqual([
      { host: "192.0.2.1", port: 80 },
      { host: "192.0.2.2", port: 25 }
    ])
    expect(parseLine('permitlisten="localhost:8080",permitlisten="[::1]:22000"').restrictions.permitListen).toEqual([
      { host: "localhost", port: 8080 },
      { host: "::1", port: 22000 }
    ])
    const nethack = parseLine('restrict,pty,command="nethack"').restrictions
    expect([nethack.pty, nethack.portForwarding, nethack.forceCommand]).toEqual([true, false, "nethack"])
    expect(parseLine("no-touch-required").restrictions.noTouchRequired).toBe(true)
    expect(parseLine("verify-required").restrictions.verifyRequired).toBe(true)
    const ca = parseLine('cert-authority,no-touch-required,principals="user_a"')
    expect([ca.certAuthority, ca.principals, ca.restrictions.noTouchRequired]).toEqual([true, ["user_a"], true])
    const from = parseLine('from="*.sales.example.net,!pc.sales.example.net"')
    expect(from.from).toBe("*.sales.example.net,!pc.sales.example.net")
    const env = parseLine('environment="PATH=/bin:/usr/bin/",environment="PATH=ignored",environment="A_1=x=y"').restrictions
    expect(env.environment).toEqual({ PATH: "/bin:/usr/bin/", A_1: "x=y" })
    expect(parseLine('command="echo \\"hi, there\\""').restrictions.forceCommand).toBe('echo "hi, there"')
  })

  it("applies options in order, names case-insensitive", () => {
    expect(KeyOptions.parse(["pty", "restrict"]).restrictions.pty).toBe(false)
    expect(KeyOptions.parse(["restrict", "PTY", "X11-Forwarding", "user-rc"]).restrictions).toMatchObject({
      pty: true,
      x11Forwarding: true,
      userRc: true,
      agentForwarding: false,
      portForwarding: false
    })
    expect(KeyOptions.parse(["No-Pty", "no-agent-forwarding"]).restrictions).toMatchObject({ pty: false, agentForwarding: false, portForwarding: true })
    expect(KeyOptions.parse([]).restrictions).toEqual(KeyOptions.unrestricted)
  })

  it("expiry-time: UTC with Z, local time without, the earliest of several", () => {
    expect(KeyOptions.parse(['expiry-time="20300101Z"']).expiresAt).toBe(Date.UTC(2030, 0, 1))
    expect(KeyOptions.parse(['expiry-time="203001021230Z"']).expiresAt).toBe(Date.UTC(2030, 0, 2, 12, 30))
    expect(KeyOptions.parse(['expiry-time="20300102123045"']).expiresAt).toBe(new Date(2030, 0, 2, 12, 30, 45).getTime())
    expect(KeyOptions.parse(['expiry-time="20310101Z"', 'expiry-time="20300101Z"']).expiresAt).toBe(Date.UTC(2030, 0, 1))
  })

  it("refuses what it cannot enforce or read, naming the option and the line", () => {
    expect(parseError(['tunnel="0"'])).toBe("line 7: key option tunnel is not supported")
    expect(parseError(["no-such-option"])).toBe("line 7: unknown key option no-such-option")
    expect(parseError(['bogus="x"'])).toBe("line 7: unknown key option bogus")
    expect(parseError(["no-restrict"])).toMatch(/unknown key option no-restrict/)
    expect(parseError(["command=ls"])).toMatch(/command needs a double-quoted value/)
    expect(parseError(['command="a"', 'command="b"'])).toMatch(/multiple command/)
    expect(parseError(['from="a"', 'from="b"'])).toMatch(/multiple from/)
    expect(parseError(['principals="a"'])).toMatch(/principals option without cert-authority/)
    expect(parseError(['permitopen="nohost"'])).toMatch(/invalid permitopen/)
    expect(parseError(['permitopen="h:0"'])).toMatch(/invalid permitopen port/)
    expect(parseError(['permitopen="h:70000"'])).toMatch(/invalid permitopen port/)
    expect(parseError(['permitlisten="[::1"'])).toMatch(/invalid permitlisten/)
    expect(parseError(['environment="=x"'])).toMatch(/invalid environment/)
    expect(parseError(['environment="NOEQUALS"'])).toMatch(/invalid environment/)
    expect(parseError(['expiry-time="2030"'])).toMatch(/invalid expiry-time/)
    expect(parseError(['expiry-time="20301301"'])).toMatch(/invalid expiry-time/)
    expect(parseError(Array.from({ length: 1025 }, (_, i) => `environment="V${i}=x"`))).toMatch(/too many environment options/)
    expect(parseError(Array.from({ length: 4097 }, (_, i) => `permitopen="h:${i + 1}"`))).toMatch(/too many permitopen options/)
  })

  it("property: any garbage option is a typed ConfigParseError or a parse, never another throw", () => {
    fc.assert(fc.property(fc.array(fc.string({ maxLength: 30 }), { maxLength: 5 }), (options) => {
      try {
        KeyOptions.parse(options)
      } catch (u) {
        return u instanceof SshError.ConfigParseError
      }
      return true
    }), { numRuns: 2000 })
  })

  it("property: an option name outside sshd's set is refused with its name", () => {
    const known = new Set([
      "restrict", "cert-authority", "pty", "port-forwarding", "agent-forwarding", "x11-forwarding", "user-rc",
      "touch-required", "verify-required", "command", "principals", "from", "expiry-time", "environment",
      "permitopen", "permitlisten", "tunnel"
    ])
    const name = fc.stringMatching(/^[a-z][a-z0-9-]{0,15}$/).filter((n) => !known.has(n) && !known.has(n.replace(/^no-/, "")))
    fc.assert(fc.property(name, fc.boolean(), (n, valued) => {
      const option = valued ? `${n}="v"` : n
      expect(parseError([option])).toContain(`unknown key option ${n}`)
    }))
  })
})

describe("KeyOptions.matchFrom", () => {
  it("CIDR, wildcards and negation, as sshd's match_host_and_ip", () => {
    expect(KeyOptions.matchFrom("10.0.0.0/8", "10.1.2.3")).toBe(true)
    expect(KeyOptions.matchFrom("10.0.0.0/8", "192.0.2.1")).toBe(false)
    expect(KeyOptions.matchFrom("192.168.*", "192.168.4.4")).toBe(true)
    expect(KeyOptions.matchFrom("10.0.0.0/8,!10.0.0.1", "10.0.0.1")).toBe(false)
    expect(KeyOptions.matchFrom("!10.0.0.1,10.0.0.0/8", "10.0.0.2")).toBe(true)
    expect(KeyOptions.matchFrom("::1", "::1")).toBe(true)
    expect(KeyOptions.matchFrom("127.0.0.1", "::ffff:127.0.0.1")).toBe(true)
    expect(KeyOptions.matchFrom("*.example.com", "10.0.0.1", "Host.Example.COM")).toBe(true)
    expect(KeyOptions.matchFrom("10.0.0.1,", "10.0.0.1")).toBe(false)
  })
})

describe("KeyOptions.refusal", () => {
  it("refuses a key from=elsewhere or past its expiry-time", () => {
    const from = KeyOptions.parse(['from="10.0.0.0/8"'])
    expect(KeyOptions.refusal(from, { remoteAddress: "10.2.3.4" })).toBeUndefined()
    expect(KeyOptions.refusal(from, { remoteAddress: "192.0.2.1" })).toMatch(/192\.0\.2\.1 does not match/)
    const expiring = KeyOptions.parse(['expiry-time="20300101Z"'])
    expect(KeyOptions.refusal(expiring, { remoteAddress: "x", now: Date.UTC(2029, 11, 31) })).toBeUndefined()
    expect(KeyOptions.refusal(expiring, { remoteAddress: "x", now: Date.UTC(2030, 0, 2) })).toMatch(/expired/)
  })
})

describe("KeyOptions.permitsOpen / permitsListen", () => {
  it("literal hosts, * for any host or port", () => {
    const r = KeyOptions.parse(['permitopen="db:5432"', 'permitopen="*:80"', 'permitopen="cache:*"']).restrictions
    expect(KeyOptions.permitsOpen(r, "db", 5432)).toBe(true)
    expect(KeyOptions.permitsOpen(r, "db", 22)).toBe(false)
    expect(KeyOptions.permitsOpen(r, "anything", 80)).toBe(true)
    expect(KeyOptions.permitsOpen(r, "cache", 6379)).toBe(true)
    expect(KeyOptions.permitsOpen(KeyOptions.unrestricted, "x", 1)).toBe(true)
    const l = KeyOptions.parse(['permitlisten="8080"', 'permitlisten="localhost:9090"']).restrictions
    expect(KeyOptions.permitsListen(l, "0.0.0.0", 8080)).toBe(true)
    expect(KeyOptions.permitsListen(l, "LOCALHOST", 9090)).toBe(true)
    expect(KeyOptions.permitsListen(l, "127.0.0.1", 9090)).toBe(false)
    expect(KeyOptions.permitsListen(l, "localhost", 7070)).toBe(false)
  })
})

describe("KeyOptions.merge and fromCertificate", () => {
  const ca = PrivateKey.generate("ssh-ed25519")
  const cert = (extensions: ReadonlyArray<string>, critical: ReadonlyArray<Certificate.CertificateOption> = []) =>
    Certificate.sign({
      key,
      role: "user",
      keyId: "t",
      principals: ["alice"],
      extensions: extensions.map(Certificate.flag),
      criticalOptions: critical
    }, ca)

  it("a certificate's extensions and critical options as restrictions", () => {
    const r = KeyOptions.fromCertificate(cert(["permit-pty", "no-touch-required"], [Certificate.stringValue("force-command", "uptime")]))
    expect(r).toMatchObject({ pty: true, portForwarding: false, agentForwarding: false, noTouchRequired: true, forceCommand: "uptime" })
  })

  it("intersects: a permission needs both, force-commands must agree, the key's lists win", () => {
    const key = KeyOptions.parse(["no-port-forwarding", 'environment="A=1"', 'permitopen="h:1"']).restrictions
    const fromCert = KeyOptions.fromCertificate(cert(["permit-pty", "permit-port-forwarding", "permit-agent-forwarding"]))
    const merged = KeyOptions.merge(key, fromCert)!
    expect(merged).toMatchObject({ pty: true, portForwarding: false, agentForwarding: true, x11Forwarding: false, environment: { A: "1" } })
    expect(merged.permitOpen).toEqual([{ host: "h", port: 1 }])
    const forcedA = KeyOptions.parse(['command="a"']).restrictions
    const forcedB = KeyOptions.fromCertificate(cert([], [Certificate.stringValue("force-command", "b")]))
    expect(KeyOptions.merge(forcedA, forcedB)).toBeUndefined()
    expect(KeyOptions.merge(forcedA, KeyOptions.unrestricted)?.forceCommand).toBe("a")
    expect(KeyOptions.merge(KeyOptions.parse(["verify-required"]).restrictions, KeyOptions.unrestricted)?.verifyRequired).toBe(true)
  })
})
