/**
 * Transport-layer message codecs (RFC 4253 §§7-11, RFC 8308, RFC 4419,
 * RFC 5656): KEXINIT, NEWKEYS, DISCONNECT, IGNORE, DEBUG, UNIMPLEMENTED,
 * SERVICE_REQUEST / SERVICE_ACCEPT, EXT_INFO and the key exchange messages.
 *
 * Every `encodeX` returns the whole payload including the message number;
 * every `decodeX` takes such a payload, checks the message number, reads
 * every field and fails with a thrown `ProtocolError` on anything malformed
 * or trailing. Decoded byte fields are views into the payload.
 *
 * Multiple-precision integers of the Diffie-Hellman messages (`e`, `f`, `p`,
 * `g`) are carried as unsigned big-endian magnitudes without leading zeros,
 * the form `Reader.mpintBytes` yields; a negative mpint is rejected.
 *
 * @since 0.1.0
 */
import { ProtocolError } from "../SshError.ts"
import * as MessageNumber from "../Wire/MessageNumber.ts"
import { Reader } from "../Wire/Reader.ts"
import { build } from "../Wire/Writer.ts"
import { utf8 } from "../internal/bytes.ts"

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

const messageNames: Record<number, string> = {
  [MessageNumber.DISCONNECT]: "DISCONNECT",
  [MessageNumber.IGNORE]: "IGNORE",
  [MessageNumber.UNIMPLEMENTED]: "UNIMPLEMENTED",
  [MessageNumber.DEBUG]: "DEBUG",
  [MessageNumber.SERVICE_REQUEST]: "SERVICE_REQUEST",
  [MessageNumber.SERVICE_ACCEPT]: "SERVICE_ACCEPT",
  [MessageNumber.EXT_INFO]: "EXT_INFO",
  [MessageNumber.KEXINIT]: "KEXINIT",
  [MessageNumber.NEWKEYS]: "NEWKEYS"
}

const openMessage = (payload: Uint8Array, number: number, name: string): Reader => {
  const r = new Reader(payload)
  const got = r.byte()
  if (got !== number) {
    throw new ProtocolError({ message: `expected SSH_MSG_${name} (${number}), got message ${got}` })
  }
  return r
}

/**
 * The message number of a payload, failing on an empty one.
 *
 * @example
 * ```ts
 * messageNumber(encodeNewKeys()) // 21
 * ```
 */
export const messageNumber = (payload: Uint8Array): number => {
  if (payload.length === 0) throw new ProtocolError({ message: "empty payload has no message number" })
  return payload[0]!
}

/**
 * A human-readable name for a transport message number, for error messages.
 *
 * @example
 * ```ts
 * messageName(20) // "SSH_MSG_KEXINIT"
 * ```
 */
export const messageName = (number: number): string => {
  const name = messageNames[number]
  return name === undefined ? `message ${number}` : `SSH_MSG_${name}`
}

const decodeWith = <A>(payload: Uint8Array, number: number, name: string, read: (r: Reader) => A): A => {
  const r = openMessage(payload, number, name)
  const value = read(r)
  r.end(`SSH_MSG_${name}`)
  return value
}

// ---------------------------------------------------------------------------
// KEXINIT
// ---------------------------------------------------------------------------

/**
 * SSH_MSG_KEXINIT (RFC 4253 §7.1).
 *
 * @example
 * ```ts
 * const kexInit: KexInit = {
 *   cookie: new Uint8Array(16),
 *   kexAlgorithms: ["curve25519-sha256", "ext-info-c"],
 *   serverHostKeyAlgorithms: ["ssh-ed25519"],
 *   ciphersClientToServer: ["aes128-ctr"], ciphersServerToClient: ["aes128-ctr"],
 *   macsClientToServer: ["hmac-sha2-256"], macsServerToClient: ["hmac-sha2-256"],
 *   compressionClientToServer: ["none"], compressionServerToClient: ["none"],
 *   languagesClientToServer: [], languagesServerToClient: [],
 *   firstKexPacketFollows: false, reserved: 0
 * }
 * ```
 */
