/**
 * From a resolved ssh_config (`SshConfig.resolve`) to `SshClient.connect`
 * options: the destination (HostName, Port, User), the timers
 * (ConnectTimeout, ServerAlive*, RekeyLimit), the algorithm lists, the
 * host-key policy (StrictHostKeyChecking over UserKnownHostsFile and
 * GlobalKnownHostsFile, HostKeyAlias, CheckHostIP), the credentials
 * (IdentityAgent, IdentityFile, CertificateFile, IdentitiesOnly,
 * PreferredAuthentications, NumberOfPasswordPrompts), ForwardAgent and the
 * environment sessions send (SetEnv, SendEnv).
 *
 * Everything but loading the credentials is pure. Explicit options win over
 * the configuration. Keywords the configuration used that we cannot honour
 * are reported (`unsupportedWarnings`), never dropped silently.
 *
 * @example
 * ```ts
 * import { ConnectConfig, SshConfig } from "effect-ssh"
 *
 * const resolved = SshConfig.resolve(files, "web", context)
 * const options = yield* ConnectConfig.connectOptions(resolved, { connectTimeout: "5 seconds" })
 * const ssh = yield* SshClient.connect(options)
 * ```
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FileSystem from "effect/FileSystem"
import * as ChildProcess from "node:child_process"
import * as Dns from "node:dns/promises"
import * as Net from "node:net"
import * as os from "node:os"
import * as Auth from "../Auth/ClientAuth.ts"
import * as Certificate from "../Auth/Certificate.ts"
import * as HostKeys from "../Auth/HostKeys.ts"
import * as Identities from "../Auth/Identities.ts"
import * as KnownHosts from "../Auth/KnownHosts.ts"
import { matchWildcard } from "../Auth/KnownHosts.ts"
import * as KnownHostsFile from "../Auth/KnownHostsFile.ts"
import * as PublicKey from "../Auth/PublicKey.ts"
import type * as SshClient from "../Client.ts"
import type * as Algorithms from "../Transport/Algorithms.ts"
import * as SshError from "../SshError.ts"
import type * as SshConfig from "./SshConfig.ts"

/** `ConnectOptions` as the configuration gives them (Compression included). */
export type ConfiguredOptions = SshClient.ConnectOptions

/** What the caller fixes regardless of the configuration; every field wins over its keyword. */
export type Overrides = Partial<ConfiguredOptions> & {
  /** Asks for an encrypted key's passphrase (the CLI asks on the terminal). */
  readonly passphrase?: Identities.PassphrasePrompt | undefined
  /** Methods tried after the configured keys (the CLI adds password and keyboard-interactive prompts). */
  readonly extraAuth?: ReadonlyArray<Auth.AuthMethod> | undefined
  /** Hash the names added to known_hosts (HashKnownHosts). */
  readonly hashKnownHosts?: boolean | undefined
  /** The local environment SendEnv picks from (default `process.env`). */
  readonly environment?: Readonly<Record<string, string | undefined>> | undefined
}

// ---------------------------------------------------------------------------
// Pure mapping
// ---------------------------------------------------------------------------

/**
 * The algorithm preferences of Ciphers, KexAlgorithms, MACs and
 * HostKeyAlgorithms, in OpenSSH's syntax (`+`, `-`, `^` keep their meaning).
 *
 * @example
 * ```ts
 * ConnectConfig.algorithms(resolved) // { cipher: "^aes256-gcm@openssh.com", kex: undefined, ... }
 * ```
 */
export const algorithms = (resolved: SshConfig.ResolvedConfig): Algorithms.AlgorithmOptions => ({
  cipher: resolved.algorithms.ciphers,
  kex: resolved.algorithms.kexalgorithms,
  mac: resolved.algorithms.macs,
  hostKey: resolved.algorithms.hostkeyalgorithms
})

