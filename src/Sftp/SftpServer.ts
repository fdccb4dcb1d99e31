/**
 * The SFTP server: serves the "sftp" subsystem from a directory, jailed to it
 * with chroot semantics (see `Jail`), optionally read-only, with every SFTP
 * v3 operation and the OpenSSH extensions (posix-rename, statvfs, fstatvfs,
 * hardlink, fsync, lsetstat, limits, expand-path, copy-data, home-directory,
 * users-groups-by-id).
 *
 * ```ts
 * yield* SshServer.serve({ port: 2222, hostKeys, auth, sftp: SftpServer.fileSystem({ root: "/srv/sftp" }) })
 * ```
 *
 * Requests of a session are processed one at a time, in order (so requests
 * on the same file keep their order), with replies coalesced into channel
 * writes; the client pipelines, so the channel stays busy. A malformed packet
 * ends the session with a `ProtocolError` (the channel closes, the SSH
 * connection stays up); a well-formed request of an unknown type or extension
 * gets OP_UNSUPPORTED, and one carrying a number beyond 2^53 - 1 (an offset
 * or size no `number` can hold) gets FAILURE.
 *
 * The jail holds directory descriptors, not paths (see `internal/jailedFs`):
 * every path is walked from the root one component at a time, each opened
 * relative to the directory held above it without following links, and the
 * operation acts on the last component relative to its held directory. A
 * concurrent swap of a directory for a symlink, by another session or a local
 * process, cannot lead an operation out of the root. It needs Linux
 * (`/proc/self/fd` and O_PATH); elsewhere a session fails with
 * `NotImplemented` saying so.
 *
 * Resources are bounded: a READDIR reads at most 100 entries from the
 * directory (a handle never holds its listing), and open handles are capped
 * per session and per server (`maxHandlesPerSession`, `maxHandles`, leaving
 * file descriptors for new logins; directories apart, as each costs more
 * memory: `maxDirectoryHandlesPerSession`, `maxDirectoryHandles`); an open
 * over a cap gets FAILURE and the session goes on.
 *
 * It runs on `node:fs/promises` rather than Effect's `FileSystem` service,
 * which lacks what SFTP needs: positional writes on a handle (pwrite),
 * statvfs, directory descriptors, chmod/chown/utimes on an open handle
 * (fsetstat), O_NOFOLLOW and O_PATH on open, byte-string (non-UTF-8) file
 * names, and errno codes to map onto SFTP status codes.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Fs from "node:fs"
import * as FsPromises from "node:fs/promises"
import * as Os from "node:os"
import type { ServerSession, SessionHandler } from "../Channel/ServerSession.ts"
import { decodeByteString } from "../internal/byteString.ts"
import {
  DEFAULT_DIRECTORY_HANDLES,
  DEFAULT_DIRECTORY_HANDLES_PER_SESSION,
  DEFAULT_HANDLES_PER_SESSION,
  defaultServerHandles,
  HandleBudget
} from "../internal/handleBudget.ts"
import { applyChanges, closeDescriptor, descriptorPath, JailedFs, JailUnsupported } from "../internal/jailedFs.ts"
import { allocate, discard, handOver } from "../internal/ownedBuffers.ts"
import { Outbox } from "../internal/sftpOutbox.ts"
import * as SshError from "../SshError.ts"
import type * as Attributes from "./Attributes.ts"
import { modeString } from "./Attributes.ts"
import * as Extensions from "./Extensions.ts"
import { DEFAULT_MAX_PACKET_LENGTH, Framer, MAX_DATA_LENGTH } from "./Framer.ts"
import * as Jail from "./Jail.ts"
import * as Messages from "./Messages.ts"
import * as Status from "./Status.ts"

/** Options of an SFTP server. */
export interface SftpServerOptions {
  /** The directory served as "/". It must exist; symlinks in it are resolved once, at session start. */
  readonly root: string
  /** Refuse every operation that would change anything (default false). */
  readonly readOnly?: boolean | undefined
  /**
   * Most handles (open files and directories) one session may hold (default 1024, what OpenSSH's sftp-server
   * allows at the usual descriptor limit of 1024). An OPEN or OPENDIR beyond it gets FAILURE; the session goes on.
   */
  readonly maxHandlesPerSession?: number | undefined
  /**
   * Most handles all sessions of this server (of one `fileSystem(...)`) may hold together. Each is a file
   * descriptor of this one process (a directory handle two), which new logins need too, so the default leaves a
   * reserve: a quarter of the soft RLIMIT_NOFILE (read from /proc/self/limits, 1024 assumed if unreadable), at least
   * 256, and allows half of the rest (two descriptors a handle), between 16 and 16384: 7500 at a limit of 20000,
   * 384 at 1024. An open beyond it gets FAILURE.
   */
  readonly maxHandles?: number | undefined
  /**
   * Most directory handles one session may hold (default 64; they count as handles too). A listing is read from
   * the directory a batch at a time, never held, but each open directory keeps the C library's 32 KiB read buffer
   * and Node's entry buffer (~75 KiB of memory in all once read), so directories are capped apart from files.
   */
  readonly maxDirectoryHandlesPerSession?: number | undefined
  /** Most directory handles all sessions of this server may hold together (default 256: ~20 MiB). */
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

/** Who the session is for (used by home-directory and expand-path "~user"). */
export interface SftpPeer {
  readonly user: string
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

/** A failure the dispatcher turns into a STATUS reply. */
class StatusFailure {
  readonly code: number
  readonly message: string | undefined
  constructor(code: number, message?: string | undefined) {
    this.code = code
    this.message = message
  }
}

const refuse = (code: number, message?: string): never => {
  throw new StatusFailure(code, message)
}

const errnoOf = (e: unknown): string | undefined =>
  typeof e === "object" && e !== null && "code" in e && typeof e.code === "string" ? e.code : undefined

/**
 * The STATUS for anything a request threw: our own refusals, jail reasons, or
 * errno failures (with default messages, so no host path ever reaches the client).
 */
const statusOf = (id: number, e: unknown): Messages.Status => {
  if (e instanceof StatusFailure) return Status.make(id, e.code, e.message)
  if (e instanceof SshError.SftpStatus) return Status.make(id, e.code, e.message)
  const errno = errnoOf(e)
  if (errno === "EEXIST") return Status.make(id, StatusCode.Failure, "File exists")
  if (errno === "ENOTEMPTY") return Status.make(id, StatusCode.Failure, "Directory not empty")
  if (errno === "EISDIR") return Status.make(id, StatusCode.Failure, "Is a directory")
  return Status.make(id, Status.fromErrno(errno))
}

// ---------------------------------------------------------------------------------------------------------------
// File attributes
// ---------------------------------------------------------------------------------------------------------------

const seconds = (ms: number): number => Math.max(0, Math.min(0xffff_ffff, Math.floor(ms / 1000)))

const attributesOf = (st: Fs.Stats): Attributes.Attributes => ({
  size: st.size,
  uid: st.uid,
  gid: st.gid,
  permissions: st.mode,
  atime: seconds(st.atimeMs),
  mtime: seconds(st.mtimeMs)
})

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
const HALF_YEAR_MS = 182 * 24 * 3600 * 1000

/** An `ls -l` line, as OpenSSH's sftp-server writes it into NAME longnames. */
const longName = (name: string, st: Fs.Stats, now: number): string => {
  const date = new Date(st.mtimeMs)
  const day = String(date.getDate()).padStart(2, " ")
  const when = Math.abs(now - st.mtimeMs) < HALF_YEAR_MS
    ? `${String(date.getHours()).padStart(2, "0")}:${String(date.getMinutes()).padStart(2, "0")}`
    : ` ${date.getFullYear()}`
  return `${modeString(st.mode)} ${String(st.nlink).padStart(4)} ${String(st.uid).padEnd(8)} ${String(st.gid).padEnd(8)} ${
    String(st.size).padStart(8)
  } ${MONTHS[date.getMonth()]} ${day} ${when.padStart(5)} ${name}`
}

// ---------------------------------------------------------------------------------------------------------------
// Session
// ---------------------------------------------------------------------------------------------------------------

interface OpenFile {
  readonly _tag: "File"
  readonly file: FsPromises.FileHandle
  readonly writable: boolean
}

interface OpenDirectory {
  readonly _tag: "Directory"
  /** The directory, held (O_PATH) for the entries' lstat, fstat, fsetstat and fstatvfs. */
  readonly fd: number
  /** Its entries, read a batch at a time: the listing is never held whole. */
  readonly dir: Fs.Dir
  readonly parent: Fs.Stats
  started: boolean
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

const openFlagsOf = (pflags: number): number => {
  const { Read, Write, Append, Create, Truncate, Exclusive } = Messages.OpenFlags
  const C = Fs.constants
  const access = (pflags & Read) && (pflags & Write) ? C.O_RDWR : pflags & Write ? C.O_WRONLY : C.O_RDONLY
  return access |
    (pflags & Append ? C.O_APPEND : 0) |
    (pflags & Create ? C.O_CREAT : 0) |
    (pflags & Truncate ? C.O_TRUNC : 0) |
    (pflags & Exclusive ? C.O_EXCL : 0)
}

const MUTATING_OPEN = Messages.OpenFlags.Write | Messages.OpenFlags.Append | Messages.OpenFlags.Create |
  Messages.OpenFlags.Truncate

/** A reply encoded by the session itself (a DATA reply built around the block it read), sent as it is. */
class EncodedReply {
  readonly bytes: Uint8Array
  constructor(bytes: Uint8Array) {
    this.bytes = bytes
  }
}

/** The name of an entry of a directory opened with `encoding: "buffer"` (typed as a string by @types/node). */
const entryName = (entry: Fs.Dirent): Buffer => entry.name as unknown as Buffer

/** Refuses an offset + length past what a `number` offset can address. */
const checkSpan = (offset: number, length: number, what: string): void => {
  if (offset + length > Number.MAX_SAFE_INTEGER) refuse(StatusCode.Failure, `${what} exceeds 2^53-1, more than this server can address`)
}

/** The handle caps of one server: budgets its sessions share, and what each session may hold. */
interface SharedLimits {
  readonly handles: HandleBudget
  readonly directories: HandleBudget
  readonly perSession: number
  readonly directoriesPerSession: number
}

const sharedLimits = (options: SftpServerOptions): SharedLimits => ({
  handles: new HandleBudget(options.maxHandles ?? defaultServerHandles()),
  directories: new HandleBudget(options.maxDirectoryHandles ?? DEFAULT_DIRECTORY_HANDLES),
  perSession: options.maxHandlesPerSession ?? DEFAULT_HANDLES_PER_SESSION,
  directoriesPerSession: options.maxDirectoryHandlesPerSession ?? DEFAULT_DIRECTORY_HANDLES_PER_SESSION
})

/** One SFTP session's state and request handlers (plain async functions; the Effect loop drives them). */
class SftpSession {
  private readonly handles = new Map<number, OpenHandle>()
  /** How many of `handles` (and of reservations in progress) are directories. */
  private directories = 0
  private nextHandle = 1
  private readonly jail: JailedFs
  private readonly limits: SharedLimits
  private readonly readOnly: boolean
  private readonly umask: number
  private readonly user: string
  /** The request being answered (one at a time): the session ends only once it has settled. */
  private inFlight: Promise<unknown> = Promise.resolve()
  private closed = false

