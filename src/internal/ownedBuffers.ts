/**
 * Memory the library alone holds, and may therefore free early.
 *
 * Every received packet is decrypted into a fresh buffer (node:crypto has no
 * way to decrypt into memory we provide), and every sent packet is sealed
 * into one. V8 frees such off-heap memory only when a garbage collection
 * finds the buffer dead, and a program that allocates little on the JS heap
 * gets that collection from V8's external-memory limit: a full mark-compact
 * for every 64 MiB. Measured on a 4 GiB download, those collections cost as
 * much CPU as decrypting, and kept ~64 MiB of dead packets resident.
 *
 * So where the library knows a buffer is finished with, it detaches it with
 * `ArrayBuffer.prototype.transfer(0)`, which frees the memory at once. That
 * is only sound for memory nobody else can see, and ownership is explicit:
 *
 * - A buffer is **owned** when the library allocated it for itself
 *   (`allocate`), or was just given it fresh by Node (a cipher's output, a
 *   socket read) and registered it (`adopt`). Never because of its size:
 *   a slice of Node's shared pool, or of a buffer someone else made, must
 *   never be registered.
 * - An owned buffer has a count of holders, each a part of the library
 *   that will give its holder back exactly once: `retain` adds one,
 *   `release` takes one and frees the buffer at zero.
 * - A buffer **handed over** (`handOver`) to code outside the library — a
 *   Stream's consumer, a callback, a user's `FileSystem`, anything whose
 *   use of it we cannot see end — is ordinary memory for good: no later
 *   `adopt`, `retain`, `release` or `discard` touches it, and the garbage
 *   collector frees it when its last user drops it.
 *
 * The one exception to handing over is a lease that says so in its name
 * (`SshChannel.borrowStdout`): the borrower is told the memory is valid
 * only while its effect runs.
 *
 * Memory that is not registered is freed early only by `discard`, for a
 * temporary its caller was just given whole (a cipher's output, a chunk
 * read) and copied from. Freeing is an optimisation: whatever the library
 * is not sure of is left to the garbage collector.
 *
 * @internal
 */
import { uninitialized } from "./bytes.ts"

interface Transferable {
  transfer(newLength?: number): ArrayBuffer
}

/**
 * The state lives on the buffer itself, under a private symbol: a WeakMap
 * entry per packet measured ~130 ns more per packet, and showed in profiles.
 * Absent or 0: not registered; n > 0: owned, n holders; HANDED_OVER: outside
 * the library's reach for good.
 */
const HOLDERS = Symbol("effect-ssh/holders")
const HANDED_OVER = -1

interface Registered {
  [HOLDERS]?: number
}

const stateOf = (buffer: ArrayBufferLike): number => (buffer as Registered)[HOLDERS] ?? 0

const setState = (buffer: ArrayBufferLike, state: number): void => {
  ;(buffer as Registered)[HOLDERS] = state
}

const canTransfer = (buffer: ArrayBufferLike): boolean => typeof (buffer as Partial<Transferable>).transfer === "function"

/** Frees the buffer's memory; one that cannot be detached (none should reach here) is left to the GC. */
const detach = (buffer: ArrayBufferLike): void => {
  try {
    ;(buffer as unknown as Transferable).transfer(0)
  } catch {
    // a non-detachable buffer: freeing early was only an optimisation
  }
}

/**
 * `length` uninitialized bytes in a buffer of their own (never a slice of
 * Node's shared pool), owned by the library with one holder: for memory it
 * allocates for itself and will release when done, such as a block read
 * from a local file to be sent from.
 *
 * @example
 * ```ts
 * const block = allocate(1024 * 1024)
 * const n = yield* file.read(block)
 * yield* send(block.subarray(0, n))
 * release(block)
 * ```
 */
export const allocate = (length: number): Uint8Array => adopt(uninitialized(length))

