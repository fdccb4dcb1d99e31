/**
 * Paths and loaders for the shared spec fixtures used by the Auth tests.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"

const testdata = fileURLToPath(new URL("../../../shared/specs/testdata/", import.meta.url))

/** Absolute path of a file under specs/testdata. */
export const fixturePath = (relative: string): string => testdata + relative

/** A fixture's text. */
export const readText = (relative: string): string => readFileSync(fixturePath(relative), "utf8")

/** Whether a fixture exists. */
export const exists = (relative: string): boolean => existsSync(fixturePath(relative))

/** The file names in a fixture directory. */
export const list = (directory: string): Array<string> => readdirSync(fixturePath(directory)).sort()

/** ssh2's keyParser `.result` JSON. */
export interface Ssh2Result {
  readonly type: string
  readonly comment: string
  readonly publicSSH: string
}

/** Reads an ssh2 keyParser `.result` file. */
export const ssh2Result = (name: string): Ssh2Result =>
  JSON.parse(readText(`ssh2/keyParser/${name}.result`)) as Ssh2Result

/** Base64 (test-side, via Buffer, independent of the code under test). */
export const base64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString("base64")

/** Catches what a function throws (undefined when it returns). */
export const thrown = (f: () => unknown): unknown => {
  try {
    f()
    return undefined
  } catch (u) {
    return u
  }
}

/** The `_tag` of what a function throws, or "returned". */
export const tagOf = (f: () => unknown): string => {
  const u = thrown(f)
  if (u === undefined) return "returned"
  return typeof u === "object" && u !== null && "_tag" in u ? String((u as { _tag: unknown })._tag) : `untagged: ${String(u)}`
}
