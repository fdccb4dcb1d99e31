/**
 * The pure parts of `npm run bench`: settings from the environment, medians, ratios, target verdicts, the table.
 */
import { describe, expect, it } from "vitest"
import { formatBytes, fromEnv, parseBytes } from "../../bench/config.ts"
import { formatTable, median, megabytesPerSecond, ratio, type Row, targetMet } from "../../bench/report.ts"

describe("bench config", () => {
  it("parses byte counts with binary suffixes", () => {
    expect(parseBytes("1073741824")).toBe(1073741824)
    expect(parseBytes("256M")).toBe(256 * 1024 * 1024)
    expect(parseBytes("1G")).toBe(1024 ** 3)
    expect(parseBytes("64KiB")).toBe(65536)
    for (const bad of ["", "0", "-1", "1T", "lots", "1.5.2M"]) expect(() => parseBytes(bad)).toThrow(/byte count/)
  })

  it("has the brief's defaults and reads overrides", () => {
    expect(fromEnv({})).toEqual({
      bytes: 1024 ** 3,
      runs: 3,
      connectRuns: 20,
      cipher: "aes128-gcm@openssh.com",
      mac: "hmac-sha2-256-etm@openssh.com",
      kex: "curve25519-sha256",
      hostKeyAlgorithm: "ssh-ed25519"
    })
    const config = fromEnv({ BENCH_BYTES: "8M", BENCH_RUNS: "5", BENCH_CIPHER: "aes256-ctr" })
    expect([config.bytes, config.runs, config.cipher]).toEqual([8 * 1024 * 1024, 5, "aes256-ctr"])
    expect(() => fromEnv({ BENCH_RUNS: "0" })).toThrow(/BENCH_RUNS/)
  })

  it("formats sizes", () => {
    expect([formatBytes(1024 ** 3), formatBytes(256 * 1024 ** 2), formatBytes(1536), formatBytes(10)]).toEqual(["1 GiB", "256 MiB", "1.5 KiB", "10 B"])
  })
})

describe("bench report", () => {
  const throughput: Row = { metric: "MB/s", better: "higher", values: { ours: 390, ssh2: 300, OpenSSH: 900 }, target: { against: "ssh2", ratio: 1.3 } }
  const latency: Row = { metric: "ms", better: "lower", values: { ours: 30, ssh2: 50 }, target: { against: "ssh2", ratio: 0.5 } }

  it("takes medians", () => {
    expect(median([3, 1, 2])).toBe(2)
    expect(median([4, 1, 3, 2])).toBe(2.5)
    expect(() => median([])).toThrow()
    expect(megabytesPerSecond(2_000_000, 0.5)).toBe(4)
  })

  it("computes ratios and judges targets in the right direction", () => {
    expect(ratio(throughput, "ours", "ssh2")).toBeCloseTo(1.3)
    expect(targetMet(throughput, "ours")).toBe(true)
    expect(targetMet({ ...throughput, values: { ours: 380, ssh2: 300 } }, "ours")).toBe(false)
    expect(ratio(latency, "ours", "OpenSSH")).toBeUndefined()
    expect(targetMet(latency, "ours")).toBe(false)
    expect(targetMet({ ...latency, values: { ours: 25, ssh2: 50 } }, "ours")).toBe(true)
    expect(targetMet({ ...latency, values: { ssh2: 50 } }, "ours")).toBeUndefined()
  })

  it("prints one line per metric with ratios and verdicts", () => {
    const lines = formatTable([throughput, latency], "ours", ["ours", "ssh2", "OpenSSH"]).split("\n")
    expect(lines).toHaveLength(4)
    expect(lines[0]).toMatch(/^metric\s+ours\s+ssh2\s+OpenSSH\s+ours\/ssh2\s+ours\/OpenSSH\s+target$/)
    expect(lines[2]).toMatch(/MB\/s \(higher is better\)\s+390\s+300\s+900\s+1\.30×\s+0\.43×\s+≥ 1\.3× ssh2: met$/)
    expect(lines[3]).toMatch(/ms \(lower is better\)\s+30\.0\s+50\.0\s+–\s+0\.60×\s+–\s+≤ 0\.5× ssh2: NOT met$/)
  })
})
