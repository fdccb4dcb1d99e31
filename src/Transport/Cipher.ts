/**
 * Packet protection for the SSH transport (RFC 4253 §6, OpenSSH PROTOCOL
 * §1.5–1.7): the registry of packet ciphers and MACs, and the per-direction
 * `Sealer` (outgoing) and `Opener` (incoming) built from negotiated names and
 * derived keys.
 *
 * Each direction of a connection gets its own sealer or opener after every
 * NEWKEYS; before the first one, `plainSealer` / `plainOpener` frame packets
 * with the `none` cipher and MAC. Sealers and openers are synchronous and
 * stateful (AES-CTR keystream position, AES-GCM invocation counter), so each
 * must be used for exactly one direction, packets in order.
 *
 * @example
 * ```ts
 * import { randomBytes } from "node:crypto"
 * import * as Cipher from "effect-ssh/Transport/Cipher"
 *
 * const keys = { cipher: "aes128-gcm@openssh.com", mac: "", key, iv, macKey: new Uint8Array(0) }
 * const sealer = Cipher.makeSealer(keys, randomBytes)
 * const opener = Cipher.makeOpener(keys)
 * const wire = sealer.seal(payload, 3)
 * opener.packetLength(wire.subarray(0, opener.headerLength), 3) // === wire.length
 * opener.open(wire, 3) // payload
 * ```
 * @since 0.1.0
 */
import { UnknownAlgorithm, ProtocolError } from "../SshError.ts"
import * as PacketLayout from "../internal/packetLayout.ts"
import * as AesCtr from "./cipher/AesCtr.ts"
import * as AesGcm from "./cipher/AesGcm.ts"
import * as ChaChaPoly from "./cipher/ChaChaPoly.ts"
import * as Mac from "./cipher/Mac.ts"

/** What negotiation and key derivation need to know about a packet cipher. */
export interface CipherSpec {
  /** The algorithm name as it appears in KEXINIT. */
  readonly name: string
  /** Bytes of encryption key to derive. */
  readonly keyLength: number
  /** Bytes of IV to derive (0 when the cipher takes none). */
  readonly ivLength: number
  /** Cipher block size; packets are padded to a multiple of max(8, blockSize). */
  readonly blockSize: number
  /** An AEAD cipher authenticates packets itself: the negotiated MAC is ignored. */
  readonly aead: boolean
}

/** What negotiation and key derivation need to know about a MAC. */
export interface MacSpec {
  /** The algorithm name as it appears in KEXINIT. */
  readonly name: string
  /** Bytes of MAC key to derive. */
  readonly keyLength: number
  /** Bytes of MAC appended to each packet. */
  readonly macLength: number
  /** Encrypt-then-MAC (OpenSSH PROTOCOL §1.5): the length travels in clear and the MAC covers the ciphertext. */
  readonly etm: boolean
}

/** The negotiated algorithms and derived keys of one direction (RFC 4253 §7.2: keys A–F). */
export interface DirectionKeys {
  readonly cipher: string
  /** Ignored when the cipher is AEAD. */
  readonly mac: string
  /** At least `keyLength` bytes; the prefix is used. */
  readonly key: Uint8Array
  /** At least `ivLength` bytes; the prefix is used. */
  readonly iv: Uint8Array
  /** At least the MAC's `keyLength` bytes; ignored when the cipher is AEAD. */
  readonly macKey: Uint8Array
}

/** Encrypts outgoing packets. */
export interface Sealer {
  /**
   * Builds the whole wire packet for `payload` — length, random padding (from
   * the injected `random`), encryption and MAC or tag — for sequence number
   * `seqno` (uint32). Throws `ProtocolError` when the payload exceeds the
   * maximum packet length.
   */
  seal(payload: PacketLayout.Payload, seqno: number): Uint8Array
}

