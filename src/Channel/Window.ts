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

/** The max packet a window is measured in when none is given: OpenSSH's for sessions. */
const DEFAULT_MAX_PACKET = 32 * 1024

/**
 * Least milliseconds a whole window's worth may take to arrive for the window to grow: a window that cycles
 * faster is not what holds the sender back (a near peer), and growing it only lets the sender buffer more.
 */
const SLOW_CYCLE_MS = 20

/** The consumer keeps up while what sits unread stays under this fraction of the window (1 / n). */
const KEPT_UP_FRACTION = 4

/** Packets of slack after which a WINDOW_ADJUST is due (OpenSSH's `channel_check_window`, x/crypto/ssh's `adjustWindow`). */
const ADJUST_PACKETS = 3

/**
 * How much the peer may still send us, and when to tell it it may send more.
 *
 * A WINDOW_ADJUST grants back what the consumer took, and goes out once the
 * bytes received but not yet granted back exceed three max packets, or once
 * the peer's credit falls below half the window: the rule of OpenSSH's
 * `channel_check_window` and of x/crypto/ssh. The sender then never runs
 * short of credit while the consumer keeps up, at the price of one small
 * message per ~100 KiB; batching to half the window instead idles half of it
 * for a round trip each time, which over a long path halves the throughput.
 *
 * Given a `limit` above its size, the window also grows while the consumer
 * keeps up, as TCP's receive autotuning does: each time the peer has sent a
 * whole window's worth, taking at least 20 ms (the path is long or the peer
 * slow: the window, not the link, is what bounds the rate), and the unread
 * data never exceeded a quarter of the window meanwhile, the window doubles
 * (up to `limit`). Over a long path the
 * window, not the consumer, is then what holds the sender back; a consumer
 * that falls behind stops the growth, and memory stays bounded by `limit`.
 *
 * @example
 * ```ts
 * const w = new ReceiveWindow(2 * 1024 * 1024, 32 * 1024, 16 * 1024 * 1024)
 * w.receive(32768, now)               // data arrived (throws if it exceeds the window)
 * const adjust = w.consume(32768, now) // consumer took it: bytes to grant now, or 0
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
  /** The largest packet we accept: the unit of the adjust threshold. */
  readonly maxPacket: number
  /** The size growth while the consumer keeps up stops at (`size` = no growth). */
  readonly limit: number
  /** Bytes received since the window last grew (or was created). */
  private receivedSinceGrowth = 0
  /** The most data that sat unread since then. */
  private peakBuffered = 0
  /** When the first of those bytes arrived (undefined: none yet). */
  private cycleStartedAt: number | undefined

  constructor(size: number, maxPacket: number = DEFAULT_MAX_PACKET, limit: number = size) {
    this.size = size
    this.available = size
    this.maxPacket = maxPacket
    this.limit = Math.min(MAX_WINDOW, Math.max(size, limit))
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

  /** Accounts for `n` bytes of incoming data at `now` (ms); throws when the peer overruns the window. */
  receive(n: number, now?: number): void {
    if (n > this.available) {
      throw new ProtocolError({ message: `peer sent ${n} bytes with only ${this.available} bytes of window left` })
    }
    this.available -= n
    this.buffered += n
    if (this.receivedSinceGrowth === 0) this.cycleStartedAt = now
    this.receivedSinceGrowth += n
    if (this.buffered > this.peakBuffered) this.peakBuffered = this.buffered
  }

  /**
   * Accounts for `n` bytes taken by the consumer at `now` (ms; without it
   * the window does not grow); returns how many bytes to grant with a
   * WINDOW_ADJUST now (0 = not yet). Only consumed bytes are ever granted
   * (and growth): what sits unread keeps its share of the window, so a slow
   * consumer stops the sender.
   */
  consume(n: number, now?: number): number {
    this.buffered -= n
    this.consumedSinceAdjust += n
    const growth = this.growthDue(now)
    if (!this.adjustDue() && growth === 0) return 0
    const grant = this.consumedSinceAdjust + growth
    this.consumedSinceAdjust = 0
    this.size += growth
    this.available += grant
    return grant
  }

  /** Bytes the window grows by now: it doubles once a whole window went by with the consumer keeping up. */
  private growthDue(now: number | undefined): number {
    if (this.size >= this.limit || this.receivedSinceGrowth < this.size) return 0
    const slow = now !== undefined && this.cycleStartedAt !== undefined && now - this.cycleStartedAt >= SLOW_CYCLE_MS
    const keptUp = this.peakBuffered <= this.size / KEPT_UP_FRACTION
    this.receivedSinceGrowth = 0
    this.peakBuffered = this.buffered
    if (!slow || !keptUp) return 0
    return Math.max(0, Math.min(this.size, this.limit - this.size, MAX_WINDOW - this.available - this.consumedSinceAdjust))
  }

  private adjustDue(): boolean {
    if (this.consumedSinceAdjust <= 0) return false
    const notGrantedBack = this.size - this.available
    return notGrantedBack > ADJUST_PACKETS * this.maxPacket || this.available < this.size / 2
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
