import * as crypto from "node:crypto"
import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import { ConfigParseError, NegotiationFailed, ProtocolError } from "../../../src/SshError.ts"
import { Reader } from "../../../src/Wire/Reader.ts"
import { fromHex, toHex } from "../../../src/internal/bytes.ts"
import { ffdhKeyPair } from "../../../src/internal/ffdh.ts"
import * as Messages from "../../../src/Transport/Messages.ts"
import {
  chooseGroup,
  gexExchangeHash,
  gexSizes,
  groupExchange,
  isValidPublicValue,
  privateExponent
} from "../../../src/Transport/kex/Dh.ts"
import { type DhGroup, type KeyAgreement, singleRoundTrip } from "../../../src/Transport/kex/Exchange.ts"
import {
  bitLength,
  defaultGexGroups,
  groupBits,
  modp14,
  modp15,
  modp16,
  modp17,
  modp18,
  modp2
} from "../../../src/Transport/kex/Groups.ts"
import { thrownReason } from "../../Wire/throws.ts"
import { fakeHostKey, fakeServerKey, fakeSignature, paramikoInputs, paramikoX } from "./paramiko.ts"

const toBigInt = (b: Uint8Array) => (b.length === 0 ? 0n : BigInt("0x" + toHex(b)))
const fromBigInt = (n: bigint) => {
  const hex = n.toString(16)
  return fromHex(hex.length % 2 ? "0" + hex : hex)
}
const modPow = (base: bigint, exponent: bigint, modulus: bigint) => {
  let result = 1n
  base %= modulus
  while (exponent > 0n) {
    if (exponent & 1n) result = (result * base) % modulus
    base = (base * base) % modulus
    exponent >>= 1n
  }
  return result
}
const mpintValue = (encoded: Uint8Array) => new Reader(encoded).mpint()

describe("Groups", () => {
  const groups: ReadonlyArray<readonly [string, DhGroup, number, bigint]> = [
    ["modp2", modp2, 1024, 129093n],
    ["modp14", modp14, 2048, 124476n],
    ["modp15", modp15, 3072, 1690314n],
    ["modp16", modp16, 4096, 240904n],
    ["modp17", modp17, 6144, 929484n],
    ["modp18", modp18, 8192, 4743158n]
  ]

  it("match OpenSSL's built-in MODP groups", () => {
    for (const [name, group, bits] of groups) {
      expect(toHex(group.p), name).toBe(crypto.getDiffieHellman(name).getPrime("hex"))
      expect(Array.from(group.g)).toEqual([2])
      expect(groupBits(group)).toBe(bits)
    }
  })

  it("match the RFC 2409 / RFC 3526 formula p = 2^n - 2^(n-64) - 1 + 2^64 × (⌊2^(n-130) π⌋ + k)", () => {
    // π × 2^B by Machin's formula in fixed point, with guard bits
    const B = 8192 + 64
    const arctanInverse = (x: bigint) => {
      let sum = 0n
      let term = (1n << BigInt(B)) / x
      const x2 = x * x
      for (let k = 0n; term !== 0n; k++) {
        sum += (k % 2n === 0n ? term : -term) / (2n * k + 1n)
        term /= x2
      }
      return sum
    }
    const pi = 16n * arctanInverse(5n) - 4n * arctanInverse(239n)
    for (const [name, group, n, k] of groups) {
      const N = BigInt(n)
      const floorPi = pi >> BigInt(B - (n - 130))
      const expected = (1n << N) - (1n << (N - 64n)) - 1n + (1n << 64n) * (floorPi + k)
      expect(toBigInt(group.p) === expected, name).toBe(true)
    }
  })

  it("bitLength ignores leading zero bytes", () => {
    expect(bitLength(Uint8Array.of(0, 0, 1, 0))).toBe(9)
    expect(bitLength(new Uint8Array(3))).toBe(0)
    expect(bitLength(Uint8Array.of(0x80))).toBe(8)
    expect(defaultGexGroups.map(groupBits)).toEqual([2048, 3072, 4096, 6144, 8192])
  })
})