/** Decrypts incoming packets, in two steps because the length may itself be encrypted. */
export interface Opener {
  /** How many bytes must be available before `packetLength` can be called (4, or the first cipher block). */
  readonly headerLength: number
  /**
   * Total wire size of the packet starting with `header` (length field, the
   * rest, and the MAC or tag). Throws `ProtocolError` when `packet_length` is
   * out of bounds or not block-aligned, before anything is allocated. May
   * decrypt and remember the first block (AES-CTR), so call it once per packet.
   */
  packetLength(header: Uint8Array, seqno: number): number
  /**
   * Verifies and decrypts the whole packet (exactly `packetLength` bytes) and
   * returns the payload, possibly as a view into `packet`. Throws `MacMismatch`
   * on a bad MAC or tag, `ProtocolError` on a bad padding length or size.
   * Calls `packetLength` itself when it was not called for this packet.
   */
  open(packet: Uint8Array, seqno: number): Uint8Array
}

/**
 * How a cipher module plugs into the registry. `mac` is the resolved MAC
 * (ignored by AEAD ciphers); keys are already cut to the spec's lengths.
 *
 * @example
 * ```ts
 * const impl: CipherImplementation = { spec, sealer: (keys, mac, random) => ..., opener: (keys, mac) => ... }
 * ```
 */
export interface CipherImplementation {
  readonly spec: CipherSpec
  readonly sealer: (keys: DirectionKeys, mac: MacSpec, random: (n: number) => Uint8Array) => Sealer
  readonly opener: (keys: DirectionKeys, mac: MacSpec) => Opener
}

/**
 * Largest `packet_length` accepted or produced (256 KiB, as OpenSSH).
 *
 * @example
 * ```ts
 * MAX_PACKET_LENGTH // 262144
 * ```
 */
export const MAX_PACKET_LENGTH: number = PacketLayout.MAX_PACKET_LENGTH

const implementations: ReadonlyMap<string, CipherImplementation> = new Map(
  [...ChaChaPoly.implementations, ...AesGcm.implementations, ...AesCtr.implementations].map((i) => [i.spec.name, i])
)

const macSpecs: ReadonlyMap<string, MacSpec> = new Map(Mac.specs.map((s) => [s.name, s]))

/**
 * Supported ciphers in our default preference order. `none` is supported but
 * never offered.
 *
 * @example
 * ```ts
 * cipherNames[0] // "aes128-gcm@openssh.com"
 * ```
 */
export const cipherNames: ReadonlyArray<string> = [
  "aes128-gcm@openssh.com",
  "aes256-gcm@openssh.com",
  "chacha20-poly1305@openssh.com",
  "aes128-ctr",
  "aes192-ctr",
  "aes256-ctr"
]

/**
 * Supported MACs in our default preference order (encrypt-then-MAC first, as
 * OpenSSH). `none` is supported but never offered.
 *
 * @example
 * ```ts
 * macNames.includes("hmac-sha2-256-etm@openssh.com") // true
 * ```
 */
export const macNames: ReadonlyArray<string> = [
  "hmac-sha2-256-etm@openssh.com",
  "hmac-sha2-512-etm@openssh.com",
  "hmac-sha1-etm@openssh.com",
  "hmac-sha2-256",
  "hmac-sha2-512",
  "hmac-sha1"
]

/**
 * The spec of a cipher by name, or `undefined` when we do not support it.
 *
 * @example
 * ```ts
 * cipherSpec("aes256-ctr") // { name: "aes256-ctr", keyLength: 32, ivLength: 16, blockSize: 16, aead: false }
 * ```
 */
export const cipherSpec = (name: string): CipherSpec | undefined => implementations.get(name)?.spec

/**
 * The spec of a MAC by name, or `undefined` when we do not support it.
 *
 * @example
 * ```ts
 * macSpec("hmac-sha2-512-etm@openssh.com") // { name: ..., keyLength: 64, macLength: 64, etm: true }
 * ```
 */
export const macSpec = (name: string): MacSpec | undefined => macSpecs.get(name)

const knownCiphers = [...implementations.keys()]
const knownMacs = [...macSpecs.keys()]

