/**
 * The mutation engine of the fuzz suites: a seeded random source, the
 * mutations that find bugs in length-prefixed binary protocols (bit flips,
 * length fields set to 0 / huge / off by one, truncation, message-number
 * swaps, splices from other messages, inserted and deleted bytes), reordering
 * of valid message sequences, and a tally of what was delivered.
 *
 * Every suite derives its cases from one seed (`EFFECT_SSH_FUZZ_SEED`, random
 * by default and printed), so a failure names the seed and case that
 * reproduce it. `EFFECT_SSH_FUZZ_SCALE` multiplies every case count: 1 for CI,
 * 20 for a release check.
 */
import { isSshErrorReason, SshError } from "../../src/SshError.ts"

/** Multiplier of every case count (`EFFECT_SSH_FUZZ_SCALE`, default 1). */
export const FUZZ_SCALE: number = (() => {
  const raw = process.env["EFFECT_SSH_FUZZ_SCALE"]
  const n = raw === undefined || raw === "" ? 1 : Number(raw)
  if (!Number.isFinite(n) || n <= 0) throw new Error(`EFFECT_SSH_FUZZ_SCALE must be a positive number, not ${raw}`)
  return n
})()

/** The seed every suite starts from (`EFFECT_SSH_FUZZ_SEED`, random by default). */
export const FUZZ_SEED: number = (() => {
  const raw = process.env["EFFECT_SSH_FUZZ_SEED"]
  return raw === undefined || raw === "" ? (Math.random() * 0x1_0000_0000) >>> 0 : Number(raw) >>> 0
})()

/** `n` scaled by `EFFECT_SSH_FUZZ_SCALE`. */
export const scaled = (n: number): number => Math.max(1, Math.round(n * FUZZ_SCALE))

/** A test timeout (ms) that grows with the scale. */
export const scaledTimeout = (ms: number): number => Math.round(ms * Math.max(1, FUZZ_SCALE) * 1.5)

/** A small, fast, seeded generator (mulberry32): reproducible cases without fast-check's per-run cost. */
export class Rng {
  private state: number
  constructor(seed: number) {
    this.state = seed >>> 0
  }

  /** A uniform uint32. */
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0)
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return (t ^ (t >>> 14)) >>> 0
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return n <= 1 ? 0 : this.next() % n
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.next() / 0x1_0000_0000 < p
  }

  pick<A>(items: ReadonlyArray<A>): A {
    return items[this.int(items.length)]!
  }

  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n)
    for (let i = 0; i < n; i++) out[i] = this.next() & 0xff
    return out
  }

  /** A generator for case `index` of a suite: each case reproducible on its own. */
  fork(index: number): Rng {
    return new Rng((this.next() ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0)
  }
}

/** The mutation strategies. */
export const strategies = ["flip", "length", "truncate", "extend", "number", "splice", "insert", "delete", "byte"] as const
export type Strategy = (typeof strategies)[number]

/** Every message number SSH assigns, and a few it does not: what a message-number swap picks from. */
export const messageNumbers: ReadonlyArray<number> = [
  0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 19, 20, 21, 22, 29, 30, 31, 32, 33, 34, 35, 49, 50, 51, 52, 53, 54, 59, 60, 61, 62, 66,
  79, 80, 81, 82, 83, 89, 90, 91, 92, 93, 94, 95, 96, 97, 98, 99, 100, 101, 127, 128, 192, 255
]

const uint32At = (b: Uint8Array, i: number): number => ((b[i]! << 24) | (b[i + 1]! << 16) | (b[i + 2]! << 8) | b[i + 3]!) >>> 0

const setUint32 = (b: Uint8Array, i: number, v: number): void => {
  b[i] = (v >>> 24) & 0xff
  b[i + 1] = (v >>> 16) & 0xff
  b[i + 2] = (v >>> 8) & 0xff
  b[i + 3] = v & 0xff
}

/**
 * Offsets of the plausible uint32 length fields of a message: a uint32 that
 * is no larger than what follows it (every `string` field of SSH and SFTP).
 */
export const lengthFields = (b: Uint8Array, from = 0): Array<number> => {
  const out: Array<number> = []
  for (let i = from; i + 4 <= b.length; i++) {
    const v = uint32At(b, i)
    if (v <= b.length - i - 4 && (v > 0 || (i + 4 < b.length && b[i + 4] === 0) || i + 4 === b.length)) out.push(i)
  }
  return out
}

