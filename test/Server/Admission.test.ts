/**
 * Admission of new connections. Pure: MaxStartups' random early drop with
 * injected randomness, PerSourceMaxStartups over IPv4 and IPv6 blocks,
 * PerSourcePenalties growing, activating and expiring with injected time,
 * the exempt list, the penalty table's overflow modes, the rate-limited
 * refusal reports, and the sshd_config syntax of each setting. Then
 * `SshServer.serve` over loopback, from several source addresses
 * (127.0.0.0/8 is all loopback on Linux): per-source limits, sshd's notice
 * to a refused connection, penalties for failed logins and the grace time.
 */
import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import type * as Socket from "effect/socket/Socket"
import * as net from "node:net"
import { runFailure, runScoped } from "../helpers.ts"
import * as SshClient from "../../src/Client.ts"
import * as SshServer from "../../src/Server.ts"
import * as Auth from "../../src/Auth/ClientAuth.ts"
import { SshError } from "../../src/SshError.ts"
import { fromNetSocket } from "../../src/internal/netSocket.ts"
import { clientOptions, EventLog, serverOptions, waitUntil } from "./fixtures.ts"
import * as Admission from "../../src/Server/Admission.ts"
import { addressBlock } from "../../src/Server/AddressBlock.ts"
import { defaultPenalties, PenaltyTable } from "../../src/Server/Penalties.ts"
import { RefusalLog } from "../../src/Server/RefusalLog.ts"

/** A random source that always gives `r`. */
const always = (r: number) => () => r

const config = (extra: Partial<Admission.AdmissionConfig> = {}): Admission.AdmissionConfig => ({
  ...Admission.defaults,
  perSourceMaxStartups: undefined,
  perSourcePenalties: undefined,
  ...extra
})

/** Admits `n` connections from `address` (each must be admitted). */
const fill = (admission: Admission.Admission, address: string, n: number, now = 0): Array<Admission.Ticket> =>
  Array.from({ length: n }, () => {
    const d = admission.admit(address, now, always(0.99))
    if (d._tag !== "Admitted") throw new Error(`expected admission, got ${d.reason}: ${d.detail}`)
    return d.ticket
  })

const reasonOf = (d: Admission.Decision) => d._tag === "Refused" ? d.reason : "Admitted"

describe("MaxStartups", () => {
  it("the drop percentage rises linearly from rate% at start to 100% at full (sshd's integer arithmetic)", () => {
    const m = Admission.DEFAULT_MAX_STARTUPS
    expect([0, 9, 10, 11, 40, 55, 99, 100, 500].map((n) => Admission.dropPercent(n, m))).toEqual([0, 0, 30, 30, 53, 65, 99, 100, 100])
    // one number n: nothing below n, everything at n
    const hard = Admission.parseMaxStartups("20")
    expect([19, 20].map((n) => Admission.dropPercent(n, hard))).toEqual([0, 100])
    expect(Admission.dropPercent(10, { start: 10, rate: 100, full: 50 })).toBe(100)
  })

  it("refuses exactly when the injected draw (0-99) is below the percentage", () => {
    const m = Admission.DEFAULT_MAX_STARTUPS
    expect(Admission.shouldDrop(10, m, 0.29)).toBe(true)
    expect(Admission.shouldDrop(10, m, 0.3)).toBe(false)
    expect(Admission.shouldDrop(55, m, 0.64)).toBe(true)
    expect(Admission.shouldDrop(55, m, 0.65)).toBe(false)
    expect(Admission.shouldDrop(9, m, 0)).toBe(false)
    expect(Admission.shouldDrop(100, m, 0.999)).toBe(true)
  })

  it("counts unauthenticated connections only: authenticated ones make room and are never dropped", () => {
    const admission = Admission.make(config())
    const tickets = fill(admission, "192.0.2.1", 10)
    expect(admission.unauthenticated()).toBe(10)
    // at start (10): a 30% chance of refusal
    expect(reasonOf(admission.admit("198.51.100.1", 0, always(0.29)))).toBe("MaxStartups")
    expect(reasonOf(admission.admit("198.51.100.1", 0, always(0.3)))).toBe("Admitted")
    for (const t of tickets) admission.authenticated(t)
    expect({ connections: admission.connections(), unauthenticated: admission.unauthenticated() }).toEqual({ connections: 11, unauthenticated: 1 })
    // with ten authenticated and one pending, a new one is admitted whatever the draw
    expect(reasonOf(admission.admit("198.51.100.2", 0, always(0)))).toBe("Admitted")
  })

  it("at full, every new connection is refused, and the refusal says why", () => {
    const admission = Admission.make(config({ maxStartups: { start: 2, rate: 50, full: 4 } }))
    fill(admission, "192.0.2.1", 4)
    const d = admission.admit("198.51.100.1", 0, always(0.999))
    expect(d).toEqual({ _tag: "Refused", reason: "MaxStartups", detail: "4 unauthenticated connections (MaxStartups 2:50:4: 100% refused)" })
  })

  it("empirical refusal rate with a seeded random source matches the percentage", () => {
    let seed = 42
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31
      return seed / 2 ** 31
    }
    const admission = Admission.make(config())
    const held = fill(admission, "192.0.2.1", 55)
    let refused = 0
    for (let i = 0; i < 10_000; i++) {
      const d = admission.admit("198.51.100.1", 0, random)
      if (d._tag === "Refused") refused++
      else admission.closed(d.ticket, undefined, 0)
    }
    expect(held.length).toBe(55)
    expect(refused / 10_000).toBeGreaterThan(0.62)
    expect(refused / 10_000).toBeLessThan(0.68)
  })
})