export interface KexInit {
  /** 16 random bytes. */
  readonly cookie: Uint8Array
  readonly kexAlgorithms: ReadonlyArray<string>
  readonly serverHostKeyAlgorithms: ReadonlyArray<string>
  readonly ciphersClientToServer: ReadonlyArray<string>
  readonly ciphersServerToClient: ReadonlyArray<string>
  readonly macsClientToServer: ReadonlyArray<string>
  readonly macsServerToClient: ReadonlyArray<string>
  readonly compressionClientToServer: ReadonlyArray<string>
  readonly compressionServerToClient: ReadonlyArray<string>
  readonly languagesClientToServer: ReadonlyArray<string>
  readonly languagesServerToClient: ReadonlyArray<string>
  readonly firstKexPacketFollows: boolean
  /** Reserved for future extension; 0 when sent by us, kept as received. */
  readonly reserved: number
}

/**
 * Length of the KEXINIT cookie.
 *
 * @example
 * ```ts
 * encodeKexInit({ ...kexInit, cookie: random(KEXINIT_COOKIE_LENGTH) })
 * ```
 */
export const KEXINIT_COOKIE_LENGTH = 16

/**
 * Encodes SSH_MSG_KEXINIT; the result is the payload that goes into the
 * exchange hash as I_C or I_S.
 *
 * @example
 * ```ts
 * const payload = encodeKexInit(kexInit)
 * payload[0] // 20
 * ```
 */
export const encodeKexInit = (k: KexInit): Uint8Array => {
  if (k.cookie.length !== KEXINIT_COOKIE_LENGTH) {
    throw new ProtocolError({ message: `KEXINIT cookie must be 16 bytes, got ${k.cookie.length}` })
  }
  return build((w) =>
    w.byte(MessageNumber.KEXINIT)
      .raw(k.cookie)
      .nameList(k.kexAlgorithms)
      .nameList(k.serverHostKeyAlgorithms)
      .nameList(k.ciphersClientToServer)
      .nameList(k.ciphersServerToClient)
      .nameList(k.macsClientToServer)
      .nameList(k.macsServerToClient)
      .nameList(k.compressionClientToServer)
      .nameList(k.compressionServerToClient)
      .nameList(k.languagesClientToServer)
      .nameList(k.languagesServerToClient)
      .boolean(k.firstKexPacketFollows)
      .uint32(k.reserved), 1024)
}

/**
 * Decodes SSH_MSG_KEXINIT.
 *
 * @example
 * ```ts
 * const peer = decodeKexInit(payload)
 * peer.kexAlgorithms.includes("kex-strict-s-v00@openssh.com")
 * ```
 */
export const decodeKexInit = (payload: Uint8Array): KexInit =>
  decodeWith(payload, MessageNumber.KEXINIT, "KEXINIT", (r) => ({
    cookie: r.raw(KEXINIT_COOKIE_LENGTH, "KEXINIT cookie"),
    kexAlgorithms: r.nameList("kex_algorithms"),
    serverHostKeyAlgorithms: r.nameList("server_host_key_algorithms"),
    ciphersClientToServer: r.nameList("encryption_algorithms_client_to_server"),
    ciphersServerToClient: r.nameList("encryption_algorithms_server_to_client"),
    macsClientToServer: r.nameList("mac_algorithms_client_to_server"),
    macsServerToClient: r.nameList("mac_algorithms_server_to_client"),
    compressionClientToServer: r.nameList("compression_algorithms_client_to_server"),
    compressionServerToClient: r.nameList("compression_algorithms_server_to_client"),
    languagesClientToServer: r.nameList("languages_client_to_server"),
    languagesServerToClient: r.nameList("languages_server_to_client"),
    firstKexPacketFollows: r.boolean(),
    reserved: r.uint32()
  }))

// ---------------------------------------------------------------------------
// NEWKEYS
// ---------------------------------------------------------------------------

/**
 * Encodes SSH_MSG_NEWKEYS (a bare message number).
 *
 * @example
 * ```ts
 * encodeNewKeys() // Uint8Array [21]
 * ```
 */
