/**
 * The ssh-agent protocol (RFC 9987, OpenSSH's PROTOCOL.agent): requests and
 * replies as plain data, their encoding, and the `uint32 length` framing of
 * the agent socket.
 *
 * Both directions are here, so the same codec serves a client talking to
 * `SSH_AUTH_SOCK` and an agent answering one (tests, forwarding proxies).
 * Decoding throws a reason (`ProtocolError` for a malformed message,
 * `KeyParseFailed` for a key inside one), never anything else, and never
 * allocates from an unchecked length.
 *
 * @example
 * ```ts
 * const frame = Agent.frame(Agent.encodeRequest({ _tag: "RequestIdentities" }))
 * // ... write frame, read a reply frame ...
 * const reply = Agent.decodeResponse(payload)
 * if (reply._tag === "Identities") reply.identities.map((i) => i.comment)
 * ```
 * @since 0.1.0
 */
import { ByteQueue } from "../internal/byteQueue.ts"
import { fromUtf8 } from "../internal/bytes.ts"
import * as SecurityKey from "../internal/securityKey.ts"
import { isSshErrorReason, ProtocolError } from "../SshError.ts"
import { Reader } from "../Wire/Reader.ts"
import { build, type Writer } from "../Wire/Writer.ts"
import * as Certificate from "./Certificate.ts"
import * as PrivateKey from "./PrivateKey.ts"
import * as PublicKey from "./PublicKey.ts"

/**
 * Message numbers (RFC 9987 §8.1).
 *
 * @example
 * ```ts
 * payload[0] === Agent.MessageType.SIGN_RESPONSE
 * ```
 */
export const MessageType = {
  FAILURE: 5,
  SUCCESS: 6,
  REQUEST_IDENTITIES: 11,
  IDENTITIES_ANSWER: 12,
  SIGN_REQUEST: 13,
  SIGN_RESPONSE: 14,
  ADD_IDENTITY: 17,
  REMOVE_IDENTITY: 18,
  REMOVE_ALL_IDENTITIES: 19,
  ADD_SMARTCARD_KEY: 20,
  REMOVE_SMARTCARD_KEY: 21,
  LOCK: 22,
  UNLOCK: 23,
  ADD_ID_CONSTRAINED: 25,
  ADD_SMARTCARD_KEY_CONSTRAINED: 26,
  EXTENSION: 27,
  EXTENSION_FAILURE: 28,
  EXTENSION_RESPONSE: 29
} as const

/**
 * Signature request flags (RFC 9987 §8.3): which hash an `ssh-rsa` key signs with.
 *
 * @example
 * ```ts
 * Agent.encodeRequest({ _tag: "Sign", key: publicKey.blob, data, flags: Agent.SignFlags.RSA_SHA2_256 })
 * ```
 */
export const SignFlags = {
  RSA_SHA2_256: 0x02,
  RSA_SHA2_512: 0x04
} as const

/** Constraint numbers (RFC 9987 §8.2; 3 is OpenSSH's XMSS signature budget). */
const CONSTRAIN_LIFETIME = 1
const CONSTRAIN_CONFIRM = 2
const CONSTRAIN_MAXSIGN = 3
const CONSTRAIN_EXTENSION = 255

/**
 * OpenSSH's agent refuses messages longer than this, and so do we.
 *
 * @example
 * ```ts
 * Agent.MAX_MESSAGE_LENGTH // 262144
 * ```
 */
export const MAX_MESSAGE_LENGTH = 256 * 1024

/** A limit on a key's use, given when adding it. */
export type Constraint =
  /** Delete the key after this many seconds. */
  | { readonly _tag: "Lifetime"; readonly seconds: number }
  /** Ask the user to confirm every use. */
  | { readonly _tag: "Confirm" }
  /** OpenSSH: at most this many signatures (XMSS keys). */
  | { readonly _tag: "MaxSignatures"; readonly count: number }
  /**
   * A named extension; `data` is its encoded details. Decoding knows the
   * layout of OpenSSH's (`sk-provider@openssh.com`,
   * `restrict-destination-v00@openssh.com`, `associated-certs-v00@openssh.com`).
   */
  | { readonly _tag: "Extension"; readonly name: string; readonly data: Uint8Array }

