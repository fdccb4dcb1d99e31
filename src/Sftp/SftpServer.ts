/**
 * The SFTP server: SFTP v3 and the OpenSSH extensions (posix-rename, statvfs,
 * fstatvfs, hardlink, fsync, lsetstat, limits, expand-path, copy-data,
 * home-directory, users-groups-by-id) over any backend (`Backend`): the disk
 * (`fileSystem`, a directory jailed with chroot semantics), memory
 * (`memory`), or your own.
 *
 * ```ts
 * yield* SshServer.serve({ port: 2222, hostKeys: [hostKey], auth: serverAuth, sftp: SftpServer.fileSystem({ root: "/srv/sftp" }) })
 * yield* SshServer.serve({ port: 2223, hostKeys: [hostKey], auth: serverAuth, sftp: SftpServer.memory({ maxBytes: 64 * 1024 * 1024 }) })
 * yield* SshServer.serve({ port: 2224, hostKeys: [hostKey], auth: serverAuth, sftp: SftpServer.make(SftpMemoryBackend.make()) }) // any SftpBackend.Backend
 * ```
 *
 * The protocol is the server's, whatever the backend: requests of a session
 * are processed one at a time, in order (so requests on the same file keep
 * their order), with replies coalesced into channel writes; the client
 * pipelines, so the channel stays busy. A malformed packet ends the session
 * with a `ProtocolError` (the channel closes, the SSH connection stays up); a
 * well-formed request of an unknown type or extension, or of an extension the
 * backend lacks, gets OP_UNSUPPORTED, and one carrying a number beyond
 * 2^53 - 1 (an offset or size no `number` can hold) gets FAILURE. A backend's
 * `SftpStatus` is the reply's status; anything else it fails or dies with is
 * FAILURE. `readOnly` refuses every change before the backend sees it, and
 * the umask is applied to the modes of OPEN and MKDIR.
 *
 * Resources are bounded for every backend: a READDIR reply carries at most
 * 100 entries, read from the backend a batch at a time (a handle never holds
 * a listing), and open handles are capped per session and per server
 * (`maxHandlesPerSession`, `maxHandles`; directories apart:
 * `maxDirectoryHandlesPerSession`, `maxDirectoryHandles`); an open over a cap
 * gets FAILURE and the session goes on.
 *
 * The disk backend holds directory descriptors, not paths (see
 * `internal/jailedFs`): every path is walked from the root one component at a
 * time, each opened relative to the directory held above it without
 * following links, and the operation acts on the last component relative to
 * its held directory. A concurrent swap of a directory for a symlink, by
 * another session or a local process, cannot lead an operation out of the
 * root. It needs Linux (`/proc/self/fd` and O_PATH); elsewhere a session
 * fails with `NotImplemented` saying so. Each handle is a file descriptor of
 * this process (a directory two), so its default caps leave descriptors for
 * new logins.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import * as Stream from "effect/Stream"
import type { ServerSession, SessionHandler } from "../Channel/ServerSession.ts"
import { type DiskOptions, diskBackend } from "../internal/diskBackend.ts"
import {
  DEFAULT_DIRECTORY_HANDLES,
  DEFAULT_DIRECTORY_HANDLES_PER_SESSION,
  DEFAULT_HANDLES_PER_SESSION,
  defaultServerHandles,
  HandleBudget
} from "../internal/handleBudget.ts"
import { allocate, discard, handOver, release } from "../internal/ownedBuffers.ts"
import { Outbox } from "../internal/sftpOutbox.ts"
import * as SshError from "../SshError.ts"
import type * as Attributes from "./Attributes.ts"
import type { DirectoryEntry, DirectoryHandle, FileHandle, Backend, BackendSource, SftpPeer } from "./Backend.ts"
import { longName, status } from "./Backend.ts"
import * as Extensions from "./Extensions.ts"
import { DEFAULT_MAX_PACKET_LENGTH, Framer, MAX_DATA_LENGTH } from "./Framer.ts"
import * as Jail from "./Jail.ts"
import * as MemoryBackend from "./MemoryBackend.ts"
import * as Messages from "./Messages.ts"
import * as Status from "./Status.ts"

export type { DirectoryEntry, DirectoryHandle, FileHandle, Backend, BackendSource, SftpPeer } from "./Backend.ts"

/** Options of the protocol layer, for every backend. */
export interface SftpProtocolOptions {
  /** Refuse every operation that would change anything (default false). */
  readonly readOnly?: boolean | undefined
  /**
   * Most handles (open files and directories) one session may hold (default 1024, what OpenSSH's sftp-server
   * allows at the usual descriptor limit of 1024). An OPEN or OPENDIR beyond it gets FAILURE; the session goes on.
   */
  readonly maxHandlesPerSession?: number | undefined
  /**
   * Most handles all sessions of this server (of one `make(...)` or `fileSystem(...)`) may hold together. On disk
   * each is a file descriptor of this one process (a directory handle two), which new logins need too, so the
   * default leaves a reserve: a quarter of the soft RLIMIT_NOFILE (read from /proc/self/limits, 1024 assumed if
   * unreadable), at least 256, and allows half of the rest (two descriptors a handle), between 16 and 16384: 7500
   * at a limit of 20000, 384 at 1024. An open beyond it gets FAILURE.
   */
  readonly maxHandles?: number | undefined
  /**
   * Most directory handles one session may hold (default 64; they count as handles too). A listing is read from
   * the directory a batch at a time, never held, but each open directory on disk keeps the C library's 32 KiB read
   * buffer and Node's entry buffer (~75 KiB of memory in all once read), so directories are capped apart from files.
   */
  readonly maxDirectoryHandlesPerSession?: number | undefined
  /** Most directory handles all sessions of this server may hold together (default 256: ~20 MiB on disk). */
  readonly maxDirectoryHandles?: number | undefined
  /** Permission bits removed from created files and directories (default 0o022). */
  readonly umask?: number | undefined
  /**
   * The window granted to each SFTP session's channel, for the client's WRITEs (default 8 MiB; the connection's
   * own, 2 MiB by default, if larger). An upload carries at most this much per round trip: 2 MiB, sshd's, caps a
   * 50 ms path at ~34 MB/s. It is also the most client data a session may have buffered, unprocessed.
   */
  readonly windowSize?: number | undefined
}

