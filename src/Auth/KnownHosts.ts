/**
 * OpenSSH `known_hosts` files: parsing (plain host patterns with `*`, `?`
 * and `!` negation, comma lists, `[host]:port`, hashed `|1|salt|hash` names,
 * `@cert-authority` and `@revoked` markers) and looking up the keys known for
 * a host, as sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT" describes.
 *
 * Parsing never throws: lines that cannot be used are returned as errors
 * with their line numbers, next to the entries that can.
 *
 * @example
 * ```ts
 * const { entries } = KnownHosts.parse(yield* Effect.promise(() => FsPromises.readFile(KnownHostsFile.defaultFile(), "utf8")))
 * const { keys, revoked } = KnownHosts.lookup(entries, "example.com", 22)
 * ```
 * @since 0.1.0
 */
import { hmac } from "@noble/hashes/hmac.js"
import { sha1 } from "@noble/hashes/legacy.js"
import * as Base64 from "../internal/base64.ts"
import { equalConstantTime, utf8 } from "../internal/bytes.ts"
import { firstField, type LineError, parseLines } from "../internal/lines.ts"
import { isSshErrorReason } from "../SshError.ts"
import * as PublicKey from "./PublicKey.ts"

/** A line's marker: a CA key for host certificates, or a key that must be refused. */
export type Marker = "cert-authority" | "revoked"

/** One element of a comma-separated host list; `negated` for `!pattern`. */
export interface HostPattern {
  readonly pattern: string
  readonly negated: boolean
}

/** Which hosts a line is for: a pattern list, or one hashed name. */
export type HostMatcher =
  | { readonly _tag: "Patterns"; readonly patterns: ReadonlyArray<HostPattern> }
  | { readonly _tag: "Hashed"; readonly salt: Uint8Array; readonly hash: Uint8Array }

/** A usable known_hosts line. */
export interface KnownHostsEntry {
  readonly marker?: Marker | undefined
  readonly hosts: HostMatcher
  readonly key: PublicKey.PublicKey
  /** 1-based line number in the parsed text. */
  readonly line: number
}

/** A line that could not be used (unknown marker, missing or unsupported key, bad hash). */
export type KnownHostsError = LineError

/** The keys known for one host. */
export interface LookupResult {
  /** Keys the host may present. */
  readonly keys: ReadonlyArray<PublicKey.PublicKey>
  /** Keys marked `@revoked` for the host: never accept these. */
  readonly revoked: ReadonlyArray<PublicKey.PublicKey>
  /** `@cert-authority` keys trusted to sign the host's certificates. */
  readonly authorities: ReadonlyArray<PublicKey.PublicKey>
}

const HASH_MAGIC = "|1|"
const SHA1_LENGTH = 20

/**
 * The name a host is recorded under: `host` on port 22, `[host]:port` otherwise.
 *
 * @example
 * ```ts
 * KnownHosts.hostPattern("example.com", 22)   // "example.com"
 * KnownHosts.hostPattern("example.com", 2222) // "[example.com]:2222"
 * ```
 */
export const hostPattern = (host: string, port = 22): string => (port === 22 ? host : `[${host}]:${port}`)

/**
 * OpenSSH's wildcard match: `*` is any run of characters, `?` any one.
 * Linear-space and polynomial-time (no regular expressions).
 *
 * @example
 * ```ts
 * KnownHosts.matchWildcard("*.example.com", "www.example.com") // true
 * KnownHosts.matchWildcard("192.0.2.?", "192.0.2.10")          // false
 * ```
 */
export const matchWildcard = (pattern: string, text: string): boolean => {
  let p = 0
  let t = 0
  let star = -1
  let resume = 0
  while (t < text.length) {
    const c = pattern[p]
    if (c === "*") {
      star = p++
      resume = t
    } else if (c !== undefined && (c === "?" || c === text[t])) {
      p++
      t++
    } else if (star >= 0) {
      p = star + 1
      t = ++resume
    } else {
      return false
    }
  }
  while (pattern[p] === "*") p++
  return p === pattern.length
}

/**
 * Hashes a host name as `HashKnownHosts` does: `|1|base64(salt)|base64(HMAC-SHA1(salt, name))`.
 * The salt is 20 random bytes unless given.
 *
 * @example
 * ```ts
 * KnownHosts.hashHostName("[example.com]:2222") // "|1|kR6B...=|3x9L...="
 * ```
 */
export const hashHostName = (name: string, salt: Uint8Array = crypto.getRandomValues(new Uint8Array(SHA1_LENGTH))): string =>
  `${HASH_MAGIC}${Base64.encode(salt)}|${Base64.encode(hmac(sha1, salt, utf8(name)))}`

/**
 * Whether a line's hosts include `host` on `port`. A matching negated
 * pattern excludes the host whatever else matches. Comparison ignores case.
 *
 * @example
 * ```ts
 * const { entries } = KnownHosts.parse("*.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFOG6kY7Rf4UtCFvPwKgo/BztXck2xC4a2WyA34XtIwZ\n")
 * KnownHosts.matchesHost(entries[0]!.hosts, "www.example.com", 22) // true
 * ```
 */
