/**
 * The published form: `npm run build` compiles src/ to dist/ (relative
 * imports rewritten to .js), and the built CLI runs on plain JavaScript.
 */
import { expect, it } from "vitest"
import * as child from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"

it("builds to JavaScript and the built effect-ssh command runs", () => {
  // inside the checkout, so the built files resolve their dependencies from node_modules
  const out = fs.mkdtempSync(path.resolve(".build-test-"))
  try {
    child.execFileSync(path.resolve("node_modules/.bin/tsc"), ["-p", "tsconfig.build.json", "--outDir", out], { stdio: "pipe" })
    expect(fs.existsSync(path.join(out, "index.js"))).toBe(true)
    expect(fs.existsSync(path.join(out, "index.d.ts"))).toBe(true)
    // the package's bin: the compile-cache entry point in front of main
    const r = child.spawnSync(path.resolve("node_modules/.bin/node"), [path.join(out, "cli/bin.js"), "exec", "--bogus"], {
      encoding: "utf8"
    })
    expect(r.status).toBe(2)
    expect(r.stderr).toMatch(/unknown flag --bogus/)
    const help = child.spawnSync(path.resolve("node_modules/.bin/node"), [path.join(out, "cli/main.js"), "--help"], { encoding: "utf8" })
    expect(help.status).toBe(0)
    expect(help.stdout).toMatch(/exec/)
  } finally {
    fs.rmSync(out, { recursive: true, force: true })
  }
}, 120_000)