/**
 * Registers `bytes`' buffer as the library's, with one holder. The caller
 * vouches that the whole buffer is the library's alone: it was allocated
 * for the library just now (a cipher's output, a packet sealed into
 * `packetLayout.frame`'s buffer, a read Node made into a buffer of its own)
 * and nobody outside the library has seen it. A buffer already registered
 * keeps its holders, one handed over stays handed over, and nothing is
 * registered on a runtime without `transfer`.
 *
 * @example
 * ```ts
 * const payload = adopt(decipher.update(ciphertext))
 * ```
 */
export const adopt = (bytes: Uint8Array): Uint8Array => {
  const buffer = bytes.buffer
  if (stateOf(buffer) === 0 && canTransfer(buffer)) setState(buffer, 1)
  return bytes
}

/**
 * Adds a holder to `bytes`' buffer, if it is owned: for a part of the
 * library that keeps a view beyond its current holder's release.
 *
 * @example
 * ```ts
 * parts.push(retain(chunk.subarray(0, n)))
 * ```
 */
export const retain = (bytes: Uint8Array): Uint8Array => {
  const count = stateOf(bytes.buffer)
  if (count > 0) setState(bytes.buffer, count + 1)
  return bytes
}

/**
 * Takes a holder from `bytes`' buffer and frees it when none is left; every
 * view of it then reads as empty. Does nothing for a buffer that is not
 * owned (never registered, freed already, or handed over).
 *
 * @example
 * ```ts
 * socket.write(packet, () => release(packet))
 * ```
 */
export const release = (bytes: Uint8Array): void => {
  const buffer = bytes.buffer
  const count = stateOf(buffer)
  if (count <= 0) return
  setState(buffer, count - 1)
  if (count === 1) detach(buffer)
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
 * Hands `bytes` over to code outside the library: its buffer is never
 * freed early from now on, whoever holds or releases it (the garbage
 * collector frees it once nobody uses it). Call it before the memory
 * reaches a user's callback, Stream consumer or file system, and for a
 * view the library itself keeps where nobody will release it.
 *
 * @example
 * ```ts
 * handOver(chunk)
 * yield* userFile.writeAll(chunk)
 * ```
 */
export const handOver = (bytes: Uint8Array): Uint8Array => {
  setState(bytes.buffer, HANDED_OVER)
  return bytes
}

/**
 * `handOver` for each chunk.
 *
 * @example
 * ```ts
 * yield* consumer(handOverAll(chunks))
 * ```
 */
export const handOverAll = <A extends ReadonlyArray<Uint8Array>>(chunks: A): A => {
  for (const chunk of chunks) setState(chunk.buffer, HANDED_OVER)
  return chunks
}

/**
 * Frees `bytes` now: for memory the caller was given fresh (a cipher's
 * output, a chunk Node read from a socket or pipe only the library
 * listens to) or allocated, has copied from or written out, and never
 * showed to code outside the library. For an owned buffer it is `release`
 * (the caller's holder is given back); for one handed over it does
 * nothing. Unregistered memory is freed only when `bytes` is the whole of
 * its buffer: a view of a larger one — a slice of Node's shared pool,
 * which `Buffer.concat`, `Readable.read()` and small `Buffer.allocUnsafe`
 * return — shares it with bytes that are not the caller's, and is left to
 * the garbage collector.
 *
 * @example
 * ```ts
 * const encrypted = cipher.update(part)
 * out.set(encrypted, offset)
 * discard(encrypted)
 * ```
 */
export const discard = (bytes: Uint8Array): void => {
  const buffer = bytes.buffer
  const state = stateOf(buffer)
  if (state > 0) return release(bytes)
  if (state === 0 && bytes.byteOffset === 0 && bytes.byteLength === buffer.byteLength && canTransfer(buffer)) detach(buffer)
}

/**
 * Whether `bytes`' buffer is owned (registered, not yet freed nor handed over).
 *
 * @example
 * ```ts
 * isOwned(allocate(64 * 1024)) // true
 * ```
 */
export const isOwned = (bytes: Uint8Array): boolean => stateOf(bytes.buffer) > 0
