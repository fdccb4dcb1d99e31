/**
 * Rate-limited reporting of refused connections: per reason, at most one
 * report per interval. A refusal is either reported itself or counted in the
 * `suppressed` of the next report of its reason, and that report comes at
 * most one interval later: the first refusal suppressed in an interval asks
 * for a `flush` at the interval's end, which reports the last suppressed
 * refusal with the count of the others.
 *
 * Pure: times are milliseconds on a monotonic clock, passed in.
 *
 * @example
 * ```ts
 * const log = new RefusalLog<string>(10_000)
 * log.record("MaxStartups", "192.0.2.7", 0)     // { _tag: "Report", refusal: "192.0.2.7", suppressed: 0 }
 * log.record("MaxStartups", "192.0.2.8", 5)     // { _tag: "Suppressed", flushAt: 10_000 }
 * log.flush("MaxStartups", 10_000)              // { _tag: "Report", refusal: "192.0.2.8", suppressed: 0 }
 * ```
 * @since 0.1.0
 */

/** A refusal to report now, with how many of its reason went unreported since the previous report. */
export interface Report<A> {
  readonly _tag: "Report"
  readonly refusal: A
  readonly suppressed: number
}

/** A refusal not reported now; `flushAt` is set when the caller must call `flush` at that time. */
export interface Suppressed {
  readonly _tag: "Suppressed"
  readonly flushAt: number | undefined
}

interface ReasonState<A> {
  lastReport: number
  pending: number
  last: A | undefined
}

/**
 * The reporting state of one server.
 *
 * @example
 * ```ts
 * const log = new RefusalLog<Refusal>(10_000)
 * ```
 */
export class RefusalLog<A> {
  private readonly reasons = new Map<string, ReasonState<A>>()

  /** The shortest time between two reports of one reason, in milliseconds. */
  readonly interval: number

  constructor(interval: number) {
    this.interval = interval
  }

  /**
   * A refusal happened now.
   *
   * @example
   * ```ts
   * const r = log.record("PerSourcePenalties", refusal, now)
   * if (r._tag === "Report") emit(r.refusal, r.suppressed)
   * else if (r.flushAt !== undefined) scheduleFlush(r.flushAt)
   * ```
   */
  record(reason: string, refusal: A, now: number): Report<A> | Suppressed {
    const state = this.reasons.get(reason)
    if (state === undefined || now - state.lastReport >= this.interval) {
      const suppressed = state?.pending ?? 0
      this.reasons.set(reason, { lastReport: now, pending: 0, last: undefined })
      return { _tag: "Report", refusal, suppressed }
    }
    state.pending++
    state.last = refusal
    return { _tag: "Suppressed", flushAt: state.pending === 1 ? state.lastReport + this.interval : undefined }
  }

  /**
   * The interval asked for by `record` ended: reports the last suppressed
   * refusal, if any is still unreported. A flush that comes before the end
   * of the current interval (a late timer of an earlier one) does nothing:
   * the current interval asked for its own.
   *
   * @example
   * ```ts
   * const r = log.flush("MaxStartups", now)
   * if (r !== undefined) emit(r.refusal, r.suppressed)
   * ```
   */
  flush(reason: string, now: number): Report<A> | undefined {
    const state = this.reasons.get(reason)
    if (state === undefined || now < state.lastReport + this.interval) return undefined
    return this.drain(reason, now)
  }

  /**
   * Reports the last suppressed refusal now, whatever the time (for a
   * server shutting down: nothing is left uncounted).
   *
   * @example
   * ```ts
   * for (const reason of reasons) log.drain(reason, now)
   * ```
   */
  drain(reason: string, now: number): Report<A> | undefined {
    const state = this.reasons.get(reason)
    if (state === undefined || state.pending === 0 || state.last === undefined) return undefined
    const report: Report<A> = { _tag: "Report", refusal: state.last, suppressed: state.pending - 1 }
    this.reasons.set(reason, { lastReport: now, pending: 0, last: undefined })
    return report
  }
}
