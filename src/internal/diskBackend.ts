/**
 * The disk backend of the SFTP server: a host directory served as "/"
 * through the jail (`internal/jailedFs`), which walks every path from a
 * descriptor held on the root, so no path or concurrent swap of a directory
 * for a symlink leads out of it. Each session holds its own root, resolved
 * when the session starts and released when it ends.
 *
 * It runs on `node:fs/promises` rather than Effect's `FileSystem` service,
 * which lacks what SFTP needs: positional writes on a handle (pwrite),
 * statvfs, directory descriptors, chmod/chown/utimes on an open handle
 * (fsetstat), O_NOFOLLOW and O_PATH on open, byte-string (non-UTF-8) file
 * names, and errno codes to map onto SFTP status codes. Failures carry the
 * code's default message (never Node's, which names host paths).
 *
 * @internal
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Fs from "node:fs"
import * as FsPromises from "node:fs/promises"
import * as Os from "node:os"
import type { Attributes } from "../Sftp/Attributes.ts"
import type { DirectoryEntry, DirectoryHandle, FileHandle, Backend } from "../Sftp/Backend.ts"
import { longName, status } from "../Sftp/Backend.ts"
import type { UserGroupNames, VfsStats } from "../Sftp/Extensions.ts"
import * as Messages from "../Sftp/Messages.ts"
import { fromErrno, StatusCode } from "../Sftp/Status.ts"
import * as SshError from "../SshError.ts"
import { decodeByteString } from "./byteString.ts"
import { applyChanges, closeDescriptor, descriptorPath, JailedFs, JailUnsupported, type OpenedDirectory } from "./jailedFs.ts"

/** What the disk backend needs to know. */
export interface DiskOptions {
  /** The directory served as "/". It must exist; symlinks in it are resolved once, at session start. */
  readonly root: string
}

const errnoOf = (e: unknown): string | undefined =>
  typeof e === "object" && e !== null && "code" in e && typeof e.code === "string" ? e.code : undefined

/**
 * The status for anything the file system threw: the jail's own `SftpStatus`
 * as it is, an errno failure with its default message.
 *
 * @example
 * ```ts
 * statusOf(Object.assign(new Error("EEXIST: /srv/sftp/a"), { code: "EEXIST" })).message // "File exists"
 * ```
 */
export const statusOf = (e: unknown): SshError.SftpStatus => {
  if (e instanceof SshError.SftpStatus) return e
  const errno = errnoOf(e)
  if (errno === "EEXIST") return status(StatusCode.Failure, "File exists")
  if (errno === "ENOTEMPTY") return status(StatusCode.Failure, "Directory not empty")
  if (errno === "EISDIR") return status(StatusCode.Failure, "Is a directory")
  return status(fromErrno(errno))
}

/** A file system call as an Effect failing with its status. */
const attempt = <A>(f: () => Promise<A>): Effect.Effect<A, SshError.SftpStatus> => Effect.tryPromise({ try: f, catch: statusOf })

const seconds = (ms: number): number => Math.max(0, Math.min(0xffff_ffff, Math.floor(ms / 1000)))

const attributesOf = (st: Fs.Stats): Attributes => ({
  size: st.size,
  uid: st.uid,
  gid: st.gid,
  permissions: st.mode,
  atime: seconds(st.atimeMs),
  mtime: seconds(st.mtimeMs)
})

const vfsStatsOf = (st: Fs.BigIntStatsFs): VfsStats => ({
  bsize: st.bsize,
  frsize: st.bsize,
  blocks: st.blocks,
  bfree: st.bfree,
  bavail: st.bavail,
  files: st.files,
  ffree: st.ffree,
  favail: st.ffree,
  fsid: 0n,
  flag: 0n,
  namemax: 255n
})

const statfsOf = (fd: number): Effect.Effect<VfsStats, SshError.SftpStatus> =>
  attempt(() => FsPromises.statfs(descriptorPath(fd), { bigint: true })).pipe(Effect.map(vfsStatsOf))

/** `open(2)` flags for SFTP's. */
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

const fileHandle = (file: FsPromises.FileHandle): FileHandle => ({
  read: (offset, into) => attempt(() => file.read(into, 0, into.length, offset)).pipe(Effect.map((read) => read.bytesRead)),
  write: (offset, data) =>
    attempt(async () => {
      let written = 0
      while (written < data.length) {
        const { bytesWritten } = await file.write(data, written, data.length - written, offset + written)
        written += bytesWritten
      }
    }),
  stat: attempt(() => file.stat()).pipe(Effect.map(attributesOf)),
  // on the open file itself: a file opened for writing can be truncated whatever its mode
  setstat: ({ size, permissions, uid, gid, atime, mtime }) =>
    attempt(async () => {
      if (size !== undefined) await file.truncate(size)
      if (permissions !== undefined) await file.chmod(permissions & 0o7777)
      if (uid !== undefined && gid !== undefined) await file.chown(uid, gid)
      if (atime !== undefined && mtime !== undefined) await file.utimes(atime, mtime)
    }),
  close: attempt(() => file.close()),
  sync: attempt(() => file.sync()),
  statvfs: statfsOf(file.fd)
})