/**
 * The variables every session sends: SendEnv's patterns picked from the
 * local environment, then SetEnv's values (which win, as in ssh).
 *
 * @example
 * ```ts
 * ConnectConfig.sessionEnvironment(resolved, { LANG: "C.UTF-8", HOME: "/root" }) // { LANG: "C.UTF-8", FOO: "1" } with SendEnv LANG, SetEnv FOO=1
 * ```
 */
export const sessionEnvironment = (
  resolved: SshConfig.ResolvedConfig,
  environment: Readonly<Record<string, string | undefined>>
): Record<string, string> => {
  const env: Record<string, string> = {}
  for (const [name, value] of Object.entries(environment)) {
    if (value !== undefined && resolved.sendEnv.some((pattern) => matchWildcard(pattern, name))) env[name] = value
  }
  for (const [name, value] of resolved.setEnv) env[name] = value
  return env
}

/**
 * The connection settings of the configuration, all but the credentials and
 * the host-key policy: where to connect and as whom, the timers, the
 * algorithms, ForwardAgent, the session environment and Compression.
 * ServerAliveInterval 0 (ssh's default) keeps the library's keepalive; pass
 * `keepaliveInterval: 0` to turn it off.
 *
 * @example
 * ```ts
 * ConnectConfig.settings(resolved, process.env) // { host: "10.0.0.7", port: 2222, username: "deploy", keepaliveInterval: Duration.seconds(15), ... }
 * ```
 */
export const settings = (
  resolved: SshConfig.ResolvedConfig,
  environment: Readonly<Record<string, string | undefined>>
): Omit<ConfiguredOptions, "auth" | "hostKeys"> => {
  const env = sessionEnvironment(resolved, environment)
  return {
    host: resolved.hostName,
    port: resolved.port,
    username: resolved.user,
    algorithms: algorithms(resolved),
    publicKeyAlgorithms: resolved.algorithms.pubkeyacceptedalgorithms,
    connectTimeout: resolved.connectTimeout === undefined ? undefined : Duration.seconds(resolved.connectTimeout),
    // 0 is both ssh's default and "off": the library's keepalive (on by default) stays unless asked otherwise
    keepaliveInterval: resolved.serverAliveInterval === 0 ? undefined : Duration.seconds(resolved.serverAliveInterval),
    keepaliveCountMax: resolved.serverAliveCountMax,
    rekeyBytes: resolved.rekeyLimit.bytes === 0 ? undefined : resolved.rekeyLimit.bytes,
    rekeyInterval: resolved.rekeyLimit.seconds === 0 ? undefined : Duration.seconds(resolved.rekeyLimit.seconds),
    forwardAgent: resolved.forwardAgent === false ? undefined : resolved.forwardAgent,
    env: Object.keys(env).length === 0 ? undefined : env,
    compression: resolved.compression
  }
}

/**
 * The known_hosts files in the order they are read: UserKnownHostsFile's,
 * then GlobalKnownHostsFile's (`/etc/ssh/ssh_known_hosts` and `..2` by
 * default). New hosts are added to the first user file, never a global one.
 *
 * @example
 * ```ts
 * ConnectConfig.knownHostsFiles(resolved) // ["/home/me/.ssh/known_hosts", "/home/me/.ssh/known_hosts2", "/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"]
 * ```
 */
export const knownHostsFiles = (resolved: SshConfig.ResolvedConfig): ReadonlyArray<string> => [
  ...resolved.userKnownHostsFiles,
  ...resolved.globalKnownHostsFiles
]

/**
 * The host-key policy of StrictHostKeyChecking: `yes` and `ask` (nobody to
 * ask) are strict, `accept-new` records unknown hosts, `no` records them too
 * (unlike ssh, a changed key is still refused). With HostKeyAlias the key is
 * looked up and recorded under the alias (without the port, as ssh does).
 * With CheckHostIP the host name is also resolved and the key checked
 * against what the files record for that address: another key there is
 * refused under strict checking and a warning otherwise, as in ssh (we do
 * not record the address).
 *
 * @example
 * ```ts
 * ConnectConfig.hostKeyPolicy(resolved, { hashed: true }) // HostKeys.acceptNew({ files, hashed: true }) for StrictHostKeyChecking accept-new
 * ```
 */
