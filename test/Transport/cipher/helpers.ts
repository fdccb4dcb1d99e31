/**
 * Shared helpers of the packet cipher and framing tests. Test helper only.
 */
import { randomBytes } from "node:crypto"
import * as Cipher from "../../../src/Transport/Cipher.ts"

/** A deterministic byte source (xorshift32), so two sealers can be fed identical padding. */
export const seededRandom = (seed: number) => {
  let s = seed | 0 || 0x9e3779b9
  return (n: number): Uint8Array => {
    const out = new Uint8Array(n)
    for (let i = 0; i < n; i++) {
      s ^= s << 13
      s ^= s >>> 17
      s ^= s << 5
      out[i] = s & 0xff
    }
    return out
  }
}

/** Fresh keys of the right lengths for a cipher and MAC, from `bytes` (random by default). */
export const keysFor = (cipher: string, mac: string, bytes: (n: number) => Uint8Array = randomBytes): Cipher.DirectionKeys => {
  const spec = Cipher.cipherSpec(cipher)!
  return {
    cipher,
    mac,
    key: bytes(spec.keyLength),
    iv: bytes(spec.ivLength),
    macKey: bytes(Cipher.macSpec(mac)!.keyLength)
  }
}

/** What `f` throws, or `undefined`. */
export const thrown = (f: () => unknown): unknown => {
  try {
    f()
  } catch (u) {
    return u
  }
  return undefined
}
