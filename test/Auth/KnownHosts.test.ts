import * as fc from "fast-check"
import { createHmac } from "node:crypto"
import { describe, expect, it } from "vitest"
import * as KnownHosts from "../../src/Auth/KnownHosts.ts"
import * as PublicKey from "../../src/Auth/PublicKey.ts"
import { readText } from "./fixtures.ts"

const fixture = KnownHosts.parse(readText("openssh/hostkeys/known_hosts"))
const comments = (keys: ReadonlyArray<PublicKey.PublicKey>) => keys.map((k) => k.comment).sort()

describe("OpenSSH regress hostkeys/known_hosts", () => {
  it("parses every usable line and reports the invalid ones by line number", () => {
    expect(fixture.entries).toHaveLength(23)
    expect(fixture.errors.map((e) => e.line)).toEqual([37, 38, 39, 40, 41, 42])
    expect(fixture.errors[0]!.message).toMatch(/marker @what/)
    expect(fixture.errors[1]!.message).toBe("missing key")
    expect(fixture.errors[3]!.message).toMatch(/truncated/)
  })

  it("keeps markers and hashed host names", () => {
    const revoked = fixture.entries.filter((e) => e.marker === "revoked")
    const authorities = fixture.entries.filter((e) => e.marker === "cert-authority")
    expect(revoked.map((e) => [e.line, e.key.comment])).toEqual([[33, "ED25519 #4"]])
    expect(authorities.map((e) => [e.line, e.key.comment])).toEqual([[34, "ECDSA #4"]])
    expect(fixture.entries.filter((e) => e.hosts._tag === "Hashed")).toHaveLength(12)
  })

  it("keys for sisyphus.example.com: plain, wildcard and hashed lines; one revoked", () => {
    const found = KnownHosts.lookup(fixture.entries, "sisyphus.example.com", 22)
    expect(comments(found.keys)).toEqual(
      ["ECDSA #1", "ED25519 #1", "RSA #1", "ECDSA #3", "ED25519 #3", "RSA #3", "ECDSA #5", "ED25519 #5", "RSA #5"].sort()
    )
    expect(comments(found.revoked)).toEqual(["ED25519 #4"])
    expect(found.authorities).toEqual([])
  })

  it("keys for prometheus.example.com: list, wildcard and hashed lines; one CA", () => {
    const found = KnownHosts.lookup(fixture.entries, "prometheus.example.com")
    expect(comments(found.keys)).toEqual(
      ["ECDSA #2", "ED25519 #2", "RSA #2", "ECDSA #3", "ED25519 #3", "RSA #3", "ECDSA #6", "ED25519 #6", "RSA #6"].sort()
    )
    expect(comments(found.authorities)).toEqual(["ECDSA #4"])
    expect(found.revoked).toEqual([])
  })

  it.each(["192.0.2.1", "2001:db8::1"])("keys for address %s", (address) => {
    const found = KnownHosts.lookup(fixture.entries, address)
    expect(comments(found.keys)).toEqual(
      ["ECDSA #2", "ED25519 #2", "RSA #2", "ECDSA #3", "ED25519 #3", "RSA #3", "ECDSA #6", "ED25519 #6", "RSA #6"].sort()
    )
  })

  it("nothing for unknown hosts, other ports, or partial names", () => {
    for (const host of ["actaeon.example.org", "192.168.0.1", "::1", "example.com", "sisyphus.example.co"]) {
      expect(KnownHosts.lookup(fixture.entries, host).keys).toEqual([])
    }
    expect(KnownHosts.lookup(fixture.entries, "prometheus.example.com", 2222).keys).toEqual([])
  })

  it("matching ignores case", () => {
    expect(KnownHosts.lookup(fixture.entries, "PROMETHEUS.Example.COM").keys).toHaveLength(9)
  })
})

describe("host patterns", () => {
  const key = PublicKey.parseOpenSsh(readText("openssh/sshkey/ed25519_1.pub"))
  const line = (hosts: string) => `${hosts} ${PublicKey.toOpenSsh(key)}`
  const matches = (hosts: string, host: string, port = 22) =>
    KnownHosts.lookup(KnownHosts.parse(line(hosts)).entries, host, port).keys.length === 1

  it("hostPattern brackets non-standard ports", () => {
    expect(KnownHosts.hostPattern("example.com", 22)).toBe("example.com")
    expect(KnownHosts.hostPattern("example.com", 2222)).toBe("[example.com]:2222")
    expect(KnownHosts.hostPattern("2001:db8::1", 2222)).toBe("[2001:db8::1]:2222")
  })

  it("* and ? wildcards", () => {
    expect(matches("*.example.com", "a.b.example.com")).toBe(true)
    expect(matches("*.example.com", "example.com")).toBe(false)
    expect(matches("host?", "host1")).toBe(true)
    expect(matches("host?", "host12")).toBe(false)
    expect(matches("*", "anything")).toBe(true)
    expect(matches("a*b*c", "aXXbYYc")).toBe(true)
    expect(matches("a*b*c", "aXXbYY")).toBe(false)
  })

  it("! negation wins over any positive match", () => {
    expect(matches("*.example.com,!secret.example.com", "www.example.com")).toBe(true)
    expect(matches("*.example.com,!secret.example.com", "secret.example.com")).toBe(false)
    expect(matches("!secret.example.com,*.example.com", "secret.example.com")).toBe(false)
    expect(matches("!secret.example.com", "other.example.com")).toBe(false)
  })

  it("[host]:port entries match only that port", () => {
    expect(matches("[example.com]:2222", "example.com", 2222)).toBe(true)
    expect(matches("[example.com]:2222", "example.com", 22)).toBe(false)
    expect(matches("example.com", "example.com", 2222)).toBe(false)
    expect(matches("[*.example.com]:*", "a.example.com", 2200)).toBe(true)
  })

  it("matchWildcard agrees with a regular-expression model", () => {
    const toRegExp = (p: string) => new RegExp(`^${p.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".")}$`, "s")
    fc.assert(
      fc.property(fc.stringMatching(/^[ab*?]{0,8}$/), fc.stringMatching(/^[ab]{0,10}$/), (pattern, text) => {
        expect(KnownHosts.matchWildcard(pattern, text)).toBe(toRegExp(pattern).test(text))
      }),
      { numRuns: 3000 }
    )
  })
})

