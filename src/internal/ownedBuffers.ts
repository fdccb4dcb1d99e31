/**
 * Buffers the library allocated for one packet and may free early.
 *
 * Every received packet is decrypted into a fresh buffer (node:crypto has no
 * way to decrypt into memory we provide), and every sent packet is sealed
 * into one. V8 frees such off-heap memory only when a garbage collection
 * finds the buffer dead, and a program that allocates little on the JS heap
 * gets that collection from V8's external-memory limit: a full mark-compact
 * for every 64 MiB. Measured on a 4 GiB download, those collections cost as
 * much CPU as decrypting, and kept ~64 MiB of dead packets resident.
 *
 * So where the library knows a packet buffer is finished with (sent to the
 * kernel, or lent to a consumer that has returned), it detaches the buffer
 * with `ArrayBuffer.prototype.transfer(0)`, which frees the memory at once.
 * Only buffers registered here by `adopt` are ever freed: a buffer is
 * adopted when it belongs to a single payload or packet and nothing else.
 * A buffer has a count of holders: `adopt` makes it one, `retain` adds one
 * (a second view that outlives the first holder), `release` takes one and
 * frees the buffer at zero, and `forget` makes it ordinary memory again (a
 * view of it escaped where nobody will release it).
 *
 * @internal
 */

interface Transferable {
  transfer(newLength?: number): ArrayBuffer
}

/**
 * The count lives on the buffer itself, under a private symbol: a WeakMap
 * entry per packet measured ~130 ns more per packet, and showed in profiles.
 * 0 or absent: not registered.
 */
const HOLDERS = Symbol("effect-ssh/holders")

interface Registered {
  [HOLDERS]?: number
}

const holdersOf = (buffer: ArrayBufferLike): number => (buffer as Registered)[HOLDERS] ?? 0

const setHolders = (buffer: ArrayBufferLike, count: number): void => {
  ;(buffer as Registered)[HOLDERS] = count
}

/** The most bytes a buffer may hold beyond `bytes` and still be its own: length field, padding and a tag. */
const MAX_SLACK = 4 + 1 + 255 + 32

/** Frees the buffer's memory; one that cannot be detached (none should reach here) is left to the GC. */
const detach = (buffer: ArrayBufferLike): void => {
  try {
    ;(buffer as unknown as Transferable).transfer(0)
  } catch {
    // a non-detachable buffer: freeing early was only an optimisation
  }
}

/**
 * Registers `bytes`' buffer, with one holder, when it holds nothing but
 * `bytes` (and at most a packet's framing around it). Buffers that could be
 * shared — slices of Node's 8 KiB allocation pool, views of a reused ring —
 * are left alone, as are the payloads of a runtime without `transfer`. A
 * buffer already registered keeps its holders (so `discard` of a view that
 * others hold takes one holder, never frees it under them).
 *
 * @example
 * ```ts
 * const payload = adopt(decipher.update(ciphertext))
 * ```
 */
export const adopt = (bytes: Uint8Array): Uint8Array => {
  const buffer = bytes.buffer
  if (
    holdersOf(buffer) === 0 && buffer.byteLength - bytes.byteLength <= MAX_SLACK &&
    typeof (buffer as Partial<Transferable>).transfer === "function"
  ) {
    setHolders(buffer, 1)
  }
  return bytes
}

/**
 * Adds a holder to `bytes`' buffer, if it is registered.
 *
 * @example
 * ```ts
 * parts.push(retain(chunk.subarray(0, n)))
 * ```
 */
export const retain = (bytes: Uint8Array): Uint8Array => {
  const count = holdersOf(bytes.buffer)
  if (count > 0) setHolders(bytes.buffer, count + 1)
  return bytes
}

/**
 * Takes a holder from `bytes`' buffer and frees it when none is left; every
 * view of it then reads as empty. Does nothing for a buffer that is not
 * registered (or no longer is).
 *
 * @example
 * ```ts
 * socket.write(packet, () => release(packet))
 * ```
 */
export const release = (bytes: Uint8Array): void => {
  const buffer = bytes.buffer
  const count = holdersOf(buffer)
  if (count === 0) return
  setHolders(buffer, count - 1)
  if (count === 1) detach(buffer)
}

/**
 * Unregisters `bytes`' buffer: it is never freed early, whoever releases it.
 *
 * @example
 * ```ts
 * const packet = Messages.decode(view) // may keep views of `view`
 * forget(view)
 * ```
 */
export const forget = (bytes: Uint8Array): void => {
  if (holdersOf(bytes.buffer) > 0) setHolders(bytes.buffer, 0)
}

/**
 * `release` for each chunk.
 *
 * @example
 * ```ts
 * Effect.tap(consume(chunks), Effect.sync(() => releaseAll(chunks))) // only after success
 * ```
 */
export const releaseAll = (chunks: ReadonlyArray<Uint8Array>): void => {
  for (const chunk of chunks) release(chunk)
}

/**
 * Frees `bytes` now if its buffer holds nothing else: for a temporary the
 * caller has copied from, such as a cipher's output. For a registered buffer
 * it is `release`: the caller's holder is given back.
 *
 * @example
 * ```ts
 * const encrypted = cipher.update(part)
 * out.set(encrypted, offset)
 * discard(encrypted)
 * ```
 */
export const discard = (bytes: Uint8Array): void => release(adopt(bytes))

/**
 * Whether `bytes`' buffer is registered (and not yet freed).
 *
 * @example
 * ```ts
 * isOwned(adopt(new Uint8Array(64 * 1024))) // true
 * ```
 */
export const isOwned = (bytes: Uint8Array): boolean => holdersOf(bytes.buffer) > 0
