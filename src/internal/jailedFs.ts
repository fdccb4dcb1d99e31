/**
 * The jailed file system under the SFTP server: every operation on a client
 * path walks it from a descriptor held on the root (see `Jail.Walk`), opening
 * one component at a time relative to the directory descriptor above it,
 * never following a symlink in the kernel, and then acts on the last
 * component relative to its held directory. Nothing is ever checked by path
 * and then used by path, so a concurrent swap of a directory for a symlink
 * (by another session, or a local process) cannot redirect an operation out
 * of the root.
 *
 * Node has no `openat(2)`, so "relative to a held directory" is spelt
 * `/proc/self/fd/<dirfd>/<name>`: the kernel follows the magic link to the
 * directory the descriptor holds (not to a path, which could have changed)
 * and looks `name` up in it. Directories and links are held with `O_PATH`
 * (no read permission needed), and an operation on a held inode itself
 * (chmod, chown, utimes, truncate, statfs) goes through
 * `/proc/self/fd/<fd>`, which acts on that inode. Linux only: `open` refuses
 * a platform where these links do not behave so.
 *
 * @internal
 * @since 0.1.0
 */
import * as Fs from "node:fs"
import * as FsPromises from "node:fs/promises"
import { SftpStatus } from "../SshError.ts"
import * as Jail from "../Sftp/Jail.ts"
import { StatusCode } from "../Sftp/Status.ts"
import { decodeByteString, encodeByteString } from "./byteString.ts"

/** Linux's O_PATH: a descriptor that names an inode without opening it for I/O (not in `fs.constants`). */
const O_PATH = 0o10000000
const { O_DIRECTORY, O_NOFOLLOW } = Fs.constants

/** A failure carrying an errno name, as Node's own fs errors do (the server maps it to a status). */
const errno = (code: string): Error => Object.assign(new Error(code), { code })

const errnoOf = (e: unknown): string | undefined =>
  typeof e === "object" && e !== null && "code" in e && typeof e.code === "string" ? e.code : undefined

/** The path naming a held descriptor's inode. */
const self = (fd: number): string => `/proc/self/fd/${fd}`

/** The path naming `name` inside the directory held by `dir`: `openat(dir, name)` for path-taking calls. */
const at = (dir: number, name: Uint8Array): Buffer => Buffer.concat([Buffer.from(`/proc/self/fd/${dir}/`), name])

const openFd = (path: string | Buffer, flags: number): Promise<number> =>
  new Promise((resolve, reject) => Fs.open(path, flags, (e, fd) => e === null ? resolve(fd) : reject(e)))

const fstat = (fd: number): Promise<Fs.Stats> =>
  new Promise((resolve, reject) => Fs.fstat(fd, (e, st) => e === null ? resolve(st) : reject(e)))

const closeFd = (fd: number): void => {
  try {
    Fs.closeSync(fd)
  } catch {
    // a close that fails has released the descriptor all the same
  }
}

/** A link's target as a string (bytes that are not UTF-8 escaped, as in every name). */
const readLinkAt = async (dir: number, name: Uint8Array): Promise<string> =>
  decodeByteString(await FsPromises.readlink(at(dir, name), { encoding: "buffer" }))

/** Where a walk ended: `name` in the held directory `dir`, or `dir` itself. */
export interface Place {
  readonly path: Jail.VirtualPath
  /** The held directory containing the target, or the target itself when `name` is undefined. */
  readonly dir: number
  readonly name: Uint8Array | undefined
  /** The target as a name in its held parent, even when it is the current directory; undefined for the root. */
  readonly entry: { readonly dir: number; readonly name: Uint8Array } | undefined
}

/** An operation's answer that the final component is a link to follow (`target`), or changed under it. */
class Redirect {
  readonly target: string | undefined
  constructor(target: string | undefined) {
    this.target = target
  }
}

/**
 * The answer for a final component that turned out to be a symbolic link:
 * follow it (or try again if it is no longer a link).
 */
const followLinkAt = async (dir: number, name: Uint8Array): Promise<Redirect> => {
  try {
    return new Redirect(await readLinkAt(dir, name))
  } catch (e) {
    const code = errnoOf(e)
    if (code === "EINVAL" || code === "ENOENT") return new Redirect(undefined)
    throw e
  }
}

type Entered = { readonly found: Jail.Found; readonly fd?: number | undefined }

const MISSING: Entered = { found: { _tag: "Missing" } }
const NOT_DIRECTORY: Entered = { found: { _tag: "NotDirectory" } }
const CHANGED: Entered = { found: { _tag: "Changed" } }

