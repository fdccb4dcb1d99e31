/**
 * Host-key policies: how a client decides whether to trust the key a server
 * presents. There is no accept-anything default: every connection names a
 * policy. `knownHosts()` is strict (unknown host → rejected, changed key →
 * `HostKeyChanged` showing both fingerprints); `acceptNew`, `autoAdd` and
 * `warn` differ only for unknown hosts (OpenSSH's accept-new, paramiko's
 * AutoAddPolicy and WarningPolicy); `fixed`, `fingerprint` and `callback`
 * cover pinned keys and custom decisions.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as FileSystem from "effect/FileSystem"
import * as SshError from "../SshError.ts"
import * as Certificate from "./Certificate.ts"
import * as PublicKey from "./PublicKey.ts"
import * as KnownHosts from "./KnownHosts.ts"
import * as KnownHostsFile from "./KnownHostsFile.ts"

/** What a policy is told about the server. */
export interface HostKeyCheck {
  readonly host: string
  readonly port: number
  readonly key: PublicKey.PublicKey
  /** The negotiated host key algorithm (e.g. rsa-sha2-512 for an ssh-rsa key). */
  readonly algorithm: string
  /** The host certificate the server presented, if it did; `key` is then the key it certifies. */
  readonly certificate?: Certificate.Certificate | undefined
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


/** Options of the known_hosts policies. */
export interface KnownHostsOptions {
  /** Files to read, in order (OpenSSH's `UserKnownHostsFile`); new hosts are written to the first. Default `~/.ssh/known_hosts`. */
  readonly files?: ReadonlyArray<string> | undefined
  /** Hash the names of hosts we add (`|1|salt|hash`), as `HashKnownHosts yes`. */
  readonly hashed?: boolean | undefined
}

/** What the known_hosts files say about the key a host presented. */
export type HostKeyStatus =
  | { readonly _tag: "Trusted" }
  | { readonly _tag: "Revoked" }
  | { readonly _tag: "Changed"; readonly expected: ReadonlyArray<PublicKey.PublicKey> }
  | { readonly _tag: "Unknown" }

/**
 * Classifies a presented key against known_hosts entries: `@revoked` wins,
 * then a recorded key; a host with other recorded keys (of any type) has
 * `Changed`, one with none is `Unknown`.
 *
 * Host certificates are judged before this plain-key classification, by
 * `checkCertificate`.
 *
 * @example
 * ```ts
 * classify(entries, { host: "example.com", port: 22, key, algorithm: "ssh-ed25519" })._tag // "Trusted"
 * ```
 */
export const classify = (entries: ReadonlyArray<KnownHosts.KnownHostsEntry>, check: HostKeyCheck): HostKeyStatus => {
  const found = KnownHosts.lookup(entries, check.host, check.port)
  if (found.revoked.some((k) => PublicKey.equals(k, check.key))) return { _tag: "Revoked" }
  if (found.keys.some((k) => PublicKey.equals(k, check.key))) return { _tag: "Trusted" }
  return found.keys.length > 0 ? { _tag: "Changed", expected: found.keys } : { _tag: "Unknown" }
}

/**
 * Judges a host certificate against the `@cert-authority` keys recorded for
 * the host: `undefined` when no such CA signed it (the certified key is
 * then checked as a plain key, as OpenSSH does), otherwise why it is refused
 * (`@revoked` key or CA, wrong role, not valid now, the host not a
 * principal, a critical option, a bad CA signature) or `"trusted"`.
 *
 * @example
 * ```ts
 * checkCertificate(entries, check, cert) // "trusted" | "certificate expired at ..." | undefined
 * ```
 */
export const checkCertificate = (
  entries: ReadonlyArray<KnownHosts.KnownHostsEntry>,
  check: HostKeyCheck,
  cert: Certificate.Certificate
): string | undefined => {
  const found = KnownHosts.lookup(entries, check.host, check.port)
  if (found.revoked.some((k) => PublicKey.equals(k, check.key) || PublicKey.equals(k, cert.signatureKey))) {
    return `the host certificate's key or its CA is marked @revoked`
  }
  const authorities = found.authorities.filter((ca) => PublicKey.equals(ca, cert.signatureKey))
  if (authorities.length === 0) return undefined
  return Certificate.check(cert, { role: "host", principal: check.host, authorities }) ?? "trusted"
}

/** What a known_hosts policy does with a host it has no key for. */
type UnknownHost = "reject" | "add" | "warn"

const described = (key: PublicKey.PublicKey): string => `${key.type} ${PublicKey.fingerprint(key)}`

const makeKnownHosts = (options: KnownHostsOptions | undefined, unknownHost: UnknownHost): HostKeyPolicy => {
  const files = options?.files ?? [KnownHostsFile.defaultFile()]
  const readEntries = KnownHostsFile.readAll(files)
  /** Keys added by this policy value, trusted even when the file could not be written (paramiko keeps them in memory). */
  const added: Array<KnownHosts.KnownHostsEntry> = []
  const remember = (check: HostKeyCheck) =>
    Effect.sync(() => {
      const line = KnownHosts.formatLine(check.host, check.port, check.key)
      added.push(...KnownHosts.parse(line).entries)
    })
  const onUnknown = (check: HostKeyCheck): Effect.Effect<void, SshError.SshError, FileSystem.FileSystem> => {
    const name = KnownHosts.hostPattern(check.host, check.port)
    switch (unknownHost) {
      case "reject":
        return rejected(check, `host ${name} is not in ${files.join(", ")} (its key is ${described(check.key)})`)
      case "warn":
        return Effect.logWarning(`unknown host key for ${name} accepted without recording it: ${described(check.key)}`)
      case "add":
        return files.length === 0 ? remember(check) : KnownHostsFile.addHost(files[0]!, check.host, check.port, check.key, options).pipe(
          Effect.andThen(Effect.logInfo(`permanently added ${name} (${described(check.key)}) to ${files[0]}`)),
          Effect.catch((error) => Effect.logWarning(`could not add ${name} to ${files[0]}: ${error.message}`)),
          Effect.andThen(remember(check))
        )
    }
  }
  return make(
    (check) =>
      Effect.flatMap(readEntries, (entries) => {
        const verdict = check.certificate && checkCertificate([...entries, ...added], check, check.certificate)
        if (verdict === "trusted") return Effect.void
        if (verdict !== undefined) return rejected(check, `host certificate "${check.certificate!.keyId}" refused: ${verdict}`)
        const status = classify([...entries, ...added], check)
        switch (status._tag) {
          case "Trusted":
            return Effect.void
          case "Revoked":
            return rejected(check, `the server's key ${PublicKey.fingerprint(check.key)} is marked @revoked`)
          case "Changed":
            return Effect.fail(SshError.make(
              new SshError.HostKeyChanged({
                host: KnownHosts.hostPattern(check.host, check.port),
                expected: status.expected.map(described),
                received: described(check.key)
              })
            ))
          case "Unknown":
            return onUnknown(check)
        }
      }),
    (host, port) =>
      Effect.map(
        Effect.orElseSucceed(readEntries, () => []),
        (entries) => {
          const found = KnownHosts.lookup([...entries, ...added], host, port)
          // with a @cert-authority for the host, ask for its certificate first
          const certificates = found.authorities.length > 0 ? Certificate.hostKeyAlgorithms : []
          return [...new Set([...certificates, ...found.keys.flatMap((k) => PublicKey.signatureAlgorithms(k))])]
        }
      )
  )
}

/**
 * Strict known_hosts checking, OpenSSH's `StrictHostKeyChecking yes` and
 * paramiko's `RejectPolicy`: the key must be recorded for the host (plain or
 * hashed entries, `[host]:port`, patterns); an unknown host is rejected; a
 * different key of a recorded host is `HostKeyChanged`; a `@revoked` key is
 * always rejected.
 *
 * @example
 * ```ts
 * HostKeys.knownHosts()                          // ~/.ssh/known_hosts
 * HostKeys.knownHosts({ files: ["./known_hosts"] })
 * ```
 */
export const knownHosts = (options?: KnownHostsOptions): HostKeyPolicy => makeKnownHosts(options, "reject")

/**
 * OpenSSH's `StrictHostKeyChecking accept-new`: an unknown host's key is
 * appended to the first file (hashed with `hashed: true`) and trusted; a
 * changed key is still `HostKeyChanged` and a `@revoked` key still rejected.
 * A host with keys of other types recorded counts as changed, not new
 * (stricter than ssh, which would add the new type). When the file cannot be
 * written the connection goes on with a logged warning, as ssh does; the key
 * is then remembered by this policy value only.
 *
 * @example
 * ```ts
 * HostKeys.acceptNew({ files: ["~/.ssh/known_hosts"], hashed: true })
 * ```
 */
export const acceptNew = (options?: KnownHostsOptions): HostKeyPolicy => makeKnownHosts(options, "add")

/**
 * paramiko's `AutoAddPolicy` — the same behaviour as `acceptNew` under
 * paramiko's name: adds an unknown host's key and trusts it. paramiko only
 * consults the policy for *unknown* hosts (a known host with another key
 * raises `BadHostKeyException` whatever the policy), so a changed key is
 * `HostKeyChanged` and a `@revoked` key rejected. Added keys are also kept by
 * the policy value, so with `files: []` hosts are remembered in memory only.
 *
 * @example
 * ```ts
 * const policy = HostKeys.autoAdd({ files: [] }) // remember hosts for this process only
 * ```
 */
export const autoAdd = (options?: KnownHostsOptions): HostKeyPolicy => makeKnownHosts(options, "add")

/**
 * paramiko's `WarningPolicy`: an unknown host's key is accepted with a logged
 * warning and not recorded; a changed key is `HostKeyChanged` and a
 * `@revoked` key rejected, as with every known_hosts policy.
 *
 * @example
 * ```ts
 * HostKeys.warn({ files: ["./known_hosts"] })
 * ```
 */
export const warn = (options?: KnownHostsOptions): HostKeyPolicy => makeKnownHosts(options, "warn")
