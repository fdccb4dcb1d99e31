/**
 * PuTTY private key files (`.ppk`, PuTTY manual appendix C), versions 2 and 3,
 * unencrypted or protected with `aes256-cbc`.
 *
 * A file is a list of `Name: value` headers with two base64 blocks: the
 * public key blob and the private part (type-specific mpints/strings). It is
 * authenticated by `Private-MAC` over the algorithm, encryption, comment,
 * public blob and (decrypted) private blob:
 *
 * - v2: cipher key `SHA-1(0000 ‖ pass) ‖ SHA-1(0001 ‖ pass)`, zero IV, MAC
 *   HMAC-SHA-1 keyed with `SHA-1("putty-private-key-file-mac-key" ‖ pass)`.
 * - v3: key, IV and MAC key from Argon2 (id, i or d) with the file's memory,
 *   passes, parallelism and salt; MAC HMAC-SHA-256 (empty key when unencrypted).
 *
 * `decode` returns the key in the SSH agent encoding, which
 * `PrivateKey.readPrivateFields` turns into a signing key; `PrivateKey.parse`
 * does this for files starting with `PuTTY-User-Key-File-`. Failures throw
 * `KeyParseFailed`, `PassphraseRequired` or `WrongPassphrase` (a MAC that does
 * not match under a passphrase means the passphrase is wrong).
 *
 * @example
 * ```ts
 * const ppk = Ppk.decode(yield* Effect.promise(() => FsPromises.readFile("key.ppk", "utf8")), "passphrase")
 * ppk.publicKey.type // "ssh-ed25519"
 * ```
 * @since 0.1.0
 */
import { cbc } from "@noble/ciphers/aes.js"
import { argon2d, argon2i, argon2id } from "@noble/hashes/argon2.js"
import { hmac } from "@noble/hashes/hmac.js"
import { sha1 } from "@noble/hashes/legacy.js"
import { sha256 } from "@noble/hashes/sha2.js"
import * as Base64 from "../internal/base64.ts"
import { concat, equalConstantTime, fromHex, utf8 } from "../internal/bytes.ts"
import { KeyParseFailed, PassphraseRequired, WrongPassphrase } from "../SshError.ts"
import { Reader } from "../Wire/Reader.ts"
import { build } from "../Wire/Writer.ts"
import * as PublicKey from "./PublicKey.ts"

/** A decoded `.ppk` file. */
export interface PpkFile {
  readonly version: 2 | 3
  readonly comment: string
  readonly encrypted: boolean
  readonly publicKey: PublicKey.PublicKey
  /** The private key in the SSH agent encoding (`string type` then the type's fields), as `PrivateKey.readPrivateFields` reads it. */
  readonly privateFields: Uint8Array
}

/** Argon2 parameters of a v3 file. */
export interface Argon2Parameters {
  readonly flavour: "Argon2id" | "Argon2i" | "Argon2d"
  /** KiB. */
  readonly memory: number
  readonly passes: number
  readonly parallelism: number
  readonly salt: Uint8Array
}

const HEADER_PREFIX = "PuTTY-User-Key-File-"
const AES_BLOCK_SIZE = 16
const V2_MAC_KEY_LABEL = "putty-private-key-file-mac-key"
/** puttygen uses 8 MiB and a few dozen passes; a file asking for far more is refused, not run for minutes. */
const MAX_ARGON2_MEMORY_KIB = 256 * 1024
const MAX_ARGON2_WORK = 4 * 1024 * 1024
const MAX_ARGON2_PARALLELISM = 16
const MAX_SALT_LENGTH = 1024

const fail = (message: string): never => {
  throw new KeyParseFailed({ message })
}

/**
 * Whether a text looks like a PuTTY key file.
 *
 * @example
 * ```ts
 * Ppk.isPpk("PuTTY-User-Key-File-3: ssh-ed25519\n...") // true
 * ```
 */
export const isPpk = (text: string): boolean => text.trimStart().startsWith(HEADER_PREFIX)

// ---------------------------------------------------------------------------
// the text layer: headers and base64 blocks, in PuTTY's fixed order

