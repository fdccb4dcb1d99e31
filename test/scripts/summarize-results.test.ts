import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, describe, expect, it } from "vitest"

const script = fileURLToPath(new URL("../../scripts/summarize-results.mjs", import.meta.url))
const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-ssh-summary-"))

afterAll(() => Fs.rmSync(dir, { recursive: true, force: true }))

const summarize = (report: unknown): { readonly stdout: string; readonly status: number | null } => {
  const file = Path.join(dir, `${Math.random().toString(36).slice(2)}.json`)
  if (report !== undefined) Fs.writeFileSync(file, typeof report === "string" ? report : JSON.stringify(report))
  const result = ChildProcess.spawnSync(process.execPath, [script, file], { encoding: "utf8" })
  return { stdout: result.stdout, status: result.status }
}

const file = (status: string, assertions: ReadonlyArray<string>) => ({
  name: "/x.test.ts",
  status,
  message: "",
  assertionResults: assertions.map((assertionStatus, i) => ({ title: `t${i}`, status: assertionStatus }))
})

describe("scripts/summarize-results.mjs", () => {
  it("counts passed and failed tests, not skipped or todo", () => {
    const report = {
      success: false,
      testResults: [file("failed", ["passed", "failed", "skipped", "todo", "pending"]), file("passed", ["passed", "passed"])]
    }
    expect(summarize(report)).toEqual({ stdout: "tests: 3 passed, 1 failed\n", status: 1 })
  })

  it("exits 0 when everything passed", () => {
    const report = { success: true, testResults: [file("passed", ["passed", "skipped"])] }
    expect(summarize(report)).toEqual({ stdout: "tests: 1 passed, 0 failed\n", status: 0 })
  })

  it("counts a test file that failed to load as a failure", () => {
    const report = { success: false, testResults: [file("failed", []), file("passed", ["passed"])] }
    expect(summarize(report)).toEqual({ stdout: "tests: 1 passed, 1 failed\n", status: 1 })
  })

  it("counts an unsuccessful run with no failed test (unhandled error) as one failure", () => {
    const report = { success: false, testResults: [file("passed", ["passed", "passed"])] }
    expect(summarize(report)).toEqual({ stdout: "tests: 2 passed, 1 failed\n", status: 1 })
  })

  it("reports a missing, malformed or foreign report as one failure", () => {
    for (const report of [undefined, "{not json", "[]", JSON.stringify({ numPassedTests: 9 })]) {
      expect(summarize(report)).toEqual({ stdout: "tests: 0 passed, 1 failed\n", status: 1 })
    }
  })
})
