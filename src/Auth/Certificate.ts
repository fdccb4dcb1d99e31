/**
 * OpenSSH certificates (`*-cert-v01@openssh.com`, draft-ietf-sshm-cert):
 * a public key, its role (user or host), the names it is valid for, a
 * validity window, critical options and extensions, signed by a CA key.
 *
 * Parsing checks the structure and the certified key; whether a
 * certificate is *acceptable* is a separate question answered by `check`
 * (role, trusted CA, CA signature, validity window, principal, critical
 * options, source address), so both the client (host certificates through
 * `@cert-authority`) and the server (user certificates through trusted CA
 * keys) decide the same way. Parsing throws `KeyParseFailed`, never
 * anything else.
 *
 * @example
 * ```ts
 * const certificate = Certificate.parseOpenSsh(yield* Effect.promise(() => FsPromises.readFile("id_ed25519-cert.pub", "utf8")))
 * const problem = Certificate.check(certificate, { role: "user", principal: "deploy", authorities: [caKey.publicKey] })
 * if (problem === undefined) console.log(`valid for ${certificate.principals.join(",")}`)
 * ```
 * @since 0.1.0
 */
import * as Base64 from "../internal/base64.ts"
import { matchCidrList } from "../internal/cidr.ts"
import * as SecurityKey from "../internal/securityKey.ts"
import { isSshErrorReason, KeyParseFailed } from "../SshError.ts"
import { Reader } from "../Wire/Reader.ts"
import { build } from "../Wire/Writer.ts"
import { matchWildcard } from "./KnownHosts.ts"
import type * as PrivateKey from "./PrivateKey.ts"
import * as PublicKey from "./PublicKey.ts"
import * as Signature from "./Signature.ts"

/** The certificate key types we parse, named as on the wire. */
export type CertificateType =
  | "ssh-ed25519-cert-v01@openssh.com"
  | "ecdsa-sha2-nistp256-cert-v01@openssh.com"
  | "ecdsa-sha2-nistp384-cert-v01@openssh.com"
  | "ecdsa-sha2-nistp521-cert-v01@openssh.com"
  | "ssh-rsa-cert-v01@openssh.com"
  | "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com"
  | "sk-ssh-ed25519-cert-v01@openssh.com"

/** The key a certificate certifies: a plain key, or a FIDO security key. */
export type CertifiedKey = PublicKey.PublicKey | SecurityKey.SecurityKey

/** What a certificate identifies: a user (authentication) or a host (server key). */
export type CertificateRole = "user" | "host"

/** One critical option or extension: its name and its (option-specific) data. */
export interface CertificateOption {
  readonly name: string
  readonly data: Uint8Array
}

/** A parsed certificate. */
export interface Certificate {
  readonly type: CertificateType
  /** The whole certificate blob, as it goes on the wire in place of a key blob. */
  readonly blob: Uint8Array
  readonly comment?: string | undefined
  readonly nonce: Uint8Array
  readonly key: CertifiedKey
  readonly serial: bigint
  readonly role: CertificateRole
  readonly keyId: string
  /** Names the certificate is valid for; empty means any (host certificates only). */
  readonly principals: ReadonlyArray<string>
  /** Seconds since the epoch; valid when `validAfter <= now < validBefore`. */
  readonly validAfter: bigint
  readonly validBefore: bigint
  readonly criticalOptions: ReadonlyArray<CertificateOption>
  readonly extensions: ReadonlyArray<CertificateOption>
  /** The CA key that signed the certificate. */
  readonly signatureKey: PublicKey.PublicKey
  /** The CA's signature blob over `signed`. */
  readonly signature: Uint8Array
  /** The signed bytes: the blob up to and including the signature key. */
  readonly signed: Uint8Array
}

/**
 * The no-expiry `valid before` value (all ones).
 *
 * @example
 * ```ts
 * certificate.validBefore === Certificate.FOREVER // never expires
 * ```
 */
export const FOREVER = 0xffffffffffffffffn

/**
 * The critical options OpenSSH defines for user certificates; any other makes a certificate unusable.
 *
 * @example
 * ```ts
 * Certificate.knownCriticalOptions.includes("force-command") // true
 * ```
 */
