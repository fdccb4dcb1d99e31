/**
 * A FIFO of byte chunks as they arrive from a socket, read from the front
 * without ever concatenating the whole backlog: bytes that lie in one chunk
 * come back as a view of it, bytes that span chunks are copied once into a
 * buffer of exactly the requested size. Callers must not modify a chunk after
 * pushing it.
 *
 * @internal
 */

/** Drop consumed chunks from the array once this many have piled up at its head. */
const COMPACT_AFTER = 64

/**
 * A queue of pushed chunks, consumed from the front.
 *
 * @example
 * ```ts
 * const q = new ByteQueue()
 * q.push(Uint8Array.of(1, 2))
 * q.push(Uint8Array.of(3))
 * q.peek(3) // Uint8Array [1, 2, 3] (a copy: it spans chunks)
 * q.take(1) // Uint8Array [1] (a view)
 * q.length  // 2
 * ```
 */
export class ByteQueue {
  private chunks: Array<Uint8Array> = []
  /** Index of the first unconsumed chunk. */
  private head = 0
  /** Bytes of `chunks[head]` already consumed. */
  private offset = 0
  private size = 0

  /** Bytes pushed and not yet taken. */
  get length(): number {
    return this.size
  }

  /** Appends a chunk (no copy). */
  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return
    this.chunks.push(chunk)
    this.size += chunk.length
  }

  /** The first `n` bytes without consuming them; `n` must not exceed `length`. */
  peek(n: number): Uint8Array {
    const first = this.chunks[this.head]
    if (first === undefined || n === 0) return new Uint8Array(0)
    if (first.length - this.offset >= n) return first.subarray(this.offset, this.offset + n)
    const out = new Uint8Array(n)
    let filled = 0
    for (let i = this.head, from = this.offset; filled < n; i++, from = 0) {
      const part = this.chunks[i]!.subarray(from, from + n - filled)
      out.set(part, filled)
      filled += part.length
    }
    return out
  }

  /** Consumes and returns the first `n` bytes; `n` must not exceed `length`. */
  take(n: number): Uint8Array {
    const out = this.peek(n)
    this.skip(n)
    return out
  }

  /** Consumes and returns everything (one copy unless it is a single chunk's tail). */
  takeAll(): Uint8Array {
    return this.take(this.size)
  }

  /** Consumes the first `n` bytes; `n` must not exceed `length`. */
  skip(n: number): void {
    this.size -= n
    while (n > 0) {
      const chunk = this.chunks[this.head]!
      const step = Math.min(n, chunk.length - this.offset)
      this.offset += step
      n -= step
      if (this.offset === chunk.length) {
        this.head++
        this.offset = 0
      }
    }
    if (this.head === this.chunks.length) {
      this.chunks = []
      this.head = 0
    } else if (this.head >= COMPACT_AFTER) {
      this.chunks = this.chunks.slice(this.head)
      this.head = 0
    }
  }
}