export const encodeNewKeys = (): Uint8Array => Uint8Array.of(MessageNumber.NEWKEYS)

/**
 * Checks that a payload is exactly SSH_MSG_NEWKEYS.
 *
 * @example
 * ```ts
 * decodeNewKeys(Uint8Array.of(21)) // ok; anything else throws ProtocolError
 * ```
 */
export const decodeNewKeys = (payload: Uint8Array): void =>
  decodeWith(payload, MessageNumber.NEWKEYS, "NEWKEYS", () => undefined)

// ---------------------------------------------------------------------------
// DISCONNECT, IGNORE, UNIMPLEMENTED, DEBUG
// ---------------------------------------------------------------------------

/**
 * SSH_MSG_DISCONNECT (RFC 4253 §11.1); `code` is one of `DisconnectReason`.
 * `language` defaults to "" when encoding; decoding always fills it.
 *
 * @example
 * ```ts
 * const bye: Disconnect = { code: DisconnectReason.BY_APPLICATION, description: "bye" }
 * ```
 */
export interface Disconnect {
  readonly code: number
  readonly description: string
  readonly language?: string | undefined
}

/**
 * Encodes SSH_MSG_DISCONNECT.
 *
 * @example
 * ```ts
 * encodeDisconnect({ code: 11, description: "bye" })
 * ```
 */
export const encodeDisconnect = (m: Disconnect): Uint8Array =>
  build((w) => w.byte(MessageNumber.DISCONNECT).uint32(m.code).string(m.description).string(m.language ?? ""))

/**
 * Decodes SSH_MSG_DISCONNECT.
 *
 * @example
 * ```ts
 * decodeDisconnect(payload).description
 * ```
 */
export const decodeDisconnect = (payload: Uint8Array): Required<Disconnect> =>
  decodeWith(payload, MessageNumber.DISCONNECT, "DISCONNECT", (r) => ({
    code: r.uint32(),
    description: r.utf8("description"),
    language: r.utf8("language tag")
  }))

/**
 * Encodes SSH_MSG_IGNORE (RFC 4253 §11.2) carrying `data`.
 *
 * @example
 * ```ts
 * encodeIgnore(new Uint8Array(0)) // [2, 0, 0, 0, 0]
 * ```
 */
export const encodeIgnore = (data: Uint8Array): Uint8Array => build((w) => w.byte(MessageNumber.IGNORE).string(data))

/**
 * Decodes SSH_MSG_IGNORE into its data.
 *
 * @example
 * ```ts
 * decodeIgnore(payload).length
 * ```
 */
export const decodeIgnore = (payload: Uint8Array): Uint8Array =>
  decodeWith(payload, MessageNumber.IGNORE, "IGNORE", (r) => r.string("ignore data"))

/**
 * Encodes SSH_MSG_UNIMPLEMENTED (RFC 4253 §11.4) for the sequence number of
 * the packet we did not understand.
 *
 * @example
 * ```ts
 * encodeUnimplemented(7) // [3, 0, 0, 0, 7]
 * ```
 */
export const encodeUnimplemented = (sequenceNumber: number): Uint8Array =>
  build((w) => w.byte(MessageNumber.UNIMPLEMENTED).uint32(sequenceNumber))

/**
 * Decodes SSH_MSG_UNIMPLEMENTED into the rejected packet's sequence number.
 *
 * @example
 * ```ts
 * decodeUnimplemented(Uint8Array.of(3, 0, 0, 0, 7)) // 7
 * ```
 */
export const decodeUnimplemented = (payload: Uint8Array): number =>
  decodeWith(payload, MessageNumber.UNIMPLEMENTED, "UNIMPLEMENTED", (r) => r.uint32())

/**
 * SSH_MSG_DEBUG (RFC 4253 §11.3). `language` defaults to "" when encoding.
 *
 * @example
 * ```ts
 * const m: Debug = { alwaysDisplay: false, message: "hello" }
 * ```
 */
export interface Debug {
  readonly alwaysDisplay: boolean
  readonly message: string
  readonly language?: string | undefined
}