export const knownCriticalOptions: ReadonlyArray<string> = ["force-command", "source-address", "verify-required"]

/**
 * The extensions `ssh-keygen -s` grants by default (all of OpenSSH's except no-touch-required).
 *
 * @example
 * ```ts
 * Certificate.sign({ key: userKey.publicKey, role: "user", keyId: "ci", principals: ["ci"], extensions: Certificate.defaultExtensions.map(Certificate.flag) }, caKey)
 * ```
 */
export const defaultExtensions: ReadonlyArray<string> = [
  "permit-X11-forwarding",
  "permit-agent-forwarding",
  "permit-port-forwarding",
  "permit-pty",
  "permit-user-rc"
]

const base: Readonly<Record<CertificateType, PublicKey.KeyType | SecurityKey.SecurityKeyType>> = {
  "ssh-ed25519-cert-v01@openssh.com": "ssh-ed25519",
  "ecdsa-sha2-nistp256-cert-v01@openssh.com": "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384-cert-v01@openssh.com": "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521-cert-v01@openssh.com": "ecdsa-sha2-nistp521",
  "ssh-rsa-cert-v01@openssh.com": "ssh-rsa",
  "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com": "sk-ecdsa-sha2-nistp256@openssh.com",
  "sk-ssh-ed25519-cert-v01@openssh.com": "sk-ssh-ed25519@openssh.com"
}

/**
 * Every certificate type we parse, strongest-first as OpenSSH orders them.
 *
 * @example
 * ```ts
 * Certificate.certificateTypes[0] // "ssh-ed25519-cert-v01@openssh.com"
 * ```
 */
export const certificateTypes: ReadonlyArray<CertificateType> = Object.keys(base) as Array<CertificateType>

/** The RSA certificate signature algorithms of RFC 8332's SHA-2 variants (algorithm names, never key types). */
const rsaCertificateAlgorithms: Readonly<Record<string, Signature.RsaSignatureAlgorithm>> = {
  "rsa-sha2-512-cert-v01@openssh.com": "rsa-sha2-512",
  "rsa-sha2-256-cert-v01@openssh.com": "rsa-sha2-256",
  "ssh-rsa-cert-v01@openssh.com": "ssh-rsa"
}

/**
 * Certificate host key algorithms, in the order a client offers them
 * (OpenSSH's; the SHA-1 `ssh-rsa-cert-v01@openssh.com` left out).
 *
 * @example
 * ```ts
 * Certificate.hostKeyAlgorithms.includes("rsa-sha2-512-cert-v01@openssh.com") // true
 * ```
 */
export const hostKeyAlgorithms: ReadonlyArray<string> = [
  "ssh-ed25519-cert-v01@openssh.com",
  "ecdsa-sha2-nistp256-cert-v01@openssh.com",
  "ecdsa-sha2-nistp384-cert-v01@openssh.com",
  "ecdsa-sha2-nistp521-cert-v01@openssh.com",
  "rsa-sha2-512-cert-v01@openssh.com",
  "rsa-sha2-256-cert-v01@openssh.com"
]

/**
 * The CA signature algorithms accepted by default: sshd's
 * `CASignatureAlgorithms` (everything but SHA-1 `ssh-rsa`).
 *
 * @example
 * ```ts
 * Certificate.defaultCaSignatureAlgorithms.includes("ssh-rsa") // false
 * ```
 */
export const defaultCaSignatureAlgorithms: ReadonlyArray<string> = PublicKey.keyTypes
  .flatMap((type) => PublicKey.signatureAlgorithms(type))
  .filter((algorithm) => algorithm !== "ssh-rsa")

const fail = (message: string): never => {
  throw new KeyParseFailed({ message })
}

/**
 * Tells whether a name is a certificate type we parse.
 *
 * @example
 * ```ts
 * Certificate.isCertificateType("ssh-ed25519-cert-v01@openssh.com") // true
 * Certificate.isCertificateType("rsa-sha2-512-cert-v01@openssh.com") // false: an algorithm, not a key type
 * ```
 */
export const isCertificateType = (name: string): name is CertificateType => Object.hasOwn(base, name)