/** paramiko's expected public values and shared secrets for its x. */
const paramiko = {
  group1: {
    e: "7E2DDB1743F3487D6545F04F1C8476092FB912B013626AB5BCEB764257D88BBA64243B9F348DF7B41B8C814A995E00299913503456983FFB9178D3CD79EB6D55522418A8ABF65375872E55938AB99A84A0B5FC8A1ECC66A7C3766E7E0F80B7CE2C9225FC2DD683F4764244B72963BBB383F529DCF0C5D17740B8A2ADBE9208D4",
    K: 14730343317708716439807310032871972459448364195094179797249681733965528989482751523943515690110179031004049109375612685505881911274101441415545039654102474376472240501616988799699744135291070488314748284283496055223852115360852283821334858541043710301057312858051901453919067023103730011648890038847384890504n
  },
  group14: {
    e: "9850B3A8DE3ECCD3F19644139137C93D9C11BC28ED8BE850908EE294E1D43B88B9295311EFAEF5B736A1B652EBE184CCF36CFB0681C1ED66430088FA448B83619F928E7B9592ED6160EC11D639D51C303603F930F743C646B1B67DA38A1D44598DCE6C3F3019422B898044141420E9A10C29B9C58668F7F20A40F154B2C4768FCF7A9AA7179FB6366A7167EE26DD58963E8B880A0572F641DE0A73DC74C930F7C3A0C9388553F3F8403E40CF8B95FEDB1D366596FCF3FDDEB21A0005ADA650EF1733628D807BE5ACB83925462765D9076570056E39994FB328E3108FE406275758D6BF5F32790EF15D8416BF5548164859E785DB45E7787BB0E727ADE08641ED",
    K: 21526936926159575624241589599003964979640840086252478029709904308461709651400109485351462666820496096345766733042945918306284902585618061272525323382142547359684512114160415969631877620660064043178086464811345023251493620331559440565662862858765724251890489795332144543057725932216208403143759943169004775947331771556537814494448612329251887435553890674764339328444948425882382475260315505741818518926349729970262019325118040559191290279100613049085709127598666890434114956464502529053036826173452792849566280474995114751780998069614898221773345705289637708545219204637224261997310181473787577166103031529148842107599n
  },
  gexServerK:
    67592995013596137876033460028393339951879041140378510871612128162185209509220726296697886624612526735888348020498716482757677848959420073720160491114319163078862905400020959196386947926388406687288901564192071077389283980347784184487280885335302632305026248574716290537036069329724382811853044654824945750581n
}

describe("ffdh (node:crypto key objects)", () => {
  it("reproduces paramiko's e and K for group 1 and group 14", () => {
    for (const [group, vector] of [[modp2, paramiko.group1], [modp14, paramiko.group14]] as const) {
      const pair = ffdhKeyPair(group.p, group.g, paramikoX)
      expect(toHex(pair.publicValue)).toBe(vector.e.toLowerCase())
      expect(toBigInt(pair.sharedSecret(Uint8Array.of(69)))).toBe(vector.K)
    }
  })

  it("agrees with bigint modular exponentiation", () => {
    const p = toBigInt(modp14.p)
    // exponents as privateExponent makes them: top bit set, so never 0 (which OpenSSL rejects as a key)
    const exponent = fc.uint8Array({ minLength: 1, maxLength: 64 }).map((x) => {
      x[0] = x[0]! | 0x80
      return x
    })
    fc.assert(
      fc.property(exponent, fc.bigInt({ min: 2n, max: p - 2n }), (x, y) => {
        const pair = ffdhKeyPair(modp14.p, modp14.g, x)
        expect(toBigInt(pair.publicValue)).toBe(modPow(2n, toBigInt(x), p))
        expect(toBigInt(pair.sharedSecret(fromBigInt(y)))).toBe(modPow(y, toBigInt(x), p))
      }),
      { numRuns: 20 }
    )
  })

  it("OpenSSL refusing the parameters is a ProtocolError", () => {
    thrownReason(ProtocolError, () => ffdhKeyPair(Uint8Array.of(0), Uint8Array.of(2), Uint8Array.of(5)))
  })
})