/** A request from a client to an agent. */
export type AgentRequest =
  | { readonly _tag: "RequestIdentities" }
  | { readonly _tag: "Sign"; readonly key: Uint8Array; readonly data: Uint8Array; readonly flags: number }
  | {
    readonly _tag: "AddIdentity"
    readonly key: PrivateKey.PrivateKey
    /** Add the key as this certificate (the certificate must certify the key). */
    readonly certificate?: Certificate.Certificate | undefined
    readonly comment: string
    readonly constraints: ReadonlyArray<Constraint>
  }
  | { readonly _tag: "RemoveIdentity"; readonly key: Uint8Array }
  | { readonly _tag: "RemoveAllIdentities" }
  | { readonly _tag: "AddSmartcardKey"; readonly id: string; readonly pin: string; readonly constraints: ReadonlyArray<Constraint> }
  | { readonly _tag: "RemoveSmartcardKey"; readonly id: string; readonly pin: string }
  | { readonly _tag: "Lock"; readonly passphrase: Uint8Array }
  | { readonly _tag: "Unlock"; readonly passphrase: Uint8Array }
  | { readonly _tag: "Extension"; readonly name: string; readonly data: Uint8Array }

/** One key an agent holds: its public blob and comment. */
export interface IdentityEntry {
  readonly blob: Uint8Array
  readonly comment: string
}

/** A reply from an agent. */
export type AgentResponse =
  | { readonly _tag: "Success" }
  | { readonly _tag: "Failure" }
  | { readonly _tag: "Identities"; readonly identities: ReadonlyArray<IdentityEntry> }
  | { readonly _tag: "SignResponse"; readonly signature: Uint8Array }
  | { readonly _tag: "ExtensionResponse"; readonly name: string; readonly data: Uint8Array }
  | { readonly _tag: "ExtensionFailure" }

/** A key an agent holds, with what we could make of its blob. */
export interface Identity extends IdentityEntry {
  /** The key type named in the blob (also for types we cannot parse, e.g. `ssh-dss`). */
  readonly type: string
  /** The key, when its type is one we know: a plain key or a FIDO security key. */
  readonly key?: PublicKey.PublicKey | SecurityKey.SecurityKey | undefined
  /** The certificate, when the identity is one. */
  readonly certificate?: Certificate.Certificate | undefined
}

const fail = (message: string): never => {
  throw new ProtocolError({ message })
}

// ---------------------------------------------------------------------------
// framing

/**
 * A message with its `uint32 length` prefix, as written to the agent socket.
 *
 * @example
 * ```ts
 * Agent.frame(Uint8Array.of(11)) // Uint8Array [0, 0, 0, 1, 11]
 * ```
 */
export const frame = (payload: Uint8Array): Uint8Array => build((w) => w.string(payload), payload.length + 4)

/**
 * Splits the bytes read from an agent socket into messages.
 *
 * @example
 * ```ts
 * const frames = new Agent.FrameDecoder()
 * frames.push(Agent.frame(Agent.encodeResponse({ _tag: "Success" }))) // bytes read from the socket
 * for (let m = frames.next(); m !== undefined; m = frames.next()) Agent.decodeResponse(m) // { _tag: "Success" }
 * ```
 */
export class FrameDecoder {
  private readonly queue = new ByteQueue()

  /** Bytes received and not yet returned as messages. */
  get buffered(): number {
    return this.queue.length
  }

  /** Appends bytes read from the socket (not copied). */
  push(chunk: Uint8Array): void {
    this.queue.push(chunk)
  }

  /**
   * The next complete message, or `undefined` until more bytes arrive.
   * Throws `ProtocolError` for an empty or oversized message.
   */
  next(): Uint8Array | undefined {
    if (this.queue.length < 4) return undefined
    const length = new Reader(this.queue.peek(4)).uint32()
    if (length === 0 || length > MAX_MESSAGE_LENGTH) {
      return fail(`agent message of ${length} bytes (must be 1..${MAX_MESSAGE_LENGTH})`)
    }
    if (this.queue.length < 4 + length) return undefined
    this.queue.skip(4)
    return this.queue.take(length).slice()
  }
}

// ---------------------------------------------------------------------------
// constraints

const writeConstraint = (w: Writer, c: Constraint): Writer => {
  switch (c._tag) {
    case "Lifetime":
      return w.byte(CONSTRAIN_LIFETIME).uint32(c.seconds)
    case "Confirm":
      return w.byte(CONSTRAIN_CONFIRM)
    case "MaxSignatures":
      return w.byte(CONSTRAIN_MAXSIGN).uint32(c.count)
    case "Extension":
      return w.byte(CONSTRAIN_EXTENSION).string(c.name).raw(c.data)
  }
}