/**
 * The certificate type of a certificate algorithm name (a type itself, or
 * one of the `rsa-sha2-*-cert-v01@openssh.com` algorithms), or `undefined`.
 *
 * @example
 * ```ts
 * Certificate.certificateTypeOf("rsa-sha2-256-cert-v01@openssh.com") // "ssh-rsa-cert-v01@openssh.com"
 * Certificate.certificateTypeOf("ssh-ed25519")                       // undefined
 * ```
 */
export const certificateTypeOf = (algorithm: string): CertificateType | undefined =>
  isCertificateType(algorithm)
    ? algorithm
    : Object.hasOwn(rsaCertificateAlgorithms, algorithm)
    ? "ssh-rsa-cert-v01@openssh.com"
    : undefined

/**
 * Whether an algorithm name is a certificate algorithm.
 *
 * @example
 * ```ts
 * Certificate.isCertificateAlgorithm("ecdsa-sha2-nistp256-cert-v01@openssh.com") // true
 * ```
 */
export const isCertificateAlgorithm = (algorithm: string): boolean => certificateTypeOf(algorithm) !== undefined

/**
 * The plain signature algorithm behind a certificate algorithm: signatures
 * made with a certificate are those of the certified key.
 *
 * @example
 * ```ts
 * Certificate.signatureAlgorithmOf("rsa-sha2-512-cert-v01@openssh.com") // "rsa-sha2-512"
 * Certificate.signatureAlgorithmOf("ssh-ed25519-cert-v01@openssh.com")  // "ssh-ed25519"
 * ```
 */
export const signatureAlgorithmOf = (algorithm: string): string | undefined =>
  Object.hasOwn(rsaCertificateAlgorithms, algorithm)
    ? rsaCertificateAlgorithms[algorithm]
    : isCertificateType(algorithm)
    ? base[algorithm]
    : undefined

/**
 * The certificate algorithm that signs with `signatureAlgorithm`, for a
 * certificate of `type` (RSA certificates name their hash).
 *
 * @example
 * ```ts
 * Certificate.certificateAlgorithm("ssh-rsa-cert-v01@openssh.com", "rsa-sha2-512") // "rsa-sha2-512-cert-v01@openssh.com"
 * ```
 */
export const certificateAlgorithm = (type: CertificateType, signatureAlgorithm: string): string =>
  type === "ssh-rsa-cert-v01@openssh.com"
    ? Object.keys(rsaCertificateAlgorithms).find((a) => rsaCertificateAlgorithms[a] === signatureAlgorithm) ?? type
    : type

/**
 * The certificate algorithms usable with a certificate of `type`, strongest first.
 *
 * @example
 * ```ts
 * Certificate.algorithmsFor("ssh-rsa-cert-v01@openssh.com") // ["rsa-sha2-512-cert-v01@openssh.com", "rsa-sha2-256-cert-v01@openssh.com", "ssh-rsa-cert-v01@openssh.com"]
 * ```
 */
export const algorithmsFor = (type: CertificateType): ReadonlyArray<string> =>
  type === "ssh-rsa-cert-v01@openssh.com" ? Object.keys(rsaCertificateAlgorithms) : [type]

const readOptions = (section: Uint8Array, what: string): Array<CertificateOption> => {
  const r = new Reader(section)
  const options: Array<CertificateOption> = []
  while (r.remaining > 0) {
    const name = r.utf8(`${what} name`)
    const data = r.string(`${what} data`)
    // duplicates are refused (as OpenSSH does); the lexical order is not enforced, older ssh-keygens broke it
    if (options.some((o) => o.name === name)) fail(`duplicate ${what} ${name}`)
    options.push({ name, data })
  }
  return options
}

const readPrincipals = (section: Uint8Array): Array<string> => {
  const r = new Reader(section)
  const principals: Array<string> = []
  while (r.remaining > 0) principals.push(r.utf8("principal"))
  return principals
}

