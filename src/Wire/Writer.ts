/**
 * RFC 4251 §5 encoding into a growable buffer.
 *
 * @since 0.1.0
 */

const textEncoder = new TextEncoder()

/**
 * An append-only byte builder. Methods chain.
 *
 * @example
 * ```ts
 * const payload = new Writer().byte(5).string("ssh-userauth").finish()
 * ```
 */
export class Writer {
  private buffer: Uint8Array
  private view: DataView
  length = 0

  constructor(initialSize = 256) {
    this.buffer = new Uint8Array(initialSize)
    this.view = new DataView(this.buffer.buffer)
  }

  private ensure(n: number): void {
    const needed = this.length + n
    if (needed <= this.buffer.length) return
    let size = Math.max(this.buffer.length, 16) * 2
    while (size < needed) size *= 2
    const next = new Uint8Array(size)
    next.set(this.buffer.subarray(0, this.length))
    this.buffer = next
    this.view = new DataView(next.buffer)
  }

  byte(n: number): this {
    this.ensure(1)
    this.buffer[this.length++] = n
    return this
  }

  boolean(b: boolean): this {
    return this.byte(b ? 1 : 0)
  }

  uint32(n: number): this {
    this.ensure(4)
    this.view.setUint32(this.length, n >>> 0)
    this.length += 4
    return this
  }

  uint64(n: bigint): this {
    this.ensure(8)
    this.view.setBigUint64(this.length, BigInt.asUintN(64, n))
    this.length += 8
    return this
  }

  /** Raw bytes with no length prefix. */
  raw(bytes: Uint8Array): this {
    this.ensure(bytes.length)
    this.buffer.set(bytes, this.length)
    this.length += bytes.length
    return this
  }

  /** A `string`: uint32 length then the bytes (text is encoded as UTF-8). */
  string(value: Uint8Array | string): this {
    const bytes = typeof value === "string" ? textEncoder.encode(value) : value
    this.uint32(bytes.length)
    return this.raw(bytes)
  }

  nameList(names: ReadonlyArray<string>): this {
    return this.string(names.join(","))
  }

  /** An mpint in two's complement, minimal length (RFC 4251). */
  mpint(value: bigint): this {
    return this.string(mpintBytes(value))
  }

  /** An mpint from unsigned big-endian magnitude bytes. */
  mpintFromUnsigned(magnitude: Uint8Array): this {
    let i = 0
    while (i < magnitude.length && magnitude[i] === 0) i++
    const m = magnitude.subarray(i)
    if (m.length > 0 && (m[0]! & 0x80) !== 0) {
      this.uint32(m.length + 1)
      this.byte(0)
      return this.raw(m)
    }
    return this.string(m)
  }

  /** The bytes written so far (a copy-free view when the buffer is exactly full). */
  finish(): Uint8Array {
    return this.length === this.buffer.length ? this.buffer : this.buffer.slice(0, this.length)
  }
}

/**
 * Minimal two's-complement encoding of a bigint, as the body of an mpint.
 *
 * @example
 * ```ts
 * mpintBytes(0x80n) // Uint8Array [0x00, 0x80]
 * ```
 */
export const mpintBytes = (value: bigint): Uint8Array => {
  if (value === 0n) return new Uint8Array(0)
  if (value > 0n) {
    let hex = value.toString(16)
    if (hex.length % 2) hex = "0" + hex
    if (parseInt(hex.slice(0, 2), 16) & 0x80) hex = "00" + hex
    return hexToBytes(hex)
  }
  // negative: find the smallest byte length whose range holds it
  let bytes = 1
  while (value < -(1n << BigInt(bytes * 8 - 1))) bytes++
  const twos = (1n << BigInt(bytes * 8)) + value
  return hexToBytes(twos.toString(16).padStart(bytes * 2, "0"))
}

const hexToBytes = (hex: string): Uint8Array => {
  const out = new Uint8Array(hex.length / 2)
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16)
  return out
}

/**
 * Builds a payload with a fresh writer.
 *
 * @example
 * ```ts
 * const ignore = build((w) => w.byte(2).string("padding"))
 * ```
 */
export const build = (f: (w: Writer) => unknown, initialSize = 256): Uint8Array => {
  const w = new Writer(initialSize)
  f(w)
  return w.finish()
}