/**
 * Encodes SSH_MSG_DEBUG.
 *
 * @example
 * ```ts
 * encodeDebug({ alwaysDisplay: true, message: "note" })
 * ```
 */
export const encodeDebug = (m: Debug): Uint8Array =>
  build((w) => w.byte(MessageNumber.DEBUG).boolean(m.alwaysDisplay).string(m.message).string(m.language ?? ""))

/**
 * Decodes SSH_MSG_DEBUG.
 *
 * @example
 * ```ts
 * decodeDebug(payload).message
 * ```
 */
export const decodeDebug = (payload: Uint8Array): Required<Debug> =>
  decodeWith(payload, MessageNumber.DEBUG, "DEBUG", (r) => ({
    alwaysDisplay: r.boolean(),
    message: r.utf8("debug message"),
    language: r.utf8("language tag")
  }))

// ---------------------------------------------------------------------------
// SERVICE_REQUEST / SERVICE_ACCEPT
// ---------------------------------------------------------------------------

/**
 * Encodes SSH_MSG_SERVICE_REQUEST (RFC 4253 §10) for a service name.
 *
 * @example
 * ```ts
 * encodeServiceRequest("ssh-userauth")
 * ```
 */
export const encodeServiceRequest = (service: string): Uint8Array =>
  build((w) => w.byte(MessageNumber.SERVICE_REQUEST).string(service))

/**
 * Decodes SSH_MSG_SERVICE_REQUEST into the service name.
 *
 * @example
 * ```ts
 * decodeServiceRequest(payload) // "ssh-userauth"
 * ```
 */
export const decodeServiceRequest = (payload: Uint8Array): string =>
  decodeWith(payload, MessageNumber.SERVICE_REQUEST, "SERVICE_REQUEST", (r) => r.name("service name"))

/**
 * Encodes SSH_MSG_SERVICE_ACCEPT for a service name.
 *
 * @example
 * ```ts
 * encodeServiceAccept("ssh-userauth")
 * ```
 */
export const encodeServiceAccept = (service: string): Uint8Array =>
  build((w) => w.byte(MessageNumber.SERVICE_ACCEPT).string(service))

/**
 * Decodes SSH_MSG_SERVICE_ACCEPT into the service name.
 *
 * @example
 * ```ts
 * decodeServiceAccept(payload) // "ssh-userauth"
 * ```
 */
export const decodeServiceAccept = (payload: Uint8Array): string =>
  decodeWith(payload, MessageNumber.SERVICE_ACCEPT, "SERVICE_ACCEPT", (r) => r.name("service name"))

// ---------------------------------------------------------------------------
// EXT_INFO (RFC 8308)
// ---------------------------------------------------------------------------

/**
 * SSH_MSG_EXT_INFO (RFC 8308 §2.3): `[name, value]` pairs in the order sent;
 * each value's format is defined by its extension. `new Map(extInfo)` gives
 * lookup by name.
 *
 * @example
 * ```ts
 * const info: ExtInfo = [serverSigAlgsExtension(["ssh-ed25519", "rsa-sha2-256"])]
 * ```
 */
export type ExtInfo = ReadonlyArray<readonly [name: string, value: Uint8Array]>

/**
 * The RFC 8308 extension listing the signature algorithms a server accepts for publickey auth.
 *
 * @example
 * ```ts
 * new Map(decodeExtInfo(payload)).get(SERVER_SIG_ALGS)
 * ```
 */
export const SERVER_SIG_ALGS = "server-sig-algs"

/**
 * Encodes SSH_MSG_EXT_INFO.
 *
 * @example
 * ```ts
 * encodeExtInfo([["ping@openssh.com", new TextEncoder().encode("0")]])
 * ```
 */
export const encodeExtInfo = (extensions: ExtInfo): Uint8Array =>
  build((w) => {
    w.byte(MessageNumber.EXT_INFO).uint32(extensions.length)
    for (const [name, value] of extensions) w.string(name).string(value)
  })

/**
 * Decodes SSH_MSG_EXT_INFO. The extension count is not trusted: entries are
 * read one by one, so a huge count only fails on the truncated data.
 *
 * @example
 * ```ts
 * const extensions = new Map(decodeExtInfo(payload))
 * ```
 */