const decodeBlob = (blob: Uint8Array): Certificate => {
  const r = new Reader(blob)
  const type = r.name("certificate type")
  if (!isCertificateType(type)) return fail(`unsupported certificate type ${type}`)
  const nonce = r.string("nonce")
  const keyStart = r.offset
  const baseType = base[type]
  if (SecurityKey.isSecurityKeyType(baseType)) {
    SecurityKey.readFields(r, baseType)
  } else if (baseType === "ssh-rsa") {
    r.mpintBytes("ssh-rsa e")
    r.mpintBytes("ssh-rsa n")
  } else if (baseType === "ssh-ed25519") {
    r.string("ssh-ed25519 key")
  } else {
    r.name("curve")
    r.string("ecdsa point")
  }
  const keyBlob = build((w) => w.string(baseType).raw(blob.subarray(keyStart, r.offset)))
  const key: CertifiedKey = SecurityKey.isSecurityKeyType(baseType)
    ? SecurityKey.fromBlob(keyBlob)
    : PublicKey.fromBlob(keyBlob)
  const serial = r.uint64()
  const roleNumber = r.uint32()
  if (roleNumber !== 1 && roleNumber !== 2) fail(`unknown certificate role ${roleNumber}`)
  const keyId = r.utf8("key id")
  const principals = readPrincipals(r.string("principals"))
  const validAfter = r.uint64()
  const validBefore = r.uint64()
  const criticalOptions = readOptions(r.string("critical options"), "critical option")
  const extensions = readOptions(r.string("extensions"), "extension")
  r.string("reserved")
  const caBlob = r.string("signature key")
  if (isCertificateType(new Reader(caBlob).name("CA key type"))) fail("a certificate cannot be a CA key")
  const signatureKey = PublicKey.fromBlob(caBlob)
  const signed = blob.subarray(0, r.offset)
  const signature = r.string("signature")
  Signature.decodeSignature(signature)
  r.end("certificate")
  return {
    type,
    blob,
    nonce,
    key,
    serial,
    role: roleNumber === 1 ? "user" : "host",
    keyId,
    principals,
    validAfter,
    validBefore,
    criticalOptions,
    extensions,
    signatureKey,
    signature,
    signed
  }
}

/**
 * Decodes a certificate blob (copied). The CA signature is *not* checked
 * here: see `verifySignature` and `check`.
 *
 * @throws KeyParseFailed for an unsupported type, a malformed or truncated
 * blob, a certified key or CA key that does not parse, a certificate as CA.
 * @example
 * ```ts
 * const hostCertificate = Certificate.fromBlob(blob) // the host key blob of a KEXDH_REPLY
 * hostCertificate.role // "host"
 * ```
 */
export const fromBlob = (blob: Uint8Array): Certificate => PublicKey.parsing("certificate", () => decodeBlob(blob.slice()))

/**
 * Parses a certificate line (`ssh-keygen -s` output: `type base64 [comment]`).
 *
 * @throws KeyParseFailed
 * @example
 * ```ts
 * const certificate = Certificate.parseOpenSsh(yield* Effect.promise(() => FsPromises.readFile("id_ed25519-cert.pub", "utf8")))
 * certificate.keyId // "deploy@ci"
 * ```
 */
export const parseOpenSsh = (line: string): Certificate => {
  const [type = "", data = "", ...comment] = line.trim().split(/\s+/)
  const blob = Base64.decode(data)
  if (blob === undefined) return fail(`invalid base64 in ${type} certificate`)
  const cert = fromBlob(blob)
  if (cert.type !== type) return fail(`type field ${type} does not match the certificate's type ${cert.type}`)
  return comment.length === 0 ? cert : { ...cert, comment: comment.join(" ") }
}

/**
 * The one-line OpenSSH form.
 *
 * @example
 * ```ts
 * Certificate.toOpenSsh(certificate) // "ssh-ed25519-cert-v01@openssh.com AAAAIHNzaC1lZDI1NTE5LWNlcnQ... comment"
 * ```
 */
export const toOpenSsh = (cert: Certificate): string => {
  const text = `${cert.type} ${Base64.encode(cert.blob)}`
  return cert.comment === undefined || cert.comment.length === 0 ? text : `${text} ${cert.comment}`
}

/**
 * The certificate's fingerprint, which (as `ssh-keygen -l` prints it) is
 * that of the certified key.
 *
 * @example
 * ```ts
 * Certificate.fingerprint(certificate) === PublicKey.fingerprint(userKey.publicKey) // true for a certificate of userKey
 * ```
 */