/** The byte length of a known constraint extension's details at the reader's position. */
const extensionDetails = (r: Reader, name: string): Uint8Array => {
  const start = r.offset
  switch (name) {
    case "sk-provider@openssh.com":
    case "restrict-destination-v00@openssh.com":
      r.string(name)
      break
    case "associated-certs-v00@openssh.com":
      r.boolean()
      r.string(name)
      break
    default:
      return fail(`unknown constraint extension ${name}`)
  }
  return r.bytes.subarray(start, r.offset)
}

const readConstraints = (r: Reader): Array<Constraint> => {
  const constraints: Array<Constraint> = []
  while (r.remaining > 0) {
    const type = r.byte()
    switch (type) {
      case CONSTRAIN_LIFETIME:
        constraints.push({ _tag: "Lifetime", seconds: r.uint32() })
        break
      case CONSTRAIN_CONFIRM:
        constraints.push({ _tag: "Confirm" })
        break
      case CONSTRAIN_MAXSIGN:
        constraints.push({ _tag: "MaxSignatures", count: r.uint32() })
        break
      case CONSTRAIN_EXTENSION: {
        const name = r.utf8("constraint extension name")
        constraints.push({ _tag: "Extension", name, data: extensionDetails(r, name) })
        break
      }
      default:
        return fail(`unknown key constraint ${type}`)
    }
  }
  return constraints
}

// ---------------------------------------------------------------------------
// private keys in add requests

/**
 * The private fields of a certificate add request (draft-ietf-sshm-cert
 * §2.5): the plain agent encoding without the public parts the certificate
 * already carries.
 */
const writeCertificatePrivateFields = (w: Writer, key: PrivateKey.PrivateKey): Writer => {
  const plain = new Reader(build((p) => PrivateKey.writePrivateFields(p, key)))
  const type = plain.name()
  // ed25519: string(A) string(k || A); rsa: n e | d iqmp p q; ecdsa: curve Q | d
  plain.string()
  if (type === "ssh-ed25519") return w.string(plain.string())
  plain.string()
  return w.raw(plain.rest())
}

/** Rebuilds the plain agent encoding of a certificate's key from its certificate and private fields. */
const readCertificatePrivateFields = (r: Reader, cert: Certificate.Certificate): Uint8Array => {
  const key = cert.key
  switch (key.type) {
    case "ssh-ed25519":
      return build((w) => w.string(key.type).string(key.key).string(r.string("ssh-ed25519 private key")))
    case "ssh-rsa":
      return build((w) => {
        w.string(key.type).mpintFromUnsigned(key.n).mpintFromUnsigned(key.e)
        for (const part of ["d", "iqmp", "p", "q"]) w.string(r.string(`ssh-rsa ${part}`))
      })
    case "ecdsa-sha2-nistp256":
    case "ecdsa-sha2-nistp384":
    case "ecdsa-sha2-nistp521":
      return build((w) => w.string(key.type).string(key.curve).string(key.point).string(r.string("ecdsa private scalar")))
    default:
      return fail(`cannot add a ${cert.type} (security key) to an agent from its private fields`)
  }
}

const readAddedKey = (r: Reader): { key: PrivateKey.PrivateKey; certificate?: Certificate.Certificate } => {
  const start = r.offset
  const type = r.name("key type")
  if (!Certificate.isCertificateType(type)) {
    r.offset = start
    return { key: PrivateKey.readPrivateFields(r, "") }
  }
  const certificate = Certificate.fromBlob(r.string("certificate"))
  if (certificate.type !== type) fail(`certificate of type ${certificate.type} sent as ${type}`)
  const key = PrivateKey.readPrivateFields(new Reader(readCertificatePrivateFields(r, certificate)), "")
  return { key, certificate }
}

// ---------------------------------------------------------------------------
// requests

/**
 * Encodes a request (without the length prefix; see `frame`).
 *
 * @example
 * ```ts
 * Agent.encodeRequest({ _tag: "Sign", key: publicKey.blob, data, flags: Agent.SignFlags.RSA_SHA2_512 })
 * ```
 */
