/**
 * Which new connections a server takes, decided the moment TCP accepts them
 * (before any SSH work), as sshd decides before it forks:
 *
 * - **PerSourcePenalties**: a source block with an active penalty is refused
 *   (see `Penalties`), unless the address is on the exempt list.
 * - **MaxStartups** `start:rate:full`: with `start` or more connections not
 *   yet authenticated, a new one is refused with probability `rate`%,
 *   rising linearly to 100% at `full`. Authenticated connections are not
 *   counted and never dropped.
 * - **PerSourceMaxStartups**: at most this many unauthenticated connections
 *   per source block (`PerSourceNetBlockSize`).
 * - **maxConnections**: at most this many connections in all, authenticated
 *   or not (no sshd equivalent: sshd's sessions are processes, bounded by the
 *   system; ours share one process's memory).
 *
 * Pure: the caller passes the time (milliseconds on a monotonic clock) and a
 * source of randomness, and tells the admission when a connection
 * authenticates and when it closes. The sshd_config syntax of each setting
 * is parsed here too.
 *
 * @example
 * ```ts
 * const admission = make(defaults)
 * const decision = admission.admit("192.0.2.7", performance.now(), Math.random)
 * if (decision._tag === "Admitted") {
 *   // ... later
 *   admission.authenticated(decision.ticket)
 *   admission.closed(decision.ticket, undefined, performance.now())
 * }
 * ```
 * @since 0.1.0
 */
import { ConfigParseError } from "../SshError.ts"
import { matchCidrList } from "../internal/cidr.ts"
import { type AddressBlock, type NetBlockSize, addressBlock } from "./AddressBlock.ts"
import { type PenaltyConfig, type PenaltyKind, type PenaltyResult, defaultPenalties, PenaltyTable } from "./Penalties.ts"

/** sshd's MaxStartups `start:rate:full`. */
export interface MaxStartups {
  /** Unauthenticated connections at which random early drop begins. */
  readonly start: number
  /** Refusal probability at `start`, in percent (1 to 100). */
  readonly rate: number
  /** Unauthenticated connections at which every new one is refused. */
  readonly full: number
}

/** Everything the admission decides by. */
export interface AdmissionConfig {
  /** Connections at once, authenticated or not. */
  readonly maxConnections: number
  readonly maxStartups: MaxStartups
  /** Unauthenticated connections per source block; `undefined` for no limit (sshd's `none`). */
  readonly perSourceMaxStartups: number | undefined
  readonly perSourceNetBlockSize: NetBlockSize
  /** `undefined` turns penalties off (sshd's `PerSourcePenalties no`). */
  readonly perSourcePenalties: PenaltyConfig | undefined
  /** sshd's PerSourcePenaltyExemptList: a CIDR list (`10.0.0.0/8,2001:db8::/32,192.0.2.7`) never penalised. */
  readonly perSourcePenaltyExemptList: string | undefined
}

/**
 * sshd's MaxStartups default.
 *
 * @example
 * ```ts
 * make({ ...defaults, maxStartups: { ...DEFAULT_MAX_STARTUPS, full: 60 } })
 * ```
 */
export const DEFAULT_MAX_STARTUPS: MaxStartups = { start: 10, rate: 30, full: 100 }

/**
 * PerSourceMaxStartups default: 3 (sshd: none). A login takes well under a
 * second, so a real client host seldom has more than one or two handshakes
 * in flight at once; three sources at 3 each stay below MaxStartups' start
 * of 10. So one host — or two or three — holding idle handshakes can no
 * longer push the server into random early drop and lock everyone else out,
 * as it can with sshd's default. A site that logs in many times at once
 * from one address (a NAT, a fleet tool) raises it.
 *
 * @example
 * ```ts
 * make({ ...defaults, perSourceMaxStartups: DEFAULT_PER_SOURCE_MAX_STARTUPS * 2 })
 * ```
 */
export const DEFAULT_PER_SOURCE_MAX_STARTUPS = 3

/**
 * PerSourceNetBlockSize default: 32:64 (sshd: 32:128). An IPv6 host or site
 * is given at least a /64 and can pick any address in it (privacy
 * addresses do so routinely), so counting single /128 addresses would let
 * one IPv6 host evade the per-source limit and its penalties; a /64 counts
 * as one source, as a NATed IPv4 site's single address does.
 *
 * @example
 * ```ts
 * addressBlock("2001:db8::1", DEFAULT_NET_BLOCK_SIZE) // { family: 6, label: "2001:db8::/64" }
 * ```
 */
