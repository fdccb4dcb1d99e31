import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import { UnknownAlgorithm } from "../../src/SshError.ts"
import { matchesPattern, resolve } from "../../src/Transport/AlgorithmList.ts"
import { thrownReason } from "../Wire/throws.ts"

const supported = ["aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "aes128-ctr", "aes192-ctr", "aes256-ctr", "3des-cbc"]
const defaults = ["aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "aes128-ctr", "aes256-ctr"]

const run = (spec: string | ReadonlyArray<string>) => resolve("cipher", spec, defaults, supported)

const unknown = (f: () => unknown): UnknownAlgorithm => thrownReason(UnknownAlgorithm, f)

describe("resolve: OpenSSH list syntax (ssh_config(5))", () => {
  it("a plain list replaces the defaults, in the given order", () => {
    expect(run("3des-cbc,aes128-ctr")).toEqual(["3des-cbc", "aes128-ctr"])
    expect(run(" aes256-ctr , aes128-ctr ")).toEqual(["aes256-ctr", "aes128-ctr"])
    expect(run("aes128-ctr,aes128-ctr")).toEqual(["aes128-ctr"])
  })

  it("+list appends to the defaults, skipping names already there", () => {
    expect(run("+3des-cbc")).toEqual([...defaults, "3des-cbc"])
    expect(run("+aes128-ctr,3des-cbc")).toEqual([...defaults, "3des-cbc"])
    expect(run("  +3des-cbc")).toEqual([...defaults, "3des-cbc"])
  })

  it("-list removes from the defaults, with wildcards", () => {
    expect(run("-aes128-ctr")).toEqual(["aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "aes256-ctr"])
    expect(run("-*-ctr")).toEqual(["aes128-gcm@openssh.com", "aes256-gcm@openssh.com"])
    expect(run("-aes128-*,aes256-c?r")).toEqual(["aes256-gcm@openssh.com"])
    expect(run("-*")).toEqual([])
  })

  it("-list ignores names that are not in the defaults (nothing to remove)", () => {
    expect(run("-3des-cbc,no-such-cipher")).toEqual(defaults)
  })

  it("^list puts the names first, the other defaults keep their order", () => {
    expect(run("^aes256-ctr,aes128-ctr")).toEqual([
      "aes256-ctr",
      "aes128-ctr",
      "aes128-gcm@openssh.com",
      "aes256-gcm@openssh.com"
    ])
    expect(run("^3des-cbc")).toEqual(["3des-cbc", ...defaults])
  })

  it("wildcards in plain, + and ^ lists expand over the supported names, in supported order", () => {
    expect(run("*-ctr")).toEqual(["aes128-ctr", "aes192-ctr", "aes256-ctr"])
    expect(run("+aes1?2-ctr")).toEqual([...defaults, "aes192-ctr"])
    expect(run("^*cbc")).toEqual(["3des-cbc", ...defaults])
    expect(run("*")).toEqual(supported)
    expect(run("chacha*")).toEqual([])
  })

  it("an array is a plain list: no +, - or ^ interpretation", () => {
    expect(run(["aes256-ctr", "aes128-ctr"])).toEqual(["aes256-ctr", "aes128-ctr"])
    expect(run(["aes*-ctr"])).toEqual(["aes128-ctr", "aes192-ctr", "aes256-ctr"])
    expect(unknown(() => run(["+3des-cbc"])).name).toBe("+3des-cbc")
  })

  it("an unknown name is an UnknownAlgorithm listing the known ones, in every form", () => {
    for (const spec of ["blowfish-cbc", "aes128-ctr,blowfish-cbc", "+blowfish-cbc", "^blowfish-cbc", ["blowfish-cbc"]]) {
      const e = unknown(() => run(spec))
      expect({ kind: e.kind, name: e.name, known: e.known }).toEqual({ kind: "cipher", name: "blowfish-cbc", known: supported })
      expect(e.message).toBe(`unknown cipher algorithm "blowfish-cbc"; known: ${supported.join(",")}`)
    }
  })

  it("names are case-sensitive", () => {
    expect(unknown(() => run("AES128-CTR")).name).toBe("AES128-CTR")
  })

  it("never returns duplicates, and only supported names (+, ^ and plain lists)", () => {
    const entry = fc.constantFrom(...supported, "*-ctr", "aes*", "?des-cbc")
    fc.assert(
      fc.property(fc.constantFrom("", "+", "^"), fc.array(entry, { maxLength: 8 }), (prefix, names) => {
        const out = run(prefix + names.join(","))
        expect(new Set(out).size).toBe(out.length)
        for (const n of out) expect(supported).toContain(n)
      })
    )
  })

  it("-list of a subset of the defaults leaves exactly the others, in order", () => {
    fc.assert(
      fc.property(fc.subarray(defaults), (removed) => {
        expect(run("-" + removed.join(","))).toEqual(defaults.filter((d) => !removed.includes(d)))
      })
    )
  })

  it("^list of supported names: those first in the given order, then the other defaults", () => {
    fc.assert(
      fc.property(fc.shuffledSubarray(supported, { minLength: 1 }), (first) => {
        expect(run("^" + first.join(","))).toEqual([...first, ...defaults.filter((d) => !first.includes(d))])
      })
    )
  })

  it("+list of supported names: the defaults, then the new ones in the given order", () => {
    fc.assert(
      fc.property(fc.shuffledSubarray(supported), (extra) => {
        expect(run("+" + extra.join(","))).toEqual([...defaults, ...extra.filter((e) => !defaults.includes(e))])
      })
    )
  })
})

describe("matchesPattern", () => {
  it("* matches any run (even empty), ? exactly one character", () => {
    expect(matchesPattern("aes*-ctr", "aes128-ctr")).toBe(true)
    expect(matchesPattern("aes*-ctr", "aes-ctr")).toBe(true)
    expect(matchesPattern("aes1?8-ctr", "aes128-ctr")).toBe(true)
    expect(matchesPattern("aes1?8-ctr", "aes18-ctr")).toBe(false)
    expect(matchesPattern("*", "")).toBe(true)
    expect(matchesPattern("?", "")).toBe(false)
  })

  it("matches the whole name, not a part of it", () => {
    expect(matchesPattern("aes128", "aes128-ctr")).toBe(false)
    expect(matchesPattern("ctr", "aes128-ctr")).toBe(false)
    expect(matchesPattern("*ctr", "aes128-ctr-x")).toBe(false)
  })

  it("treats regular-expression characters literally", () => {
    expect(matchesPattern("hmac-sha2-256-etm@openssh.com", "hmac-sha2-256-etm@openssh.com")).toBe(true)
    expect(matchesPattern("aes128.ctr", "aes128-ctr")).toBe(false)
    expect(matchesPattern("a+", "aa")).toBe(false)
    expect(matchesPattern("(a|b)", "a")).toBe(false)
    expect(matchesPattern("[ab]", "a")).toBe(false)
    expect(matchesPattern("a^$", "a^$")).toBe(true)
    expect(matchesPattern("x\\y", "x\\y")).toBe(true)
  })

  it("every name matches itself, *, and itself with any character replaced by ?", () => {
    const nameChar = fc.integer({ min: 0x21, max: 0x7e }).filter((c) => c !== 0x2a && c !== 0x3f).map((c) => String.fromCharCode(c))
    fc.assert(
      fc.property(fc.string({ unit: nameChar, minLength: 1, maxLength: 30 }), fc.nat(), (name, at) => {
        const i = at % name.length
        expect(matchesPattern(name, name)).toBe(true)
        expect(matchesPattern("*", name)).toBe(true)
        expect(matchesPattern(name.slice(0, i) + "?" + name.slice(i + 1), name)).toBe(true)
        expect(matchesPattern(name.slice(0, i) + "*", name)).toBe(true)
        expect(matchesPattern(name + "?", name)).toBe(false)
      })
    )
  })
})
