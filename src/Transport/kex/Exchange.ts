/**
 * What every key exchange method shares: the inputs and result types, the
 * client and server state machine interfaces, the exchange hash H
 * (RFC 4253 §8 and its per-method variants), and the generic machine for
 * methods that take a single round trip — the client sends its ephemeral
 * public value (message 30), the server answers with its host key, its own
 * public value and a signature over H (message 31).
 *
 * A method only describes its arithmetic as a `KeyAgreement`; which messages
 * carry the values and how they enter H follows from its `encoding`.
 *
 * @since 0.1.0
 */
import { sha1 } from "@noble/hashes/legacy.js"
import { sha256, sha384, sha512 } from "@noble/hashes/sha2.js"
import { randomBytes } from "@noble/hashes/utils.js"
import { ProtocolError } from "../../SshError.ts"
import { build, type Writer } from "../../Wire/Writer.ts"
import * as Messages from "../Messages.ts"

// ---------------------------------------------------------------------------
// Hashes
// ---------------------------------------------------------------------------

/**
 * The hash of a key exchange method; it computes H and derives the keys.
 *
 * @example
 * ```ts
 * const h: KexHash = "sha256"
 * ```
 */
export type KexHash = "sha1" | "sha256" | "sha384" | "sha512"

const hashFunctions = { sha1, sha256, sha384, sha512 } as const

/**
 * Hashes bytes with a kex hash.
 *
 * @example
 * ```ts
 * digest("sha256", new Uint8Array(0)).length // 32
 * ```
 */
export const digest = (hash: KexHash, data: Uint8Array): Uint8Array => hashFunctions[hash](data)

/**
 * Output length of a kex hash in bytes.
 *
 * @example
 * ```ts
 * digestLength("sha512") // 64
 * ```
 */
export const digestLength = (hash: KexHash): number => hashFunctions[hash].outputLen

// ---------------------------------------------------------------------------
// Inputs, results, state machines
// ---------------------------------------------------------------------------

/**
 * A source of random bytes. Injected so tests can be deterministic; defaults
 * to the platform CSPRNG.
 *
 * @example
 * ```ts
 * const fixed: Random = (n) => new Uint8Array(n).fill(7)
 * ```
 */
export type Random = (length: number) => Uint8Array

/**
 * The platform CSPRNG (`crypto.getRandomValues`).
 *
 * @example
 * ```ts
 * defaultRandom(16).length // 16
 * ```
 */
export const defaultRandom: Random = (length) => randomBytes(length)

/**
 * What both sides feed into the exchange hash besides the method's values.
 *
 * @example
 * ```ts
 * const inputs: KexInputs = {
 *   clientVersion: "SSH-2.0-effect_ssh_0.1", serverVersion: "SSH-2.0-OpenSSH_9.9",
 *   clientKexInit, serverKexInit, algorithm: "curve25519-sha256"
 * }
 * ```
 */
export interface KexInputs {
  /** Our role, if given, must match the constructor used (`makeClientKex` / `makeServerKex`). */
  readonly role?: "client" | "server" | undefined
  /** The client's identification string, without CR LF. */
  readonly clientVersion: string
  /** The server's identification string, without CR LF. */
  readonly serverVersion: string
  /** The client's SSH_MSG_KEXINIT payload exactly as sent (I_C). */
  readonly clientKexInit: Uint8Array
  /** The server's SSH_MSG_KEXINIT payload exactly as sent (I_S). */
  readonly serverKexInit: Uint8Array
  /** The negotiated key exchange method. */
  readonly algorithm: string
}

/**
 * The outcome of a completed key exchange.
 *
 * @example
 * ```ts
 * const sessionId = firstResult.H
 * const key = deriveKey(result.hashAlgorithm, result.K, result.H, "C", sessionId, 32)
 * ```
 */
export interface KexResult {
  /** The shared secret encoded as it enters H and the key derivation (mpint, or string for ML-KEM hybrids). */
  readonly K: Uint8Array
  /** The exchange hash; the first one of a connection is its session id. */
  readonly H: Uint8Array
  /** The server's host key blob (K_S). */
  readonly hostKeyBlob: Uint8Array
  /** The server's signature blob over H (to be verified by the client against `hostKeyBlob`). */
  readonly signature: Uint8Array
  readonly hashAlgorithm: KexHash
}