/** Options of an SFTP server on the disk (`fileSystem`): a root and the protocol's options. */
export interface SftpServerOptions extends SftpProtocolOptions, DiskOptions {}

/** Options of `serve` over a backend of your own. */
export interface BackendOptions extends SftpProtocolOptions {
  readonly backend: BackendSource
}

const DEFAULT_WINDOW = 8 * 1024 * 1024
const DEFAULT_UMASK = 0o022
/** Entries per READDIR reply (OpenSSH sends up to 100). */
const READDIR_BATCH = 100
const COPY_BUFFER = MAX_DATA_LENGTH
/** How long a closing session waits for its last replies to be sent. */
const FLUSH_TIMEOUT = "5 seconds"

const { StatusCode } = Status
const ok = (id: number): Messages.Status => Status.make(id, StatusCode.Ok)

const refuse = (code: number, message?: string): Effect.Effect<never, SshError.SftpStatus> => Effect.fail(status(code, message))

/** Refuses an offset + length past what a `number` offset can address. */
const checkSpan = (offset: number, length: number, what: string): Effect.Effect<void, SshError.SftpStatus> =>
  offset + length > Number.MAX_SAFE_INTEGER
    ? refuse(StatusCode.Failure, `${what} exceeds 2^53-1, more than this server can address`)
    : Effect.void

const unsupported = (name: string): Effect.Effect<never, SshError.SftpStatus> =>
  refuse(StatusCode.OpUnsupported, `unsupported extension "${name}"`)

/**
 * The v3 code for each code of the later drafts a backend may fail with (a v3 client knows only 0..8), as
 * OpenSSH's sftp-server maps the errno behind each; the message, the later code's unless the backend gave one,
 * still says what happened ("No space on file system").
 */
const VERSION_3_CODES: Readonly<Record<number, number>> = {
  [StatusCode.NoSuchPath]: StatusCode.NoSuchFile,
  [StatusCode.NotADirectory]: StatusCode.NoSuchFile,
  [StatusCode.LinkLoop]: StatusCode.NoSuchFile,
  [StatusCode.WriteProtect]: StatusCode.PermissionDenied,
  [StatusCode.CannotDelete]: StatusCode.PermissionDenied,
  [StatusCode.InvalidFilename]: StatusCode.BadMessage,
  [StatusCode.InvalidParameter]: StatusCode.BadMessage
}

/** A failure's code as a v3 reply carries it (a failure is never OK, nor a number no draft defines). */
const version3Code = (code: number): number =>
  Number.isInteger(code) && code > StatusCode.Ok && code <= StatusCode.OpUnsupported ? code : VERSION_3_CODES[code] ?? StatusCode.Failure

/** A backend's status as the reply's; anything that is not a status (a backend outside the types) is FAILURE. */
const statusReply = (id: number, e: unknown): Messages.Status =>
  e instanceof SshError.SftpStatus ? Status.make(id, version3Code(e.code), e.message) : Status.make(id, StatusCode.Failure)

/** The extensions a backend supports, as VERSION advertises them: the server's own, and those it implements. */
const extensionsOf = (backend: Backend): ReadonlyArray<Messages.ExtensionPair> => {
  const { ExtensionName } = Extensions
  const lacking = new Set<string>([
    ...(backend.posixRename === undefined ? [ExtensionName.PosixRename] : []),
    ...(backend.statvfs === undefined ? [ExtensionName.StatVfs, ExtensionName.FstatVfs] : []),
    ...(backend.hardlink === undefined ? [ExtensionName.Hardlink] : []),
    ...(backend.lsetstat === undefined ? [ExtensionName.Lsetstat] : [])
  ])
  return Extensions.OPENSSH_EXTENSIONS.filter((extension) => !lacking.has(extension.name))
}