const prefix = (bytes: Uint8Array, length: number, what: string, algorithm: string): Uint8Array => {
  if (bytes.length < length) {
    throw new ProtocolError({ message: `${algorithm} needs ${length} bytes of ${what}, got ${bytes.length}` })
  }
  return bytes.subarray(0, length)
}

const resolve = (keys: DirectionKeys): readonly [CipherImplementation, MacSpec, DirectionKeys] => {
  const implementation = implementations.get(keys.cipher)
  if (implementation === undefined) {
    throw new UnknownAlgorithm({ kind: "cipher", name: keys.cipher, known: knownCiphers })
  }
  const { spec } = implementation
  const mac = spec.aead ? Mac.none : macSpecs.get(keys.mac)
  if (mac === undefined) throw new UnknownAlgorithm({ kind: "mac", name: keys.mac, known: knownMacs })
  const exact: DirectionKeys = {
    cipher: spec.name,
    mac: mac.name,
    key: prefix(keys.key, spec.keyLength, "key", spec.name),
    iv: prefix(keys.iv, spec.ivLength, "IV", spec.name),
    macKey: prefix(keys.macKey, mac.keyLength, "MAC key", mac.name)
  }
  return [implementation, mac, exact]
}

/**
 * The sealer for one outgoing direction. Throws `UnknownAlgorithm` for an
 * unsupported cipher or (non-AEAD) MAC, `ProtocolError` for short keys.
 *
 * @example
 * ```ts
 * const sealer = makeSealer({ cipher: "aes256-ctr", mac: "hmac-sha2-256-etm@openssh.com", key, iv, macKey }, randomBytes)
 * const wire = sealer.seal(payload, seqno)
 * ```
 */
export const makeSealer = (keys: DirectionKeys, random: (n: number) => Uint8Array): Sealer => {
  const [implementation, mac, exact] = resolve(keys)
  return implementation.sealer(exact, mac, random)
}

/**
 * The opener for one incoming direction. Throws `UnknownAlgorithm` for an
 * unsupported cipher or (non-AEAD) MAC, `ProtocolError` for short keys.
 *
 * @example
 * ```ts
 * const opener = makeOpener({ cipher: "chacha20-poly1305@openssh.com", mac: "", key, iv: new Uint8Array(0), macKey: new Uint8Array(0) })
 * ```
 */
export const makeOpener = (keys: DirectionKeys): Opener => {
  const [implementation, mac, exact] = resolve(keys)
  return implementation.opener(exact, mac)
}

/**
 * Wraps a random source so that padding is drawn from a pool refilled `size`
 * bytes at a time: one call into the system RNG per ~500 packets instead of
 * one per packet (about a tenth of the sealing cost of a 32 KiB AES-GCM
 * packet). Use one pool per connection.
 *
 * @example
 * ```ts
 * const sealer = makeSealer(keys, pooledRandom(randomBytes))
 * ```
 */
export const pooledRandom = (random: (n: number) => Uint8Array, size = 4096): ((n: number) => Uint8Array) => {
  let pool: Uint8Array = new Uint8Array(0)
  let used = 0
  return (n) => {
    if (n > size) return random(n)
    if (used + n > pool.length) {
      pool = random(size)
      used = 0
    }
    const out = pool.subarray(used, used + n)
    used += n
    return out
  }
}

const plainKeys: DirectionKeys = {
  cipher: "none",
  mac: "none",
  key: new Uint8Array(0),
  iv: new Uint8Array(0),
  macKey: new Uint8Array(0)
}

/**
 * The sealer before the first NEWKEYS: no encryption, no MAC.
 *
 * @example
 * ```ts
 * const kexinitPacket = plainSealer(randomBytes).seal(kexinitPayload, 0)
 * ```
 */
export const plainSealer = (random: (n: number) => Uint8Array): Sealer => makeSealer(plainKeys, random)

/**
 * The opener before the first NEWKEYS: no encryption, no MAC.
 *
 * @example
 * ```ts
 * const opener = plainOpener()
 * opener.headerLength // 4
 * ```
 */
export const plainOpener = (): Opener => makeOpener(plainKeys)
