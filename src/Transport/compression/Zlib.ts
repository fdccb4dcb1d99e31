/**
 * Synchronous streaming zlib (RFC 1950) for packet compression, on the
 * native zlib that `node:zlib` ships.
 *
 * SSH compresses every payload of a direction into one zlib stream, ending
 * each packet with a partial flush (RFC 4253 §6.2), and a packet is sealed
 * and opened synchronously, so it needs a deflate whose state spans calls
 * and that answers at once. `node:zlib` offers either streams (asynchronous)
 * or one-shot `deflateSync` (its stream is closed after one call). Both are
 * built on a native handle with a synchronous `writeSync(flush, in, inOffset,
 * inLength, out, outOffset, outLength)` that reports the space left in a
 * shared `Uint32Array`: the same calls `deflateSync` makes. This module drives
 * the handle of a `createDeflate` / `createInflate` object directly, as ssh2
 * does. It is not a documented API, so `isAvailable` checks for it and the
 * zlib methods are offered only where it works.
 *
 * @since 0.1.0
 */
import * as zlib from "node:zlib"
import { LimitExceeded, ProtocolError } from "../../SshError.ts"
import type { Payload } from "../../internal/packetLayout.ts"

/** The part of a zlib stream object's native handle used here. */
interface NativeHandle {
  writeSync(
    flush: number,
    input: Uint8Array,
    inOffset: number,
    inLength: number,
    output: Uint8Array,
    outOffset: number,
    outLength: number
  ): void
  close(): void
  onerror: (message: string, errno: number, code: string) => void
}

interface StreamInternals {
  readonly _handle?: NativeHandle | null
  /** [output bytes left, input bytes left] after each `writeSync`. */
  readonly _writeState?: Uint32Array
}

const { Z_NO_FLUSH, Z_PARTIAL_FLUSH, Z_SYNC_FLUSH } = zlib.constants

/** The level OpenSSH compresses at (zlib's default). */
const LEVEL = 6
const INITIAL_OUTPUT = 16 * 1024
const EMPTY = new Uint8Array(0)

/** A native handle and its state array, zlib's errors caught as values instead of an emitted event. */
class Engine {
  private readonly handle: NativeHandle
  private readonly state: Uint32Array
  private failure: string | undefined = undefined
  private closed = false
  /** Kept alive with the handle, which it owns. */
  private readonly stream: StreamInternals

  constructor(stream: StreamInternals) {
    this.stream = stream
    const handle = stream._handle
    const state = stream._writeState
    if (typeof handle?.writeSync !== "function" || !(state instanceof Uint32Array)) {
      throw new ProtocolError({ message: "this runtime's node:zlib has no synchronous stream handle" })
    }
    this.handle = handle
    this.state = state
    this.handle.onerror = (message) => {
      this.failure = message
    }
  }

  /** Runs zlib over `input` from `inOffset` into `output` from `outOffset`. Throws `ProtocolError` for corrupt input. */
  write(flush: number, input: Uint8Array, inOffset: number, output: Uint8Array, outOffset: number): void {
    if (this.closed) throw new ProtocolError({ message: "compression stream used after it was closed" })
    this.handle.writeSync(flush, input, inOffset, input.length - inOffset, output, outOffset, output.length - outOffset)
    if (this.failure !== undefined) {
      const message = this.failure
      this.close()
      throw new ProtocolError({ message: `zlib: ${message}` })
    }
  }

  get availableOut(): number {
    return this.state[0]!
  }

  get availableIn(): number {
    return this.state[1]!
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    this.handle.close()
  }
}

const grow = (buffer: Uint8Array, used: number, size: number): Uint8Array => {
  const next = new Uint8Array(size)
  next.set(buffer.subarray(0, used))
  return next
}

/**
 * One direction's deflate stream: each call compresses one payload and ends
 * with a partial flush (as RFC 4253 and OpenSSH do), so the peer inflates
 * every packet whole, without waiting for the next.
 *
 * @example
 * ```ts
 * const deflater = new Deflater()
 * const compressed = deflater.compress([header, data]) // valid until the next call
 * ```
 */