export const hostKeyPolicy = (
  resolved: SshConfig.ResolvedConfig,
  options: {
    readonly hashed?: boolean | undefined
    /** Resolves a host name for CheckHostIP (default: the system resolver). */
    readonly lookup?: ((host: string) => Effect.Effect<string | undefined>) | undefined
    /**
     * The policy for StrictHostKeyChecking `ask`, given the known_hosts files: one that asks the user about an
     * unknown host (the CLI's terminal prompt). Without it, `ask` is strict, as ssh is when it cannot ask.
     */
    readonly ask?: ((known: HostKeys.KnownHostsOptions) => HostKeys.HostKeyPolicy) | undefined
  } = {}
): HostKeys.HostKeyPolicy => {
  const files = knownHostsFiles(resolved)
  // with no user file to write to, a policy that records hosts remembers them in memory (files beyond the first are read-only)
  const policyOptions = { files: resolved.userKnownHostsFiles.length === 0 ? [] : files, hashed: options.hashed === true }
  const strict = resolved.strictHostKeyChecking === "yes" || resolved.strictHostKeyChecking === "ask"
  const base = resolved.strictHostKeyChecking === "accept-new"
    ? HostKeys.acceptNew(policyOptions)
    : resolved.strictHostKeyChecking === "no"
    ? HostKeys.autoAdd(policyOptions)
    : resolved.strictHostKeyChecking === "ask" && options.ask !== undefined
    ? options.ask(policyOptions)
    : HostKeys.knownHosts({ files, hashed: options.hashed === true })
  const alias = resolved.hostKeyAlias
  const aliased: HostKeys.HostKeyPolicy = alias === undefined ? base : {
    ...base,
    verify: (check) => base.verify({ ...check, host: alias, port: 22 }),
    preferredAlgorithms: base.preferredAlgorithms === undefined ? undefined : () => base.preferredAlgorithms!(alias, 22)
  }
  if (!resolved.checkHostIp || alias !== undefined || isIpAddress(resolved.hostName)) return aliased
  const lookup = options.lookup ?? systemLookup
  return {
    ...aliased,
    verify: (check) =>
      Effect.andThen(aliased.verify(check), Effect.gen(function*() {
        const address = yield* lookup(check.host)
        if (address === undefined) return
        const entries = yield* Effect.orElseSucceed(KnownHostsFile.readAll(files), () => [])
        const status = HostKeys.classify(entries, { ...check, host: address })
        if (status._tag !== "Changed") return
        const described = (key: PublicKey.PublicKey) => `${key.type} ${PublicKey.fingerprint(key)}`
        const changed = new SshError.HostKeyChanged({
          host: KnownHosts.hostPattern(address, check.port),
          expected: status.expected.map(described),
          received: described(check.key)
        })
        if (strict) return yield* Effect.fail(SshError.make(changed))
        yield* Effect.logWarning(`the host key for ${check.host} differs from the key for the IP address ${address}: ${changed.message}`)
      }))
  }
}

const isIpAddress = (host: string) => Net.isIP(host) !== 0

const systemLookup = (host: string): Effect.Effect<string | undefined> =>
  Effect.promise(() => Dns.lookup(host).then((r) => r.address, () => undefined))

/**
 * Keywords we resolve (and `ssh -G` prints) that a connection made from the
 * configuration does not act on, with why: reported as warnings with the
 * connection, so that nothing configured is silently ignored.
 *
 * @example
 * ```ts
 * ConnectConfig.notApplied(resolved) // ["LocalForward 8080 localhost:80 is not set up from ssh_config (give it as -L or forwardLocal)"]
 * ```
 */
export const notApplied = (
  resolved: SshConfig.ResolvedConfig,
  options: {
    /** The caller sets up LocalForward, RemoteForward and DynamicForward itself (the CLI does). */
    readonly forwardsApplied?: boolean | undefined
  } = {}
): ReadonlyArray<string> => [
  ...(options.forwardsApplied === true ? [] : forwardsNotApplied(resolved))
]

