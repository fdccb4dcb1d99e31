/**
 * What an SFTP server serves: a backend is the file system behind the
 * protocol, as Effects. `SftpServer.make(backend)` speaks SFTP v3 over it —
 * framing, request ids, the handle table and its caps, limits, bounded
 * READDIR replies, offset checks, read-only mode, the umask and the mapping of
 * failures onto STATUS replies all stay in the server, the same for every
 * backend. The backend only answers file operations. `SftpServer.fileSystem`
 * serves a host directory through one (the jailed disk backend),
 * `MemoryBackend.make()` a tree held in memory.
 *
 * ```ts
 * // open, opendir, stat, lstat, setstat, mkdir, rmdir, remove, rename, symlink, readlink, realpath: here a memory
 * // tree's, but for links
 * const backend: SftpBackend.Backend = {
 *   ...SftpMemoryBackend.make(),
 *   symlink: () => SftpBackend.fail(SftpStatusCode.StatusCode.OpUnsupported, "no links here"),
 *   readlink: () => SftpBackend.fail(SftpStatusCode.StatusCode.OpUnsupported, "no links here")
 * }
 * yield* SshServer.serve({ port: 2222, hostKeys: [hostKey], auth: serverAuth, sftp: SftpServer.make(backend) })
 * ```
 *
 * Every operation fails with `SftpStatus` (the `SshError` reason): its code
 * and message become the STATUS reply, so a message must not say what the
 * client may not know (a host path). A code of the later drafts
 * (`StatusCode.NoSpaceOnFilesystem`, `FileAlreadyExists`, ...) is sent to a
 * v3 client as the v3 code OpenSSH's sftp-server would send (FAILURE, or
 * NO_SUCH_FILE, PERMISSION_DENIED, BAD_MESSAGE), its message kept. Anything
 * else a backend throws or dies with is answered FAILURE, without its text;
 * the session goes on. Paths are the client's, as
 * sent: the backend resolves them (a relative path is taken from "/", the
 * session's only working directory).
 *
 * Memory is lent, not given: the bytes `write` receives and the buffer `read`
 * fills are valid only until the operation's effect completes (the server
 * frees them right after, for speed), so a backend copies what it keeps.
 *
 * Operations marked optional are extensions: a backend without one does not
 * advertise it in VERSION, and a client asking anyway gets OP_UNSUPPORTED
 * (posix-rename, statvfs and fstatvfs, hardlink, lsetstat). The server itself
 * answers limits, expand-path, home-directory and copy-data (over the two
 * handles' `read` and `write`) for every backend; fsync of a file without
 * `sync` is OK, and users-groups-by-id without its operation names nobody.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { SshError } from "../SshError.ts"
import { SftpStatus } from "../SshError.ts"
import type { Attributes } from "./Attributes.ts"
import { modeString } from "./Attributes.ts"
import type { UserGroupNames, VfsStats } from "./Extensions.ts"
import { defaultMessage } from "./Status.ts"

/** Who a session is for (home-directory and expand-path "~user" use it; a backend may too). */
export interface SftpPeer {
  readonly user: string
}

/** An open file. `read` and `write` take absolute offsets: requests may arrive in any order. */
export interface FileHandle {
  /**
   * Reads up to `into.length` bytes at `offset` into `into` (lent: filled, not kept) and gives how many it read;
   * 0 means end of file.
   */
  readonly read: (offset: number, into: Uint8Array) => Effect.Effect<number, SftpStatus>
  /** Writes all of `data` (lent: copy what is kept) at `offset`. */
  readonly write: (offset: number, data: Uint8Array) => Effect.Effect<void, SftpStatus>
  /** FSTAT. */
  readonly stat: Effect.Effect<Attributes, SftpStatus>
  /** FSETSTAT: the attributes present are changed, size first. */
  readonly setstat: (attrs: Attributes) => Effect.Effect<void, SftpStatus>
  /** CLOSE, and the session's end for a handle still open. */
  readonly close: Effect.Effect<void, SftpStatus>
  /** fsync@openssh.com. */
  readonly sync?: Effect.Effect<void, SftpStatus> | undefined
  /** fstatvfs@openssh.com. */
  readonly statvfs?: Effect.Effect<VfsStats, SftpStatus> | undefined
}

/** One entry of a listing. Without a `longname` the server writes the `ls -l` line from `attrs`. */
export interface DirectoryEntry {
  readonly filename: string
  readonly attrs: Attributes
  readonly longname?: string | undefined
}

/** An open directory, whose entries are read a batch at a time (the server never holds a listing). */
export interface DirectoryHandle {
  /**
   * The next entries, at most `max` (the server asks for one READDIR reply's worth, 100), "." and ".." first when
   * the backend has them; none left: an empty array. Fewer than `max` does not mean the end.
   */
  readonly read: (max: number) => Effect.Effect<ReadonlyArray<DirectoryEntry>, SftpStatus>
  /** FSTAT on the directory handle. */
  readonly stat: Effect.Effect<Attributes, SftpStatus>
  /** FSETSTAT on the directory handle. */
  readonly setstat: (attrs: Attributes) => Effect.Effect<void, SftpStatus>
  readonly close: Effect.Effect<void, SftpStatus>
  /** fstatvfs@openssh.com on the directory handle. */
  readonly statvfs?: Effect.Effect<VfsStats, SftpStatus> | undefined
}