export const decodeExtInfo = (payload: Uint8Array): Array<[name: string, value: Uint8Array]> =>
  decodeWith(payload, MessageNumber.EXT_INFO, "EXT_INFO", (r) => {
    const count = r.uint32()
    const extensions: Array<[string, Uint8Array]> = []
    for (let i = 0; i < count; i++) extensions.push([r.name("extension name"), r.string("extension value")])
    return extensions
  })

/**
 * Builds the `server-sig-algs` extension from algorithm names.
 *
 * @example
 * ```ts
 * serverSigAlgsExtension(["ssh-ed25519", "rsa-sha2-512"])[0] // "server-sig-algs"
 * ```
 */
export const serverSigAlgsExtension = (algorithms: ReadonlyArray<string>): readonly [string, Uint8Array] => [
  SERVER_SIG_ALGS,
  utf8(algorithms.join(","))
]

/**
 * The algorithms of the `server-sig-algs` extension, or `undefined` when the
 * message does not carry one. Throws `ProtocolError` when its value is not a
 * valid name-list.
 *
 * @example
 * ```ts
 * serverSigAlgs(decodeExtInfo(payload)) // ["ssh-ed25519", "rsa-sha2-512"]
 * ```
 */
export const serverSigAlgs = (extensions: ExtInfo): Array<string> | undefined => {
  const extension = extensions.find(([name]) => name === SERVER_SIG_ALGS)
  if (extension === undefined) return undefined
  return new Reader(build((w) => w.string(extension[1]))).nameList(SERVER_SIG_ALGS)
}

// ---------------------------------------------------------------------------
// Key exchange messages (30..34)
// ---------------------------------------------------------------------------

/**
 * SSH_MSG_KEX_ECDH_INIT (30) of RFC 5656 / RFC 8731, also used by
 * mlkem768x25519-sha256: the client's ephemeral public value as a string.
 *
 * @example
 * ```ts
 * const m: KexEcdhInit = { clientPublic: x25519PublicKey }
 * ```
 */
export interface KexEcdhInit {
  readonly clientPublic: Uint8Array
}

/**
 * SSH_MSG_KEX_ECDH_REPLY (31): host key blob, server public value, signature blob.
 *
 * @example
 * ```ts
 * const m: KexEcdhReply = { hostKey: blob, serverPublic: q, signature: sig }
 * ```
 */
export interface KexEcdhReply {
  readonly hostKey: Uint8Array
  readonly serverPublic: Uint8Array
  readonly signature: Uint8Array
}

/**
 * Encodes SSH_MSG_KEX_ECDH_INIT.
 *
 * @example
 * ```ts
 * encodeKexEcdhInit({ clientPublic: new Uint8Array(32) })
 * ```
 */
export const encodeKexEcdhInit = (m: KexEcdhInit): Uint8Array =>
  build((w) => w.byte(MessageNumber.KEXDH_INIT).string(m.clientPublic))

/**
 * Decodes SSH_MSG_KEX_ECDH_INIT.
 *
 * @example
 * ```ts
 * decodeKexEcdhInit(payload).clientPublic.length // 32 for curve25519
 * ```
 */
export const decodeKexEcdhInit = (payload: Uint8Array): KexEcdhInit =>
  decodeWith(payload, MessageNumber.KEXDH_INIT, "KEX_ECDH_INIT", (r) => ({ clientPublic: r.string("Q_C") }))

/**
 * Encodes SSH_MSG_KEX_ECDH_REPLY.
 *
 * @example
 * ```ts
 * encodeKexEcdhReply({ hostKey: blob, serverPublic: q, signature: sig })
 * ```
 */
export const encodeKexEcdhReply = (m: KexEcdhReply): Uint8Array =>
  build((w) => w.byte(MessageNumber.KEXDH_REPLY).string(m.hostKey).string(m.serverPublic).string(m.signature))