export const fingerprint = (cert: Certificate): string =>
  SecurityKey.isSecurityKeyType(cert.key.type)
    ? SecurityKey.fingerprint(cert.key as SecurityKey.SecurityKey)
    : PublicKey.fingerprint(cert.key as PublicKey.PublicKey)

/**
 * Whether the CA's signature over the certificate verifies, with a CA
 * signature algorithm in `algorithms` (default: all but SHA-1 `ssh-rsa`).
 *
 * @example
 * ```ts
 * Certificate.verifySignature(certificate) // true, but false when the CA signed it with ssh-rsa (SHA-1)
 * Certificate.verifySignature(certificate, [...Certificate.defaultCaSignatureAlgorithms, "ssh-rsa"]) // true for those too
 * ```
 */
export const verifySignature = (cert: Certificate, algorithms: ReadonlyArray<string> = defaultCaSignatureAlgorithms): boolean =>
  Signature.verify(cert.signatureKey, cert.signature, cert.signed, algorithms)

/**
 * The data of a critical option or extension, or `undefined` when absent.
 *
 * @example
 * ```ts
 * Certificate.option(certificate.extensions, "permit-pty") // Uint8Array(0) (a flag)
 * ```
 */
export const option = (options: ReadonlyArray<CertificateOption>, name: string): Uint8Array | undefined =>
  options.find((o) => o.name === name)?.data

/**
 * Whether the certificate carries an extension (a permission such as `permit-agent-forwarding`).
 *
 * @example
 * ```ts
 * Certificate.hasExtension(certificate, "permit-pty") // true
 * ```
 */
export const hasExtension = (cert: Certificate, name: string): boolean => option(cert.extensions, name) !== undefined

const stringOption = (cert: Certificate, name: string): string | undefined => {
  const data = option(cert.criticalOptions, name)
  if (data === undefined) return undefined
  return PublicKey.parsing(`${name} option`, () => {
    const r = new Reader(data)
    const value = r.utf8(name)
    r.end(`${name} option`)
    return value
  })
}

/**
 * The `force-command` critical option: the only command a session of this
 * user certificate may run.
 *
 * @throws KeyParseFailed when the option's data is malformed.
 * @example
 * ```ts
 * Certificate.forceCommand(certificate) // "/usr/bin/backup" or undefined
 * ```
 */
export const forceCommand = (cert: Certificate): string | undefined => stringOption(cert, "force-command")

/**
 * The `source-address` critical option: the CIDR list the certificate may be used from.
 *
 * @throws KeyParseFailed when the option's data is malformed.
 * @example
 * ```ts
 * Certificate.sourceAddress(certificate) // "10.0.0.0/8,::1/128" or undefined
 * ```
 */
export const sourceAddress = (cert: Certificate): string | undefined => stringOption(cert, "source-address")

/** What `check` needs to decide whether a certificate is acceptable. */
export interface CheckOptions {
  /** The role the certificate must have. */
  readonly role: CertificateRole
  /** The CA keys trusted to sign it. */
  readonly authorities: ReadonlyArray<PublicKey.PublicKey>
  /** The name that must be among the principals (a user name, or the host name the client dialed). */
  readonly principal?: string | undefined
  /** Current time in seconds since the epoch (default: now). */
  readonly now?: number | bigint | undefined
  /** The peer's address, for the `source-address` option (user certificates). */
  readonly remoteAddress?: string | undefined
  /** CA signature algorithms to accept (default `defaultCaSignatureAlgorithms`). */
  readonly caSignatureAlgorithms?: ReadonlyArray<string> | undefined
}

const formatTime = (seconds: bigint): string =>
  seconds >= FOREVER ? "forever" : new Date(Number(seconds) * 1000).toISOString().replace(/\.000Z$/, "Z")

const principalMatches = (cert: Certificate, principal: string): boolean =>
  cert.role === "host"
    ? cert.principals.some((p) => matchWildcard(p.toLowerCase(), principal.toLowerCase()))
    : cert.principals.includes(principal)

