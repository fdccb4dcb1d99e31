import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import { matchCidrList, parseAddress } from "../../src/internal/cidr.ts"

describe("cidr", () => {
  it("parses IPv4, IPv6 and IPv4-mapped IPv6 addresses", () => {
    expect([...parseAddress("10.1.2.3")!]).toEqual([10, 1, 2, 3])
    expect([...parseAddress("::ffff:127.0.0.1")!]).toEqual([127, 0, 0, 1])
    expect([...parseAddress("::1")!]).toEqual([...new Array(15).fill(0), 1])
    expect([...parseAddress("2001:db8::8:800:200c:417a")!]).toEqual([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 8, 8, 0, 0x20, 0x0c, 0x41, 0x7a])
    expect(parseAddress("fe80::1%eth0")?.length).toBe(16)
    for (const bad of ["", "1.2.3", "1.2.3.256", "1::2::3", "1:2:3:4:5:6:7:8:9", "12345::", "::g", "host.example.com"]) {
      expect(parseAddress(bad)).toBeUndefined()
    }
  })

  it("matches lists of prefixes and plain addresses, as sshd's source-address", () => {
    expect(matchCidrList("10.0.0.0/8", "10.255.0.1")).toBe(true)
    expect(matchCidrList("10.0.0.0/8", "11.0.0.1")).toBe(false)
    expect(matchCidrList("192.0.2.7", "192.0.2.7")).toBe(true)
    expect(matchCidrList("192.0.2.7", "192.0.2.8")).toBe(false)
    expect(matchCidrList("127.0.0.1/32,::1/128", "::1")).toBe(true)
    expect(matchCidrList("2001:db8::/32", "2001:db8:ffff::1")).toBe(true)
    expect(matchCidrList("2001:db8::/32", "2001:db9::1")).toBe(false)
    expect(matchCidrList("0.0.0.0/0", "203.0.113.9")).toBe(true)
    expect(matchCidrList("10.0.0.0/8", "::1")).toBe(false)
    expect(matchCidrList("10.0.0.0/9", "10.128.0.1")).toBe(false)
  })

  it("a malformed list is undefined (to be refused), never a match", () => {
    for (const bad of ["xxxxx", "10.0.0.0/33", "::/129", "10.0.0.0/8/1", "10.0.0.0/-1", "10.0.0.0/8,", "10.0.0.*"]) {
      expect(matchCidrList(bad, "10.0.0.1")).toBeUndefined()
    }
    fc.assert(fc.property(fc.string(), fc.string(), (list, address) => {
      const r = matchCidrList(list, address)
      return r === undefined || typeof r === "boolean"
    }))
  })

  it("an address is always in its own /32 or /128", () => {
    fc.assert(fc.property(fc.ipV4(), (address) => matchCidrList(`${address}/32`, address) === true))
    fc.assert(fc.property(fc.ipV6(), (address) => parseAddress(address) === undefined || matchCidrList(address, address) === true))
  })
})