/**
 * Decodes SSH_MSG_KEX_ECDH_REPLY.
 *
 * @example
 * ```ts
 * const { hostKey, serverPublic, signature } = decodeKexEcdhReply(payload)
 * ```
 */
export const decodeKexEcdhReply = (payload: Uint8Array): KexEcdhReply =>
  decodeWith(payload, MessageNumber.KEXDH_REPLY, "KEX_ECDH_REPLY", (r) => ({
    hostKey: r.string("host key"),
    serverPublic: r.string("Q_S"),
    signature: r.string("signature")
  }))

/**
 * SSH_MSG_KEXDH_INIT (30) and SSH_MSG_KEX_DH_GEX_INIT (32): the client's `e`.
 *
 * @example
 * ```ts
 * const m: KexDhInit = { e: magnitudeBytes }
 * ```
 */
export interface KexDhInit {
  /** Unsigned big-endian magnitude, no leading zeros. */
  readonly e: Uint8Array
}

/**
 * SSH_MSG_KEXDH_REPLY (31) and SSH_MSG_KEX_DH_GEX_REPLY (33).
 *
 * @example
 * ```ts
 * const m: KexDhReply = { hostKey: blob, f: magnitudeBytes, signature: sig }
 * ```
 */
export interface KexDhReply {
  readonly hostKey: Uint8Array
  /** Unsigned big-endian magnitude, no leading zeros. */
  readonly f: Uint8Array
  readonly signature: Uint8Array
}

const writeDhInit = (number: number) => (m: KexDhInit) =>
  build((w) => w.byte(number).mpintFromUnsigned(m.e), 16 + m.e.length)

const readDhInit = (number: number, name: string) => (payload: Uint8Array): KexDhInit =>
  decodeWith(payload, number, name, (r) => ({ e: r.mpintBytes("e") }))

const writeDhReply = (number: number) => (m: KexDhReply) =>
  build(
    (w) => w.byte(number).string(m.hostKey).mpintFromUnsigned(m.f).string(m.signature),
    32 + m.hostKey.length + m.f.length + m.signature.length
  )

const readDhReply = (number: number, name: string) => (payload: Uint8Array): KexDhReply =>
  decodeWith(payload, number, name, (r) => ({
    hostKey: r.string("host key"),
    f: r.mpintBytes("f"),
    signature: r.string("signature")
  }))

/**
 * Encodes SSH_MSG_KEXDH_INIT (RFC 4253 §8).
 *
 * @example
 * ```ts
 * encodeKexDhInit({ e })
 * ```
 */
export const encodeKexDhInit: (m: KexDhInit) => Uint8Array = writeDhInit(MessageNumber.KEXDH_INIT)

/**
 * Decodes SSH_MSG_KEXDH_INIT.
 *
 * @example
 * ```ts
 * decodeKexDhInit(payload).e
 * ```
 */
export const decodeKexDhInit: (payload: Uint8Array) => KexDhInit = readDhInit(MessageNumber.KEXDH_INIT, "KEXDH_INIT")

/**
 * Encodes SSH_MSG_KEXDH_REPLY.
 *
 * @example
 * ```ts
 * encodeKexDhReply({ hostKey, f, signature })
 * ```
 */
export const encodeKexDhReply: (m: KexDhReply) => Uint8Array = writeDhReply(MessageNumber.KEXDH_REPLY)

/**
 * Decodes SSH_MSG_KEXDH_REPLY.
 *
 * @example
 * ```ts
 * decodeKexDhReply(payload).f
 * ```
 */
export const decodeKexDhReply: (payload: Uint8Array) => KexDhReply = readDhReply(
  MessageNumber.KEXDH_REPLY,
  "KEXDH_REPLY"
)

/**
 * SSH_MSG_KEX_DH_GEX_REQUEST (34, RFC 4419 §3): group sizes in bits.
 *
 * @example
 * ```ts
 * const m: KexDhGexRequest = { min: 2048, preferred: 3072, max: 8192 }
 * ```
 */
export interface KexDhGexRequest {
  readonly min: number
  readonly preferred: number
  readonly max: number
}

