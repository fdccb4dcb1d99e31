import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import * as Agent from "../../src/Auth/Agent.ts"
import * as Certificate from "../../src/Auth/Certificate.ts"
import * as PrivateKey from "../../src/Auth/PrivateKey.ts"
import { isSshErrorReason, ProtocolError } from "../../src/SshError.ts"
import { build } from "../../src/Wire/Writer.ts"
import { dummySecurityKey, unknownKeyBlob } from "./agentFixtures.ts"
import { readText } from "./fixtures.ts"

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex")

const keys = {
  ed25519: PrivateKey.generate("ssh-ed25519", { comment: "ed" }),
  p256: PrivateKey.generate("ecdsa-sha2-nistp256", { comment: "p256" }),
  p384: PrivateKey.generate("ecdsa-sha2-nistp384", { comment: "p384" }),
  p521: PrivateKey.generate("ecdsa-sha2-nistp521", { comment: "p521" }),
  rsa: PrivateKey.generate("ssh-rsa", { bits: 2048, comment: "rsa" })
}
const ca = PrivateKey.generate("ssh-ed25519", { comment: "ca" })

/** Decoding is either a value or a thrown SSH reason, never another exception. */
const decodesOrReason = (f: () => unknown): boolean => {
  try {
    f()
    return true
  } catch (u) {
    return isSshErrorReason(u)
  }
}

const bytes = fc.uint8Array({ maxLength: 48 })
const text = fc.string({ maxLength: 24 })
const uint32 = fc.integer({ min: 0, max: 0xffffffff })

const constraint: fc.Arbitrary<Agent.Constraint> = fc.oneof(
  uint32.map((seconds) => ({ _tag: "Lifetime" as const, seconds })),
  fc.constant({ _tag: "Confirm" as const }),
  uint32.map((count) => ({ _tag: "MaxSignatures" as const, count })),
  text.map((provider) => ({ _tag: "Extension" as const, name: "sk-provider@openssh.com", data: build((w) => w.string(provider)) })),
  bytes.map((blob) => ({ _tag: "Extension" as const, name: "restrict-destination-v00@openssh.com", data: build((w) => w.string(blob)) })),
  fc.tuple(fc.boolean(), bytes).map(([only, blob]) => ({
    _tag: "Extension" as const,
    name: "associated-certs-v00@openssh.com",
    data: build((w) => w.boolean(only).string(blob))
  }))
)

/** Requests without keys: compared structurally after a round trip. */
const plainRequest: fc.Arbitrary<Agent.AgentRequest> = fc.oneof(
  fc.constant({ _tag: "RequestIdentities" as const }),
  fc.record({ _tag: fc.constant("Sign" as const), key: bytes, data: bytes, flags: uint32 }),
  fc.record({ _tag: fc.constant("RemoveIdentity" as const), key: bytes }),
  fc.constant({ _tag: "RemoveAllIdentities" as const }),
  fc.record({ _tag: fc.constant("AddSmartcardKey" as const), id: text, pin: text, constraints: fc.array(constraint, { maxLength: 3 }) }),
  fc.record({ _tag: fc.constant("RemoveSmartcardKey" as const), id: text, pin: text }),
  fc.record({ _tag: fc.constant("Lock" as const), passphrase: bytes }),
  fc.record({ _tag: fc.constant("Unlock" as const), passphrase: bytes }),
  fc.record({ _tag: fc.constant("Extension" as const), name: text, data: bytes })
)

const addRequest: fc.Arbitrary<Agent.AgentRequest> = fc.record({
  _tag: fc.constant("AddIdentity" as const),
  key: fc.constantFrom(...Object.values(keys)),
  comment: text,
  constraints: fc.array(constraint, { maxLength: 3 })
})

