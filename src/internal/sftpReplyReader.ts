/**
 * The client's framing of the server's byte stream: like `Framer` followed
 * by `Messages.decode`, except that the payload of a DATA reply is never
 * copied. A 256 KiB DATA arrives spread over many channel packets; instead of
 * joining them, the reply carries the views of the chunks it lies in
 * (`parts`), and its `data` is joined only if someone asks for it. Transfers
 * stream the parts as they are, which saves a copy and an allocation of every
 * block.
 *
 * The same checks as `Framer`: a zero or oversize length is a `ProtocolError`
 * as soon as its four bytes are in, before anything is buffered for it, and
 * after a framing error every later `push` throws the same error.
 *
 * @internal
 * @since 0.1.0
 */
import { DEFAULT_MAX_PACKET_LENGTH } from "../Sftp/Framer.ts"
import * as Messages from "../Sftp/Messages.ts"
import { ProtocolError } from "../SshError.ts"
import { concat } from "./bytes.ts"
import { handOver, release, releaseAll, retain } from "./ownedBuffers.ts"

/** A DATA reply whose payload is the list of chunk views it arrived in. */
export interface DataReply extends Messages.Data {
  readonly parts: ReadonlyArray<Uint8Array>
}

/**
 * Whether a reply carries its data as parts.
 *
 * @example
 * ```ts
 * const chunks = isDataReply(reply) ? reply.parts : [reply.data]
 * ```
 */
export const isDataReply = (reply: Messages.SftpPacket): reply is DataReply => reply._tag === "Data" && "parts" in reply

const makeDataReply = (id: number, parts: ReadonlyArray<Uint8Array>): DataReply => {
  let joined: Uint8Array | undefined
  return {
    _tag: "Data",
    id,
    parts,
    get data() {
      return joined ??= parts.length === 1 ? parts[0]! : concat(parts)
    }
  }
}

const LENGTH = 4
/** uint32 length, byte type, uint32 id, uint32 data length. */
const DATA_HEADER = 13

/**
 * Splits the server's stream into decoded packets.
 *
 * @example
 * ```ts
 * const reader = new ReplyReader()
 * for (const packet of reader.push(chunk)) dispatch(packet)
 * ```
 */
export class ReplyReader {
  private chunks: Array<Uint8Array> = []
  private size = 0
  private error: ProtocolError | undefined
  private readonly maxPacketLength: number

  constructor(maxPacketLength: number = DEFAULT_MAX_PACKET_LENGTH) {
    this.maxPacketLength = maxPacketLength
  }

  /** The byte at `offset` from the front (which must be buffered). */
  private byteAt(offset: number): number {
    for (const chunk of this.chunks) {
      if (offset < chunk.length) return chunk[offset]!
      offset -= chunk.length
    }
    throw new ProtocolError({ message: "SFTP reply reader: read past the buffer" })
  }

  private uint32At(offset: number): number {
    return ((this.byteAt(offset) << 24) | (this.byteAt(offset + 1) << 16) | (this.byteAt(offset + 2) << 8) | this.byteAt(offset + 3)) >>> 0
  }

  /**
   * Removes the first `n` bytes and returns them as views of the chunks they
   * lie in. The reader holds each chunk it was given (`ownedBuffers`) until
   * it has taken all of it; with `hold`, each view is one more holder, which
   * whoever ends up with the view releases or hands over (or drops: then the
   * garbage collector frees the chunk as usual).
   */
  private takeViews(n: number, hold: boolean): Array<Uint8Array> {
    const views: Array<Uint8Array> = []
    this.size -= n
    while (n > 0) {
      const chunk = this.chunks[0]!
      const length = Math.min(chunk.length, n)
      const view = length === chunk.length ? chunk : chunk.subarray(0, n)
      views.push(hold ? retain(view) : view)
      if (view === chunk) {
        this.chunks.shift()
        // (frees the chunk when nothing else holds it: `view` may read as empty from here on)
        release(chunk)
      } else {
        this.chunks[0] = chunk.subarray(n)
      }
      n -= length
    }
    return views
  }

  private fail(message: string): never {
    this.error = new ProtocolError({ message })
    throw this.error
  }

  /**
   * Adds a chunk (not copied: do not reuse its memory) and returns every packet now complete, in order. The
   * reader takes a holder of its own on an owned chunk (`ownedBuffers.retain`): the caller may release its
   * own as soon as `push` returns (a chunk borrowed with `borrowStdout` may be freed once its batch is pushed).
   */
  push(chunk: Uint8Array): Array<Messages.SftpPacket> {
    if (this.error !== undefined) throw this.error
    if (chunk.length > 0) {
      this.chunks.push(retain(chunk))
      this.size += chunk.length
    }
    const packets: Array<Messages.SftpPacket> = []
    while (this.size >= LENGTH) {
      const length = this.uint32At(0)
      if (length === 0) this.fail("SFTP packet of length 0")
      if (length > this.maxPacketLength) this.fail(`SFTP packet length ${length} exceeds the maximum ${this.maxPacketLength}`)
      if (this.size < LENGTH + length) break
      if (length >= DATA_HEADER - LENGTH && this.byteAt(LENGTH) === Messages.PacketType.Data &&
        this.uint32At(9) === length - (DATA_HEADER - LENGTH))
      {
        const id = this.uint32At(5)
        this.takeViews(DATA_HEADER, false)
        packets.push(makeDataReply(id, this.takeViews(length - (DATA_HEADER - LENGTH), true)))
        continue
      }
      this.takeViews(LENGTH, false)
      const views = this.takeViews(length, true)
      packets.push(Messages.decode(views.length === 1 ? views[0]! : concat(views)))
      // a packet decoded in place may keep views of its chunk (a handle, say), and goes to the caller: so does the chunk
      if (views.length === 1) handOver(views[0]!)
      else releaseAll(views)
    }
    return packets
  }
}
