import { x25519 } from "@noble/curves/ed25519.js"
import { sha512 } from "@noble/hashes/sha2.js"
import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import { ProtocolError, UnknownAlgorithm } from "../../src/SshError.ts"
import { Reader } from "../../src/Wire/Reader.ts"
import { concat, fromHex, toHex, utf8 } from "../../src/internal/bytes.ts"
import * as Kex from "../../src/Transport/Kex.ts"
import * as Messages from "../../src/Transport/Messages.ts"
import { curve25519 } from "../../src/Transport/kex/Ecdh.ts"
import { digestLength, encodeSharedSecret, type Random } from "../../src/Transport/kex/Exchange.ts"
import { modp14, modp16, modp2 } from "../../src/Transport/kex/Groups.ts"
import { CLIENT_INIT_LENGTH, SERVER_REPLY_LENGTH } from "../../src/Transport/kex/MlKem.ts"
import { thrownReason } from "../Wire/throws.ts"
import { fakeHostKey, fakeServerKey, fakeSignature, paramikoInputs } from "./kex/paramiko.ts"

/** A deterministic byte stream, so failures reproduce. */
const seeded = (seed: number): Random => {
  let counter = 0
  return (length) => {
    const out = new Uint8Array(length)
    for (let o = 0; o < length; o += 64) {
      out.set(sha512(utf8(`${seed}/${counter++}`)).subarray(0, Math.min(64, length - o)), o)
    }
    return out
  }
}

const inputsFor = (algorithm: string): Kex.KexInputs => ({
  clientVersion: "SSH-2.0-effect_ssh_test",
  serverVersion: "SSH-2.0-OpenSSH_9.9",
  clientKexInit: utf8("client KEXINIT payload"),
  serverKexInit: utf8("server KEXINIT payload"),
  algorithm
})

const hostKeyBlob = utf8("host key blob")

/** Runs a client and a server machine against each other in memory. */
const run = (
  algorithm: string,
  options: { client?: Kex.ClientKexOptions; server?: Kex.ServerKexOptions } = {}
) => {
  const signed: Array<Uint8Array> = []
  const client = Kex.makeClientKex(inputsFor(algorithm), options.client)
  const server = Kex.makeServerKex(inputsFor(algorithm), {
    blob: hostKeyBlob,
    sign: (H) => {
      signed.push(H)
      return concat([utf8("signature over "), H])
    }
  }, options.server)
  const trace: Array<number> = []
  let toServer = [...client.start()]
  let clientResult: Kex.KexResult | undefined
  let serverResult: Kex.KexResult | undefined
  for (let round = 0; clientResult === undefined; round++) {
    if (round > 4) throw new Error("kex did not finish")
    const toClient: Array<Uint8Array> = []
    for (const m of toServer) {
      trace.push(m[0]!)
      const step = server.receive(m)
      toClient.push(...step.send)
      serverResult = step.result ?? serverResult
    }
    toServer = []
    for (const m of toClient) {
      trace.push(m[0]!)
      const step = client.receive(m)
      toServer.push(...step.send)
      clientResult = step.result ?? clientResult
    }
  }
  return { client: clientResult, server: serverResult!, signed, trace }
}

const expectedHash: Record<string, Kex.KexHash> = {
  "mlkem768x25519-sha256": "sha256",
  "curve25519-sha256": "sha256",
  "curve25519-sha256@libssh.org": "sha256",
  "ecdh-sha2-nistp256": "sha256",
  "ecdh-sha2-nistp384": "sha384",
  "ecdh-sha2-nistp521": "sha512",
  "diffie-hellman-group-exchange-sha256": "sha256",
  "diffie-hellman-group16-sha512": "sha512",
  "diffie-hellman-group18-sha512": "sha512",
  "diffie-hellman-group14-sha256": "sha256",
  "diffie-hellman-group14-sha1": "sha1",
  "diffie-hellman-group1-sha1": "sha1"
}