export const DEFAULT_NET_BLOCK_SIZE: NetBlockSize = { ipv4: 32, ipv6: 64 }

/**
 * The default admission: sshd's MaxStartups and PerSourcePenalties, the
 * per-source limit and IPv6 block size above, 1000 connections in all.
 *
 * @example
 * ```ts
 * const admission = make({ ...defaults, perSourcePenalties: undefined })
 * ```
 */
export const defaults: AdmissionConfig = {
  maxConnections: 1000,
  maxStartups: DEFAULT_MAX_STARTUPS,
  perSourceMaxStartups: DEFAULT_PER_SOURCE_MAX_STARTUPS,
  perSourceNetBlockSize: DEFAULT_NET_BLOCK_SIZE,
  perSourcePenalties: defaultPenalties,
  perSourcePenaltyExemptList: undefined
}

/** Why a connection was refused (the sshd setting that refused it, or our total limit). */
export type RefusalReason = "PerSourcePenalties" | "MaxStartups" | "PerSourceMaxStartups" | "MaxConnections"

/** An admitted connection; hand it back to `authenticated` and `closed`. */
export interface Ticket {
  readonly address: string
  readonly block: AddressBlock | undefined
}

/** The decision on a new connection. */
export type Decision =
  | { readonly _tag: "Admitted"; readonly ticket: Ticket }
  | { readonly _tag: "Refused"; readonly reason: RefusalReason; readonly detail: string }

/** A penalty that, at a connection's close, made its block refused. */
export interface PenaltyActivated {
  readonly block: AddressBlock
  readonly kind: PenaltyKind
  readonly reason: string
  /** Milliseconds the block is refused for (from now). */
  readonly remaining: number
}

/** The admission state of one server. */
export interface Admission {
  /** Decides on a connection from `address` accepted at `now`; `random` gives numbers in [0, 1). */
  readonly admit: (address: string, now: number, random: () => number) => Decision
  /** The connection authenticated: it no longer counts against MaxStartups and PerSourceMaxStartups. */
  readonly authenticated: (ticket: Ticket) => void
  /**
   * The connection closed; `penalty` is what it earned (none once
   * authenticated, or when the server closed it). Returns the penalty's
   * activation, if this one made the block refused.
   */
  readonly closed: (ticket: Ticket, penalty: PenaltyKind | undefined, now: number) => PenaltyActivated | undefined
  /** Connections admitted and not closed. */
  readonly connections: () => number
  /** Of those, the ones not authenticated yet. */
  readonly unauthenticated: () => number
}

/**
 * The percentage of new connections MaxStartups refuses with `startups`
 * unauthenticated connections open (sshd's integer arithmetic).
 *
 * @example
 * ```ts
 * dropPercent(9, DEFAULT_MAX_STARTUPS)   // 0
 * dropPercent(10, DEFAULT_MAX_STARTUPS)  // 30
 * dropPercent(55, DEFAULT_MAX_STARTUPS)  // 65
 * dropPercent(100, DEFAULT_MAX_STARTUPS) // 100
 * ```
 */
export const dropPercent = (startups: number, limits: MaxStartups): number => {
  if (startups < limits.start) return 0
  if (startups >= limits.full || limits.rate >= 100) return 100
  return Math.floor(((100 - limits.rate) * (startups - limits.start)) / (limits.full - limits.start)) + limits.rate
}

/**
 * Whether MaxStartups refuses a new connection: `random` in [0, 1) picks
 * the integer 0–99 that sshd compares with the drop percentage.
 *
 * @example
 * ```ts
 * shouldDrop(10, DEFAULT_MAX_STARTUPS, 0.29) // true  (29 < 30)
 * shouldDrop(10, DEFAULT_MAX_STARTUPS, 0.30) // false
 * ```
 */
export const shouldDrop = (startups: number, limits: MaxStartups, random: number): boolean =>
  Math.floor(random * 100) < dropPercent(startups, limits)

const formatMaxStartups = (m: MaxStartups) => `${m.start}:${m.rate}:${m.full}`