const forwardsNotApplied = (resolved: SshConfig.ResolvedConfig): ReadonlyArray<string> => [
  ...resolved.get("localforward").map((f) => `LocalForward ${f} is not set up from ssh_config (give it as -L or forwardLocal)`),
  ...resolved.get("remoteforward").map((f) => `RemoteForward ${f} is not set up from ssh_config (give it as -R or forwardRemote)`),
  ...resolved.get("dynamicforward").map((f) => `DynamicForward ${f} is not set up from ssh_config (give it as -D or socks)`)
]

/**
 * Orders auth methods by PreferredAuthentications (`publickey`, `password`,
 * `keyboard-interactive`, `none`): methods of an unlisted kind are dropped,
 * the order within a kind is kept. Without a preference the list is as given.
 *
 * @example
 * ```ts
 * ConnectConfig.byPreference([Auth.password("x"), Auth.agent()], ["publickey", "password"]) // [agent, password]
 * ```
 */
export const byPreference = (
  methods: ReadonlyArray<Auth.AuthMethod>,
  preferred: ReadonlyArray<string> | undefined
): Array<Auth.AuthMethod> => {
  if (preferred === undefined) return [...methods]
  const kinds = preferred.map((p) => p.toLowerCase())
  const rank = (m: Auth.AuthMethod) => kinds.indexOf(methodKind(m))
  return methods.filter((m) => rank(m) >= 0).sort((a, b) => rank(a) - rank(b))
}

const methodKind = (method: Auth.AuthMethod): string => {
  switch (method._tag) {
    case "None":
      return "none"
    case "Password":
      return "password"
    case "KeyboardInteractive":
      return "keyboard-interactive"
    default:
      return "publickey"
  }
}

/**
 * Keywords of the configuration that are read but cannot change what we do,
 * so they are not worth a warning: GSSAPI (Debian's default ssh_config sets
 * it), cosmetic and client-local conveniences. They are reported at debug
 * level.
 */
export const harmlessKeywords: ReadonlySet<string> = new Set([
  "gssapiauthentication",
  "gssapidelegatecredentials",
  "hashknownhosts",
  "visualhostkey",
  "addkeystoagent",
  "usekeychain",
  "updatehostkeys",
  "escapechar",
  "ignoreunknown",
  "enableescapecommandline"
])

/**
 * The report for each keyword we do not support, one per line that used it:
 * `file:line: Keyword is not supported (ignored)`; harmless ones separately.
 *
 * @example
 * ```ts
 * ConnectConfig.unsupportedWarnings(resolved) // { warnings: ["/home/me/.ssh/config:4: ForwardX11 is not supported (ignored)"], harmless: [...] }
 * ```
 */
export const unsupportedWarnings = (
  resolved: SshConfig.ResolvedConfig
): { readonly warnings: ReadonlyArray<string>; readonly harmless: ReadonlyArray<string> } => {
  const line = (u: SshConfig.ResolvedConfig["unsupported"][number]) => `${u.file}:${u.line}: ${u.keyword} is not supported (ignored)`
  return {
    warnings: resolved.unsupported.filter((u) => !harmlessKeywords.has(u.keyword.toLowerCase())).map(line),
    harmless: resolved.unsupported.filter((u) => harmlessKeywords.has(u.keyword.toLowerCase())).map(line)
  }
}

/**
 * Logs `unsupportedWarnings` through Effect's logger, each line once per
 * `seen` set (a connection through jump hosts resolves the same files again).
 *
 * @example
 * ```ts
 * yield* ConnectConfig.reportUnsupported(resolved, new Set())
 * ```
 */