// ---------------------------------------------------------------------------------------------------------------
// Session
// ---------------------------------------------------------------------------------------------------------------

interface OpenFile {
  readonly _tag: "File"
  readonly handle: FileHandle
  readonly writable: boolean
}

interface OpenDirectory {
  readonly _tag: "Directory"
  readonly handle: DirectoryHandle
  /** Entries a backend gave beyond a reply's worth, for the next READDIR. */
  pending: ReadonlyArray<DirectoryEntry>
}

type OpenHandle = OpenFile | OpenDirectory

const HANDLE_BYTES = 4

const handleBytes = (n: number): Uint8Array => {
  const bytes = new Uint8Array(HANDLE_BYTES)
  new DataView(bytes.buffer).setUint32(0, n)
  return bytes
}

const handleNumber = (handle: Uint8Array): number | undefined =>
  handle.length === HANDLE_BYTES ? new DataView(handle.buffer, handle.byteOffset, HANDLE_BYTES).getUint32(0) : undefined

const MUTATING_OPEN = Messages.OpenFlags.Write | Messages.OpenFlags.Append | Messages.OpenFlags.Create |
  Messages.OpenFlags.Truncate

/** A reply encoded by the session itself (a DATA reply built around the block it read), sent as it is. */
class EncodedReply {
  readonly bytes: Uint8Array
  constructor(bytes: Uint8Array) {
    this.bytes = bytes
  }
}

type Reply = Messages.SftpResponse | EncodedReply

/** The handle caps of one server: budgets its sessions share, and what each session may hold. */
interface SharedLimits {
  readonly handles: HandleBudget
  readonly directories: HandleBudget
  readonly perSession: number
  readonly directoriesPerSession: number
}

const sharedLimits = (options: SftpProtocolOptions): SharedLimits => ({
  handles: new HandleBudget(options.maxHandles ?? defaultServerHandles()),
  directories: new HandleBudget(options.maxDirectoryHandles ?? DEFAULT_DIRECTORY_HANDLES),
  perSession: options.maxHandlesPerSession ?? DEFAULT_HANDLES_PER_SESSION,
  directoriesPerSession: options.maxDirectoryHandlesPerSession ?? DEFAULT_DIRECTORY_HANDLES_PER_SESSION
})

/** One SFTP session: its handle table and the answer to each request, over its backend. */
interface SftpSession {
  /** Answers one request (one at a time); every failure becomes a STATUS. */
  readonly answer: (request: Messages.SftpRequest) => Effect.Effect<Reply>
  /** Closes every handle once the request being answered has settled (the session's end). */
  readonly closeAll: Effect.Effect<void>
}