/**
 * Why a certificate is not acceptable, or `undefined` when it is. In order:
 * role, trusted CA, CA signature, validity window, principal (a user
 * certificate must list the user; a host certificate with no principals is
 * valid for any host, and its principals may hold `*`/`?` wildcards, as
 * OpenSSH allows), unknown critical options (a host certificate may carry
 * none), and `source-address` against `remoteAddress`.
 *
 * @example
 * ```ts
 * Certificate.check(certificate, { role: "host", principal: "db.example.com", authorities: [caKey.publicKey] })
 * // undefined, or e.g. "certificate expired at 2010-12-31T13:00:00Z"
 * ```
 */
export const check = (cert: Certificate, options: CheckOptions): string | undefined => {
  if (cert.role !== options.role) return `a ${cert.role} certificate cannot be used as a ${options.role} certificate`
  if (!options.authorities.some((ca) => PublicKey.equals(ca, cert.signatureKey))) {
    return `certificate signed by an untrusted CA (${cert.signatureKey.type} ${PublicKey.fingerprint(cert.signatureKey)})`
  }
  if (!verifySignature(cert, options.caSignatureAlgorithms)) {
    return "the CA signature on the certificate does not verify (or uses a refused algorithm)"
  }
  const now = BigInt(typeof options.now === "bigint" ? options.now : Math.floor(options.now ?? Date.now() / 1000))
  if (now < cert.validAfter) return `certificate not valid before ${formatTime(cert.validAfter)}`
  if (now >= cert.validBefore) return `certificate expired at ${formatTime(cert.validBefore)}`
  if (cert.principals.length === 0) {
    if (cert.role === "user") return "user certificate lists no principals"
  } else if (options.principal !== undefined && !principalMatches(cert, options.principal)) {
    return `"${options.principal}" is not a principal of the certificate (${cert.principals.join(", ")})`
  }
  for (const { name } of cert.criticalOptions) {
    if (cert.role === "host" || !knownCriticalOptions.includes(name)) return `unsupported critical option ${name}`
  }
  if (cert.role === "user") {
    let sources: string | undefined
    try {
      sources = sourceAddress(cert)
      forceCommand(cert)
    } catch (u) {
      if (!isSshErrorReason(u)) throw u
      return u instanceof KeyParseFailed ? u.message : "malformed critical option"
    }
    if (sources !== undefined) {
      const matched = options.remoteAddress === undefined ? false : matchCidrList(sources, options.remoteAddress)
      if (matched === undefined) return `malformed source-address ${sources}`
      if (!matched) return `source address ${options.remoteAddress ?? "(unknown)"} is not allowed by the certificate (${sources})`
    }
  }
  return undefined
}

/**
 * The key and plain signature algorithm that verify signatures made under
 * `algorithm` with the key or certificate `blob` (a certificate's signatures
 * are those of its certified key). Throws `KeyParseFailed` when the blob
 * does not parse or does not match the algorithm.
 *
 * @example
 * ```ts
 * const { key, algorithm } = Certificate.signer(blob, "ssh-ed25519-cert-v01@openssh.com")
 * if (key.type === "ssh-ed25519") Signature.verify(key, signature, data, [algorithm]) // (a security key verifies its own way)
 * ```
 */
export const signer = (
  blob: Uint8Array,
  algorithm: string
): { readonly key: CertifiedKey; readonly algorithm: string; readonly certificate?: Certificate | undefined } => {
  const certType = certificateTypeOf(algorithm)
  if (certType === undefined) {
    return SecurityKey.isSecurityKeyType(algorithm)
      ? { key: SecurityKey.fromBlob(blob), algorithm }
      : { key: PublicKey.fromBlob(blob), algorithm }
  }
  const certificate = fromBlob(blob)
  if (certificate.type !== certType) return fail(`a ${certificate.type} does not sign ${algorithm}`)
  return { key: certificate.key, algorithm: signatureAlgorithmOf(algorithm)!, certificate }
}

/**
 * Verifies a signature made under `algorithm` by the key or certificate
 * `blob` (a host key in the key exchange): false when the blob does not
 * parse, does not fit the algorithm, or the signature does not verify.
 * Security keys never sign this way.
 *
 * @example
 * ```ts
 * Certificate.verifyKeySignature(blob, "rsa-sha2-512-cert-v01@openssh.com", signature, data) // true
 * ```
 */
