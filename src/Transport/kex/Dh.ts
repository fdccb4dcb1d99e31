/**
 * Finite-field Diffie-Hellman: the fixed-group methods (RFC 4253 §8,
 * RFC 8268: diffie-hellman-group1/14/16/18-*) as a `KeyAgreement`, and
 * Diffie-Hellman group exchange (RFC 4419) as its own two-round-trip
 * client and server machines.
 *
 * Peer values are validated as OpenSSH does: 1 < y < p - 1 with more than
 * one bit set. Private exponents are twice the hash size in bits (at least
 * 512), as OpenSSH does, rather than the full size of p.
 *
 * @since 0.1.0
 */
import { ConfigParseError, NegotiationFailed, ProtocolError } from "../../SshError.ts"
import { toHex } from "../../internal/bytes.ts"
import { ffdhKeyPair, type FfdhKeyPair } from "../../internal/ffdh.ts"
import * as Messages from "../Messages.ts"
import {
  defaultRandom,
  type DhGroup,
  digestLength,
  encodeSharedSecret,
  exchangeHash,
  type KexHash,
  type KexInputs,
  type KexMethod,
  type KeyAgreement,
  outOfOrder,
  type Random
} from "./Exchange.ts"
import { bitLength, defaultGexGroups, groupBits } from "./Groups.ts"

const toBigInt = (magnitude: Uint8Array): bigint => magnitude.length === 0 ? 0n : BigInt("0x" + toHex(magnitude))

const popcountAtLeastTwo = (magnitude: Uint8Array): boolean => {
  let bits = 0
  for (let i = 0; i < magnitude.length && bits < 2; i++) {
    let b = magnitude[i]!
    while (b !== 0 && bits < 2) {
      bits += b & 1
      b >>= 1
    }
  }
  return bits >= 2
}

/**
 * Whether a peer's public value is acceptable in group `p`: 1 < y < p - 1
 * and not a power of two (OpenSSH's `dh_pub_is_valid`).
 *
 * @example
 * ```ts
 * isValidPublicValue(modp14.p, Uint8Array.of(1)) // false
 * ```
 */
export const isValidPublicValue = (p: Uint8Array, y: Uint8Array): boolean => {
  const value = toBigInt(y)
  return value > 1n && value < toBigInt(p) - 1n && popcountAtLeastTwo(y)
}

const checkPublicValue = (p: Uint8Array, y: Uint8Array, name: string): void => {
  if (!isValidPublicValue(p, y)) {
    throw new ProtocolError({ message: `invalid Diffie-Hellman public value ${name} (must be 1 < ${name} < p - 1)` })
  }
}

/**
 * A random private exponent for group `p`: 2 × the hash's bits (at least
 * 512), top bit set, and always shorter than p so 1 < x < p - 1.
 *
 * @example
 * ```ts
 * privateExponent(modp14.p, "sha256", defaultRandom).length // 64
 * ```
 */
export const privateExponent = (p: Uint8Array, hash: KexHash, random: Random): Uint8Array => {
  const wanted = Math.max(64, 2 * digestLength(hash))
  const length = Math.min(wanted, Math.ceil(bitLength(p) / 8) - 1)
  const x = Uint8Array.from(random(length))
  x[0] = x[0]! | 0x80
  return x
}

const keyPair = (group: DhGroup, hash: KexHash, random: Random): FfdhKeyPair =>
  ffdhKeyPair(group.p, group.g, privateExponent(group.p, hash, random))

/**
 * The fixed-group agreement of RFC 4253 §8: e and f travel as mpints in
 * SSH_MSG_KEXDH_INIT / SSH_MSG_KEXDH_REPLY; K is an mpint.
 *
 * @example
 * ```ts
 * const method = singleRoundTrip("sha256", fixedGroup(modp14, "sha256"))
 * ```
 */
export const fixedGroup = (group: DhGroup, hash: KexHash): KeyAgreement => ({
  publicEncoding: "mpint",
  secretEncoding: "mpint",
  initiate: (random) => {
    const pair = keyPair(group, hash, random)
    return {
      publicValue: pair.publicValue,
      complete: (f) => {
        checkPublicValue(group.p, f, "f")
        return pair.sharedSecret(f)
      }
    }
  },
  respond: (e, random) => {
    checkPublicValue(group.p, e, "e")
    const pair = keyPair(group, hash, random)
    return { publicValue: pair.publicValue, secret: pair.sharedSecret(e) }
  }
})

// ---------------------------------------------------------------------------
// Group exchange (RFC 4419)
// ---------------------------------------------------------------------------

/**
 * Smallest group size we ever ask for or serve, in bits (RFC 8270).
 *
 * @example
 * ```ts
 * gexSizes({}).min === GEX_MIN_BITS // true
 * ```
 */
export const GEX_MIN_BITS = 2048
/**
 * Largest group size we ever ask for or serve, in bits.
 *
 * @example
 * ```ts
 * gexSizes({}).max === GEX_MAX_BITS // true
 * ```
 */