/**
 * One step of a kex state machine: payloads to send, and the result once done.
 *
 * @example
 * ```ts
 * const step: KexStep = kex.receive(payload)
 * for (const p of step.send) yield* transport.send(p)
 * if (step.result) finish(step.result)
 * ```
 */
export interface KexStep {
  readonly send: ReadonlyArray<Uint8Array>
  readonly result?: KexResult | undefined
}

/**
 * The client side of a key exchange. `start` is called once, then every
 * kex-method message (30..49) from the server goes to `receive` until a step
 * carries a `result`. Misuse or a bad message throws `ProtocolError`.
 *
 * @example
 * ```ts
 * const kex = makeClientKex(inputs)
 * send(kex.start())
 * const { send: out, result } = kex.receive(serverReply)
 * ```
 */
export interface ClientKex {
  readonly algorithm: string
  start(): ReadonlyArray<Uint8Array>
  receive(payload: Uint8Array): KexStep
}

/**
 * The server side of a key exchange: every kex-method message (30..49) from
 * the client goes to `receive` until a step carries a `result`.
 *
 * @example
 * ```ts
 * const kex = makeServerKex(inputs, hostKey)
 * const { send: out, result } = kex.receive(clientInit)
 * ```
 */
export interface ServerKex {
  readonly algorithm: string
  receive(payload: Uint8Array): KexStep
}

/**
 * The server's host key as the kex needs it: its public blob (K_S) and a
 * function signing H into a signature blob (for the negotiated host key
 * algorithm).
 *
 * @example
 * ```ts
 * const hostKey: HostKeySigner = { blob: publicBlob, sign: (H) => signatureBlob(privateKey, H) }
 * ```
 */
export interface HostKeySigner {
  readonly blob: Uint8Array
  readonly sign: (H: Uint8Array) => Uint8Array
}

/**
 * Options shared by both roles of every method.
 *
 * @example
 * ```ts
 * const options: CommonKexOptions = { random: (n) => crypto.getRandomValues(new Uint8Array(n)) }
 * ```
 */
export interface CommonKexOptions {
  /** Source of ephemeral private values; defaults to the platform CSPRNG. */
  readonly random?: Random | undefined
}

// ---------------------------------------------------------------------------
// Exchange hash
// ---------------------------------------------------------------------------

/**
 * Computes H: `HASH(string V_C || string V_S || string I_C || string I_S ||
 * string K_S || <method fields> || K)`, where `K` is already encoded.
 *
 * @example
 * ```ts
 * const H = exchangeHash("sha256", inputs, hostKeyBlob, (w) => w.string(qc).string(qs), K)
 * ```
 */
export const exchangeHash = (
  hash: KexHash,
  inputs: KexInputs,
  hostKeyBlob: Uint8Array,
  methodFields: (w: Writer) => unknown,
  K: Uint8Array
): Uint8Array =>
  digest(
    hash,
    build((w) => {
      w.string(inputs.clientVersion)
        .string(inputs.serverVersion)
        .string(inputs.clientKexInit)
        .string(inputs.serverKexInit)
        .string(hostKeyBlob)
      methodFields(w)
      w.raw(K)
    }, 2048 + inputs.clientKexInit.length + inputs.serverKexInit.length + hostKeyBlob.length)
  )

/**
 * Encodes a raw shared secret for H and the key derivation: as an mpint of
 * its unsigned big-endian value (leading zeros stripped, RFC 8731 §3.1), or
 * as a string (the ML-KEM hybrids).
 *
 * @example
 * ```ts
 * encodeSharedSecret(Uint8Array.of(0, 0x80), "mpint") // [0,0,0,2, 0x00,0x80]
 * encodeSharedSecret(Uint8Array.of(0, 0x80), "string") // [0,0,0,2, 0x00,0x80]
 * encodeSharedSecret(Uint8Array.of(0, 1), "mpint") // [0,0,0,1, 0x01]
 * ```
 */
