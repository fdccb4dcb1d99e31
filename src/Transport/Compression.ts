/**
 * Packet compression (RFC 4253 §6.2): the methods, when each one starts,
 * what each role offers, and the per-direction `Compressor` (outgoing) and
 * `Decompressor` (incoming).
 *
 * - `zlib` (RFC 4253 §6.2): compresses from the first packet after NEWKEYS.
 * - `zlib@openssh.com` (OpenSSH PROTOCOL, "delayed compression"): the same
 *   stream, started only once authentication has succeeded — by the server
 *   after it sends SSH_MSG_USERAUTH_SUCCESS, by the client after it receives
 *   it — so an unauthenticated peer never reaches zlib.
 *
 * Only the payload is compressed, before the MAC and encryption; it is
 * inflated after the packet is opened. Each direction runs one zlib stream
 * across its packets, partial-flushed at the end of each. The stream belongs
 * to the keys: every NEWKEYS that keeps compression on starts a fresh one
 * (RFC 4253 §6.2: "the compression context is initialized after each key
 * exchange"; OpenSSH's `ssh_set_newkeys` re-initializes it the same way),
 * and past authentication a rekey onto `zlib@openssh.com` compresses at
 * once, without waiting for another USERAUTH_SUCCESS.
 *
 * What is pure here is the policy (`startsAt`, `isActive`, the offers); the
 * zlib contexts are state the transport owns, one per direction.
 *
 * @since 0.1.0
 */
import { UnknownAlgorithm } from "../SshError.ts"
import type { Payload } from "../internal/packetLayout.ts"
import * as Zlib from "./compression/Zlib.ts"

/**
 * No compression.
 *
 * @example
 * ```ts
 * negotiated.compressionClientToServer === Compression.NONE
 * ```
 */
export const NONE = "none"

/**
 * zlib from NEWKEYS on (RFC 4253 §6.2).
 *
 * @example
 * ```ts
 * Compression.startsAt(Compression.ZLIB) // "newkeys"
 * ```
 */
export const ZLIB = "zlib"

/**
 * zlib from authentication on (OpenSSH's delayed compression).
 *
 * @example
 * ```ts
 * Compression.startsAt(Compression.ZLIB_DELAYED) // "authentication"
 * ```
 */
export const ZLIB_DELAYED = "zlib@openssh.com"

/**
 * Compresses one direction's payloads, packet by packet, in order.
 *
 * @example
 * ```ts
 * const compressor = Compression.makeCompressor("zlib@openssh.com")
 * sealer.seal(compressor.compress(payload), seqno)
 * ```
 */
export interface Compressor {
  /** The compressed payload, valid until the next call (seal it before compressing again). */
  compress(payload: Payload): Uint8Array
  /** Frees the stream's memory; the compressor is unusable afterwards. */
  close(): void
}

/**
 * Inflates one direction's payloads, packet by packet, in order.
 *
 * @example
 * ```ts
 * const decompressor = Compression.makeDecompressor("zlib@openssh.com")
 * const payload = decompressor.decompress(opener.open(packet, seqno), 256 * 1024)
 * ```
 */
export interface Decompressor {
  /**
   * The payload of one packet, in a buffer of its own. Throws `LimitExceeded`
   * when it would exceed `limit` bytes (having allocated at most `limit + 1`),
   * `ProtocolError` for corrupt data.
   */
  decompress(data: Uint8Array, limit: number): Uint8Array
  /** Frees the stream's memory; the decompressor is unusable afterwards. */
  close(): void
}

/**
 * When a method starts compressing: never, with the keys of the NEWKEYS that
 * selects it, or once authentication has succeeded.
 *
 * @example
 * ```ts
 * const start: Compression.Start = Compression.startsAt("zlib") // "newkeys"
 * ```
 */
export type Start = "never" | "newkeys" | "authentication"

