/**
 * `effect-ssh keygen -t TYPE [-b BITS] [-N PASSPHRASE] [-C COMMENT] -f FILE`:
 * generates an ed25519, ecdsa (256/384/521) or rsa (≥ 2048, default 3072)
 * key and writes it as `ssh-keygen` does — FILE in openssh-key-v1 (encrypted
 * with aes256-ctr + bcrypt when `-N` is not empty), mode 0600, and FILE.pub,
 * mode 0644. Where ssh-keygen asks before overwriting, we refuse: an
 * existing FILE or FILE.pub exits with status 2 and "exists".
 *
 * @example
 * ```sh
 * effect-ssh keygen -t ed25519 -C deploy@ci -f ./id_ed25519
 * effect-ssh keygen -t rsa -b 4096 -N 'correct horse' -f ./id_rsa
 * ```
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FileSystem from "effect/FileSystem"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as os from "node:os"
import * as PrivateKey from "../Auth/PrivateKey.ts"
import * as PublicKey from "../Auth/PublicKey.ts"
import * as SshError from "../SshError.ts"
import { UsageError } from "./Args.ts"

/** `effect-ssh keygen` arguments. */
export interface KeygenArgs {
  readonly _tag: "Keygen"
  readonly type: PublicKey.KeyType
  readonly bits: number | undefined
  /** `-N`; empty means unencrypted, as with ssh-keygen. */
  readonly passphrase: string
  readonly comment: string | undefined
  readonly file: string
}

/** What `runKeygen` did. */
export type KeygenResult =
  | {
    readonly _tag: "Written"
    readonly file: string
    readonly publicFile: string
    readonly publicKey: PublicKey.PublicKey
    readonly encrypted: boolean
  }
  | { readonly _tag: "Exists"; readonly file: string }

/** Usage text of `effect-ssh keygen`. */
export const keygenUsage =
  "usage: effect-ssh keygen -t ed25519|ecdsa|rsa [-b BITS] [-N PASSPHRASE] [-C COMMENT] -f FILE"

const ecdsaTypes: Readonly<Record<string, PublicKey.KeyType>> = {
  "256": "ecdsa-sha2-nistp256",
  "384": "ecdsa-sha2-nistp384",
  "521": "ecdsa-sha2-nistp521"
}

const keyTypeOf = (type: string, bits: number | undefined): PublicKey.KeyType | UsageError => {
  switch (type) {
    case "ed25519":
    case "ssh-ed25519":
      return bits === undefined ? "ssh-ed25519" : new UsageError("ed25519 keys have a fixed size; drop -b")
    case "rsa":
    case "ssh-rsa":
      return bits === undefined || (bits >= 2048 && bits <= 16384)
        ? "ssh-rsa"
        : new UsageError(`RSA keys are 2048 to 16384 bits, not ${bits}`)
    case "ecdsa":
      return ecdsaTypes[String(bits ?? 256)] ?? new UsageError(`ECDSA keys are 256, 384 or 521 bits, not ${bits}`)
    default:
      return PublicKey.isKeyType(type) && type.startsWith("ecdsa-sha2-") && bits === undefined
        ? type
        : new UsageError(`unknown key type "${type}" (ed25519, ecdsa or rsa)`)
  }
}

/**
 * Parses the arguments after `keygen`.
 *
 * @example
 * ```ts
 * parseKeygen(["-t", "ecdsa", "-b", "384", "-f", "id_ecdsa"]) // { type: "ecdsa-sha2-nistp384", ... }
 * ```
 */
export const parseKeygen = (argv: ReadonlyArray<string>): KeygenArgs | UsageError => {
  const values: Record<string, string> = {}
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!
    if (!["-t", "-b", "-N", "-C", "-f"].includes(flag)) return new UsageError(`unknown argument ${flag}`)
    const value = argv[++i]
    if (value === undefined) return new UsageError(`${flag} needs a value`)
    if (flag in values) return new UsageError(`${flag} given twice`)
    values[flag] = value
  }
  const file = values["-f"]
  if (file === undefined || file === "") return new UsageError("-f FILE is required")
  const bitsText = values["-b"]
  const bits = bitsText === undefined ? undefined : /^\d{1,5}$/.test(bitsText) ? Number(bitsText) : Number.NaN
  if (Number.isNaN(bits)) return new UsageError(`bad -b "${bitsText}"`)
  const type = keyTypeOf((values["-t"] ?? "ed25519").toLowerCase(), bits)
  if (type instanceof UsageError) return type
  return { _tag: "Keygen", type, bits, passphrase: values["-N"] ?? "", comment: values["-C"], file }
}

