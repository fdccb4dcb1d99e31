import { describe, expect, it } from "vitest"
import { UnknownAlgorithm } from "../../src/SshError.ts"
import * as Algorithms from "../../src/Transport/Algorithms.ts"
import * as Cipher from "../../src/Transport/Cipher.ts"
import { thrownReason } from "../Wire/throws.ts"

const categories = [
  ["kex", Algorithms.kexDefaults, Algorithms.kexSupported],
  ["hostKey", Algorithms.hostKeyDefaults, Algorithms.hostKeySupported],
  ["cipher", Algorithms.cipherDefaults, Algorithms.cipherSupported],
  ["mac", Algorithms.macDefaults, Algorithms.macSupported]
] as const

const unknown = (f: () => unknown): UnknownAlgorithm => thrownReason(UnknownAlgorithm, f)

describe("Algorithms tables", () => {
  it.each(categories)("%s: defaults are supported and without duplicates", (_, defaults, supported) => {
    expect(defaults.length).toBeGreaterThan(0)
    expect(new Set(defaults).size).toBe(defaults.length)
    expect(new Set(supported).size).toBe(supported.length)
    for (const name of defaults) expect(supported).toContain(name)
  })

  it("legacy SHA-1 algorithms are supported but never defaults", () => {
    const legacy = [
      ["kex", "diffie-hellman-group14-sha1"],
      ["kex", "diffie-hellman-group1-sha1"],
      ["hostKey", "ssh-rsa"],
      ["mac", "hmac-sha1"],
      ["mac", "hmac-sha1-etm@openssh.com"]
    ] as const
    for (const [kind, name] of legacy) {
      const [, defaults, supported] = categories.find(([k]) => k === kind)!
      expect(supported).toContain(name)
      expect(defaults).not.toContain(name)
    }
  })

  it("every supported cipher and MAC is implemented by the cipher registry", () => {
    for (const name of Algorithms.cipherSupported) expect(Cipher.cipherSpec(name)?.name).toBe(name)
    for (const name of Algorithms.macSupported) expect(Cipher.macSpec(name)).toBeDefined()
  })

  it("prefers the post-quantum hybrid kex and an AEAD cipher by default", () => {
    expect(Algorithms.kexDefaults[0]).toBe("mlkem768x25519-sha256")
    expect(Cipher.cipherSpec(Algorithms.cipherDefaults[0]!)?.aead).toBe(true)
  })
})

describe("Algorithms.resolve", () => {
  it("gives the defaults when nothing is configured", () => {
    const expected = {
      kex: Algorithms.kexDefaults,
      hostKey: Algorithms.hostKeyDefaults,
      cipher: Algorithms.cipherDefaults,
      mac: Algorithms.macDefaults
    }
    expect(Algorithms.resolve()).toEqual(expected)
    expect(Algorithms.resolve({})).toEqual(expected)
    expect(Algorithms.resolve({ kex: undefined })).toEqual(expected)
  })

  it("resolves each category independently in OpenSSH syntax", () => {
    const resolved = Algorithms.resolve({
      cipher: "^chacha20-poly1305@openssh.com",
      mac: "+hmac-sha1",
      hostKey: "-ecdsa-*",
      kex: ["curve25519-sha256"]
    })
    expect(resolved).toEqual({
      kex: ["curve25519-sha256"],
      hostKey: ["ssh-ed25519", "rsa-sha2-512", "rsa-sha2-256"],
      cipher: [
        "chacha20-poly1305@openssh.com",
        ...Algorithms.cipherDefaults.filter((c) => c !== "chacha20-poly1305@openssh.com")
      ],
      mac: [...Algorithms.macDefaults, "hmac-sha1"]
    })
  })

  it("names the category and lists the known names for an unknown algorithm", () => {
    const cases = [
      [{ kex: "+sntrup761x25519-sha512@openssh.com" }, "kex", Algorithms.kexSupported],
      [{ hostKey: "ssh-dss" }, "host key", Algorithms.hostKeySupported],
      [{ cipher: "aes128-cbc" }, "cipher", Algorithms.cipherSupported],
      [{ mac: ["umac-64@openssh.com"] }, "MAC", Algorithms.macSupported]
    ] as const
    for (const [options, kind, known] of cases) {
      const e = unknown(() => Algorithms.resolve(options))
      expect(e.kind).toBe(kind)
      expect(e.known).toEqual(known)
      expect(e.message).toMatch(new RegExp(`^unknown ${kind} algorithm "`))
    }
  })
})