const makeSession = (backend: Backend, limits: SharedLimits, options: SftpProtocolOptions, peer: SftpPeer): SftpSession => {
  const handles = new Map<number, OpenHandle>()
  /** How many of `handles` (and of reservations in progress) are directories. */
  let directories = 0
  let nextHandle = 1
  let closed = false
  /** Held while a request is answered: the session ends only once it has settled. */
  const answering = Semaphore.makeUnsafe(1)
  const readOnly = options.readOnly ?? false
  const umask = options.umask ?? DEFAULT_UMASK

  const writable: Effect.Effect<void, SshError.SftpStatus> = Effect.suspend(() =>
    readOnly ? refuse(StatusCode.PermissionDenied, "read-only file system") : Effect.void
  )

  const lookup = (handle: Uint8Array): Effect.Effect<OpenHandle, SshError.SftpStatus> => {
    const n = handleNumber(handle)
    const entry = n === undefined ? undefined : handles.get(n)
    return entry === undefined ? refuse(StatusCode.Failure, "invalid handle") : Effect.succeed(entry)
  }

  const fileOf = (handle: Uint8Array): Effect.Effect<OpenFile, SshError.SftpStatus> =>
    Effect.flatMap(lookup(handle), (entry) => entry._tag === "File" ? Effect.succeed(entry) : refuse(StatusCode.Failure, "not a file handle"))

  const directoryOf = (handle: Uint8Array): Effect.Effect<OpenDirectory, SshError.SftpStatus> =>
    Effect.flatMap(lookup(handle), (entry) =>
      entry._tag === "Directory" ? Effect.succeed(entry) : refuse(StatusCode.Failure, "not a directory handle"))

  /** Takes a handle from the session's and the server's caps before anything is opened; the refusal if it cannot. */
  const reserve = (kind: OpenHandle["_tag"]): SshError.SftpStatus | undefined => {
    if (handles.size >= limits.perSession) {
      return status(StatusCode.Failure, `too many open handles: a session may hold ${limits.perSession}; close some first`)
    }
    if (kind === "Directory" && directories >= limits.directoriesPerSession) {
      return status(StatusCode.Failure, `too many open directories: a session may hold ${limits.directoriesPerSession}; close some first`)
    }
    if (!limits.handles.take()) return status(StatusCode.Failure, `too many open handles on this server (${limits.handles.limit}); try again later`)
    if (kind === "Directory" && !limits.directories.take()) {
      limits.handles.give()
      return status(StatusCode.Failure, `too many open directories on this server (${limits.directories.limit}); try again later`)
    }
    if (kind === "Directory") directories++
    return undefined
  }

  /** Gives a handle back to the caps it was taken from. */
  const unreserve = (kind: OpenHandle["_tag"]): void => {
    limits.handles.give()
    if (kind === "Directory") {
      limits.directories.give()
      directories--
    }
  }

  /** Closes a handle and gives it back to the caps. */
  const releaseHandle = (entry: OpenHandle): Effect.Effect<void, SshError.SftpStatus> =>
    Effect.suspend(() => {
      unreserve(entry._tag)
      return entry.handle.close
    })

  const register = (entry: OpenHandle): Uint8Array => {
    while (handles.has(nextHandle)) nextHandle = (nextHandle + 1) >>> 0
    const n = nextHandle
    nextHandle = (nextHandle + 1) >>> 0
    handles.set(n, entry)
    return handleBytes(n)
  }

  /** Opens what `open` gives under a reserved handle; the reservation is returned if it fails. */
  const withHandle = (kind: OpenHandle["_tag"], open: Effect.Effect<OpenHandle, SshError.SftpStatus>) =>
    Effect.suspend(() => {
      const refused = reserve(kind)
      if (refused !== undefined) return Effect.fail(refused)
      return open.pipe(
        Effect.onError(() => Effect.sync(() => unreserve(kind))),
        Effect.flatMap((entry) =>
          closed ? Effect.andThen(Effect.exit(releaseHandle(entry)), refuse(StatusCode.Failure, "session closed")) : Effect.sync(() => register(entry))
        )
      )
    })

  const nameReply = (id: number, filename: string): Messages.Name => ({
    _tag: "Name",
    id,
    entries: [{ filename, longname: filename, attrs: {} }]
  })

  const homeOf = (username: string): Effect.Effect<Jail.VirtualPath, SshError.SftpStatus> =>
    username === "" || username === peer.user ? Effect.succeed(Jail.ROOT) : refuse(StatusCode.NoSuchFile, "unknown user")

  /** Expands "~" and "~user" (home is "/"), for expand-path@openssh.com. */
  const expandTilde = (path: string): Effect.Effect<string, SshError.SftpStatus> => {
    if (!path.startsWith("~")) return Effect.succeed(path)
    const slash = path.indexOf("/")
    const user = slash < 0 ? path.slice(1) : path.slice(1, slash)
    const rest = slash < 0 ? "" : path.slice(slash)
    return Effect.map(homeOf(user), (home) => home + rest)
  }

  const realpath = (id: number, path: string) => Effect.map(backend.realpath(path === "" ? "." : path), (resolved) => nameReply(id, resolved))

  const done = <E>(id: number, effect: Effect.Effect<unknown, E>): Effect.Effect<Messages.SftpResponse, E> => Effect.as(effect, ok(id))

  const open = (r: Messages.Open) => {
    const attrs: Attributes.Attributes = { ...r.attrs, permissions: (r.attrs.permissions ?? 0o666) & 0o7777 & ~umask }
    const handleWritable = (r.pflags & (Messages.OpenFlags.Write | Messages.OpenFlags.Append)) !== 0
    const opened = withHandle("File", Effect.map(backend.open(r.path, r.pflags, attrs), (handle) => ({ _tag: "File", handle, writable: handleWritable })))
    return Effect.map(
      r.pflags & MUTATING_OPEN ? Effect.andThen(writable, opened) : opened,
      (handle): Messages.SftpResponse => ({ _tag: "Handle", id: r.id, handle })
    )
  }

  const close = (r: Messages.Close) =>
    Effect.flatMap(lookup(r.handle), (entry) => {
      handles.delete(handleNumber(r.handle)!)
      return done(r.id, releaseHandle(entry))
    })

  /** Reads the block straight into its DATA reply, already encoded: the block is never copied. */
  const read = (r: Messages.Read) =>
    Effect.flatMap(fileOf(r.handle), ({ handle }) => {
      const length = Math.min(r.length, MAX_DATA_LENGTH)
      return Effect.andThen(checkSpan(r.offset, length, "offset + length"), () => {
        // Every byte sent is written first (header below, data by the read): no need to zero it. The library's own
        // memory (ownedBuffers), which the outbox of `fileSystem` frees once the reply is sealed (a short read's too).
        const memory = allocate(Messages.DATA_HEADER_LENGTH + length)
        return handle.read(r.offset, memory.subarray(Messages.DATA_HEADER_LENGTH)).pipe(
          Effect.flatMap((bytesRead): Effect.Effect<Reply, SshError.SftpStatus> => {
            if (!Number.isInteger(bytesRead) || bytesRead < 0 || bytesRead > length) {
              return refuse(StatusCode.Failure, "the backend read a block of an impossible length")
            }
            if (bytesRead === 0 && r.length > 0) {
              release(memory)
              return Effect.succeed(Status.make(r.id, StatusCode.Eof))
            }
            const packet = memory.subarray(0, Messages.DATA_HEADER_LENGTH + bytesRead)
            Messages.writeDataHeader(packet, r.id, bytesRead)
            return Effect.succeed(new EncodedReply(packet))
          }),
          Effect.onError(() => Effect.sync(() => release(memory)))
        )
      })
    })

  const write = (r: Messages.Write) =>
    Effect.flatMap(fileOf(r.handle), (entry) =>
      entry.writable
        ? done(r.id, Effect.andThen(checkSpan(r.offset, r.data.length, "offset + length"), entry.handle.write(r.offset, r.data)))
        : refuse(StatusCode.PermissionDenied, "file not open for writing"))

  const attrsReply = (id: number) => (attrs: Attributes.Attributes): Messages.SftpResponse => ({ _tag: "Attrs", id, attrs })

  /** The next batch of entries, at most READDIR_BATCH: read from the backend now, never kept. */
  const readdir = (r: Messages.Readdir) =>
    Effect.flatMap(directoryOf(r.handle), (dir) => {
      const batch = dir.pending.length > 0 ? Effect.succeed(dir.pending) : dir.handle.read(READDIR_BATCH)
      return Effect.map(batch, (entries): Messages.SftpResponse => {
        dir.pending = entries.length > READDIR_BATCH ? entries.slice(READDIR_BATCH) : []
        if (entries.length === 0) return Status.make(r.id, StatusCode.Eof)
        const now = Date.now()
        return {
          _tag: "Name",
          id: r.id,
          entries: entries.slice(0, READDIR_BATCH).map((entry) => ({
            filename: entry.filename,
            longname: entry.longname ?? longName(entry.filename, entry.attrs, 1, now),
            attrs: entry.attrs
          }))
        }
      })
    })

  const statvfsReply = (id: number) => (stats: Extensions.VfsStats): Messages.SftpResponse => ({
    _tag: "ExtendedReply",
    id,
    data: Extensions.encodeVfsStats(readOnly ? { ...stats, flag: stats.flag | Extensions.VfsFlag.ReadOnly } : stats)
  })

  const copyData = (r: Extensions.CopyData) =>
    Effect.gen(function*() {
      yield* writable
      const from = yield* fileOf(r.readHandle)
      const to = yield* fileOf(r.writeHandle)
      if (!to.writable) return yield* refuse(StatusCode.PermissionDenied, "destination not open for writing")
      yield* checkSpan(r.readOffset, r.readLength, "read-from-offset + read-data-length")
      yield* checkSpan(r.writeOffset, r.readLength, "write-to-offset + read-data-length")
      const buffer = new Uint8Array(COPY_BUFFER)
      const limit = r.readLength === 0 ? Number.MAX_SAFE_INTEGER - Math.max(r.readOffset, r.writeOffset) : r.readLength
      let copied = 0
      while (copied < limit) {
        const want = Math.min(buffer.length, limit - copied)
        const bytesRead = yield* from.handle.read(r.readOffset + copied, buffer.subarray(0, want))
        if (bytesRead <= 0) break
        yield* to.handle.write(r.writeOffset + copied, buffer.subarray(0, Math.min(bytesRead, want)))
        copied += Math.min(bytesRead, want)
      }
      if (r.readLength !== 0 && copied < r.readLength) return yield* refuse(StatusCode.Eof)
      return ok(r.id)
    })

  const usersGroupsById = (r: Extensions.UsersGroupsById) =>
    Effect.map(
      backend.usersGroupsById?.(r.uids, r.gids) ?? Effect.succeed({ usernames: r.uids.map(() => ""), groupnames: r.gids.map(() => "") }),
      (names): Messages.SftpResponse => ({ _tag: "ExtendedReply", id: r.id, data: Extensions.encodeUserGroupNames(names) })
    )

  const dispatch = (r: Messages.SftpRequest): Effect.Effect<Reply, SshError.SftpStatus> => {
    const { ExtensionName } = Extensions
    switch (r._tag) {
      case "Open":
        return open(r)
      case "Close":
        return close(r)
      case "Read":
        return read(r)
      case "Write":
        return write(r)
      case "Lstat":
        return Effect.map(backend.lstat(r.path), attrsReply(r.id))
      case "Stat":
        return Effect.map(backend.stat(r.path), attrsReply(r.id))
      case "Fstat":
        return Effect.flatMap(lookup(r.handle), (entry) => Effect.map(entry.handle.stat, attrsReply(r.id)))
      case "Setstat":
        return done(r.id, Effect.andThen(writable, backend.setstat(r.path, r.attrs)))
      case "Fsetstat":
        return done(r.id, Effect.andThen(writable, Effect.flatMap(lookup(r.handle), (entry) => entry.handle.setstat(r.attrs))))
      case "Opendir":
        return Effect.map(
          withHandle("Directory", Effect.map(backend.opendir(r.path), (handle) => ({ _tag: "Directory", handle, pending: [] }))),
          (handle): Messages.SftpResponse => ({ _tag: "Handle", id: r.id, handle })
        )
      case "Readdir":
        return readdir(r)
      case "Remove":
        return done(r.id, Effect.andThen(writable, backend.remove(r.path)))
      case "Mkdir":
        return done(
          r.id,
          Effect.andThen(writable, backend.mkdir(r.path, { ...r.attrs, permissions: (r.attrs.permissions ?? 0o777) & 0o7777 & ~umask }))
        )
      case "Rmdir":
        return done(r.id, Effect.andThen(writable, backend.rmdir(r.path)))
      case "Realpath":
        return realpath(r.id, r.path)
      case "Rename":
        return done(r.id, Effect.andThen(writable, backend.rename(r.oldPath, r.newPath)))
      case "Readlink":
        return Effect.map(backend.readlink(r.path), (target) => nameReply(r.id, target))
      case "Symlink":
        return done(
          r.id,
          Effect.andThen(
            writable,
            r.targetPath.includes("\0") ? refuse(StatusCode.BadMessage, "target contains a NUL byte") : backend.symlink(r.targetPath, r.linkPath)
          )
        )
      case "PosixRename":
        return backend.posixRename === undefined
          ? unsupported(ExtensionName.PosixRename)
          : done(r.id, Effect.andThen(writable, backend.posixRename(r.oldPath, r.newPath)))
      case "StatVfs":
        return backend.statvfs === undefined ? unsupported(ExtensionName.StatVfs) : Effect.map(backend.statvfs(r.path), statvfsReply(r.id))
      case "FstatVfs":
        return Effect.flatMap(lookup(r.handle), (entry) =>
          entry.handle.statvfs === undefined ? unsupported(ExtensionName.FstatVfs) : Effect.map(entry.handle.statvfs, statvfsReply(r.id)))
      case "Hardlink":
        return backend.hardlink === undefined
          ? unsupported(ExtensionName.Hardlink)
          : done(r.id, Effect.andThen(writable, backend.hardlink(r.oldPath, r.newPath)))
      case "Fsync":
        // a backend whose files have nothing to flush has them on stable storage as much as they will ever be
        return Effect.flatMap(fileOf(r.handle), (entry) => done(r.id, entry.handle.sync ?? Effect.void))
      case "Lsetstat":
        return backend.lsetstat === undefined
          ? unsupported(ExtensionName.Lsetstat)
          : done(r.id, Effect.andThen(writable, backend.lsetstat(r.path, r.attrs)))
      case "Limits":
        return Effect.succeed({
          _tag: "ExtendedReply",
          id: r.id,
          data: Extensions.encodeLimits({
            maxPacketLength: DEFAULT_MAX_PACKET_LENGTH,
            maxReadLength: MAX_DATA_LENGTH,
            maxWriteLength: MAX_DATA_LENGTH,
            maxOpenHandles: Math.min(limits.perSession, limits.handles.limit)
          })
        })
      case "ExpandPath":
        return Effect.flatMap(expandTilde(r.path), (path) => realpath(r.id, path))
      case "CopyData":
        return copyData(r)
      case "HomeDirectory":
        return Effect.map(homeOf(r.username), (home) => nameReply(r.id, home))
      case "UsersGroupsById":
        return usersGroupsById(r)
      case "Extended":
        return Effect.succeed(Status.make(r.id, StatusCode.OpUnsupported, `unsupported extension "${r.request}"`))
    }
  }

  const answer = (request: Messages.SftpRequest): Effect.Effect<Reply> =>
    Effect.suspend(() => closed ? refuse(StatusCode.Failure, "session closed") : dispatch(request)).pipe(
      Effect.catch((e) => Effect.succeed(statusReply(request.id, e))),
      Effect.catchDefect(() => Effect.succeed(Status.make(request.id, StatusCode.Failure))),
      // once started an operation runs to its end (a file opened is then in the table, closed with the session)
      Effect.uninterruptible,
      answering.withPermit
    )

  const closeAll = answering.withPermit(Effect.suspend(() => {
    closed = true
    const entries = [...handles.values()]
    handles.clear()
    return Effect.forEach(entries, (entry) => Effect.exit(releaseHandle(entry)), { concurrency: "unbounded", discard: true })
  }))

  return { answer, closeAll }
}