  constructor(jail: JailedFs, limits: SharedLimits, options: SftpServerOptions, peer: SftpPeer) {
    this.jail = jail
    this.limits = limits
    this.readOnly = options.readOnly ?? false
    this.umask = options.umask ?? DEFAULT_UMASK
    this.user = peer.user
  }

  private writable(): void {
    if (this.readOnly) refuse(StatusCode.PermissionDenied, "read-only file system")
  }

  private lookup(handle: Uint8Array): OpenHandle {
    const n = handleNumber(handle)
    const entry = n === undefined ? undefined : this.handles.get(n)
    return entry ?? refuse(StatusCode.Failure, "invalid handle")
  }

  private fileOf(handle: Uint8Array): OpenFile {
    const entry = this.lookup(handle)
    return entry._tag === "File" ? entry : refuse(StatusCode.Failure, "not a file handle")
  }

  private directoryOf(handle: Uint8Array): OpenDirectory {
    const entry = this.lookup(handle)
    return entry._tag === "Directory" ? entry : refuse(StatusCode.Failure, "not a directory handle")
  }

  /** Takes a handle from the session's and the server's caps before anything is opened. */
  private reserveHandle(kind: OpenHandle["_tag"]): void {
    const { limits } = this
    if (this.handles.size >= limits.perSession) {
      refuse(StatusCode.Failure, `too many open handles: a session may hold ${limits.perSession}; close some first`)
    }
    if (kind === "Directory" && this.directories >= limits.directoriesPerSession) {
      refuse(StatusCode.Failure, `too many open directories: a session may hold ${limits.directoriesPerSession}; close some first`)
    }
    if (!limits.handles.take()) refuse(StatusCode.Failure, `too many open handles on this server (${limits.handles.limit}); try again later`)
    if (kind === "Directory" && !limits.directories.take()) {
      limits.handles.give()
      refuse(StatusCode.Failure, `too many open directories on this server (${limits.directories.limit}); try again later`)
    }
    if (kind === "Directory") this.directories++
  }

