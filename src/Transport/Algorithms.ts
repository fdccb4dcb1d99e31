/**
 * Algorithm defaults and the supported sets, per category, and their
 * resolution from user configuration in OpenSSH's list syntax
 * (`+`, `-`, `^`, plain list; see `AlgorithmList`).
 *
 * Legacy algorithms (ssh-rsa with SHA-1, hmac-sha1, SHA-1 DH groups) are
 * supported but never in the defaults: they must be named explicitly.
 *
 * @since 0.1.0
 */
import * as Certificate from "../Auth/Certificate.ts"
import * as AlgorithmList from "./AlgorithmList.ts"
import * as Cipher from "./Cipher.ts"
import * as Compression from "./Compression.ts"
import * as Kex from "./Kex.ts"
import type { Algorithms } from "./Transport.ts"

/** Key exchange methods we implement, default order first (mlkem only where the runtime has ML-KEM). */
export const kexDefaults: ReadonlyArray<string> = Kex.kexNames
export const kexSupported: ReadonlyArray<string> = Kex.supportedKexNames

/** Host key (signature) algorithms. */
export const hostKeyDefaults: ReadonlyArray<string> = [
  "ssh-ed25519",
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521",
  "rsa-sha2-512",
  "rsa-sha2-256"
]
/**
 * Host key algorithms that may be configured: the defaults, SHA-1 `ssh-rsa`,
 * and the OpenSSH certificate algorithms (a client asks for those itself
 * when known_hosts has a `@cert-authority` for the host).
 */
export const hostKeySupported: ReadonlyArray<string> = [
  ...hostKeyDefaults,
  "ssh-rsa",
  ...Certificate.hostKeyAlgorithms,
  "ssh-rsa-cert-v01@openssh.com"
]

/** Ciphers: AES-GCM first because node:crypto runs it on AES-NI at GB/s. */
export const cipherDefaults: ReadonlyArray<string> = Cipher.cipherNames
export const cipherSupported: ReadonlyArray<string> = Cipher.cipherNames

/** MACs (used only with the CTR ciphers; AEAD ciphers carry their own tag). SHA-1 MACs are opt-in. */
export const macSupported: ReadonlyArray<string> = Cipher.macNames
export const macDefaults: ReadonlyArray<string> = macSupported.filter((name) => !name.startsWith("hmac-sha1"))

/** User-facing algorithm configuration: each field a list, or a string in OpenSSH syntax ("+x", "-x", "^x", "a,b"). */
export interface AlgorithmOptions {
  readonly kex?: string | ReadonlyArray<string> | undefined
  readonly hostKey?: string | ReadonlyArray<string> | undefined
  readonly cipher?: string | ReadonlyArray<string> | undefined
  readonly mac?: string | ReadonlyArray<string> | undefined
  /**
   * Compression methods (`none`, `zlib@openssh.com`, `zlib`), in OpenSSH's
   * list syntax against the role's offer (`Compression.clientOffer`,
   * `Compression.serverOffer`); absent, the role's offer.
   */
  readonly compression?: string | ReadonlyArray<string> | undefined
}

/**
 * The compression list a `compression` option is resolved against, when it
 * is not a client's plain `none`: `Compression.clientOffer(true)` for a
 * client asked to compress (`ssh -C`), `Compression.serverOffer()` for a server.
 */
export interface ResolveDefaults {
  readonly compression?: ReadonlyArray<string> | undefined
}

/**
 * Resolves user options against the defaults; throws `UnknownAlgorithm` for
 * a name we do not implement. Compression is left out (the transport's
 * default for its role) unless `options` or `defaults` name it.
 *
 * @example
 * ```ts
 * resolve({ cipher: "^chacha20-poly1305@openssh.com", mac: "+hmac-sha1" })
 * resolve({}, { compression: Compression.clientOffer(true) }).compression // ["zlib@openssh.com", "zlib", "none"]
 * resolve({ compression: "+zlib" }, { compression: Compression.serverOffer() }).compression // ["none", "zlib@openssh.com", "zlib"]
 * ```
 */
export const resolve = (options: AlgorithmOptions = {}, defaults: ResolveDefaults = {}): Algorithms => {
  const algorithms: Algorithms = {
    kex: pick("kex", options.kex, kexDefaults, kexSupported),
    hostKey: pick("host key", options.hostKey, hostKeyDefaults, hostKeySupported),
    cipher: pick("cipher", options.cipher, cipherDefaults, cipherSupported),
    mac: pick("MAC", options.mac, macDefaults, macSupported)
  }
  if (options.compression === undefined && defaults.compression === undefined) return algorithms
  const compression = pick(
    "compression",
    options.compression,
    defaults.compression ?? Compression.clientOffer(false),
    Compression.supportedNames()
  )
  return { ...algorithms, compression }
}

const pick = (
  kind: string,
  spec: string | ReadonlyArray<string> | undefined,
  defaults: ReadonlyArray<string>,
  supported: ReadonlyArray<string>
): ReadonlyArray<string> => spec === undefined ? defaults : AlgorithmList.resolve(kind, spec, defaults, supported)
