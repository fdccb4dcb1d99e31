/**
 * Channel flow-control arithmetic (RFC 4254 §5.2), pure.
 *
 * The receive side is credited only as the consumer takes data
 * (`consume`), never when data merely arrives: that is what makes the SSH
 * window the backpressure of a channel. The send side is spent as data
 * goes out and refilled by the peer's WINDOW_ADJUST.
 *
 * @since 0.1.0
 */
import { ProtocolError } from "../SshError.ts"

const MAX_WINDOW = 0xffffffff

/** Most consumed bytes a WINDOW_ADJUST waits for (windows of 2 MiB or less adjust at half, as OpenSSH's). */
const ADJUST_STEP = 1024 * 1024

/**
 * How much the peer may still send us, and when to tell it it may send more.
 *
 * @example
 * ```ts
 * const w = new ReceiveWindow(2 * 1024 * 1024)
 * w.receive(32768)               // data arrived (throws if it exceeds the window)
 * const adjust = w.consume(32768) // consumer took it: bytes to grant now, or 0
 * ```
 */
export class ReceiveWindow {
  /** Bytes the peer may send before it must wait. */
  available: number
  /** Bytes received but not yet handed to the consumer. */
  buffered = 0
  private consumedSinceAdjust = 0
  /** What the peer may have outstanding when the consumer has taken everything. */
  size: number

  constructor(size: number) {
    this.size = size
    this.available = size
  }

  /**
   * Enlarges the window for good by up to `n` bytes (never past 2^32 - 1 outstanding); returns the bytes to
   * grant the peer with a WINDOW_ADJUST now.
   */
  grow(n: number): number {
    const grant = Math.max(0, Math.min(Math.floor(n), MAX_WINDOW - this.available - this.consumedSinceAdjust))
    this.size += grant
    this.available += grant
    return grant
  }

  /** Accounts for `n` bytes of incoming data; throws when the peer overruns the window. */
  receive(n: number): void {
    if (n > this.available) {
      throw new ProtocolError({ message: `peer sent ${n} bytes with only ${this.available} bytes of window left` })
    }
    this.available -= n
    this.buffered += n
  }

  /**
   * Accounts for `n` bytes taken by the consumer; returns how many bytes to
   * grant with a WINDOW_ADJUST now (0 = not yet: adjusts are batched until
   * half the window, or `ADJUST_STEP`, is free). OpenSSH waits for half; a
   * large window then idles half its size for a round trip each time, which
   * on a long path costs half the throughput the window could carry.
   */
  consume(n: number): number {
    this.buffered -= n
    this.consumedSinceAdjust += n
    if (this.consumedSinceAdjust < Math.min(this.size / 2, ADJUST_STEP)) return 0
    const grant = this.consumedSinceAdjust
    this.consumedSinceAdjust = 0
    this.available += grant
    return grant
  }
}

/**
 * How much we may still send the peer.
 *
 * @example
 * ```ts
 * const w = new SendWindow(initialWindow, maxPacket)
 * const n = w.take(data.length) // bytes we may send now (0 = wait for WINDOW_ADJUST)
 * w.adjust(bytesToAdd)
 * ```
 */
export class SendWindow {
  available: number
  readonly maxPacket: number

  constructor(initial: number, maxPacket: number) {
    this.available = initial
    this.maxPacket = maxPacket
  }

  /** Reserves up to `wanted` bytes, bounded by the window and the peer's max packet. */
  take(wanted: number): number {
    const n = Math.min(wanted, this.available, this.maxPacket)
    this.available -= n
    return n
  }

  /** Adds the peer's WINDOW_ADJUST; the window never exceeds 2^32 - 1 (RFC 4254 §5.2). */
  adjust(n: number): void {
    this.available = Math.min(MAX_WINDOW, this.available + n)
  }
}