/** The name of an entry of a directory opened with `encoding: "buffer"` (typed as a string by @types/node). */
const entryName = (entry: Fs.Dirent): Buffer => entry.name as unknown as Buffer

const directoryHandle = (opened: OpenedDirectory): DirectoryHandle => {
  const { fd, dir, parent } = opened
  let started = false
  const entry = (name: string, st: Fs.Stats, now: number): DirectoryEntry => {
    const attrs = attributesOf(st)
    return { filename: name, attrs, longname: longName(name, attrs, st.nlink, now) }
  }
  // Read from the directory now, never kept: up to `max` entries, fewer only at its end.
  const read = async (max: number): Promise<ReadonlyArray<DirectoryEntry>> => {
    const now = Date.now()
    const entries: Array<DirectoryEntry> = []
    if (!started) {
      started = true
      entries.push(entry(".", await FsPromises.stat(descriptorPath(fd)), now), entry("..", parent, now))
    }
    while (entries.length < max) {
      const names: Array<Buffer> = []
      while (entries.length + names.length < max) {
        const next = await dir.read()
        if (next === null) break
        names.push(entryName(next))
      }
      if (names.length === 0) break
      // an entry removed since it was listed is left out
      const stats = await Promise.all(names.map((name) => JailedFs.entryStat(fd, name).catch(() => undefined)))
      names.forEach((raw, i) => {
        const st = stats[i]
        if (st !== undefined) entries.push(entry(decodeByteString(raw), st, now))
      })
    }
    return entries
  }
  return {
    read: (max) => attempt(() => read(max)),
    stat: attempt(() => FsPromises.stat(descriptorPath(fd))).pipe(Effect.map(attributesOf)),
    setstat: (attrs) => attempt(() => applyChanges(descriptorPath(fd), attrs)),
    close: attempt(async () => {
      closeDescriptor(fd)
      await dir.close()
    }),
    statvfs: statfsOf(fd)
  }
}

const usersGroupsById = (uids: ReadonlyArray<number>, gids: ReadonlyArray<number>): UserGroupNames => {
  const me = Os.userInfo()
  return { usernames: uids.map((uid) => uid === me.uid ? me.username : ""), groupnames: gids.map(() => "") }
}

/** The operations of one session, on its held root. */
const backendOf = (jail: JailedFs): Backend => ({
  open: (path, flags, attrs) =>
    attempt(() => jail.openFile(path, openFlagsOf(flags), attrs.permissions ?? 0o666)).pipe(Effect.map(fileHandle)),
  opendir: (path) => attempt(() => jail.openDirectory(path)).pipe(Effect.map(directoryHandle)),
  stat: (path) => attempt(() => jail.stat(path, true)).pipe(Effect.map(attributesOf)),
  lstat: (path) => attempt(() => jail.stat(path, false)).pipe(Effect.map(attributesOf)),
  setstat: (path, attrs) => attempt(() => jail.setAttributes(path, true, attrs)),
  lsetstat: (path, attrs) => attempt(() => jail.setAttributes(path, false, attrs)),
  mkdir: (path, attrs) => attempt(() => jail.mkdir(path, attrs.permissions ?? 0o777)),
  rmdir: (path) => attempt(() => jail.rmdir(path)),
  remove: (path) => attempt(() => jail.unlink(path)),
  rename: (oldPath, newPath) => attempt(() => jail.rename(oldPath, newPath, false)),
  posixRename: (oldPath, newPath) => attempt(() => jail.rename(oldPath, newPath, true)),
  // the target is stored as given: links are only ever followed through the jail
  symlink: (targetPath, linkPath) => attempt(() => jail.symlink(targetPath, linkPath)),
  readlink: (path) => attempt(() => jail.readlink(path)),
  realpath: (path) => attempt(() => jail.realpath(path)),
  statvfs: (path) => attempt(() => jail.statfs(path)).pipe(Effect.map(vfsStatsOf)),
  hardlink: (oldPath, newPath) => attempt(() => jail.link(oldPath, newPath)),
  usersGroupsById: (uids, gids) => Effect.sync(() => usersGroupsById(uids, gids))
})

/**
 * Holds the jail's root for a session: `SftpStatus` (NoSuchFile) when it does
 * not exist, `NotImplemented` when this platform cannot host the jail.
 */
const openJail = (root: string): Effect.Effect<JailedFs, SshError.SshError> =>
  Effect.tryPromise({
    try: async () =>
      JailedFs.open(
        await FsPromises.realpath(root).catch(() => {
          throw new SshError.SftpStatus({ code: StatusCode.NoSuchFile, message: "the SFTP root does not exist", path: root })
        })
      ),
    catch: (e) =>
      e instanceof JailUnsupported ? SshError.make(new SshError.NotImplemented({ message: e.message })) : SshError.fromUnknown(e)
  })

/**
 * The disk backend of one session: `root` held (its symlinks resolved now)
 * until the session's scope closes, after every handle of the session.
 *
 * @example
 * ```ts
 * const handler = SftpServer.make(diskBackend({ root: "/srv/sftp" }))
 * ```
 */
export const diskBackend = (options: DiskOptions) => (): Effect.Effect<Backend, SshError.SshError, Scope.Scope> =>
  Effect.map(Effect.acquireRelease(openJail(options.root), (jail) => Effect.sync(() => jail.close())), backendOf)