const response: fc.Arbitrary<Agent.AgentResponse> = fc.oneof(
  fc.constant({ _tag: "Success" as const }),
  fc.constant({ _tag: "Failure" as const }),
  fc.record({ _tag: fc.constant("Identities" as const), identities: fc.array(fc.record({ blob: bytes, comment: text }), { maxLength: 4 }) }),
  fc.record({ _tag: fc.constant("SignResponse" as const), signature: bytes }),
  fc.record({ _tag: fc.constant("ExtensionResponse" as const), name: text, data: bytes }),
  fc.constant({ _tag: "ExtensionFailure" as const })
)

describe("Agent framing", () => {
  it("prefixes the length", () => {
    expect(hex(Agent.frame(Uint8Array.of(11)))).toBe("000000010b")
  })

  it("splits any chunking of a stream of frames back into the messages", () => {
    fc.assert(fc.property(fc.array(fc.uint8Array({ minLength: 1, maxLength: 40 }), { maxLength: 6 }), fc.array(fc.nat(), { maxLength: 8 }), (payloads, cuts) => {
      const stream = Buffer.concat(payloads.map((p) => Agent.frame(p)))
      const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b)
      const decoder = new Agent.FrameDecoder()
      const out: Array<string> = []
      let from = 0
      for (const to of [...points, stream.length]) {
        decoder.push(new Uint8Array(stream.subarray(from, to)))
        from = to
        for (let m = decoder.next(); m !== undefined; m = decoder.next()) out.push(hex(m))
      }
      expect(out).toEqual(payloads.map(hex))
      expect(decoder.buffered).toBe(0)
    }))
  })

  it("refuses empty and oversized messages with ProtocolError", () => {
    for (const length of [0, Agent.MAX_MESSAGE_LENGTH + 1, 0xffffffff]) {
      const decoder = new Agent.FrameDecoder()
      decoder.push(build((w) => w.uint32(length)))
      expect(() => decoder.next()).toThrow(ProtocolError)
    }
    const decoder = new Agent.FrameDecoder()
    decoder.push(build((w) => w.uint32(Agent.MAX_MESSAGE_LENGTH)))
    expect(decoder.next()).toBeUndefined()
  })
})

