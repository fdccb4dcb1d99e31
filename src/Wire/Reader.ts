/**
 * RFC 4251 §5 decoding: a cursor over a byte array reading byte, boolean,
 * uint32, uint64, string, mpint and name-list.
 *
 * Every read checks its length against what is left *before* touching or
 * allocating anything, and fails by throwing a `ProtocolError` reason; callers
 * at a boundary use `attempt` (pure) or the shell's `core` to turn that
 * into a value; anything else thrown is a bug and stays a throw (a defect).
 * Strings are returned as views (`subarray`), never copies.
 *
 * @since 0.1.0
 */
import { ProtocolError, type SshErrorReason, isSshErrorReason } from "../SshError.ts"
import * as Result from "effect/Result"

/** Largest name-list we accept (OpenSSH: 64 KiB of KEXINIT is already generous). */
export const MAX_NAME_LIST_LENGTH = 64 * 1024
/** Largest mpint we accept, in bytes (16384-bit DH groups need 2049). */
export const MAX_MPINT_LENGTH = 2048 + 16

// ignoreBOM: a leading U+FEFF is content (a password, a message), not a byte-order mark to strip
const textDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })

const fail = (message: string): never => {
  throw new ProtocolError({ message })
}

/**
 * A read cursor. Methods throw `ProtocolError` on truncated or malformed data.
 *
 * @example
 * ```ts
 * const r = new Reader(payload)
 * const type = r.byte()
 * const name = r.utf8()
 * r.end()
 * ```
 */
export class Reader {
  offset: number
  readonly bytes: Uint8Array
  readonly limit: number

  constructor(bytes: Uint8Array, offset = 0, limit = bytes.length) {
    this.bytes = bytes
    this.offset = offset
    this.limit = limit
  }

  get remaining(): number {
    return this.limit - this.offset
  }

  private need(n: number, what: string): void {
    if (n > this.limit - this.offset) {
      fail(`truncated ${what}: need ${n} bytes, ${this.limit - this.offset} left`)
    }
  }

  byte(): number {
    this.need(1, "byte")
    return this.bytes[this.offset++]!
  }

  boolean(): boolean {
    return this.byte() !== 0
  }

  uint32(): number {
    this.need(4, "uint32")
    const b = this.bytes
    const o = this.offset
    this.offset = o + 4
    return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0
  }

  uint64(): bigint {
    const hi = this.uint32()
    const lo = this.uint32()
    return (BigInt(hi) << 32n) | BigInt(lo)
  }

  /** A `string` as raw bytes (a view into the buffer). */
  string(what = "string"): Uint8Array {
    const length = this.uint32()
    this.need(length, what)
    const start = this.offset
    this.offset = start + length
    return this.bytes.subarray(start, start + length)
  }

  /** A `string` that must be valid UTF-8. */
  utf8(what = "string"): string {
    const raw = this.string(what)
    try {
      return textDecoder.decode(raw)
    } catch {
      return fail(`${what} is not valid UTF-8`)
    }
  }

  /** A `string` holding an US-ASCII name (algorithm, request, method). */
  name(what = "name"): string {
    const raw = this.string(what)
    if (raw.length > MAX_NAME_LIST_LENGTH) fail(`${what} too long (${raw.length} bytes)`)
    let s = ""
    for (let i = 0; i < raw.length; i++) {
      const c = raw[i]!
      if (c < 0x20 || c > 0x7e) fail(`${what} has a non-printable byte 0x${c.toString(16)}`)
      s += String.fromCharCode(c)
    }
    return s
  }

  nameList(what = "name-list"): Array<string> {
    const s = this.name(what)
    if (s.length === 0) return []
    const names = s.split(",")
    for (const n of names) if (n.length === 0) fail(`${what} has an empty name`)
    return names
  }

  /** An mpint as a non-negative or negative bigint (two's complement, RFC 4251). */
  mpint(what = "mpint"): bigint {
    const raw = this.string(what)
    if (raw.length > MAX_MPINT_LENGTH) fail(`${what} too long (${raw.length} bytes)`)
    if (raw.length === 0) return 0n
    let hex = ""
    for (let i = 0; i < raw.length; i++) hex += raw[i]!.toString(16).padStart(2, "0")
    const value = BigInt("0x" + hex)
    return (raw[0]! & 0x80) !== 0 ? value - (1n << BigInt(raw.length * 8)) : value
  }

  /** An mpint's magnitude bytes, leading zero stripped (for keys: RSA n/e, ECDSA r/s). */
  mpintBytes(what = "mpint"): Uint8Array {
    const raw = this.string(what)
    if (raw.length > MAX_MPINT_LENGTH) fail(`${what} too long (${raw.length} bytes)`)
    if (raw.length > 0 && (raw[0]! & 0x80) !== 0) fail(`${what} is negative`)
    let i = 0
    while (i < raw.length && raw[i] === 0) i++
    return raw.subarray(i)
  }

  /** `n` raw bytes (a view). */
  raw(n: number, what = "bytes"): Uint8Array {
    this.need(n, what)
    const start = this.offset
    this.offset = start + n
    return this.bytes.subarray(start, start + n)
  }

  /** Everything left (a view). */
  rest(): Uint8Array {
    const start = this.offset
    this.offset = this.limit
    return this.bytes.subarray(start, this.limit)
  }

  /** Fails unless every byte was consumed. */
  end(what = "message"): void {
    if (this.offset !== this.limit) fail(`${this.limit - this.offset} trailing bytes after ${what}`)
  }
}

/**
 * Runs a throwing decoder and returns its outcome as a value: a thrown reason
 * is the failure. Anything else thrown (a TypeError, a RangeError) is a bug of
 * ours, not a malformed input, and is thrown again: at the shell's boundary it
 * becomes a defect rather than a `ProtocolError` blaming the peer.
 *
 * @example
 * ```ts
 * const result = attempt(() => new Reader(bytes).uint32())
 * if (Result.isFailure(result)) console.log(result.failure.message)
 * ```
 */
export const attempt = <A>(f: () => A): Result.Result<A, SshErrorReason> => {
  try {
    return Result.succeed(f())
  } catch (u) {
    return Result.fail(asReason(u))
  }
}

/**
 * The reason that was thrown; anything else is thrown again (see `attempt`).
 *
 * @example
 * ```ts
 * try {
 *   decode(bytes)
 * } catch (u) {
 *   failure = asReason(u) // a ProtocolError stays; a TypeError goes on up
 * }
 * ```
 */
export const asReason = (u: unknown): SshErrorReason => {
  if (isSshErrorReason(u)) return u
  throw u
}