/** Values a corrupted length field takes: the boundaries that decoders get wrong. */
const lengthValue = (rng: Rng, actual: number, remaining: number): number => {
  switch (rng.int(14)) {
    case 0: return 0
    case 1: return 0xffffffff
    case 2: return 0x7fffffff
    case 3: return 0x80000000
    case 4: return actual + 1
    case 5: return Math.max(0, actual - 1)
    case 6: return remaining + 1
    case 7: return remaining
    case 8: return 0xfffffffc
    case 9: return 256 * 1024 + 1
    case 10: return 35000
    case 11: return 1
    case 12: return rng.int(4096)
    default: return rng.next()
  }
}

/** One mutation of `bytes` (never modified) by `strategy`; `corpus` supplies splices. */
export const mutateWith = (rng: Rng, bytes: Uint8Array, strategy: Strategy, corpus: ReadonlyArray<Uint8Array>, skip = 0): Uint8Array => {
  const out = Uint8Array.from(bytes)
  const n = out.length
  const at = (min = 0) => min + rng.int(Math.max(1, n - min))
  switch (strategy) {
    case "flip": {
      if (n === 0) return Uint8Array.of(rng.next() & 0xff)
      const flips = 1 + rng.int(rng.chance(0.8) ? 1 : 8)
      for (let i = 0; i < flips; i++) out[at(skip)]! ^= 1 << rng.int(8)
      return out
    }
    case "length": {
      const fields = lengthFields(out, Math.min(skip, n))
      const i = fields.length > 0 ? rng.pick(fields) : n >= 4 ? rng.int(n - 3) : -1
      if (i < 0) return mutateWith(rng, bytes, "extend", corpus)
      setUint32(out, i, lengthValue(rng, uint32At(out, i), n - i - 4))
      return out
    }
    case "truncate":
      return out.subarray(0, n === 0 ? 0 : rng.int(n))
    case "extend": {
      const tail = rng.chance(0.5) ? rng.bytes(1 + rng.int(16)) : new Uint8Array(1 + rng.int(64)).fill(rng.chance(0.5) ? 0 : 0xff)
      const grown = new Uint8Array(n + tail.length)
      grown.set(out)
      grown.set(tail, n)
      return grown
    }
    case "number":
      if (n === 0) return Uint8Array.of(rng.pick(messageNumbers))
      out[0] = rng.chance(0.85) ? rng.pick(messageNumbers) : rng.next() & 0xff
      return out
    case "splice": {
      const other = corpus.length > 0 ? rng.pick(corpus) : rng.bytes(16)
      const cut = rng.int(n + 1)
      const from = rng.int(other.length + 1)
      const spliced = new Uint8Array(cut + other.length - from)
      spliced.set(out.subarray(0, cut))
      spliced.set(other.subarray(from), cut)
      return spliced
    }
    case "insert": {
      const where = rng.int(n + 1)
      const piece = rng.chance(0.5) ? rng.bytes(1 + rng.int(8)) : Uint8Array.of(0xff, 0xff, 0xff, 0xff)
      const grown = new Uint8Array(n + piece.length)
      grown.set(out.subarray(0, where))
      grown.set(piece, where)
      grown.set(out.subarray(where), where + piece.length)
      return grown
    }
    case "delete": {
      if (n === 0) return out
      const where = rng.int(n)
      const count = 1 + rng.int(Math.min(8, n - where))
      const shrunk = new Uint8Array(n - count)
      shrunk.set(out.subarray(0, where))
      shrunk.set(out.subarray(where + count), where)
      return shrunk
    }
    case "byte": {
      if (n === 0) return Uint8Array.of(0)
      out[at(skip)] = rng.pick([0, 0x7f, 0x80, 0xff, 0x1b, 0x0a, 0x00, 0x2c, rng.next() & 0xff])
      return out
    }
  }
}

/** Weights of the strategies (length-field and bit-flip mutations find the most, so they come most often). */
const weighted: ReadonlyArray<Strategy> = [
  "flip", "flip", "flip", "length", "length", "length", "truncate", "extend", "number", "number", "splice", "splice",
  "insert", "delete", "byte"
]

/**
 * A random mutation of `bytes` (one strategy, sometimes two stacked).
 * `skip` protects a prefix from in-place changes (e.g. a message number).
 */
export const mutate = (
  rng: Rng,
  bytes: Uint8Array,
  corpus: ReadonlyArray<Uint8Array>,
  tally?: Tally
): Uint8Array => {
  const strategy = rng.pick(weighted)
  tally?.strategy(strategy)
  let out = mutateWith(rng, bytes, strategy, corpus)
  if (rng.chance(0.15)) {
    const second = rng.pick(weighted)
    tally?.strategy(second)
    out = mutateWith(rng, out, second, corpus)
  }
  return out
}