// ---------------------------------------------------------------------------------------------------------------
// Protocol loop
// ---------------------------------------------------------------------------------------------------------------

const protocolError = (message: string) => SshError.make(new SshError.ProtocolError({ message }))

const knownTypes: ReadonlySet<number> = new Set(Object.values(Messages.PacketType))

const isBackendOptions = (options: SftpServerOptions | BackendOptions): options is BackendOptions => "backend" in options

/**
 * Serves one SFTP session over any byte stream: `input` is what the client
 * sends, `write` sends our bytes; `options` name a root on disk (as for
 * `fileSystem`) or a `backend`. Ends when the input ends; fails with a
 * `ProtocolError` on a malformed packet (the caller closes the channel).
 *
 * @example
 * ```ts
 * yield* SftpServer.serve(session.stdin, (bytes) => session.write(bytes), { root: "/srv/sftp" }, { user: session.user })
 * const requests = Stream.empty // the client's bytes
 * yield* SftpServer.serve(requests, (bytes) => Effect.log(`${bytes.length} bytes out`), { backend: SftpMemoryBackend.make() }, { user: "alice" })
 * ```
 */
export const serve = (
  input: Stream.Stream<Uint8Array, SshError.SshError>,
  write: (bytes: Uint8Array) => Effect.Effect<void, SshError.SshError>,
  options: SftpServerOptions | BackendOptions,
  peer: SftpPeer
): Effect.Effect<void, SshError.SshError, Scope.Scope> =>
  serveWith(
    (f) => Stream.runForEachArray(input, f),
    write,
    isBackendOptions(options) ? options.backend : fileSystemBackend(options),
    options,
    peer,
    false,
    sharedLimits(options)
  )

