/**
 * SSH private keys: parsing OpenSSH's `openssh-key-v1` files (PROTOCOL.key)
 * and PEM files (PKCS#1 RSA, SEC1 EC, PKCS#8), generating keys, writing
 * `openssh-key-v1`, and signing.
 *
 * A `PrivateKey` shows only its type, public key and comment; the secret
 * material lives in a module-private `WeakMap`, so logging or serializing a
 * key never prints it. Parsing throws `KeyParseFailed`, `PassphraseRequired`
 * or `WrongPassphrase` — never anything else.
 *
 * @example
 * ```ts
 * const key = PrivateKey.parse(yield* Effect.promise(() => FsPromises.readFile("id_ed25519", "utf8")))
 * const signature = key.sign(data) // string("ssh-ed25519") || string(64 bytes)
 * Signature.verify(key.publicKey, signature, data) // true
 * ```
 * @since 0.1.0
 */
import { cbc, ctr, gcm } from "@noble/ciphers/aes.js"
import { ed25519 } from "@noble/curves/ed25519.js"
import * as crypto from "node:crypto"
import * as Base64 from "../internal/base64.ts"
import { bcryptPbkdf } from "../internal/bcryptPbkdf.ts"
import { concat, equal, fromHex, fromUtf8, toHex, utf8 } from "../internal/bytes.ts"
import {
  ConfigParseError,
  describeThrown,
  isSshErrorReason,
  KeyParseFailed,
  PassphraseRequired,
  UnknownAlgorithm,
  WrongPassphrase
} from "../SshError.ts"
import { Reader } from "../Wire/Reader.ts"
import { build, type Writer } from "../Wire/Writer.ts"
import * as Ppk from "./Ppk.ts"
import * as PublicKey from "./PublicKey.ts"
import * as Signature from "./Signature.ts"

/** A private key that can sign; its secret material is not enumerable. */
export interface PrivateKey {
  readonly type: PublicKey.KeyType
  readonly publicKey: PublicKey.PublicKey
  readonly comment: string
  /**
   * Signs `data` and returns the signature blob `string(algorithm) || string(raw)`.
   * RSA keys take `rsa-sha2-512` (the default), `rsa-sha2-256` or `ssh-rsa`;
   * other keys have one algorithm, their type. Throws `UnknownAlgorithm` for
   * an algorithm the key cannot produce.
   */
  readonly sign: (data: Uint8Array, algorithm?: string) => Uint8Array
}

interface Ed25519Secret {
  readonly type: "ssh-ed25519"
  readonly seed: Uint8Array
}

interface EcdsaSecret {
  readonly type: PublicKey.EcdsaKeyType
  readonly curve: PublicKey.EcdsaCurve
  readonly d: Uint8Array
}

interface RsaSecret {
  readonly type: "ssh-rsa"
  readonly n: Uint8Array
  readonly e: Uint8Array
  readonly d: Uint8Array
  readonly iqmp: Uint8Array
  readonly p: Uint8Array
  readonly q: Uint8Array
}

type Secret = Ed25519Secret | EcdsaSecret | RsaSecret

const secrets = new WeakMap<PrivateKey, Secret>()

const MAGIC = utf8("openssh-key-v1\0")
const BEGIN_OPENSSH = "-----BEGIN OPENSSH PRIVATE KEY-----"
const END_OPENSSH = "-----END OPENSSH PRIVATE KEY-----"
/** Cipher "none" pads the private section to 8 bytes. */
const UNENCRYPTED_BLOCK_SIZE = 8

const fail = (message: string): never => {
  throw new KeyParseFailed({ message })
}

const toBigInt = (magnitude: Uint8Array): bigint => (magnitude.length === 0 ? 0n : BigInt("0x" + toHex(magnitude)))

const fromBigInt = (value: bigint): Uint8Array => {
  const hex = value.toString(16)
  return fromHex(hex.length % 2 === 0 ? hex : "0" + hex)
}

