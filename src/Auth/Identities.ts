/**
 * Default identities, as OpenSSH's default `IdentityFile`s and paramiko's
 * `look_for_keys`: `~/.ssh/id_ed25519`, `~/.ssh/id_ecdsa` and `~/.ssh/id_rsa`,
 * those that exist, in that order.
 *
 * Keys are loaded before connecting. An encrypted key's passphrase comes
 * from a callback (the CLI asks on the terminal or through `SSH_ASKPASS`);
 * a wrong passphrase asks again, up to `attempts` times (ssh's
 * `NumberOfPasswordPrompts`, 3); a callback answering `undefined` skips the
 * key. A key file that cannot be used (unsupported type, unreadable) is
 * skipped with a logged warning, as ssh skips it, so one bad file does not
 * stop the others.
 *
 * @example
 * ```ts
 * const auth = yield* Identities.authMethods({ passphrase: (file) => askpass(`Enter passphrase for key '${file}': `) })
 * yield* SshClient.connect({ host, username, auth, hostKeys })
 * ```
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as FileSystem from "effect/FileSystem"
import * as Redacted from "effect/Redacted"
import * as os from "node:os"
import * as path from "node:path"
import { attempt } from "../Wire/Reader.ts"
import * as RunMemo from "../internal/runMemo.ts"
import * as SshError from "../SshError.ts"
import * as Auth from "./ClientAuth.ts"
import * as KnownHostsFile from "./KnownHostsFile.ts"
import * as Certificate from "./Certificate.ts"
import * as PrivateKey from "./PrivateKey.ts"
import * as PublicKey from "./PublicKey.ts"

/** Asks for the passphrase of an encrypted key file; `undefined` skips the key. `attempt` counts from 1. */
export type PassphrasePrompt = Auth.PassphrasePrompt

/** Options of `load` and `authMethods`. */
export interface LoadOptions {
  /** Where encrypted keys get their passphrase; without it they are skipped. */
  readonly passphrase?: PassphrasePrompt | undefined
  /** How many passphrases to try per key (default 3). */
  readonly attempts?: number | undefined
}

/** Options of `authMethods`. */
export interface IdentityOptions extends LoadOptions {
  /** Key files to try instead of the defaults (`~` expanded). */
  readonly files?: ReadonlyArray<string> | undefined
  /** Home directory for the defaults (default: the user's). */
  readonly home?: string | undefined
}

/** The names OpenSSH and paramiko look for in `~/.ssh`, in the order tried. */
export const defaultNames: ReadonlyArray<string> = ["id_ed25519", "id_ecdsa", "id_rsa"]

/**
 * The default identity files under a home directory, whether or not they exist.
 *
 * @example
 * ```ts
 * defaultFiles("/home/me") // ["/home/me/.ssh/id_ed25519", "/home/me/.ssh/id_ecdsa", "/home/me/.ssh/id_rsa"]
 * ```
 */
export const defaultFiles = (home: string = os.homedir()): ReadonlyArray<string> =>
  defaultNames.map((name) => path.join(home, ".ssh", name))

/**
 * The files among `files` that exist.
 *
 * @example
 * ```ts
 * const present = yield* existing(defaultFiles())
 * ```
 */
export const existing = (
  files: ReadonlyArray<string>
): Effect.Effect<Array<string>, never, FileSystem.FileSystem> =>
  Effect.flatMap(FileSystem.FileSystem, (fs) =>
    Effect.filter(files.map(KnownHostsFile.expandHome), (file) => Effect.orElseSucceed(fs.exists(file), () => false)))

const parseWith = (text: string, passphrase: Redacted.Redacted<string> | undefined) =>
  attempt(() => PrivateKey.parse(text, passphrase === undefined ? undefined : Redacted.value(passphrase)))

/**
 * Loads one key file. Encrypted keys ask `passphrase` (again after a wrong
 * one, up to `attempts` times); `undefined` when the key is skipped (no
 * prompt, the prompt declined, or every passphrase was wrong).
 *
 * @example
 * ```ts
 * const key = yield* load("~/.ssh/id_ed25519", { passphrase: () => Effect.succeed(Redacted.make("secret")) })
 * ```
 */
export const load = (
  file: string,
  options?: LoadOptions
): Effect.Effect<PrivateKey.PrivateKey | undefined, SshError.SshError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const text = yield* fs.readFileString(KnownHostsFile.expandHome(file)).pipe(
      Effect.mapError((e) => SshError.make(new SshError.KeyParseFailed({ message: `cannot read ${file}: ${e.message}` })))
    )
    let result = parseWith(text, undefined)
    const attempts = options?.attempts ?? 3
    for (let n = 1; result._tag === "Failure" && n <= attempts; n++) {
      const reason = result.failure._tag
      if (reason !== "PassphraseRequired" && reason !== "WrongPassphrase") break
      if (options?.passphrase === undefined) return undefined
      const passphrase = yield* options.passphrase(file, n)
      if (passphrase === undefined) return undefined
      result = parseWith(text, passphrase)
    }
    if (result._tag === "Success") return result.success
    if (result.failure._tag === "PassphraseRequired" || result.failure._tag === "WrongPassphrase") return undefined
    return yield* Effect.fail(SshError.make(result.failure))
  })

/**
 * Public-key auth methods for the identities that exist and load: the given
 * `files`, or the defaults under `home`. Unusable files are skipped with a
 * logged warning. Encrypted keys are not opened here: their passphrase is
 * asked for only if the server accepts the key (as OpenSSH does).
 *
 * @example
 * ```ts
 * const auth = yield* authMethods({ passphrase: (file) => promptPassphrase(file) })
 * ```
 */