describe("PerSourceMaxStartups and PerSourceNetBlockSize", () => {
  it("address blocks: IPv4 and IPv6 prefixes, IPv4-mapped peers, non-IP peers", () => {
    const size = { ipv4: 24, ipv6: 64 }
    expect(addressBlock("192.0.2.77", size)).toEqual({ family: 4, label: "192.0.2.0/24" })
    expect(addressBlock("::ffff:192.0.2.77", size)).toEqual({ family: 4, label: "192.0.2.0/24" })
    expect(addressBlock("2001:db8:1:2:aaaa:bbbb:cccc:dddd", size)).toEqual({ family: 6, label: "2001:db8:1:2::/64" })
    expect(addressBlock("2001:db8::1", { ipv4: 32, ipv6: 128 })).toEqual({ family: 6, label: "2001:db8::1/128" })
    expect(addressBlock("fe80::1%eth0", { ipv4: 32, ipv6: 10 })).toEqual({ family: 6, label: "fe80::/10" })
    expect(addressBlock("10.1.2.3", { ipv4: 0, ipv6: 0 })).toEqual({ family: 4, label: "0.0.0.0/0" })
    expect(addressBlock("::", size)).toEqual({ family: 6, label: "::/64" })
    expect(addressBlock("1:0:0:2:0:0:0:3", { ipv4: 32, ipv6: 128 })?.label).toBe("1:0:0:2::3/128")
    expect(addressBlock("10.255.255.255", { ipv4: 9, ipv6: 64 })?.label).toBe("10.128.0.0/9")
    expect(addressBlock("unknown", size)).toBeUndefined()
  })

  it("one IPv4 block holds at most its limit; other blocks are unaffected; a freed place is reusable", () => {
    const admission = Admission.make(config({ perSourceMaxStartups: 3, perSourceNetBlockSize: { ipv4: 24, ipv6: 64 } }))
    const held = fill(admission, "192.0.2.1", 2)
    held.push(...fill(admission, "192.0.2.200", 1))
    const refused = admission.admit("192.0.2.9", 0, always(0.99))
    expect(refused).toEqual({
      _tag: "Refused",
      reason: "PerSourceMaxStartups",
      detail: "3 unauthenticated connections from 192.0.2.0/24 (PerSourceMaxStartups 3)"
    })
    expect(reasonOf(admission.admit("192.0.3.1", 0, always(0.99)))).toBe("Admitted")
    // authenticating frees the place, as closing does
    admission.authenticated(held[0]!)
    expect(reasonOf(admission.admit("192.0.2.9", 0, always(0.99)))).toBe("Admitted")
    expect(reasonOf(admission.admit("192.0.2.9", 0, always(0.99)))).toBe("PerSourceMaxStartups")
    admission.closed(held[1]!, undefined, 0)
    expect(reasonOf(admission.admit("192.0.2.9", 0, always(0.99)))).toBe("Admitted")
  })

  it("IPv6 addresses of one /64 are one source by default; /128 would count each", () => {
    const byDefault = Admission.make(config({ perSourceMaxStartups: 2 }))
    fill(byDefault, "2001:db8:0:1::a", 1)
    fill(byDefault, "2001:db8:0:1:ffff::b", 1)
    expect(reasonOf(byDefault.admit("2001:db8:0:1::c", 0, always(0.99)))).toBe("PerSourceMaxStartups")
    expect(reasonOf(byDefault.admit("2001:db8:0:2::c", 0, always(0.99)))).toBe("Admitted")
    const sshdBlocks = Admission.make(config({ perSourceMaxStartups: 2, perSourceNetBlockSize: { ipv4: 32, ipv6: 128 } }))
    fill(sshdBlocks, "2001:db8:0:1::a", 2)
    expect(reasonOf(sshdBlocks.admit("2001:db8:0:1::b", 0, always(0.99)))).toBe("Admitted")
  })

  it("IPv4-mapped and plain IPv4 peers share a block", () => {
    const admission = Admission.make(config({ perSourceMaxStartups: 1 }))
    fill(admission, "::ffff:198.51.100.7", 1)
    expect(reasonOf(admission.admit("198.51.100.7", 0, always(0.99)))).toBe("PerSourceMaxStartups")
  })

  it("maxConnections counts authenticated connections too", () => {
    const admission = Admission.make(config({ maxConnections: 2 }))
    for (const t of fill(admission, "192.0.2.1", 2)) admission.authenticated(t)
    expect(admission.admit("192.0.2.2", 0, always(0.99))).toEqual({
      _tag: "Refused",
      reason: "MaxConnections",
      detail: "2 connections (maxConnections 2)"
    })
  })

  it("the counts always match a model, whatever the order of admissions, authentications and closes", () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant("admit" as const), source: fc.integer({ min: 0, max: 3 }), r: fc.double({ min: 0, max: 0.999, noNaN: true }) }),
      fc.record({ kind: fc.constantFrom("auth" as const, "close" as const), pick: fc.nat() })
    )
    fc.assert(fc.property(fc.array(op, { maxLength: 200 }), (ops) => {
      const admission = Admission.make(config({ perSourceMaxStartups: 4, maxStartups: { start: 6, rate: 30, full: 10 }, maxConnections: 12 }))
      const open: Array<{ ticket: Admission.Ticket; source: number; authed: boolean }> = []
      for (const o of ops) {
        if (o.kind === "admit") {
          const unauth = open.filter((c) => !c.authed)
          const d = admission.admit(`203.0.113.${o.source}`, 0, always(o.r))
          const expectRefusal = Admission.shouldDrop(unauth.length, { start: 6, rate: 30, full: 10 }, o.r) ||
            unauth.filter((c) => c.source === o.source).length >= 4 || open.length >= 12
          expect(d._tag === "Refused").toBe(expectRefusal)
          if (d._tag === "Admitted") open.push({ ticket: d.ticket, source: o.source, authed: false })
        } else if (open.length > 0) {
          const i = o.pick % open.length
          if (o.kind === "auth") {
            admission.authenticated(open[i]!.ticket)
            open[i]!.authed = true
          } else {
            admission.closed(open[i]!.ticket, undefined, 0)
            open.splice(i, 1)
          }
        }
        expect(admission.connections()).toBe(open.length)
        expect(admission.unauthenticated()).toBe(open.filter((c) => !c.authed).length)
      }
    }))
  })
})