describe("fixed-group DH exchange hash", () => {
  const paramikoAgreement = (group: DhGroup): KeyAgreement => ({
    publicEncoding: "mpint",
    secretEncoding: "mpint",
    initiate: () => {
      const pair = ffdhKeyPair(group.p, group.g, paramikoX)
      return { publicValue: pair.publicValue, complete: (f) => pair.sharedSecret(f) }
    },
    respond: (e) => {
      const pair = ffdhKeyPair(group.p, group.g, paramikoX)
      return { publicValue: pair.publicValue, secret: pair.sharedSecret(e) }
    }
  })

  const runClient = (group: DhGroup, hash: "sha1" | "sha256", algorithm: string) => {
    const client = singleRoundTrip(hash, paramikoAgreement(group)).client(paramikoInputs("client", algorithm), {})
    const [init] = client.start()
    const reply = Messages.encodeKexDhReply({ hostKey: fakeHostKey, f: Uint8Array.of(69), signature: fakeSignature })
    return { init: init!, result: client.receive(reply).result! }
  }

  it("matches paramiko's group1 client (SSH_MSG_KEXDH_INIT bytes, K and H)", () => {
    const { init, result } = runClient(modp2, "sha1", "diffie-hellman-group1-sha1")
    expect(toHex(init)).toBe(("1E00000080" + paramiko.group1.e).toLowerCase())
    expect(mpintValue(result.K)).toBe(paramiko.group1.K)
    expect(toHex(result.H)).toBe("03079780f3d3ad0b3c6db30c8d21685f367a86d2")
    expect(result.hostKeyBlob).toEqual(fakeHostKey)
    expect(result.signature).toEqual(fakeSignature)
  })

  it("matches paramiko's group14-sha256 client", () => {
    const { init, result } = runClient(modp14, "sha256", "diffie-hellman-group14-sha256")
    expect(toHex(init)).toBe(("1E0000010100" + paramiko.group14.e).toLowerCase())
    expect(mpintValue(result.K)).toBe(paramiko.group14.K)
    expect(toHex(result.H)).toBe("d007c23686be8a7737f828dc9e899f8eb5af423f495f138437be2529c1b8455f")
  })

  it("matches paramiko's group1 server (SSH_MSG_KEXDH_REPLY bytes and H)", () => {
    const server = singleRoundTrip("sha1", paramikoAgreement(modp2)).server(
      paramikoInputs("server", "diffie-hellman-group1-sha1"),
      { blob: fakeServerKey, sign: () => fakeSignature },
      {}
    )
    const step = server.receive(Messages.encodeKexDhInit({ e: Uint8Array.of(69) }))
    expect(toHex(step.result!.H)).toBe("b16bf34dd10945ede84e9c1ef24a14bfdc843389")
    expect(toHex(step.send[0]!)).toBe(
      ("1F0000000866616B652D6B657900000080" + paramiko.group1.e + "0000000866616B652D736967").toLowerCase()
    )
  })
})

describe("group exchange hash (RFC 4419)", () => {
  const e = ffdhKeyPair(modp2.p, modp2.g, paramikoX)

  it("matches paramiko's GEX clients (sha1 and sha256): min 1024, n 2048, max 8192", () => {
    const sizes = { min: 1024, preferred: 2048, max: 8192 }
    const secret = e.sharedSecret(Uint8Array.of(69))
    for (const [hash, H] of [["sha1", "a265563f2fa87f1a89bf007ee90d58be2e4a4bd0"], [
      "sha256",
      "ad1a9365a67b4496f05594ad1bf656e3cda0851289a4c1aff549feae50896df4"
    ]] as const) {
      const inputs = paramikoInputs("client", `diffie-hellman-group-exchange-${hash}`)
      const result = gexExchangeHash(hash, inputs, fakeHostKey, sizes, modp2, e.publicValue, Uint8Array.of(69), secret)
      expect(toHex(result.H)).toBe(H)
      expect(mpintValue(result.K)).toBe(paramiko.group1.K)
    }
  })

  it("matches paramiko's GEX servers: the request's own sizes (1024 / 2048 / 4096) go into H", () => {
    const request = { min: 1024, preferred: 2048, max: 4096 }
    const secret = e.sharedSecret(fromBigInt(12345n))
    expect(toBigInt(secret)).toBe(paramiko.gexServerK)
    for (const [hash, H] of [["sha1", "ce754197c21bf3452863b4f44d0b3951f12516ef"], [
      "sha256",
      "ccac0497cf0aba1dbf55e1a3995d17f4cc31824b0e8d95cdf8a06f169d050d80"
    ]] as const) {
      const inputs = paramikoInputs("server", `diffie-hellman-group-exchange-${hash}`)
      const result = gexExchangeHash(hash, inputs, fakeServerKey, request, modp2, fromBigInt(12345n), e.publicValue, secret)
      expect(toHex(result.H)).toBe(H)
    }
  })
})