describe("registry", () => {
  it("offers OpenSSH's default order, legacy methods only on request", () => {
    expect(Kex.kexNames).toEqual([
      "mlkem768x25519-sha256",
      "curve25519-sha256",
      "curve25519-sha256@libssh.org",
      "ecdh-sha2-nistp256",
      "ecdh-sha2-nistp384",
      "ecdh-sha2-nistp521",
      "diffie-hellman-group-exchange-sha256",
      "diffie-hellman-group16-sha512",
      "diffie-hellman-group18-sha512",
      "diffie-hellman-group14-sha256"
    ])
    expect(Kex.legacyKexNames).toEqual(["diffie-hellman-group14-sha1", "diffie-hellman-group1-sha1"])
    expect(Kex.supportedKexNames.every(Kex.isKnownKex)).toBe(true)
    expect(Kex.isKnownKex("ext-info-c")).toBe(false)
    expect(Kex.isKnownKex("sntrup761x25519-sha512")).toBe(false)
    for (const name of Kex.supportedKexNames) expect(Kex.kexHash(name)).toBe(expectedHash[name])
  })

  it("unknown methods are UnknownAlgorithm; a role mismatch is a ProtocolError", () => {
    const unknown = thrownReason(UnknownAlgorithm, () => Kex.makeClientKex(inputsFor("diffie-hellman-group-exchange-sha1")))
    expect(unknown.known).toEqual(Kex.supportedKexNames)
    thrownReason(UnknownAlgorithm, () => Kex.makeServerKex(inputsFor("none"), { blob: hostKeyBlob, sign: () => hostKeyBlob }))
    thrownReason(UnknownAlgorithm, () => Kex.kexHash("kex-strict-c-v00@openssh.com"))
    thrownReason(ProtocolError, () => Kex.makeClientKex({ ...inputsFor("curve25519-sha256"), role: "server" }))
    expect(Kex.makeClientKex({ ...inputsFor("curve25519-sha256"), role: "client" }).algorithm).toBe("curve25519-sha256")
  })
})

describe("client against server, in memory", () => {
  it.each(Kex.supportedKexNames)("%s: both sides agree on K and H", (algorithm) => {
    const { client, server, signed } = run(algorithm, { client: { random: seeded(1) }, server: { random: seeded(2) } })
    expect(toHex(client!.K)).toBe(toHex(server.K))
    expect(toHex(client!.H)).toBe(toHex(server.H))
    expect(client!.H.length).toBe(digestLength(expectedHash[algorithm]!))
    expect(client!.hashAlgorithm).toBe(expectedHash[algorithm])
    expect(client!.hostKeyBlob).toEqual(hostKeyBlob)
    expect(toHex(signed[0]!)).toBe(toHex(server.H))
    expect(client!.signature).toEqual(concat([utf8("signature over "), server.H]))
    // fresh randomness gives a fresh secret
    expect(toHex(run(algorithm).client!.K)).not.toBe(toHex(client!.K))
  })

  it("is deterministic given the randomness (except ML-KEM encapsulation)", () => {
    for (const algorithm of ["curve25519-sha256", "ecdh-sha2-nistp521", "diffie-hellman-group14-sha256"]) {
      const options = () => ({ client: { random: seeded(7) }, server: { random: seeded(8) } })
      expect(toHex(run(algorithm, options()).client!.H)).toBe(toHex(run(algorithm, options()).client!.H))
    }
  })

  it("group exchange: REQUEST, GROUP, INIT, REPLY with the group the client asked for", () => {
    const { client, trace } = run("diffie-hellman-group-exchange-sha256", { client: { gexPreferred: 4096 } })
    expect(trace).toEqual([34, 31, 32, 33])
    // K is an mpint of at most 4096 bits (+ sign byte)
    expect(new Reader(client!.K).mpintBytes().length).toBeLessThanOrEqual(512)
    const custom = run("diffie-hellman-group-exchange-sha256", {
      client: { gexMin: 1024, gexPreferred: 1024, gexMax: 4096 },
      server: { groups: [modp16] }
    })
    expect(toHex(custom.client!.K)).toBe(toHex(custom.server.K))
    expect(() => run("diffie-hellman-group-exchange-sha256", { server: { groups: [modp2] } })).toThrow()
  })

  it("one-round-trip methods use messages 30 and 31", () => {
    expect(run("curve25519-sha256").trace).toEqual([30, 31])
    expect(run("diffie-hellman-group14-sha256").trace).toEqual([30, 31])
  })
})