const leftPad = (bytes: Uint8Array, size: number): Uint8Array => {
  if (bytes.length >= size) return bytes
  const out = new Uint8Array(size)
  out.set(bytes, size - bytes.length)
  return out
}

// ---------------------------------------------------------------------------
// secret material → key

/** PKCS#8 DER before a raw Ed25519 seed (RFC 8410), and the length of the SPKI header before a public key. */
const ED25519_PKCS8_PREFIX = Uint8Array.of(0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20)
const ED25519_SPKI_HEADER = 12

const ed25519Keys = new WeakMap<Uint8Array, { readonly keyObject: crypto.KeyObject; readonly publicKey: Uint8Array }>()

/** The node:crypto key and the public key of an Ed25519 seed (~6× faster than @noble, which showed in connects). */
const ed25519Key = (seed: Uint8Array): { readonly keyObject: crypto.KeyObject; readonly publicKey: Uint8Array } => {
  let key = ed25519Keys.get(seed)
  if (key === undefined) {
    const der = new Uint8Array(ED25519_PKCS8_PREFIX.length + seed.length)
    der.set(ED25519_PKCS8_PREFIX)
    der.set(seed, ED25519_PKCS8_PREFIX.length)
    const keyObject = crypto.createPrivateKey({ key: Buffer.from(der), format: "der", type: "pkcs8" })
    const spki = crypto.createPublicKey(keyObject).export({ format: "der", type: "spki" })
    key = { keyObject, publicKey: new Uint8Array(spki.subarray(ED25519_SPKI_HEADER)) }
    ed25519Keys.set(seed, key)
  }
  return key
}

const publicKeyOf = (secret: Secret, comment: string): PublicKey.PublicKey => {
  switch (secret.type) {
    case "ssh-ed25519":
      return PublicKey.fromEd25519(ed25519Key(secret.seed).publicKey, comment)
    case "ssh-rsa":
      return PublicKey.fromRsa(secret.n, secret.e, comment)
    default:
      return PublicKey.fromEcdsa(
        secret.curve,
        PublicKey.ecdsaCurves[secret.curve].curve.getPublicKey(secret.d, false),
        comment
      )
  }
}

const rsaPrivateKeyObject = (secret: RsaSecret): crypto.KeyObject => {
  const d = toBigInt(secret.d)
  const b64 = (bytes: Uint8Array) => Base64.encodeUrl(bytes)
  return crypto.createPrivateKey({
    key: {
      kty: "RSA",
      n: b64(secret.n),
      e: b64(secret.e),
      d: b64(secret.d),
      p: b64(secret.p),
      q: b64(secret.q),
      dp: b64(fromBigInt(d % (toBigInt(secret.p) - 1n))),
      dq: b64(fromBigInt(d % (toBigInt(secret.q) - 1n))),
      qi: b64(secret.iqmp)
    },
    format: "jwk"
  })
}

const signer = (secret: Secret): (data: Uint8Array, algorithm: string) => Uint8Array => {
  switch (secret.type) {
    case "ssh-ed25519": {
      const { keyObject } = ed25519Key(secret.seed)
      return (data, algorithm) => Signature.encodeSignature(algorithm, crypto.sign(null, data, keyObject))
    }
    case "ssh-rsa": {
      const keyObject = rsaPrivateKeyObject(secret)
      return (data, algorithm) =>
        Signature.encodeSignature(algorithm, crypto.sign(Signature.rsaHash(algorithm)!, data, keyObject))
    }
    default: {
      const { curve, jwk, size } = PublicKey.ecdsaCurves[secret.curve]
      const point = curve.getPublicKey(secret.d, false)
      const keyObject = crypto.createPrivateKey({
        key: {
          kty: "EC",
          crv: jwk,
          d: Base64.encodeUrl(secret.d),
          x: Base64.encodeUrl(point.subarray(1, 1 + size)),
          y: Base64.encodeUrl(point.subarray(1 + size))
        },
        format: "jwk"
      })
      const hash = Signature.ecdsaHash[secret.curve]
      return (data, algorithm) =>
        Signature.encodeSignature(
          algorithm,
          Signature.ecdsaRawFromCompact(crypto.sign(hash, data, { key: keyObject, dsaEncoding: "ieee-p1363" }))
        )
    }
  }
}

