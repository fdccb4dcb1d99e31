import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import { fromHex, toHex, utf8 } from "../../src/internal/bytes.ts"
import * as Messages from "../../src/Transport/Messages.ts"
import { modp2 } from "../../src/Transport/kex/Groups.ts"
import { bytes, name, text, uint32 } from "../Wire/arbitraries.ts"
import { protocolError, returnsOrProtocolError } from "../Wire/throws.ts"

const nameList = fc.array(name, { maxLength: 6 })
/** An unsigned magnitude without leading zeros, as `Reader.mpintBytes` returns it. */
const magnitude = fc.uint8Array({ maxLength: 80 }).map((b) => {
  let i = 0
  while (i < b.length && b[i] === 0) i++
  return b.slice(i)
})

const kexInit = fc.record({
  cookie: fc.uint8Array({ minLength: 16, maxLength: 16 }),
  kexAlgorithms: nameList,
  serverHostKeyAlgorithms: nameList,
  ciphersClientToServer: nameList,
  ciphersServerToClient: nameList,
  macsClientToServer: nameList,
  macsServerToClient: nameList,
  compressionClientToServer: nameList,
  compressionServerToClient: nameList,
  languagesClientToServer: nameList,
  languagesServerToClient: nameList,
  firstKexPacketFollows: fc.boolean(),
  reserved: uint32
})

/** Each codec: an arbitrary of its values, its encoder and its decoder. */
const codecs: ReadonlyArray<readonly [string, fc.Arbitrary<any>, (m: any) => Uint8Array, (p: Uint8Array) => unknown]> = [
  ["KEXINIT", kexInit, Messages.encodeKexInit, Messages.decodeKexInit],
  ["NEWKEYS", fc.constant(undefined), Messages.encodeNewKeys, Messages.decodeNewKeys],
  [
    "DISCONNECT",
    fc.record({ code: uint32, description: text, language: text }),
    Messages.encodeDisconnect,
    Messages.decodeDisconnect
  ],
  ["IGNORE", bytes, Messages.encodeIgnore, Messages.decodeIgnore],
  ["UNIMPLEMENTED", uint32, Messages.encodeUnimplemented, Messages.decodeUnimplemented],
  [
    "DEBUG",
    fc.record({ alwaysDisplay: fc.boolean(), message: text, language: text }),
    Messages.encodeDebug,
    Messages.decodeDebug
  ],
  ["SERVICE_REQUEST", name, Messages.encodeServiceRequest, Messages.decodeServiceRequest],
  ["SERVICE_ACCEPT", name, Messages.encodeServiceAccept, Messages.decodeServiceAccept],
  ["EXT_INFO", fc.array(fc.tuple(name, bytes), { maxLength: 5 }), Messages.encodeExtInfo, Messages.decodeExtInfo],
  ["KEX_ECDH_INIT", fc.record({ clientPublic: bytes }), Messages.encodeKexEcdhInit, Messages.decodeKexEcdhInit],
  [
    "KEX_ECDH_REPLY",
    fc.record({ hostKey: bytes, serverPublic: bytes, signature: bytes }),
    Messages.encodeKexEcdhReply,
    Messages.decodeKexEcdhReply
  ],
  ["KEXDH_INIT", fc.record({ e: magnitude }), Messages.encodeKexDhInit, Messages.decodeKexDhInit],
  [
    "KEXDH_REPLY",
    fc.record({ hostKey: bytes, f: magnitude, signature: bytes }),
    Messages.encodeKexDhReply,
    Messages.decodeKexDhReply
  ],
  [
    "KEX_DH_GEX_REQUEST",
    fc.record({ min: uint32, preferred: uint32, max: uint32 }),
    Messages.encodeKexDhGexRequest,
    Messages.decodeKexDhGexRequest
  ],
  ["KEX_DH_GEX_GROUP", fc.record({ p: magnitude, g: magnitude }), Messages.encodeKexDhGexGroup, Messages.decodeKexDhGexGroup],
  ["KEX_DH_GEX_INIT", fc.record({ e: magnitude }), Messages.encodeKexDhGexInit, Messages.decodeKexDhGexInit],
  [
    "KEX_DH_GEX_REPLY",
    fc.record({ hostKey: bytes, f: magnitude, signature: bytes }),
    Messages.encodeKexDhGexReply,
    Messages.decodeKexDhGexReply
  ]
]

/** Typed arrays compare by content once normalized to plain arrays. */
const plain = (u: unknown): unknown =>
  u instanceof Uint8Array
    ? Array.from(u)
    : Array.isArray(u)
    ? u.map(plain)
    : typeof u === "object" && u !== null
    ? Object.fromEntries(Object.entries(u).map(([k, v]) => [k, plain(v)]))
    : u