export const reportUnsupported = (resolved: SshConfig.ResolvedConfig, seen: Set<string> = new Set()): Effect.Effect<void> =>
  Effect.suspend(() => {
    const { harmless, warnings } = unsupportedWarnings(resolved)
    const fresh = (lines: ReadonlyArray<string>) => lines.filter((l) => !seen.has(l) && seen.add(l) !== undefined)
    return Effect.andThen(
      Effect.forEach(fresh(warnings), (w) => Effect.logWarning(`ssh_config: ${w}`), { discard: true }),
      Effect.forEach(fresh(harmless), (w) => Effect.logDebug(`ssh_config: ${w}`), { discard: true })
    )
  })

/**
 * What a connection from the configuration ignores, logged once each per
 * `seen`: `reportUnsupported`, then `notApplied` as warnings.
 *
 * @example
 * ```ts
 * yield* ConnectConfig.reportIgnored(resolved, new Set())
 * ```
 */
export const reportIgnored = (
  resolved: SshConfig.ResolvedConfig,
  seen: Set<string> = new Set(),
  options: { readonly forwardsApplied?: boolean | undefined } = {}
): Effect.Effect<void> =>
  Effect.andThen(
    reportUnsupported(resolved, seen),
    Effect.suspend(() =>
      Effect.forEach(
        notApplied(resolved, options).filter((w) => !seen.has(w) && seen.add(w) !== undefined),
        (w) => Effect.logWarning(`ssh_config: ${resolved.host}: ${w}`),
        { discard: true }
      )
    )
  )

// ---------------------------------------------------------------------------
// Credentials
// ---------------------------------------------------------------------------

/**
 * The credentials of the configuration, in ssh's order: the agent
 * (IdentityAgent, else `SSH_AUTH_SOCK`; with IdentitiesOnly only its keys
 * that are the configured identities' own), then each identity file
 * with its certificates first (its own `-cert.pub`, and every CertificateFile
 * whose key is that identity's `.pub`). With no IdentityFile configured, the
 * default files that exist.
 *
 * @example
 * ```ts
 * const auth = yield* ConnectConfig.credentials(resolved, { passphrase: (file) => ask(file) })
 * ```
 */
export const credentials = (
  resolved: SshConfig.ResolvedConfig,
  options: { readonly passphrase?: Identities.PassphrasePrompt | undefined } = {}
): Effect.Effect<Array<Auth.AuthMethod>, SshError.SshError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    if (resolved.identityErrors.length > 0) {
      return yield* Effect.fail(SshError.make(new SshError.ConfigParseError({ message: resolved.identityErrors.join("; ") })))
    }
    const files = resolved.identityFilesAreDefault ? yield* Identities.existing(resolved.identityFiles) : resolved.identityFiles
    const certificates = yield* pairCertificates(files, resolved.certificateFiles)
    return yield* Identities.defaults({
      agent: resolved.identityAgent ?? "SSH_AUTH_SOCK",
      identitiesOnly: resolved.identitiesOnly,
      files,
      certificates,
      passphrase: options.passphrase,
      attempts: resolved.numberOfPasswordPrompts
    })
  })

/** Each CertificateFile with the identity whose public key it certifies (read from the identity's `.pub`). */
const pairCertificates = (
  identities: ReadonlyArray<string>,
  certificates: ReadonlyArray<string>
): Effect.Effect<Array<{ readonly key: string; readonly certificate: string }>, never, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    if (certificates.length === 0) return []
    const fs = yield* FileSystem.FileSystem
    const read = (file: string) => fs.readFileString(file).pipe(Effect.orElseSucceed(() => undefined))
    const keys: Array<{ readonly file: string; readonly key: PublicKey.PublicKey }> = []
    for (const file of identities) {
      const text = yield* read(`${file}.pub`)
      const key = text === undefined ? undefined : attempt(() => PublicKey.parseOpenSsh(text.trim()))
      if (key !== undefined) keys.push({ file, key })
    }
    const pairs: Array<{ readonly key: string; readonly certificate: string }> = []
    for (const certificate of certificates) {
      const text = yield* read(certificate)
      const cert = text === undefined ? undefined : attempt(() => Certificate.parseOpenSsh(text.trim()))
      if (cert === undefined) {
        yield* Effect.logWarning(`ssh_config: CertificateFile ${certificate}: cannot read a certificate from it`)
        continue
      }
      const owner = keys.find((k) => PublicKey.equals(k.key, cert.key as PublicKey.PublicKey))
      if (owner === undefined) yield* Effect.logWarning(`ssh_config: CertificateFile ${certificate}: no IdentityFile holds its key`)
      else if (certificate !== `${owner.file}-cert.pub`) pairs.push({ key: owner.file, certificate })
    }
    return pairs
  })

