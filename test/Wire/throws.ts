/**
 * Assertions on what a pure function throws, shared by the codec tests.
 */
import { expect } from "vitest"
import { ProtocolError } from "../../src/SshError.ts"

/** What `f` threw, failing the test unless it threw an instance of `reason`. */
export const thrownReason = <R>(reason: abstract new(...args: never) => R, f: () => unknown): R => {
  try {
    f()
  } catch (e) {
    expect(e).toBeInstanceOf(reason)
    return e as R
  }
  throw new Error(`expected a ${reason.name}, but nothing was thrown`)
}

/** What `f` threw, failing the test unless it threw a ProtocolError. */
export const protocolError = (f: () => unknown): ProtocolError => thrownReason(ProtocolError, f)

/** Runs `f` on garbage: it may return or throw a ProtocolError, never anything else. */
export const returnsOrProtocolError = (f: () => unknown): "ok" | "protocol-error" => {
  try {
    f()
    return "ok"
  } catch (e) {
    expect(e).toBeInstanceOf(ProtocolError)
    return "protocol-error"
  }
}
