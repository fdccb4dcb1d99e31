import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import * as A from "../../src/Auth/Messages.ts"
import { fromHex, toHex } from "../../src/internal/bytes.ts"
import * as N from "../../src/Wire/MessageNumber.ts"
import { build } from "../../src/Wire/Writer.ts"
import { bytes, name, text } from "../Wire/arbitraries.ts"
import { protocolError, returnsOrProtocolError } from "../Wire/throws.ts"

/** A value with its byte fields as hex, so that views and copies compare equal. */
const plain = (value: unknown): unknown => {
  if (value instanceof Uint8Array) return toHex(value)
  if (Array.isArray(value)) return value.map(plain)
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(
      Object.entries(value).filter(([, v]) => v !== undefined).map(([k, v]) => [k, plain(v)])
    )
  }
  return value
}

const otherMethod = name.filter((m) => !["none", "password", "publickey", "keyboard-interactive"].includes(m))

const methodRequest: fc.Arbitrary<A.AuthMethodRequest> = fc.oneof(
  fc.constant({ method: "none" as const }),
  fc.record({ method: fc.constant("password" as const), password: text, newPassword: text }, {
    requiredKeys: ["method", "password"]
  }),
  fc.record({ method: fc.constant("publickey" as const), algorithm: name, publicKey: bytes, signature: bytes }, {
    requiredKeys: ["method", "algorithm", "publicKey"]
  }),
  fc.record({ method: fc.constant("keyboard-interactive" as const), submethods: text }),
  fc.record({ method: otherMethod, data: bytes })
)

const authRequest: fc.Arbitrary<A.AuthRequest> = fc.record({ user: text, service: name, request: methodRequest })

const prompts = fc.array(fc.record({ prompt: text, echo: fc.boolean() }), { maxLength: 5 })
const infoRequest: fc.Arbitrary<A.InfoRequest> = fc.record({ name: text, instruction: text, prompts })

describe("USERAUTH_REQUEST (RFC 4252)", () => {
  it("none and password have the RFC layout", () => {
    expect(toHex(A.encodeRequest({ user: "u", service: "ssh-connection", request: { method: "none" } }))).toBe(
      "32" + "0000000175" + "0000000e7373682d636f6e6e656374696f6e" + "000000046e6f6e65"
    )
    const password = A.encodeRequest({ user: "u", service: "s", request: { method: "password", password: "pw" } })
    expect(toHex(password)).toBe("32" + "0000000175" + "0000000173" + "0000000870617373776f7264" + "00" + "000000027077")
    const change = A.encodeRequest({
      user: "u",
      service: "s",
      request: { method: "password", password: "a", newPassword: "b" }
    })
    expect(toHex(change)).toBe(
      "32" + "0000000175" + "0000000173" + "0000000870617373776f7264" + "01" + "0000000161" + "0000000162"
    )
  })

  it("publickey query and signed request differ only in the flag and the signature", () => {
    const query = A.encodeRequest({
      user: "u",
      service: "s",
      request: { method: "publickey", algorithm: "ssh-ed25519", publicKey: fromHex("aa") }
    })
    const head = "32" + "0000000175" + "0000000173" + "000000097075626c69636b6579"
    expect(toHex(query)).toBe(head + "00" + "0000000b7373682d65643235353139" + "00000001aa")
    const signed = A.encodeRequest({
      user: "u",
      service: "s",
      request: { method: "publickey", algorithm: "ssh-ed25519", publicKey: fromHex("aa"), signature: fromHex("bb") }
    })
    expect(toHex(signed)).toBe(head + "01" + "0000000b7373682d65643235353139" + "00000001aa" + "00000001bb")
  })

  it("keyboard-interactive sends an empty language tag then the submethods (RFC 4256 §3.1)", () => {
    const kbd = A.encodeRequest({ user: "u", service: "s", request: { method: "keyboard-interactive", submethods: "" } })
    expect(toHex(kbd)).toBe(
      "32" + "0000000175" + "0000000173" + "000000146b6579626f6172642d696e746572616374697665" + "00000000" + "00000000"
    )
  })

  it("decode ∘ encode = id for every method", () => {
    fc.assert(
      fc.property(authRequest, (req) => {
        expect(plain(A.decodeRequest(A.encodeRequest(req)))).toEqual(plain(req))
      }),
      { numRuns: 500 }
    )
  })

  it("publicKeySignedData is the RFC 4252 §7 blob: session id then the signed request", () => {
    const sessionId = fromHex("0102")
    const signed = A.publicKeySignedData(sessionId, "u", "s", "ssh-ed25519", fromHex("aa"))
    const request = A.encodeRequest({
      user: "u",
      service: "s",
      request: { method: "publickey", algorithm: "ssh-ed25519", publicKey: fromHex("aa"), signature: new Uint8Array(0) }
    })
    // the request without its trailing signature string
    expect(toHex(signed)).toBe("00000002" + "0102" + toHex(request.subarray(0, request.length - 4)))
  })

  it("rejects a payload of another message type, and trailing bytes after publickey", () => {
    expect(protocolError(() => A.decodeRequest(fromHex("33"))).message).toBe("expected USERAUTH_REQUEST")
    const query = A.encodeRequest({
      user: "u",
      service: "s",
      request: { method: "publickey", algorithm: "ssh-ed25519", publicKey: fromHex("aa") }
    })
    expect(protocolError(() => A.decodeRequest(Uint8Array.of(...query, 0))).message).toBe(
      "1 trailing bytes after publickey request"
    )
  })

  it("rejects a method or service name that is not printable ASCII", () => {
    const bad = build((w) => w.byte(N.USERAUTH_REQUEST).string("u").string("s").string("pass\nword"))
    expect(protocolError(() => A.decodeRequest(bad)).message).toMatch(/^method name has a non-printable/)
  })
})