describe("Agent requests", () => {
  it("encodes as RFC 9987 §5 lays them out", () => {
    expect(hex(Agent.encodeRequest({ _tag: "RequestIdentities" }))).toBe("0b")
    expect(hex(Agent.encodeRequest({ _tag: "Sign", key: Uint8Array.of(1, 2), data: Uint8Array.of(3), flags: Agent.SignFlags.RSA_SHA2_512 })))
      .toBe("0d" + "000000020102" + "0000000103" + "00000004")
    expect(hex(Agent.encodeRequest({ _tag: "RemoveAllIdentities" }))).toBe("13")
    expect(hex(Agent.encodeRequest({ _tag: "Lock", passphrase: new TextEncoder().encode("pw") }))).toBe("16000000027077")
    expect(hex(Agent.encodeRequest({ _tag: "Extension", name: "query", data: new Uint8Array(0) }))).toBe("1b000000057175657279")
  })

  it("writes an ed25519 key as type, ENC(A), k || ENC(A), comment, and constraints after it", () => {
    const key = keys.ed25519
    const encoded = Agent.encodeRequest({
      _tag: "AddIdentity",
      key,
      comment: "c",
      constraints: [{ _tag: "Lifetime", seconds: 60 }, { _tag: "Confirm" }]
    })
    const fields = build((w) => PrivateKey.writePrivateFields(w, key))
    expect(hex(encoded)).toBe("19" + hex(fields) + "0000000163" + "010000003c" + "02")
    // without constraints it is a plain ADD_IDENTITY
    expect(Agent.encodeRequest({ _tag: "AddIdentity", key, comment: "c", constraints: [] })[0]).toBe(Agent.MessageType.ADD_IDENTITY)
  })

  it("decode ∘ encode = id for requests without keys", () => {
    fc.assert(fc.property(plainRequest, (request) => {
      expect(Agent.decodeRequest(Agent.encodeRequest(request))).toEqual(request)
    }))
  })

  it("decode ∘ encode = id for add requests of every key type (compared by encoding)", () => {
    fc.assert(fc.property(addRequest, (request) => {
      const encoded = Agent.encodeRequest(request)
      const decoded = Agent.decodeRequest(encoded)
      if (decoded._tag !== "AddIdentity" || request._tag !== "AddIdentity") throw new Error("not an add")
      expect(hex(decoded.key.publicKey.blob)).toBe(hex(request.key.publicKey.blob))
      expect(decoded.comment).toBe(request.comment)
      expect(decoded.constraints).toEqual(request.constraints)
      expect(hex(Agent.encodeRequest(decoded))).toBe(hex(encoded))
    }), { numRuns: 60 })
  })

  it.each(Object.entries(keys))("adds a %s key as a certificate (draft-ietf-sshm-cert §2.5) and reads it back", (_, key) => {
    const certificate = Certificate.sign({ key: key.publicKey, role: "user", keyId: "k", principals: ["me"] }, ca)
    const request: Agent.AgentRequest = { _tag: "AddIdentity", key, certificate, comment: "cert", constraints: [] }
    const encoded = Agent.encodeRequest(request)
    // type, certificate blob, then only the private parts
    expect(hex(encoded.subarray(0, 5 + certificate.type.length))).toBe(hex(build((w) => w.byte(17).string(certificate.type))))
    const decoded = Agent.decodeRequest(encoded)
    if (decoded._tag !== "AddIdentity") throw new Error("not an add")
    expect(hex(decoded.certificate!.blob)).toBe(hex(certificate.blob))
    expect(hex(decoded.key.publicKey.blob)).toBe(hex(key.publicKey.blob))
    const data = Uint8Array.of(1, 2, 3)
    expect(hex(decoded.key.sign(data, key.type === "ssh-rsa" ? "rsa-sha2-256" : undefined)).length).toBeGreaterThan(0)
    expect(hex(Agent.encodeRequest(decoded))).toBe(hex(encoded))
  })

  it("refuses a certificate whose private fields belong to another key", () => {
    const certificate = Certificate.sign({ key: keys.ed25519.publicKey, role: "user", keyId: "k", principals: ["me"] }, ca)
    const other = PrivateKey.generate("ssh-ed25519")
    const encoded = Agent.encodeRequest({ _tag: "AddIdentity", key: other, certificate, comment: "", constraints: [] })
    expect(() => Agent.decodeRequest(encoded)).toThrow()
    expect(decodesOrReason(() => Agent.decodeRequest(encoded))).toBe(true)
  })

  it("refuses unknown constraints and constraint extensions (RFC 9987 §5.2.7)", () => {
    const add = (constraint: Uint8Array) =>
      build((w) => {
        w.byte(Agent.MessageType.ADD_ID_CONSTRAINED)
        PrivateKey.writePrivateFields(w, keys.ed25519).string("c").raw(constraint)
      })
    expect(() => Agent.decodeRequest(add(Uint8Array.of(9)))).toThrow(/unknown key constraint 9/)
    expect(() => Agent.decodeRequest(add(build((w) => w.byte(255).string("x@example.com"))))).toThrow(/unknown constraint extension/)
  })

  it("garbage and mutated requests decode or throw a reason, never anything else", () => {
    const valid = [
      ...Object.values(keys).map((key) => Agent.encodeRequest({ _tag: "AddIdentity", key, comment: "c", constraints: [{ _tag: "Confirm" }] })),
      Agent.encodeRequest({ _tag: "Sign", key: keys.ed25519.publicKey.blob, data: Uint8Array.of(1), flags: 0 })
    ]
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (garbage) => decodesOrReason(() => Agent.decodeRequest(garbage))))
    fc.assert(fc.property(fc.constantFrom(...valid), fc.nat(), fc.nat(255), fc.nat(), (message, at, value, cut) => {
      const mutated = message.slice(0, Math.max(1, cut % (message.length + 1)))
      mutated[at % mutated.length] = value
      return decodesOrReason(() => Agent.decodeRequest(mutated))
    }))
  })
})

