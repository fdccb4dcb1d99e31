#!/usr/bin/env node
/**
 * Prints the one-line CI summary `tests: N passed, M failed` from vitest's JSON report
 * (`--reporter=json --outputFile.json=<file>`).
 *
 * N counts passed tests only (skipped and todo are neither). M counts failed tests, plus each test file that
 * failed without a failing test (it did not load), plus one when vitest still reports `success: false` with
 * nothing else failed (unhandled errors). A missing or unreadable report is `tests: 0 passed, 1 failed`.
 * Exits 1 when M > 0, else 0. Plain JavaScript so any Node can run it.
 *
 * @example
 * ```sh
 * node scripts/summarize-results.mjs .vitest-results.json   # tests: 412 passed, 0 failed
 * ```
 */
import { readFileSync } from "node:fs"
import { pathToFileURL } from "node:url"

/**
 * Counts passed and failed tests in a parsed vitest JSON report.
 *
 * @example
 * ```js
 * summarize({ success: true, testResults: [{ status: "passed", assertionResults: [{ status: "passed" }] }] })
 * // { passed: 1, failed: 0 }
 * ```
 * @param {unknown} report
 * @returns {{ passed: number, failed: number }}
 */
export const summarize = (report) => {
  if (typeof report !== "object" || report === null || !Array.isArray(report.testResults)) {
    return { passed: 0, failed: 1 }
  }
  let passed = 0
  let failed = 0
  for (const file of report.testResults) {
    const assertions = Array.isArray(file?.assertionResults) ? file.assertionResults : []
    const fileFailed = assertions.filter((assertion) => assertion?.status === "failed").length
    passed += assertions.filter((assertion) => assertion?.status === "passed").length
    failed += fileFailed
    if (file?.status === "failed" && fileFailed === 0) failed += 1
  }
  if (report.success === false && failed === 0) failed = 1
  return { passed, failed }
}

/**
 * Formats the summary line.
 *
 * @example
 * ```js
 * formatSummary({ passed: 3, failed: 1 }) // "tests: 3 passed, 1 failed"
 * ```
 * @param {{ passed: number, failed: number }} counts
 * @returns {string}
 */
export const formatSummary = ({ passed, failed }) => `tests: ${passed} passed, ${failed} failed`

/**
 * Reads and summarizes a report file; a missing or malformed file counts as one failure.
 *
 * @example
 * ```js
 * summarizeFile("/nonexistent.json") // { passed: 0, failed: 1 }
 * ```
 * @param {string | undefined} path
 * @returns {{ passed: number, failed: number }}
 */
export const summarizeFile = (path) => {
  if (path === undefined) return { passed: 0, failed: 1 }
  try {
    return summarize(JSON.parse(readFileSync(path, "utf8")))
  } catch {
    return { passed: 0, failed: 1 }
  }
}

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href

if (isMain) {
  const counts = summarizeFile(process.argv[2])
  console.log(formatSummary(counts))
  process.exitCode = counts.failed > 0 ? 1 : 0
}
