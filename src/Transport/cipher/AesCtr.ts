/**
 * The classic SSH packet construction — a stream cipher plus a separate MAC —
 * for `aes128-ctr`, `aes192-ctr`, `aes256-ctr` (RFC 4344) and the `none`
 * cipher used before the first NEWKEYS.
 *
 * With a classic MAC (RFC 4253 §6) the whole packet, length included, is
 * encrypted and the MAC covers `seqno || plaintext packet`; the first cipher
 * block must be decrypted to learn the length. With an `-etm` MAC (OpenSSH
 * PROTOCOL §1.5) the length travels in clear, the MAC covers
 * `seqno || length || ciphertext` and is checked before anything is decrypted.
 *
 * AES-CTR runs on one long-lived node:crypto cipher per direction: the SSH
 * counter (a 128-bit big-endian integer, RFC 4344 §4) runs on across packets
 * exactly like OpenSSL's.
 *
 * @since 0.1.0
 */
import { createCipheriv, createSecretKey } from "node:crypto"
import * as Layout from "../../internal/packetLayout.ts"
import { MacMismatch } from "../../SshError.ts"
import type { CipherImplementation, CipherSpec, DirectionKeys, MacSpec, Opener, Sealer } from "../Cipher.ts"
import { makeMac } from "./Mac.ts"

/** Transforms the next bytes of the keystream (same length out); `undefined` for the `none` cipher. */
type Keystream = ((data: Uint8Array) => Uint8Array) | undefined

const aesCtr = (keys: DirectionKeys): Keystream => {
  const cipher = createCipheriv(`aes-${keys.key.length * 8}-ctr`, createSecretKey(keys.key), keys.iv)
  return (data) => cipher.update(data)
}

const sealer = (spec: CipherSpec, macSpec: MacSpec, keys: DirectionKeys, random: (n: number) => Uint8Array, keystream: Keystream): Sealer => {
  const mac = makeMac(macSpec, keys.macKey)
  const { etm, macLength } = macSpec
  return {
    seal(payload, seqno) {
      const { out, end, body } = Layout.frame(payload, spec.blockSize, !etm, macLength, random)
      if (etm) {
        Layout.writeParts(out, Layout.LENGTH_FIELD, body, keystream)
        out.set(mac.compute(seqno, out.subarray(0, end)), end)
      } else {
        const length = out.subarray(0, Layout.LENGTH_FIELD)
        out.set(mac.compute(seqno, length, ...body), end)
        Layout.writeParts(out, 0, [length, ...body], keystream)
      }
      return out
    }
  }
}

const opener = (spec: CipherSpec, macSpec: MacSpec, keys: DirectionKeys, keystream: Keystream): Opener => {
  const mac = makeMac(macSpec, keys.macKey)
  const { etm, macLength } = macSpec
  const lengthIsEncrypted = !etm && keystream !== undefined
  const headerLength = lengthIsEncrypted ? spec.blockSize : Layout.LENGTH_FIELD
  let pending: { readonly seqno: number; readonly packetLength: number; readonly head: Uint8Array } | undefined

  const packetLength = (header: Uint8Array, seqno: number): number => {
    Layout.requireHeader(header, headerLength)
    const head = lengthIsEncrypted ? keystream!(header.subarray(0, headerLength)) : header.subarray(0, headerLength)
    const length = Layout.readUint32(head, 0)
    Layout.checkPacketLength(length, spec.blockSize, !etm)
    pending = { seqno, packetLength: length, head }
    return Layout.LENGTH_FIELD + length + macLength
  }

  const plaintext = (packet: Uint8Array, head: Uint8Array, end: number): Uint8Array => {
    if (!lengthIsEncrypted) return packet.subarray(0, end)
    const plain = Layout.uninitialized(end)
    plain.set(head)
    plain.set(keystream!(packet.subarray(headerLength, end)), headerLength)
    return plain
  }

  return {
    headerLength,
    packetLength,
    open(packet, seqno) {
      if (pending?.seqno !== seqno) packetLength(packet, seqno)
      const { packetLength: length, head } = pending!
      pending = undefined
      const end = Layout.LENGTH_FIELD + length
      Layout.checkWireSize(packet, end + macLength)
      const tag = packet.subarray(end)
      if (etm) {
        if (!mac.verify(tag, seqno, packet.subarray(0, end))) throw new MacMismatch({ message: `bad ${macSpec.name} MAC` })
        const body = packet.subarray(Layout.LENGTH_FIELD, end)
        return Layout.unpad(keystream === undefined ? body : keystream(body))
      }
      const plain = plaintext(packet, head, end)
      if (!mac.verify(tag, seqno, plain)) throw new MacMismatch({ message: `bad ${macSpec.name} MAC` })
      return Layout.unpad(plain.subarray(Layout.LENGTH_FIELD))
    }
  }
}

const implementation = (spec: CipherSpec, keystream: (keys: DirectionKeys) => Keystream): CipherImplementation => ({
  spec,
  sealer: (keys, mac, random) => sealer(spec, mac, keys, random, keystream(keys)),
  opener: (keys, mac) => opener(spec, mac, keys, keystream(keys))
})

const ctrSpec = (bits: number): CipherSpec => ({
  name: `aes${bits}-ctr`,
  keyLength: bits / 8,
  ivLength: 16,
  blockSize: 16,
  aead: false
})

/**
 * The `none` cipher: no encryption, 8-byte alignment (RFC 4253 §6).
 *
 * @example
 * ```ts
 * noneSpec.blockSize // 8
 * ```
 */
export const noneSpec: CipherSpec = { name: "none", keyLength: 0, ivLength: 0, blockSize: 8, aead: false }

/**
 * `aes128-ctr`, `aes192-ctr`, `aes256-ctr` and `none`, for the registry in `Cipher.ts`.
 *
 * @example
 * ```ts
 * implementations.map((i) => i.spec.name) // ["aes128-ctr", "aes192-ctr", "aes256-ctr", "none"]
 * ```
 */
export const implementations: ReadonlyArray<CipherImplementation> = [
  implementation(ctrSpec(128), aesCtr),
  implementation(ctrSpec(192), aesCtr),
  implementation(ctrSpec(256), aesCtr),
  implementation(noneSpec, () => undefined)
]