export const authMethods = (
  options?: IdentityOptions
): Effect.Effect<Array<Auth.AuthMethod>, SshError.SshError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const files = options?.files ?? (yield* existing(defaultFiles(options?.home)))
    const methods: Array<Auth.AuthMethod> = []
    const fs = yield* FileSystem.FileSystem
    for (const file of files) {
      // read and parsed once per run under a `RunMemo` (pexec's hosts share their identity files)
      const expanded = KnownHostsFile.expandHome(file)
      const parsed = yield* RunMemo.memoized(
        `identity:${expanded}`,
        fs.readFileString(expanded).pipe(
          Effect.map((text) => parseWith(text, undefined)),
          Effect.orElseSucceed(() => undefined)
        )
      )
      if (parsed === undefined) {
        yield* Effect.logWarning(`skipping identity ${file}: cannot read it`)
        continue
      }
      if (parsed._tag === "Success") {
        methods.push(Auth.privateKey(parsed.success))
      } else if (parsed.failure._tag === "PassphraseRequired") {
        if (options?.passphrase !== undefined) methods.push(Auth.privateKeyFile(file, options.passphrase))
      } else {
        yield* Effect.logWarning(`skipping identity ${file}: ${parsed.failure.message}`)
      }
    }
    return methods
  })

/**
 * The public key blobs of identity and certificate files: a `.pub` beside a key file, else the file itself (a
 * public key or certificate line, or a private key's public half, which openssh-key-v1 keeps readable when the
 * key is encrypted); unreadable ones are left out.
 */
const identityBlobs = (files: ReadonlyArray<string>): Effect.Effect<Array<Uint8Array>, never, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const read = (file: string) => fs.readFileString(KnownHostsFile.expandHome(file)).pipe(Effect.orElseSucceed(() => undefined))
    const blobs: Array<Uint8Array> = []
    for (const file of files) {
      const publicText = (yield* read(`${file}.pub`)) ?? (yield* read(file))
      const blob = publicText === undefined ? undefined : blobOf(publicText)
      if (blob !== undefined) blobs.push(blob)
    }
    return blobs
  })

/** The blob of a public key or certificate line, or of a private key file's public key. */
const blobOf = (text: string): Uint8Array | undefined => {
  for (const parseLine of [PublicKey.parseOpenSsh, Certificate.parseOpenSsh]) {
    const line = attempt(() => parseLine(text.trim()))
    if (line._tag === "Success") return line.success.blob
  }
  const embedded = PrivateKey.publicKeyOfFile(text)
  if (embedded !== undefined) return embedded.blob
  const key = parseWith(text, undefined)
  return key._tag === "Success" ? key.success.publicKey.blob : undefined
}

/** Options of `defaults`. */
export interface DefaultsOptions extends IdentityOptions {
  /**
   * The agent to try first: a socket path, `"SSH_AUTH_SOCK"` (the default: the environment's, when set) or
   * `"none"` (ssh's IdentityAgent).
   */
  readonly agent?: string | undefined
  /** Certificates to offer with their keys (ssh's CertificateFile), beyond each key's own `-cert.pub`. */
  readonly certificates?: ReadonlyArray<{ readonly key: string; readonly certificate: string }> | undefined
  /**
   * ssh's IdentitiesOnly: the agent offers only the keys of the identity files (known by their `.pub`, or the
   * public key the file itself holds) and their certificates, so a key file whose passphrase the agent
   * already holds is used without a prompt, and the agent's other keys are never offered.
   */
  readonly identitiesOnly?: boolean | undefined
}

/**
 * The credentials OpenSSH tries without being told: the agent's keys (`SSH_AUTH_SOCK` or IdentityAgent), then
 * each identity file (the given ones, or the defaults that exist) — with its certificate first when a
 * `<file>-cert.pub` lies beside it, as ssh loads it.
 *
 * @example
 * ```ts
 * const auth = yield* Identities.defaults({ passphrase: (file) => askpass(`Enter passphrase for key '${file}': `) })
 * const ssh = yield* SshClient.connect({ host, username, auth, hostKeys })
 * ```
 */
export const defaults = (
  options: DefaultsOptions = {}
): Effect.Effect<Array<Auth.AuthMethod>, SshError.SshError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const methods: Array<Auth.AuthMethod> = []
    const agentSetting = options.agent ?? "SSH_AUTH_SOCK"
    const agentSocket = agentSetting === "none"
      ? undefined
      : agentSetting === "SSH_AUTH_SOCK"
      ? process.env.SSH_AUTH_SOCK
      : KnownHostsFile.expandHome(agentSetting)
    const files = options.files ?? (yield* existing(defaultFiles(options.home)))
    const certificates = new Map<string, Array<string>>()
    for (const { key, certificate } of options.certificates ?? []) {
      certificates.set(key, [...(certificates.get(key) ?? []), certificate])
    }
    const beside = yield* existing(files.map((file) => `${KnownHostsFile.expandHome(file)}-cert.pub`))
    if (agentSocket !== undefined && agentSocket !== "") {
      const only = options.identitiesOnly === true
        ? yield* identityBlobs([...files, ...beside, ...[...certificates.values()].flat()])
        : undefined
      if (only === undefined || only.length > 0) methods.push(Auth.agent({ socketPath: agentSocket, only }))
    }
    for (const file of files) {
      const own = `${KnownHostsFile.expandHome(file)}-cert.pub`
      for (const certificate of [...(beside.includes(own) ? [own] : []), ...(certificates.get(file) ?? [])]) {
        methods.push(Auth.certificateFile(KnownHostsFile.expandHome(file), { certificate }))
      }
    }
    methods.push(...(yield* authMethods({ ...options, files })))
    return methods
  })