export class Deflater {
  private readonly engine = new Engine(zlib.createDeflate({ level: LEVEL }) as unknown as StreamInternals)
  private output: Uint8Array = new Uint8Array(INITIAL_OUTPUT)

  /** The compressed payload, a view of a buffer the next call reuses: seal it before compressing again. */
  compress(payload: Payload): Uint8Array {
    const parts: ReadonlyArray<Uint8Array> = payload instanceof Uint8Array ? [payload] : payload
    let used = 0
    for (let i = 0; i < parts.length; i++) {
      used = this.run(i === parts.length - 1 ? Z_PARTIAL_FLUSH : Z_NO_FLUSH, parts[i]!, used)
    }
    if (parts.length === 0) used = this.run(Z_PARTIAL_FLUSH, EMPTY, used)
    return this.output.subarray(0, used)
  }

  /** Frees zlib's memory; the deflater is unusable afterwards. */
  close(): void {
    this.engine.close()
  }

  private run(flush: number, input: Uint8Array, used: number): number {
    let consumed = 0
    for (;;) {
      this.engine.write(flush, input, consumed, this.output, used)
      consumed = input.length - this.engine.availableIn
      used = this.output.length - this.engine.availableOut
      // output left over means zlib is done with this input; a full buffer may hide more
      if (this.engine.availableOut > 0) return used
      this.output = grow(this.output, used, this.output.length * 2)
    }
  }
}

/**
 * One direction's inflate stream, bounded: a payload that would inflate past
 * `limit` bytes is refused with `LimitExceeded` once `limit + 1` bytes are
 * out, so the memory it costs is at most that, whatever the compression ratio.
 *
 * @example
 * ```ts
 * const inflater = new Inflater()
 * const payload = inflater.decompress(compressed, 256 * 1024) // a fresh buffer
 * ```
 */
export class Inflater {
  private readonly engine = new Engine(zlib.createInflate() as unknown as StreamInternals)
  private output: Uint8Array = new Uint8Array(INITIAL_OUTPUT)

  /**
   * Inflates one packet's compressed payload into a buffer of its own.
   * Throws `LimitExceeded` past `limit` bytes, `ProtocolError` for corrupt
   * data or data after the end of the zlib stream; the inflater is closed
   * after either.
   */
  decompress(data: Uint8Array, limit: number): Uint8Array {
    let consumed = 0
    let used = 0
    for (;;) {
      this.engine.write(Z_SYNC_FLUSH, data, consumed, this.output, used)
      consumed = data.length - this.engine.availableIn
      used = this.output.length - this.engine.availableOut
      if (used > limit) {
        this.close()
        throw new LimitExceeded({
          limit: "decompressed packet size",
          message: `a compressed payload of ${data.length} bytes inflates past ${limit} bytes`
        })
      }
      if (this.engine.availableOut > 0) break
      // room for one byte past the limit tells a payload of exactly `limit` bytes from a bomb
      this.output = grow(this.output, used, Math.min(this.output.length * 2, limit + 1))
    }
    if (consumed < data.length) {
      this.close()
      throw new ProtocolError({ message: `${data.length - consumed} bytes after the end of the compressed stream` })
    }
    return this.output.slice(0, used)
  }

  /** Frees zlib's memory; the inflater is unusable afterwards. */
  close(): void {
    this.engine.close()
  }
}

let available: boolean | undefined

/**
 * Whether this runtime's `node:zlib` has the synchronous native handle and
 * it round-trips; checked once.
 *
 * @example
 * ```ts
 * const names = isAvailable() ? ["none", "zlib@openssh.com", "zlib"] : ["none"]
 * ```
 */
export const isAvailable = (): boolean => {
  if (available !== undefined) return available
  try {
    const deflater = new Deflater()
    const inflater = new Inflater()
    const probe = Uint8Array.of(1, 2, 3, 1, 2, 3, 1, 2, 3)
    const back = inflater.decompress(deflater.compress(probe), probe.length)
    deflater.close()
    inflater.close()
    available = back.length === probe.length && back.every((b, i) => b === probe[i])
  } catch {
    available = false
  }
  return available
}