/** Opens one component of a walk without following it: a directory to hold, a link to resolve, or neither. */
const enter = async (dir: number, name: Uint8Array): Promise<Entered> => {
  try {
    return { found: { _tag: "Directory" }, fd: await openFd(at(dir, name), O_PATH | O_DIRECTORY | O_NOFOLLOW) }
  } catch (e) {
    const code = errnoOf(e)
    if (code === "ENOENT") return MISSING
    if (code !== "ENOTDIR") throw e
  }
  try {
    return { found: { _tag: "Link", target: await readLinkAt(dir, name) } }
  } catch (e) {
    const code = errnoOf(e)
    if (code === "EINVAL") return NOT_DIRECTORY
    if (code === "ENOENT") return CHANGED
    throw e
  }
}

/** An open directory handle: a held descriptor (for the entries' lstat) and a stream of its entries. */
export interface OpenedDirectory {
  readonly fd: number
  readonly dir: Fs.Dir
  /** The attributes of its ".." entry, taken from the held parent when it was opened. */
  readonly parent: Fs.Stats
}

/** Attribute changes, in the order SFTP applies them. */
export interface AttributeChanges {
  readonly size?: number | undefined
  readonly permissions?: number | undefined
  readonly uid?: number | undefined
  readonly gid?: number | undefined
  readonly atime?: number | undefined
  readonly mtime?: number | undefined
}

/** Entries a directory stream buffers from each getdents (Node's default). */
const DIRECTORY_BUFFER = 32

/**
 * Applies attribute changes to the inode a path names (a `/proc/self/fd/<fd>` path: the held inode).
 *
 * @example
 * ```ts
 * await applyChanges(`/proc/self/fd/${fd}`, { permissions: 0o644 })
 * ```
 */
export const applyChanges = async (path: string, changes: AttributeChanges): Promise<void> => {
  if (changes.size !== undefined) await FsPromises.truncate(path, changes.size)
  if (changes.permissions !== undefined) await FsPromises.chmod(path, changes.permissions & 0o7777)
  if (changes.uid !== undefined && changes.gid !== undefined) await FsPromises.chown(path, changes.uid, changes.gid)
  if (changes.atime !== undefined && changes.mtime !== undefined) await FsPromises.utimes(path, changes.atime, changes.mtime)
}

/**
 * Why the jailed file system cannot run here, or undefined when it can: it
 * needs Linux's O_PATH and `/proc/self/fd` links that lead to the held inode.
 *
 * @example
 * ```ts
 * const reason = unsupportedReason(rootFd)
 * if (reason !== undefined) throw new Error(reason)
 * ```
 */
const unsupportedReason = (rootFd: number): string | undefined => {
  try {
    const held = Fs.fstatSync(rootFd)
    const through = Fs.statSync(`${self(rootFd)}/.`)
    if (held.dev === through.dev && held.ino === through.ino) return undefined
    return "/proc/self/fd/<fd> does not lead to the directory the descriptor holds"
  } catch (e) {
    return `/proc/self/fd is not usable (${errnoOf(e) ?? String(e)})`
  }
}

/**
 * This platform cannot host the jail (not Linux, or `/proc/self/fd` missing or not behaving as on Linux).
 *
 * @example
 * ```ts
 * if (e instanceof JailUnsupported) console.error(e.message)
 * ```
 */
export class JailUnsupported extends Error {}

/**
 * A jail root held open, and every file operation on paths inside it. Close it
 * when the session ends: the root's descriptor stays open until the last walk
 * in flight has finished, so no walk ever names a descriptor number reused by
 * something else.
 *
 * @example
 * ```ts
 * const jail = await JailedFs.open("/srv/sftp")
 * const file = await jail.openFile("/docs/readme", Fs.constants.O_RDONLY, 0)
 * ```
 */
export class JailedFs {
  private readonly rootFd: number
  private active = 0
  private closing = false

  private constructor(rootFd: number) {
    this.rootFd = rootFd
  }

