/**
 * Incremental binary packet framing (RFC 4253 §6) over the current `Opener`
 * and `Sealer` of a connection, with the per-direction sequence numbers
 * (uint32, wrapping at 2^32, RFC 4253 §6.4).
 *
 * `PacketReader` takes socket chunks as they arrive and hands out payloads;
 * `PacketWriter` turns payloads into wire packets. Both are small mutable
 * objects owned by one connection. The cipher is swapped with `setOpener` /
 * `setSealer` at NEWKEYS; strict key exchange also resets the sequence
 * numbers there (`resetSequence`). Compression, when on, sits between the
 * payload and the cipher (`setCompressor` / `setDecompressor`, RFC 4253
 * §6.2); without it the packet path does exactly what it does uncompressed.
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
import { LimitExceeded, ProtocolError } from "../SshError.ts"
import { type Opener, type Sealer, plainOpener } from "./Cipher.ts"
import type { Compressor, Decompressor } from "./Compression.ts"
import { adopt, release } from "../internal/ownedBuffers.ts"
import { MAX_PACKET_LENGTH, type Payload } from "../internal/packetLayout.ts"

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
  private readonly queue = new ByteRing()
  private opener: Opener
  private pendingLength: number | undefined = undefined
  private failure: SshErrorReason | undefined = undefined
  private seqno = 0
  private limit: PacketLimit | undefined = undefined
  private decompressor: Decompressor | undefined = undefined

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

  /** Queues bytes from the socket (copied into the reader's own buffer). */
  push(chunk: Uint8Array): void {
    this.queue.push(chunk)
  }

  /**
   * The next payload, or `undefined` when more bytes are needed. Throws a
   * reason (`ProtocolError`, `MacMismatch`) on a malformed or forged packet,
   * `LimitExceeded` for a compressed one that inflates past the packet limit.
   */
  next(): Uint8Array | undefined {
    if (this.failure !== undefined) throw this.failure
    try {
      if (this.pendingLength === undefined) {
        const headerLength = this.opener.headerLength
        if (this.queue.length < headerLength) return undefined
        this.pendingLength = this.opener.packetLength(this.queue.peek(headerLength), this.seqno)
        if (this.limit !== undefined && this.pendingLength > this.limit.bytes) {
          throw new LimitExceeded({
            limit: "packet size",
            message: `peer announced a packet of ${this.pendingLength} bytes; at most ${this.limit.bytes} are accepted ${this.limit.phase}`
          })
        }
      }
      if (this.queue.length < this.pendingLength) return undefined
      const opened = this.opener.open(this.queue.take(this.pendingLength), this.seqno)
      const payload = this.decompressor === undefined
        // the ring is reused: a payload that is a view of it (the `none` cipher) must be copied out
        ? adopt(opened.buffer === this.queue.backing ? opened.slice() : opened)
        : this.inflate(opened)
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
   * Inflates the payloads of the packets returned from now on (`undefined`:
   * none), each bounded by the packet limit (`limitPacketLength`, else the
   * largest packet there is); the previous decompressor is closed. Call it
   * between two `next`, right after the packet that switches compression.
   */
  setDecompressor(decompressor: Decompressor | undefined): void {
    if (this.decompressor !== decompressor) this.decompressor?.close()
    this.decompressor = decompressor
  }

  /** Whether payloads are being inflated. */
  get decompressing(): boolean {
    return this.decompressor !== undefined
  }

  private inflate(opened: Uint8Array): Uint8Array {
    const payload = adopt(this.decompressor!.decompress(opened, this.limit?.bytes ?? MAX_PACKET_LENGTH))
    // a cipher's output was this packet's alone, and is spent; a view of the ring (`none`) is not ours to free
    if (opened.buffer !== this.queue.backing) release(adopt(opened))
    return payload
  }

  /**
   * Caps the wire size of the packets accepted from now on (below the cipher's
   * own maximum), e.g. before authentication, so that a peer cannot make us
   * buffer a large packet it has only announced; `undefined` lifts the cap.
   */
  limitPacketLength(limit: PacketLimit | undefined): void {
    this.limit = limit
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

/** A cap on the wire size of incoming packets, and the phase it applies to (for the error message). */
export interface PacketLimit {
  readonly bytes: number
  /** e.g. "before authentication" */
  readonly phase: string
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
  private compressor: Compressor | undefined = undefined

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
  seal(payload: Payload): Uint8Array {
    const packet = this.sealer.seal(this.compressor === undefined ? payload : this.compressor.compress(payload), this.seqno)
    this.seqno = (this.seqno + 1) >>> 0
    return packet
  }

  /** Installs the sealer for the packets after our NEWKEYS. */
  setSealer(sealer: Sealer): void {
    this.sealer = sealer
  }

  /**
   * Compresses the payloads sealed from now on (`undefined`: none); the
   * previous compressor is closed.
   */
  setCompressor(compressor: Compressor | undefined): void {
    if (this.compressor !== compressor) this.compressor?.close()
    this.compressor = compressor
  }

  /** Whether payloads are being compressed. */
  get compressing(): boolean {
    return this.compressor !== undefined
  }

  /** Restarts the sequence numbers at 0 (strict key exchange, after NEWKEYS). */
  resetSequence(): void {
    this.seqno = 0
  }
}

const MIN_RING = 16 * 1024

/**
 * A contiguous, reused receive buffer: bytes are copied in once, and packets
 * are read from it as views, so a packet spanning two socket reads costs no
 * extra allocation (a queue of chunks would have to concatenate it). Views
 * are valid until the next `push`.
 */
class ByteRing {
  // allocated on first use: a connection that has sent nothing holds none
  private buffer = new Uint8Array(0)
  private start = 0
  private end = 0

  get backing(): ArrayBufferLike {
    return this.buffer.buffer
  }

  get length(): number {
    return this.end - this.start
  }

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return
    if (this.end + chunk.length > this.buffer.length) this.makeRoom(chunk.length)
    this.buffer.set(chunk, this.end)
    this.end += chunk.length
  }

  private makeRoom(n: number): void {
    const live = this.end - this.start
    if (live + n <= this.buffer.length) {
      this.buffer.copyWithin(0, this.start, this.end)
    } else {
      let size = Math.max(this.buffer.length * 2, MIN_RING)
      while (size < live + n) size *= 2
      const next = new Uint8Array(size)
      next.set(this.buffer.subarray(this.start, this.end))
      this.buffer = next
    }
    this.start = 0
    this.end = live
  }

  peek(n: number): Uint8Array {
    return this.buffer.subarray(this.start, this.start + n)
  }

  take(n: number): Uint8Array {
    const out = this.buffer.subarray(this.start, this.start + n)
    this.start += n
    if (this.start === this.end) this.start = this.end = 0
    return out
  }

  takeAll(): Uint8Array {
    return this.take(this.length).slice()
  }
}