  /** Gives a handle back to the caps it was taken from. */
  private unreserve(kind: OpenHandle["_tag"]): void {
    this.limits.handles.give()
    if (kind === "Directory") {
      this.limits.directories.give()
      this.directories--
    }
  }

  /** Opens what `open` gives under a reserved handle; the reservation is returned if it fails. */
  private async withHandle(kind: OpenHandle["_tag"], open: () => Promise<OpenHandle>): Promise<Uint8Array> {
    this.reserveHandle(kind)
    let entry: OpenHandle
    try {
      entry = await open()
    } catch (e) {
      this.unreserve(kind)
      throw e
    }
    if (this.closed) {
      await this.release(entry)
      refuse(StatusCode.Failure, "session closed")
    }
    while (this.handles.has(this.nextHandle)) this.nextHandle = (this.nextHandle + 1) >>> 0
    const n = this.nextHandle
    this.nextHandle = (this.nextHandle + 1) >>> 0
    this.handles.set(n, entry)
    return handleBytes(n)
  }

  /** Closes a handle's descriptors and gives it back to the caps. */
  private async release(entry: OpenHandle): Promise<void> {
    this.unreserve(entry._tag)
    if (entry._tag === "File") return entry.file.close()
    closeDescriptor(entry.fd)
    await entry.dir.close()
  }

