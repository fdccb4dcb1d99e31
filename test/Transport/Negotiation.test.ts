import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import { NegotiationFailed } from "../../src/SshError.ts"
import type { KexInit } from "../../src/Transport/Messages.ts"
import {
  EXT_INFO_C,
  EXT_INFO_S,
  guessIsWrong,
  isAeadCipher,
  isPseudoKex,
  KEX_STRICT_C,
  KEX_STRICT_S,
  mustIgnoreGuessedPacket,
  negotiate
} from "../../src/Transport/Negotiation.ts"
import { name } from "../Wire/arbitraries.ts"
import { thrownReason } from "../Wire/throws.ts"

const kexInit = (overrides: Partial<KexInit> = {}): KexInit => ({
  cookie: new Uint8Array(16),
  kexAlgorithms: ["curve25519-sha256", "ecdh-sha2-nistp256"],
  serverHostKeyAlgorithms: ["ssh-ed25519", "rsa-sha2-256"],
  ciphersClientToServer: ["aes128-ctr", "aes256-ctr"],
  ciphersServerToClient: ["aes128-ctr", "aes256-ctr"],
  macsClientToServer: ["hmac-sha2-256", "hmac-sha2-512"],
  macsServerToClient: ["hmac-sha2-256", "hmac-sha2-512"],
  compressionClientToServer: ["none"],
  compressionServerToClient: ["none"],
  languagesClientToServer: [],
  languagesServerToClient: [],
  firstKexPacketFollows: false,
  reserved: 0,
  ...overrides
})

describe("negotiate", () => {
  it("picks the first algorithm of the client's list that the server has, per direction", () => {
    const client = kexInit({
      kexAlgorithms: ["mlkem768x25519-sha256", "curve25519-sha256", "ecdh-sha2-nistp256"],
      serverHostKeyAlgorithms: ["rsa-sha2-512", "ssh-ed25519"],
      ciphersClientToServer: ["aes256-ctr", "aes128-ctr"],
      ciphersServerToClient: ["aes128-ctr"],
      macsClientToServer: ["hmac-sha2-512", "hmac-sha2-256"]
    })
    const server = kexInit({
      kexAlgorithms: ["ecdh-sha2-nistp256", "curve25519-sha256"],
      serverHostKeyAlgorithms: ["ssh-ed25519", "rsa-sha2-512"]
    })
    expect(negotiate(client, server, "client")).toEqual({
      kex: "curve25519-sha256",
      hostKey: "rsa-sha2-512",
      cipherClientToServer: "aes256-ctr",
      cipherServerToClient: "aes128-ctr",
      macClientToServer: "hmac-sha2-512",
      macServerToClient: "hmac-sha2-256",
      compressionClientToServer: "none",
      compressionServerToClient: "none",
      strictKex: false,
      extInfo: false
    })
    // the role does not change what is chosen
    expect(negotiate(client, server, "server").kex).toBe("curve25519-sha256")
  })

  it("the chosen algorithm is always in both lists and is the client's earliest common one", () => {
    fc.assert(fc.property(fc.uniqueArray(name, { minLength: 1, maxLength: 8 }), fc.uniqueArray(name, { maxLength: 8 }), (c, s) => {
      const common = c.filter((n) => s.includes(n))
      const client = kexInit({ ciphersClientToServer: c })
      const server = kexInit({ ciphersClientToServer: s })
      if (common.length === 0) {
        thrownReason(NegotiationFailed, () => negotiate(client, server, "client"))
      } else {
        expect(negotiate(client, server, "client").cipherClientToServer).toBe(common[0])
      }
    }))
  })

  it("fails with NegotiationFailed naming the category and our / their lists", () => {
    const client = kexInit({ ciphersClientToServer: ["aes128-ctr"] })
    const server = kexInit({ ciphersClientToServer: ["aes256-gcm@openssh.com"] })
    const asClient = thrownReason(NegotiationFailed, () => negotiate(client, server, "client"))
    expect(asClient.kind).toBe("cipher client-to-server")
    expect(asClient.ours).toEqual(["aes128-ctr"])
    expect(asClient.theirs).toEqual(["aes256-gcm@openssh.com"])
    const asServer = thrownReason(NegotiationFailed, () => negotiate(client, server, "server"))
    expect(asServer.ours).toEqual(["aes256-gcm@openssh.com"])
    expect(asServer.theirs).toEqual(["aes128-ctr"])
    expect(asServer.message).toContain("no common cipher client-to-server algorithm")

    const hostKey = thrownReason(
      NegotiationFailed,
      () => negotiate(kexInit({ serverHostKeyAlgorithms: ["ssh-rsa"] }), kexInit(), "client")
    )
    expect(hostKey.kind).toBe("host key")
    const compression = thrownReason(
      NegotiationFailed,
      () => negotiate(kexInit({ compressionServerToClient: ["zlib@openssh.com"] }), kexInit(), "client")
    )
    expect(compression.kind).toBe("compression server-to-client")
  })

  it("never chooses a pseudo-algorithm as the kex", () => {
    const client = kexInit({ kexAlgorithms: [EXT_INFO_C, KEX_STRICT_C, "curve25519-sha256"] })
    const server = kexInit({ kexAlgorithms: [EXT_INFO_C, KEX_STRICT_C, EXT_INFO_S, KEX_STRICT_S, "curve25519-sha256"] })
    expect(negotiate(client, server, "client").kex).toBe("curve25519-sha256")
    const onlyPseudo = thrownReason(
      NegotiationFailed,
      () => negotiate(kexInit({ kexAlgorithms: [EXT_INFO_C] }), kexInit({ kexAlgorithms: [EXT_INFO_C] }), "client")
    )
    expect(onlyPseudo.kind).toBe("kex")
    expect([EXT_INFO_C, EXT_INFO_S, KEX_STRICT_C, KEX_STRICT_S].every(isPseudoKex)).toBe(true)
    expect(isPseudoKex("curve25519-sha256")).toBe(false)
  })

  it("detects strict kex only when the client sent -c and the server sent -s", () => {
    const strict = (c: ReadonlyArray<string>, s: ReadonlyArray<string>) =>
      negotiate(
        kexInit({ kexAlgorithms: ["curve25519-sha256", ...c] }),
        kexInit({ kexAlgorithms: ["curve25519-sha256", ...s] }),
        "client"
      ).strictKex
    expect(strict([KEX_STRICT_C], [KEX_STRICT_S])).toBe(true)
    expect(strict([KEX_STRICT_C], [])).toBe(false)
    expect(strict([], [KEX_STRICT_S])).toBe(false)
    // the wrong side's marker does not count
    expect(strict([KEX_STRICT_S], [KEX_STRICT_C])).toBe(false)
  })

  it("extInfo says whether the peer offered its RFC 8308 indicator", () => {
    const client = kexInit({ kexAlgorithms: ["curve25519-sha256", EXT_INFO_C] })
    const server = kexInit({ kexAlgorithms: ["curve25519-sha256", EXT_INFO_S] })
    const plain = kexInit()
    expect(negotiate(client, plain, "server").extInfo).toBe(true)
    expect(negotiate(plain, plain, "server").extInfo).toBe(false)
    expect(negotiate(plain, server, "client").extInfo).toBe(true)
    expect(negotiate(client, plain, "client").extInfo).toBe(false)
    // a client listing ext-info-s (wrong indicator) does not count
    expect(negotiate(kexInit({ kexAlgorithms: ["curve25519-sha256", EXT_INFO_S] }), plain, "server").extInfo).toBe(false)
  })

  it("negotiates no MAC for an AEAD cipher, even when the MAC lists have nothing in common", () => {
    const client = kexInit({
      ciphersClientToServer: ["chacha20-poly1305@openssh.com"],
      ciphersServerToClient: ["aes256-gcm@openssh.com", "aes128-ctr"],
      macsClientToServer: ["hmac-sha2-512"],
      macsServerToClient: ["hmac-sha2-512"]
    })
    const server = kexInit({
      ciphersClientToServer: ["chacha20-poly1305@openssh.com"],
      ciphersServerToClient: ["aes256-gcm@openssh.com"],
      macsClientToServer: ["umac-64@openssh.com"],
      macsServerToClient: ["umac-64@openssh.com"]
    })
    const n = negotiate(client, server, "client")
    expect([n.macClientToServer, n.macServerToClient]).toEqual(["", ""])
    expect(isAeadCipher("aes128-gcm@openssh.com")).toBe(true)
    expect(isAeadCipher("aes128-ctr")).toBe(false)
    expect(isAeadCipher("no-such-cipher")).toBe(false)
    // with a non-AEAD cipher the MAC lists must meet
    const ctr = { ciphersClientToServer: ["aes128-ctr"] }
    const failed = thrownReason(NegotiationFailed, () => negotiate(kexInit({ ...ctr, macsClientToServer: ["a"] }), kexInit(ctr), "client"))
    expect(failed.kind).toBe("mac client-to-server")
    // a custom AEAD predicate
    expect(negotiate(kexInit(), kexInit(), "client", { isAead: () => true }).macClientToServer).toBe("")
  })

  it("languages are not negotiated", () => {
    const n = negotiate(kexInit({ languagesClientToServer: ["en"] }), kexInit({ languagesClientToServer: ["fr"] }), "client")
    expect(n.kex).toBe("curve25519-sha256")
  })
})