const make = (secret: Secret, comment: string): PrivateKey => {
  const publicKey = publicKeyOf(secret, comment)
  const algorithms = PublicKey.signatureAlgorithms(publicKey)
  const signWith = signer(secret)
  const key: PrivateKey = {
    type: secret.type,
    publicKey,
    comment,
    sign: (data, algorithm = algorithms[0]!) => {
      if (!algorithms.includes(algorithm)) {
        throw new UnknownAlgorithm({ kind: `signature for ${secret.type}`, name: algorithm, known: algorithms })
      }
      return signWith(data, algorithm)
    }
  }
  secrets.set(key, secret)
  return key
}

// ---------------------------------------------------------------------------
// consistency checks: a key file whose parts disagree is rejected

const checkRsa = (secret: RsaSecret): void => {
  const [n, e, d, iqmp, p, q] = [secret.n, secret.e, secret.d, secret.iqmp, secret.p, secret.q].map(toBigInt) as [
    bigint,
    bigint,
    bigint,
    bigint,
    bigint,
    bigint
  ]
  if (p < 3n || q < 3n || p * q !== n) fail("ssh-rsa private key: n is not p * q")
  if ((e * d) % (p - 1n) !== 1n || (e * d) % (q - 1n) !== 1n) fail("ssh-rsa private key: d does not invert e")
  if ((iqmp * q) % p !== 1n) fail("ssh-rsa private key: iqmp is not q^-1 mod p")
}

const ecdsaSecret = (curve: PublicKey.EcdsaCurve, d: Uint8Array): EcdsaSecret => {
  const facts = PublicKey.ecdsaCurves[curve]
  if (d.length > facts.size || !facts.curve.utils.isValidSecretKey(leftPad(d, facts.size))) {
    fail(`ecdsa-sha2-${curve} private scalar is out of range`)
  }
  return { type: `ecdsa-sha2-${curve}`, curve, d: leftPad(d, facts.size) }
}

const rsaSecret = (parts: Omit<RsaSecret, "type">): Secret => {
  const secret = { type: "ssh-rsa" as const, ...parts }
  PublicKey.fromRsa(secret.n, secret.e)
  checkRsa(secret)
  return secret
}

// ---------------------------------------------------------------------------
// the agent encoding of private keys (used inside openssh-key-v1)

const readSecret = (r: Reader): Secret => {
  const type = r.name("key type")
  if (type === "ssh-ed25519") {
    const pk = r.string("ssh-ed25519 public key")
    const sk = r.string("ssh-ed25519 private key")
    if (pk.length !== 32 || sk.length !== 64) fail("ssh-ed25519 private key has wrong field sizes")
    const seed = sk.slice(0, 32)
    if (!equal(sk.subarray(32), pk) || !equal(ed25519Key(seed).publicKey, pk)) {
      fail("ssh-ed25519 public key does not match the private key")
    }
    return { type, seed }
  }
  if (type === "ssh-rsa") {
    const [n, e, d, iqmp, p, q] = ["n", "e", "d", "iqmp", "p", "q"].map((f) => r.mpintBytes(`ssh-rsa ${f}`).slice())
    return rsaSecret({ n: n!, e: e!, d: d!, iqmp: iqmp!, p: p!, q: q! })
  }
  if (!PublicKey.isKeyType(type)) return fail(`unsupported key type ${type}`)
  const curve = PublicKey.curveOf(type as PublicKey.EcdsaKeyType)
  if (r.name("curve") !== curve) fail(`key type ${type} does not match its curve field`)
  const point = r.string("ecdsa public key")
  const secret = ecdsaSecret(curve, r.mpintBytes("ecdsa private scalar").slice())
  if (!equal(point, PublicKey.ecdsaCurves[curve].curve.getPublicKey(secret.d, false))) {
    fail(`${type} public point does not match the private scalar`)
  }
  return secret
}

