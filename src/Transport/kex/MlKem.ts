/**
 * mlkem768x25519-sha256 (draft-ietf-sshm-mlkem-hybrid-kex, OpenSSH 9.9+):
 * a post-quantum / classical hybrid. The client sends C_INIT = ML-KEM-768
 * encapsulation key (1184 bytes) || X25519 public value (32) in
 * SSH_MSG_KEX_ECDH_INIT; the server encapsulates to the ML-KEM key and
 * answers S_REPLY = ciphertext (1088) || its X25519 public value (32).
 * The shared secret is K = SHA-256(ML-KEM secret || X25519 secret), encoded
 * as a *string* (not an mpint) in H and in the key derivation.
 *
 * ML-KEM comes from node:crypto (Node ≥ 24.7); `isMlKemAvailable` says
 * whether this runtime has it. Key generation is seeded from the injected
 * randomness; encapsulation draws its own.
 *
 * @since 0.1.0
 */
import * as crypto from "node:crypto"
import { sha256 } from "@noble/hashes/sha2.js"
import { ProtocolError } from "../../SshError.ts"
import { concat } from "../../internal/bytes.ts"
import { X25519_LENGTH, x25519KeyPair, x25519SharedSecret } from "./Ecdh.ts"
import type { KeyAgreement, Random } from "./Exchange.ts"

/**
 * Length of an ML-KEM-768 encapsulation (public) key.
 *
 * @example
 * ```ts
 * clientInit.subarray(0, MLKEM768_PUBLIC_KEY_LENGTH) // the encapsulation key
 * ```
 */
export const MLKEM768_PUBLIC_KEY_LENGTH = 1184
/**
 * Length of an ML-KEM-768 ciphertext.
 *
 * @example
 * ```ts
 * serverReply.subarray(0, MLKEM768_CIPHERTEXT_LENGTH) // the ciphertext
 * ```
 */
export const MLKEM768_CIPHERTEXT_LENGTH = 1088
/**
 * Length of the seed (d || z) an ML-KEM key pair is derived from.
 *
 * @example
 * ```ts
 * random(MLKEM768_SEED_LENGTH) // d || z of FIPS 203 key generation
 * ```
 */
export const MLKEM768_SEED_LENGTH = 64

/**
 * Length of the client's C_INIT value.
 *
 * @example
 * ```ts
 * clientInit.length === CLIENT_INIT_LENGTH // 1216
 * ```
 */
export const CLIENT_INIT_LENGTH = MLKEM768_PUBLIC_KEY_LENGTH + X25519_LENGTH
/**
 * Length of the server's S_REPLY value.
 *
 * @example
 * ```ts
 * serverReply.length === SERVER_REPLY_LENGTH // 1120
 * ```
 */
export const SERVER_REPLY_LENGTH = MLKEM768_CIPHERTEXT_LENGTH + X25519_LENGTH

/**
 * Whether node:crypto offers ML-KEM (`crypto.encapsulate`, Node ≥ 24.7).
 *
 * @example
 * ```ts
 * const kex = isMlKemAvailable ? ["mlkem768x25519-sha256", "curve25519-sha256"] : ["curve25519-sha256"]
 * ```
 */
export const isMlKemAvailable: boolean = typeof crypto.encapsulate === "function" &&
  typeof crypto.decapsulate === "function"

const guard = <A>(f: () => A, message: string): A => {
  try {
    return f()
  } catch {
    throw new ProtocolError({ message })
  }
}

const mlkemKeyPair = (random: Random) => {
  const privateKey = guard(
    () =>
      crypto.createPrivateKey({
        key: Buffer.from(random(MLKEM768_SEED_LENGTH)),
        format: "raw-seed",
        asymmetricKeyType: "ml-kem-768"
      }),
    "ML-KEM-768 is not available in this runtime"
  )
  const publicKey = new Uint8Array(crypto.createPublicKey(privateKey).export({ format: "raw-public" }))
  return { privateKey, publicKey }
}

const combine = (mlkemSecret: Uint8Array, x25519Secret: Uint8Array): Uint8Array =>
  sha256(concat([mlkemSecret, x25519Secret]))

/**
 * The mlkem768x25519-sha256 agreement.
 *
 * @example
 * ```ts
 * const method = singleRoundTrip("sha256", mlkem768x25519)
 * ```
 */
export const mlkem768x25519: KeyAgreement = {
  publicEncoding: "string",
  secretEncoding: "string",
  initiate: (random) => {
    const mlkem = mlkemKeyPair(random)
    const ecdh = x25519KeyPair(random)
    return {
      publicValue: concat([mlkem.publicKey, ecdh.publicKey]),
      complete: (serverReply) => {
        if (serverReply.length !== SERVER_REPLY_LENGTH) {
          throw new ProtocolError({
            message: `mlkem768x25519 server reply must be ${SERVER_REPLY_LENGTH} bytes, got ${serverReply.length}`
          })
        }
        const ciphertext = serverReply.subarray(0, MLKEM768_CIPHERTEXT_LENGTH)
        const mlkemSecret = guard(
          () => new Uint8Array(crypto.decapsulate(mlkem.privateKey, ciphertext)),
          "ML-KEM-768 decapsulation failed"
        )
        const x25519Secret = x25519SharedSecret(ecdh.secretKey, serverReply.subarray(MLKEM768_CIPHERTEXT_LENGTH))
        return combine(mlkemSecret, x25519Secret)
      }
    }
  },
  respond: (clientInit, random) => {
    if (clientInit.length !== CLIENT_INIT_LENGTH) {
      throw new ProtocolError({
        message: `mlkem768x25519 client value must be ${CLIENT_INIT_LENGTH} bytes, got ${clientInit.length}`
      })
    }
    const encapsulationKey = guard(
      () =>
        crypto.createPublicKey({
          key: Buffer.from(clientInit.subarray(0, MLKEM768_PUBLIC_KEY_LENGTH)),
          format: "raw-public",
          asymmetricKeyType: "ml-kem-768"
        }),
      "invalid ML-KEM-768 public key"
    )
    const { sharedKey, ciphertext } = guard(
      () => crypto.encapsulate(encapsulationKey),
      "ML-KEM-768 encapsulation failed"
    )
    const ecdh = x25519KeyPair(random)
    const x25519Secret = x25519SharedSecret(ecdh.secretKey, clientInit.subarray(MLKEM768_PUBLIC_KEY_LENGTH))
    return {
      publicValue: concat([new Uint8Array(ciphertext), ecdh.publicKey]),
      secret: combine(new Uint8Array(sharedKey), x25519Secret)
    }
  }
}