describe("PerSourcePenalties", () => {
  const block = { family: 4 as const, label: "192.0.2.7/32" }

  it("penalties accumulate; the block is refused once more than min is outstanding, until they run out", () => {
    const table = new PenaltyTable(defaultPenalties)
    // authfail is 5 s: three failed connections make 15 s, not more than min (15 s)
    for (let i = 0; i < 3; i++) expect(table.penalise(block, "authfail", 0)).toMatchObject({ activated: false, active: false })
    expect(table.check(block, 0)).toEqual({ _tag: "Allowed" })
    expect(table.penalise(block, "authfail", 0)).toMatchObject({ activated: true, active: true, remaining: 20_000 })
    expect(table.check(block, 0)).toEqual({ _tag: "Refused", reason: "penalty: failed authentication", remaining: 20_000 })
    expect(table.check(block, 19_999)).toMatchObject({ _tag: "Refused", remaining: 1 })
    expect(table.check(block, 20_001)).toEqual({ _tag: "Allowed" })
    expect(table.size(4)).toBe(0)
    // after expiry it starts again from nothing
    expect(table.penalise(block, "authfail", 20_001)).toMatchObject({ activated: false, remaining: 5_000 })
  })

  it("time passing between penalties counts against them; the reason is the latest penalty's", () => {
    const table = new PenaltyTable(defaultPenalties)
    table.penalise(block, "grace-exceeded", 0) // expires at 10 s
    expect(table.penalise(block, "noauth", 4_000)).toMatchObject({ activated: false, remaining: 7_000 }) // 11 s
    expect(table.penalise(block, "grace-exceeded", 5_000)).toMatchObject({ activated: true, remaining: 16_000 }) // 21 s
    expect(table.check(block, 5_000)).toMatchObject({ reason: "penalty: exceeded LoginGraceTime", remaining: 16_000 })
  })

  it("a penalty longer than min is active at once; the total never exceeds max ahead of now", () => {
    const table = new PenaltyTable({ ...defaultPenalties, crash: 90_000, max: 100_000 })
    expect(table.penalise(block, "crash", 0)).toMatchObject({ activated: true, remaining: 90_000 })
    expect(table.penalise(block, "crash", 0)).toMatchObject({ activated: false, active: true, remaining: 100_000 })
    expect(table.penalise(block, "crash", 50_000)).toMatchObject({ remaining: 100_000 })
    expect(table.check(block, 149_999)._tag).toBe("Refused")
    expect(table.check(block, 150_001)._tag).toBe("Allowed")
  })

  it("a zero duration disables that penalty", () => {
    const table = new PenaltyTable({ ...defaultPenalties, noauth: 0 })
    expect(table.penalise(block, "noauth", 0)).toEqual({ _tag: "Ignored", why: "disabled" })
    expect(table.size(4)).toBe(0)
  })

  it("permissive overflow forgets the penalties closest to expiring", () => {
    const table = new PenaltyTable({ ...defaultPenalties, maxSources4: 3, crash: 60_000 })
    const b = (i: number) => ({ family: 4 as const, label: `10.0.0.${i}/32` })
    table.penalise(b(1), "crash", 0) // until 60 s
    table.penalise(b(2), "crash", 10_000) // until 70 s
    table.penalise(b(3), "crash", 20_000) // until 80 s
    table.penalise(b(4), "crash", 30_000) // until 90 s: 10.0.0.1 goes
    expect(table.size(4)).toBe(3)
    expect(table.check(b(1), 30_000)._tag).toBe("Allowed")
    expect([2, 3, 4].map((i) => table.check(b(i), 30_000)._tag)).toEqual(["Refused", "Refused", "Refused"])
    // IPv6 is tracked apart
    expect(table.size(6)).toBe(0)
  })

  it("deny-all overflow refuses every block while the table is full, and takes no new penalty", () => {
    const table = new PenaltyTable({ ...defaultPenalties, maxSources4: 2, overflow: "deny-all", overflow6: "deny-all" })
    const b = (i: number) => ({ family: 4 as const, label: `10.0.0.${i}/32` })
    table.penalise(b(1), "noauth", 0)
    table.penalise(b(2), "noauth", 0)
    expect(table.penalise(b(3), "noauth", 0)).toEqual({ _tag: "Ignored", why: "table full" })
    expect(table.check(b(9), 0)).toEqual({ _tag: "Refused", reason: "too many penalised addresses", remaining: 0 })
    expect(table.check({ family: 6, label: "2001:db8::/64" }, 0)).toEqual({ _tag: "Allowed" })
    expect(table.check(b(9), 1_001)).toEqual({ _tag: "Allowed" })
  })

  it("many penalties over time stay bounded: expired blocks are dropped", () => {
    const table = new PenaltyTable(defaultPenalties)
    for (let i = 0; i < 50_000; i++) table.penalise({ family: 4, label: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}/32` }, "noauth", i)
    // noauth lasts 1 s: about a thousand are outstanding at any time
    expect(table.size(4)).toBeLessThanOrEqual(1_002)
  })

  it("through the admission: a penalised block is refused, its neighbours and exempt addresses are not", () => {
    const admission = Admission.make(config({
      perSourcePenalties: defaultPenalties,
      perSourcePenaltyExemptList: "198.51.100.0/24"
    }))
    const failing = (address: string, now: number) => {
      const [ticket] = fill(admission, address, 1, now)
      return admission.closed(ticket!, "authfail", now)
    }
    expect([0, 1, 2].map((i) => failing("192.0.2.7", i * 100))).toEqual([undefined, undefined, undefined])
    const activated = failing("192.0.2.7", 300)
    expect(activated).toMatchObject({ block: { label: "192.0.2.7/32" }, kind: "authfail", reason: "penalty: failed authentication" })
    expect(activated!.remaining).toBeCloseTo(20_000 - 300, -2)
    const refused = admission.admit("192.0.2.7", 1_000, always(0.99))
    expect(refused).toMatchObject({ _tag: "Refused", reason: "PerSourcePenalties" })
    expect(refused._tag === "Refused" && refused.detail).toMatch(/^penalty: failed authentication for 192\.0\.2\.7\/32 \(19\.\d s left\)$/)
    expect(reasonOf(admission.admit("192.0.2.8", 1_000, always(0.99)))).toBe("Admitted")
    // an exempt source earns no penalty
    for (let i = 0; i < 10; i++) expect(failing("198.51.100.9", 1_000)).toBeUndefined()
    expect(reasonOf(admission.admit("198.51.100.9", 1_000, always(0.99)))).toBe("Admitted")
    // the four penalties ran out at 20 s
    expect(reasonOf(admission.admit("192.0.2.7", 19_999, always(0.99)))).toBe("PerSourcePenalties")
    expect(reasonOf(admission.admit("192.0.2.7", 20_001, always(0.99)))).toBe("Admitted")
  })

  it("an authenticated connection or one the server closed earns nothing", () => {
    const admission = Admission.make(config({ perSourcePenalties: { ...defaultPenalties, authfail: 60_000 } }))
    const [ticket] = fill(admission, "192.0.2.7", 1)
    admission.authenticated(ticket!)
    expect(admission.closed(ticket!, undefined, 0)).toBeUndefined()
    expect(reasonOf(admission.admit("192.0.2.7", 0, always(0.99)))).toBe("Admitted")
  })
})

describe("refusal reports", () => {
  it("at most one report per reason per interval; every refusal is reported or counted in the next report", () => {
    const log = new RefusalLog<number>(1_000)
    const reports: Array<{ reason: string; refusal: number; suppressed: number }> = []
    const flushes: Array<{ reason: string; at: number }> = []
    const record = (reason: string, refusal: number, now: number) => {
      const r = log.record(reason, refusal, now)
      if (r._tag === "Report") reports.push({ reason, refusal: r.refusal, suppressed: r.suppressed })
      else if (r.flushAt !== undefined) flushes.push({ reason, at: r.flushAt })
    }
    // 100 refusals over 2.5 s, and a second reason once
    for (let i = 0; i < 100; i++) record("MaxStartups", i, i * 25)
    record("PerSourceMaxStartups", 1000, 30)
    // each interval's first suppressed refusal asks for a flush at the interval's end
    expect(flushes).toEqual([1_000, 2_000, 3_000].map((at) => ({ reason: "MaxStartups", at })))
    // refusals 0 and 40 (at 1 s) are reported, the ones between counted
    expect(reports).toEqual([
      { reason: "MaxStartups", refusal: 0, suppressed: 0 },
      { reason: "MaxStartups", refusal: 40, suppressed: 39 },
      { reason: "MaxStartups", refusal: 80, suppressed: 39 },
      { reason: "PerSourceMaxStartups", refusal: 1000, suppressed: 0 }
    ])
    // a late flush of an earlier interval does nothing: the current one has its own
    expect(log.flush("MaxStartups", 2_500)).toBeUndefined()
    // the last 19 (81-99) are flushed at the interval's end: the last one reported, 18 counted
    expect(log.flush("MaxStartups", 3_000)).toEqual({ _tag: "Report", refusal: 99, suppressed: 18 })
    const total = reports.filter((r) => r.reason === "MaxStartups").reduce((n, r) => n + 1 + r.suppressed, 0) + 19
    expect(total).toBe(100)
  })

  it("a flush reports the last suppressed refusal and starts a new interval", () => {
    const log = new RefusalLog<string>(10_000)
    expect(log.record("MaxStartups", "a", 0)).toEqual({ _tag: "Report", refusal: "a", suppressed: 0 })
    expect(log.record("MaxStartups", "b", 1)).toEqual({ _tag: "Suppressed", flushAt: 10_000 })
    expect(log.record("MaxStartups", "c", 2)).toEqual({ _tag: "Suppressed", flushAt: undefined })
    expect(log.flush("MaxStartups", 10_000)).toEqual({ _tag: "Report", refusal: "c", suppressed: 1 })
    expect(log.record("MaxStartups", "d", 10_001)).toEqual({ _tag: "Suppressed", flushAt: 20_000 })
    expect(log.flush("PerSourcePenalties", 10_001)).toBeUndefined()
    // before the interval's end a flush waits; a drain (shutdown) does not
    expect(log.flush("MaxStartups", 15_000)).toBeUndefined()
    expect(log.drain("MaxStartups", 15_000)).toEqual({ _tag: "Report", refusal: "d", suppressed: 0 })
    expect(log.drain("MaxStartups", 15_000)).toBeUndefined()
  })
})

describe("sshd_config syntax", () => {
  const parseError = (f: () => unknown) => {
    try {
      f()
    } catch (e) {
      return e instanceof Error && "_tag" in e ? (e as { _tag: string })._tag : String(e)
    }
    return "no error"
  }

  it("times: seconds, units, sums, fractions", () => {
    expect(["0", "90", "30s", "10m", "1h30m", "2.5s", "1w", "1d2h", "5M"].map(Admission.parseTime))
      .toEqual([0, 90_000, 30_000, 600_000, 5_400_000, 2_500, 604_800_000, 93_600_000, 300_000])
    for (const bad of ["", "s", "1x", "-1", "1 m", "1.s", "m5"]) expect(parseError(() => Admission.parseTime(bad))).toBe("ConfigParseError")
  })

  it("MaxStartups, PerSourceMaxStartups, PerSourceNetBlockSize", () => {
    expect(Admission.parseMaxStartups("10:30:60")).toEqual({ start: 10, rate: 30, full: 60 })
    expect(Admission.parseMaxStartups("7")).toEqual({ start: 7, rate: 100, full: 7 })
    for (const bad of ["", "0", "10:30", "60:30:10", "10:0:60", "10:101:60", "a:b:c", "10:30:60:1", "-1"]) {
      expect(parseError(() => Admission.parseMaxStartups(bad))).toBe("ConfigParseError")
    }
    expect(Admission.parsePerSourceMaxStartups("none")).toBeUndefined()
    expect(Admission.parsePerSourceMaxStartups("4")).toBe(4)
    expect(parseError(() => Admission.parsePerSourceMaxStartups("0"))).toBe("ConfigParseError")
    expect(Admission.parseNetBlockSize("24")).toEqual({ ipv4: 24, ipv6: 64 })
    expect(Admission.parseNetBlockSize("32:128")).toEqual({ ipv4: 32, ipv6: 128 })
    for (const bad of ["33", "24:129", "", "a", "24:", ":64"]) expect(parseError(() => Admission.parseNetBlockSize(bad))).toBe("ConfigParseError")
  })

  it("PerSourcePenalties: yes, no, keyword:value overrides", () => {
    expect(Admission.parsePenalties("yes")).toEqual(defaultPenalties)
    expect(Admission.parsePenalties("on")).toEqual(defaultPenalties)
    expect(Admission.parsePenalties("no")).toBeUndefined()
    expect(Admission.parsePenalties("off")).toBeUndefined()
    expect(Admission.parsePenalties("authfail:30s max:1h grace-exceeded:2m max-sources4:10 overflow:deny-all")).toEqual({
      ...defaultPenalties,
      authfail: 30_000,
      max: 3_600_000,
      graceExceeded: 120_000,
      maxSources4: 10,
      overflow: "deny-all",
      overflow6: "deny-all"
    })
    expect(Admission.parsePenalties("overflow6:deny-all,overflow:permissive,noauth:0")).toMatchObject({
      overflow: "permissive",
      overflow6: "deny-all",
      noauth: 0
    })
    for (const bad of ["maybe", "authfail", "authfail:x", "invaliduser:5s", "overflow:sometimes", "max-sources6:0", "yes no"]) {
      expect(parseError(() => Admission.parsePenalties(bad))).toBe("ConfigParseError")
    }
  })

  it("PerSourcePenaltyExemptList: addresses and CIDR ranges", () => {
    expect(Admission.validExemptList("10.0.0.0/8,192.0.2.7,2001:db8::/32")).toBe("10.0.0.0/8,192.0.2.7,2001:db8::/32")
    for (const bad of ["10.0.0.0/33", "*.example.com", "10.0.0.0/8,,", "host"]) {
      expect(parseError(() => Admission.validExemptList(bad))).toBe("ConfigParseError")
    }
  })

  it("errors are ConfigParseError reasons, as the rest of the pure core throws", () => {
    try {
      Admission.parseMaxStartups("x")
    } catch (e) {
      expect(e).not.toBeInstanceOf(SshError)
      expect((e as Error).message).toMatch(/MaxStartups/)
    }
  })
})

// --- over loopback: SshServer.serve's accept loop ---

/** A raw TCP connection from `localAddress`, recording what it receives and whether the server closed it. */
interface RawConnection {
  readonly sock: net.Socket
  readonly received: () => string
  readonly closed: () => boolean
}

const rawConnect = (port: number, localAddress: string): Effect.Effect<RawConnection> =>
  Effect.callback<RawConnection>((resume) => {
    const chunks: Array<Buffer> = []
    let closed = false
    const sock = net.createConnection({ host: "127.0.0.1", port, localAddress })
    sock.on("data", (chunk) => chunks.push(chunk))
    sock.on("error", () => {})
    sock.on("close", () => {
      closed = true
    })
    sock.once("connect", () => resume(Effect.succeed({ sock, received: () => Buffer.concat(chunks).toString("latin1"), closed: () => closed })))
  })

/** A client socket for our SshClient bound to `localAddress`. */
const boundSocket = (port: number, localAddress: string): Socket.Socket =>
  fromNetSocket(() => net.connect({ host: "127.0.0.1", port, localAddress, noDelay: true }))

/** Logs in from 127.0.0.1 (or `localAddress`) and runs `echo ok`. */
const login = (port: number, localAddress = "127.0.0.1") =>
  Effect.scoped(Effect.flatMap(
    SshClient.connect(clientOptions(port, { socket: boundSocket(port, localAddress) })),
    (ssh) => Effect.map(ssh.run("echo ok"), (r) => r.stdout)
  ))

const refusedEvents = (log: EventLog) => log.events.filter((e): e is Extract<SshServer.ServerEvent, { _tag: "Refused" }> => e._tag === "Refused")

const NOT_ALLOWED = "Not allowed at this time\r\n"

describe("SshServer.serve admission (loopback)", () => {
  it("one source holds at most PerSourceMaxStartups unauthenticated connections; a refused one gets sshd's notice and no version line; other sources are unaffected", async () => {
    const log = new EventLog()
    const r = await runScoped(Effect.gen(function*() {
      const scope = yield* Scope.make()
      const server = yield* Scope.provide(SshServer.serve(serverOptions({ onEvent: log.record })), scope)
      const port = server.address.port
      // the default limit, 3: three idle connections from 127.0.0.2 are served (each gets our version line)
      const held = yield* Effect.forEach([1, 2, 3], () => rawConnect(port, "127.0.0.2"))
      yield* waitUntil(() => held.every((c) => c.received().startsWith("SSH-2.0-")), "three version lines")
      // seven more from that source: refused at once
      const refused = yield* Effect.forEach([1, 2, 3, 4, 5, 6, 7], () => rawConnect(port, "127.0.0.2"))
      yield* waitUntil(() => refused.every((c) => c.closed()), "the refused connections closed")
      // another source, and a login from 127.0.0.1, go through
      const other = yield* rawConnect(port, "127.0.0.3")
      yield* waitUntil(() => other.received().startsWith("SSH-2.0-"), "the other source's version line")
      const stdout = yield* login(port)
      yield* waitUntil(() => server.connectionCount() === 4, "the login's connection closed")
      const counts = { connections: server.connectionCount(), unauthenticated: server.unauthenticatedCount() }
      // a place given back is taken again
      held[0]!.sock.destroy()
      yield* waitUntil(() => server.unauthenticatedCount() === 3, "the closed connection's place back")
      const again = yield* rawConnect(port, "127.0.0.2")
      yield* waitUntil(() => again.received().startsWith("SSH-2.0-"), "a version line for the source again")
      const eventsBeforeShutdown = refusedEvents(log).length
      yield* Scope.close(scope, Exit.void)
      for (const c of [...held, other, again]) c.sock.destroy()
      return { refused: refused.map((c) => c.received()), stdout, counts, eventsBeforeShutdown }
    }).pipe(Effect.timeout("20 seconds")))
    expect(r.refused).toEqual(new Array(7).fill(NOT_ALLOWED))
    expect(r.stdout).toBe("ok\n")
    expect(r.counts).toEqual({ connections: 4, unauthenticated: 4 })
    // one Refused event at once, the other six counted in the one the shutdown reports
    expect(r.eventsBeforeShutdown).toBe(1)
    const events = refusedEvents(log)
    expect(events.map((e) => ({ address: e.remoteAddress, reason: e.reason, suppressed: e.suppressed }))).toEqual([
      { address: "127.0.0.2", reason: "PerSourceMaxStartups", suppressed: 0 },
      { address: "127.0.0.2", reason: "PerSourceMaxStartups", suppressed: 5 }
    ])
    expect(events[0]!.detail).toBe("3 unauthenticated connections from 127.0.0.2/32 (PerSourceMaxStartups 3)")
    // refused connections are not connections: no Connected/Closed for them
    expect(log.connected.length).toBe(6)
  })

  it("MaxStartups counts unauthenticated connections only: authenticated clients stay and make no one wait", async () => {
    const r = await runScoped(Effect.gen(function*() {
      const server = yield* SshServer.serve(serverOptions({ maxStartups: 2, perSourceMaxStartups: "none" }))
      const port = server.address.port
      // five logged-in clients from 127.0.0.1, open at once
      const clients = yield* Effect.forEach([1, 2, 3, 4, 5], () => SshClient.connect(clientOptions(port)))
      const stillUp = yield* Effect.forEach(clients, (ssh) => Effect.map(ssh.run("echo up"), (o) => o.stdout))
      // two idle handshakes reach the hard limit of 2: the next connection is refused
      const idle = yield* Effect.forEach(["127.0.0.2", "127.0.0.3"], (a) => rawConnect(port, a))
      yield* waitUntil(() => server.unauthenticatedCount() === 2, "two unauthenticated")
      const refused = yield* rawConnect(port, "127.0.0.4")
      yield* waitUntil(() => refused.closed(), "the refused connection closed")
      const loginRefused = yield* Effect.flip(login(port))
      for (const c of idle) c.sock.destroy()
      yield* waitUntil(() => server.unauthenticatedCount() === 0, "the idle ones gone")
      const afterwards = yield* login(port)
      yield* waitUntil(() => server.connectionCount() === 5, "the login's connection closed")
      return { stillUp, refused: refused.received(), loginRefused: loginRefused.reason._tag, afterwards, connections: server.connectionCount() }
    }).pipe(Effect.timeout("20 seconds")))
    expect(r.stillUp).toEqual(new Array(5).fill("up\n"))
    expect(r.refused).toBe(NOT_ALLOWED)
    expect(r.loginRefused).toBe("ConnectionClosed")
    expect(r.afterwards).toBe("ok\n")
    expect(r.connections).toBe(5)
  })

  it("failed logins earn their source a penalty: refused for a while, other sources and exempt addresses unaffected", async () => {
    const log = new EventLog()
    const r = await runScoped(Effect.gen(function*() {
      const server = yield* SshServer.serve(serverOptions({
        onEvent: log.record,
        perSourcePenaltyExemptList: "127.0.0.9"
      }))
      const port = server.address.port
      const failLogin = (localAddress: string) =>
        Effect.flip(Effect.scoped(SshClient.connect(clientOptions(port, {
          socket: boundSocket(port, localAddress),
          auth: [Auth.keyboardInteractive(() => Effect.succeed(["wrong"]))]
        }))))
      // authfail is 5 s and min 15 s: the fourth failed connection activates the penalty
      for (let i = 0; i < 4; i++) yield* failLogin("127.0.0.2")
      yield* waitUntil(() => log.events.some((e) => e._tag === "PenaltyActivated"), "the penalty activated")
      const penalised = yield* rawConnect(port, "127.0.0.2")
      yield* waitUntil(() => penalised.closed(), "the penalised source's connection closed")
      for (let i = 0; i < 6; i++) yield* failLogin("127.0.0.9")
      const exempt = yield* login(port, "127.0.0.9")
      const neighbour = yield* login(port, "127.0.0.3")
      const local = yield* login(port)
      return { penalised: penalised.received(), exempt, neighbour, local }
    }).pipe(Effect.timeout("30 seconds")))
    expect(r.penalised).toBe(NOT_ALLOWED)
    expect([r.exempt, r.neighbour, r.local]).toEqual(["ok\n", "ok\n", "ok\n"])
    const activated = log.events.filter((e) => e._tag === "PenaltyActivated")
    expect(activated.map((e) => e._tag === "PenaltyActivated" && [e.addressBlock, e.penalty])).toEqual([["127.0.0.2/32", "authfail"]])
    const refused = refusedEvents(log)
    expect(refused.map((e) => [e.remoteAddress, e.reason])).toEqual([["127.0.0.2", "PerSourcePenalties"]])
    expect(refused[0]!.detail).toMatch(/^penalty: failed authentication for 127\.0\.0\.2\/32 \(\d+\.\d s left\)$/)
  })

  it("a connection still unauthenticated at the login grace time earns grace-exceeded", async () => {
    const log = new EventLog()
    const r = await runScoped(Effect.gen(function*() {
      const server = yield* SshServer.serve(serverOptions({
        onEvent: log.record,
        auth: { ...serverOptions().auth, loginGraceTime: "200 millis" },
        perSourcePenalties: { graceExceeded: "20 seconds" }
      }))
      const port = server.address.port
      const silent = yield* rawConnect(port, "127.0.0.5")
      yield* waitUntil(() => silent.closed(), "the grace time to end the silent connection")
      const next = yield* rawConnect(port, "127.0.0.5")
      yield* waitUntil(() => next.closed(), "the next connection refused")
      return { next: next.received(), closed: log.closed.map((e) => e.error?.reason._tag) }
    }).pipe(Effect.timeout("10 seconds")))
    expect(r.closed).toEqual(["Timeout"])
    expect(r.next).toBe(NOT_ALLOWED)
    expect(log.events.find((e) => e._tag === "PenaltyActivated")).toMatchObject({ addressBlock: "127.0.0.5/32", penalty: "grace-exceeded" })
  })

  it("loginGraceTime 0 is no limit (as sshd's LoginGraceTime 0)", async () => {
    const r = await runScoped(Effect.gen(function*() {
      const server = yield* SshServer.serve(serverOptions({ auth: { ...serverOptions().auth, loginGraceTime: 0 } }))
      const silent = yield* rawConnect(server.address.port, "127.0.0.6")
      yield* Effect.sleep(600)
      const open = !silent.closed() && server.unauthenticatedCount() === 1
      silent.sock.destroy()
      return { open, version: silent.received() }
    }).pipe(Effect.timeout("10 seconds")))
    expect(r.version).toMatch(/^SSH-2\.0-/)
    expect(r.open).toBe(true)
  })

  it("bad settings fail serve with a ConfigParseError naming the setting", async () => {
    const errors = await Promise.all([
      { maxStartups: "60:30:10" },
      { perSourceNetBlockSize: "33" },
      { perSourcePenalties: "authfail:soon" },
      { perSourcePenaltyExemptList: "10.0.0.0/40" },
      { maxConnections: 0 }
    ].map((extra) => runFailure(SshServer.serve(serverOptions(extra)))))
    expect(errors.map((e) => e.reason._tag)).toEqual(new Array(5).fill("ConfigParseError"))
    expect(errors.map((e) => e.message)).toEqual([
      expect.stringContaining("MaxStartups"),
      expect.stringContaining("PerSourceNetBlockSize"),
      expect.stringContaining("time"),
      expect.stringContaining("PerSourcePenaltyExemptList"),
      expect.stringContaining("maxConnections")
    ])
  })
})
