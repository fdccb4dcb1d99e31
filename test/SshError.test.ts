/**
 * SshError and its reasons as Schema tagged errors: every reason survives a
 * JSON round trip through the SshError schema, the error forwards its
 * reason's cause, `Effect.catchReason` still picks reasons out, and a bug
 * thrown inside the pure core is a defect, never a ProtocolError.
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import { describe, expect, it } from "vitest"
import * as SshError from "../src/SshError.ts"
import { core } from "../src/Transport/Transport.ts"
import { attempt, Reader } from "../src/Wire/Reader.ts"

const osError = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:22"), { code: "ECONNREFUSED" })

/** One of every reason, with every field set (optional ones too, and left out). */
const reasons: ReadonlyArray<SshError.SshErrorReason> = [
  new SshError.ProtocolError({ message: "unexpected message 99" }),
  new SshError.MacMismatch({ message: "bad tag" }),
  new SshError.NegotiationFailed({ kind: "cipher", ours: ["aes128-ctr"], theirs: ["3des-cbc", "arcfour"] }),
  new SshError.UnknownAlgorithm({ kind: "mac", name: "hmac-md4", known: ["hmac-sha2-256"] }),
  SshError.connectFailed({ host: "example.com", port: 22 }, osError),
  new SshError.ConnectFailed({ message: "cannot connect: no route" }),
  new SshError.Timeout({ message: "connect timed out after 10s" }),
  new SshError.ConnectionClosed({ message: "connection closed by peer" }),
  new SshError.PeerDisconnected({ code: 11, description: "bye" }),
  new SshError.HostKeyRejected({ host: "example.com", keyType: "ssh-ed25519", fingerprint: "SHA256:abc", message: "unknown host" }),
  new SshError.HostKeyChanged({ host: "example.com", expected: ["SHA256:old", "SHA256:older"], received: "SHA256:new" }),
  new SshError.HostKeySignatureInvalid({ message: "signature does not verify" }),
  new SshError.AuthFailed({ methodsLeft: ["publickey"], partial: true, tried: ["password"] }),
  new SshError.KeyParseFailed({ message: "not a key" }),
  new SshError.PassphraseRequired({ message: "encrypted" }),
  new SshError.WrongPassphrase({ message: "does not decrypt" }),
  new SshError.ChannelOpenFailed({ code: 2, description: "connect failed" }),
  new SshError.ChannelRequestFailed({ request: "pty-req", message: "refused" }),
  new SshError.SftpStatus({ code: 2, message: "No such file", path: "/nope" }),
  new SshError.SftpStatus({ code: 4, message: "Failure" }),
  new SshError.AgentFailed({ message: "agent refused" }),
  new SshError.ConfigParseError({ message: "line 3: bad option" }),
  new SshError.LimitExceeded({ limit: "packet size", message: "40000 bytes" }),
  new SshError.ForwardFailed({ kind: "connect", address: "db:5432", message: "cannot connect to db:5432: ECONNREFUSED" }),
  new SshError.NotImplemented({ message: "not in this build" })
]

const json = Schema.toCodecJson(SshError.SshError)
const roundTrip = (error: SshError.SshError): SshError.SshError =>
  Schema.decodeUnknownSync(json)(JSON.parse(JSON.stringify(Schema.encodeSync(json)(error))))

/** The fields a reason was made with (its own enumerable properties), cause left out. */
const fieldsOf = (reason: SshError.SshErrorReason): Record<string, unknown> => {
  const { cause: _cause, ...fields } = { ...reason } as Record<string, unknown>
  return fields
}

