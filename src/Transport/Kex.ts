/**
 * Key exchange: the registry of supported methods and the entry points that
 * build a method's client or server state machine.
 *
 * A kex machine is pure: the transport feeds it the kex-method payloads
 * (message numbers 30..49) and sends what it returns; the final step carries
 * a `KexResult` (K, H, the server's host key blob and signature). The client
 * machine does not verify the signature — that belongs to the host key
 * policy, which the caller applies to `hostKeyBlob`, `signature` and `H`.
 * The server machine signs H through the `HostKeySigner` callback.
 *
 * @example
 * ```ts
 * const client = makeClientKex({ clientVersion, serverVersion, clientKexInit, serverKexInit, algorithm: n.kex })
 * const server = makeServerKex({ clientVersion, serverVersion, clientKexInit, serverKexInit, algorithm: n.kex }, hostKey)
 * const [init] = client.start()
 * const { send: [reply], result: serverResult } = server.receive(init!)
 * const { result: clientResult } = client.receive(reply!)
 * ```
 * @since 0.1.0
 */
import { ProtocolError, UnknownAlgorithm } from "../SshError.ts"
import { fixedGroup, groupExchange } from "./kex/Dh.ts"
import { curve25519, nistEcdh, nistP256, nistP384, nistP521 } from "./kex/Ecdh.ts"
import {
  type ClientKex,
  type ClientKexOptions,
  type HostKeySigner,
  type KexHash,
  type KexInputs,
  type KexMethod,
  type ServerKex,
  type ServerKexOptions,
  singleRoundTrip
} from "./kex/Exchange.ts"
import { modp14, modp16, modp18, modp2 } from "./kex/Groups.ts"
import { isMlKemAvailable, mlkem768x25519 } from "./kex/MlKem.ts"

export type {
  ClientKex,
  ClientKexOptions,
  DhGroup,
  HostKeySigner,
  KexHash,
  KexInputs,
  KexResult,
  KexStep,
  Random,
  ServerKex,
  ServerKexOptions
} from "./kex/Exchange.ts"

const methods: ReadonlyMap<string, KexMethod> = new Map([
  ["mlkem768x25519-sha256", singleRoundTrip("sha256", mlkem768x25519)],
  ["curve25519-sha256", singleRoundTrip("sha256", curve25519)],
  ["curve25519-sha256@libssh.org", singleRoundTrip("sha256", curve25519)],
  ["ecdh-sha2-nistp256", singleRoundTrip("sha256", nistEcdh(nistP256))],
  ["ecdh-sha2-nistp384", singleRoundTrip("sha384", nistEcdh(nistP384))],
  ["ecdh-sha2-nistp521", singleRoundTrip("sha512", nistEcdh(nistP521))],
  ["diffie-hellman-group-exchange-sha256", groupExchange("sha256")],
  ["diffie-hellman-group16-sha512", singleRoundTrip("sha512", fixedGroup(modp16, "sha512"))],
  ["diffie-hellman-group18-sha512", singleRoundTrip("sha512", fixedGroup(modp18, "sha512"))],
  ["diffie-hellman-group14-sha256", singleRoundTrip("sha256", fixedGroup(modp14, "sha256"))],
  ["diffie-hellman-group14-sha1", singleRoundTrip("sha1", fixedGroup(modp14, "sha1"))],
  ["diffie-hellman-group1-sha1", singleRoundTrip("sha1", fixedGroup(modp2, "sha1"))]
])

/**
 * The methods enabled by default, most preferred first (OpenSSH's order).
 * mlkem768x25519-sha256 is listed only when the runtime has ML-KEM.
 *
 * @example
 * ```ts
 * kexNames[0] // "mlkem768x25519-sha256" on Node ≥ 24.7
 * ```
 */
export const kexNames: ReadonlyArray<string> = [
  ...(isMlKemAvailable ? ["mlkem768x25519-sha256"] : []),
  "curve25519-sha256",
  "curve25519-sha256@libssh.org",
  "ecdh-sha2-nistp256",
  "ecdh-sha2-nistp384",
  "ecdh-sha2-nistp521",
  "diffie-hellman-group-exchange-sha256",
  "diffie-hellman-group16-sha512",
  "diffie-hellman-group18-sha512",
  "diffie-hellman-group14-sha256"
]

/**
 * Methods we implement but do not offer unless asked to (SHA-1, 1024-bit
 * group): for talking to old servers only.
 *
 * @example
 * ```ts
 * const kex = [...kexNames, ...legacyKexNames]
 * ```
 */
export const legacyKexNames: ReadonlyArray<string> = ["diffie-hellman-group14-sha1", "diffie-hellman-group1-sha1"]

/**
 * Every method this runtime can run: the defaults followed by the legacy ones.
 *
 * @example
 * ```ts
 * supportedKexNames.includes("diffie-hellman-group1-sha1") // true
 * ```
 */
export const supportedKexNames: ReadonlyArray<string> = [...kexNames, ...legacyKexNames]

/**
 * Whether a key exchange method can run here.
 *
 * @example
 * ```ts
 * isKnownKex("curve25519-sha256") // true
 * isKnownKex("sntrup761x25519-sha512") // false
 * ```
 */
export const isKnownKex = (name: string): boolean => supportedKexNames.includes(name)

const checkRole = (inputs: KexInputs, role: "client" | "server"): void => {
  if (inputs.role !== undefined && inputs.role !== role) {
    throw new ProtocolError({ message: `a ${inputs.role} cannot run the ${role} side of a key exchange` })
  }
}

const method = (name: string): KexMethod => {
  const found = isKnownKex(name) ? methods.get(name) : undefined
  if (found === undefined) throw new UnknownAlgorithm({ kind: "kex", name, known: supportedKexNames })
  return found
}

/**
 * The hash of a key exchange method. Throws `UnknownAlgorithm` for a method
 * we cannot run.
 *
 * @example
 * ```ts
 * kexHash("ecdh-sha2-nistp384") // "sha384"
 * ```
 */
export const kexHash = (name: string): KexHash => method(name).hash

/**
 * The client machine for `inputs.algorithm` (the negotiated method). Throws
 * `UnknownAlgorithm` for a method we cannot run, `ConfigParseError` for bad
 * group-exchange sizes.
 *
 * @example
 * ```ts
 * const kex = makeClientKex(inputs, { gexPreferred: 4096 })
 * const first = kex.start()
 * ```
 */
export const makeClientKex = (inputs: KexInputs, options: ClientKexOptions = {}): ClientKex => {
  checkRole(inputs, "client")
  return method(inputs.algorithm).client(inputs, options)
}

/**
 * The server machine for `inputs.algorithm`; `hostKey` is the key of the
 * negotiated host key algorithm. Throws `UnknownAlgorithm` for a method we
 * cannot run.
 *
 * @example
 * ```ts
 * const kex = makeServerKex(inputs, { blob: hostKeyBlob, sign: (H) => signH(H) })
 * const { send, result } = kex.receive(clientInit)
 * ```
 */
export const makeServerKex = (
  inputs: KexInputs,
  hostKey: HostKeySigner,
  options: ServerKexOptions = {}
): ServerKex => {
  checkRole(inputs, "server")
  return method(inputs.algorithm).server(inputs, hostKey, options)
}