/**
 * A fresh admission state for `config`.
 *
 * @example
 * ```ts
 * const admission = make({ ...defaults, maxStartups: { start: 5, rate: 50, full: 20 } })
 * ```
 */
export const make = (config: AdmissionConfig): Admission => {
  const penalties = config.perSourcePenalties === undefined ? undefined : new PenaltyTable(config.perSourcePenalties)
  const exempt = (address: string) =>
    config.perSourcePenaltyExemptList !== undefined && matchCidrList(config.perSourcePenaltyExemptList, address) === true
  const open = new Set<Ticket>()
  const unauthenticated = new Set<Ticket>()
  const perBlock = new Map<string, number>()

  const release = (ticket: Ticket) => {
    if (!unauthenticated.delete(ticket) || ticket.block === undefined) return
    const n = (perBlock.get(ticket.block.label) ?? 1) - 1
    if (n > 0) perBlock.set(ticket.block.label, n)
    else perBlock.delete(ticket.block.label)
  }

  const admit = (address: string, now: number, random: () => number): Decision => {
    const block = addressBlock(address, config.perSourceNetBlockSize)
    if (penalties !== undefined && block !== undefined && !exempt(address)) {
      const check = penalties.check(block, now)
      if (check._tag === "Refused") {
        const left = check.remaining > 0 ? ` (${(check.remaining / 1000).toFixed(1)} s left)` : ""
        return { _tag: "Refused", reason: "PerSourcePenalties", detail: `${check.reason} for ${block.label}${left}` }
      }
    }
    const startups = unauthenticated.size
    if (shouldDrop(startups, config.maxStartups, random())) {
      return {
        _tag: "Refused",
        reason: "MaxStartups",
        detail: `${startups} unauthenticated connections (MaxStartups ${formatMaxStartups(config.maxStartups)}: ${dropPercent(startups, config.maxStartups)}% refused)`
      }
    }
    const fromBlock = block === undefined ? 0 : perBlock.get(block.label) ?? 0
    if (block !== undefined && config.perSourceMaxStartups !== undefined && fromBlock >= config.perSourceMaxStartups) {
      return {
        _tag: "Refused",
        reason: "PerSourceMaxStartups",
        detail: `${fromBlock} unauthenticated connections from ${block.label} (PerSourceMaxStartups ${config.perSourceMaxStartups})`
      }
    }
    if (open.size >= config.maxConnections) {
      return { _tag: "Refused", reason: "MaxConnections", detail: `${open.size} connections (maxConnections ${config.maxConnections})` }
    }
    const ticket: Ticket = { address, block }
    open.add(ticket)
    unauthenticated.add(ticket)
    if (block !== undefined) perBlock.set(block.label, fromBlock + 1)
    return { _tag: "Admitted", ticket }
  }

  const closed = (ticket: Ticket, penalty: PenaltyKind | undefined, now: number): PenaltyActivated | undefined => {
    if (!open.delete(ticket)) return undefined
    release(ticket)
    if (penalty === undefined || penalties === undefined || ticket.block === undefined || exempt(ticket.address)) return undefined
    const result: PenaltyResult = penalties.penalise(ticket.block, penalty, now)
    return result._tag === "Recorded" && result.activated
      ? { block: ticket.block, kind: penalty, reason: result.reason, remaining: result.remaining }
      : undefined
  }

  return {
    admit,
    authenticated: release,
    closed,
    connections: () => open.size,
    unauthenticated: () => unauthenticated.size
  }
}

// --- sshd_config syntax ---

const invalid = (message: string) => new ConfigParseError({ message })

const TIME_UNITS: Record<string, number> = { "": 1, s: 1, m: 60, h: 3600, d: 86400, w: 604800 }

/**
 * An sshd time value (sshd_config's TIME FORMATS) in milliseconds: a
 * sequence of numbers, each with an optional unit s, m, h, d or w
 * (seconds when none): `90`, `10m`, `1h30m`, `2.5s`.
 *
 * @throws ConfigParseError for anything else.
 * @example
 * ```ts
 * parseTime("1h30m") // 5_400_000
 * parseTime("0")     // 0
 * ```
 */
