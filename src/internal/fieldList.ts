/**
 * Exact-size packet building: fields are collected first (strings already
 * encoded, large data kept by reference), then written once into a buffer of
 * exactly the right size. A WRITE or DATA packet thus costs one allocation and
 * one copy of its data. Also the `number` form of uint64 used where values are
 * file offsets and sizes (safe integers, checked both ways).
 *
 * @internal
 * @since 0.1.0
 */
import { ProtocolError } from "../SshError.ts"
import type { Reader } from "../Wire/Reader.ts"
import { Writer } from "../Wire/Writer.ts"
import { encodeByteString } from "./byteString.ts"

const TWO_32 = 0x1_0000_0000
/** The largest high word of a uint64 that still fits `Number.MAX_SAFE_INTEGER`. */
const MAX_SAFE_HIGH = 0x1f_ffff

const fail = (message: string): never => {
  throw new ProtocolError({ message })
}

const U32 = 0
const U64 = 1
const BIG_U64 = 2
const STRING = 3
const RAW = 4

/**
 * The `ProtocolError` of a uint64 beyond 2^53 - 1: well-formed on the wire,
 * but more than a `number` offset or size can carry. A server answers the
 * request it came in with a status instead of ending the session.
 *
 * @example
 * ```ts
 * if (e instanceof Uint64OutOfRange) reply(Status.make(id, StatusCode.Failure, e.message))
 * ```
 */
export class Uint64OutOfRange extends ProtocolError {}

/**
 * Reads a uint64 as a `number`, failing with `Uint64OutOfRange` when it exceeds 2^53 - 1.
 *
 * @example
 * ```ts
 * readSafeUint64(new Reader(bytes), "offset") // 4096
 * ```
 */
export const readSafeUint64 = (r: Reader, what: string): number => {
  const hi = r.uint32()
  const lo = r.uint32()
  if (hi > MAX_SAFE_HIGH) throw new Uint64OutOfRange({ message: `${what} exceeds 2^53-1` })
  return hi * TWO_32 + lo
}

/**
 * Reads a uint64 as a `number`, saturating at `Number.MAX_SAFE_INTEGER` (for
 * limits, where anything that large means "no limit" in practice).
 *
 * @example
 * ```ts
 * readSaturatingUint64(new Reader(new Uint8Array(8).fill(0xff))) // Number.MAX_SAFE_INTEGER
 * ```
 */
export const readSaturatingUint64 = (r: Reader): number => {
  const hi = r.uint32()
  const lo = r.uint32()
  return hi > MAX_SAFE_HIGH ? Number.MAX_SAFE_INTEGER : hi * TWO_32 + lo
}

/**
 * A list of wire fields with its encoded size, written in one go.
 *
 * @example
 * ```ts
 * const packet = new FieldList().uint32(7).text("/etc/hosts").packet(17) // uint32 length, byte 17, ...
 * ```
 */
export class FieldList {
  private readonly kinds: Array<number> = []
  private readonly values: Array<number | bigint | Uint8Array> = []
  /** Encoded size of the fields so far. */
  size = 0

  private push(kind: number, value: number | bigint | Uint8Array, size: number): this {
    this.kinds.push(kind)
    this.values.push(value)
    this.size += size
    return this
  }

  uint32(n: number, what = "uint32"): this {
    if (!Number.isInteger(n) || n < 0 || n >= TWO_32) fail(`${what} out of uint32 range: ${n}`)
    return this.push(U32, n, 4)
  }

  /** A uint64 given as a non-negative safe integer. */
  uint64(n: number, what = "uint64"): this {
    if (!Number.isSafeInteger(n) || n < 0) fail(`${what} is not a non-negative safe integer: ${n}`)
    return this.push(U64, n, 8)
  }

  bigUint64(n: bigint, what = "uint64"): this {
    if (n < 0n || n >= 1n << 64n) fail(`${what} out of uint64 range: ${n}`)
    return this.push(BIG_U64, n, 8)
  }

  /** A `string`: uint32 length then the bytes. */
  string(bytes: Uint8Array): this {
    return this.push(STRING, bytes, 4 + bytes.length)
  }

  /** A `string` from text, encoded losslessly (see `byteString.ts`). */
  text(s: string): this {
    return this.string(encodeByteString(s))
  }

  /** Bytes with no length prefix. */
  raw(bytes: Uint8Array): this {
    return this.push(RAW, bytes, bytes.length)
  }

  private writeTo(w: Writer): Uint8Array {
    const { kinds, values } = this
    for (let i = 0; i < kinds.length; i++) {
      const value = values[i]!
      switch (kinds[i]) {
        case U32:
          w.uint32(value as number)
          break
        case U64: {
          const n = value as number
          w.uint32(Math.floor(n / TWO_32)).uint32(n % TWO_32)
          break
        }
        case BIG_U64:
          w.uint64(value as bigint)
          break
        case STRING:
          w.string(value as Uint8Array)
          break
        default:
          w.raw(value as Uint8Array)
      }
    }
    return w.finish()
  }

  /** The fields alone, in a buffer of exactly `size` bytes. */
  bytes(): Uint8Array {
    return this.writeTo(new Writer(this.size))
  }

  /** A whole length-prefixed packet: uint32 length, byte `type`, then the fields. */
  packet(type: number): Uint8Array {
    const w = new Writer(5 + this.size)
    w.uint32(1 + this.size).byte(type)
    return this.writeTo(w)
  }
}