/** The file operations of one SFTP session (or of all sessions, for a backend they share). */
export interface Backend {
  /**
   * OPEN. `flags` are SFTP's (`Messages.OpenFlags`: Read, Write, Append, Create, Truncate, Exclusive); `attrs` are
   * the client's, with `permissions` already defaulted (0o666) and masked by the server's umask.
   */
  readonly open: (path: string, flags: number, attrs: Attributes) => Effect.Effect<FileHandle, SftpStatus>
  /** OPENDIR (following a final link). */
  readonly opendir: (path: string) => Effect.Effect<DirectoryHandle, SftpStatus>
  /** STAT: follows a final link. */
  readonly stat: (path: string) => Effect.Effect<Attributes, SftpStatus>
  /** LSTAT: a final link itself. */
  readonly lstat: (path: string) => Effect.Effect<Attributes, SftpStatus>
  /** SETSTAT (following a final link): the attributes present are changed, size first. */
  readonly setstat: (path: string, attrs: Attributes) => Effect.Effect<void, SftpStatus>
  /** lsetstat@openssh.com: SETSTAT on a final link itself. */
  readonly lsetstat?: ((path: string, attrs: Attributes) => Effect.Effect<void, SftpStatus>) | undefined
  /** MKDIR; `attrs.permissions` defaulted (0o777) and masked by the umask. */
  readonly mkdir: (path: string, attrs: Attributes) => Effect.Effect<void, SftpStatus>
  /** RMDIR of an empty directory. */
  readonly rmdir: (path: string) => Effect.Effect<void, SftpStatus>
  /** REMOVE of a file or a link (not a directory). */
  readonly remove: (path: string) => Effect.Effect<void, SftpStatus>
  /** RENAME (SFTP v3): an existing `newPath` is refused. */
  readonly rename: (oldPath: string, newPath: string) => Effect.Effect<void, SftpStatus>
  /** posix-rename@openssh.com: an existing `newPath` is replaced. */
  readonly posixRename?: ((oldPath: string, newPath: string) => Effect.Effect<void, SftpStatus>) | undefined
  /** SYMLINK: a link at `linkPath` holding `targetPath` as given. */
  readonly symlink: (targetPath: string, linkPath: string) => Effect.Effect<void, SftpStatus>
  /** READLINK: a link's target as stored. */
  readonly readlink: (path: string) => Effect.Effect<string, SftpStatus>
  /** REALPATH (and expand-path, after "~"): the absolute path, links resolved; missing components taken as spelt. */
  readonly realpath: (path: string) => Effect.Effect<string, SftpStatus>
  /** statvfs@openssh.com of the file system holding `path`. */
  readonly statvfs?: ((path: string) => Effect.Effect<VfsStats, SftpStatus>) | undefined
  /** hardlink@openssh.com: `newPath` becomes another name of `oldPath`. */
  readonly hardlink?: ((oldPath: string, newPath: string) => Effect.Effect<void, SftpStatus>) | undefined
  /** users-groups-by-id@openssh.com: names of ids, "" for one unknown (default: all unknown). */
  readonly usersGroupsById?:
    | ((uids: ReadonlyArray<number>, gids: ReadonlyArray<number>) => Effect.Effect<UserGroupNames, SftpStatus>)
    | undefined
}

/**
 * What `SftpServer.make` serves: one backend for every session, or a backend made for each session (its
 * resources released when the session ends).
 */
export type BackendSource =
  | Backend
  | ((peer: SftpPeer) => Effect.Effect<Backend, SshError, Scope.Scope>)

/**
 * The `SftpStatus` a backend fails with, with the code's default message unless one is given.
 *
 * @example
 * ```ts
 * SftpBackend.status(SftpStatusCode.StatusCode.NoSuchFile).message // "No such file"
 * ```
 */
export const status = (code: number, message?: string | undefined): SftpStatus =>
  new SftpStatus({ code, message: message ?? defaultMessage(code) })

/**
 * Fails with `status(code, message)`.
 *
 * @example
 * ```ts
 * const readlink = (path: string) => SftpBackend.fail(SftpStatusCode.StatusCode.OpUnsupported, "no links here")
 * ```
 */
export const fail = (code: number, message?: string | undefined): Effect.Effect<never, SftpStatus> =>
  Effect.fail(status(code, message))

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
const HALF_YEAR_MS = 182 * 24 * 3600 * 1000

/**
 * An `ls -l` line, as OpenSSH's sftp-server writes it into NAME longnames (`nlink` 1 unless given, times in
 * local time; an hour and minute for the last half year, a year before).
 *
 * @example
 * ```ts
 * SftpBackend.longName("notes.txt", { permissions: 0o100644, size: 12, uid: 0, gid: 0, mtime: 0 }, 1, 0)
 * // "-rw-r--r--    1 0        0              12 Jan  1 00:00 notes.txt" (in UTC)
 * ```
 */
export const longName = (filename: string, attrs: Attributes, nlink: number = 1, now: number = Date.now()): string => {
  const mtimeMs = (attrs.mtime ?? 0) * 1000
  const date = new Date(mtimeMs)
  const day = String(date.getDate()).padStart(2, " ")
  const when = Math.abs(now - mtimeMs) < HALF_YEAR_MS
    ? `${String(date.getHours()).padStart(2, "0")}:${String(date.getMinutes()).padStart(2, "0")}`
    : ` ${date.getFullYear()}`
  return `${modeString(attrs.permissions ?? 0)} ${String(nlink).padStart(4)} ${String(attrs.uid ?? 0).padEnd(8)} ${
    String(attrs.gid ?? 0).padEnd(8)
  } ${String(attrs.size ?? 0).padStart(8)} ${MONTHS[date.getMonth()]} ${day} ${when.padStart(5)} ${filename}`
}