const defaultComment = (): string => `${os.userInfo().username}@${os.hostname()}`

/**
 * Generates the key and writes FILE and FILE.pub, creating neither when
 * either exists.
 *
 * @example
 * ```ts
 * const result = yield* runKeygen({ _tag: "Keygen", type: "ssh-ed25519", bits: undefined, passphrase: "", comment: "me", file: "/tmp/k" })
 * ```
 */
export const runKeygen = (args: KeygenArgs): Effect.Effect<KeygenResult, SshError.SshError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const publicFile = `${args.file}.pub`
    const ioError = (file: string) => (e: { readonly message: string }) =>
      SshError.make(new SshError.ConfigParseError({ message: `cannot write ${file}: ${e.message}` }))
    for (const file of [args.file, publicFile]) {
      if (yield* Effect.orElseSucceed(fs.exists(file), () => false)) return { _tag: "Exists", file } as const
    }
    const comment = args.comment ?? defaultComment()
    const key = yield* Effect.try({
      try: () => PrivateKey.generate(args.type, { bits: args.bits, comment }),
      catch: SshError.fromUnknown
    })
    const encrypted = args.passphrase !== ""
    const text = PrivateKey.toOpenSsh(key, encrypted ? { passphrase: args.passphrase } : undefined)
    // "wx": never replace a file that appeared since the check above.
    yield* fs.writeFileString(args.file, text, { flag: "wx", mode: 0o600 }).pipe(Effect.mapError(ioError(args.file)))
    yield* fs.writeFileString(publicFile, `${PublicKey.toOpenSsh(key.publicKey, { comment })}\n`, { flag: "wx", mode: 0o644 })
      .pipe(Effect.mapError(ioError(publicFile)))
    return { _tag: "Written", file: args.file, publicFile, publicKey: key.publicKey, encrypted } as const
  })

/**
 * What ssh-keygen prints after writing a key.
 *
 * @example
 * ```ts
 * process.stdout.write(report(result))
 * ```
 */
export const report = (result: Extract<KeygenResult, { _tag: "Written" }>): string =>
  `Your identification has been saved in ${result.file}\n` +
  `Your public key has been saved in ${result.publicFile}\n` +
  `The key fingerprint is:\n${PublicKey.fingerprint(result.publicKey)} ${result.publicKey.comment ?? ""}\n`

/**
 * Runs `effect-ssh keygen` with the arguments after the command name:
 * exit 0 when written, 2 for a usage error or an existing file, 1 otherwise.
 *
 * @example
 * ```ts
 * keygenMain(["-t", "ed25519", "-f", "id_ed25519"])
 * ```
 */
export const keygenMain = (argv: ReadonlyArray<string>): void => {
  if (argv.includes("-h") || argv.includes("--help")) {
    process.stdout.write(keygenUsage + "\n")
    return
  }
  const args = parseKeygen(argv)
  if (args instanceof UsageError) {
    process.stderr.write(`effect-ssh: ${args.message}\n${keygenUsage}\n`)
    process.exitCode = 2
    return
  }
  const program = runKeygen(args).pipe(
    Effect.map((result) => {
      if (result._tag === "Exists") {
        process.stderr.write(`effect-ssh: ${result.file} exists\n`)
        return 2
      }
      process.stdout.write(report(result))
      return 0
    }),
    Effect.provide(NodeFileSystem.layer)
  )
  NodeRuntime.runMain(
    Effect.onExit(program, (exit) =>
      Effect.sync(() => {
        if (Exit.isSuccess(exit)) process.exitCode = exit.value
        else {
          const error = Cause.squash(exit.cause)
          process.stderr.write(`effect-ssh: ${SshError.isSshError(error) ? error.reason.message : SshError.describeThrown(error)}\n`)
          process.exitCode = 1
        }
      })).pipe(Effect.ignore),
    { disableErrorReporting: true }
  )
}
