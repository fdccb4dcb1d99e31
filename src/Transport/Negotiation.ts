/**
 * Algorithm negotiation (RFC 4253 §7.1): from the client's and the server's
 * KEXINIT, pick for every category the first algorithm on the *client's*
 * list that the server also lists. Also reads the feature indicators that
 * ride in the kex list — RFC 8308 `ext-info-c` / `ext-info-s` and OpenSSH's
 * strict kex `kex-strict-c-v00@openssh.com` / `kex-strict-s-v00@openssh.com`
 * — which are never chosen as the key exchange method.
 *
 * Strict kex only counts in the first key exchange of a connection; the
 * caller keeps the value from the first `negotiate` and ignores later ones.
 *
 * @since 0.1.0
 */
import { NegotiationFailed } from "../SshError.ts"
import * as Cipher from "./Cipher.ts"
import type { KexInit } from "./Messages.ts"

/**
 * RFC 8308 indicator a client adds to its kex list to receive SSH_MSG_EXT_INFO.
 *
 * @example
 * ```ts
 * const kexAlgorithms = [...kexNames, EXT_INFO_C, KEX_STRICT_C]
 * ```
 */
export const EXT_INFO_C = "ext-info-c"
/**
 * RFC 8308 indicator a server adds to its kex list to receive SSH_MSG_EXT_INFO.
 *
 * @example
 * ```ts
 * const kexAlgorithms = [...kexNames, EXT_INFO_S, KEX_STRICT_S]
 * ```
 */
export const EXT_INFO_S = "ext-info-s"
/**
 * OpenSSH strict kex indicator sent by clients (Terrapin countermeasure).
 *
 * @example
 * ```ts
 * const kexAlgorithms = [...kexNames, EXT_INFO_C, KEX_STRICT_C]
 * ```
 */
export const KEX_STRICT_C = "kex-strict-c-v00@openssh.com"
/**
 * OpenSSH strict kex indicator sent by servers.
 *
 * @example
 * ```ts
 * const kexAlgorithms = [...kexNames, EXT_INFO_S, KEX_STRICT_S]
 * ```
 */
export const KEX_STRICT_S = "kex-strict-s-v00@openssh.com"

const pseudoKexNames: ReadonlySet<string> = new Set([EXT_INFO_C, EXT_INFO_S, KEX_STRICT_C, KEX_STRICT_S])

/**
 * Tells whether a kex-list entry is a feature indicator rather than a method.
 *
 * @example
 * ```ts
 * isPseudoKex("ext-info-c") // true
 * isPseudoKex("curve25519-sha256") // false
 * ```
 */
export const isPseudoKex = (name: string): boolean => pseudoKexNames.has(name)

/**
 * Tells whether a cipher authenticates its packets itself, in which case no
 * MAC is negotiated for that direction (as OpenSSH does). Asks the cipher
 * registry; unknown names are not AEAD.
 *
 * @example
 * ```ts
 * isAeadCipher("chacha20-poly1305@openssh.com") // true
 * isAeadCipher("aes256-ctr") // false
 * ```
 */
export const isAeadCipher = (name: string): boolean => Cipher.cipherSpec(name)?.aead ?? false

/**
 * The outcome of a negotiation.
 *
 * @example
 * ```ts
 * const n: Negotiated = negotiate(clientKexInit, serverKexInit, "client")
 * n.kex // "curve25519-sha256"
 * ```
 */
export interface Negotiated {
  readonly kex: string
  readonly hostKey: string
  readonly cipherClientToServer: string
  readonly cipherServerToClient: string
  /** `""` when `cipherClientToServer` is an AEAD cipher (its tag is the MAC; no MAC is negotiated). */
  readonly macClientToServer: string
  /** `""` when `cipherServerToClient` is an AEAD cipher (its tag is the MAC; no MAC is negotiated). */
  readonly macServerToClient: string
  readonly compressionClientToServer: string
  readonly compressionServerToClient: string
  /** Both sides announced strict kex (client `kex-strict-c-v00`, server `kex-strict-s-v00`). */
  readonly strictKex: boolean
  /**
   * The *peer* offered its RFC 8308 indicator (`ext-info-s` from a server
   * when we are the client, `ext-info-c` from a client when we are the
   * server): we may send it SSH_MSG_EXT_INFO.
   */
  readonly extInfo: boolean
}

/**
 * Our side of the connection.
 *
 * @example
 * ```ts
 * const role: Role = "server"
 * ```
 */
export type Role = "client" | "server"

