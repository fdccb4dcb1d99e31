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
import { asReason } from "../Wire/Reader.ts"
import type { SshErrorReason } from "../SshError.ts"
import { ProtocolError } from "../SshError.ts"
import { type Opener, type Sealer, plainOpener } from "./Cipher.ts"

/** Drop consumed chunks from the queue once this many have piled up at its head. */
const COMPACT_AFTER = 64

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
  private chunks: Array<Uint8Array> = []
  private head = 0
  private offset = 0
  private opener: Opener
  private pendingLength: number | undefined = undefined
  private failure: SshErrorReason | undefined = undefined
  private seqno = 0
  private bufferedBytes = 0

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
    return this.bufferedBytes
  }

  /** Queues bytes from the socket; nothing is copied. */
  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return
    this.chunks.push(chunk)
    this.bufferedBytes += chunk.length
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
        if (this.bufferedBytes < headerLength) return undefined
        this.pendingLength = this.opener.packetLength(this.peek(headerLength), this.seqno)
      }
      if (this.bufferedBytes < this.pendingLength) return undefined
      const payload = this.opener.open(this.take(this.pendingLength), this.seqno)
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
    const rest = this.take(this.bufferedBytes)
    this.pendingLength = undefined
    return rest
  }

  /** The first `n` buffered bytes (`n` ≤ buffered), without consuming them. */
  private peek(n: number): Uint8Array {
    const first = this.chunks[this.head]!
    if (first.length - this.offset >= n) return first.subarray(this.offset, this.offset + n)
    const out = new Uint8Array(n)
    let filled = 0
    for (let i = this.head; filled < n; i++) {
      const chunk = this.chunks[i]!
      const from = i === this.head ? this.offset : 0
      const part = chunk.subarray(from, from + n - filled)
      out.set(part, filled)
      filled += part.length
    }
    return out
  }

  /** Consumes the first `n` buffered bytes (`n` ≤ buffered): a view when they lie in one chunk. */
  private take(n: number): Uint8Array {
    if (n === 0) return new Uint8Array(0)
    const first = this.chunks[this.head]!
    let out: Uint8Array
    if (first.length - this.offset >= n) {
      out = first.subarray(this.offset, this.offset + n)
      this.advance(n)
    } else {
      out = new Uint8Array(n)
      let filled = 0
      while (filled < n) {
        const chunk = this.chunks[this.head]!
        const part = chunk.subarray(this.offset, this.offset + n - filled)
        out.set(part, filled)
        filled += part.length
        this.advance(part.length)
      }
    }
    return out
  }

  private advance(n: number): void {
    this.offset += n
    this.bufferedBytes -= n
    if (this.offset === this.chunks[this.head]!.length) {
      this.head++
      this.offset = 0
      if (this.head === this.chunks.length) {
        this.chunks = []
        this.head = 0
      } else if (this.head >= COMPACT_AFTER) {
        this.chunks = this.chunks.slice(this.head)
        this.head = 0
      }
    }
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
