/**
 * Medians, ratios against the other implementations, and the side-by-side table `npm run bench` prints.
 */
import * as Os from "node:os"

/** A ratio the issue asks for: `subject / against` must be at least (higher is better) or at most `ratio`. */
export interface Target {
  readonly against: string
  readonly ratio: number
}

/** One metric: each implementation's median (absent = not measured), and whether bigger is better. */
export interface Row {
  readonly metric: string
  readonly better: "higher" | "lower"
  readonly values: Readonly<Record<string, number | undefined>>
  readonly target?: Target | undefined
}

/**
 * The median (mean of the middle two for an even count).
 *
 * @example
 * ```ts
 * median([3, 1, 2]) // 2
 * ```
 */
export const median = (samples: ReadonlyArray<number>): number => {
  if (samples.length === 0) throw new Error("median of no samples")
  const sorted = [...samples].sort((a, b) => a - b)
  const middle = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

/**
 * Throughput in MB/s (10^6 bytes per second).
 *
 * @example
 * ```ts
 * megabytesPerSecond(2_000_000, 0.5) // 4
 * ```
 */
export const megabytesPerSecond = (bytes: number, seconds: number): number => bytes / 1e6 / seconds

/**
 * `subject / against` when both were measured.
 *
 * @example
 * ```ts
 * ratio({ metric: "x", better: "higher", values: { a: 3, b: 2 } }, "a", "b") // 1.5
 * ```
 */
export const ratio = (row: Row, subject: string, against: string): number | undefined => {
  const a = row.values[subject]
  const b = row.values[against]
  return a === undefined || b === undefined || b === 0 ? undefined : a / b
}

/**
 * Whether `subject` meets the row's target; undefined when the row has none or a value is missing.
 *
 * @example
 * ```ts
 * targetMet({ metric: "ms", better: "lower", values: { a: 4, b: 10 }, target: { against: "b", ratio: 0.5 } }, "a") // true
 * ```
 */
export const targetMet = (row: Row, subject: string): boolean | undefined => {
  if (row.target === undefined) return undefined
  const actual = ratio(row, subject, row.target.against)
  if (actual === undefined) return undefined
  return row.better === "higher" ? actual >= row.target.ratio : actual <= row.target.ratio
}

const formatValue = (value: number | undefined): string =>
  value === undefined ? "–" : value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2)

const formatRatio = (value: number | undefined): string => value === undefined ? "–" : `${value.toFixed(2)}×`

const formatTarget = (row: Row, subject: string): string => {
  if (row.target === undefined) return ""
  const met = targetMet(row, subject)
  const wanted = `${row.better === "higher" ? "≥" : "≤"} ${row.target.ratio}× ${row.target.against}`
  return `${wanted}: ${met === undefined ? "not measured" : met ? "met" : "NOT met"}`
}

/**
 * The table: a column per implementation, then `subject/other` ratios for each other implementation, then the
 * target verdict.
 *
 * @example
 * ```ts
 * console.log(formatTable(rows, "effect-ssh", ["effect-ssh", "ssh2", "OpenSSH"]))
 * ```
 */
export const formatTable = (rows: ReadonlyArray<Row>, subject: string, names: ReadonlyArray<string>): string => {
  const others = names.filter((name) => name !== subject)
  const header = ["metric", ...names, ...others.map((other) => `${subject}/${other}`), "target"]
  const body = rows.map((row) => [
    `${row.metric} (${row.better} is better)`,
    ...names.map((name) => formatValue(row.values[name])),
    ...others.map((other) => formatRatio(ratio(row, subject, other))),
    formatTarget(row, subject)
  ])
  const widths = header.map((title, column) => Math.max(title.length, ...body.map((cells) => cells[column]!.length)))
  const line = (cells: ReadonlyArray<string>) =>
    cells.map((cell, column) => column === 0 || column === cells.length - 1 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))
      .join("  ")
      .trimEnd()
  return [line(header), line(widths.map((width) => "-".repeat(width))), ...body.map(line)].join("\n")
}

/**
 * The 1, 5 and 15 minute load averages and the CPU count: the machine may be shared, so say how busy it was.
 *
 * @example
 * ```ts
 * loadAverage() // "0.52 0.91 1.10 (2 CPUs)"
 * ```
 */
export const loadAverage = (): string =>
  `${Os.loadavg().map((load) => load.toFixed(2)).join(" ")} (${Os.availableParallelism()} CPUs)`