export const GEX_MAX_BITS = 8192
/**
 * Group size a client asks for by default: 128-bit security, like curve25519.
 *
 * @example
 * ```ts
 * gexSizes({}).preferred === GEX_DEFAULT_PREFERRED_BITS // true
 * ```
 */
export const GEX_DEFAULT_PREFERRED_BITS = 3072
/**
 * Smallest `gexMin` a client may configure (legacy servers).
 *
 * @example
 * ```ts
 * gexSizes({ gexMin: GEX_LOWEST_CONFIGURABLE_BITS }).min // 1024
 * ```
 */
export const GEX_LOWEST_CONFIGURABLE_BITS = 1024

/**
 * The sizes a group-exchange client asks for.
 *
 * @example
 * ```ts
 * const sizes: GexSizes = { min: 2048, preferred: 3072, max: 8192 }
 * ```
 */
export type GexSizes = Messages.KexDhGexRequest

/**
 * Resolves and checks a client's group sizes: defaults 2048 / 3072 / 8192,
 * and 1024 ≤ min ≤ preferred ≤ max ≤ 8192, else `ConfigParseError`.
 *
 * @example
 * ```ts
 * gexSizes({ gexPreferred: 4096 }) // { min: 2048, preferred: 4096, max: 8192 }
 * ```
 */
export const gexSizes = (
  options: { readonly gexMin?: number | undefined; readonly gexPreferred?: number | undefined; readonly gexMax?: number | undefined }
): GexSizes => {
  const min = options.gexMin ?? GEX_MIN_BITS
  const max = options.gexMax ?? GEX_MAX_BITS
  const preferred = options.gexPreferred ?? Math.min(Math.max(GEX_DEFAULT_PREFERRED_BITS, min), max)
  const ok = [min, preferred, max].every(Number.isInteger) &&
    GEX_LOWEST_CONFIGURABLE_BITS <= min && min <= preferred && preferred <= max && max <= GEX_MAX_BITS
  if (!ok) {
    throw new ConfigParseError({
      message: `group exchange sizes must satisfy ${GEX_LOWEST_CONFIGURABLE_BITS} <= min <= preferred <= max <= ${GEX_MAX_BITS}; got ${min}/${preferred}/${max}`
    })
  }
  return { min, preferred, max }
}

/**
 * The group a server picks for a request (RFC 4419 §3): requests outside
 * what the protocol allows are rejected with `ProtocolError`; sizes are then
 * clamped to 2048..8192 as OpenSSH does, and the smallest group of at least
 * the preferred size is chosen, else the largest one that fits. No fitting
 * group fails with `NegotiationFailed`.
 *
 * @example
 * ```ts
 * groupBits(chooseGroup(defaultGexGroups, { min: 2048, preferred: 3000, max: 8192 })) // 3072
 * ```
 */
export const chooseGroup = (groups: ReadonlyArray<DhGroup>, request: GexSizes): DhGroup => {
  if (request.max < request.min || request.preferred < request.min || request.max < request.preferred ||
    request.max < GEX_MIN_BITS) {
    throw new ProtocolError({
      message: `bad DH group exchange request: min ${request.min}, preferred ${request.preferred}, max ${request.max}`
    })
  }
  const min = Math.max(GEX_MIN_BITS, request.min)
  const max = Math.min(GEX_MAX_BITS, request.max)
  const preferred = Math.min(GEX_MAX_BITS, Math.max(GEX_MIN_BITS, request.preferred))
  const fitting = groups
    .map((group) => ({ group, bits: groupBits(group) }))
    .filter(({ bits }) => bits >= min && bits <= max)
    .sort((a, b) => a.bits - b.bits)
  const chosen = fitting.find(({ bits }) => bits >= preferred) ?? fitting[fitting.length - 1]
  if (chosen === undefined) {
    throw new NegotiationFailed({
      kind: "DH group-exchange group size",
      ours: groups.map((g) => `${groupBits(g)}`),
      theirs: [`min ${request.min}`, `preferred ${request.preferred}`, `max ${request.max}`]
    })
  }
  return chosen.group
}

const checkGroup = (group: DhGroup, sizes: GexSizes): void => {
  const bits = bitLength(group.p)
  if (bits < sizes.min || bits > sizes.max) {
    throw new ProtocolError({ message: `DH group of ${bits} bits is outside the requested ${sizes.min}..${sizes.max}` })
  }
  if ((group.p[group.p.length - 1]! & 1) === 0) throw new ProtocolError({ message: "DH group prime is even" })
  const g = toBigInt(group.g)
  if (g <= 1n || g >= toBigInt(group.p) - 1n) {
    throw new ProtocolError({ message: "DH group generator must satisfy 1 < g < p - 1" })
  }
}

/**
 * K and H of a group exchange (RFC 4419 §3): H covers
 * `uint32 min || uint32 n || uint32 max || mpint p || mpint g || mpint e ||
 * mpint f` after the common prefix, with the sizes as the client requested
 * them (not as the server clamped them).
 *
 * @example
 * ```ts
 * const { K, H } = gexExchangeHash("sha256", inputs, hostKeyBlob, request, group, e, f, secret)
 * ```
 */