class Lines {
  private readonly lines: ReadonlyArray<string>
  private index = 0
  constructor(text: string) {
    this.lines = text.trimStart().split(/\r?\n/)
  }
  header(name: string): string {
    const line = this.lines[this.index] ?? fail(`missing "${name}:" header`)
    // an empty value may have lost its trailing space ("Comment:")
    const value = line === `${name}:` ? "" : line.startsWith(`${name}: `) ? line.slice(name.length + 2) : undefined
    if (value === undefined) return fail(`expected "${name}:" header, found "${line.slice(0, 40)}"`)
    this.index++
    return value
  }
  /** The first line, `PuTTY-User-Key-File-<version>: <algorithm>`. */
  title(): { readonly version: number; readonly algorithm: string } {
    const match = /^PuTTY-User-Key-File-(\d{1,3}): (.*)$/.exec(this.lines[this.index++] ?? "")
    return match === null ? fail("not a PuTTY key file") : { version: Number(match[1]), algorithm: match[2]! }
  }
  count(name: string): number {
    const value = this.header(name)
    const n = /^\d{1,6}$/.test(value) ? Number(value) : fail(`bad ${name} "${value.slice(0, 20)}"`)
    if (n > this.lines.length - this.index) fail(`${name} is ${n} but only ${this.lines.length - this.index} lines follow`)
    return n
  }
  block(name: string): Uint8Array {
    const n = this.count(name)
    const text = this.lines.slice(this.index, this.index + n).join("")
    this.index += n
    return Base64.decode(text) ?? fail(`invalid base64 in the ${name} block`)
  }
  end(): void {
    if (this.lines.slice(this.index).some((line) => line.trim() !== "")) fail("unexpected lines after Private-MAC")
  }
}

const positiveInteger = (lines: Lines, name: string, max: number): number => {
  const value = lines.header(name)
  const n = /^\d{1,10}$/.test(value) ? Number(value) : 0
  if (n < 1 || n > max) fail(`${name} ${value.slice(0, 20)} outside 1..${max}`)
  return n
}

const hexField = (lines: Lines, name: string, maxLength: number): Uint8Array => {
  const value = lines.header(name)
  if (value.length > maxLength * 2 || !/^(?:[0-9a-fA-F]{2})*$/.test(value)) fail(`${name} is not hex`)
  return fromHex(value)
}

const readArgon2 = (lines: Lines): Argon2Parameters => {
  const flavour = lines.header("Key-Derivation")
  if (flavour !== "Argon2id" && flavour !== "Argon2i" && flavour !== "Argon2d") {
    return fail(`unsupported PPK key derivation ${flavour.slice(0, 20)}`)
  }
  const memory = positiveInteger(lines, "Argon2-Memory", MAX_ARGON2_MEMORY_KIB)
  const passes = positiveInteger(lines, "Argon2-Passes", MAX_ARGON2_WORK)
  const parallelism = positiveInteger(lines, "Argon2-Parallelism", MAX_ARGON2_PARALLELISM)
  const salt = hexField(lines, "Argon2-Salt", MAX_SALT_LENGTH)
  if (memory * passes > MAX_ARGON2_WORK) fail(`Argon2 cost ${memory} KiB × ${passes} passes is above the limit`)
  if (memory < 8 * parallelism) fail(`Argon2-Memory ${memory} is below 8 × parallelism`)
  if (salt.length < 8) fail(`Argon2-Salt of ${salt.length} bytes`)
  return { flavour, memory, passes, parallelism, salt }
}

// ---------------------------------------------------------------------------
// key derivation

interface Keys {
  readonly cipherKey: Uint8Array
  readonly iv: Uint8Array
  readonly macKey: Uint8Array
}

const passphraseBytes = (passphrase: string | Uint8Array): Uint8Array =>
  typeof passphrase === "string" ? utf8(passphrase) : passphrase

const v2Keys = (passphrase: Uint8Array, encrypted: boolean): Keys => {
  const counter = (n: number) => new Uint8Array([0, 0, 0, n])
  return {
    cipherKey: encrypted
      ? concat([sha1(concat([counter(0), passphrase])), sha1(concat([counter(1), passphrase]))]).subarray(0, 32)
      : new Uint8Array(0),
    iv: new Uint8Array(AES_BLOCK_SIZE),
    macKey: sha1(concat([utf8(V2_MAC_KEY_LABEL), passphrase]))
  }
}

const argon2 = { Argon2id: argon2id, Argon2i: argon2i, Argon2d: argon2d } as const

const v3Keys = (passphrase: Uint8Array, parameters: Argon2Parameters | undefined): Keys => {
  if (parameters === undefined) return { cipherKey: new Uint8Array(0), iv: new Uint8Array(0), macKey: new Uint8Array(0) }
  const { flavour, memory, parallelism, passes, salt } = parameters
  const derived = argon2[flavour](passphrase, salt, { t: passes, m: memory, p: parallelism, dkLen: 80 })
  return { cipherKey: derived.subarray(0, 32), iv: derived.subarray(32, 48), macKey: derived.subarray(48, 80) }
}

// ---------------------------------------------------------------------------
// private blobs → the agent encoding

