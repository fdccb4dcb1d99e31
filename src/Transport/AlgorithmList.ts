/**
 * OpenSSH's algorithm-list syntax for `Ciphers`, `KexAlgorithms`, `MACs` and
 * `HostKeyAlgorithms` (ssh_config(5)): a plain comma list replaces the
 * defaults, `+list` appends to them, `-list` removes from them (wildcards
 * `*` and `?` allowed), `^list` puts them first. Unknown names are a typed
 * error listing what is known, never silently dropped.
 *
 * @since 0.1.0
 */
import { UnknownAlgorithm } from "../SshError.ts"

/**
 * Resolves a list specification against the defaults.
 *
 * @example
 * ```ts
 * resolve("cipher", "+aes128-ctr", ["aes256-gcm@openssh.com"], allCiphers)
 * // ["aes256-gcm@openssh.com", "aes128-ctr"]
 * resolve("cipher", "-*-ctr", defaults, allCiphers)
 * ```
 */
export const resolve = (
  kind: string,
  spec: string | ReadonlyArray<string>,
  defaults: ReadonlyArray<string>,
  supported: ReadonlyArray<string>
): Array<string> => {
  if (typeof spec !== "string") return checkAll(kind, spec, supported)
  const trimmed = spec.trim()
  const head = trimmed[0]
  if (head === "+") {
    const extra = checkAll(kind, split(trimmed.slice(1)), supported)
    return dedupe([...defaults, ...extra])
  }
  if (head === "^") {
    const first = checkAll(kind, split(trimmed.slice(1)), supported)
    return dedupe([...first, ...defaults])
  }
  if (head === "-") {
    const patterns = split(trimmed.slice(1))
    return defaults.filter((name) => !patterns.some((p) => matchesPattern(p, name)))
  }
  return checkAll(kind, split(trimmed), supported)
}

const split = (s: string): Array<string> =>
  s.split(",").map((x) => x.trim()).filter((x) => x.length > 0)

const dedupe = (names: ReadonlyArray<string>): Array<string> => [...new Set(names)]

const checkAll = (kind: string, names: ReadonlyArray<string>, supported: ReadonlyArray<string>): Array<string> => {
  const out: Array<string> = []
  for (const name of names) {
    if (/[*?]/.test(name)) {
      out.push(...supported.filter((s) => matchesPattern(name, s)))
      continue
    }
    if (!supported.includes(name)) throw new UnknownAlgorithm({ kind, name, known: supported })
    out.push(name)
  }
  return dedupe(out)
}

/**
 * Glob match with `*` and `?`, as OpenSSH's match_pattern.
 *
 * @example
 * ```ts
 * matchesPattern("aes*-ctr", "aes128-ctr") // true
 * ```
 */
export const matchesPattern = (pattern: string, name: string): boolean => {
  const re = new RegExp(
    "^" + pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".") + "$"
  )
  return re.test(name)
}