  /** Closes every handle and the jail once the request in flight has settled (session end). */
  async closeAll(): Promise<void> {
    this.closed = true
    await this.inFlight
    const entries = [...this.handles.values()]
    this.handles.clear()
    await Promise.all(entries.map((entry) => this.release(entry).catch(() => undefined)))
    this.jail.close()
  }

  private nameReply(id: number, filename: string): Messages.Name {
    return { _tag: "Name", id, entries: [{ filename, longname: filename, attrs: {} }] }
  }

  private homeOf(username: string): Jail.VirtualPath {
    return username === "" || username === this.user ? Jail.ROOT : refuse(StatusCode.NoSuchFile, "unknown user")
  }

  /** Expands "~" and "~user" (home is the jail root), for expand-path@openssh.com. */
  private expandTilde(path: string): string {
    if (!path.startsWith("~")) return path
    const slash = path.indexOf("/")
    const user = slash < 0 ? path.slice(1) : path.slice(1, slash)
    const rest = slash < 0 ? "" : path.slice(slash)
    return this.homeOf(user) + rest
  }

  async open(request: Messages.Open): Promise<Messages.SftpResponse> {
    if (request.pflags & MUTATING_OPEN) this.writable()
    const mode = (request.attrs.permissions ?? 0o666) & 0o7777 & ~this.umask
    const writable = (request.pflags & (Messages.OpenFlags.Write | Messages.OpenFlags.Append)) !== 0
    const handle = await this.withHandle("File", async () => ({
      _tag: "File",
      file: await this.jail.openFile(request.path, openFlagsOf(request.pflags), mode),
      writable
    }))
    return { _tag: "Handle", id: request.id, handle }
  }