describe("hashed host names", () => {
  const key = PublicKey.parseOpenSsh(readText("openssh/sshkey/ecdsa_1.pub"))
  const salt = new Uint8Array(20).map((_, i) => i)

  it("hash with a known salt equals HMAC-SHA1(salt, name)", () => {
    const expected = createHmac("sha1", salt).update("[example.com]:2222").digest("base64")
    expect(KnownHosts.hashHostName("[example.com]:2222", salt)).toBe(
      `|1|${Buffer.from(salt).toString("base64")}|${expected}`
    )
  })

  it("a hashed line matches its host and port only", () => {
    const text = KnownHosts.formatLine("Example.com", 2222, key, { hashed: true, salt })
    expect(text.startsWith(`|1|${Buffer.from(salt).toString("base64")}|`)).toBe(true)
    const { entries, errors } = KnownHosts.parse(text)
    expect(errors).toEqual([])
    expect(KnownHosts.lookup(entries, "example.com", 2222).keys).toHaveLength(1)
    expect(KnownHosts.lookup(entries, "EXAMPLE.COM", 2222).keys).toHaveLength(1)
    expect(KnownHosts.lookup(entries, "example.com", 22).keys).toHaveLength(0)
    expect(KnownHosts.lookup(entries, "example.org", 2222).keys).toHaveLength(0)
  })

  it("random salts differ between lines", () => {
    const a = KnownHosts.formatLine("h", 22, key, { hashed: true })
    const b = KnownHosts.formatLine("h", 22, key, { hashed: true })
    expect(a).not.toBe(b)
    expect(KnownHosts.lookup(KnownHosts.parse(`${a}\n${b}\n`).entries, "h").keys).toHaveLength(2)
  })

  it("malformed hashes are errors", () => {
    const { entries, errors } = KnownHosts.parse(
      [
        `|1|AAAA|BBBB ${PublicKey.toOpenSsh(key)}`,
        `|1|onlyone ${PublicKey.toOpenSsh(key)}`,
        `|1|${"A".repeat(27)}=|${"A".repeat(27)}=|x ${PublicKey.toOpenSsh(key)}`
      ].join("\n")
    )
    expect(entries).toEqual([])
    expect(errors.map((e) => e.line)).toEqual([1, 2, 3])
  })
})

describe("formatLine → parse → lookup", () => {
  const keys = ["ed25519_1.pub", "ecdsa_2.pub", "rsa_2.pub"].map((f) => PublicKey.parseOpenSsh(readText(`openssh/sshkey/${f}`)))

  it("round-trips hosts, ports, markers and hashing", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...keys),
        fc.stringMatching(/^[a-z0-9][a-z0-9.-]{0,30}$/),
        fc.constantFrom(22, 2222, 65535),
        fc.boolean(),
        fc.constantFrom(undefined, "revoked" as const, "cert-authority" as const),
        (key, host, port, hashed, marker) => {
          const text = KnownHosts.formatLine(host, port, key, { hashed, marker })
          const { entries, errors } = KnownHosts.parse(`# header\n\n${text}\n`)
          expect(errors).toEqual([])
          expect(entries).toHaveLength(1)
          expect(entries[0]!.line).toBe(3)
          expect(entries[0]!.marker).toBe(marker)
          const found = KnownHosts.lookup(entries, host, port)
          const bucket = marker === "revoked" ? found.revoked : marker === "cert-authority" ? found.authorities : found.keys
          expect(bucket).toHaveLength(1)
          expect(PublicKey.equals(bucket[0]!, key)).toBe(true)
          expect(KnownHosts.lookup(entries, `x${host}`, port)).toEqual({ keys: [], revoked: [], authorities: [] })
        }
      ),
      { numRuns: 300 }
    )
  })

  it("writes the plain form OpenSSH writes", () => {
    expect(KnownHosts.formatLine("example.com", 22, keys[0]!)).toBe(
      `example.com ${PublicKey.toOpenSsh(keys[0]!, { comment: "" })}`
    )
    expect(KnownHosts.formatLine("example.com", 2022, keys[0]!, { marker: "revoked" })).toBe(
      `@revoked [example.com]:2022 ${PublicKey.toOpenSsh(keys[0]!, { comment: "" })}`
    )
  })
})

describe("parse never throws", () => {
  it("on arbitrary text", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 400 }), (text) => {
        const { entries, errors } = KnownHosts.parse(text)
        expect(entries.length + errors.length).toBeLessThanOrEqual(text.split("\n").length)
      }),
      { numRuns: 1000 }
    )
  })

  it("on mutations of the fixture", () => {
    const text = readText("openssh/hostkeys/known_hosts")
    fc.assert(
      fc.property(fc.nat(), fc.string({ maxLength: 3 }), (at, insert) => {
        const i = at % text.length
        KnownHosts.parse(text.slice(0, i) + insert + text.slice(i + 1))
      }),
      { numRuns: 500 }
    )
  })

  it("CRLF line ends are accepted", () => {
    const crlf = readText("openssh/hostkeys/known_hosts").replace(/\n/g, "\r\n")
    expect(KnownHosts.parse(crlf).entries).toHaveLength(23)
  })
})
