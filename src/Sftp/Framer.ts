/**
 * Incremental framing of the SFTP byte stream: chunks of any size in, whole
 * packet bodies (type byte onwards, ready for `Messages.decode`) out.
 *
 * Each packet is `uint32 length` then `length` bytes. The length is checked
 * against the maximum as soon as its four bytes are in, before anything is
 * allocated for the body, so a hostile prefix costs nothing. A body that lies
 * inside one chunk is returned as a view of that chunk (no copy); one that
 * spans chunks is copied once into a buffer of its exact size. Callers must
 * therefore not reuse a chunk's memory after pushing it.
 *
 * After a framing error the stream cannot be resynchronised: every later
 * `push` throws the same error.
 *
 * @since 0.1.0
 */
import { ByteQueue } from "../internal/byteQueue.ts"
import { ProtocolError } from "../SshError.ts"
import { Reader } from "../Wire/Reader.ts"

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
  private readonly queue = new ByteQueue()
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
    return this.queue.length
  }

  /**
   * Adds a chunk and returns the bodies of every packet now complete, in order.
   * Throws `ProtocolError` on a zero or oversize length.
   */
  push(chunk: Uint8Array): Array<Uint8Array> {
    if (this.error !== undefined) throw this.error
    const queue = this.queue
    queue.push(chunk)
    const bodies: Array<Uint8Array> = []
    while (queue.length >= LENGTH_BYTES) {
      const length = new Reader(queue.peek(LENGTH_BYTES)).uint32()
      if (length === 0 || length > this.maxPacketLength) {
        this.error = new ProtocolError({
          message: length === 0
            ? "SFTP packet of length 0"
            : `SFTP packet length ${length} exceeds the maximum ${this.maxPacketLength}`
        })
        throw this.error
      }
      if (queue.length < LENGTH_BYTES + length) break
      queue.skip(LENGTH_BYTES)
      bodies.push(queue.take(length))
    }
    return bodies
  }
}
