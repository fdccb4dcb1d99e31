/**
 * known_hosts files on disk: reading, appending a host's key, replacing or
 * removing a host's keys (`ssh-keygen -R`), with plain or hashed
 * (`HashKnownHosts`) names.
 *
 * Appends are one `O_APPEND` write, so concurrent connections adding hosts
 * do not lose each other's lines; rewrites go through a temporary file in the
 * same directory and a rename, so a reader never sees half a file. A missing
 * directory is created with mode 0700 (like `~/.ssh`) and a new file with
 * 0600; a rewritten file keeps its mode. Lines we do not touch — comments,
 * markers, other hosts, lines we cannot parse — are kept byte for byte.
 *
 * @example
 * ```ts
 * yield* KnownHostsFile.addHost("~/.ssh/known_hosts", "example.com", 22, publicKey, { hashed: true })
 * const { entries } = yield* KnownHostsFile.read("~/.ssh/known_hosts")
 * ```
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as FileSystem from "effect/FileSystem"
import type * as PlatformError from "effect/PlatformError"
import * as os from "node:os"
import * as path from "node:path"
import * as SshError from "../SshError.ts"
import { firstField } from "../internal/lines.ts"
import * as RunMemo from "../internal/runMemo.ts"
import * as KnownHosts from "./KnownHosts.ts"
import type * as PublicKey from "./PublicKey.ts"

/** How new lines are written. */
export interface WriteOptions {
  /** Hash the host name (`|1|salt|hash`), as OpenSSH's `HashKnownHosts yes`. */
  readonly hashed?: boolean | undefined
}

/** What `read` returns: the usable entries and the lines that could not be used. */
export type Contents = ReturnType<typeof KnownHosts.parse>

/**
 * The default known_hosts file, `~/.ssh/known_hosts`.
 *
 * @example
 * ```ts
 * KnownHostsFile.defaultFile() // "/home/me/.ssh/known_hosts"
 * ```
 */
export const defaultFile = (): string => path.join(os.homedir(), ".ssh", "known_hosts")

/**
 * Expands a leading `~/` to the home directory.
 *
 * @example
 * ```ts
 * KnownHostsFile.expandHome("~/.ssh/known_hosts") // "/home/me/.ssh/known_hosts"
 * ```
 */
export const expandHome = (file: string): string =>
  file === "~" ? os.homedir() : file.startsWith("~/") ? path.join(os.homedir(), file.slice(2)) : file

const ioError = (file: string, action: string) => (error: PlatformError.PlatformError) =>
  SshError.make(new SshError.ConfigParseError({ message: `cannot ${action} ${file}: ${error.message}` }))

const isNotFound = (error: PlatformError.PlatformError): boolean =>
  error.reason._tag === "NotFound"

/**
 * The text of a known_hosts file; "" when it does not exist.
 *
 * @example
 * ```ts
 * const text = yield* KnownHostsFile.readText("~/.ssh/known_hosts")
 * ```
 */
export const readText = (file: string): Effect.Effect<string, SshError.SshError, FileSystem.FileSystem> =>
  Effect.flatMap(FileSystem.FileSystem, (fs) =>
    fs.readFileString(expandHome(file)).pipe(
      Effect.catch((error) => isNotFound(error) ? Effect.succeed("") : Effect.fail(ioError(file, "read")(error)))
    ))

/**
 * Reads and parses a known_hosts file (a missing file has no entries).
 *
 * @example
 * ```ts
 * const { entries, errors } = yield* KnownHostsFile.read("~/.ssh/known_hosts")
 * ```
 */
export const read = (file: string): Effect.Effect<Contents, SshError.SshError, FileSystem.FileSystem> =>
  RunMemo.memoized(`known_hosts:${expandHome(file)}`, Effect.map(readText(file), KnownHosts.parse))

/**
 * The entries of several files, in order (OpenSSH's `UserKnownHostsFile` list).
 *
 * @example
 * ```ts
 * const entries = yield* KnownHostsFile.readAll(["~/.ssh/known_hosts", "/etc/ssh/ssh_known_hosts"])
 * ```
 */
export const readAll = (
  files: ReadonlyArray<string>
): Effect.Effect<Array<KnownHosts.KnownHostsEntry>, SshError.SshError, FileSystem.FileSystem> =>
  Effect.map(Effect.forEach(files, read), (contents) => contents.flatMap((c) => c.entries))

const ensureDirectory = (fs: FileSystem.FileSystem, file: string) =>
  fs.makeDirectory(path.dirname(file), { recursive: true, mode: 0o700 }).pipe(
    Effect.mapError(ioError(path.dirname(file), "create directory"))
  )

/** The text to append after `existing` for a new host line (a line break first when `existing` lacks its last one). */
const lineAfter = (existing: string, host: string, port: number, key: PublicKey.PublicKey, options?: WriteOptions) => {
  const separator = existing.length > 0 && !existing.endsWith("\n") ? "\n" : ""
  return `${separator}${KnownHosts.formatLine(host, port, key, { hashed: options?.hashed === true })}\n`
}

/**
 * Appends a line for `host`/`port` and `key` (plain or hashed name), creating
 * the directory (0700) and the file (0600) when missing.
 *
 * @example
 * ```ts
 * yield* KnownHostsFile.addHost("~/.ssh/known_hosts", "example.com", 2222, publicKey)         // "[example.com]:2222 ssh-ed25519 AAAA..."
 * yield* KnownHostsFile.addHost("~/.ssh/known_hosts", "example.com", 22, publicKey, { hashed: true })
 * ```
 */