describe("SshError as a Schema", () => {
  it("the samples cover every reason of the union", () => {
    const tags = new Set(reasons.map((r) => r._tag))
    const members = SshError.SshErrorReason.members.map((m) => m.identifier)
    expect([...tags].sort()).toEqual([...members].sort())
    expect(members.length).toBe(23)
  })

  it.each(reasons.map((r) => [r._tag, r] as const))("%s round-trips through JSON, its class, fields and message kept", (_, reason) => {
    const error = SshError.make(reason)
    const encoded = JSON.parse(JSON.stringify(Schema.encodeSync(json)(error)))
    expect(encoded._tag).toBe("SshError")
    expect(encoded.reason._tag).toBe(reason._tag)

    const decoded = roundTrip(error)
    expect(decoded).toBeInstanceOf(SshError.SshError)
    expect(decoded.reason).toBeInstanceOf(reason.constructor)
    expect(decoded.reason._tag).toBe(reason._tag)
    expect(fieldsOf(decoded.reason)).toEqual(fieldsOf(reason))
    expect(decoded.reason.message).toBe(reason.message)
    expect(decoded.message).toBe(error.message)
  })

  it("messages that are getters work on decoded reasons", () => {
    const decoded = roundTrip(SshError.make(new SshError.NegotiationFailed({ kind: "kex", ours: ["a", "b"], theirs: ["c"] })))
    expect(decoded.message).toBe("NegotiationFailed: no common kex algorithm; ours: a,b; theirs: c")
    const unknown = roundTrip(SshError.make(new SshError.UnknownAlgorithm({ kind: "cipher", name: "rot13", known: ["aes128-ctr"] })))
    expect(unknown.reason.message).toBe(`unknown cipher algorithm "rot13"; known: aes128-ctr`)
    // the field `name` of UnknownAlgorithm is the algorithm's, as before
    expect(unknown.reason._tag === "UnknownAlgorithm" && unknown.reason.name).toBe("rot13")
  })

  it("a ConnectFailed's OS error is encoded as a JSON error and decoded as an Error", () => {
    const error = SshError.make(SshError.connectFailed({ host: "example.com", port: 22 }, osError))
    const encoded = Schema.encodeSync(json)(error) as { reason: { cause: unknown } }
    expect(encoded.reason.cause).toEqual({ name: "Error", message: "connect ECONNREFUSED 127.0.0.1:22" })
    const decoded = roundTrip(error)
    expect(decoded.cause).toBeInstanceOf(Error)
    expect((decoded.cause as Error).message).toBe("connect ECONNREFUSED 127.0.0.1:22")
  })

  it("a destination comes first in the message, survives a round trip, and is never overwritten", () => {
    const error = SshError.withDestination(SshError.make(new SshError.ConnectionClosed({ message: "connection closed by peer" })), "me@host:22")
    expect(error.destination).toBe("me@host:22")
    expect(error.message).toBe("me@host:22: ConnectionClosed: connection closed by peer")
    const decoded = roundTrip(error)
    expect(decoded.destination).toBe("me@host:22")
    expect(decoded.message).toBe(error.message)
    expect(SshError.withDestination(error, "other@jump:22").message).toBe(error.message)
    expect(SshError.make(new SshError.Timeout({ message: "late" })).message).toBe("Timeout: late")
    expect(SshError.formatDestination({ host: "::1", port: 2222, username: "me" })).toBe("me@[::1]:2222")
    expect(SshError.formatDestination({ host: "example.com" })).toBe("example.com:22")
  })

  it("a decoded value that is not a reason is refused", () => {
    expect(() => Schema.decodeUnknownSync(json)({ _tag: "SshError", reason: { _tag: "Bogus", message: "x" } })).toThrow()
    expect(() => Schema.decodeUnknownSync(json)({ _tag: "SshError", reason: { _tag: "PeerDisconnected", code: "11" } })).toThrow()
  })

  it("constructing a reason checks its fields", () => {
    expect(() => new SshError.PeerDisconnected({ code: "11" as unknown as number, description: "bye" })).toThrow()
  })
})

describe("SshError forwards its reason's cause", () => {
  it("error.cause is the OS error of a ConnectFailed, and Cause.pretty shows it", () => {
    const error = SshError.make(SshError.connectFailed({ host: "example.com", port: 22 }, osError))
    expect(error.cause).toBe(osError)
    expect(Object.keys(error)).not.toContain("cause")
    const pretty = Cause.pretty(Cause.fail(error))
    expect(pretty).toContain("SshError: ConnectFailed: cannot connect to example.com:22: connection refused (ECONNREFUSED)")
    expect(pretty).toContain("[cause]: Error: connect ECONNREFUSED 127.0.0.1:22")
  })

  it("a reason without a cause gives an error without one", () => {
    const error = SshError.make(new SshError.Timeout({ message: "late" }))
    expect(error.cause).toBeUndefined()
    expect("cause" in error).toBe(false)
  })
})

describe("handling reasons", () => {
  const failing = (reason: SshError.SshErrorReason): Effect.Effect<string, SshError.SshError> =>
    Effect.fail(SshError.make(reason))

  it("Effect.catchReason picks out one reason and leaves the others", async () => {
    const handled = failing(new SshError.AuthFailed({ methodsLeft: ["publickey"], partial: false, tried: ["password"] })).pipe(
      Effect.catchReason("SshError", "AuthFailed", (r) => Effect.succeed(`left: ${r.methodsLeft.join(",")}`))
    )
    expect(await Effect.runPromise(handled)).toBe("left: publickey")

    const other = failing(new SshError.Timeout({ message: "late" })).pipe(
      Effect.catchReason("SshError", "AuthFailed", () => Effect.succeed("no"))
    )
    const exit = await Effect.runPromiseExit(other)
    expect(Exit.isFailure(exit) && Cause.squash(exit.cause)).toBeInstanceOf(SshError.SshError)
  })

  it("a reason is yieldable and matches catchTag on its own", async () => {
    const program = Effect.gen(function*() {
      return yield* new SshError.Timeout({ message: "late" })
    }).pipe(Effect.catchTag("Timeout", (r) => Effect.succeed(r.message)))
    expect(await Effect.runPromise(program)).toBe("late")
  })

  it("isSshErrorReason accepts the classes only, not look-alike objects", () => {
    for (const reason of reasons) expect(SshError.isSshErrorReason(reason)).toBe(true)
    expect(SshError.isSshErrorReason({ _tag: "ProtocolError", message: "x" })).toBe(false)
    expect(SshError.isSshErrorReason(SshError.make(reasons[0]!))).toBe(false)
  })
})