describe("server messages (client side)", () => {
  it("FAILURE, SUCCESS and BANNER have the RFC layout and decode back", () => {
    const failure = A.encodeFailure(["publickey", "password"], true)
    expect(toHex(failure)).toBe("33" + "000000127075626c69636b65792c70617373776f7264" + "01")
    expect(A.decodeServerMessage(failure, "none")).toEqual({
      _tag: "Failure",
      methods: ["publickey", "password"],
      partial: true
    })
    expect(toHex(A.encodeSuccess())).toBe("34")
    expect(A.decodeServerMessage(A.encodeSuccess(), "password")).toEqual({ _tag: "Success" })
    expect(toHex(A.encodeBanner("hi\n"))).toBe("35" + "000000036869" + "0a" + "00000000")
  })

  it("decode ∘ encode = id for FAILURE, BANNER, PK_OK and INFO_REQUEST", () => {
    fc.assert(fc.property(fc.array(name, { maxLength: 5 }), fc.boolean(), (methods, partial) => {
      expect(A.decodeServerMessage(A.encodeFailure(methods, partial), "none")).toEqual({ _tag: "Failure", methods, partial })
    }))
    fc.assert(fc.property(text, (message) => {
      expect(A.decodeServerMessage(A.encodeBanner(message), "none")).toEqual({ _tag: "Banner", message })
    }))
    fc.assert(fc.property(name, bytes, (algorithm, publicKey) => {
      expect(plain(A.decodeServerMessage(A.encodePkOk(algorithm, publicKey), "publickey"))).toEqual(
        plain({ _tag: "PkOk", algorithm, publicKey })
      )
    }))
    fc.assert(fc.property(infoRequest, (req) => {
      expect(A.decodeServerMessage(A.encodeInfoRequest(req), "keyboard-interactive")).toEqual({ _tag: "InfoRequest", ...req })
    }))
  })

  it("message 60 means what the method in progress says", () => {
    const changeRequest = build((w) => w.byte(60).string("Password expired").string(""))
    expect(A.decodeServerMessage(changeRequest, "password")).toEqual({
      _tag: "PasswordChangeRequest",
      prompt: "Password expired"
    })
    expect(protocolError(() => A.decodeServerMessage(changeRequest, "none")).message).toBe(
      "unexpected message 60 during none authentication"
    )
  })

  it("INFO_REQUEST has the RFC 4256 §3.2 layout", () => {
    const req = A.encodeInfoRequest({ name: "n", instruction: "", prompts: [{ prompt: "P: ", echo: false }] })
    expect(toHex(req)).toBe("3c" + "000000016e" + "00000000" + "00000000" + "00000001" + "00000003503a20" + "00")
  })

  it(`accepts ${A.MAX_PROMPTS} prompts or responses and rejects more`, () => {
    const many = (n: number) => Array.from({ length: n }, (_, i) => ({ prompt: `p${i}`, echo: i % 2 === 0 }))
    const ok = A.decodeServerMessage(A.encodeInfoRequest({ name: "", instruction: "", prompts: many(A.MAX_PROMPTS) }), "keyboard-interactive")
    expect(ok._tag === "InfoRequest" && ok.prompts.length).toBe(A.MAX_PROMPTS)
    const tooMany = A.encodeInfoRequest({ name: "", instruction: "", prompts: many(A.MAX_PROMPTS + 1) })
    expect(protocolError(() => A.decodeServerMessage(tooMany, "keyboard-interactive")).message).toBe(
      `too many prompts (${A.MAX_PROMPTS + 1})`
    )
    const responses = Array.from({ length: A.MAX_PROMPTS }, (_, i) => `r${i}`)
    expect(A.decodeInfoResponse(A.encodeInfoResponse(responses))).toEqual(responses)
    expect(protocolError(() => A.decodeInfoResponse(A.encodeInfoResponse([...responses, "x"]))).message).toBe(
      `too many responses (${A.MAX_PROMPTS + 1})`
    )
  })

  it("an absurd prompt count fails before reading or allocating", () => {
    const absurd = build((w) => w.byte(60).string("").string("").string("").uint32(0xffffffff))
    expect(protocolError(() => A.decodeServerMessage(absurd, "keyboard-interactive")).message).toBe(
      "too many prompts (4294967295)"
    )
  })

  it("rejects messages that do not belong to authentication", () => {
    for (const n of [1, 50, 61, 80, 94]) {
      expect(protocolError(() => A.decodeServerMessage(Uint8Array.of(n), "password")).message).toBe(
        `unexpected message ${n} during authentication`
      )
    }
  })
})