/** Sequence-level changes of a valid message sequence: dropped, duplicated, swapped or foreign messages. */
export const reorder = <A>(rng: Rng, messages: ReadonlyArray<A>, foreign: ReadonlyArray<A>): Array<A> => {
  const out = [...messages]
  const changes = 1 + rng.int(3)
  for (let c = 0; c < changes; c++) {
    const i = rng.int(out.length)
    switch (rng.int(5)) {
      case 0:
        if (out.length > 1) out.splice(i, 1)
        break
      case 1:
        out.splice(i, 0, out[i]!)
        break
      case 2: {
        const j = rng.int(out.length)
        ;[out[i], out[j]] = [out[j]!, out[i]!]
        break
      }
      default:
        if (foreign.length > 0) out.splice(i, 0, rng.pick(foreign))
    }
  }
  return out
}

/**
 * What a suite delivered and how its cases ended: the counts the tests assert
 * (so that a suite cannot pass by doing nothing) and print.
 */
export class Tally {
  readonly name: string
  readonly started = Date.now()
  /** Mutated packets the target actually read. */
  mutated = 0
  /** Packets the target read in all (valid ones included). */
  delivered = 0
  cases = 0
  readonly outcomes = new Map<string, number>()
  readonly strategies = new Map<string, number>()

  /** "delivered" (the target's own count) or "sent" (end to end, where the peer only knows what it wrote). */
  readonly counted: "delivered" | "sent"

  constructor(name: string, counted: "delivered" | "sent" = "delivered") {
    this.name = name
    this.counted = counted
  }

  strategy(s: string): void {
    this.strategies.set(s, (this.strategies.get(s) ?? 0) + 1)
  }

  outcome(o: string): void {
    this.outcomes.set(o, (this.outcomes.get(o) ?? 0) + 1)
  }

  get seconds(): number {
    return (Date.now() - this.started) / 1000
  }

  /** One line for the test output; also appended to `EFFECT_SSH_FUZZ_REPORT` when set. */
  report(): string {
    const top = (m: Map<string, number>) =>
      [...m].sort((a, b) => b[1] - a[1]).slice(0, 8).map(([k, v]) => `${k}=${v}`).join(" ")
    const line = `fuzz ${this.name}: ${this.mutated} mutated of ${this.delivered} packets ${this.counted}, ${this.cases} cases, ` +
      `${this.seconds.toFixed(1)} s (seed ${FUZZ_SEED}, scale ${FUZZ_SCALE}) | outcomes: ${top(this.outcomes)}`
    console.log(line)
    const file = process.env["EFFECT_SSH_FUZZ_REPORT"]
    if (file) {
      // a JSON line per suite, for release notes
      void import("node:fs").then((fs) =>
        fs.appendFileSync(file, JSON.stringify({
          suite: this.name,
          counted: this.counted,
          mutated: this.mutated,
          delivered: this.delivered,
          cases: this.cases,
          seconds: this.seconds,
          seed: FUZZ_SEED,
          scale: FUZZ_SCALE
        }) + "\n")
      )
    }
    return line
  }
}

/**
 * What a peer's bad input may legitimately produce: a reason (thrown by a
 * pure decoder) or an `SshError`. A JavaScript error (TypeError, RangeError,
 * ...) that escaped a decoder is a bug even where the shell later wraps it as
 * a ProtocolError "unexpected failure" / "malformed input": those messages
 * are rejected here too.
 */
export const typedProblem = (thrown: unknown): string | undefined => {
  const reason = thrown instanceof SshError ? thrown.reason : isSshErrorReason(thrown) ? thrown : undefined
  if (reason === undefined) {
    return `not a typed error: ${thrown instanceof Error ? `${thrown.name}: ${thrown.message}\n${thrown.stack}` : String(thrown)}`
  }
  if (/^(unexpected failure|malformed input):/.test(reason.message)) return `an escaped JavaScript error: ${reason.message}`
  return undefined
}

/** Hex of a byte array (shortened), for failure messages that reproduce a case. */
export const hex = (b: Uint8Array, max = 512): string =>
  Buffer.from(b.buffer, b.byteOffset, Math.min(b.length, max)).toString("hex") + (b.length > max ? `...(${b.length} bytes)` : "")