/**
 * Reads a private key in the SSH agent encoding (`string type` then the
 * type's fields), as used by openssh-key-v1 and `SSH_AGENTC_ADD_IDENTITY`.
 * The comment that follows it in both formats is not read.
 *
 * @throws KeyParseFailed
 * @example
 * ```ts
 * const reader = new Reader.Reader(Writer.build((w) => PrivateKey.writePrivateFields(w, userKey).string("me@host")))
 * const key = PrivateKey.readPrivateFields(reader, "")
 * const comment = reader.utf8() // "me@host"
 * ```
 */
export const readPrivateFields = (r: Reader, comment: string): PrivateKey =>
  PublicKey.parsing("private key", () => make(readSecret(r), comment))

/**
 * Writes a private key in the SSH agent encoding (without its comment).
 *
 * @example
 * ```ts
 * const fields = Writer.build((w) => PrivateKey.writePrivateFields(w, userKey))
 * ```
 */
export const writePrivateFields = (w: Writer, key: PrivateKey): Writer => {
  const secret = secretOf(key)
  w.string(secret.type)
  switch (secret.type) {
    case "ssh-ed25519": {
      const pk = (key.publicKey as PublicKey.Ed25519PublicKey).key
      return w.string(pk).uint32(64).raw(secret.seed).raw(pk)
    }
    case "ssh-rsa":
      for (const part of [secret.n, secret.e, secret.d, secret.iqmp, secret.p, secret.q]) w.mpintFromUnsigned(part)
      return w
    default:
      return w.string(secret.curve).string((key.publicKey as PublicKey.EcdsaPublicKey).point).mpintFromUnsigned(
        secret.d
      )
  }
}

const secretOf = (key: PrivateKey): Secret => {
  const secret = secrets.get(key)
  if (secret === undefined) throw new KeyParseFailed({ message: "not a key made by PrivateKey.parse or generate" })
  return secret
}

// ---------------------------------------------------------------------------
// openssh-key-v1

const pemBody = (text: string, begin: string, end: string): Uint8Array => {
  const start = text.indexOf(begin)
  const stop = text.indexOf(end, start + begin.length)
  if (start < 0 || stop < 0) return fail(`missing ${stop < 0 ? end : begin}`)
  const bytes = Base64.decode(text.slice(start + begin.length, stop).replace(/\s+/g, ""))
  return bytes ?? fail("invalid base64 in the key file")
}

const readPrivateSection = (section: Uint8Array, blockSize: number, encrypted: boolean): PrivateKey => {
  if (section.length % blockSize !== 0) fail(`private section is not a multiple of ${blockSize} bytes`)
  const r = new Reader(section)
  const check1 = r.uint32()
  const check2 = r.uint32()
  if (check1 !== check2) {
    if (encrypted) throw new WrongPassphrase({ message: "wrong passphrase: the key's check numbers differ" })
    fail("corrupt private section: the check numbers differ")
  }
  const secret = readSecret(r)
  const comment = fromUtf8(r.string("comment"))
  const padding = r.rest()
  // any length, as OpenSSH accepts (puttygen writes more than a block): only the 1, 2, 3, ... sequence is checked
  if (padding.some((b, i) => b !== ((i + 1) & 0xff))) fail("bad padding after the private key")
  return make(secret, comment)
}

/** The ciphers ssh-keygen can protect a key file with (chacha20-poly1305@openssh.com aside). */
const keyCiphers: Readonly<
  Record<string, { readonly mode: "ctr" | "cbc" | "gcm"; readonly keyLength: number; readonly ivLength: number }>