/**
 * Options of `negotiate`.
 *
 * @example
 * ```ts
 * const options: NegotiateOptions = { isAead: (name) => name.endsWith("-gcm@openssh.com") }
 * ```
 */
export interface NegotiateOptions {
  /** Which ciphers carry their own MAC; defaults to `isAeadCipher`. */
  readonly isAead?: ((cipher: string) => boolean) | undefined
}

const choose = (
  kind: string,
  role: Role,
  clientList: ReadonlyArray<string>,
  serverList: ReadonlyArray<string>,
  eligible: (name: string) => boolean = () => true
): string => {
  const server = new Set(serverList)
  for (const name of clientList) if (eligible(name) && server.has(name)) return name
  const [ours, theirs] = role === "client" ? [clientList, serverList] : [serverList, clientList]
  throw new NegotiationFailed({ kind, ours, theirs })
}

/**
 * Negotiates every algorithm category of RFC 4253 §7.1. `role` says which
 * KEXINIT is ours (it only matters for the error lists and for `extInfo`).
 * Languages are not negotiated. Throws `NegotiationFailed` naming the
 * category and both lists when nothing matches.
 *
 * @example
 * ```ts
 * const n = negotiate(decodeKexInit(ourPayload), decodeKexInit(theirPayload), "client")
 * if (n.strictKex) resetSequenceNumbersOnNewKeys()
 * ```
 */
export const negotiate = (
  client: KexInit,
  server: KexInit,
  role: Role,
  options?: NegotiateOptions
): Negotiated => {
  const isAead = options?.isAead ?? isAeadCipher
  const kex = choose("kex", role, client.kexAlgorithms, server.kexAlgorithms, (name) => !isPseudoKex(name))
  const hostKey = choose("host key", role, client.serverHostKeyAlgorithms, server.serverHostKeyAlgorithms)
  const cipherClientToServer = choose(
    "cipher client-to-server",
    role,
    client.ciphersClientToServer,
    server.ciphersClientToServer
  )
  const cipherServerToClient = choose(
    "cipher server-to-client",
    role,
    client.ciphersServerToClient,
    server.ciphersServerToClient
  )
  const macClientToServer = isAead(cipherClientToServer)
    ? ""
    : choose("mac client-to-server", role, client.macsClientToServer, server.macsClientToServer)
  const macServerToClient = isAead(cipherServerToClient)
    ? ""
    : choose("mac server-to-client", role, client.macsServerToClient, server.macsServerToClient)
  const compressionClientToServer = choose(
    "compression client-to-server",
    role,
    client.compressionClientToServer,
    server.compressionClientToServer
  )
  const compressionServerToClient = choose(
    "compression server-to-client",
    role,
    client.compressionServerToClient,
    server.compressionServerToClient
  )
  return {
    kex,
    hostKey,
    cipherClientToServer,
    cipherServerToClient,
    macClientToServer,
    macServerToClient,
    compressionClientToServer,
    compressionServerToClient,
    strictKex: client.kexAlgorithms.includes(KEX_STRICT_C) && server.kexAlgorithms.includes(KEX_STRICT_S),
    extInfo: role === "client" ? server.kexAlgorithms.includes(EXT_INFO_S) : client.kexAlgorithms.includes(EXT_INFO_C)
  }
}

/**
 * Whether a guessed first kex packet is wrong (RFC 4253 §7): the two
 * KEXINITs differ in their first (preferred) kex algorithm or in their first
 * host key algorithm.
 *
 * @example
 * ```ts
 * guessIsWrong(clientKexInit, serverKexInit) // false when both prefer the same kex and host key
 * ```
 */
export const guessIsWrong = (client: KexInit, server: KexInit): boolean =>
  client.kexAlgorithms[0] !== server.kexAlgorithms[0] ||
  client.serverHostKeyAlgorithms[0] !== server.serverHostKeyAlgorithms[0]

/**
 * Whether the packet that follows the peer's KEXINIT is a wrong guess that
 * must be silently ignored: the peer set `first_kex_packet_follows` and the
 * two sides' preferred kex or host key algorithms differ.
 *
 * @example
 * ```ts
 * let skipNext = mustIgnoreGuessedPacket(clientKexInit, serverKexInit, "server")
 * ```
 */
export const mustIgnoreGuessedPacket = (client: KexInit, server: KexInit, role: Role): boolean => {
  const peer = role === "client" ? server : client
  return peer.firstKexPacketFollows && guessIsWrong(client, server)
}