export const encodeRequest = (request: AgentRequest): Uint8Array =>
  build((w) => {
    switch (request._tag) {
      case "RequestIdentities":
        return w.byte(MessageType.REQUEST_IDENTITIES)
      case "Sign":
        return w.byte(MessageType.SIGN_REQUEST).string(request.key).string(request.data).uint32(request.flags)
      case "AddIdentity": {
        const constrained = request.constraints.length > 0
        w.byte(constrained ? MessageType.ADD_ID_CONSTRAINED : MessageType.ADD_IDENTITY)
        if (request.certificate === undefined) {
          PrivateKey.writePrivateFields(w, request.key)
        } else {
          w.string(request.certificate.type).string(request.certificate.blob)
          writeCertificatePrivateFields(w, request.key)
        }
        w.string(request.comment)
        for (const c of request.constraints) writeConstraint(w, c)
        return w
      }
      case "RemoveIdentity":
        return w.byte(MessageType.REMOVE_IDENTITY).string(request.key)
      case "RemoveAllIdentities":
        return w.byte(MessageType.REMOVE_ALL_IDENTITIES)
      case "AddSmartcardKey": {
        const constrained = request.constraints.length > 0
        w.byte(constrained ? MessageType.ADD_SMARTCARD_KEY_CONSTRAINED : MessageType.ADD_SMARTCARD_KEY)
        w.string(request.id).string(request.pin)
        for (const c of request.constraints) writeConstraint(w, c)
        return w
      }
      case "RemoveSmartcardKey":
        return w.byte(MessageType.REMOVE_SMARTCARD_KEY).string(request.id).string(request.pin)
      case "Lock":
        return w.byte(MessageType.LOCK).string(request.passphrase)
      case "Unlock":
        return w.byte(MessageType.UNLOCK).string(request.passphrase)
      case "Extension":
        return w.byte(MessageType.EXTENSION).string(request.name).raw(request.data)
    }
  })

/**
 * Decodes a request, as an agent receives it. A request an agent must
 * refuse as malformed (unknown type, unknown constraint, bad key) throws.
 *
 * @throws ProtocolError, or KeyParseFailed for the key of an add request.
 * @example
 * ```ts
 * Agent.decodeRequest(Uint8Array.of(11)) // { _tag: "RequestIdentities" }
 * ```
 */
export const decodeRequest = (payload: Uint8Array): AgentRequest => {
  const r = new Reader(payload)
  const type = r.byte()
  let request: AgentRequest
  switch (type) {
    case MessageType.REQUEST_IDENTITIES:
      request = { _tag: "RequestIdentities" }
      break
    case MessageType.SIGN_REQUEST:
      request = { _tag: "Sign", key: r.string("key blob").slice(), data: r.string("data").slice(), flags: r.uint32() }
      break
    case MessageType.ADD_IDENTITY:
    case MessageType.ADD_ID_CONSTRAINED: {
      const added = readAddedKey(r)
      const comment = r.utf8("comment")
      const constraints = type === MessageType.ADD_ID_CONSTRAINED ? readConstraints(r) : []
      request = { _tag: "AddIdentity", ...added, comment, constraints }
      break
    }
    case MessageType.REMOVE_IDENTITY:
      request = { _tag: "RemoveIdentity", key: r.string("key blob").slice() }
      break
    case MessageType.REMOVE_ALL_IDENTITIES:
      request = { _tag: "RemoveAllIdentities" }
      break
    case MessageType.ADD_SMARTCARD_KEY:
    case MessageType.ADD_SMARTCARD_KEY_CONSTRAINED: {
      const id = r.utf8("token id")
      const pin = r.utf8("PIN")
      const constraints = type === MessageType.ADD_SMARTCARD_KEY_CONSTRAINED ? readConstraints(r) : []
      request = { _tag: "AddSmartcardKey", id, pin, constraints }
      break
    }
    case MessageType.REMOVE_SMARTCARD_KEY:
      request = { _tag: "RemoveSmartcardKey", id: r.utf8("token id"), pin: r.utf8("PIN") }
      break
    case MessageType.LOCK:
      request = { _tag: "Lock", passphrase: r.string("passphrase").slice() }
      break
    case MessageType.UNLOCK:
      request = { _tag: "Unlock", passphrase: r.string("passphrase").slice() }
      break
    case MessageType.EXTENSION:
      return { _tag: "Extension", name: r.utf8("extension name"), data: r.rest().slice() }
    default:
      return fail(`unknown agent request ${type}`)
  }
  r.end("agent request")
  return request
}

// ---------------------------------------------------------------------------
// responses

/**
 * Encodes a reply (without the length prefix; see `frame`).
 *
 * @example
 * ```ts
 * Agent.encodeResponse({ _tag: "Identities", identities: [{ blob: publicKey.blob, comment: "me@host" }] })
 * ```
 */