  async close(request: Messages.Close): Promise<Messages.SftpResponse> {
    const entry = this.lookup(request.handle)
    this.handles.delete(handleNumber(request.handle)!)
    await this.release(entry)
    return ok(request.id)
  }

  /** Reads the block straight into its DATA reply, already encoded: the block is never copied. */
  async read(request: Messages.Read): Promise<Messages.SftpResponse | EncodedReply> {
    const { file } = this.fileOf(request.handle)
    const length = Math.min(request.length, MAX_DATA_LENGTH)
    checkSpan(request.offset, length, "offset + length")
    // Every byte sent is written first (header below, data by the read): no need to zero it. The library's own
    // memory (ownedBuffers), which the outbox of `fileSystem` frees once the reply is sealed (a short read's too).
    const memory = allocate(Messages.DATA_HEADER_LENGTH + length)
    const { bytesRead } = await file.read(memory, Messages.DATA_HEADER_LENGTH, length, request.offset)
    if (bytesRead === 0 && request.length > 0) return Status.make(request.id, StatusCode.Eof)
    const packet = memory.subarray(0, Messages.DATA_HEADER_LENGTH + bytesRead)
    Messages.writeDataHeader(packet, request.id, bytesRead)
    return new EncodedReply(packet)
  }

  async write(request: Messages.Write): Promise<Messages.SftpResponse> {
    const entry = this.fileOf(request.handle)
    if (!entry.writable) refuse(StatusCode.PermissionDenied, "file not open for writing")
    checkSpan(request.offset, request.data.length, "offset + length")
    let written = 0
    while (written < request.data.length) {
      const { bytesWritten } = await entry.file.write(request.data, written, request.data.length - written, request.offset + written)
      written += bytesWritten
    }
    return ok(request.id)
  }

  async stat(id: number, path: string, follow: boolean): Promise<Messages.SftpResponse> {
    return { _tag: "Attrs", id, attrs: attributesOf(await this.jail.stat(path, follow)) }
  }

  async fstat(request: Messages.Fstat): Promise<Messages.SftpResponse> {
    const entry = this.lookup(request.handle)
    const st = entry._tag === "File" ? await entry.file.stat() : await FsPromises.stat(descriptorPath(entry.fd))
    return { _tag: "Attrs", id: request.id, attrs: attributesOf(st) }
  }

  async setstat(request: Messages.Setstat): Promise<Messages.SftpResponse> {
    this.writable()
    await this.jail.setAttributes(request.path, true, request.attrs)
    return ok(request.id)
  }

  async fsetstat(request: Messages.Fsetstat): Promise<Messages.SftpResponse> {
    this.writable()
    const entry = this.lookup(request.handle)
    if (entry._tag === "Directory") {
      await applyChanges(descriptorPath(entry.fd), request.attrs)
      return ok(request.id)
    }
    // on the open file itself: a file opened for writing can be truncated whatever its mode
    const { file } = entry
    const { size, permissions, uid, gid, atime, mtime } = request.attrs
    if (size !== undefined) await file.truncate(size)
    if (permissions !== undefined) await file.chmod(permissions & 0o7777)
    if (uid !== undefined && gid !== undefined) await file.chown(uid, gid)
    if (atime !== undefined && mtime !== undefined) await file.utimes(atime, mtime)
    return ok(request.id)
  }

  async lsetstat(request: Extensions.Lsetstat): Promise<Messages.SftpResponse> {
    this.writable()
    await this.jail.setAttributes(request.path, false, request.attrs)
    return ok(request.id)
  }

  async opendir(request: Messages.Opendir): Promise<Messages.SftpResponse> {
    const handle = await this.withHandle("Directory", async () => ({ _tag: "Directory", ...await this.jail.openDirectory(request.path), started: false }))
    return { _tag: "Handle", id: request.id, handle }
  }