export const encodeSharedSecret = (secret: Uint8Array, encoding: Encoding): Uint8Array =>
  build((w) => (encoding === "mpint" ? w.mpintFromUnsigned(secret) : w.string(secret)), secret.length + 8)

/**
 * How a method's public values and shared secret are encoded on the wire and
 * in H.
 *
 * @example
 * ```ts
 * const e: Encoding = "mpint" // finite-field Diffie-Hellman
 * ```
 */
export type Encoding = "mpint" | "string"

// ---------------------------------------------------------------------------
// Single round-trip methods
// ---------------------------------------------------------------------------

/**
 * The arithmetic of a one-round-trip method. Public values are raw bytes
 * (for `mpint` methods: unsigned magnitudes). `complete` and `respond`
 * validate the peer's value and throw `ProtocolError` when it is invalid;
 * both return the raw shared secret.
 *
 * @example
 * ```ts
 * const offer = agreement.initiate(random)
 * const reply = agreement.respond(offer.publicValue, random)
 * equal(offer.complete(reply.publicValue), reply.secret) // true
 * ```
 */
export interface KeyAgreement {
  /** Encoding of the public values (in messages 30/31 and in H). */
  readonly publicEncoding: Encoding
  /** Encoding of the shared secret in H and the key derivation. */
  readonly secretEncoding: Encoding
  initiate(random: Random): { readonly publicValue: Uint8Array; complete(serverPublic: Uint8Array): Uint8Array }
  respond(clientPublic: Uint8Array, random: Random): { readonly publicValue: Uint8Array; readonly secret: Uint8Array }
}

/**
 * A description of a kex method: its hash and how to build each role.
 *
 * @example
 * ```ts
 * const method: KexMethod = singleRoundTrip("sha256", curve25519)
 * ```
 */
export interface KexMethod {
  readonly hash: KexHash
  readonly client: (inputs: KexInputs, options: ClientKexOptions) => ClientKex
  readonly server: (inputs: KexInputs, hostKey: HostKeySigner, options: ServerKexOptions) => ServerKex
}

/**
 * Options of a client kex (group exchange sizes apply to
 * diffie-hellman-group-exchange-* only).
 *
 * @example
 * ```ts
 * const options: ClientKexOptions = { gexMin: 2048, gexPreferred: 4096, gexMax: 8192 }
 * ```
 */
export interface ClientKexOptions extends CommonKexOptions {
  /** Smallest group accepted, in bits (default 2048). */
  readonly gexMin?: number | undefined
  /** Group size asked for, in bits (default 3072). */
  readonly gexPreferred?: number | undefined
  /** Largest group accepted, in bits (default 8192). */
  readonly gexMax?: number | undefined
}

/**
 * A finite-field group: a safe prime and its generator, as unsigned
 * big-endian magnitudes.
 *
 * @example
 * ```ts
 * const group: DhGroup = { p: fromHex("ffff...ffff"), g: Uint8Array.of(2) }
 * ```
 */
export interface DhGroup {
  readonly p: Uint8Array
  readonly g: Uint8Array
}

/**
 * Options of a server kex.
 *
 * @example
 * ```ts
 * const options: ServerKexOptions = { groups: [modp14, modp16] }
 * ```
 */
export interface ServerKexOptions extends CommonKexOptions {
  /** Groups offered to group-exchange clients; defaults to the built-in RFC 3526 set. */
  readonly groups?: ReadonlyArray<DhGroup> | undefined
}

/**
 * Fails with a `ProtocolError` for a call in the wrong state.
 *
 * @example
 * ```ts
 * if (done) outOfOrder("curve25519-sha256", "the key exchange is already complete")
 * ```
 */
export const outOfOrder = (algorithm: string, why: string): never => {
  throw new ProtocolError({ message: `${algorithm}: ${why}` })
}

const writePublic = (w: Writer, encoding: Encoding, value: Uint8Array): Writer =>
  encoding === "mpint" ? w.mpintFromUnsigned(value) : w.string(value)