export const verifyKeySignature = (blob: Uint8Array, algorithm: string, signature: Uint8Array, data: Uint8Array): boolean => {
  try {
    const { key, algorithm: plain } = signer(blob, algorithm)
    return !SecurityKey.isSecurityKeyType(key.type) && Signature.verify(key as PublicKey.PublicKey, signature, data, [plain])
  } catch {
    return false
  }
}

/** What `sign` puts in a certificate. */
export interface CertificateFields {
  readonly key: CertifiedKey
  readonly role: CertificateRole
  readonly keyId: string
  /** Default: none (any host, for a host certificate; a user certificate needs some). */
  readonly principals?: ReadonlyArray<string> | undefined
  readonly serial?: bigint | undefined
  /** Default 0: valid from the start of time. */
  readonly validAfter?: bigint | undefined
  /** Default `FOREVER`. */
  readonly validBefore?: bigint | undefined
  readonly criticalOptions?: ReadonlyArray<CertificateOption> | undefined
  /** Default: `defaultExtensions` for a user certificate, none for a host certificate (as `ssh-keygen -s`). */
  readonly extensions?: ReadonlyArray<CertificateOption> | undefined
  /** Default: 32 random bytes. */
  readonly nonce?: Uint8Array | undefined
  readonly comment?: string | undefined
}

/**
 * A flag option or extension (empty data), e.g. `permit-pty`.
 *
 * @example
 * ```ts
 * Certificate.flag("permit-agent-forwarding") // { name: "permit-agent-forwarding", data: Uint8Array(0) }
 * ```
 */
export const flag = (name: string): CertificateOption => ({ name, data: new Uint8Array(0) })

/**
 * A string-valued option, e.g. `force-command` (its data is the string, nested).
 *
 * @example
 * ```ts
 * Certificate.stringValue("source-address", "10.0.0.0/8")
 * ```
 */
export const stringValue = (name: string, value: string): CertificateOption => ({ name, data: build((w) => w.string(value)) })

const writeOptions = (options: ReadonlyArray<CertificateOption>): Uint8Array =>
  build((w) => {
    // the format requires lexical order by name
    for (const o of [...options].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      w.string(o.name).string(o.data)
    }
  })

/**
 * Issues a certificate for `fields.key`, signed by the CA key `ca` (with
 * `algorithm`, by default the CA's strongest), as `ssh-keygen -s` does.
 *
 * @example
 * ```ts
 * const certificate = Certificate.sign({ key: userKey.publicKey, role: "user", keyId: "deploy", principals: ["deploy"] }, caKey)
 * yield* Effect.promise(() => FsPromises.writeFile("id_ed25519-cert.pub", Certificate.toOpenSsh(certificate) + "\n"))
 * ```
 */
export const sign = (fields: CertificateFields, ca: PrivateKey.PrivateKey, algorithm?: string): Certificate => {
  const keyType = fields.key.type
  const type = certificateTypes.find((t) => base[t] === keyType)
  if (type === undefined) return fail(`cannot certify a ${keyType} key`)
  const keyFields = new Reader(fields.key.blob)
  keyFields.name()
  const signed = build((w) =>
    w.string(type)
      .string(fields.nonce ?? crypto.getRandomValues(new Uint8Array(32)))
      .raw(keyFields.rest())
      .uint64(fields.serial ?? 0n)
      .uint32(fields.role === "user" ? 1 : 2)
      .string(fields.keyId)
      .string(build((p) => {
        for (const principal of fields.principals ?? []) p.string(principal)
      }))
      .uint64(fields.validAfter ?? 0n)
      .uint64(fields.validBefore ?? FOREVER)
      .string(writeOptions(fields.criticalOptions ?? []))
      .string(writeOptions(fields.extensions ?? (fields.role === "user" ? defaultExtensions.map(flag) : [])))
      .string(new Uint8Array(0))
      .string(ca.publicKey.blob)
  )
  const signature = ca.sign(signed, algorithm)
  const cert = fromBlob(build((w) => w.raw(signed).string(signature)))
  return fields.comment === undefined ? cert : { ...cert, comment: fields.comment }
}