/**
 * SSH_MSG_KEX_DH_GEX_GROUP (31): the safe prime and generator the server chose.
 *
 * @example
 * ```ts
 * const m: KexDhGexGroup = { p: primeBytes, g: Uint8Array.of(2) }
 * ```
 */
export interface KexDhGexGroup {
  /** Unsigned big-endian magnitude, no leading zeros. */
  readonly p: Uint8Array
  /** Unsigned big-endian magnitude, no leading zeros. */
  readonly g: Uint8Array
}

/**
 * Encodes SSH_MSG_KEX_DH_GEX_REQUEST.
 *
 * @example
 * ```ts
 * encodeKexDhGexRequest({ min: 2048, preferred: 3072, max: 8192 })
 * ```
 */
export const encodeKexDhGexRequest = (m: KexDhGexRequest): Uint8Array =>
  build((w) => w.byte(MessageNumber.KEX_DH_GEX_REQUEST).uint32(m.min).uint32(m.preferred).uint32(m.max))

/**
 * Decodes SSH_MSG_KEX_DH_GEX_REQUEST.
 *
 * @example
 * ```ts
 * decodeKexDhGexRequest(payload).preferred // 3072
 * ```
 */
export const decodeKexDhGexRequest = (payload: Uint8Array): KexDhGexRequest =>
  decodeWith(payload, MessageNumber.KEX_DH_GEX_REQUEST, "KEX_DH_GEX_REQUEST", (r) => ({
    min: r.uint32(),
    preferred: r.uint32(),
    max: r.uint32()
  }))

/**
 * Encodes SSH_MSG_KEX_DH_GEX_GROUP.
 *
 * @example
 * ```ts
 * encodeKexDhGexGroup({ p, g: Uint8Array.of(2) })
 * ```
 */
export const encodeKexDhGexGroup = (m: KexDhGexGroup): Uint8Array =>
  build(
    (w) => w.byte(MessageNumber.KEX_DH_GEX_GROUP).mpintFromUnsigned(m.p).mpintFromUnsigned(m.g),
    16 + m.p.length + m.g.length
  )

/**
 * Decodes SSH_MSG_KEX_DH_GEX_GROUP.
 *
 * @example
 * ```ts
 * const { p, g } = decodeKexDhGexGroup(payload)
 * ```
 */
export const decodeKexDhGexGroup = (payload: Uint8Array): KexDhGexGroup =>
  decodeWith(payload, MessageNumber.KEX_DH_GEX_GROUP, "KEX_DH_GEX_GROUP", (r) => ({
    p: r.mpintBytes("p"),
    g: r.mpintBytes("g")
  }))

/**
 * Encodes SSH_MSG_KEX_DH_GEX_INIT.
 *
 * @example
 * ```ts
 * encodeKexDhGexInit({ e })
 * ```
 */
export const encodeKexDhGexInit: (m: KexDhInit) => Uint8Array = writeDhInit(MessageNumber.KEX_DH_GEX_INIT)

/**
 * Decodes SSH_MSG_KEX_DH_GEX_INIT.
 *
 * @example
 * ```ts
 * decodeKexDhGexInit(payload).e
 * ```
 */
export const decodeKexDhGexInit: (payload: Uint8Array) => KexDhInit = readDhInit(
  MessageNumber.KEX_DH_GEX_INIT,
  "KEX_DH_GEX_INIT"
)

/**
 * Encodes SSH_MSG_KEX_DH_GEX_REPLY.
 *
 * @example
 * ```ts
 * encodeKexDhGexReply({ hostKey, f, signature })
 * ```
 */
export const encodeKexDhGexReply: (m: KexDhReply) => Uint8Array = writeDhReply(MessageNumber.KEX_DH_GEX_REPLY)

/**
 * Decodes SSH_MSG_KEX_DH_GEX_REPLY.
 *
 * @example
 * ```ts
 * decodeKexDhGexReply(payload).signature
 * ```
 */
export const decodeKexDhGexReply: (payload: Uint8Array) => KexDhReply = readDhReply(
  MessageNumber.KEX_DH_GEX_REPLY,
  "KEX_DH_GEX_REPLY"
)
