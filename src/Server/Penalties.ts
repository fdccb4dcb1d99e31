/**
 * Per-source penalties, as sshd's PerSourcePenalties: a connection that ends
 * before authenticating (after failed attempts, without attempting at all,
 * at the login grace time, or by crashing its handler) adds a penalty time to
 * its address block. Penalties accumulate up to `max`; a block is refused
 * new connections only once more than `min` is outstanding, until the time
 * runs out. Connections already open are not affected.
 *
 * At most `maxSources4` IPv4 and `maxSources6` IPv6 blocks are tracked; past
 * that, `permissive` forgets the penalties closest to expiring, `deny-all`
 * refuses every new connection until one expires.
 *
 * Pure: times are milliseconds on a monotonic clock, passed in.
 *
 * @example
 * ```ts
 * const table = new PenaltyTable(defaultPenalties)
 * table.penalise(block, "authfail", now)
 * table.check(block, now) // { _tag: "Allowed" }: 5 s outstanding is below the 15 s minimum
 * ```
 * @since 0.1.0
 */
import type { AddressBlock } from "./AddressBlock.ts"

/** Why a connection earns a penalty (sshd's PerSourcePenalties keywords). */
export type PenaltyKind = "crash" | "authfail" | "noauth" | "grace-exceeded"

/** What `deny-all` or `permissive` does once the table is full. */
export type Overflow = "permissive" | "deny-all"

/** Penalty settings; durations in milliseconds. */
export interface PenaltyConfig {
  /** The connection's handler died (a defect). sshd: crash, 90 s. */
  readonly crash: number
  /** Ended after one or more failed authentication attempts. sshd: authfail, 5 s. */
  readonly authfail: number
  /** Ended without attempting authentication. sshd: noauth, 1 s. */
  readonly noauth: number
  /** Still unauthenticated at the login grace time. sshd: grace-exceeded, 10 s. */
  readonly graceExceeded: number
  /** The most a block accumulates. sshd: max, 10 min. */
  readonly max: number
  /** Outstanding time needed before a block is refused. sshd: min, 15 s. */
  readonly min: number
  /** IPv4 blocks tracked at most. sshd: max-sources4, 65536. */
  readonly maxSources4: number
  /** IPv6 blocks tracked at most. sshd: max-sources6, 65536. */
  readonly maxSources6: number
  /** sshd: overflow, permissive. */
  readonly overflow: Overflow
  /** sshd: overflow6, as `overflow`. */
  readonly overflow6: Overflow
}

/**
 * sshd's PerSourcePenalties defaults.
 *
 * @example
 * ```ts
 * new PenaltyTable({ ...defaultPenalties, authfail: 30_000 })
 * ```
 */
export const defaultPenalties: PenaltyConfig = {
  crash: 90_000,
  authfail: 5_000,
  noauth: 1_000,
  graceExceeded: 10_000,
  max: 600_000,
  min: 15_000,
  maxSources4: 65536,
  maxSources6: 65536,
  overflow: "permissive",
  overflow6: "permissive"
}

const reasons: Record<PenaltyKind, string> = {
  crash: "penalty: caused crash",
  authfail: "penalty: failed authentication",
  noauth: "penalty: connections without attempting authentication",
  "grace-exceeded": "penalty: exceeded LoginGraceTime"
}

const durationOf = (config: PenaltyConfig, kind: PenaltyKind): number => {
  switch (kind) {
    case "crash":
      return config.crash
    case "authfail":
      return config.authfail
    case "noauth":
      return config.noauth
    case "grace-exceeded":
      return config.graceExceeded
  }
}

/** Whether a block may connect. */
export type PenaltyCheck =
  | { readonly _tag: "Allowed" }
  | { readonly _tag: "Refused"; readonly reason: string; readonly remaining: number }

/** What a penalty did: `activated` when this one made the block refused (it was not before). */
export type PenaltyResult =
  | { readonly _tag: "Ignored"; readonly why: "disabled" | "table full" }
  | { readonly _tag: "Recorded"; readonly activated: boolean; readonly active: boolean; readonly remaining: number; readonly reason: string }

interface Entry {
  expiry: number
  active: boolean
  kind: PenaltyKind
}

interface HeapNode {
  readonly label: string
  readonly expiry: number
}

/**
 * One address family's penalties: entries by block, and a min-heap of
 * expiries (a node goes stale when its entry's expiry moves on; stale nodes
 * are skipped when popped and dropped when the heap is rebuilt).
 */
class FamilyTable {
  readonly entries = new Map<string, Entry>()
  private heap: Array<HeapNode> = []

  push(node: HeapNode): void {
    const heap = this.heap
    heap.push(node)
    for (let i = heap.length - 1; i > 0;) {
      const parent = (i - 1) >> 1
      if (heap[parent]!.expiry <= heap[i]!.expiry) break
      ;[heap[parent], heap[i]] = [heap[i]!, heap[parent]!]
      i = parent
    }
    if (heap.length > 2 * this.entries.size + 64) this.rebuild()
  }