describe("bugs are defects, reasons typed errors", () => {
  const bug = new TypeError("Cannot read properties of undefined (reading 'length')")

  it("a reason thrown inside core is the typed SshError", () => {
    const exit = Effect.runSyncExit(core(() => new Reader(new Uint8Array(2)).uint32()))
    expect(Exit.isFailure(exit)).toBe(true)
    if (Exit.isFailure(exit)) {
      const failure = Cause.findError(exit.cause)
      expect(failure._tag === "Success" && failure.success.reason._tag).toBe("ProtocolError")
      expect(Cause.hasDies(exit.cause)).toBe(false)
    }
  })

  it("an SshError thrown inside core stays that error", () => {
    const error = SshError.make(new SshError.MacMismatch({ message: "bad tag" }))
    const exit = Effect.runSyncExit(core(() => {
      throw error
    }))
    expect(Exit.isFailure(exit) && Cause.squash(exit.cause)).toBe(error)
  })

  it("a TypeError thrown inside core is a defect, not a ProtocolError", () => {
    const exit = Effect.runSyncExit(core(() => {
      throw bug
    }))
    expect(Exit.isFailure(exit)).toBe(true)
    if (Exit.isFailure(exit)) {
      expect(Cause.hasFails(exit.cause)).toBe(false)
      const defect = Cause.findDefect(exit.cause)
      expect(defect._tag === "Success" && defect.success).toBe(bug)
    }
  })

  it("a reason-shaped plain object thrown inside core is a defect too", () => {
    const exit = Effect.runSyncExit(core(() => {
      throw { _tag: "ProtocolError", message: "a look-alike" }
    }))
    expect(Exit.isFailure(exit) && Cause.hasDies(exit.cause) && !Cause.hasFails(exit.cause)).toBe(true)
  })

  it("fromUnknown wraps reasons and throws anything else again, a defect in Effect.try's catch", () => {
    const reason = new SshError.MacMismatch({ message: "bad tag" })
    expect(SshError.fromUnknown(reason).reason).toBe(reason)
    expect(() => SshError.fromUnknown(bug)).toThrow(bug)
    const exit = Effect.runSyncExit(Effect.try({
      try: () => {
        throw bug
      },
      catch: SshError.fromUnknown
    }))
    expect(Exit.isFailure(exit) && !Cause.hasFails(exit.cause) && Cause.squash(exit.cause)).toBe(bug)
  })

  it("a TypeError inside Wire.attempt is thrown on, and a defect once core runs it", () => {
    const exit = Effect.runSyncExit(core(() => attempt(() => {
      throw bug
    })))
    expect(Exit.isFailure(exit) && !Cause.hasFails(exit.cause) && Cause.squash(exit.cause)).toBe(bug)
    const truncated = Effect.runSyncExit(core(() => attempt(() => new Reader(new Uint8Array(1)).uint32())))
    expect(Exit.isSuccess(truncated) && Result.isFailure(truncated.value) && truncated.value.failure._tag).toBe("ProtocolError")
  })

  it("fromCause gives the SshError of a cause without defects, nothing for a cause with one", () => {
    const error = SshError.make(new SshError.Timeout({ message: "late" }))
    expect(SshError.fromCause(Cause.fail(error))).toBe(error)
    const reason = new SshError.MacMismatch({ message: "bad tag" })
    expect(SshError.fromCause(Cause.fail(reason))?.reason).toBe(reason)
    expect(SshError.fromCause(Cause.die(bug))).toBeUndefined()
    expect(SshError.fromCause(Cause.combine(Cause.fail(error), Cause.die(bug)))).toBeUndefined()
    expect(SshError.fromCause(Cause.interrupt(1))).toBeUndefined()
    expect(SshError.fromCause(Cause.fail("not ours"))).toBeUndefined()
  })

  it("failOrDie: a reason fails, anything else dies", () => {
    const reason = new SshError.Timeout({ message: "late" })
    const failed = Effect.runSyncExit(SshError.failOrDie(reason))
    expect(Exit.isFailure(failed) && (Cause.squash(failed.cause) as SshError.SshError).reason).toBe(reason)
    const died = Effect.runSyncExit(SshError.failOrDie("boom"))
    expect(Exit.isFailure(died) && Cause.hasDies(died.cause) && Cause.squash(died.cause)).toBe("boom")
  })
})