/** Drains the client's bytes, lending each batch to `f` for the duration of its effect. */
type Consume = (f: (chunks: ReadonlyArray<Uint8Array>) => Effect.Effect<void, SshError.SshError>) => Effect.Effect<void, SshError.SshError>

/**
 * `serve`. With `owned` the input is lent (`SshChannel.borrowStdout`: each batch freed once handled) and
 * `write` is done with its bytes when it completes (`ServerSession.write`), so the buffers a request arrived in
 * and each encoded reply (a DATA reply with the file block read into it) are freed as soon as they are finished
 * with, rather than left to V8's collections, which cost as much as the rest of an upload when they ran.
 */
const serveWith = (
  consume: Consume,
  write: (bytes: Uint8Array) => Effect.Effect<void, SshError.SshError>,
  source: BackendSource,
  options: SftpProtocolOptions,
  peer: SftpPeer,
  owned: boolean,
  limits: SharedLimits
): Effect.Effect<void, SshError.SshError, Scope.Scope> =>
  Effect.gen(function*() {
    // a backend made for the session is released after its handles (finalizers run last added first)
    const backend = typeof source === "function" ? yield* source(peer) : source
    const session = makeSession(backend, limits, options, peer)
    yield* Effect.addFinalizer(() => session.closeAll)
    const extensions = extensionsOf(backend)
    // a caller's `write` may keep what it is given: every reply is handed over to it
    const outbox = new Outbox(owned ? write : (bytes) => write(handOver(bytes)), { freeWritten: owned })
    yield* Effect.forkScoped(Effect.ignore(outbox.run))
    const framer = new Framer({ maxPacketLength: DEFAULT_MAX_PACKET_LENGTH })
    let initialized = false

    const reply = (packet: Messages.SftpPacket | EncodedReply) =>
      outbox.send(packet instanceof EncodedReply ? packet.bytes : Messages.encode(packet))

    const onPacket = (body: Uint8Array): Effect.Effect<Messages.SftpPacket | undefined, SshError.SshError> => {
      const type = body[0]!
      if (!knownTypes.has(type)) {
        // A request of a type we do not know, but with an id: the draft says answer OP_UNSUPPORTED.
        if (!initialized || body.length < 5) return Effect.fail(protocolError(`unknown SFTP packet type ${type}`))
        const id = new DataView(body.buffer, body.byteOffset, body.byteLength).getUint32(1)
        return Effect.as(reply(Status.make(id, StatusCode.OpUnsupported)), undefined)
      }
      let packet: Messages.SftpPacket | Messages.Unrepresentable
      try {
        packet = Messages.decodeRequest(body)
      } catch (e) {
        return Effect.fail(SshError.fromUnknown(e))
      }
      if (packet._tag === "Unrepresentable") {
        if (!initialized) return Effect.fail(protocolError("SFTP request before INIT"))
        return Effect.as(reply(Status.make(packet.id, StatusCode.Failure, packet.message)), undefined)
      }
      if (packet._tag === "Init") {
        if (initialized) return Effect.fail(protocolError("second SFTP INIT"))
        initialized = true
        return Effect.as(reply({ _tag: "Version", version: Messages.SFTP_VERSION, extensions }), packet)
      }
      if (!initialized) return Effect.fail(protocolError(`SFTP ${packet._tag} before INIT`))
      if (!Messages.isRequest(packet)) return Effect.fail(protocolError(`a client sent an SFTP ${packet._tag} packet`))
      const request = packet
      return Effect.as(Effect.flatMap(session.answer(request), reply), packet)
    }

    // Once a request is answered: a WRITE's data is in the file, so a body the framer assembled for it (memory of
    // its own, which only the session saw) is freed; any other request may have left views of its body in the
    // session (a handle, a name), so the memory under a body that is a view of a lent chunk is handed over, never
    // freed under them.
    const settle = (body: Uint8Array, chunks: ReadonlyArray<Uint8Array>, packet: Messages.SftpPacket | undefined) => {
      const assembled = !chunks.some((chunk) => chunk.buffer === body.buffer)
      if (packet?._tag === "Write") {
        if (assembled) discard(body)
      } else if (!assembled) handOver(body)
    }

    const requests = consume((chunks) =>
      Effect.suspend(() => {
        const bodies: Array<Uint8Array> = []
        try {
          for (const chunk of chunks) bodies.push(...framer.push(chunk))
        } catch (e) {
          return Effect.fail(SshError.fromUnknown(e))
        }
        return Effect.forEach(bodies, (body) =>
          owned ? Effect.map(onPacket(body), (packet) => settle(body, chunks, packet)) : onPacket(body), { discard: true })
      }))
    // Let the replies out before the channel closes, even after a malformed packet (bounded: the client may not read).
    yield* Effect.ensuring(requests, Effect.ignore(Effect.timeout(outbox.drained, FLUSH_TIMEOUT)))
  })