  /**
   * Holds `root` (an absolute host path, its own symlinks already resolved).
   * Rejects with `SftpStatus` when it cannot be opened as a directory, and
   * with `JailUnsupported` saying why when the platform cannot host the jail.
   */
  static async open(root: string): Promise<JailedFs> {
    if (process.platform !== "linux") {
      throw new JailUnsupported(`the jailed SFTP file system needs Linux (O_PATH and /proc/self/fd); this is ${process.platform}`)
    }
    const fd = await openFd(root, O_PATH | O_DIRECTORY).catch((e) => {
      const code = errnoOf(e)
      throw code === "ENOENT" || code === "ENOTDIR"
        ? new SftpStatus({ code: StatusCode.NoSuchFile, message: "the SFTP root is not a directory", path: root })
        : new SftpStatus({ code: StatusCode.Failure, message: `cannot open the SFTP root (${code ?? "unknown error"})`, path: root })
    })
    const reason = unsupportedReason(fd)
    if (reason !== undefined) {
      closeFd(fd)
      throw new JailUnsupported(`the jailed SFTP file system cannot run here: ${reason}`)
    }
    return new JailedFs(fd)
  }

  /** Releases the root once no walk is in flight; later operations fail. */
  close(): void {
    if (this.closing) return
    this.closing = true
    if (this.active === 0) closeFd(this.rootFd)
  }

  /**
   * Walks `path` from the root and runs `op` on where it ends, with every
   * descriptor of the walk held meanwhile and closed after, whatever happens.
   * `op` answers a `Redirect` when the final component is a link it follows.
   */
  private async walk<A>(
    path: string,
    op: (place: Place) => Promise<A | Redirect>,
    /** For a lexical walk (realpath): the answer when a directory on the way does not exist. */
    unreached?: (path: Jail.VirtualPath) => A
  ): Promise<A> {
    if (this.closing) throw errno("EBADF")
    this.active++
    const held: Array<number | undefined> = [this.rootFd]
    try {
      const walk = new Jail.Walk(path, { lexical: unreached !== undefined })
      for (;;) {
        const step = walk.next()
        switch (step._tag) {
          case "Open": {
            const entered = await enter(held[walk.depth]!, encodeByteString(step.name))
            if (entered.fd !== undefined) held.push(entered.fd)
            walk.feed(entered.found)
            break
          }
          case "Close":
            closeFd(held[step.depth]!)
            held[step.depth] = undefined
            break
          case "Ascend":
            while (held.length > step.depth + 1) {
              const fd = held.pop()
              if (fd !== undefined) closeFd(fd)
            }
            break
          case "Unreached":
            return unreached!(step.path)
          case "Done": {
            const depth = walk.depth
            const name = step.name === undefined ? undefined : encodeByteString(step.name)
            const entry = name !== undefined
              ? { dir: held[depth]!, name }
              : depth === 0
              ? undefined
              : { dir: held[depth - 1]!, name: encodeByteString(Jail.basename(step.path)) }
            const result = await op({ path: step.path, dir: held[depth]!, name, entry })
            if (!(result instanceof Redirect)) return result
            if (result.target === undefined) walk.retry()
            else walk.follow(result.target)
          }
        }
      }
    } finally {
      for (let depth = 1; depth < held.length; depth++) {
        const fd = held[depth]
        if (fd !== undefined) closeFd(fd)
      }
      if (--this.active === 0 && this.closing) closeFd(this.rootFd)
    }
  }

  /** The target as a name in its parent, for operations on names (the root has none). */
  private entryOf(place: Place): { readonly dir: number; readonly name: Uint8Array } {
    return place.entry ?? (() => {
      throw errno("EBUSY")
    })()
  }

  /**
   * A final component opened without following it, as an `O_PATH` descriptor
   * (the current directory itself when the path ends in one), with its stats.
   * The caller closes it.
   */
  private async hold(place: Place): Promise<{ readonly fd: number; readonly stats: Fs.Stats }> {
    const fd = place.name === undefined ? await openFd(self(place.dir), O_PATH) : await openFd(at(place.dir, place.name), O_PATH | O_NOFOLLOW)
    try {
      return { fd, stats: await fstat(fd) }
    } catch (e) {
      closeFd(fd)
      throw e
    }
  }

  /** Runs `f` on the final component's inode, following it if it is a link. */
  private withInode<A>(path: string, f: (fd: number, stats: Fs.Stats) => Promise<A>): Promise<A> {
    return this.walk(path, async (place) => {
      const { fd, stats } = await this.hold(place)
      try {
        if (stats.isSymbolicLink()) return await followLinkAt(place.dir, place.name!)
        return await f(fd, stats)
      } finally {
        closeFd(fd)
      }
    })
  }