> = {
  "aes128-ctr": { mode: "ctr", keyLength: 16, ivLength: 16 },
  "aes192-ctr": { mode: "ctr", keyLength: 24, ivLength: 16 },
  "aes256-ctr": { mode: "ctr", keyLength: 32, ivLength: 16 },
  "aes128-cbc": { mode: "cbc", keyLength: 16, ivLength: 16 },
  "aes192-cbc": { mode: "cbc", keyLength: 24, ivLength: 16 },
  "aes256-cbc": { mode: "cbc", keyLength: 32, ivLength: 16 },
  "aes128-gcm@openssh.com": { mode: "gcm", keyLength: 16, ivLength: 12 },
  "aes256-gcm@openssh.com": { mode: "gcm", keyLength: 32, ivLength: 12 }
}
const AES_BLOCK_SIZE = 16
const GCM_TAG_LENGTH = 16
/** ssh-keygen's default bcrypt rounds; a file asking for more than the maximum is refused, not run for hours. */
const DEFAULT_KDF_ROUNDS = 16
const MAX_KDF_ROUNDS = 1 << 16
const MAX_SALT_LENGTH = 1024

const passphraseBytes = (passphrase: string | Uint8Array): Uint8Array =>
  typeof passphrase === "string" ? utf8(passphrase) : passphrase

const keyCipher = (name: string) =>
  Object.hasOwn(keyCiphers, name)
    ? keyCiphers[name]!
    : fail(`unsupported key file cipher ${name} (supported: ${Object.keys(keyCiphers).join(", ")})`)

/** Derives the cipher key and IV from the passphrase and the file's `bcrypt` KDF options. */
const deriveKeyIv = (cipherName: string, kdf: string, kdfOptions: Uint8Array, passphrase: string | Uint8Array) => {
  const cipher = keyCipher(cipherName)
  if (kdf !== "bcrypt") fail(`unsupported key file KDF ${kdf}`)
  const r = new Reader(kdfOptions)
  const salt = r.string("bcrypt salt")
  const rounds = r.uint32()
  r.end("bcrypt options")
  if (salt.length === 0 || salt.length > MAX_SALT_LENGTH) fail(`bcrypt salt of ${salt.length} bytes`)
  if (rounds < 1 || rounds > MAX_KDF_ROUNDS) fail(`bcrypt rounds ${rounds} outside 1..${MAX_KDF_ROUNDS}`)
  const derived = bcryptPbkdf(passphraseBytes(passphrase), salt, rounds, cipher.keyLength + cipher.ivLength)
  return { cipher, key: derived.subarray(0, cipher.keyLength), iv: derived.subarray(cipher.keyLength) }
}

const decryptSection = (
  cipherName: string,
  kdf: string,
  kdfOptions: Uint8Array,
  passphrase: string | Uint8Array,
  sealed: Uint8Array
): Uint8Array => {
  const { cipher, iv, key } = deriveKeyIv(cipherName, kdf, kdfOptions, passphrase)
  const length = sealed.length - (cipher.mode === "gcm" ? GCM_TAG_LENGTH : 0)
  if (length < 0 || length % AES_BLOCK_SIZE !== 0) fail(`private section is not a multiple of ${AES_BLOCK_SIZE} bytes`)
  switch (cipher.mode) {
    case "ctr":
      return ctr(key, iv).decrypt(sealed)
    case "cbc":
      return cbc(key, iv, { disablePadding: true }).decrypt(sealed)
    case "gcm":
      try {
        return gcm(key, iv).decrypt(sealed)
      } catch {
        throw new WrongPassphrase({ message: "wrong passphrase: the key file's authentication tag does not match" })
      }
  }
}