export const matchesHost = (hosts: HostMatcher, host: string, port = 22): boolean => {
  const name = hostPattern(host, port).toLowerCase()
  if (hosts._tag === "Hashed") return equalConstantTime(hmac(sha1, hosts.salt, utf8(name)), hosts.hash)
  let positive = false
  for (const { negated, pattern } of hosts.patterns) {
    if (!matchWildcard(pattern.toLowerCase(), name)) continue
    if (negated) return false
    positive = true
  }
  return positive
}

const parseHosts = (field: string): HostMatcher | string => {
  if (field.startsWith(HASH_MAGIC)) {
    const parts = field.slice(HASH_MAGIC.length).split("|")
    const salt = parts.length === 2 ? Base64.decode(parts[0]!) : undefined
    const hash = parts.length === 2 ? Base64.decode(parts[1]!) : undefined
    if (salt === undefined || hash === undefined || salt.length !== SHA1_LENGTH || hash.length !== SHA1_LENGTH) {
      return "malformed hashed host name"
    }
    return { _tag: "Hashed", salt, hash }
  }
  const patterns = field
    .split(",")
    .filter((p) => p.length > 0)
    .map((p): HostPattern => (p.startsWith("!") ? { pattern: p.slice(1), negated: true } : { pattern: p, negated: false }))
  return patterns.length === 0 ? "empty host list" : { _tag: "Patterns", patterns }
}

const parseMarker = (text: string): { readonly marker?: Marker; readonly rest: string } | string => {
  if (!text.startsWith("@")) return { rest: text }
  const [marker, rest] = firstField(text)
  if (marker === "@cert-authority") return { marker: "cert-authority", rest }
  if (marker === "@revoked") return { marker: "revoked", rest }
  return `unknown marker ${marker}`
}

const parseLine = (text: string, line: number): KnownHostsEntry | string => {
  const marked = parseMarker(text)
  if (typeof marked === "string") return marked
  const [hostsField, keyText] = firstField(marked.rest)
  const hosts = parseHosts(hostsField)
  if (typeof hosts === "string") return hosts
  if (keyText.length === 0) return "missing key"
  let key: PublicKey.PublicKey
  try {
    key = PublicKey.parseOpenSsh(keyText)
  } catch (u) {
    if (!isSshErrorReason(u)) throw u
    return u.message
  }
  return marked.marker === undefined ? { hosts, key, line } : { marker: marked.marker, hosts, key, line }
}

/**
 * Parses a known_hosts file. Comments, blank lines and unusable lines are
 * skipped; the latter are reported in `errors`.
 *
 * @example
 * ```ts
 * const { entries, errors } = KnownHosts.parse("example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFOG6kY7Rf4UtCFvPwKgo/BztXck2xC4a2WyA34XtIwZ\n")
 * entries[0]!.hosts // { _tag: "Patterns", patterns: [{ pattern: "example.com", negated: false }] }
 * ```
 */
export const parse = (
  text: string
): { readonly entries: Array<KnownHostsEntry>; readonly errors: Array<KnownHostsError> } => parseLines(text, parseLine)

/**
 * The keys recorded for `host` on `port`, split by marker.
 *
 * @example
 * ```ts
 * const { entries } = KnownHosts.parse(yield* Effect.promise(() => FsPromises.readFile(KnownHostsFile.defaultFile(), "utf8")))
 * const { keys, revoked } = KnownHosts.lookup(entries, "example.com", 22)
 * const known = keys.some((k) => PublicKey.equals(k, publicKey)) && !revoked.some((k) => PublicKey.equals(k, publicKey))
 * ```
 */
export const lookup = (entries: ReadonlyArray<KnownHostsEntry>, host: string, port = 22): LookupResult => {
  const keys: Array<PublicKey.PublicKey> = []
  const revoked: Array<PublicKey.PublicKey> = []
  const authorities: Array<PublicKey.PublicKey> = []
  for (const entry of entries) {
    if (!matchesHost(entry.hosts, host, port)) continue
    const bucket = entry.marker === "revoked" ? revoked : entry.marker === "cert-authority" ? authorities : keys
    bucket.push(entry.key)
  }
  return { keys, revoked, authorities }
}

/**
 * A known_hosts line for a host's key, with the host name hashed when asked
 * (random salt unless one is given). No trailing newline.
 *
 * @example
 * ```ts
 * KnownHosts.formatLine("example.com", 2222, publicKey) // "[example.com]:2222 ssh-ed25519 AAAAC3Nza..."
 * KnownHosts.formatLine("example.com", 22, publicKey, { hashed: true }) // "|1|...|... ssh-ed25519 AAAAC3Nza..."
 * ```
 */
export const formatLine = (
  host: string,
  port: number,
  key: PublicKey.PublicKey,
  options?: {
    readonly hashed?: boolean | undefined
    readonly salt?: Uint8Array | undefined
    readonly marker?: Marker | undefined
  }
): string => {
  const name = hostPattern(host, port).toLowerCase()
  const hosts = options?.hashed === true ? hashHostName(name, options.salt) : name
  const marker = options?.marker === undefined ? "" : `@${options.marker} `
  return `${marker}${hosts} ${PublicKey.toOpenSsh(key, { comment: "" })}`
}
