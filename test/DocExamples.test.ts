/**
 * The doc-comment examples of the client, server, SFTP, pool, fleet and
 * error modules type-check (scripts/check-doc-examples.ts), and the checker catches
 * an example that does not.
 */
import * as child from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { expect, it } from "vitest"
import { examplesOf } from "../scripts/check-doc-examples.ts"

const node = path.resolve("node_modules/.bin/node")
const script = path.resolve("scripts/check-doc-examples.ts")

it("takes the ```ts blocks of the header and of exported declarations, not of private helpers", () => {
  const text = [
    "/**", " * Header.", " * ```ts", " * header()", " * ```", " */",
    "/**", " * ```ts", " * exported()", " * ```", " */", "export const exported = 1",
    "/**", " * ```ts", " * helper()", " * ```", " */", "const helper = 2"
  ].join("\n")
  expect(examplesOf("m.ts", text).map((e) => e.code)).toEqual(["header()", "exported()"])
})

it("the examples of the client, server, SFTP, pool and fleet modules compile", () => {
  const r = child.spawnSync(node, [script], { encoding: "utf8", timeout: 170_000 })
  expect(r.stdout).not.toMatch(/FAILED/)
  expect(r.status).toBe(0)
  for (const module of ["src/Client.ts", "src/Server.ts", "src/Sftp/SftpClient.ts", "src/Pool.ts", "src/Fleet.ts", "src/SshError.ts"]) {
    expect(r.stdout).toMatch(new RegExp(`checked ${module.replace(/[./]/g, "\\$&")}: [1-9]\\d* example\\(s\\)`))
  }
  const summary = /(\d+) example\(s\) in (\d+) module\(s\): (\d+) compile, 0 fail/.exec(r.stdout)
  expect(summary).not.toBeNull()
  expect(Number(summary![1])).toBeGreaterThanOrEqual(45)
}, 180_000)

it("an example that does not compile fails the check, naming its line", () => {
  const dir = fs.mkdtempSync(path.resolve(".doc-examples-fixture-"))
  try {
    const file = path.join(dir, "Broken.ts")
    fs.writeFileSync(file, ["/**", " * @example", " * ```ts", " * const n: number = SshClient.connect", " * ```", " */", "export const broken = 1", ""].join("\n"))
    const r = child.spawnSync(node, [script, file], { encoding: "utf8", timeout: 170_000 })
    expect(r.status).toBe(1)
    expect(r.stdout).toMatch(/FAILED .*Broken\.ts:4\n {2}example line 1: error TS2322/)
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}, 180_000)