const attempt = <A>(f: () => A): A | undefined => {
  try {
    return f()
  } catch {
    return undefined
  }
}

/**
 * `SshClient.connect` options for a resolved configuration: `settings`,
 * `hostKeyPolicy` and `credentials` (followed by `extraAuth`, ordered by
 * PreferredAuthentications), with every given override winning.
 *
 * @example
 * ```ts
 * const options = yield* ConnectConfig.connectOptions(resolved, { username: "ops", hostKeys: HostKeys.fingerprint("SHA256:...") })
 * ```
 */
export const connectOptions = (
  resolved: SshConfig.ResolvedConfig,
  overrides: Overrides = {}
): Effect.Effect<ConfiguredOptions, SshError.SshError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const { passphrase, extraAuth, hashKnownHosts, environment, ...explicit } = overrides
    const auth = explicit.auth ??
      byPreference([...(yield* credentials(resolved, { passphrase })), ...(extraAuth ?? [])], resolved.preferredAuthentications)
    const local = environment ?? process.env
    if (resolved.forwardAgent === true && (local.SSH_AUTH_SOCK ?? "") === "" && explicit.forwardAgent === undefined) {
      yield* Effect.logWarning(`ForwardAgent for ${resolved.host}: SSH_AUTH_SOCK is not set, no agent is forwarded`)
    }
    const configured: ConfiguredOptions = {
      ...withoutMissingAgent(settings(resolved, local), local),
      hostKeys: explicit.hostKeys ?? hostKeyPolicy(resolved, { hashed: hashKnownHosts }),
      auth
    }
    return { ...configured, ...definedOnly(explicit) } as ConfiguredOptions
  })

/** `ForwardAgent yes` with no `SSH_AUTH_SOCK` forwards nothing, as in ssh, rather than failing the connection. */
const withoutMissingAgent = <A extends { readonly forwardAgent?: boolean | string | undefined }>(
  options: A,
  environment: Readonly<Record<string, string | undefined>>
): A =>
  options.forwardAgent === true && (environment.SSH_AUTH_SOCK ?? "") === "" ? { ...options, forwardAgent: undefined } : options

/** The fields of `o` that are not undefined (an override left undefined does not erase the configured value). */
const definedOnly = <A extends object>(o: A): Partial<A> =>
  Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<A>

// ---------------------------------------------------------------------------
// The local side
// ---------------------------------------------------------------------------

/**
 * The resolution context of this process, as ssh builds it: the user and
 * home directory from the password database, `$HOME` for Include globs, the
 * host name, the environment, `Match exec` through `/bin/sh -c`, and the
 * addresses of the local interfaces for `Match localnetwork`.
 *
 * @example
 * ```ts
 * const context = ConnectConfig.localContext({ user: "deploy", port: 2222 })   // as ssh -l deploy -p 2222
 * ```
 */
export const localContext = (overrides: Partial<SshConfig.Context> = {}): SshConfig.Context => {
  const info = os.userInfo()
  return {
    localUser: info.username,
    homeDirectory: info.homedir,
    uid: String(info.uid),
    localHostname: os.hostname(),
    environment: process.env,
    exec: (command) => ChildProcess.spawnSync("/bin/sh", ["-c", command], { stdio: "ignore" }).status === 0,
    localAddresses: Object.values(os.networkInterfaces()).flatMap((list) => (list ?? []).map((i) => i.cidr ?? i.address)),
    ...overrides
  }
}
