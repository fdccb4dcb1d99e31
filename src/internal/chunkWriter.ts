/**
 * Appending a block that arrived as many chunks (views of SSH packets) to a local file without joining them
 * first. Joining costs a copy on the main thread — about 0.2 s of CPU per GiB here, a fifth of a whole SFTP
 * download — while `writev` hands the chunks to the kernel as they are (~0.04 s per GiB).
 *
 * `writev` needs an OS descriptor, which only a file opened through Node's file system is known to have: the
 * `FileSystem` that `NodeSsh.layer` provides is marked as such. Files from any other `FileSystem` get one joined
 * `writeAll`, which is always correct.
 *
 * The writer is also where the chunks' packet memory changes hands (`ownedBuffers`). Into Node's own file system
 * the library writes them itself and, once `writev` has completed, frees them. Any other `FileSystem` is foreign
 * code that may keep what it is given (queue it, cache it): it is handed a chunk, or a join of the chunks, for
 * good, and nothing it was given is ever freed.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import type * as FileSystem from "effect/FileSystem"
import * as PlatformError from "effect/PlatformError"
import * as NodeFs from "node:fs"
import { concat } from "./bytes.ts"
import { handOver, handOverAll, releaseAll } from "./ownedBuffers.ts"

const nodeFileSystems = new WeakSet<FileSystem.FileSystem>()

/**
 * Marks `fs` as Node's own, whose files carry OS descriptors.
 *
 * @example
 * ```ts
 * Layer.effect(FileSystem.FileSystem, Effect.map(FileSystem.FileSystem, markNodeFileSystem))
 * ```
 */
export const markNodeFileSystem = (fs: FileSystem.FileSystem): FileSystem.FileSystem => {
  nodeFileSystems.add(fs)
  return fs
}

/**
 * Whether `fs` is Node's own (marked by `markNodeFileSystem`): code of ours, which the library may lend memory
 * it frees afterwards.
 *
 * @example
 * ```ts
 * const block = isNodeFileSystem(fs) ? allocate(size) : handOver(uninitialized(size))
 * ```
 */
export const isNodeFileSystem = (fs: FileSystem.FileSystem): boolean => nodeFileSystems.has(fs)

/**
 * Appends chunks to the file, in order; fails with the file system's error. It takes over the caller's holder of
 * each chunk (`ownedBuffers`): the caller must not use the chunks afterwards.
 */
export type ChunkWriter = (chunks: ReadonlyArray<Uint8Array>) => Effect.Effect<void, PlatformError.PlatformError>

const errnoTags: Readonly<Record<string, PlatformError.SystemErrorTag>> = {
  ENOENT: "NotFound",
  EACCES: "PermissionDenied",
  EPERM: "PermissionDenied",
  EEXIST: "AlreadyExists",
  EBADF: "BadResource",
  EBUSY: "Busy",
  ETIMEDOUT: "TimedOut",
  EAGAIN: "WouldBlock"
}

const writevError = (fd: number, error: NodeJS.ErrnoException): PlatformError.PlatformError =>
  PlatformError.systemError({
    _tag: errnoTags[error.code ?? ""] ?? "Unknown",
    module: "FileSystem",
    method: "writev",
    syscall: "writev",
    pathOrDescriptor: fd,
    description: error.message,
    cause: error
  })

/** The chunks left after the first `written` bytes (a short write is rare on a regular file, but legal). */
const after = (chunks: ReadonlyArray<Uint8Array>, written: number): Array<Uint8Array> => {
  const rest: Array<Uint8Array> = []
  for (const chunk of chunks) {
    if (written >= chunk.length) written -= chunk.length
    else {
      rest.push(written === 0 ? chunk : chunk.subarray(written))
      written = 0
    }
  }
  return rest
}

const writevAll = (fd: number, chunks: ReadonlyArray<Uint8Array>, position: number): Effect.Effect<number, PlatformError.PlatformError> =>
  Effect.callback<number, PlatformError.PlatformError>((resume) => {
    NodeFs.writev(fd, chunks as Array<Uint8Array>, position, (error, written) => {
      resume(error ? Effect.fail(writevError(fd, error)) : Effect.succeed(written))
    })
  }).pipe(Effect.flatMap((written) => {
    const rest = after(chunks, written)
    if (rest.length === 0) return Effect.succeed(position + written)
    if (written === 0) return Effect.fail(PlatformError.systemError({ _tag: "WriteZero", module: "FileSystem", method: "writev", pathOrDescriptor: fd }))
    return writevAll(fd, rest, position + written)
  }))

/**
 * A writer appending to `file` from byte `start` (where its cursor is). When `fs` is Node's: `writev` on its
 * descriptor, then the chunks are released (freed, for packets nothing else holds) — not after a failure or an
 * interruption, when a write in the thread pool may still be reading them. Otherwise the file gets one `writeAll`
 * per batch, and may keep the buffer it is given: a single chunk is handed over; several are joined into a new
 * buffer, which is handed over, and the chunks themselves (copied, so still the library's alone) are released.
 *
 * @example
 * ```ts
 * const write = chunkWriter(fs, file, 0)
 * yield* write([header, body])
 * ```
 */
export const chunkWriter = (fs: FileSystem.FileSystem, file: FileSystem.File, start: number): ChunkWriter => {
  // Node's File keeps its descriptor in `fd` (not part of the FileSystem interface).
  const fd = (file as { readonly fd?: unknown }).fd
  if (!nodeFileSystems.has(fs) || typeof fd !== "number") {
    return (chunks) =>
      Effect.suspend(() => {
        if (chunks.length === 1) return file.writeAll(handOverAll(chunks)[0]!)
        // the join is the file's; the chunks it was copied from are still the library's alone
        const joined = handOver(concat(chunks))
        releaseAll(chunks)
        return file.writeAll(joined)
      })
  }
  let position = start
  return (chunks) =>
    Effect.map(writevAll(fd, chunks, position), (end) => {
      position = end
      releaseAll(chunks)
    })
}