describe("Transport messages", () => {
  for (const [label, arbitrary, encode, decode] of codecs) {
    describe(label, () => {
      it("decode ∘ encode = id", () => {
        fc.assert(fc.property(arbitrary, (m) => {
          expect(plain(decode(encode(m)))).toEqual(plain(m))
        }))
      })

      it("garbage → ProtocolError, never another exception", () => {
        fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (garbage) => {
          returnsOrProtocolError(() => decode(garbage))
        }))
        // garbage after a valid message number too
        fc.assert(fc.property(arbitrary, fc.uint8Array({ maxLength: 40 }), (m, tail) => {
          const payload = encode(m)
          returnsOrProtocolError(() => decode(Uint8Array.from([...payload.subarray(0, 1), ...tail])))
        }))
      })

      it("rejects a truncated payload, trailing bytes and the wrong message number", () => {
        fc.assert(fc.property(arbitrary, (m) => {
          const payload = encode(m)
          if (payload.length > 1) protocolError(() => decode(payload.subarray(0, payload.length - 1)))
          protocolError(() => decode(Uint8Array.from([...payload, 0])))
          protocolError(() => decode(Uint8Array.from([payload[0]! ^ 0x40, ...payload.subarray(1)])))
        }))
      })
    })
  }

  it("KEXINIT has the RFC 4253 §7.1 layout", () => {
    const payload = Messages.encodeKexInit({
      cookie: new Uint8Array(16).fill(0xaa),
      kexAlgorithms: ["curve25519-sha256", "ext-info-c"],
      serverHostKeyAlgorithms: ["ssh-ed25519"],
      ciphersClientToServer: ["aes128-ctr"],
      ciphersServerToClient: ["aes128-ctr"],
      macsClientToServer: ["hmac-sha2-256"],
      macsServerToClient: ["hmac-sha2-256"],
      compressionClientToServer: ["none"],
      compressionServerToClient: ["none"],
      languagesClientToServer: [],
      languagesServerToClient: [],
      firstKexPacketFollows: true,
      reserved: 0
    })
    const names = (s: string) => toHex(Uint8Array.of(0, 0, 0, s.length)) + toHex(utf8(s))
    expect(toHex(payload)).toBe(
      "14" + "aa".repeat(16) + names("curve25519-sha256,ext-info-c") + names("ssh-ed25519") +
        names("aes128-ctr").repeat(2) + names("hmac-sha2-256").repeat(2) + names("none").repeat(2) +
        "00000000".repeat(2) + "01" + "00000000"
    )
    protocolError(() => Messages.encodeKexInit({ ...Messages.decodeKexInit(payload), cookie: new Uint8Array(15) }))
  })

  it("KEX_DH_GEX messages match paramiko's test bytes", () => {
    // paramiko tests/test_kex.py: a client's request, a server's group
    const request = fromHex("22000004000000080000002000")
    expect(Messages.decodeKexDhGexRequest(request)).toEqual({ min: 1024, preferred: 2048, max: 8192 })
    expect(toHex(Messages.encodeKexDhGexRequest({ min: 1024, preferred: 2048, max: 8192 }))).toBe(toHex(request))
    const group = fromHex("1f00000081" + "00" + toHex(modp2.p) + "0000000102")
    expect(toHex(Messages.decodeKexDhGexGroup(group).p)).toBe(toHex(modp2.p))
    expect(toHex(Messages.encodeKexDhGexGroup(modp2))).toBe(toHex(group))
  })

  it("DH values are unsigned: a negative mpint is refused", () => {
    protocolError(() => Messages.decodeKexDhInit(fromHex("1e0000000180")))
    expect(Array.from(Messages.decodeKexDhInit(fromHex("1e000000020080")).e)).toEqual([0x80])
  })

  it("EXT_INFO: server-sig-algs and an untrusted count", () => {
    const payload = Messages.encodeExtInfo([
      Messages.serverSigAlgsExtension(["ssh-ed25519", "rsa-sha2-512"]),
      ["ping@openssh.com", utf8("0")]
    ])
    const decoded = Messages.decodeExtInfo(payload)
    expect(new Map(decoded).has("ping@openssh.com")).toBe(true)
    expect(Messages.serverSigAlgs(decoded)).toEqual(["ssh-ed25519", "rsa-sha2-512"])
    expect(Messages.serverSigAlgs([])).toBeUndefined()
    protocolError(() => Messages.serverSigAlgs([["server-sig-algs", utf8("a,,b")]]))
    // a count of 2^32 - 1 with nothing after it fails on the data, without allocating for the count
    protocolError(() => Messages.decodeExtInfo(fromHex("07ffffffff")))
  })

  it("DISCONNECT and DEBUG default the language tag to empty", () => {
    const bye = Messages.decodeDisconnect(Messages.encodeDisconnect({ code: 11, description: "bye" }))
    expect(bye).toEqual({ code: 11, description: "bye", language: "" })
    expect(Messages.decodeDebug(Messages.encodeDebug({ alwaysDisplay: true, message: "hi" })).language).toBe("")
    protocolError(() => Messages.decodeDisconnect(fromHex("01000000020000000280ff00000000")))
  })

  it("messageNumber and messageName", () => {
    expect(Messages.messageNumber(Messages.encodeNewKeys())).toBe(21)
    protocolError(() => Messages.messageNumber(new Uint8Array(0)))
    expect(Messages.messageName(20)).toBe("SSH_MSG_KEXINIT")
    expect(Messages.messageName(99)).toBe("message 99")
  })
})