  private pop(): HeapNode | undefined {
    const heap = this.heap
    const top = heap[0]
    const last = heap.pop()
    if (top === undefined || last === undefined || heap.length === 0) return top
    heap[0] = last
    for (let i = 0;;) {
      const left = 2 * i + 1
      const right = left + 1
      let smallest = i
      if (left < heap.length && heap[left]!.expiry < heap[smallest]!.expiry) smallest = left
      if (right < heap.length && heap[right]!.expiry < heap[smallest]!.expiry) smallest = right
      if (smallest === i) break
      ;[heap[smallest], heap[i]] = [heap[i]!, heap[smallest]!]
      i = smallest
    }
    return top
  }

  private rebuild(): void {
    // a sorted array is a valid min-heap
    this.heap = [...this.entries].map(([label, e]) => ({ label, expiry: e.expiry })).sort((a, b) => a.expiry - b.expiry)
  }

  /** Drops the entries that expired before `now`. */
  expire(now: number): void {
    while (this.heap.length > 0 && this.heap[0]!.expiry < now) {
      const node = this.pop()!
      const entry = this.entries.get(node.label)
      if (entry !== undefined && entry.expiry < now) this.entries.delete(node.label)
    }
  }

  /** Forgets the entries closest to expiring until at most `limit` remain. */
  shrinkTo(limit: number): void {
    while (this.entries.size > limit) {
      const node = this.pop()
      if (node === undefined) return
      if (this.entries.get(node.label)?.expiry === node.expiry) this.entries.delete(node.label)
    }
  }
}

/**
 * The penalties of one server.
 *
 * @example
 * ```ts
 * const table = new PenaltyTable(defaultPenalties)
 * for (let i = 0; i < 4; i++) table.penalise(block, "authfail", now)
 * table.check(block, now) // { _tag: "Refused", reason: "penalty: failed authentication", remaining: 20_000 }
 * ```
 */
export class PenaltyTable {
  private readonly ipv4 = new FamilyTable()
  private readonly ipv6 = new FamilyTable()

  readonly config: PenaltyConfig

  constructor(config: PenaltyConfig) {
    this.config = config
  }

  private family(block: AddressBlock) {
    return block.family === 4
      ? { table: this.ipv4, maxSources: this.config.maxSources4, overflow: this.config.overflow }
      : { table: this.ipv6, maxSources: this.config.maxSources6, overflow: this.config.overflow6 }
  }

  /** Blocks tracked (expired ones included until the next check or penalty of their family). */
  size(family: 4 | 6): number {
    return (family === 4 ? this.ipv4 : this.ipv6).entries.size
  }

  /**
   * Whether `block` may connect now.
   *
   * @example
   * ```ts
   * table.check({ family: 4, label: "192.0.2.7/32" }, now) // { _tag: "Allowed" }
   * ```
   */
  check(block: AddressBlock, now: number): PenaltyCheck {
    const { table, maxSources, overflow } = this.family(block)
    table.expire(now)
    if (overflow === "deny-all" && table.entries.size >= maxSources) {
      return { _tag: "Refused", reason: "too many penalised addresses", remaining: 0 }
    }
    const entry = table.entries.get(block.label)
    if (entry === undefined || !entry.active) return { _tag: "Allowed" }
    return { _tag: "Refused", reason: reasons[entry.kind], remaining: entry.expiry - now }
  }

  /**
   * Adds a penalty of `kind` to `block`: a new block's penalty is active at
   * once only if it exceeds `min`; a block's penalties add up, at most `max`
   * ahead of now, and activate once more than `min` is outstanding.
   *
   * @example
   * ```ts
   * table.penalise({ family: 4, label: "192.0.2.7/32" }, "grace-exceeded", now)
   * // { _tag: "Recorded", activated: false, active: false, remaining: 10_000, ... }
   * ```
   */
  penalise(block: AddressBlock, kind: PenaltyKind, now: number): PenaltyResult {
    const seconds = durationOf(this.config, kind)
    if (!(seconds > 0)) return { _tag: "Ignored", why: "disabled" }
    const { table, maxSources, overflow } = this.family(block)
    table.expire(now)
    if (overflow === "deny-all" && table.entries.size >= maxSources) return { _tag: "Ignored", why: "table full" }
    const existing = table.entries.get(block.label)
    if (existing === undefined) {
      const entry: Entry = { expiry: now + seconds, active: seconds > this.config.min, kind }
      table.entries.set(block.label, entry)
      table.push({ label: block.label, expiry: entry.expiry })
      if (table.entries.size > maxSources) table.shrinkTo(maxSources)
      return { _tag: "Recorded", activated: entry.active, active: entry.active, remaining: seconds, reason: reasons[kind] }
    }
    existing.expiry = Math.min(existing.expiry + seconds, now + this.config.max)
    existing.kind = kind
    const activated = !existing.active && existing.expiry - now > this.config.min
    if (activated) existing.active = true
    table.push({ label: block.label, expiry: existing.expiry })
    return { _tag: "Recorded", activated, active: existing.active, remaining: existing.expiry - now, reason: reasons[kind] }
  }
}