/**
 * The "sftp" subsystem handler serving a backend; pass it to
 * `SshServer.serve({ sftp })` (or `session.subsystems.sftp`). The handle caps
 * are shared by the sessions of one handler.
 *
 * @example
 * ```ts
 * const backend = SftpMemoryBackend.make({ maxBytes: 16 * 1024 * 1024 })
 * yield* SshServer.serve({ port: 0, hostKeys: [hostKey], auth: serverAuth, sftp: SftpServer.make(backend, { umask: 0o077 }) })
 * ```
 */
export const make = (backend: BackendSource, options: SftpProtocolOptions = {}): SessionHandler<void> => {
  const limits = sharedLimits(options)
  return (session: ServerSession) =>
    Effect.andThen(
      session.channel.growWindow(options.windowSize ?? DEFAULT_WINDOW),
      // a session's write is the channel's, which has sealed (copied) the bytes when it completes
      Effect.as(serveWith(session.channel.borrowStdout, (bytes) => session.write(bytes), backend, options, { user: session.user }, true, limits), 0)
    )
}

/**
 * The jailed disk backend: `options.root` served as "/", held by each
 * session from its start (its symlinks resolved then) to its end. For
 * `make`, when you wrap it (to log, to add quotas) rather than serve it as it
 * is with `fileSystem`.
 *
 * @example
 * ```ts
 * const disk = SftpServer.fileSystemBackend({ root: "/srv/sftp" })
 * const sftp = SftpServer.make((peer) => Effect.map(disk(peer), (backend) => ({ ...backend, remove: () => SftpBackend.fail(SftpStatusCode.StatusCode.PermissionDenied) })))
 * ```
 */