/** Re-encodes PuTTY's private fields (which follow the public blob's) in the agent order. */
const agentFields = (publicKey: PublicKey.PublicKey, privateBlob: Uint8Array): Uint8Array => {
  const priv = new Reader(privateBlob)
  const fields = build((w) => {
    w.string(publicKey.type)
    switch (publicKey.type) {
      case "ssh-ed25519": {
        const seed = priv.string("ssh-ed25519 private key")
        if (seed.length !== 32) fail(`ssh-ed25519 private key of ${seed.length} bytes`)
        w.string(publicKey.key).string(concat([seed, publicKey.key]))
        break
      }
      case "ssh-rsa": {
        const d = priv.mpintBytes("ssh-rsa d")
        const p = priv.mpintBytes("ssh-rsa p")
        const q = priv.mpintBytes("ssh-rsa q")
        const iqmp = priv.mpintBytes("ssh-rsa iqmp")
        for (const part of [publicKey.n, publicKey.e, d, iqmp, p, q]) w.mpintFromUnsigned(part)
        break
      }
      default:
        w.string(publicKey.curve).string(publicKey.point)
        w.mpintFromUnsigned(priv.mpintBytes("ecdsa private scalar"))
    }
  })
  // what is left is the padding up to the cipher block, covered by the MAC
  if (priv.rest().length >= AES_BLOCK_SIZE) fail("too many bytes after the private key fields")
  return fields
}

// ---------------------------------------------------------------------------

/**
 * Decodes a PuTTY `.ppk` file (v2 or v3), decrypting it with the passphrase
 * when it is encrypted, and checks its MAC.
 *
 * @throws KeyParseFailed for a malformed file, an unsupported key type
 * (ssh-dss, ssh-ed448) or a corrupt unencrypted file, PassphraseRequired for
 * an encrypted file without a passphrase, WrongPassphrase when the MAC does
 * not match under the passphrase.
 * @example
 * ```ts
 * const text = yield* Effect.promise(() => FsPromises.readFile("key.ppk", "utf8"))
 * const { publicKey, privateFields, comment } = Ppk.decode(text, "node.js")
 * const key = PrivateKey.readPrivateFields(new Reader.Reader(privateFields), comment)
 * ```
 */
export const decode = (text: string, passphrase?: string | Uint8Array): PpkFile =>
  PublicKey.parsing("PuTTY key file", () => {
    const lines = new Lines(text)
    const { algorithm, version } = lines.title()
    if (version !== 2 && version !== 3) return fail(`unsupported PuTTY key file version ${version} (only 2 and 3)`)
    if (!PublicKey.isKeyType(algorithm)) return fail(`unsupported key type ${algorithm.slice(0, 40)}`)
    const encryption = lines.header("Encryption")
    if (encryption !== "none" && encryption !== "aes256-cbc") return fail(`unsupported PPK encryption ${encryption.slice(0, 20)}`)
    const encrypted = encryption === "aes256-cbc"
    const comment = lines.header("Comment")
    const publicBlob = lines.block("Public-Lines")
    const argon = version === 3 && encrypted ? readArgon2(lines) : undefined
    const sealed = lines.block("Private-Lines")
    const mac = hexField(lines, "Private-MAC", 64)
    lines.end()
    if (mac.length !== (version === 2 ? 20 : 32)) fail(`Private-MAC of ${mac.length} bytes`)

    if (encrypted && passphrase === undefined) {
      throw new PassphraseRequired({ message: "the PuTTY key is encrypted (aes256-cbc); a passphrase is needed" })
    }
    if (encrypted && (sealed.length === 0 || sealed.length % AES_BLOCK_SIZE !== 0)) {
      fail(`the encrypted private blob is not a multiple of ${AES_BLOCK_SIZE} bytes`)
    }
    const secret = encrypted ? passphraseBytes(passphrase!) : new Uint8Array(0)
    const keys = version === 2 ? v2Keys(secret, encrypted) : v3Keys(secret, argon)
    const privateBlob = encrypted ? cbc(keys.cipherKey, keys.iv, { disablePadding: true }).decrypt(sealed) : sealed
    const macInput = build((w) =>
      w.string(algorithm).string(encryption).string(comment).string(publicBlob).string(privateBlob)
    )
    const expected = version === 2 ? hmac(sha1, keys.macKey, macInput) : hmac(sha256, keys.macKey, macInput)
    if (!equalConstantTime(mac, expected)) {
      if (encrypted) throw new WrongPassphrase({ message: "wrong passphrase: the PuTTY key's MAC does not match" })
      fail("corrupt PuTTY key: Private-MAC does not match")
    }
    const publicKey = PublicKey.fromBlob(publicBlob)
    if (publicKey.type !== algorithm) fail(`the header says ${algorithm} but the public key is ${publicKey.type}`)
    return { version: version as 2 | 3, comment, encrypted, publicKey, privateFields: agentFields(publicKey, privateBlob) }
  })
