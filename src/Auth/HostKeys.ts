/**
 * Host-key policies: how a client decides whether to trust the key a server
 * presents. There is no accept-anything default: every connection names a
 * policy. `knownHosts()` is strict (unknown host → rejected, changed key →
 * `HostKeyChanged` showing both fingerprints); `fixed`, `fingerprint` and
 * `callback` cover pinned keys and custom decisions.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as FileSystem from "effect/FileSystem"
import * as SshError from "../SshError.ts"
import * as PublicKey from "./PublicKey.ts"
import * as KnownHosts from "./KnownHosts.ts"
import * as os from "node:os"
import * as path from "node:path"

/** What a policy is told about the server. */
export interface HostKeyCheck {
  readonly host: string
  readonly port: number
  readonly key: PublicKey.PublicKey
  /** The negotiated host key algorithm (e.g. rsa-sha2-512 for an ssh-rsa key). */
  readonly algorithm: string
}

/**
 * A host-key policy: succeeds to trust the key, fails with a typed reason to refuse it.
 *
 * @example
 * ```ts
 * const policy: HostKeyPolicy = HostKeys.fingerprint("SHA256:abc...")
 * ```
 */
export interface HostKeyPolicy {
  readonly _tag: "HostKeyPolicy"
  readonly verify: (check: HostKeyCheck) => Effect.Effect<void, SshError.SshError, FileSystem.FileSystem>
  /** Host key algorithms to prefer, most preferred first (those of known keys). */
  readonly preferredAlgorithms?: ((host: string, port: number) => Effect.Effect<ReadonlyArray<string>, never, FileSystem.FileSystem>) | undefined
}

const make = (
  verify: HostKeyPolicy["verify"],
  preferredAlgorithms?: HostKeyPolicy["preferredAlgorithms"]
): HostKeyPolicy => ({ _tag: "HostKeyPolicy", verify, preferredAlgorithms })

const rejected = (check: HostKeyCheck, message: string) =>
  Effect.fail(SshError.make(
    new SshError.HostKeyRejected({
      host: KnownHosts.hostPattern(check.host, check.port),
      keyType: check.key.type,
      fingerprint: PublicKey.fingerprint(check.key),
      message
    })
  ))

/**
 * Trusts exactly the given key(s) (OpenSSH one-line format or parsed keys).
 *
 * @example
 * ```ts
 * HostKeys.fixed("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA...")
 * ```
 */
export const fixed = (...keys: ReadonlyArray<string | PublicKey.PublicKey>): HostKeyPolicy => {
  const parsed = keys.map((k) => typeof k === "string" ? Effect.try({ try: () => PublicKey.parseOpenSsh(k), catch: SshError.fromUnknown }) : Effect.succeed(k))
  return make((check) =>
    Effect.flatMap(Effect.all(parsed), (trusted) =>
      trusted.some((k) => PublicKey.equals(k, check.key))
        ? Effect.void
        : trusted.some((k) => k.type === check.key.type)
        ? Effect.fail(SshError.make(
          new SshError.HostKeyChanged({
            host: KnownHosts.hostPattern(check.host, check.port),
            expected: trusted.map((k) => PublicKey.fingerprint(k)),
            received: PublicKey.fingerprint(check.key)
          })
        ))
        : rejected(check, `the server's ${check.key.type} key ${PublicKey.fingerprint(check.key)} is not the pinned key`))
  )
}

/**
 * Trusts a key by its fingerprint (`SHA256:...` as `ssh-keygen -l` prints, or `MD5:..`).
 *
 * @example
 * ```ts
 * HostKeys.fingerprint("SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s")
 * ```
 */
export const fingerprint = (...fingerprints: ReadonlyArray<string>): HostKeyPolicy =>
  make((check) => {
    const sha = PublicKey.fingerprint(check.key, "sha256")
    const md5 = PublicKey.fingerprint(check.key, "md5")
    return fingerprints.some((f) => f === sha || f === md5 || `SHA256:${f}` === sha)
      ? Effect.void
      : rejected(check, `fingerprint ${sha} matches none of ${fingerprints.join(", ")}`)
  })

/**
 * Decides with an Effect: return `true` to trust the key.
 *
 * @example
 * ```ts
 * HostKeys.callback(({ host, key }) => Effect.succeed(PublicKey.fingerprint(key) === expected))
 * ```
 */
export const callback = <R = never>(
  decide: (check: HostKeyCheck) => Effect.Effect<boolean, SshError.SshError, R>
): HostKeyPolicy =>
  make((check) =>
    Effect.flatMap(decide(check) as Effect.Effect<boolean, SshError.SshError>, (ok) =>
      ok ? Effect.void : rejected(check, "rejected by the host key callback"))
  )

/** The default known_hosts file, ~/.ssh/known_hosts. */
export const defaultKnownHostsFile = (): string => path.join(os.homedir(), ".ssh", "known_hosts")

const expandHome = (file: string): string => file.startsWith("~/") ? path.join(os.homedir(), file.slice(2)) : file

const readKnownHosts = (files: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const entries: Array<KnownHosts.KnownHostsEntry> = []
    for (const file of files) {
      const text = yield* fs.readFileString(expandHome(file)).pipe(Effect.orElseSucceed(() => ""))
      entries.push(...KnownHosts.parse(text).entries)
    }
    return entries
  })

/**
 * Strict known_hosts checking, OpenSSH's `StrictHostKeyChecking yes`: the key
 * must be recorded for the host (plain or hashed entries, `[host]:port`,
 * patterns); an unknown host is rejected; a different key of a recorded
 * host is `HostKeyChanged`; a `@revoked` key is always rejected.
 *
 * @example
 * ```ts
 * HostKeys.knownHosts()                          // ~/.ssh/known_hosts
 * HostKeys.knownHosts({ files: ["./known_hosts"] })
 * ```
 */
export const knownHosts = (options?: { readonly files?: ReadonlyArray<string> | undefined }): HostKeyPolicy => {
  const files = options?.files ?? [defaultKnownHostsFile()]
  return make(
    (check) =>
      Effect.flatMap(readKnownHosts(files), (entries) => {
        const found = KnownHosts.lookup(entries, check.host, check.port)
        if (found.revoked.some((k) => PublicKey.equals(k, check.key))) {
          return rejected(check, `the server's key ${PublicKey.fingerprint(check.key)} is marked @revoked`)
        }
        if (found.keys.some((k) => PublicKey.equals(k, check.key))) return Effect.void
        if (found.keys.length > 0) {
          return Effect.fail(SshError.make(
            new SshError.HostKeyChanged({
              host: KnownHosts.hostPattern(check.host, check.port),
              expected: found.keys.map((k) => `${k.type} ${PublicKey.fingerprint(k)}`),
              received: `${check.key.type} ${PublicKey.fingerprint(check.key)}`
            })
          ))
        }
        return rejected(
          check,
          `host ${KnownHosts.hostPattern(check.host, check.port)} is not in ${files.join(", ")} (its ${check.key.type} key is ${PublicKey.fingerprint(check.key)})`
        )
      }),
    (host, port) =>
      Effect.map(
        Effect.orElseSucceed(readKnownHosts(files), () => []),
        (entries) => [...new Set(KnownHosts.lookup(entries, host, port).keys.flatMap((k) => PublicKey.signatureAlgorithms(k)))]
      )
  )
}