export const parseTime = (text: string): number => {
  const parts = /^(?:\d+(?:\.\d+)?[smhdwSMHDW]?)+$/.test(text) ? text.match(/\d+(?:\.\d+)?[smhdwSMHDW]?/g) : null
  if (parts === null) throw invalid(`bad time "${text}" (e.g. 90, 30s, 10m, 1h30m)`)
  let seconds = 0
  for (const part of parts) {
    const unit = /[a-zA-Z]$/.test(part) ? part.slice(-1).toLowerCase() : ""
    seconds += Number(unit === "" ? part : part.slice(0, -1)) * TIME_UNITS[unit]!
  }
  return Math.round(seconds * 1000)
}

const parseCount = (text: string, what: string, min: number): number => {
  const n = /^\d{1,9}$/.test(text) ? Number(text) : Number.NaN
  if (!(n >= min)) throw invalid(`bad ${what} "${text}" (a whole number, at least ${min})`)
  return n
}

/**
 * sshd's MaxStartups value: `start:rate:full`, or one number `n` (refuse
 * every new connection at `n` unauthenticated, i.e. `n:100:n`).
 *
 * @throws ConfigParseError when malformed, when start > full or rate is not 1–100.
 * @example
 * ```ts
 * parseMaxStartups("10:30:100") // { start: 10, rate: 30, full: 100 }
 * parseMaxStartups("20")        // { start: 20, rate: 100, full: 20 }
 * ```
 */
export const parseMaxStartups = (text: string): MaxStartups => {
  const parts = text.split(":")
  if (parts.length === 1) {
    const n = parseCount(parts[0]!, "MaxStartups", 1)
    return { start: n, rate: 100, full: n }
  }
  if (parts.length !== 3) throw invalid(`bad MaxStartups "${text}" (start:rate:full, e.g. 10:30:100)`)
  return validMaxStartups({
    start: parseCount(parts[0]!, "MaxStartups start", 1),
    rate: parseCount(parts[1]!, "MaxStartups rate", 1),
    full: parseCount(parts[2]!, "MaxStartups full", 1)
  })
}

/**
 * Checks MaxStartups limits given as an object: positive whole numbers,
 * start ≤ full, rate 1–100.
 *
 * @throws ConfigParseError otherwise.
 * @example
 * ```ts
 * validMaxStartups({ start: 10, rate: 30, full: 100 }) // the same object
 * ```
 */
export const validMaxStartups = (limits: MaxStartups): MaxStartups => {
  const whole = (n: number) => Number.isInteger(n) && n >= 1
  if (!whole(limits.start) || !whole(limits.full) || !whole(limits.rate)) {
    throw invalid(`bad MaxStartups ${formatMaxStartups(limits)} (whole numbers, at least 1)`)
  }
  if (limits.start > limits.full) throw invalid(`bad MaxStartups ${formatMaxStartups(limits)}: start above full`)
  if (limits.rate > 100) throw invalid(`bad MaxStartups ${formatMaxStartups(limits)}: rate above 100`)
  return limits
}

/**
 * sshd's PerSourceMaxStartups value: a number, or `none` (no limit: `undefined`).
 *
 * @throws ConfigParseError when malformed.
 * @example
 * ```ts
 * parsePerSourceMaxStartups("5")    // 5
 * parsePerSourceMaxStartups("none") // undefined
 * ```
 */
export const parsePerSourceMaxStartups = (text: string): number | undefined =>
  text === "none" ? undefined : parseCount(text, "PerSourceMaxStartups", 1)

/**
 * sshd's PerSourceNetBlockSize value: `ipv4[:ipv6]` prefix lengths (the
 * IPv6 one keeps `fallback.ipv6` when absent).
 *
 * @throws ConfigParseError when malformed or out of range (0–32, 0–128).
 * @example
 * ```ts
 * parseNetBlockSize("24:56") // { ipv4: 24, ipv6: 56 }
 * parseNetBlockSize("24")    // { ipv4: 24, ipv6: 64 }
 * ```
 */
export const parseNetBlockSize = (text: string, fallback: NetBlockSize = DEFAULT_NET_BLOCK_SIZE): NetBlockSize => {
  const match = /^(\d{1,3})(?::(\d{1,3}))?$/.exec(text)
  const ipv4 = match === null ? Number.NaN : Number(match[1])
  const ipv6 = match?.[2] === undefined ? fallback.ipv6 : Number(match[2])
  return validNetBlockSize({ ipv4, ipv6 }, text)
}