export const gexExchangeHash = (
  hash: KexHash,
  inputs: KexInputs,
  hostKey: Uint8Array,
  sizes: GexSizes,
  group: DhGroup,
  e: Uint8Array,
  f: Uint8Array,
  secret: Uint8Array
): { readonly K: Uint8Array; readonly H: Uint8Array } => {
  const K = encodeSharedSecret(secret, "mpint")
  const H = exchangeHash(hash, inputs, hostKey, (w) =>
    w.uint32(sizes.min).uint32(sizes.preferred).uint32(sizes.max)
      .mpintFromUnsigned(group.p).mpintFromUnsigned(group.g)
      .mpintFromUnsigned(e).mpintFromUnsigned(f), K)
  return { K, H }
}

type GexClientState =
  | { readonly _tag: "Idle" }
  | { readonly _tag: "AwaitGroup" }
  | { readonly _tag: "AwaitReply"; readonly group: DhGroup; readonly pair: FfdhKeyPair }
  | { readonly _tag: "Done" }

type GexServerState =
  | { readonly _tag: "AwaitRequest" }
  | { readonly _tag: "AwaitInit"; readonly request: GexSizes; readonly group: DhGroup }
  | { readonly _tag: "Done" }

/**
 * Diffie-Hellman group exchange (RFC 4419) with the given hash. Client:
 * REQUEST (34) → GROUP (31) → INIT (32) → REPLY (33). H covers
 * min || n || max || p || g || e || f as the client sent and received them.
 *
 * @example
 * ```ts
 * const method = groupExchange("sha256")
 * const client = method.client(inputs, { gexPreferred: 4096 })
 * ```
 */
export const groupExchange = (hash: KexHash): KexMethod => ({
  hash,
  client: (inputs, options) => {
    const sizes = gexSizes(options)
    const random = options.random ?? defaultRandom
    let state: GexClientState = { _tag: "Idle" }
    return {
      algorithm: inputs.algorithm,
      start: () => {
        if (state._tag !== "Idle") return outOfOrder(inputs.algorithm, "start called twice")
        state = { _tag: "AwaitGroup" }
        return [Messages.encodeKexDhGexRequest(sizes)]
      },
      receive: (payload) => {
        switch (state._tag) {
          case "Idle":
            return outOfOrder(inputs.algorithm, "SSH_MSG_KEX_DH_GEX_REQUEST was not sent yet")
          case "Done":
            return outOfOrder(inputs.algorithm, "the key exchange is already complete")
          case "AwaitGroup": {
            const received = Messages.decodeKexDhGexGroup(payload)
            const group: DhGroup = { p: received.p.slice(), g: received.g.slice() }
            checkGroup(group, sizes)
            const pair = keyPair(group, hash, random)
            state = { _tag: "AwaitReply", group, pair }
            return { send: [Messages.encodeKexDhGexInit({ e: pair.publicValue })] }
          }
          case "AwaitReply": {
            const { group, pair } = state
            const reply = Messages.decodeKexDhGexReply(payload)
            checkPublicValue(group.p, reply.f, "f")
            const secret = pair.sharedSecret(reply.f)
            const { K, H } = gexExchangeHash(hash, inputs, reply.hostKey, sizes, group, pair.publicValue, reply.f, secret)
            state = { _tag: "Done" }
            return {
              send: [],
              result: {
                K,
                H,
                hostKeyBlob: reply.hostKey.slice(),
                signature: reply.signature.slice(),
                hashAlgorithm: hash
              }
            }
          }
        }
      }
    }
  },
  server: (inputs, hostKey, options) => {
    const groups = options.groups ?? defaultGexGroups
    const random = options.random ?? defaultRandom
    let state: GexServerState = { _tag: "AwaitRequest" }
    return {
      algorithm: inputs.algorithm,
      receive: (payload) => {
        switch (state._tag) {
          case "Done":
            return outOfOrder(inputs.algorithm, "the key exchange is already complete")
          case "AwaitRequest": {
            const request = Messages.decodeKexDhGexRequest(payload)
            const group = chooseGroup(groups, request)
            state = { _tag: "AwaitInit", request, group }
            return { send: [Messages.encodeKexDhGexGroup(group)] }
          }
          case "AwaitInit": {
            const { request, group } = state
            const { e } = Messages.decodeKexDhGexInit(payload)
            checkPublicValue(group.p, e, "e")
            const pair = keyPair(group, hash, random)
            const secret = pair.sharedSecret(e)
            const { K, H } = gexExchangeHash(hash, inputs, hostKey.blob, request, group, e, pair.publicValue, secret)
            const signature = hostKey.sign(H)
            state = { _tag: "Done" }
            return {
              send: [Messages.encodeKexDhGexReply({ hostKey: hostKey.blob, f: pair.publicValue, signature })],
              result: { K, H, hostKeyBlob: hostKey.blob, signature, hashAlgorithm: hash }
            }
          }
        }
      }
    }
  }
})