describe("validation", () => {
  it("peer values must satisfy 1 < y < p - 1 and not be a power of two", () => {
    const p = toBigInt(modp14.p)
    const valid = (y: bigint) => isValidPublicValue(modp14.p, fromBigInt(y))
    expect([0n, 1n, 2n, 1n << 100n, p - 1n, p, p + 1n].map(valid)).toEqual(Array(7).fill(false))
    expect([3n, 69n, p - 2n, (p - 1n) / 2n].map(valid)).toEqual(Array(4).fill(true))
    expect(isValidPublicValue(modp14.p, new Uint8Array(0))).toBe(false)
  })

  it("private exponents: twice the hash size, top bit set, shorter than p", () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: 200, maxLength: 200 }), (bytes) => {
      const random = (n: number) => bytes.slice(0, n)
      const x256 = privateExponent(modp14.p, "sha256", random)
      expect(x256.length).toBe(64)
      expect(x256[0]! & 0x80).toBe(0x80)
      expect(privateExponent(modp16.p, "sha512", random).length).toBe(128)
      expect(privateExponent(modp2.p, "sha1", random).length).toBe(64)
      // a tiny group still gets an exponent below p
      expect(privateExponent(Uint8Array.of(0xff, 0xfb), "sha256", random).length).toBe(1)
    }))
  })

  it("chooseGroup: the smallest group of at least n bits, else the largest that fits", () => {
    const bits = (request: Messages.KexDhGexRequest) => groupBits(chooseGroup(defaultGexGroups, request))
    expect(bits({ min: 2048, preferred: 3072, max: 8192 })).toBe(3072)
    expect(bits({ min: 2048, preferred: 3000, max: 8192 })).toBe(3072)
    expect(bits({ min: 2048, preferred: 7680, max: 8192 })).toBe(8192)
    expect(bits({ min: 1024, preferred: 1024, max: 2048 })).toBe(2048)
    expect(bits({ min: 2048, preferred: 5000, max: 5000 })).toBe(4096)
    expect(bits({ min: 2048, preferred: 100000, max: 100000 })).toBe(8192)
    for (const bad of [
      { min: 4096, preferred: 2048, max: 8192 },
      { min: 2048, preferred: 8192, max: 4096 },
      { min: 1024, preferred: 1024, max: 1024 }
    ]) {
      thrownReason(ProtocolError, () => chooseGroup(defaultGexGroups, bad))
    }
    const none = thrownReason(NegotiationFailed, () => chooseGroup([modp14], { min: 3000, preferred: 4000, max: 5000 }))
    expect(none.ours).toEqual(["2048"])
  })

  it("gexSizes: defaults and bounds", () => {
    expect(gexSizes({})).toEqual({ min: 2048, preferred: 3072, max: 8192 })
    expect(gexSizes({ gexPreferred: 4096 })).toEqual({ min: 2048, preferred: 4096, max: 8192 })
    expect(gexSizes({ gexMin: 1024, gexMax: 2048 })).toEqual({ min: 1024, preferred: 2048, max: 2048 })
    for (const bad of [{ gexMin: 512 }, { gexMax: 16384 }, { gexMin: 4096, gexPreferred: 2048 }, { gexPreferred: 2048.5 }]) {
      thrownReason(ConfigParseError, () => gexSizes(bad))
    }
  })

  describe("a GEX client refuses bad groups", () => {
    const inputs = paramikoInputs("client", "diffie-hellman-group-exchange-sha256")
    const afterGroup = (group: DhGroup) => {
      const client = groupExchange("sha256").client(inputs, {})
      client.start()
      return () => client.receive(Messages.encodeKexDhGexGroup(group))
    }
    it.each([
      ["smaller than min", modp2],
      ["an even prime", { p: Uint8Array.from([...modp14.p.subarray(0, 255), 0xfe]), g: Uint8Array.of(2) }],
      ["g = 1", { p: modp14.p, g: Uint8Array.of(1) }],
      ["g = p - 1", { p: modp14.p, g: fromBigInt(toBigInt(modp14.p) - 1n) }]
    ])("%s", (_, group) => {
      thrownReason(ProtocolError, afterGroup(group))
    })
    it("accepts a good one and sends SSH_MSG_KEX_DH_GEX_INIT", () => {
      const step = afterGroup(modp14)()
      expect(step.send[0]![0]).toBe(32)
    })
  })
})