  /** The next batch of entries, at most READDIR_BATCH: read from the directory now, never kept. */
  async readdir(request: Messages.Readdir): Promise<Messages.SftpResponse> {
    const dir = this.directoryOf(request.handle)
    const now = Date.now()
    const entries: Array<Messages.NameEntry> = []
    const entry = (name: string, st: Fs.Stats) => ({ filename: name, longname: longName(name, st, now), attrs: attributesOf(st) })
    if (!dir.started) {
      dir.started = true
      entries.push(entry(".", await FsPromises.stat(descriptorPath(dir.fd))), entry("..", dir.parent))
    }
    while (entries.length === 0 || entries.length < READDIR_BATCH) {
      const names: Array<Buffer> = []
      while (entries.length + names.length < READDIR_BATCH) {
        const next = await dir.dir.read()
        if (next === null) break
        names.push(entryName(next))
      }
      if (names.length === 0) break
      // an entry removed since it was listed is left out
      const stats = await Promise.all(names.map((name) => JailedFs.entryStat(dir.fd, name).catch(() => undefined)))
      names.forEach((raw, i) => {
        const st = stats[i]
        if (st !== undefined) entries.push(entry(decodeByteString(raw), st))
      })
    }
    return entries.length > 0 ? { _tag: "Name", id: request.id, entries } : Status.make(request.id, StatusCode.Eof)
  }

  async remove(request: Messages.Remove): Promise<Messages.SftpResponse> {
    this.writable()
    await this.jail.unlink(request.path)
    return ok(request.id)
  }

  async mkdir(request: Messages.Mkdir): Promise<Messages.SftpResponse> {
    this.writable()
    await this.jail.mkdir(request.path, (request.attrs.permissions ?? 0o777) & 0o7777 & ~this.umask)
    return ok(request.id)
  }

  async rmdir(request: Messages.Rmdir): Promise<Messages.SftpResponse> {
    this.writable()
    await this.jail.rmdir(request.path)
    return ok(request.id)
  }

  async realpath(id: number, path: string): Promise<Messages.SftpResponse> {
    return this.nameReply(id, await this.jail.realpath(path === "" ? "." : path))
  }

  async rename(request: Messages.Rename): Promise<Messages.SftpResponse> {
    this.writable()
    await this.jail.rename(request.oldPath, request.newPath, false)
    return ok(request.id)
  }

  async posixRename(request: Extensions.PosixRename): Promise<Messages.SftpResponse> {
    this.writable()
    await this.jail.rename(request.oldPath, request.newPath, true)
    return ok(request.id)
  }

  async readlink(request: Messages.Readlink): Promise<Messages.SftpResponse> {
    return this.nameReply(request.id, await this.jail.readlink(request.path))
  }

  async symlink(request: Messages.Symlink): Promise<Messages.SftpResponse> {
    this.writable()
    if (request.targetPath.includes("\0")) refuse(StatusCode.BadMessage, "target contains a NUL byte")
    // The target is stored as given: links are only ever followed through the jail.
    await this.jail.symlink(request.targetPath, request.linkPath)
    return ok(request.id)
  }

  async hardlink(request: Extensions.Hardlink): Promise<Messages.SftpResponse> {
    this.writable()
    await this.jail.link(request.oldPath, request.newPath)
    return ok(request.id)
  }

  private statvfsReply(id: number, st: Fs.BigIntStatsFs): Messages.SftpResponse {
    const stats: Extensions.VfsStats = {
      bsize: st.bsize,
      frsize: st.bsize,
      blocks: st.blocks,
      bfree: st.bfree,
      bavail: st.bavail,
      files: st.files,
      ffree: st.ffree,
      favail: st.ffree,
      fsid: 0n,
      flag: this.readOnly ? Extensions.VfsFlag.ReadOnly : 0n,
      namemax: 255n
    }
    return { _tag: "ExtendedReply", id, data: Extensions.encodeVfsStats(stats) }
  }

  async statvfs(request: Extensions.StatVfs): Promise<Messages.SftpResponse> {
    return this.statvfsReply(request.id, await this.jail.statfs(request.path))
  }

  async fstatvfs(request: Extensions.FstatVfs): Promise<Messages.SftpResponse> {
    const entry = this.lookup(request.handle)
    const path = descriptorPath(entry._tag === "File" ? entry.file.fd : entry.fd)
    return this.statvfsReply(request.id, await FsPromises.statfs(path, { bigint: true }))
  }