describe("INFO_RESPONSE", () => {
  it("has the RFC 4256 §3.4 layout and decodes back", () => {
    expect(toHex(A.encodeInfoResponse(["hunter2"]))).toBe("3d" + "00000001" + "0000000768756e74657232")
    fc.assert(fc.property(fc.array(text, { maxLength: 8 }), (responses) => {
      expect(A.decodeInfoResponse(A.encodeInfoResponse(responses))).toEqual(responses)
    }))
  })

  it("rejects another message type and trailing bytes", () => {
    expect(protocolError(() => A.decodeInfoResponse(fromHex("3c00000000"))).message).toBe("expected USERAUTH_INFO_RESPONSE")
    expect(protocolError(() => A.decodeInfoResponse(fromHex("3d0000000000"))).message).toBe(
      "1 trailing bytes after USERAUTH_INFO_RESPONSE"
    )
  })
})

describe("garbage in → a value or a ProtocolError", () => {
  const methods = ["none", "password", "publickey", "keyboard-interactive", "hostbased"]

  it("decodeServerMessage", () => {
    fc.assert(
      fc.property(fc.constantFrom(51, 52, 53, 60, 0, 255), fc.uint8Array({ maxLength: 48 }), fc.constantFrom(...methods), (type, body, method) => {
        returnsOrProtocolError(() => A.decodeServerMessage(Uint8Array.of(type, ...body), method))
      }),
      { numRuns: 1000 }
    )
  })

  it("decodeRequest, with every method name", () => {
    fc.assert(
      fc.property(fc.constantFrom(...methods), fc.uint8Array({ maxLength: 48 }), (method, body) => {
        const payload = build((w) => w.byte(N.USERAUTH_REQUEST).string("u").string("ssh-connection").string(method).raw(body))
        returnsOrProtocolError(() => A.decodeRequest(payload))
      }),
      { numRuns: 1000 }
    )
    fc.assert(fc.property(fc.uint8Array({ maxLength: 48 }), (payload) => {
      returnsOrProtocolError(() => A.decodeRequest(payload))
    }))
  })

  it("decodeInfoResponse", () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 48 }), (body) => {
      returnsOrProtocolError(() => A.decodeInfoResponse(Uint8Array.of(61, ...body)))
    }))
  })

  it("every truncation of a valid request decodes or throws a ProtocolError", () => {
    fc.assert(fc.property(authRequest, fc.nat(), (req, at) => {
      const payload = A.encodeRequest(req)
      returnsOrProtocolError(() => A.decodeRequest(payload.subarray(0, at % (payload.length + 1))))
    }))
  })
})
