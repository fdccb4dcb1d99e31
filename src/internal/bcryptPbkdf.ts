/**
 * OpenBSD's `bcrypt_pbkdf`, the KDF of passphrase-protected openssh-key-v1
 * files, and the Blowfish ("eksblowfish") core it needs. Neither @noble nor
 * node:crypto offers Blowfish with bcrypt's salted key schedule, so it is
 * written here, following OpenBSD's `blowfish.c` and `bcrypt_pbkdf.c`.
 *
 * Blowfish's initial P-array and S-boxes are the hexadecimal digits of π's
 * fractional part; rather than pasting 1042 magic words, they are computed
 * once (Machin's formula on BigInts, a few milliseconds) and the result is
 * checked against the published first and last words.
 * @internal
 */
import { sha512 } from "@noble/hashes/sha2.js"

const P_WORDS = 18
const S_WORDS = 4 * 256
const BCRYPT_WORDS = 8
const BCRYPT_HASH_SIZE = 4 * BCRYPT_WORDS
/** "OxychromaticBlowfishSwatDynamite", the text bcrypt_hash encrypts. */
const MAGIC_TEXT = new TextEncoder().encode("OxychromaticBlowfishSwatDynamite")

const atanInverse = (x: bigint, one: bigint): bigint => {
  const x2 = x * x
  let term = one / x
  let sum = term
  for (let k = 1n; term !== 0n; k++) {
    term /= x2
    sum += (k % 2n === 0n ? 1n : -1n) * (term / (2n * k + 1n))
  }
  return sum
}

let initialState: Uint32Array | undefined

/** π's fractional hex digits as 18 + 1024 big-endian words. */
const piWords = (): Uint32Array => {
  if (initialState !== undefined) return initialState
  const words = P_WORDS + S_WORDS
  const guard = 64n
  const bits = BigInt(words * 32) + guard
  const one = 1n << bits
  const pi = 16n * atanInverse(5n, one) - 4n * atanInverse(239n, one)
  const fraction = (pi - 3n * one) >> guard
  const out = new Uint32Array(words)
  for (let i = 0; i < words; i++) {
    out[i] = Number((fraction >> BigInt((words - 1 - i) * 32)) & 0xffffffffn)
  }
  if (out[0] !== 0x243f6a88 || out[P_WORDS] !== 0xd1310ba6 || out[words - 1] !== 0x3ac372e6) {
    throw new Error("internal error: Blowfish tables were computed wrongly")
  }
  initialState = out
  return out
}

/** A Blowfish state: P-array then four S-boxes, in one array. */
class Blowfish {
  readonly p: Uint32Array
  readonly s: Uint32Array
  readonly block = new Uint32Array(2)

  constructor() {
    const state = piWords().slice()
    this.p = state.subarray(0, P_WORDS)
    this.s = state.subarray(P_WORDS)
  }

  private f(x: number): number {
    const s = this.s
    return (((s[x >>> 24]! + s[256 + ((x >>> 16) & 0xff)]!) ^ s[512 + ((x >>> 8) & 0xff)]!) + s[768 + (x & 0xff)]!) >>> 0
  }

  /** Enciphers `this.block` in place. */
  encipher(): void {
    const p = this.p
    let l = this.block[0]! ^ p[0]!
    let r = this.block[1]!
    for (let i = 1; i <= 16; i += 2) {
      r ^= this.f(l) ^ p[i]!
      l ^= this.f(r) ^ p[i + 1]!
    }
    this.block[0] = r ^ p[17]!
    this.block[1] = l
  }

  /** Mixes `key` into P, then re-keys P and S by enciphering (salted by `data` when given). */
  expand(key: Uint8Array, data: Uint8Array | undefined): void {
    const keyStream = new WordStream(key)
    for (let i = 0; i < P_WORDS; i++) this.p[i]! ^= keyStream.next()
    const dataStream = data === undefined ? undefined : new WordStream(data)
    this.block[0] = 0
    this.block[1] = 0
    const rekey = (table: Uint32Array) => {
      for (let i = 0; i < table.length; i += 2) {
        if (dataStream !== undefined) {
          this.block[0]! ^= dataStream.next()
          this.block[1]! ^= dataStream.next()
        }
        this.encipher()
        table[i] = this.block[0]!
        table[i + 1] = this.block[1]!
      }
    }
    rekey(this.p)
    rekey(this.s)
  }
}