  async fsync(request: Extensions.Fsync): Promise<Messages.SftpResponse> {
    await this.fileOf(request.handle).file.sync()
    return ok(request.id)
  }

  async copyData(request: Extensions.CopyData): Promise<Messages.SftpResponse> {
    this.writable()
    const from = this.fileOf(request.readHandle)
    const to = this.fileOf(request.writeHandle)
    if (!to.writable) refuse(StatusCode.PermissionDenied, "destination not open for writing")
    checkSpan(request.readOffset, request.readLength, "read-from-offset + read-data-length")
    checkSpan(request.writeOffset, request.readLength, "write-to-offset + read-data-length")
    const buffer = Buffer.allocUnsafe(COPY_BUFFER)
    let copied = 0
    const limit = request.readLength === 0 ? Number.MAX_SAFE_INTEGER - Math.max(request.readOffset, request.writeOffset) : request.readLength
    while (copied < limit) {
      const want = Math.min(buffer.length, limit - copied)
      const { bytesRead } = await from.file.read(buffer, 0, want, request.readOffset + copied)
      if (bytesRead === 0) break
      let written = 0
      while (written < bytesRead) {
        const { bytesWritten } = await to.file.write(buffer, written, bytesRead - written, request.writeOffset + copied + written)
        written += bytesWritten
      }
      copied += bytesRead
    }
    if (request.readLength !== 0 && copied < request.readLength) refuse(StatusCode.Eof)
    return ok(request.id)
  }

  usersGroupsById(request: Extensions.UsersGroupsById): Messages.SftpResponse {
    const me = Os.userInfo()
    const names: Extensions.UserGroupNames = {
      usernames: request.uids.map((uid) => uid === me.uid ? me.username : ""),
      groupnames: request.gids.map(() => "")
    }
    return { _tag: "ExtendedReply", id: request.id, data: Extensions.encodeUserGroupNames(names) }
  }

  /** Answers one request; every failure becomes a STATUS. */
  answer(request: Messages.SftpRequest): Promise<Messages.SftpResponse | EncodedReply> {
    const answered = (async () => {
      try {
        return await this.dispatch(request)
      } catch (e) {
        return statusOf(request.id, e)
      }
    })()
    this.inFlight = answered
    return answered
  }

