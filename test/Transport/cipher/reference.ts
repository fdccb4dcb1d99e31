/**
 * An independent reference implementation of SSH packet sealing on
 * @noble/ciphers and @noble/hashes, written straight from RFC 4253 §6,
 * RFC 4344, RFC 5647 / draft-miller-sshm-aes-gcm, OpenSSH PROTOCOL §1.5 and
 * PROTOCOL.chacha20poly1305, used to cross-check the node:crypto fast path.
 * Test helper only.
 */
import { poly1305 } from "@noble/ciphers/_poly1305.js"
import { ctr, gcm } from "@noble/ciphers/aes.js"
import { chacha20orig } from "@noble/ciphers/chacha.js"
import { hmac } from "@noble/hashes/hmac.js"
import { sha1 } from "@noble/hashes/legacy.js"
import { sha256, sha512 } from "@noble/hashes/sha2.js"
import type { DirectionKeys } from "../../../src/Transport/Cipher.ts"

const concat = (...parts: ReadonlyArray<Uint8Array>): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let o = 0
  for (const p of parts) {
    out.set(p, o)
    o += p.length
  }
  return out
}

const u32 = (n: number): Uint8Array => Uint8Array.of(n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff)

const bigFrom = (bytes: Uint8Array): bigint => bytes.reduce((acc, b) => (acc << 8n) | BigInt(b), 0n)

const bigTo = (n: bigint, length: number): Uint8Array => {
  const out = new Uint8Array(length)
  for (let i = length - 1; i >= 0; i--) {
    out[i] = Number(n & 0xffn)
    n >>= 8n
  }
  return out
}

const hmacs: Record<string, { hash: Parameters<typeof hmac>[0]; etm: boolean }> = {
  "hmac-sha2-256": { hash: sha256, etm: false },
  "hmac-sha2-512": { hash: sha512, etm: false },
  "hmac-sha1": { hash: sha1, etm: false },
  "hmac-sha2-256-etm@openssh.com": { hash: sha256, etm: true },
  "hmac-sha2-512-etm@openssh.com": { hash: sha512, etm: true },
  "hmac-sha1-etm@openssh.com": { hash: sha1, etm: true }
}

const blockSizeOf = (cipher: string): number => (cipher.startsWith("aes") ? 16 : 8)

/** Smallest padding ≥ 4 aligning the covered bytes to max(8, block size). */
const padLength = (covered: number, blockSize: number): number => {
  const align = Math.max(8, blockSize)
  let p = 4
  while ((covered + p) % align !== 0) p++
  return p
}

/**
 * A stateful reference sealer for one direction. For bad-padding tests,
 * `padding` overrides how many padding bytes are appended and `declared` the
 * padding_length byte written.
 */
export const referenceSealer = (keys: DirectionKeys, random: (n: number) => Uint8Array) => {
  const aead = keys.cipher.includes("gcm") || keys.cipher.startsWith("chacha")
  const mac = aead ? undefined : hmacs[keys.mac]
  const etm = aead || (mac?.etm ?? false)
  let ctrBlocks = 0n
  let gcmCounter = keys.cipher.includes("gcm") ? bigFrom(keys.iv.subarray(4, 12)) : 0n

  return (
    payload: Uint8Array,
    seqno: number,
    options?: { readonly padding?: number | undefined; readonly declared?: number | undefined }
  ): Uint8Array => {
    const bs = blockSizeOf(keys.cipher)
    const p = options?.padding ?? padLength((etm ? 0 : 4) + 1 + payload.length, bs)
    const body = concat(Uint8Array.of(options?.declared ?? p), payload, random(p))
    const length = u32(body.length)

    if (keys.cipher.includes("gcm")) {
      const nonce = concat(keys.iv.subarray(0, 4), bigTo(gcmCounter, 8))
      gcmCounter = (gcmCounter + 1n) & 0xffffffffffffffffn
      return concat(length, gcm(keys.key, nonce, length).encrypt(body))
    }
    if (keys.cipher.startsWith("chacha")) {
      const nonce = bigTo(BigInt(seqno), 8)
      const k2 = keys.key.subarray(0, 32)
      const k1 = keys.key.subarray(32, 64)
      const encryptedLength = chacha20orig(k1, nonce, length, undefined, 0)
      const polyKey = chacha20orig(k2, nonce, new Uint8Array(32), undefined, 0)
      const ct = concat(encryptedLength, chacha20orig(k2, nonce, body, undefined, 1))
      return concat(ct, poly1305(ct, polyKey))
    }

    // aes*-ctr or none: the CTR counter is IV + blocks already used, mod 2^128 (RFC 4344 §4)
    const encrypt = (data: Uint8Array): Uint8Array => {
      if (keys.cipher === "none") return data
      const counter = bigTo((bigFrom(keys.iv) + ctrBlocks) & ((1n << 128n) - 1n), 16)
      ctrBlocks += BigInt(data.length / 16)
      return ctr(keys.key, counter).encrypt(data)
    }
    const tag = (data: Uint8Array): Uint8Array =>
      mac === undefined ? new Uint8Array(0) : hmac(mac.hash, keys.macKey, concat(u32(seqno), data))
    if (etm) {
      const ct = concat(length, encrypt(body))
      return concat(ct, tag(ct))
    }
    const plain = concat(length, body)
    return concat(encrypt(plain), tag(plain))
  }
}