export const encodeResponse = (response: AgentResponse): Uint8Array =>
  build((w) => {
    switch (response._tag) {
      case "Success":
        return w.byte(MessageType.SUCCESS)
      case "Failure":
        return w.byte(MessageType.FAILURE)
      case "Identities":
        w.byte(MessageType.IDENTITIES_ANSWER).uint32(response.identities.length)
        for (const { blob, comment } of response.identities) w.string(blob).string(comment)
        return w
      case "SignResponse":
        return w.byte(MessageType.SIGN_RESPONSE).string(response.signature)
      case "ExtensionResponse":
        return w.byte(MessageType.EXTENSION_RESPONSE).string(response.name).raw(response.data)
      case "ExtensionFailure":
        return w.byte(MessageType.EXTENSION_FAILURE)
    }
  })

/**
 * Decodes an agent's reply. Comments that are not valid UTF-8 are decoded
 * leniently (agents store whatever `ssh-add` was given).
 *
 * @throws ProtocolError
 * @example
 * ```ts
 * Agent.decodeResponse(Uint8Array.of(6)) // { _tag: "Success" }
 * ```
 */
export const decodeResponse = (payload: Uint8Array): AgentResponse => {
  const r = new Reader(payload)
  const type = r.byte()
  let response: AgentResponse
  switch (type) {
    case MessageType.SUCCESS:
      response = { _tag: "Success" }
      break
    case MessageType.FAILURE:
      response = { _tag: "Failure" }
      break
    case MessageType.IDENTITIES_ANSWER: {
      const count = r.uint32()
      const identities: Array<IdentityEntry> = []
      // each entry takes at least 8 bytes: a count beyond that is a lie, caught by the reads below
      for (let i = 0; i < count; i++) {
        const blob = r.string("key blob").slice()
        identities.push({ blob, comment: fromUtf8(r.string("comment")) })
      }
      response = { _tag: "Identities", identities }
      break
    }
    case MessageType.SIGN_RESPONSE:
      response = { _tag: "SignResponse", signature: r.string("signature").slice() }
      break
    case MessageType.EXTENSION_RESPONSE:
      return { _tag: "ExtensionResponse", name: r.utf8("extension name"), data: r.rest().slice() }
    case MessageType.EXTENSION_FAILURE:
      response = { _tag: "ExtensionFailure" }
      break
    default:
      return fail(`unknown agent reply ${type}`)
  }
  r.end("agent reply")
  return response
}

// ---------------------------------------------------------------------------
// identities and signing

/**
 * What an identity's blob is: a plain key, a security key, a certificate,
 * or a type we do not know (kept with just its type name). Never throws.
 *
 * @example
 * ```ts
 * Agent.identityOf({ blob: publicKey.blob, comment: "me@host" }).type // "ssh-ed25519"
 * ```
 */
export const identityOf = (entry: IdentityEntry): Identity => {
  let type = "unknown"
  try {
    type = new Reader(entry.blob).name("key type")
    if (Certificate.isCertificateType(type)) {
      const certificate = Certificate.fromBlob(entry.blob)
      return { ...entry, type, key: certificate.key, certificate }
    }
    if (SecurityKey.isSecurityKeyType(type)) return { ...entry, type, key: SecurityKey.fromBlob(entry.blob) }
    if (PublicKey.isKeyType(type)) return { ...entry, type, key: PublicKey.fromBlob(entry.blob) }
  } catch (u) {
    // a blob we cannot parse stays an identity of its (possibly unknown) type; anything else is a bug
    if (!isSshErrorReason(u)) throw u
  }
  return { ...entry, type }
}

/**
 * The sign request flags that ask for `algorithm`: the SHA-2 flags for the
 * `rsa-sha2-*` algorithms (plain or certificate), 0 otherwise.
 *
 * @example
 * ```ts
 * Agent.signFlags("rsa-sha2-512")                      // 4
 * Agent.signFlags("rsa-sha2-256-cert-v01@openssh.com") // 2
 * Agent.signFlags("ssh-ed25519")                       // 0
 * ```
 */
export const signFlags = (algorithm: string): number => {
  const plain = Certificate.signatureAlgorithmOf(algorithm) ?? algorithm
  return plain === "rsa-sha2-512" ? SignFlags.RSA_SHA2_512 : plain === "rsa-sha2-256" ? SignFlags.RSA_SHA2_256 : 0
}