describe("known answers (paramiko tests/test_kex.py)", () => {
  const fixed = (hex: string): Random => (length) => {
    const bytes = fromHex(hex)
    if (bytes.length !== length) throw new Error(`fixture has ${bytes.length} bytes, ${length} asked`)
    return bytes
  }
  const c25519Private = fixed("2184abc7eb3e656d2349d2470ee695b570c227340c2b2863b6c9ff427af1f040")
  const c25519Peer = fromHex("8d13a119452382a1ada8eea4c979f3e63ad3f0c7366786d6c5b54b87219bae49")
  const c25519K = 71294722834835117201316639182051104803802881348227506835068888449366462300724n
  // P-256: noble derives the scalar as (seed mod (n - 1)) + 1, so the seed is d - 1
  const p256D = 94761803665136558137557783047955027733968423115106677159790289642479432803037n
  const p256Private = fixed((p256D - 1n).toString(16).padStart(96, "0"))
  const p256Public = "042bdab212fa8ba1b7c843301682a4db424d307246c7e1e6083c41d9ca7b098bf30b3d63e2ec6278488c135360456cc054b3444ecc45998c08894cbc1370f5f989"
  const p256Peer = fromHex(
    "043ae159594ba062efa121480e9ef136203fa9ec6b6e1f8723a321c16e62b945f573f3b822258cbcd094b9fa1c125cbfe5f043280893e66863cc0cb4dccbe70210"
  )
  const p256K = 91610929826364598472338906427792435253694642563583721654249504912114314269754n

  const clientRun = (algorithm: string, random: Random, serverPublic: Uint8Array) => {
    const client = Kex.makeClientKex(paramikoInputs("client", algorithm), { random })
    const [init] = client.start()
    const reply = Messages.encodeKexEcdhReply({ hostKey: fakeHostKey, serverPublic, signature: fakeSignature })
    return { init: Messages.decodeKexEcdhInit(init!).clientPublic, result: client.receive(reply).result! }
  }
  const serverRun = (algorithm: string, random: Random, clientPublic: Uint8Array) => {
    const server = Kex.makeServerKex(
      paramikoInputs("server", algorithm),
      { blob: fakeServerKey, sign: () => fakeSignature },
      { random }
    )
    const step = server.receive(Messages.encodeKexEcdhInit({ clientPublic }))
    return { reply: Messages.decodeKexEcdhReply(step.send[0]!), result: step.result! }
  }

  it("curve25519-sha256 client", () => {
    const { init, result } = clientRun("curve25519-sha256", c25519Private, c25519Peer)
    expect(toHex(init)).toBe(toHex(x25519.getPublicKey(c25519Private(32))))
    expect(new Reader(result.K).mpint()).toBe(c25519K)
    expect(toHex(result.H)).toBe("05b6f6437c0cf38d1a6c5a6f6e2558deb54e7fc62447ebfb1e5d7407326a5475")
    expect(result.signature).toEqual(fakeSignature)
  })

  it("curve25519-sha256 server", () => {
    const { reply, result } = serverRun("curve25519-sha256", c25519Private, c25519Peer)
    expect(new Reader(result.K).mpint()).toBe(c25519K)
    expect(toHex(result.H)).toBe("df08fcfcf31560fee639d9b6d56d760bc3455b5ada148e4514181023e7a9b042")
    expect(reply.hostKey).toEqual(fakeServerKey)
    expect(reply.signature).toEqual(fakeSignature)
  })

  it("ecdh-sha2-nistp256 client", () => {
    const { init, result } = clientRun("ecdh-sha2-nistp256", p256Private, p256Peer)
    expect(toHex(init)).toBe(p256Public)
    expect(new Reader(result.K).mpint()).toBe(p256K)
    expect(toHex(result.H)).toBe("baf7ce243a836037eb5d2221420f35c02b9ab6c957fe3bde3369307b9612570a")
  })

  it("ecdh-sha2-nistp256 server", () => {
    const { reply, result } = serverRun("ecdh-sha2-nistp256", p256Private, p256Peer)
    expect(toHex(reply.serverPublic)).toBe(p256Public)
    expect(new Reader(result.K).mpint()).toBe(p256K)
    expect(toHex(result.H)).toBe("2ef4957afd530dd3f05dbeabf68d724facc060974da9704f2aee4c3de861e7ca")
  })
})

describe("encoding of K (RFC 8731 §3.1 vs the ML-KEM hybrid)", () => {
  it("curve25519: the 32 bytes are a big-endian number, as an mpint with leading zeros stripped", () => {
    // find, deterministically, a key pair whose X25519 output starts with a zero byte
    for (let seed = 0; seed < 5000; seed++) {
      const offer = curve25519.initiate(seeded(seed))
      const reply = curve25519.respond(offer.publicValue, seeded(seed + 100000))
      if (reply.secret[0] !== 0) continue
      const K = encodeSharedSecret(reply.secret, "mpint")
      let zeros = 0
      while (reply.secret[zeros] === 0) zeros++
      const strippedLength = 32 - zeros + ((reply.secret[zeros]! & 0x80) !== 0 ? 1 : 0)
      expect(new Reader(K).uint32()).toBe(strippedLength)
      expect(new Reader(K).mpint()).toBe(BigInt("0x" + toHex(reply.secret)))
      return
    }
    throw new Error("no X25519 secret with a leading zero found")
  })

  it("a secret with its top bit set gets a 0x00 sign byte", () => {
    expect(toHex(encodeSharedSecret(Uint8Array.of(0x80, 1), "mpint"))).toBe("00000003008001")
    expect(toHex(encodeSharedSecret(Uint8Array.of(0, 0, 0x7f), "mpint"))).toBe("000000017f")
  })

  it("mlkem768x25519: K is a string of the 32-byte SHA-256, zeros kept", () => {
    const { client } = run("mlkem768x25519-sha256")
    expect(client!.K.length).toBe(36)
    expect(toHex(client!.K.subarray(0, 4))).toBe("00000020")
    expect(toHex(encodeSharedSecret(Uint8Array.of(0, 0x80), "string"))).toBe("000000020080")
  })
})