const parseOpenSshV1 = (text: string, passphrase: string | Uint8Array | undefined): PrivateKey =>
  PublicKey.parsing("openssh-key-v1 private key", () => {
    const r = new Reader(pemBody(text, BEGIN_OPENSSH, END_OPENSSH))
    if (!equal(r.raw(MAGIC.length, "magic"), MAGIC)) fail("not an openssh-key-v1 key (bad magic)")
    const cipher = r.name("cipher name")
    const kdf = r.name("kdf name")
    const kdfOptions = r.string("kdf options")
    const count = r.uint32()
    if (count !== 1) fail(`expected one key in the file, found ${count}`)
    const publicKey = PublicKey.fromBlob(r.string("public key"))
    const section = r.string("private section")
    let key: PrivateKey
    if (cipher === "none") {
      r.end("openssh-key-v1 key")
      if (kdf !== "none" || kdfOptions.length !== 0) fail(`unencrypted key with kdf ${kdf}`)
      key = readPrivateSection(section, UNENCRYPTED_BLOCK_SIZE, false)
    } else {
      if (passphrase === undefined) {
        throw new PassphraseRequired({ message: `the key is encrypted (${cipher}, kdf ${kdf}); a passphrase is needed` })
      }
      const tag = keyCipher(cipher).mode === "gcm" ? r.raw(GCM_TAG_LENGTH, "authentication tag") : new Uint8Array(0)
      r.end("openssh-key-v1 key")
      const plain = decryptSection(cipher, kdf, kdfOptions, passphrase, concat([section, tag]))
      key = readPrivateSection(plain, AES_BLOCK_SIZE, true)
    }
    if (!PublicKey.equals(key.publicKey, publicKey)) fail("the public key does not match the private key")
    return key
  })

// ---------------------------------------------------------------------------
// PEM through node:crypto

const curveByJwkName = (name: string | undefined): PublicKey.EcdsaCurve =>
  (Object.keys(PublicKey.ecdsaCurves) as Array<PublicKey.EcdsaCurve>).find((c) => PublicKey.ecdsaCurves[c].jwk === name) ??
    fail(`unsupported EC curve ${name}`)

const jwkField = (jwk: crypto.JsonWebKey, field: "d" | "n" | "e" | "p" | "q" | "qi"): Uint8Array => {
  const value = jwk[field]
  const bytes = typeof value === "string" ? Base64.decodeUrl(value) : undefined
  return bytes ?? fail(`PEM key lacks the ${field} field`)
}

const secretFromKeyObject = (keyObject: crypto.KeyObject): Secret => {
  const jwk = keyObject.export({ format: "jwk" })
  switch (keyObject.asymmetricKeyType) {
    case "ed25519":
      return { type: "ssh-ed25519", seed: jwkField(jwk, "d") }
    case "ec": {
      return ecdsaSecret(curveByJwkName(jwk.crv), jwkField(jwk, "d"))
    }
    case "rsa": {
      const [n, e, d, iqmp, p, q] = (["n", "e", "d", "qi", "p", "q"] as const).map((f) => jwkField(jwk, f))
      return rsaSecret({ n: n!, e: e!, d: d!, iqmp: iqmp!, p: p!, q: q! })
    }
    default:
      return fail(`unsupported PEM key type ${keyObject.asymmetricKeyType}`)
  }
}

const isEncryptedPem = (text: string): boolean =>
  /Proc-Type:\s*4,\s*ENCRYPTED/.test(text) || text.includes("-----BEGIN ENCRYPTED PRIVATE KEY-----")

const parsePem = (text: string, passphrase: string | Uint8Array | undefined): PrivateKey =>
  PublicKey.parsing("PEM private key", () => {
    const encrypted = isEncryptedPem(text)
    if (encrypted && passphrase === undefined) {
      throw new PassphraseRequired({ message: "the PEM key is encrypted; a passphrase is needed" })
    }
    let keyObject: crypto.KeyObject
    try {
      keyObject = crypto.createPrivateKey({
        key: text,
        format: "pem",
        ...(passphrase === undefined ? {} : { passphrase: typeof passphrase === "string" ? passphrase : Buffer.from(passphrase) })
      })
    } catch (u) {
      if (encrypted) throw new WrongPassphrase({ message: "the passphrase does not decrypt the PEM key" })
      return fail(`unreadable PEM key: ${describeThrown(u)}`)
    }
    return make(secretFromKeyObject(keyObject), "")
  })