  /**
   * Stats of a path (lstat when not following a final link).
   *
   * @example
   * ```ts
   * const st = await jail.stat("/docs", true)
   * ```
   */
  stat(path: string, follow: boolean): Promise<Fs.Stats> {
    return this.walk(path, async (place) => {
      if (place.name === undefined) return fstat(place.dir)
      const st = await FsPromises.lstat(at(place.dir, place.name))
      return follow && st.isSymbolicLink() ? followLinkAt(place.dir, place.name) : st
    })
  }

  /**
   * Opens a file for I/O (`flags` as for `open(2)`; O_NOFOLLOW is added and a
   * final link is followed inside the jail). The FileHandle is the caller's.
   *
   * @example
   * ```ts
   * const file = await jail.openFile("/a.txt", Fs.constants.O_WRONLY | Fs.constants.O_CREAT, 0o644)
   * ```
   */
  openFile(path: string, flags: number, mode: number): Promise<FsPromises.FileHandle> {
    return this.walk(path, async (place) => {
      if (place.name === undefined) throw errno("EISDIR")
      try {
        return await FsPromises.open(at(place.dir, place.name), flags | O_NOFOLLOW, mode)
      } catch (e) {
        if (errnoOf(e) === "ELOOP") return followLinkAt(place.dir, place.name)
        throw e
      }
    })
  }

  /**
   * Opens a directory for listing (following a final link inside the jail).
   * The caller closes both `dir` and `fd`.
   *
   * @example
   * ```ts
   * const { dir, fd } = await jail.openDirectory("/docs")
   * ```
   */
  openDirectory(path: string): Promise<OpenedDirectory> {
    return this.walk(path, async (place) => {
      let fd: number
      if (place.name === undefined) fd = await openFd(self(place.dir), O_PATH | O_DIRECTORY)
      else {
        const entered = await enter(place.dir, place.name)
        if (entered.found._tag === "Link") return new Redirect(entered.found.target)
        if (entered.found._tag === "Changed") return new Redirect(undefined)
        if (entered.fd === undefined) throw errno(entered.found._tag === "Missing" ? "ENOENT" : "ENOTDIR")
        fd = entered.fd
      }
      try {
        const parent = await fstat(place.name === undefined ? (place.entry?.dir ?? place.dir) : place.dir)
        // names as Buffers (any bytes): Node takes "buffer" here, though @types/node types only text encodings
        const dir = await FsPromises.opendir(self(fd), { encoding: "buffer" as BufferEncoding, bufferSize: DIRECTORY_BUFFER })
        return { fd, dir, parent }
      } catch (e) {
        closeFd(fd)
        throw e
      }
    })
  }

  /**
   * Stats of a directory entry, by name in a held directory (not following it).
   *
   * @example
   * ```ts
   * const st = await JailedFs.entryStat(opened.fd, name)
   * ```
   */
  static entryStat(dir: number, name: Uint8Array): Promise<Fs.Stats> {
    return FsPromises.lstat(at(dir, name))
  }

  /**
   * Applies attribute changes to a path's inode, following a final link
   * unless `follow` is false (then a link's owner and times change, and its
   * mode or size cannot: OpUnsupported).
   *
   * @example
   * ```ts
   * await jail.setAttributes("/a.txt", true, { permissions: 0o600 })
   * ```
   */
  setAttributes(path: string, follow: boolean, changes: AttributeChanges): Promise<void> {
    if (follow) return this.withInode(path, (fd) => applyChanges(self(fd), changes))
    return this.walk(path, async (place) => {
      const { fd, stats } = await this.hold(place)
      try {
        if (stats.isSymbolicLink()) {
          if (changes.size !== undefined) throw new SftpStatus({ code: StatusCode.OpUnsupported, message: "lsetstat cannot set a size" })
          if (changes.permissions !== undefined) {
            throw new SftpStatus({ code: StatusCode.OpUnsupported, message: "symbolic links have no permissions here" })
          }
        }
        // through the held descriptor: a link's own inode, never what it points to
        await applyChanges(self(fd), changes)
      } finally {
        closeFd(fd)
      }
    })
  }

  /**
   * statfs(2) of the file system holding a path (following a final link).
   *
   * @example
   * ```ts
   * const st = await jail.statfs("/")
   * ```
   */
  statfs(path: string): Promise<Fs.BigIntStatsFs> {
    return this.withInode(path, (fd) => FsPromises.statfs(self(fd), { bigint: true }))
  }