describe("invalid peer values are rejected with a ProtocolError", () => {
  /** The client's first message and the server's reply, for tampering. */
  const exchange = (algorithm: string) => {
    const client = Kex.makeClientKex(inputsFor(algorithm))
    const server = Kex.makeServerKex(inputsFor(algorithm), { blob: hostKeyBlob, sign: () => hostKeyBlob })
    const [init] = client.start()
    return { client, server, init: init! }
  }
  const rejectsClientValue = (algorithm: string, value: Uint8Array) =>
    thrownReason(ProtocolError, () => exchange(algorithm).server.receive(Messages.encodeKexEcdhInit({ clientPublic: value })))
  const rejectsServerValue = (algorithm: string, value: Uint8Array) =>
    thrownReason(ProtocolError, () =>
      exchange(algorithm).client.receive(
        Messages.encodeKexEcdhReply({ hostKey: hostKeyBlob, serverPublic: value, signature: hostKeyBlob })
      ))

  it("X25519: the zero point, other low-order points, wrong lengths", () => {
    const lowOrder = [new Uint8Array(32), Uint8Array.from([1, ...new Uint8Array(31)])]
    for (const algorithm of ["curve25519-sha256", "curve25519-sha256@libssh.org"]) {
      for (const value of [...lowOrder, new Uint8Array(31).fill(9), new Uint8Array(33).fill(9), new Uint8Array(0)]) {
        rejectsClientValue(algorithm, value)
        rejectsServerValue(algorithm, value)
      }
    }
  })

  it("NIST curves: points off the curve, compressed points, the wrong length", () => {
    for (const [algorithm, length] of [["ecdh-sha2-nistp256", 65], ["ecdh-sha2-nistp384", 97], ["ecdh-sha2-nistp521", 133]] as const) {
      const good = Messages.decodeKexEcdhInit(exchange(algorithm).init).clientPublic
      expect(good.length).toBe(length)
      const offCurve = Uint8Array.from(good)
      offCurve[length - 1] = offCurve[length - 1]! ^ 1
      const compressed = Uint8Array.from([2 + (good[length - 1]! & 1), ...good.subarray(1, 1 + (length - 1) / 2)])
      for (const value of [offCurve, compressed, good.subarray(0, length - 1), Uint8Array.of(0), new Uint8Array(length)]) {
        rejectsClientValue(algorithm, value)
        rejectsServerValue(algorithm, value)
      }
    }
  })

  it("finite-field DH: e or f of 0, 1, p - 1, p and beyond", () => {
    const p = BigInt("0x" + toHex(modp14.p))
    const bad = [0n, 1n, p - 1n, p, p + 5n, 1n << 2100n].map((n) => n === 0n ? new Uint8Array(0) : fromHex(n.toString(16).padStart(Math.ceil(n.toString(16).length / 2) * 2, "0")))
    for (const value of bad) {
      for (const algorithm of ["diffie-hellman-group14-sha256", "diffie-hellman-group14-sha1"]) {
        thrownReason(ProtocolError, () => exchange(algorithm).server.receive(Messages.encodeKexDhInit({ e: value })))
        thrownReason(ProtocolError, () =>
          exchange(algorithm).client.receive(Messages.encodeKexDhReply({ hostKey: hostKeyBlob, f: value, signature: hostKeyBlob })))
      }
    }
    // group exchange: the same checks on e (server) and f (client)
    const client = Kex.makeClientKex(inputsFor("diffie-hellman-group-exchange-sha256"))
    const server = Kex.makeServerKex(inputsFor("diffie-hellman-group-exchange-sha256"), { blob: hostKeyBlob, sign: () => hostKeyBlob })
    const group = server.receive(client.start()[0]!).send[0]!
    client.receive(group)
    const gexP = Messages.decodeKexDhGexGroup(group).p
    thrownReason(ProtocolError, () => server.receive(Messages.encodeKexDhGexInit({ e: Uint8Array.of(1) })))
    thrownReason(ProtocolError, () => server.receive(Messages.encodeKexDhGexInit({ e: gexP })))
    thrownReason(ProtocolError, () =>
      client.receive(Messages.encodeKexDhGexReply({ hostKey: hostKeyBlob, f: Uint8Array.of(1), signature: hostKeyBlob })))
  })

  it("mlkem768x25519: wrong lengths, an invalid ML-KEM key, a zero X25519 share", () => {
    const algorithm = "mlkem768x25519-sha256"
    const good = Messages.decodeKexEcdhInit(exchange(algorithm).init).clientPublic
    expect(good.length).toBe(CLIENT_INIT_LENGTH)
    rejectsClientValue(algorithm, good.subarray(0, CLIENT_INIT_LENGTH - 1))
    rejectsClientValue(algorithm, concat([good, Uint8Array.of(0)]))
    // coefficients of 0xfff exceed q = 3329: fails the FIPS 203 modulus check
    rejectsClientValue(algorithm, concat([new Uint8Array(1184).fill(0xff), good.subarray(1184)]))
    rejectsClientValue(algorithm, concat([good.subarray(0, 1184), new Uint8Array(32)]))
    rejectsServerValue(algorithm, new Uint8Array(SERVER_REPLY_LENGTH - 1))
    // a valid reply whose X25519 half is replaced by the zero point
    const { client, server, init } = exchange(algorithm)
    const reply = Messages.decodeKexEcdhReply(server.receive(init).send[0]!)
    const tampered = concat([reply.serverPublic.subarray(0, 1088), new Uint8Array(32)])
    thrownReason(ProtocolError, () =>
      client.receive(Messages.encodeKexEcdhReply({ ...reply, serverPublic: tampered })))
  })
})