export const addHost = (
  file: string,
  host: string,
  port: number,
  key: PublicKey.PublicKey,
  options?: WriteOptions
): Effect.Effect<void, SshError.SshError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const target = expandHome(file)
    yield* ensureDirectory(fs, target)
    const existing = yield* readText(target)
    yield* fs.writeFileString(target, lineAfter(existing, host, port, key, options), { flag: "a", mode: 0o600 }).pipe(
      Effect.mapError(ioError(file, "append to")),
      Effect.ensuring(RunMemo.invalidate(`known_hosts:${target}`))
    )
  })

/**
 * The line without `host`'s own names when it also names other hosts
 * literally (`a.example,b.example key` → `b.example key`); `undefined` when
 * the whole line goes (it names only this host, or matches it by a wildcard,
 * which `ssh-keygen -R` removes too).
 */
const strippedLine = (line: string, hosts: KnownHosts.HostMatcher, host: string, port: number): string | undefined => {
  if (hosts._tag === "Hashed") return undefined
  const name = KnownHosts.hostPattern(host, port).toLowerCase()
  const others = hosts.patterns.filter((p) => p.negated || p.pattern.toLowerCase() !== name)
  const remaining: KnownHosts.HostMatcher = { _tag: "Patterns", patterns: others }
  if (!others.some((p) => !p.negated) || KnownHosts.matchesHost(remaining, host, port)) return undefined
  const [, rest] = firstField(line.trimStart())
  return `${others.map((p) => (p.negated ? `!${p.pattern}` : p.pattern)).join(",")} ${rest}`
}

/**
 * The text without `host`/`port`'s records (plain or hashed names, not
 * `@cert-authority`/`@revoked` lines); with `keyType`, only records of that
 * key type. A line that also names other hosts literally keeps them; other
 * lines are kept verbatim. Pure.
 *
 * @example
 * ```ts
 * KnownHostsFile.withoutHost("a.example,b.example ssh-ed25519 AAAA...\nc.example ssh-ed25519 AAAA...\n", "a.example", 22)
 * // "b.example ssh-ed25519 AAAA...\nc.example ssh-ed25519 AAAA...\n"
 * ```
 */
export const withoutHost = (text: string, host: string, port: number, keyType?: string): string => {
  const lines = text.split(/(?<=\n)/)
  let changed = false
  for (const entry of KnownHosts.parse(text).entries) {
    if (entry.marker !== undefined || (keyType !== undefined && entry.key.type !== keyType)) continue
    if (!KnownHosts.matchesHost(entry.hosts, host, port)) continue
    const original = lines[entry.line - 1]!
    const ending = /\r?\n$/.exec(original)?.[0] ?? ""
    const stripped = strippedLine(original.slice(0, original.length - ending.length), entry.hosts, host, port)
    lines[entry.line - 1] = stripped === undefined ? "" : `${stripped}${ending}`
    changed = true
  }
  return changed ? lines.join("") : text
}

const rewrite = (file: string, update: (text: string) => string) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const target = expandHome(file)
    yield* ensureDirectory(fs, target)
    const before = yield* readText(target)
    const after = update(before)
    if (after === before) return
    const mode = yield* fs.stat(target).pipe(
      Effect.map((info) => info.mode & 0o7777),
      Effect.orElseSucceed(() => 0o600)
    )
    const temp = `${target}.${process.pid}.${Date.now().toString(36)}.tmp`
    yield* fs.writeFileString(temp, after, { mode }).pipe(
      Effect.andThen(fs.chmod(temp, mode)),
      Effect.andThen(fs.rename(temp, target)),
      Effect.mapError(ioError(file, "rewrite")),
      Effect.onError(() => Effect.ignore(fs.remove(temp))),
      Effect.ensuring(RunMemo.invalidate(`known_hosts:${target}`))
    )
  })

/**
 * Removes `host`/`port`'s records, as `ssh-keygen -R` does (markers kept),
 * except that a line also naming other hosts literally keeps them.
 *
 * @example
 * ```ts
 * yield* KnownHostsFile.removeHost("~/.ssh/known_hosts", "example.com", 22)
 * ```
 */
export const removeHost = (
  file: string,
  host: string,
  port: number
): Effect.Effect<void, SshError.SshError, FileSystem.FileSystem> => rewrite(file, (text) => withoutHost(text, host, port))

/**
 * Records `key` as the host's key of its type: lines with another key of
 * that type for the host are removed and the new line appended, in one
 * atomic rewrite (for a host whose key legitimately changed).
 *
 * @example
 * ```ts
 * yield* KnownHostsFile.replaceHost("~/.ssh/known_hosts", "example.com", 22, publicKey, { hashed: true })
 * ```
 */
export const replaceHost = (
  file: string,
  host: string,
  port: number,
  key: PublicKey.PublicKey,
  options?: WriteOptions
): Effect.Effect<void, SshError.SshError, FileSystem.FileSystem> =>
  rewrite(file, (text) => {
    const kept = withoutHost(text, host, port, key.type)
    return kept + lineAfter(kept, host, port, key, options)
  })