// ---------------------------------------------------------------------------
// PuTTY .ppk

const parsePpk = (text: string, passphrase: string | Uint8Array | undefined): PrivateKey => {
  const ppk = Ppk.decode(text, passphrase)
  const key = readPrivateFields(new Reader(ppk.privateFields), ppk.comment)
  if (!PublicKey.equals(key.publicKey, ppk.publicKey)) fail("the PuTTY key's public key does not match its private key")
  return key
}

/**
 * Parses a private key file: `openssh-key-v1` ("BEGIN OPENSSH PRIVATE KEY"),
 * PEM PKCS#1 RSA, SEC1 EC or PKCS#8 (Ed25519, ECDSA, RSA), including
 * passphrase-protected PEM, or a PuTTY `.ppk` (v2 or v3, see `Ppk`). The
 * parts of the file must agree with each other (the public key with the
 * private one, the openssh-key-v1 check numbers and padding 1, 2, 3, ...).
 *
 * @throws KeyParseFailed for a malformed or unsupported key,
 * PassphraseRequired for an encrypted key without a passphrase,
 * WrongPassphrase when the passphrase does not decrypt it.
 * @example
 * ```ts
 * const key = PrivateKey.parse(yield* Effect.promise(() => FsPromises.readFile("id_ed25519", "utf8")))
 * key.publicKey.type // "ssh-ed25519"
 * ```
 */
export const parse = (text: string | Uint8Array, passphrase?: string | Uint8Array): PrivateKey => {
  const source = typeof text === "string" ? text : fromUtf8(text)
  if (source.includes(BEGIN_OPENSSH)) return parseOpenSshV1(source, passphrase)
  if (/-----BEGIN (?:RSA |EC |ENCRYPTED )?PRIVATE KEY-----/.test(source)) return parsePem(source, passphrase)
  if (source.includes("-----BEGIN DSA PRIVATE KEY-----")) return fail("unsupported key type ssh-dss (DSA)")
  if (Ppk.isPpk(source)) return parsePpk(source, passphrase)
  return fail("not a private key file (expected \"-----BEGIN OPENSSH PRIVATE KEY-----\" or a PEM key)")
}

/**
 * The public key stored in clear in an openssh-key-v1 file, encrypted or
 * not (so a client can ask the server whether it would accept the key before
 * asking for the passphrase); undefined for other formats or a broken file.
 *
 * @example
 * ```ts
 * PrivateKey.publicKeyOfFile(yield* Effect.promise(() => FsPromises.readFile("id_ed25519", "utf8")))?.type // "ssh-ed25519"
 * ```
 */
export const publicKeyOfFile = (text: string): PublicKey.PublicKey | undefined => {
  if (!text.includes(BEGIN_OPENSSH)) return undefined
  try {
    const r = new Reader(pemBody(text, BEGIN_OPENSSH, END_OPENSSH))
    if (!equal(r.raw(MAGIC.length, "magic"), MAGIC)) return undefined
    r.name("cipher name")
    r.name("kdf name")
    r.string("kdf options")
    if (r.uint32() !== 1) return undefined
    return PublicKey.fromBlob(r.string("public key"))
  } catch (u) {
    if (!isSshErrorReason(u)) throw u
    return undefined
  }
}

const checkRsaBits = (bits: number): number => {
  if (!Number.isInteger(bits) || bits < 2048 || bits > 16384) {
    throw new ConfigParseError({ message: `RSA key size must be an integer from 2048 to 16384 bits, got ${bits}` })
  }
  return bits
}

const generateSecret = (type: PublicKey.KeyType, bits: number): Secret => {
  switch (type) {
    case "ssh-ed25519":
      return { type, seed: ed25519.utils.randomSecretKey() }
    case "ssh-rsa": {
      const { privateKey } = crypto.generateKeyPairSync("rsa", { modulusLength: checkRsaBits(bits), publicExponent: 0x10001 })
      return secretFromKeyObject(privateKey)
    }
    default: {
      const curve = PublicKey.curveOf(type)
      return { type, curve, d: PublicKey.ecdsaCurves[curve].curve.utils.randomSecretKey() }
    }
  }
}