  private dispatch(r: Messages.SftpRequest): Promise<Messages.SftpResponse | EncodedReply> | Messages.SftpResponse {
    if (this.closed) refuse(StatusCode.Failure, "session closed")
    switch (r._tag) {
      case "Open":
        return this.open(r)
      case "Close":
        return this.close(r)
      case "Read":
        return this.read(r)
      case "Write":
        return this.write(r)
      case "Lstat":
        return this.stat(r.id, r.path, false)
      case "Stat":
        return this.stat(r.id, r.path, true)
      case "Fstat":
        return this.fstat(r)
      case "Setstat":
        return this.setstat(r)
      case "Fsetstat":
        return this.fsetstat(r)
      case "Opendir":
        return this.opendir(r)
      case "Readdir":
        return this.readdir(r)
      case "Remove":
        return this.remove(r)
      case "Mkdir":
        return this.mkdir(r)
      case "Rmdir":
        return this.rmdir(r)
      case "Realpath":
        return this.realpath(r.id, r.path)
      case "Rename":
        return this.rename(r)
      case "Readlink":
        return this.readlink(r)
      case "Symlink":
        return this.symlink(r)
      case "PosixRename":
        return this.posixRename(r)
      case "StatVfs":
        return this.statvfs(r)
      case "FstatVfs":
        return this.fstatvfs(r)
      case "Hardlink":
        return this.hardlink(r)
      case "Fsync":
        return this.fsync(r)
      case "Lsetstat":
        return this.lsetstat(r)
      case "Limits":
        return {
          _tag: "ExtendedReply",
          id: r.id,
          data: Extensions.encodeLimits({
            maxPacketLength: DEFAULT_MAX_PACKET_LENGTH,
            maxReadLength: MAX_DATA_LENGTH,
            maxWriteLength: MAX_DATA_LENGTH,
            maxOpenHandles: Math.min(this.limits.perSession, this.limits.handles.limit)
          })
        }
      case "ExpandPath":
        return this.realpath(r.id, this.expandTilde(r.path))
      case "CopyData":
        return this.copyData(r)
      case "HomeDirectory":
        return this.nameReply(r.id, this.homeOf(r.username))
      case "UsersGroupsById":
        return this.usersGroupsById(r)
      case "Extended":
        return Status.make(r.id, StatusCode.OpUnsupported, `unsupported extension "${r.request}"`)
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Protocol loop
// ---------------------------------------------------------------------------------------------------------------

const protocolError = (message: string) => SshError.make(new SshError.ProtocolError({ message }))

const knownTypes: ReadonlySet<number> = new Set(Object.values(Messages.PacketType))

/**
 * Holds the jail's root for a session: `SftpStatus` (NoSuchFile) when it does
 * not exist, `NotImplemented` when this platform cannot host the jail.
 */
const openJail = (root: string): Effect.Effect<JailedFs, SshError.SshError> =>
  Effect.tryPromise({
    try: async () => JailedFs.open(await FsPromises.realpath(root).catch(() => {
      throw new SshError.SftpStatus({ code: StatusCode.NoSuchFile, message: "the SFTP root does not exist", path: root })
    })),
    catch: (e) =>
      e instanceof JailUnsupported ? SshError.make(new SshError.NotImplemented({ message: e.message })) : SshError.fromUnknown(e)
  })

/**
 * Serves one SFTP session over any byte stream: `input` is what the client
 * sends, `write` sends our bytes. Ends when the input ends; fails with a
 * `ProtocolError` on a malformed packet (the caller closes the channel).
 *
 * @example
 * ```ts
 * yield* SftpServer.serve(session.stdin, (bytes) => session.write(bytes), { root: "/srv/sftp" }, { user: session.user })
 * ```
 */
export const serve = (
  input: Stream.Stream<Uint8Array, SshError.SshError>,
  write: (bytes: Uint8Array) => Effect.Effect<void, SshError.SshError>,
  options: SftpServerOptions,
  peer: SftpPeer
): Effect.Effect<void, SshError.SshError, Scope.Scope> =>
  serveWith((f) => Stream.runForEachArray(input, f), write, options, peer, false, sharedLimits(options))

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
  options: SftpServerOptions,
  peer: SftpPeer,
  owned: boolean,
  limits: SharedLimits
): Effect.Effect<void, SshError.SshError, Scope.Scope> =>
  Effect.gen(function*() {
    const jail = yield* openJail(options.root)
    const session = new SftpSession(jail, limits, options, peer)
    yield* Effect.addFinalizer(() => Effect.promise(() => session.closeAll()))
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
        return Effect.as(reply({ _tag: "Version", version: Messages.SFTP_VERSION, extensions: Extensions.OPENSSH_EXTENSIONS }), packet)
      }
      if (!initialized) return Effect.fail(protocolError(`SFTP ${packet._tag} before INIT`))
      if (!Messages.isRequest(packet)) return Effect.fail(protocolError(`a client sent an SFTP ${packet._tag} packet`))
      const request = packet
      return Effect.as(Effect.flatMap(Effect.promise(() => session.answer(request)), reply), packet)
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
 * The "sftp" subsystem handler serving `options.root`; pass it to
 * `SshServer.serve({ sftp })` (or `session.subsystems.sftp`).
 *
 * @example
 * ```ts
 * yield* SshServer.serve({ port: 0, hostKeys, auth, sftp: SftpServer.fileSystem({ root: "/srv/sftp", readOnly: true }) })
 * ```
 */
export const fileSystem = (options: SftpServerOptions): SessionHandler<void> => {
  const limits = sharedLimits(options)
  return (session: ServerSession) =>
    Effect.andThen(
      session.channel.growWindow(options.windowSize ?? DEFAULT_WINDOW),
      // a session's write is the channel's, which has sealed (copied) the bytes when it completes
      Effect.as(serveWith(session.channel.borrowStdout, (bytes) => session.write(bytes), options, { user: session.user }, true, limits), 0)
    )
}