describe("state machine misuse and garbage", () => {
  it("out-of-order calls are ProtocolErrors", () => {
    for (const algorithm of ["curve25519-sha256", "diffie-hellman-group-exchange-sha256"]) {
      const early = Kex.makeClientKex(inputsFor(algorithm))
      thrownReason(ProtocolError, () => early.receive(Uint8Array.of(31)))
      early.start()
      thrownReason(ProtocolError, () => early.start())
    }
    const { client, server } = (() => {
      const c = Kex.makeClientKex(inputsFor("curve25519-sha256"))
      const s = Kex.makeServerKex(inputsFor("curve25519-sha256"), { blob: hostKeyBlob, sign: () => hostKeyBlob })
      const reply = s.receive(c.start()[0]!).send[0]!
      c.receive(reply)
      return { client: Object.assign(c, { reply }), server: s }
    })()
    thrownReason(ProtocolError, () => client.receive(client.reply))
    thrownReason(ProtocolError, () => server.receive(Messages.encodeKexEcdhInit({ clientPublic: new Uint8Array(32).fill(9) })))
  })

  it("a message of the wrong kind is a ProtocolError naming the expected one", () => {
    const client = Kex.makeClientKex(inputsFor("diffie-hellman-group-exchange-sha256"))
    client.start()
    expect(thrownReason(ProtocolError, () => client.receive(Uint8Array.of(33))).message).toContain("KEX_DH_GEX_GROUP")
    const server = Kex.makeServerKex(inputsFor("diffie-hellman-group-exchange-sha256"), { blob: hostKeyBlob, sign: () => hostKeyBlob })
    // the pre-RFC 4419 SSH_MSG_KEX_DH_GEX_REQUEST_OLD (30) is not accepted
    thrownReason(ProtocolError, () => server.receive(fromHex("1e00000800")))
    thrownReason(ProtocolError, () => Kex.makeClientKex(inputsFor("curve25519-sha256")).receive(new Uint8Array(0)))
  })

  it("garbage at any step → ProtocolError, never another exception", () => {
    fc.assert(
      fc.property(fc.constantFrom(...Kex.supportedKexNames), fc.uint8Array({ maxLength: 120 }), fc.integer({ min: 30, max: 34 }), (algorithm, body, number) => {
        const payload = Uint8Array.from([number, ...body])
        const server = Kex.makeServerKex(inputsFor(algorithm), { blob: hostKeyBlob, sign: () => hostKeyBlob })
        const client = Kex.makeClientKex(inputsFor(algorithm))
        client.start()
        for (const machine of [server, client]) {
          try {
            machine.receive(payload)
          } catch (e) {
            expect(e).toBeInstanceOf(ProtocolError)
          }
        }
      }),
      { numRuns: 300 }
    )
  })
})
