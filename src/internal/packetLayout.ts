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
import { ProtocolError } from "../SshError.ts"
import { uninitialized, writeUint32 } from "./bytes.ts"
import { discard } from "./ownedBuffers.ts"

/**
 * Largest `packet_length` accepted or produced (OpenSSH's PACKET_MAX_SIZE).
 *
 * @example
 * ```ts
 * if (packetLength > MAX_PACKET_LENGTH) throw new ProtocolError({ message: "too long" })
 * ```
 */
export const MAX_PACKET_LENGTH = 256 * 1024

/**
 * Fewest padding bytes a packet may carry.
 *
 * @example
 * ```ts
 * body[0] >= MIN_PADDING
 * ```
 */
export const MIN_PADDING = 4

/**
 * Bytes of the `packet_length` field.
 *
 * @example
 * ```ts
 * const header = packet.subarray(0, LENGTH_FIELD)
 * ```
 */
export const LENGTH_FIELD = 4

/**
 * Bytes before the payload: `packet_length` and `padding_length`.
 *
 * @example
 * ```ts
 * const payloadStart = PAYLOAD_OFFSET // in a plaintext packet
 * ```
 */
export const PAYLOAD_OFFSET = 5

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
  if (packetLength < 1 + MIN_PADDING || packetLength > MAX_PACKET_LENGTH) {
    throw new ProtocolError({ message: `packet length ${packetLength} out of bounds` })
  }
  const align = Math.max(8, blockSize)
  if (((lengthIsAligned ? LENGTH_FIELD : 0) + packetLength) % align !== 0) {
    throw new ProtocolError({ message: `packet length ${packetLength} is not a multiple of the block size ${align}` })
  }
}

/**
 * Fails unless at least `headerLength` bytes of header were given.
 *
 * @example
 * ```ts
 * requireHeader(header, 16) // before decrypting the first AES block
 * ```
 */
export const requireHeader = (header: Uint8Array, headerLength: number): void => {
  if (header.length < headerLength) {
    throw new ProtocolError({ message: `packet header needs ${headerLength} bytes, got ${header.length}` })
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

// The byte helpers ciphers use alongside the layout (`Layout.readUint32`, ...).
export { readUint32, uninitialized, writeUint32 } from "./bytes.ts"

/** A packet being sealed: the wire buffer and the plaintext that goes into it. */
export interface Frame {
  /** The whole wire packet; only `packet_length` and `padding_length` are written yet. */
  readonly out: Uint8Array
  /** End of `packet_length || padding_length || payload || padding`; the MAC or tag follows. */
  readonly end: number
  /**
   * The plaintext after the length field, in pieces so that the payload is
   * encrypted straight from the caller's buffer: `padding_length` (a view of
   * `out`), the payload's parts, padding.
   */
  readonly body: ReadonlyArray<Uint8Array>
}

/**
 * Lays out a packet for `payload`: the smallest random padding of at least 4
 * bytes (RFC 4253 §6) that aligns the packet to max(8, blockSize) — counting
 * the length field unless it travels outside the cipher (AEAD, encrypt-then-MAC)
 * — and a buffer for it with `trailer` bytes of MAC or tag. Throws
 * `ProtocolError` when the packet would exceed `MAX_PACKET_LENGTH`.
 *
 * The buffer is left uninitialized: the cipher must write every byte from
 * `body` onwards (see `writeParts`) and the trailer. It is memory of its own
 * (never a slice of Node's shared pool), so the sealed packet may be
 * registered as the library's (`ownedBuffers.adopt`) and freed once written.
 *
 * @example
 * ```ts
 * const { out, end, body } = frame(payload, 16, false, 16, randomBytes)
 * writeParts(out, 4, body, (part) => cipher.update(part))
 * ```
 */
export const frame = (
  payload: Payload,
  blockSize: number,
  lengthIsAligned: boolean,
  trailer: number,
  random: (n: number) => Uint8Array
): Frame => {
  const parts: ReadonlyArray<Uint8Array> = payload instanceof Uint8Array ? [payload] : payload
  let payloadLength = 0
  for (const part of parts) payloadLength += part.length
  const align = Math.max(8, blockSize)
  const unpadded = (lengthIsAligned ? LENGTH_FIELD : 0) + 1 + payloadLength
  let paddingLength = align - (unpadded % align)
  if (paddingLength < MIN_PADDING) paddingLength += align
  const packetLength = 1 + payloadLength + paddingLength
  if (packetLength > MAX_PACKET_LENGTH) {
    throw new ProtocolError({ message: `payload of ${payloadLength} bytes exceeds the maximum packet length` })
  }
  const padding = random(paddingLength)
  if (padding.length !== paddingLength) {
    throw new ProtocolError({ message: `random source returned ${padding.length} bytes, ${paddingLength} requested` })
  }
  const end = LENGTH_FIELD + packetLength
  const out = uninitialized(end + trailer)
  writeUint32(out, 0, packetLength)
  out[LENGTH_FIELD] = paddingLength
  return { out, end, body: [out.subarray(LENGTH_FIELD, PAYLOAD_OFFSET), ...parts, padding] }
}

/**
 * A payload, whole or in parts sealed back to back (a channel-data header and
 * the caller's bytes, without first copying them together).
 *
 * @example
 * ```ts
 * const payload: Payload = [header, data]
 * ```
 */
export type Payload = Uint8Array | ReadonlyArray<Uint8Array>

/**
 * Writes `parts` one after the other into `out` from `offset`, each through
 * `transform` (a stream cipher's update; output as long as its input) when
 * given. The transform's output must be a new buffer that nobody else has
 * seen (a cipher's `update`): it is freed once copied
 * (`ownedBuffers.discard`). Returns the offset after the last part.
 *
 * @example
 * ```ts
 * writeParts(out, 4, body, (part) => cipher.update(part)) // 4 + packet_length
 * ```
 */
export const writeParts = (
  out: Uint8Array,
  offset: number,
  parts: ReadonlyArray<Uint8Array>,
  transform?: ((part: Uint8Array) => Uint8Array) | undefined
): number => {
  for (const part of parts) {
    if (transform === undefined) {
      out.set(part, offset)
    } else {
      const transformed = transform(part)
      out.set(transformed, offset)
      discard(transformed)
    }
    offset += part.length
  }
  return offset
}