/**
 * Generates a new key. RSA keys are 3072 bits unless `bits` says otherwise
 * (2048 to 16384).
 *
 * @example
 * ```ts
 * const key = PrivateKey.generate("ssh-ed25519", { comment: "deploy@ci" })
 * const rsa = PrivateKey.generate("ssh-rsa", { bits: 4096 })
 * ```
 */
export const generate = (
  type: PublicKey.KeyType,
  options?: { readonly bits?: number | undefined; readonly comment?: string | undefined }
): PrivateKey => make(generateSecret(type, options?.bits ?? 3072), options?.comment ?? "")

const wrap = (base64: string, width: number): string => {
  const lines: Array<string> = []
  for (let i = 0; i < base64.length; i += width) lines.push(base64.slice(i, i + width))
  return lines.join("\n")
}

/** Options for writing an openssh-key-v1 file. */
export interface WriteOptions {
  /** Replaces the key's comment in the file. */
  readonly comment?: string | undefined
  /** Encrypts the file with aes256-ctr under a bcrypt-derived key. */
  readonly passphrase?: string | Uint8Array | undefined
  /** bcrypt rounds when encrypting (ssh-keygen -a); 16 by default. */
  readonly rounds?: number | undefined
}

/**
 * Writes the key as an `openssh-key-v1` file, as `ssh-keygen` does (base64
 * wrapped at 70 columns, random check numbers); encrypted with aes256-ctr and
 * bcrypt when a passphrase is given.
 *
 * @example
 * ```ts
 * yield* Effect.promise(() => FsPromises.writeFile("id_ed25519", PrivateKey.toOpenSsh(PrivateKey.generate("ssh-ed25519")), { mode: 0o600 }))
 * const protectedText = PrivateKey.toOpenSsh(userKey, { passphrase: "correct horse", rounds: 32 })
 * ```
 */
export const toOpenSsh = (key: PrivateKey, options?: WriteOptions): string => {
  const encrypted = options?.passphrase !== undefined
  const blockSize = encrypted ? AES_BLOCK_SIZE : UNENCRYPTED_BLOCK_SIZE
  const check = crypto.getRandomValues(new Uint32Array(1))[0]!
  const plain = build((w) => {
    w.uint32(check).uint32(check)
    writePrivateFields(w, key).string(options?.comment ?? key.comment)
    for (let pad = 1; w.length % blockSize !== 0; pad++) w.byte(pad)
  })
  let cipher = "none"
  let kdf = "none"
  let kdfOptions: Uint8Array = new Uint8Array(0)
  let section: Uint8Array = plain
  if (options?.passphrase !== undefined) {
    const rounds = options.rounds ?? DEFAULT_KDF_ROUNDS
    if (!Number.isInteger(rounds) || rounds < 1 || rounds > MAX_KDF_ROUNDS) {
      throw new ConfigParseError({ message: `bcrypt rounds must be an integer from 1 to ${MAX_KDF_ROUNDS}` })
    }
    cipher = "aes256-ctr"
    kdf = "bcrypt"
    kdfOptions = build((w) => w.string(crypto.getRandomValues(new Uint8Array(16))).uint32(rounds))
    const derived = deriveKeyIv(cipher, kdf, kdfOptions, options.passphrase)
    section = ctr(derived.key, derived.iv).encrypt(plain)
  }
  const file = build((w) =>
    w.raw(MAGIC).string(cipher).string(kdf).string(kdfOptions).uint32(1).string(key.publicKey.blob).string(section)
  )
  return `${BEGIN_OPENSSH}\n${wrap(Base64.encode(file), 70)}\n${END_OPENSSH}\n`
}
