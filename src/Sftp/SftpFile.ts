/**
 * A remote file open through SFTP, with a position, like a local file:
 * `read(n)`, `readAll`, `write`, `seek`, `tell`, `stat`, `truncate`, `sync`
 * (pyssh's `SftpFile`, paramiko's `SFTPFile`). `sftp.open(path, mode)` returns
 * one as a scoped resource: CLOSE is sent when the scope closes (or at an
 * explicit `close`, after which every operation fails).
 *
 * Large reads and writes are pipelined (many requests in flight). Operations
 * on one file run one at a time, so the position stays consistent when
 * several fibers share it.
 *
 * @example
 * ```ts
 * const file = yield* sftp.open("/etc/hosts", "r")
 * const head = yield* file.read(100)
 * yield* file.seek(0)
 * const all = yield* file.readAll
 * ```
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Semaphore from "effect/Semaphore"
import * as Stream from "effect/Stream"
import { concat } from "../internal/bytes.ts"
import * as SshError from "../SshError.ts"
import type * as Attributes from "./Attributes.ts"
import type { SftpClient } from "./SftpClient.ts"
import * as Status from "./Status.ts"
import * as Transfer from "./Transfer.ts"

/** Where `seek` counts from. */
export type Whence = "start" | "current" | "end"

/**
 * An open remote file.
 *
 * @example
 * ```ts
 * const file = yield* sftp.open("/tmp/log", "a")
 * yield* file.write("one more line\n")
 * ```
 */
export interface SftpFile {
  readonly path: string
  /** The server's handle (valid until the file is closed). */
  readonly handle: Uint8Array
  /** Reads up to `n` bytes from the position and advances it; fewer at end of file, none after it. */
  readonly read: (n: number) => Effect.Effect<Uint8Array, SshError.SshError>
  /** Reads from the position to end of file. */
  readonly readAll: Effect.Effect<Uint8Array, SshError.SshError>
  /** Writes at the position (text as UTF-8) and advances it. In append mode the server writes at the end. */
  readonly write: (data: Uint8Array | string) => Effect.Effect<void, SshError.SshError>
  /** Moves the position; "end" asks the server for the size. Returns the new position. */
  readonly seek: (offset: number, whence?: Whence) => Effect.Effect<number, SshError.SshError>
  /** The current position. */
  readonly tell: Effect.Effect<number>
  readonly stat: Effect.Effect<Attributes.Attributes, SshError.SshError>
  readonly setstat: (attrs: Attributes.Attributes) => Effect.Effect<void, SshError.SshError>
  /** Sets the size (default: the current position). */
  readonly truncate: (size?: number) => Effect.Effect<void, SshError.SshError>
  /** Flushes the server's copy to disk (fsync@openssh.com). */
  readonly sync: Effect.Effect<void, SshError.SshError>
  /** The rest of the file from the position as a Stream (does not move the position); the chunks are the consumer's. */
  readonly stream: (options?: Transfer.PipelineOptions) => Stream.Stream<Uint8Array, SshError.SshError>
  /** Closes the handle; later operations fail. Idempotent (the scope calls it too). */
  readonly close: Effect.Effect<void, SshError.SshError>
}

const textEncoder = new TextEncoder()

/**
 * Wraps an open handle. `sftp.open` is the usual way to get one; this is for
 * handles obtained with `openHandle` (the caller then owns the close).
 *
 * @example
 * ```ts
 * const handle = yield* sftp.openHandle("/tmp/x", "r")
 * const file = SftpFile.make(sftp, handle, "/tmp/x")
 * ```
 */
export const make = (client: SftpClient, handle: Uint8Array, path: string): SftpFile => {
  const lock = Semaphore.makeUnsafe(1)
  let position = 0
  let closed = false

  const guard = <A>(effect: Effect.Effect<A, SshError.SshError>): Effect.Effect<A, SshError.SshError> =>
    lock.withPermit(Effect.suspend(() =>
      closed
        ? Effect.fail(SshError.make(new SshError.SftpStatus({ code: Status.StatusCode.Failure, message: "the file is closed", path })))
        : effect
    ))

  const readFrom = (length: number | undefined) =>
    Effect.map(
      Stream.runCollect(Transfer.readHandle(client, handle, { offset: position, length, path })),
      (chunks) => {
        const data = concat(chunks)
        position += data.length
        return data
      }
    )

  const stat = guard(client.fstat(handle))

  return {
    path,
    handle,
    read: (n) => guard(Effect.suspend(() => n <= 0 ? Effect.succeed(new Uint8Array(0)) : readFrom(n))),
    readAll: guard(Effect.suspend(() => readFrom(undefined))),
    write: (data) =>
      guard(Effect.suspend(() => {
        const bytes = typeof data === "string" ? textEncoder.encode(data) : data
        const writer = new Transfer.HandleWriter(client, handle, position, { path })
        return Effect.andThen(writer.write(bytes), writer.flush).pipe(Effect.tap(() =>
          Effect.sync(() => {
            position += bytes.length
          })
        ))
      })),
    seek: (offset, whence = "start") =>
      guard(Effect.suspend(() => {
        const base = whence === "start"
          ? Effect.succeed(0)
          : whence === "current"
          ? Effect.succeed(position)
          : Effect.map(client.fstat(handle), (attrs) => attrs.size ?? 0)
        return Effect.flatMap(base, (from) => {
          const target = from + offset
          if (!Number.isSafeInteger(target) || target < 0) {
            return Effect.fail(SshError.make(new SshError.SftpStatus({ code: Status.StatusCode.BadMessage, message: `cannot seek to ${target}`, path })))
          }
          position = target
          return Effect.succeed(target)
        })
      })),
    tell: Effect.sync(() => position),
    stat,
    setstat: (attrs) => guard(client.fsetstat(handle, attrs)),
    truncate: (size) => guard(Effect.suspend(() => client.fsetstat(handle, { size: size ?? position }))),
    sync: guard(client.fsync(handle)),
    stream: (options) => Stream.suspend(() => Transfer.readHandle(client, handle, { ...options, offset: position, path })),
    close: lock.withPermit(Effect.suspend(() => {
      if (closed) return Effect.void
      closed = true
      return client.close(handle)
    }))
  }
}
