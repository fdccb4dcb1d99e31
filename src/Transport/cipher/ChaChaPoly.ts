/**
 * `chacha20-poly1305@openssh.com` (OpenSSH PROTOCOL.chacha20poly1305,
 * draft-ietf-sshm-chacha20-poly1305). The 64 bytes of key material are two
 * ChaCha20 keys: K_2 (first 32 bytes) encrypts `padding_length || payload ||
 * padding` from block counter 1, and the first 32 bytes of its block 0 are
 * the one-time Poly1305 key; K_1 (last 32 bytes) encrypts only the 4-byte
 * length. Both use the sequence number (uint64, big-endian) as nonce. The tag
 * is Poly1305 over `encrypted length || ciphertext`. The negotiated MAC is
 * ignored.
 *
 * ChaCha20 runs on node:crypto, whose 16-byte IV is ChaCha's state words
 * 12–15: OpenSSH's 64-bit little-endian block counter followed by the 64-bit
 * nonce. Poly1305 comes from @noble/ciphers (node:crypto exposes no raw
 * Poly1305).
 *
 * @since 0.1.0
 */
import { poly1305 } from "@noble/ciphers/_poly1305.js"
import { createCipheriv, createSecretKey, type KeyObject } from "node:crypto"
import { equalConstantTime } from "../../internal/bytes.ts"
import * as Layout from "../../internal/packetLayout.ts"
import { MacMismatch } from "../../SshError.ts"
import type { CipherImplementation, CipherSpec, DirectionKeys, Opener, Sealer } from "../Cipher.ts"

const TAG_LENGTH = 16
const POLY_KEY_LENGTH = 32
/** One ChaCha20 block: encrypting it with counter 0 yields block 0's keystream and leaves the counter at 1. */
const BLOCK_ZERO = new Uint8Array(64)

/**
 * The chacha20-poly1305@openssh.com cipher spec.
 *
 * @example
 * ```ts
 * spec.keyLength // 64
 * ```
 */
export const spec: CipherSpec = {
  name: "chacha20-poly1305@openssh.com",
  keyLength: 64,
  ivLength: 0,
  blockSize: 8,
  aead: true
}

interface Keys {
  readonly payload: KeyObject
  readonly length: KeyObject
  /** node:crypto ChaCha20 IV: uint64 LE block counter (always 0 here) || uint64 BE sequence number. */
  readonly iv: Uint8Array
}

const importKeys = (keys: DirectionKeys): Keys => ({
  payload: createSecretKey(keys.key.subarray(0, 32)),
  length: createSecretKey(keys.key.subarray(32, 64)),
  iv: new Uint8Array(16)
})

const chacha = (keys: Keys, key: KeyObject, seqno: number) => {
  Layout.writeUint32(keys.iv, 12, seqno)
  return createCipheriv("chacha20", key, keys.iv)
}

/** Starts the K_2 stream for `seqno`: returns the Poly1305 key and the cipher, now at block counter 1. */
const payloadStream = (keys: Keys, seqno: number) => {
  const cipher = chacha(keys, keys.payload, seqno)
  const polyKey = cipher.update(BLOCK_ZERO).subarray(0, POLY_KEY_LENGTH)
  return { cipher, polyKey }
}

const sealer = (keys: Keys, random: (n: number) => Uint8Array): Sealer => ({
  seal(payload, seqno) {
    const { out, end, body } = Layout.frame(payload, spec.blockSize, false, TAG_LENGTH, random)
    out.set(chacha(keys, keys.length, seqno).update(out.subarray(0, Layout.LENGTH_FIELD)))
    const { cipher, polyKey } = payloadStream(keys, seqno)
    Layout.writeParts(out, Layout.LENGTH_FIELD, body, (part) => cipher.update(part))
    out.set(poly1305(out.subarray(0, end), polyKey), end)
    return out
  }
})

const opener = (keys: Keys): Opener => {
  const packetLength = (header: Uint8Array, seqno: number): number => {
    Layout.requireHeader(header, Layout.LENGTH_FIELD)
    const length = Layout.readUint32(chacha(keys, keys.length, seqno).update(header.subarray(0, Layout.LENGTH_FIELD)), 0)
    Layout.checkPacketLength(length, spec.blockSize, false)
    return Layout.LENGTH_FIELD + length + TAG_LENGTH
  }
  return {
    headerLength: Layout.LENGTH_FIELD,
    packetLength,
    open(packet, seqno) {
      Layout.checkWireSize(packet, packetLength(packet, seqno))
      const end = packet.length - TAG_LENGTH
      const { cipher, polyKey } = payloadStream(keys, seqno)
      if (!equalConstantTime(poly1305(packet.subarray(0, end), polyKey), packet.subarray(end))) {
        throw new MacMismatch({ message: `bad ${spec.name} tag` })
      }
      return Layout.unpad(cipher.update(packet.subarray(Layout.LENGTH_FIELD, end)))
    }
  }
}

/**
 * chacha20-poly1305@openssh.com, for the registry in `Cipher.ts`.
 *
 * @example
 * ```ts
 * implementations[0].spec.name // "chacha20-poly1305@openssh.com"
 * ```
 */
export const implementations: ReadonlyArray<CipherImplementation> = [
  {
    spec,
    sealer: (keys, _mac, random) => sealer(importKeys(keys), random),
    opener: (keys) => opener(importKeys(keys))
  }
]
