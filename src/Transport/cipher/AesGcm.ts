/**
 * `aes128-gcm@openssh.com` and `aes256-gcm@openssh.com` (RFC 5647 as OpenSSH
 * uses it, draft-miller-sshm-aes-gcm): the 4-byte packet length travels in
 * clear as additional authenticated data, `padding_length || payload ||
 * padding` is encrypted, and a 16-byte tag follows. The 12-byte nonce is the
 * derived IV — a 4-byte fixed field and an 8-byte big-endian invocation
 * counter incremented after every packet (independent of the sequence
 * number). The negotiated MAC is ignored.
 *
 * @since 0.1.0
 */
import { createCipheriv, createDecipheriv, createSecretKey, type CipherGCMTypes, type KeyObject } from "node:crypto"
import * as Layout from "../../internal/packetLayout.ts"
import { MacMismatch } from "../../SshError.ts"
import type { CipherImplementation, CipherSpec, DirectionKeys, Opener, Sealer } from "../Cipher.ts"

/** Bytes of the GCM authentication tag. */
const TAG_LENGTH = 16

/** A GCM nonce whose 64-bit invocation counter (bytes 4..11) advances per packet. */
class Nonce {
  readonly bytes: Uint8Array
  constructor(iv: Uint8Array) {
    this.bytes = Uint8Array.from(iv)
  }
  advance(): void {
    for (let i = 11; i >= 4; i--) {
      this.bytes[i] = (this.bytes[i]! + 1) & 0xff
      if (this.bytes[i] !== 0) return
    }
  }
}

interface GcmState {
  readonly algorithm: CipherGCMTypes
  readonly key: KeyObject
  readonly nonce: Nonce
}

const state = (keys: DirectionKeys): GcmState => ({
  algorithm: `aes-${keys.key.length * 8}-gcm` as CipherGCMTypes,
  key: createSecretKey(keys.key),
  nonce: new Nonce(keys.iv)
})

const sealer = (spec: CipherSpec, keys: DirectionKeys, random: (n: number) => Uint8Array): Sealer => {
  const { algorithm, key, nonce } = state(keys)
  return {
    seal(payload) {
      const { out, end, body } = Layout.frame(payload, spec.blockSize, false, TAG_LENGTH, random)
      const cipher = createCipheriv(algorithm, key, nonce.bytes, { authTagLength: TAG_LENGTH })
      cipher.setAAD(out.subarray(0, Layout.LENGTH_FIELD))
      Layout.writeParts(out, Layout.LENGTH_FIELD, body, (part) => cipher.update(part))
      cipher.final()
      out.set(cipher.getAuthTag(), end)
      nonce.advance()
      return out
    }
  }
}

const opener = (spec: CipherSpec, keys: DirectionKeys): Opener => {
  const { algorithm, key, nonce } = state(keys)
  const packetLength = (header: Uint8Array): number => {
    Layout.requireHeader(header, Layout.LENGTH_FIELD)
    const length = Layout.readUint32(header, 0)
    Layout.checkPacketLength(length, spec.blockSize, false)
    return Layout.LENGTH_FIELD + length + TAG_LENGTH
  }
  return {
    headerLength: Layout.LENGTH_FIELD,
    packetLength,
    open(packet) {
      Layout.checkWireSize(packet, packetLength(packet))
      const end = packet.length - TAG_LENGTH
      const decipher = createDecipheriv(algorithm, key, nonce.bytes, { authTagLength: TAG_LENGTH })
      decipher.setAAD(packet.subarray(0, Layout.LENGTH_FIELD))
      decipher.setAuthTag(packet.subarray(end))
      const body = decipher.update(packet.subarray(Layout.LENGTH_FIELD, end))
      try {
        decipher.final()
      } catch {
        throw new MacMismatch({ message: `bad ${spec.name} tag` })
      }
      nonce.advance()
      return Layout.unpad(body)
    }
  }
}

const gcmSpec = (bits: number): CipherSpec => ({
  name: `aes${bits}-gcm@openssh.com`,
  keyLength: bits / 8,
  ivLength: 12,
  blockSize: 16,
  aead: true
})

const implementation = (spec: CipherSpec): CipherImplementation => ({
  spec,
  sealer: (keys, _mac, random) => sealer(spec, keys, random),
  opener: (keys) => opener(spec, keys)
})

/**
 * `aes128-gcm@openssh.com` and `aes256-gcm@openssh.com`, for the registry in `Cipher.ts`.
 *
 * @example
 * ```ts
 * implementations.map((i) => i.spec.name) // ["aes128-gcm@openssh.com", "aes256-gcm@openssh.com"]
 * ```
 */
export const implementations: ReadonlyArray<CipherImplementation> = [
  implementation(gcmSpec(128)),
  implementation(gcmSpec(256))
]