/**
 * Checks prefix lengths: IPv4 0–32, IPv6 0–128.
 *
 * @throws ConfigParseError otherwise.
 * @example
 * ```ts
 * validNetBlockSize({ ipv4: 24, ipv6: 48 }) // the same object
 * ```
 */
export const validNetBlockSize = (size: NetBlockSize, text = `${size.ipv4}:${size.ipv6}`): NetBlockSize => {
  const inRange = (n: number, max: number) => Number.isInteger(n) && n >= 0 && n <= max
  if (!inRange(size.ipv4, 32) || !inRange(size.ipv6, 128)) {
    throw invalid(`bad PerSourceNetBlockSize "${text}" (ipv4[:ipv6], 0-32 and 0-128)`)
  }
  return size
}

const penaltyKeywords: Record<string, "crash" | "authfail" | "noauth" | "graceExceeded" | "max" | "min"> = {
  crash: "crash",
  authfail: "authfail",
  noauth: "noauth",
  "grace-exceeded": "graceExceeded",
  max: "max",
  min: "min"
}

/**
 * sshd's PerSourcePenalties value: `yes` (the defaults), `no` (off:
 * `undefined`), or `keyword:value` overrides of the defaults, separated by
 * spaces (as sshd) or commas:
 * `crash:`, `authfail:`, `noauth:`, `grace-exceeded:`, `max:`,
 * `min:` (sshd times), `max-sources4:`, `max-sources6:` (numbers),
 * `overflow:` / `overflow6:` (`permissive` or `deny-all`). sshd's
 * `invaliduser` and `refuseconnection` have no counterpart here (a server's
 * auth handlers do not say whether a user exists) and are refused.
 *
 * @throws ConfigParseError for an unknown keyword or a bad value.
 * @example
 * ```ts
 * parsePenalties("authfail:30s max:1h") // { ...defaultPenalties, authfail: 30_000, max: 3_600_000 }
 * parsePenalties("no")                  // undefined
 * ```
 */
export const parsePenalties = (text: string, base: PenaltyConfig = defaultPenalties): PenaltyConfig | undefined => {
  const words = text.trim().split(/[\s,]+/)
  if (words.length === 1 && /^(yes|on)$/i.test(words[0]!)) return base
  if (words.length === 1 && /^(no|off)$/i.test(words[0]!)) return undefined
  let config: PenaltyConfig = base
  let overflow6Given = false
  for (const word of words) {
    const colon = word.indexOf(":")
    const keyword = colon < 0 ? word : word.slice(0, colon)
    const value = colon < 0 ? "" : word.slice(colon + 1)
    const duration = penaltyKeywords[keyword]
    if (duration !== undefined) config = { ...config, [duration]: parseTime(value) }
    else if (keyword === "max-sources4") config = { ...config, maxSources4: parseCount(value, keyword, 1) }
    else if (keyword === "max-sources6") config = { ...config, maxSources6: parseCount(value, keyword, 1) }
    else if ((keyword === "overflow" || keyword === "overflow6") && (value === "permissive" || value === "deny-all")) {
      if (keyword === "overflow6") overflow6Given = true
      config = keyword === "overflow6"
        ? { ...config, overflow6: value }
        : { ...config, overflow: value, overflow6: overflow6Given ? config.overflow6 : value }
    } else {
      throw invalid(`bad PerSourcePenalties "${word}" (yes, no, or keyword:value with crash, authfail, noauth, grace-exceeded, max, min, max-sources4, max-sources6, overflow, overflow6)`)
    }
  }
  return config
}

/**
 * Checks a PerSourcePenaltyExemptList: comma-separated addresses and
 * address/prefix ranges (sshd's wildcards are not supported).
 *
 * @throws ConfigParseError when malformed.
 * @example
 * ```ts
 * validExemptList("10.0.0.0/8,192.0.2.7,2001:db8::/32") // the same string
 * ```
 */
export const validExemptList = (list: string): string => {
  if (matchCidrList(list, "0.0.0.0") === undefined) {
    throw invalid(`bad PerSourcePenaltyExemptList "${list}" (addresses and CIDR ranges, comma-separated)`)
  }
  return list
}