describe("Agent replies", () => {
  it("encodes as RFC 9987 §5 lays them out", () => {
    expect(hex(Agent.encodeResponse({ _tag: "Success" }))).toBe("06")
    expect(hex(Agent.encodeResponse({ _tag: "Failure" }))).toBe("05")
    expect(hex(Agent.encodeResponse({ _tag: "Identities", identities: [{ blob: Uint8Array.of(7), comment: "a" }] })))
      .toBe("0c" + "00000001" + "0000000107" + "0000000161")
    expect(hex(Agent.encodeResponse({ _tag: "SignResponse", signature: Uint8Array.of(9) }))).toBe("0e0000000109")
  })

  it("decode ∘ encode = id", () => {
    fc.assert(fc.property(response, (r) => {
      expect(Agent.decodeResponse(Agent.encodeResponse(r))).toEqual(r)
    }))
  })

  it("a count of identities larger than the message is a ProtocolError, not an allocation", () => {
    const lying = build((w) => w.byte(12).uint32(0xffffffff).string(Uint8Array.of(1)).string("a"))
    expect(() => Agent.decodeResponse(lying)).toThrow(ProtocolError)
  })

  it("keeps comments that are not UTF-8 (decoded leniently)", () => {
    const reply = build((w) => w.byte(12).uint32(1).string(Uint8Array.of(1)).string(Uint8Array.of(0x66, 0xff)))
    const decoded = Agent.decodeResponse(reply)
    expect(decoded._tag === "Identities" && decoded.identities[0]!.comment).toBe("f\ufffd")
  })

  it("garbage decodes or throws a reason, never anything else", () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (garbage) => decodesOrReason(() => Agent.decodeResponse(garbage))))
    fc.assert(fc.property(fc.constantFrom(1, 2, 3, 4, 5, 6, 11, 12, 13, 14, 28, 29), fc.uint8Array({ maxLength: 64 }), (type, rest) =>
      decodesOrReason(() => Agent.decodeResponse(Uint8Array.of(type, ...rest)))))
  })
})

describe("Agent identities", () => {
  it("parses plain keys, certificates, security keys, and keeps unknown types by name", () => {
    const cert = Certificate.parseOpenSsh(readText("openssh/sshkey/ed25519_1-cert.pub"))
    const sk = dummySecurityKey("ed25519_sk1").key
    const identities = [
      { blob: keys.rsa.publicKey.blob, comment: "rsa" },
      { blob: cert.blob, comment: "cert" },
      { blob: sk.blob, comment: "sk" },
      { blob: unknownKeyBlob("ssh-dss"), comment: "dsa" },
      { blob: Uint8Array.of(0xff), comment: "broken" }
    ].map(Agent.identityOf)
    expect(identities.map((i) => i.type)).toEqual([
      "ssh-rsa",
      "ssh-ed25519-cert-v01@openssh.com",
      "sk-ssh-ed25519@openssh.com",
      "ssh-dss",
      "unknown"
    ])
    expect(identities[0]!.key?.type).toBe("ssh-rsa")
    expect(identities[1]!.certificate?.keyId).toBe("julius")
    expect(identities[1]!.key?.type).toBe("ssh-ed25519")
    expect(identities[2]!.key?.type).toBe("sk-ssh-ed25519@openssh.com")
    expect(identities[3]!.key).toBeUndefined()
    expect(identities[4]!.key).toBeUndefined()
  })

  it("asks RSA keys for the rsa-sha2 hash the algorithm names (plain or certificate)", () => {
    expect(Agent.signFlags("rsa-sha2-512")).toBe(4)
    expect(Agent.signFlags("rsa-sha2-256")).toBe(2)
    expect(Agent.signFlags("rsa-sha2-512-cert-v01@openssh.com")).toBe(4)
    expect(Agent.signFlags("rsa-sha2-256-cert-v01@openssh.com")).toBe(2)
    expect(Agent.signFlags("ssh-rsa")).toBe(0)
    expect(Agent.signFlags("ssh-ed25519-cert-v01@openssh.com")).toBe(0)
    expect(Agent.signFlags("sk-ecdsa-sha2-nistp256@openssh.com")).toBe(0)
  })
})