const initCodec = (agreement: KeyAgreement) =>
  agreement.publicEncoding === "mpint"
    ? {
      encode: (value: Uint8Array) => Messages.encodeKexDhInit({ e: value }),
      decode: (payload: Uint8Array) => Messages.decodeKexDhInit(payload).e,
      name: "SSH_MSG_KEXDH_INIT"
    }
    : {
      encode: (value: Uint8Array) => Messages.encodeKexEcdhInit({ clientPublic: value }),
      decode: (payload: Uint8Array) => Messages.decodeKexEcdhInit(payload).clientPublic,
      name: "SSH_MSG_KEX_ECDH_INIT"
    }

const replyCodec = (agreement: KeyAgreement) =>
  agreement.publicEncoding === "mpint"
    ? {
      encode: (hostKey: Uint8Array, value: Uint8Array, signature: Uint8Array) =>
        Messages.encodeKexDhReply({ hostKey, f: value, signature }),
      decode: (payload: Uint8Array) => {
        const m = Messages.decodeKexDhReply(payload)
        return { hostKey: m.hostKey, serverPublic: m.f, signature: m.signature }
      }
    }
    : {
      encode: (hostKey: Uint8Array, serverPublic: Uint8Array, signature: Uint8Array) =>
        Messages.encodeKexEcdhReply({ hostKey, serverPublic, signature }),
      decode: Messages.decodeKexEcdhReply
    }

/**
 * Builds a one-round-trip method (RFC 4253 §8 DH, RFC 5656 ECDH, RFC 8731,
 * ML-KEM hybrids) from its hash and arithmetic. H hashes the method fields
 * `Q_C || Q_S` (or `e || f`) in the agreement's public encoding.
 *
 * @example
 * ```ts
 * const method = singleRoundTrip("sha256", curve25519)
 * const client = method.client(inputs, {})
 * ```
 */
export const singleRoundTrip = (hash: KexHash, agreement: KeyAgreement): KexMethod => {
  const init = initCodec(agreement)
  const reply = replyCodec(agreement)
  const hashOf = (inputs: KexInputs, hostKey: Uint8Array, qc: Uint8Array, qs: Uint8Array, secret: Uint8Array) => {
    const K = encodeSharedSecret(secret, agreement.secretEncoding)
    const H = exchangeHash(
      hash,
      inputs,
      hostKey,
      (w) => writePublic(writePublic(w, agreement.publicEncoding, qc), agreement.publicEncoding, qs),
      K
    )
    return { K, H }
  }
  return {
    hash,
    client: (inputs, options) => {
      const random = options.random ?? defaultRandom
      let offer: ReturnType<KeyAgreement["initiate"]> | undefined
      let done = false
      return {
        algorithm: inputs.algorithm,
        start: () => {
          if (offer !== undefined) outOfOrder(inputs.algorithm, "start called twice")
          offer = agreement.initiate(random)
          return [init.encode(offer.publicValue)]
        },
        receive: (payload) => {
          if (offer === undefined) return outOfOrder(inputs.algorithm, `${init.name} was not sent yet`)
          if (done) return outOfOrder(inputs.algorithm, "the key exchange is already complete")
          const { hostKey, serverPublic, signature } = reply.decode(payload)
          const secret = offer.complete(serverPublic)
          const { H, K } = hashOf(inputs, hostKey, offer.publicValue, serverPublic, secret)
          done = true
          return {
            send: [],
            result: { K, H, hostKeyBlob: hostKey.slice(), signature: signature.slice(), hashAlgorithm: hash }
          }
        }
      }
    },
    server: (inputs, hostKey, options) => {
      const random = options.random ?? defaultRandom
      let done = false
      return {
        algorithm: inputs.algorithm,
        receive: (payload) => {
          if (done) return outOfOrder(inputs.algorithm, "the key exchange is already complete")
          const clientPublic = init.decode(payload)
          const answer = agreement.respond(clientPublic, random)
          const { H, K } = hashOf(inputs, hostKey.blob, clientPublic, answer.publicValue, answer.secret)
          const signature = hostKey.sign(H)
          done = true
          return {
            send: [reply.encode(hostKey.blob, answer.publicValue, signature)],
            result: { K, H, hostKeyBlob: hostKey.blob, signature, hashAlgorithm: hash }
          }
        }
      }
    }
  }
}