describe("first_kex_packet_follows", () => {
  it("a guess is wrong when the preferred kex or host key algorithms differ", () => {
    const base = kexInit()
    expect(guessIsWrong(base, base)).toBe(false)
    expect(guessIsWrong(base, kexInit({ kexAlgorithms: ["ecdh-sha2-nistp256", "curve25519-sha256"] }))).toBe(true)
    expect(guessIsWrong(base, kexInit({ serverHostKeyAlgorithms: ["rsa-sha2-256", "ssh-ed25519"] }))).toBe(true)
    // the negotiated kex can equal the client's guess and the guess still be wrong (RFC 4253 §7)
    const server = kexInit({ kexAlgorithms: ["ecdh-sha2-nistp256", "curve25519-sha256"] })
    expect(negotiate(base, server, "server").kex).toBe("curve25519-sha256")
    expect(guessIsWrong(base, server)).toBe(true)
  })

  it("only the peer's guessed packet is ignored, and only when it announced one", () => {
    const guessing = kexInit({ firstKexPacketFollows: true })
    const other = kexInit({ kexAlgorithms: ["ecdh-sha2-nistp256"] })
    expect(mustIgnoreGuessedPacket(guessing, other, "server")).toBe(true)
    expect(mustIgnoreGuessedPacket(guessing, other, "client")).toBe(false)
    expect(mustIgnoreGuessedPacket(guessing, kexInit(), "server")).toBe(false)
    expect(mustIgnoreGuessedPacket(kexInit(), other, "server")).toBe(false)
    expect(mustIgnoreGuessedPacket(other, { ...guessing }, "client")).toBe(true)
  })
})
