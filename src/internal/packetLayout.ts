/**
 * The byte layout of an SSH binary packet (RFC 4253 §6), shared by every
 * packet cipher:
 *
 * ```
 * uint32    packet_length     (not counting itself nor the MAC)
 * byte      padding_length    (4..255)
 * byte[n1]  payload
 * byte[n2]  random padding
 * byte[m]   mac / tag
 * ```
 *
 * Classic ciphers align all of `packet_length || ... || padding` to the
 * block size; AEAD and encrypt-then-MAC modes leave the 4-byte length out
 * of the alignment because it travels outside the encrypted region.
 *
 * @internal
 */
import { Buffer } from "node:buffer"
import { ProtocolError } from "../SshError.ts"

/** Largest `packet_length` accepted or produced (OpenSSH's PACKET_MAX_SIZE). */
export const MAX_PACKET_LENGTH = 256 * 1024

/** Fewest padding bytes a packet may carry. */
export const MIN_PADDING = 4

/** Bytes of the `packet_length` field. */
export const LENGTH_FIELD = 4

/** Bytes before the payload: `packet_length` and `padding_length`. */
export const PAYLOAD_OFFSET = 5

/**
 * Where the padding falls for a payload: `packetLength` is the value of the
 * length field, `paddingLength` how many random bytes follow the payload.
 *
 * @example
 * ```ts
 * layout(3, 16, false) // { packetLength: 12, paddingLength: 8 }
 * ```
 */
export const layout = (
  payloadLength: number,
  blockSize: number,
  lengthIsAligned: boolean
): { readonly packetLength: number; readonly paddingLength: number } => {
  const align = Math.max(8, blockSize)
  const unpadded = (lengthIsAligned ? LENGTH_FIELD : 0) + 1 + payloadLength
  let paddingLength = align - (unpadded % align)
  if (paddingLength < MIN_PADDING) paddingLength += align
  const packetLength = 1 + payloadLength + paddingLength
  if (packetLength > MAX_PACKET_LENGTH) {
    throw new ProtocolError({ message: `payload of ${payloadLength} bytes exceeds the maximum packet length` })
  }
  return { packetLength, paddingLength }
}

/**
 * Validates a received `packet_length` before anything is allocated for it:
 * in bounds and aligned the way the cipher mode requires.
 *
 * @example
 * ```ts
 * checkPacketLength(12, 16, true)           // ok: 4 + 12 is one AES block
 * checkPacketLength(0xffffffff, 16, true)   // throws ProtocolError
 * ```
 */
export const checkPacketLength = (packetLength: number, blockSize: number, lengthIsAligned: boolean): void => {
  if (packetLength < PAYLOAD_OFFSET || packetLength > MAX_PACKET_LENGTH) {
    throw new ProtocolError({ message: `packet length ${packetLength} out of bounds` })
  }
  const align = Math.max(8, blockSize)
  if (((lengthIsAligned ? LENGTH_FIELD : 0) + packetLength) % align !== 0) {
    throw new ProtocolError({ message: `packet length ${packetLength} is not a multiple of the block size ${align}` })
  }
}

/**
 * Fails unless `packet` is exactly the wire size announced by its header.
 *
 * @example
 * ```ts
 * checkWireSize(packet, 4 + packetLength + macLength)
 * ```
 */
export const checkWireSize = (packet: Uint8Array, expected: number): void => {
  if (packet.length !== expected) {
    throw new ProtocolError({ message: `packet is ${packet.length} bytes, its header announces ${expected}` })
  }
}

/**
 * Extracts the payload from decrypted `padding_length || payload || padding`
 * (a plain `Uint8Array` view, even over a node `Buffer`), checking the
 * padding length.
 *
 * @example
 * ```ts
 * unpad(Uint8Array.of(4, 0x05, 0, 0, 0, 0)) // Uint8Array [0x05]
 * ```
 */
export const unpad = (body: Uint8Array): Uint8Array => {
  const paddingLength = body[0]!
  if (paddingLength < MIN_PADDING) {
    throw new ProtocolError({ message: `padding length ${paddingLength} is below the minimum of ${MIN_PADDING}` })
  }
  if (paddingLength > body.length - 1) {
    throw new ProtocolError({ message: `padding length ${paddingLength} exceeds the packet` })
  }
  return new Uint8Array(body.buffer, body.byteOffset + 1, body.length - 1 - paddingLength)
}

/**
 * Reads a big-endian uint32.
 *
 * @example
 * ```ts
 * readUint32(Uint8Array.of(0, 0, 1, 0), 0) // 256
 * ```
 */
export const readUint32 = (bytes: Uint8Array, offset: number): number =>
  ((bytes[offset]! << 24) | (bytes[offset + 1]! << 16) | (bytes[offset + 2]! << 8) | bytes[offset + 3]!) >>> 0

/**
 * Writes a big-endian uint32.
 *
 * @example
 * ```ts
 * writeUint32(out, 0, packetLength)
 * ```
 */
export const writeUint32 = (bytes: Uint8Array, offset: number, value: number): void => {
  bytes[offset] = value >>> 24
  bytes[offset + 1] = value >>> 16
  bytes[offset + 2] = value >>> 8
  bytes[offset + 3] = value
}

/**
 * A fresh `Uint8Array` of `length` bytes left uninitialized (node's pooled
 * fast allocation, viewed as a plain `Uint8Array`): the caller must write
 * every byte.
 *
 * @example
 * ```ts
 * const plain = uninitialized(16)
 * plain.set(block, 0)
 * ```
 */
export const uninitialized = (length: number): Uint8Array => {
  const b = Buffer.allocUnsafe(length)
  return new Uint8Array(b.buffer, b.byteOffset, length)
}

/**
 * Allocates a packet of `total` bytes and fills in the plaintext layout:
 * length, padding length, payload and `random` padding. Every byte before
 * `total - trailer` is written, so the fast uninitialized allocation is safe;
 * the trailer (MAC or tag) is the caller's to fill.
 *
 * @example
 * ```ts
 * const { packetLength, paddingLength } = layout(payload.length, 16, false)
 * const out = frame(payload, packetLength, paddingLength, 32, random)
 * ```
 */
export const frame = (
  payload: Uint8Array,
  packetLength: number,
  paddingLength: number,
  trailer: number,
  random: (n: number) => Uint8Array
): Uint8Array => {
  const padding = random(paddingLength)
  if (padding.length !== paddingLength) {
    throw new ProtocolError({ message: `random source returned ${padding.length} bytes, ${paddingLength} requested` })
  }
  const out = uninitialized(LENGTH_FIELD + packetLength + trailer)
  writeUint32(out, 0, packetLength)
  out[LENGTH_FIELD] = paddingLength
  out.set(payload, PAYLOAD_OFFSET)
  out.set(padding, PAYLOAD_OFFSET + payload.length)
  return out
}
