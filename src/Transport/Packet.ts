/**
 * Incremental binary packet framing (RFC 4253 §6) over the current `Opener`
 * and `Sealer` of a connection, with the per-direction sequence numbers
 * (uint32, wrapping at 2^32, RFC 4253 §6.4).
 *
 * `PacketReader` takes socket chunks as they arrive and hands out payloads;
 * `PacketWriter` turns payloads into wire packets. Both are small mutable
 * objects owned by one connection. The cipher is swapped with `setOpener` /
 * `setSealer` at NEWKEYS; strict key exchange also resets the sequence
 * numbers there (`resetSequence`).
 *
 * @example
 * ```ts
 * const reader = new PacketReader()
 * socket.on("data", (chunk) => {
 *   reader.push(chunk)
 *   for (let payload = reader.next(); payload !== undefined; payload = reader.next()) handle(payload)
 * })
 * ```
 * @since 0.1.0
 */
import { ByteQueue } from "../internal/byteQueue.ts"
import { asReason } from "../Wire/Reader.ts"
import type { SshErrorReason } from "../SshError.ts"
import { ProtocolError } from "../SshError.ts"
import { type Opener, type Sealer, plainOpener } from "./Cipher.ts"

/**
 * Reassembles packets from a byte stream and opens them.
 *
 * Payloads may be views into pushed chunks or into decryption buffers: the
 * caller must not modify a chunk after pushing it. After a failure the reader
 * is unusable and `next` rethrows the same reason.
 *
 * @example
 * ```ts
 * const reader = new PacketReader()
 * reader.push(bytesFromSocket)
 * const payload = reader.next() // undefined until a whole packet has arrived
 * ```
 */
export class PacketReader {
  private readonly queue = new ByteQueue()
  private opener: Opener
  private pendingLength: number | undefined = undefined
  private failure: SshErrorReason | undefined = undefined
  private seqno = 0

  /** `sequence` is the number of the first packet (0 on a new connection). */
  constructor(opener: Opener = plainOpener(), sequence = 0) {
    this.opener = opener
    this.seqno = sequence >>> 0
  }

  /** Sequence number of the next packet to be read (uint32). */
  get sequence(): number {
    return this.seqno
  }

  /** Bytes received and not yet consumed by a returned packet. */
  get buffered(): number {
    return this.queue.length
  }

  /** Queues bytes from the socket; nothing is copied. */
  push(chunk: Uint8Array): void {
    this.queue.push(chunk)
  }

  /**
   * The next payload, or `undefined` when more bytes are needed. Throws a
   * reason (`ProtocolError`, `MacMismatch`) on a malformed or forged packet.
   */
  next(): Uint8Array | undefined {
    if (this.failure !== undefined) throw this.failure
    try {
      if (this.pendingLength === undefined) {
        const headerLength = this.opener.headerLength
        if (this.queue.length < headerLength) return undefined
        this.pendingLength = this.opener.packetLength(this.queue.peek(headerLength), this.seqno)
      }
      if (this.queue.length < this.pendingLength) return undefined
      const payload = this.opener.open(this.queue.take(this.pendingLength), this.seqno)
      this.pendingLength = undefined
      this.seqno = (this.seqno + 1) >>> 0
      return payload
    } catch (u) {
      this.failure = asReason(u)
      throw this.failure
    }
  }

  /**
   * Installs the opener for the packets after NEWKEYS. Call it as soon as
   * `next` has returned SSH_MSG_NEWKEYS, before calling `next` again.
   */
  setOpener(opener: Opener): void {
    if (this.pendingLength !== undefined) {
      throw new ProtocolError({ message: "cipher changed in the middle of a packet" })
    }
    this.opener = opener
  }

  /** Restarts the sequence numbers at 0 (strict key exchange, after NEWKEYS). */
  resetSequence(): void {
    this.seqno = 0
  }

  /**
   * Hands back every unconsumed byte (one copy) and empties the reader, e.g.
   * to give the bytes after the version line to another parser.
   */
  takeRest(): Uint8Array {
    this.pendingLength = undefined
    return this.queue.takeAll()
  }
}

/**
 * Seals payloads into wire packets with the current sealer and numbers them.
 *
 * @example
 * ```ts
 * const writer = new PacketWriter(plainSealer(randomBytes))
 * socket.write(writer.seal(kexinitPayload))
 * ```
 */
export class PacketWriter {
  private sealer: Sealer
  private seqno = 0

  /** `sequence` is the number of the first packet (0 on a new connection). */
  constructor(sealer: Sealer, sequence = 0) {
    this.sealer = sealer
    this.seqno = sequence >>> 0
  }

  /** Sequence number of the next packet to be written (uint32). */
  get sequence(): number {
    return this.seqno
  }

  /** The wire bytes of `payload` as the next packet. Throws `ProtocolError` for an oversized payload. */
  seal(payload: Uint8Array): Uint8Array {
    const packet = this.sealer.seal(payload, this.seqno)
    this.seqno = (this.seqno + 1) >>> 0
    return packet
  }

  /** Installs the sealer for the packets after our NEWKEYS. */
  setSealer(sealer: Sealer): void {
    this.sealer = sealer
  }

  /** Restarts the sequence numbers at 0 (strict key exchange, after NEWKEYS). */
  resetSequence(): void {
    this.seqno = 0
  }
}