  /**
   * The jail path a path resolves to, all links followed; components that do
   * not exist are taken as they are spelt.
   *
   * @example
   * ```ts
   * await jail.realpath("/docs/../link") // "/target"
   * ```
   */
  realpath(path: string): Promise<Jail.VirtualPath> {
    return this.walk(path, async (place) => {
      if (place.name === undefined) return place.path
      const st = await FsPromises.lstat(at(place.dir, place.name)).catch((e) => {
        if (errnoOf(e) === "ENOENT") return undefined
        throw e
      })
      return st?.isSymbolicLink() ? followLinkAt(place.dir, place.name) : place.path
    }, (path) => path)
  }

  /**
   * Removes a file (not a directory), or a link itself.
   *
   * @example
   * ```ts
   * await jail.unlink("/old.txt")
   * ```
   */
  unlink(path: string): Promise<void> {
    return this.walk(path, (place) => {
      const entry = this.entryOf(place)
      return FsPromises.unlink(at(entry.dir, entry.name))
    })
  }

  /**
   * Makes a directory with `mode` (before the process umask).
   *
   * @example
   * ```ts
   * await jail.mkdir("/new", 0o755)
   * ```
   */
  mkdir(path: string, mode: number): Promise<void> {
    return this.walk(path, async (place) => {
      if (place.name === undefined) throw errno("EEXIST")
      await FsPromises.mkdir(at(place.dir, place.name), { mode })
    })
  }

  /**
   * Removes an empty directory.
   *
   * @example
   * ```ts
   * await jail.rmdir("/empty")
   * ```
   */
  rmdir(path: string): Promise<void> {
    return this.walk(path, (place) => {
      const entry = this.entryOf(place)
      return FsPromises.rmdir(at(entry.dir, entry.name))
    })
  }

  /**
   * Reads a link's target, as stored.
   *
   * @example
   * ```ts
   * await jail.readlink("/link") // "../target"
   * ```
   */
  readlink(path: string): Promise<string> {
    return this.walk(path, (place) => {
      if (place.name === undefined) throw errno("EINVAL")
      return readLinkAt(place.dir, place.name)
    })
  }

  /**
   * Makes a symbolic link at `path` holding `target` as given (it is only ever followed through the jail).
   *
   * @example
   * ```ts
   * await jail.symlink("../target", "/link")
   * ```
   */
  symlink(target: string, path: string): Promise<void> {
    return this.walk(path, async (place) => {
      if (place.name === undefined) throw errno("EEXIST")
      await FsPromises.symlink(Buffer.from(encodeByteString(target)), at(place.dir, place.name))
    })
  }

  /** Runs `f` with both paths walked and held. */
  private both<A>(
    from: string,
    to: string,
    f: (from: { readonly dir: number; readonly name: Uint8Array }, to: { readonly dir: number; readonly name: Uint8Array }) => Promise<A>
  ): Promise<A> {
    return this.walk(from, (source) => this.walk(to, (target) => f(this.entryOf(source), this.entryOf(target))))
  }

  /**
   * Renames `from` to `to`. With `replace` false an existing `to` is refused
   * (SFTP v3 RENAME): a file moves by link + unlink, which cannot replace;
   * anything else is checked first, then renamed.
   *
   * @example
   * ```ts
   * await jail.rename("/a", "/b", true)
   * ```
   */
  rename(from: string, to: string, replace: boolean): Promise<void> {
    return this.both(from, to, async (source, target) => {
      const src = at(source.dir, source.name)
      const dst = at(target.dir, target.name)
      if (replace) return FsPromises.rename(src, dst)
      if ((await FsPromises.lstat(src)).isFile()) {
        await FsPromises.link(src, dst)
        await FsPromises.unlink(src)
        return
      }
      if (await FsPromises.lstat(dst).then(() => true, () => false)) throw errno("EEXIST")
      await FsPromises.rename(src, dst)
    })
  }

  /**
   * Makes `to` another name of `from` (a link itself is linked, not followed).
   *
   * @example
   * ```ts
   * await jail.link("/a", "/b")
   * ```
   */
  link(from: string, to: string): Promise<void> {
    return this.both(from, to, (source, target) => FsPromises.link(at(source.dir, source.name), at(target.dir, target.name)))
  }
}

/**
 * The `/proc/self/fd` path of a descriptor: path-taking calls on it act on
 * the inode it holds (used for operations on open handles).
 *
 * @example
 * ```ts
 * await FsPromises.statfs(descriptorPath(file.fd), { bigint: true })
 * ```
 */
export const descriptorPath = self

/**
 * Closes a raw descriptor, ignoring failure (it is released either way).
 *
 * @example
 * ```ts
 * closeDescriptor(opened.fd)
 * ```
 */
export const closeDescriptor = closeFd