/** Big-endian 32-bit words taken cyclically from bytes (`Blowfish_stream2word`). */
class WordStream {
  private offset = 0
  private readonly bytes: Uint8Array
  constructor(bytes: Uint8Array) {
    this.bytes = bytes
  }
  next(): number {
    let word = 0
    for (let i = 0; i < 4; i++) {
      word = ((word << 8) | this.bytes[this.offset]!) >>> 0
      this.offset = (this.offset + 1) % this.bytes.length
    }
    return word
  }
}

const bcryptHash = (sha2pass: Uint8Array, sha2salt: Uint8Array): Uint8Array => {
  const state = new Blowfish()
  state.expand(sha2pass, sha2salt)
  for (let i = 0; i < 64; i++) {
    state.expand(sha2salt, undefined)
    state.expand(sha2pass, undefined)
  }
  const text = new WordStream(MAGIC_TEXT)
  const cdata = new Uint32Array(BCRYPT_WORDS)
  for (let i = 0; i < BCRYPT_WORDS; i++) cdata[i] = text.next()
  for (let round = 0; round < 64; round++) {
    for (let j = 0; j < BCRYPT_WORDS; j += 2) {
      state.block[0] = cdata[j]!
      state.block[1] = cdata[j + 1]!
      state.encipher()
      cdata[j] = state.block[0]!
      cdata[j + 1] = state.block[1]!
    }
  }
  const out = new Uint8Array(BCRYPT_HASH_SIZE)
  for (let i = 0; i < BCRYPT_WORDS; i++) {
    // bcrypt_pbkdf emits each word little-endian.
    out[4 * i] = cdata[i]! & 0xff
    out[4 * i + 1] = (cdata[i]! >>> 8) & 0xff
    out[4 * i + 2] = (cdata[i]! >>> 16) & 0xff
    out[4 * i + 3] = cdata[i]! >>> 24
  }
  return out
}

/**
 * Derives `length` bytes from a passphrase and salt with `rounds` rounds
 * (OpenBSD `bcrypt_pbkdf`). Output bytes are spread across blocks with a
 * stride, as the original does, so every byte depends on every round.
 *
 * @example
 * ```ts
 * const keyAndIv = bcryptPbkdf(utf8("secret"), salt, 16, 32 + 16)
 * ```
 */
export const bcryptPbkdf = (password: Uint8Array, salt: Uint8Array, rounds: number, length: number): Uint8Array => {
  if (rounds < 1 || length < 1 || length > BCRYPT_HASH_SIZE * BCRYPT_HASH_SIZE || salt.length === 0) {
    throw new RangeError("bcrypt_pbkdf: invalid rounds, length or salt")
  }
  const stride = Math.ceil(length / BCRYPT_HASH_SIZE)
  const perBlock = Math.ceil(length / stride)
  const sha2pass = sha512(password)
  const key = new Uint8Array(length)
  const countSalt = new Uint8Array(salt.length + 4)
  countSalt.set(salt)
  for (let count = 1, left = length; left > 0; count++) {
    new DataView(countSalt.buffer).setUint32(salt.length, count)
    let tmp = bcryptHash(sha2pass, sha512(countSalt))
    const out = tmp.slice()
    for (let i = 1; i < rounds; i++) {
      tmp = bcryptHash(sha2pass, sha512(tmp))
      for (let j = 0; j < out.length; j++) out[j]! ^= tmp[j]!
    }
    let i = 0
    for (; i < Math.min(perBlock, left); i++) {
      const dest = i * stride + (count - 1)
      if (dest >= length) break
      key[dest] = out[i]!
    }
    left -= i
  }
  return key
}