export const fileSystemBackend = (options: DiskOptions): (peer: SftpPeer) => Effect.Effect<Backend, SshError.SshError, Scope.Scope> =>
  diskBackend(options)

/**
 * The "sftp" subsystem handler serving `options.root` (`make` over
 * `fileSystemBackend`); pass it to `SshServer.serve({ sftp })` (or
 * `session.subsystems.sftp`).
 *
 * @example
 * ```ts
 * yield* SshServer.serve({ port: 0, hostKeys: [hostKey], auth: serverAuth, sftp: SftpServer.fileSystem({ root: "/srv/sftp", readOnly: true }) })
 * ```
 */
export const fileSystem = (options: SftpServerOptions): SessionHandler<void> => make(fileSystemBackend(options), options)

/** Options of `memory`: the memory backend's and the protocol's. */
export interface SftpMemoryOptions extends SftpProtocolOptions, MemoryBackend.MemoryOptions {}

/**
 * The "sftp" subsystem handler serving a tree held in memory (`make` over a
 * fresh `MemoryBackend`): directories, files, links, modes and times, bounded
 * by `maxBytes`, seeded with `files`; every session of the server sees the
 * same tree, gone with it. To look at what clients left in it, make the
 * backend yourself (`MemoryBackend.make`) and serve it with `make`.
 *
 * @example
 * ```ts
 * const sftp = SftpServer.memory({ maxBytes: 1024 * 1024, files: { "/motd.txt": "hello\n" } })
 * yield* SshServer.serve({ port: 0, hostKeys: [hostKey], auth: serverAuth, sftp })
 * ```
 */
export const memory = (options: SftpMemoryOptions = {}): SessionHandler<void> => make(MemoryBackend.make(options), options)