/**
 * The methods this runtime implements: `none` always, the zlib ones where
 * the synchronous zlib works (`node:zlib`).
 *
 * @example
 * ```ts
 * Compression.supportedNames() // ["none", "zlib@openssh.com", "zlib"]
 * ```
 */
export const supportedNames = (): ReadonlyArray<string> => Zlib.isAvailable() ? [NONE, ZLIB_DELAYED, ZLIB] : [NONE]

/** `names` without the methods this runtime lacks. */
const available = (names: ReadonlyArray<string>): ReadonlyArray<string> => {
  const supported = supportedNames()
  return names.filter((name) => supported.includes(name))
}

/**
 * What a client offers: with compression asked for (`ssh -C`, `Compression
 * yes`) OpenSSH's `zlib@openssh.com,zlib,none`, otherwise `none` alone.
 * (OpenSSH's client without `-C` lists `none,zlib@openssh.com,zlib`, so it
 * still compresses with a server that does not offer `none`; ours then
 * fails to negotiate instead.)
 *
 * @example
 * ```ts
 * Compression.clientOffer(true)  // ["zlib@openssh.com", "zlib", "none"]
 * Compression.clientOffer(false) // ["none"]
 * ```
 */
export const clientOffer = (enabled: boolean): ReadonlyArray<string> =>
  available(enabled ? [ZLIB_DELAYED, ZLIB, NONE] : [NONE])

/**
 * What a server offers by default: sshd's `none,zlib@openssh.com` (its
 * `Compression` defaults to delayed), so a client that asks compresses after
 * authentication and one that does not never does. Plain `zlib`, which
 * exposes zlib to unauthenticated peers, must be configured explicitly.
 *
 * @example
 * ```ts
 * Compression.serverOffer() // ["none", "zlib@openssh.com"]
 * ```
 */
export const serverOffer = (): ReadonlyArray<string> => available([NONE, ZLIB_DELAYED])

/**
 * When `name` starts compressing. Throws `UnknownAlgorithm` for a method we
 * do not implement.
 *
 * @example
 * ```ts
 * Compression.startsAt("zlib@openssh.com") // "authentication"
 * Compression.startsAt("none")             // "never"
 * ```
 */
export const startsAt = (name: string): Start => {
  switch (name) {
    case NONE:
      return "never"
    case ZLIB:
      return "newkeys"
    case ZLIB_DELAYED:
      return "authentication"
    default:
      throw new UnknownAlgorithm({ kind: "compression", name, known: [NONE, ZLIB_DELAYED, ZLIB] })
  }
}

/**
 * Whether a direction whose keys selected `name` compresses, given whether
 * authentication has succeeded.
 *
 * @example
 * ```ts
 * Compression.isActive("zlib@openssh.com", false) // false: waits for USERAUTH_SUCCESS
 * Compression.isActive("zlib", false)             // true
 * ```
 */
export const isActive = (name: string, authenticated: boolean): boolean => {
  const start = startsAt(name)
  return start === "newkeys" || (start === "authentication" && authenticated)
}

/**
 * A fresh deflate stream for an outgoing direction. Throws `UnknownAlgorithm`
 * for `none` or a method we do not implement.
 *
 * @example
 * ```ts
 * const compressor = Compression.makeCompressor("zlib")
 * const wire = sealer.seal(compressor.compress(payload), seqno)
 * ```
 */
export const makeCompressor = (name: string): Compressor => {
  requireStream(name)
  return new Zlib.Deflater()
}

/**
 * A fresh inflate stream for an incoming direction. Throws `UnknownAlgorithm`
 * for `none` or a method we do not implement.
 *
 * @example
 * ```ts
 * const decompressor = Compression.makeDecompressor("zlib@openssh.com")
 * ```
 */
export const makeDecompressor = (name: string): Decompressor => {
  requireStream(name)
  return new Zlib.Inflater()
}

const requireStream = (name: string): void => {
  if (startsAt(name) === "never") {
    throw new UnknownAlgorithm({ kind: "compression stream", name, known: [ZLIB_DELAYED, ZLIB] })
  }
}
