/**
 * Incremental framing of the SFTP byte stream: chunks of any size in, whole
 * packet bodies (type byte onwards, ready for `Messages.decode`) out.
 *
 * Each packet is `uint32 length` then `length` bytes. The length is checked
 * against the maximum as soon as its four bytes are in, before anything is
 * allocated for the body, so a hostile prefix costs at most one body. A body
 * that lies inside one chunk is returned as a view of that chunk (no copy);
 * one that spans chunks is copied, part by part as they arrive, into a buffer
 * of its exact size that belongs to the caller. The framer keeps no chunk
 * after `push` returns, so a chunk may be freed once the views returned from
 * it are done with (callers must not otherwise reuse a chunk's memory).
 *
 * After a framing error the stream cannot be resynchronised: every later
 * `push` throws the same error.
 *
 * @since 0.1.0
 */
import { readUint32, uninitialized } from "../internal/bytes.ts"
import { ProtocolError } from "../SshError.ts"

/**
 * The largest READ/WRITE data this library sends or expects in one packet.
 *
 * @example
 * ```ts
 * const chunk = Math.min(requested, MAX_DATA_LENGTH)
 * ```
 */
export const MAX_DATA_LENGTH = 256 * 1024

/**
 * Room for a packet's fields besides its data: type, id, a handle of up to 256
 * bytes, offset and length prefixes fit well within it.
 *
 * @example
 * ```ts
 * MAX_DATA_LENGTH + PACKET_HEADER_ALLOWANCE === DEFAULT_MAX_PACKET_LENGTH // true
 * ```
 */
export const PACKET_HEADER_ALLOWANCE = 1024

/**
 * The default largest value of a packet's length field: 256 KiB of data plus header room.
 *
 * @example
 * ```ts
 * new Framer({ maxPacketLength: DEFAULT_MAX_PACKET_LENGTH })
 * ```
 */
export const DEFAULT_MAX_PACKET_LENGTH = MAX_DATA_LENGTH + PACKET_HEADER_ALLOWANCE

/** Options of a `Framer`. */
export interface FramerOptions {
  /** Largest accepted value of the length field (type byte + payload). */
  readonly maxPacketLength?: number | undefined
}

const LENGTH_BYTES = 4

/**
 * Splits an SFTP byte stream into packet bodies.
 *
 * @example
 * ```ts
 * const framer = new Framer()
 * for (const body of framer.push(chunk)) handle(Messages.decode(body))
 * ```
 */
export class Framer {
  readonly maxPacketLength: number
  /** A length prefix split across chunks. */
  private readonly prefix = new Uint8Array(LENGTH_BYTES)
  private prefixFilled = 0
  /** The body being assembled from several chunks, and how much of it has arrived. */
  private body: Uint8Array | undefined = undefined
  private bodyFilled = 0
  private error: ProtocolError | undefined = undefined

  constructor(options: FramerOptions = {}) {
    const max = options.maxPacketLength ?? DEFAULT_MAX_PACKET_LENGTH
    if (!Number.isSafeInteger(max) || max < 1 || max > 0xffff_ffff) {
      throw new ProtocolError({ message: `invalid maximum SFTP packet length ${max}` })
    }
    this.maxPacketLength = max
  }

  /** Bytes received but not yet returned as part of a packet. */
  get buffered(): number {
    return this.body === undefined ? this.prefixFilled : LENGTH_BYTES + this.bodyFilled
  }

  /**
   * Adds a chunk and returns the bodies of every packet now complete, in order.
   * Throws `ProtocolError` on a zero or oversize length.
   */
  push(chunk: Uint8Array): Array<Uint8Array> {
    if (this.error !== undefined) throw this.error
    const bodies: Array<Uint8Array> = []
    let at = 0
    while (at < chunk.length) {
      if (this.body === undefined) {
        let length: number
        if (this.prefixFilled === 0 && chunk.length - at >= LENGTH_BYTES) {
          length = readUint32(chunk, at)
          at += LENGTH_BYTES
        } else {
          const n = Math.min(LENGTH_BYTES - this.prefixFilled, chunk.length - at)
          this.prefix.set(chunk.subarray(at, at + n), this.prefixFilled)
          this.prefixFilled += n
          at += n
          if (this.prefixFilled < LENGTH_BYTES) break
          length = readUint32(this.prefix, 0)
        }
        if (length === 0 || length > this.maxPacketLength) {
          this.prefixFilled = LENGTH_BYTES // counted in `buffered`
          this.error = new ProtocolError({
            message: length === 0
              ? "SFTP packet of length 0"
              : `SFTP packet length ${length} exceeds the maximum ${this.maxPacketLength}`
          })
          throw this.error
        }
        this.prefixFilled = 0
        if (chunk.length - at >= length) {
          bodies.push(chunk.subarray(at, at + length))
          at += length
          continue
        }
        // Every byte of it is written before it is returned: no need to zero it first.
        this.body = uninitialized(length)
        this.bodyFilled = 0
      }
      const body = this.body
      const n = Math.min(body.length - this.bodyFilled, chunk.length - at)
      body.set(chunk.subarray(at, at + n), this.bodyFilled)
      this.bodyFilled += n
      at += n
      if (this.bodyFilled === body.length) {
        bodies.push(body)
        this.body = undefined
      }
    }
    return bodies
  }
}
