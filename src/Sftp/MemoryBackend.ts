/**
 * An SFTP backend held in memory, for tests and demos: a tree of
 * directories, files as byte arrays, symbolic links and hard links, with
 * modes, owners, times and sizes, shared by every session of the server it
 * is given to and gone with it.
 *
 * ```ts
 * const backend = SftpMemoryBackend.make({ maxBytes: 16 * 1024 * 1024 })
 * yield* SshServer.serve({ port: 0, hostKeys: [hostKey], auth: serverAuth, sftp: SftpServer.make(backend) })
 * ```
 *
 * Paths are resolved as on the disk, by the same walk (`Jail.Walk`): "/" is
 * the root, ".." at the root stays there, and a link's target is followed
 * inside the tree (an absolute one from the root). Permission bits are kept
 * and reported, not enforced: every session may do anything.
 *
 * It is bounded: `maxBytes` counts the memory each file's bytes take (its
 * capacity) and a fixed cost per name (`ENTRY_BYTES` plus the name's length,
 * and a link's target), so neither a large file nor a flood of empty ones can
 * grow it past the limit. A write, truncate or create that would goes no
 * further and fails with NO_SPACE_ON_FILESYSTEM, which `SftpServer` sends a
 * v3 client as FAILURE, "No space on file system" (what OpenSSH's
 * sftp-server answers an ENOSPC with). A file's bytes are freed when its last
 * name is removed and its last handle closed.
 *
 * The test or program that made it sees the tree as the clients left it:
 * `readFile`, `writeFile`, `makeDirectory` and `snapshot`, and `files` seeds
 * it when it is made.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import { SftpStatus } from "../SshError.ts"
import type * as Attributes from "./Attributes.ts"
import { FileMode } from "./Attributes.ts"
import type { DirectoryEntry, DirectoryHandle, FileHandle, Backend } from "./Backend.ts"
import { longName, status } from "./Backend.ts"
import type { VfsStats } from "./Extensions.ts"
import * as Jail from "./Jail.ts"
import { OpenFlags } from "./Messages.ts"
import { StatusCode } from "./Status.ts"

/** Options of an in-memory backend. */
export interface MemoryOptions {
  /** The most memory its files and names may take, in bytes (default 64 MiB). */
  readonly maxBytes?: number | undefined
  /** The owner reported for everything created (default 0 and 0). */
  readonly uid?: number | undefined
  readonly gid?: number | undefined
  /**
   * Files it starts with, by absolute path (a string is stored as UTF-8); missing directories on the way are made.
   * They count against `maxBytes`: `make` throws the NO_SPACE_ON_FILESYSTEM status if they do not fit.
   */
  readonly files?: Readonly<Record<string, Uint8Array | string>> | undefined
}

/** One name in the tree, as `snapshot` lists it. */
export interface MemoryEntry {
  /** Absolute, as a client would spell it ("/" is the root). */
  readonly path: string
  readonly type: "File" | "Directory" | "Link"
  /** Permission bits (without the type bits). */
  readonly permissions: number
  /** A file's length, a link's target's; 0 for a directory. */
  readonly size: number
  readonly uid: number
  readonly gid: number
  readonly atime: number
  readonly mtime: number
  /** A link's target, as stored. */
  readonly target?: string | undefined
}

/** An in-memory backend, and a look at what it holds. */
export interface MemoryBackend extends Backend {
  /** Bytes of `maxBytes` taken now. */
  readonly bytesUsed: () => number
  readonly maxBytes: number
  /** A file's contents (following links), for tests: what a client wrote. */
  readonly readFile: (path: string) => Effect.Effect<Uint8Array, SftpStatus>
  /** Creates or replaces a file (making missing directories on the way), for tests and demos: what a client will read. */
  readonly writeFile: (path: string, data: Uint8Array | string, permissions?: number) => Effect.Effect<void, SftpStatus>
  /** Makes a directory and any missing on the way (`mkdir -p`); one that exists is left as it is. */
  readonly makeDirectory: (path: string, permissions?: number) => Effect.Effect<void, SftpStatus>
  /** Every name in the tree now (the root apart), parents before children, names in creation order. */
  readonly snapshot: () => ReadonlyArray<MemoryEntry>
}

/**
 * What each name costs against `maxBytes` besides its own length: a bound on
 * the memory an entry, its node and its attributes take.
 *
 * @example
 * ```ts
 * SftpMemoryBackend.ENTRY_BYTES // 128
 * ```
 */
export const ENTRY_BYTES = 128

const DEFAULT_MAX_BYTES = 64 * 1024 * 1024
const BLOCK_SIZE = 4096

interface Meta {
  /** The permission bits (the type bits are the node's kind). */
  permissions: number
  uid: number
  gid: number
  atime: number
  mtime: number
}

interface FileNode extends Meta {
  readonly _tag: "File"
  /** The bytes, `size` of them used: the rest of the capacity is zero. */
  data: Uint8Array
  size: number
  /** Names it has (hard links) and handles open on it: its bytes are freed when both are 0. */
  links: number
  handles: number
}

interface DirectoryNode extends Meta {
  readonly _tag: "Directory"
  readonly entries: Map<string, Node>
  /** How many of `entries` are directories (its link count is 2 more), kept as they come and go. */
  subdirectories: number
}

interface LinkNode extends Meta {
  readonly _tag: "Link"
  readonly target: string
}

type Node = FileNode | DirectoryNode | LinkNode

const TYPE_BITS: Readonly<Record<Node["_tag"], number>> = {
  File: FileMode.Regular,
  Directory: FileMode.Directory,
  Link: FileMode.SymbolicLink
}

const now = (): number => Math.floor(Date.now() / 1000)

/** Where a walk ended: `name` in `dir`, or `dir` itself; `chain` is every directory from the root to `dir`. */
interface Place {
  readonly path: Jail.VirtualPath
  readonly dir: DirectoryNode
  readonly name: string | undefined
  readonly chain: ReadonlyArray<DirectoryNode>
}

/** An operation's answer that the final component is a link to follow. */
class Follow {
  readonly target: string
  constructor(target: string) {
    this.target = target
  }
}

const failure = (code: number, message?: string): never => {
  throw status(code, message)
}

const noSuchFile = (): never => failure(StatusCode.NoSuchFile)
const exists = (): never => failure(StatusCode.Failure, "File exists")
const isDirectory = (): never => failure(StatusCode.Failure, "Is a directory")

/** A synchronous operation on the tree, as an Effect; a throw that is not a status is a defect. */
const attempt = <A>(f: () => A): Effect.Effect<A, SftpStatus> =>
  Effect.try({
    try: f,
    catch: (e) => {
      if (e instanceof SftpStatus) return e
      throw e
    }
  })

/** What a name costs: its entry, and the name itself at two bytes a code unit (V8's widest strings). */
const bytesOfName = (name: string): number => ENTRY_BYTES + 2 * name.length

const linkCost = (node: Node): number => node._tag === "Link" ? 2 * node.target.length : 0

const utf8 = new TextEncoder()
const bytesOf = (data: Uint8Array | string): Uint8Array => typeof data === "string" ? utf8.encode(data) : data

/**
 * An in-memory backend for `SftpServer.make`: its root, and the `files` it is
 * seeded with. Throws the NO_SPACE_ON_FILESYSTEM status if they exceed
 * `maxBytes`.
 *
 * @example
 * ```ts
 * const backend = SftpMemoryBackend.make({ maxBytes: 1024 * 1024, files: { "/pub/hello.txt": "hello\n" } })
 * yield* SshServer.serve({ port: 0, hostKeys: [hostKey], auth: serverAuth, sftp: SftpServer.make(backend) })
 * // ... clients put and get ...
 * backend.snapshot().map((entry) => entry.path)   // ["/pub", "/pub/hello.txt", "/pub/upload.bin"]
 * const upload = yield* backend.readFile("/pub/upload.bin")
 * ```
 */
export const make = (options: MemoryOptions = {}): MemoryBackend => {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES
  const uid = options.uid ?? 0
  const gid = options.gid ?? 0
  let used = 0

  const meta = (permissions: number): Meta => {
    const t = now()
    return { permissions: permissions & 0o7777, uid, gid, atime: t, mtime: t }
  }

  const directory = (permissions: number): DirectoryNode => ({ _tag: "Directory", entries: new Map(), subdirectories: 0, ...meta(permissions) })

  const root = directory(0o755)

  const noSpace = (): never =>
    failure(StatusCode.NoSpaceOnFilesystem, `No space on file system (the in-memory file system holds ${maxBytes} bytes)`)

  const charge = (bytes: number): void => {
    if (bytes > maxBytes - used) noSpace()
    used += bytes
  }

  const free = (bytes: number): void => {
    used = Math.max(0, used - bytes)
  }

  const freeIfUnused = (file: FileNode): void => {
    if (file.links > 0 || file.handles > 0) return
    free(file.data.length)
    file.data = new Uint8Array(0)
  }

  /** Makes room for `size` bytes in a file, charging what its capacity grows by (doubling, within the limit). */
  const reserve = (file: FileNode, size: number): void => {
    const capacity = file.data.length
    if (size <= capacity) return
    const room = maxBytes - used
    if (size - capacity > room) noSpace()
    const grown = Math.min(Math.max(size, capacity * 2), capacity + room)
    charge(grown - capacity)
    const data = new Uint8Array(grown)
    data.set(file.data.subarray(0, file.size))
    file.data = data
  }

  /** Sets a file's size: bytes past it become zero, and capacity left mostly unused is given back. */
  const resize = (file: FileNode, size: number): void => {
    if (size > file.size) reserve(file, size)
    else {
      file.data.fill(0, size, file.size)
      if (size < file.data.length / 4) {
        free(file.data.length - size)
        file.data = file.data.slice(0, size)
      }
    }
    file.size = size
  }

  /**
   * Walks `path` from the root (see `Jail.Walk`) and runs `op` where it ends;
   * `op` answers `Follow` for a final link it follows. `unreached` answers a
   * lexical walk (realpath) whose directory on the way does not exist.
   */
  const walk = <A>(path: string, op: (place: Place) => A | Follow, unreached?: (path: Jail.VirtualPath) => A): A => {
    const held: Array<DirectoryNode> = [root]
    const steps = new Jail.Walk(path, { window: Number.MAX_SAFE_INTEGER, lexical: unreached !== undefined })
    for (;;) {
      const step = steps.next()
      switch (step._tag) {
        case "Open": {
          const node = held[steps.depth]!.entries.get(step.name)
          if (node === undefined) steps.feed({ _tag: "Missing" })
          else if (node._tag === "Directory") {
            held.push(node)
            steps.feed({ _tag: "Directory" })
          } else if (node._tag === "Link") steps.feed({ _tag: "Link", target: node.target })
          else steps.feed({ _tag: "NotDirectory" })
          break
        }
        case "Close":
          break
        case "Ascend":
          held.length = step.depth + 1
          break
        case "Unreached":
          return unreached!(step.path)
        case "Done": {
          const result = op({ path: step.path, dir: held[steps.depth]!, name: step.name, chain: held.slice() })
          if (!(result instanceof Follow)) return result
          steps.follow(result.target)
        }
      }
    }
  }

  /** The node a place names, following a final link when asked. */
  const nodeAt = (place: Place, follow: boolean): Node | Follow => {
    if (place.name === undefined) return place.dir
    const node = place.dir.entries.get(place.name) ?? noSuchFile()
    return follow && node._tag === "Link" ? new Follow(node.target) : node
  }

  /** The target as a name in its directory, even a path ending in "." (the root has none). */
  const entryOf = (place: Place): { readonly dir: DirectoryNode; readonly name: string } => {
    if (place.name !== undefined) return { dir: place.dir, name: place.name }
    const parent = place.chain.at(-2)
    return parent === undefined ? failure(StatusCode.Failure, "the root cannot be changed so") : { dir: parent, name: Jail.basename(place.path) }
  }

  const lookupNode = (path: string, follow: boolean): Node => walk(path, (place) => nodeAt(place, follow))

  const attributesOf = (node: Node): Attributes.Attributes => ({
    size: node._tag === "File" ? node.size : node._tag === "Link" ? utf8.encode(node.target).length : BLOCK_SIZE,
    uid: node.uid,
    gid: node.gid,
    permissions: TYPE_BITS[node._tag] | node.permissions,
    atime: node.atime,
    mtime: node.mtime
  })

  const linksOf = (node: Node): number =>
    node._tag === "File"
      ? node.links
      : node._tag === "Directory"
      ? 2 + node.subdirectories
      : 1

  const setAttributes = (node: Node, attrs: Attributes.Attributes): void => {
    if (attrs.size !== undefined) {
      if (node._tag === "Directory") isDirectory()
      if (node._tag === "Link") failure(StatusCode.OpUnsupported, "lsetstat cannot set a size")
      resize(node as FileNode, attrs.size)
      node.mtime = now()
    }
    if (attrs.permissions !== undefined) {
      if (node._tag === "Link") failure(StatusCode.OpUnsupported, "symbolic links have no permissions here")
      node.permissions = attrs.permissions & 0o7777
    }
    if (attrs.uid !== undefined && attrs.gid !== undefined) {
      node.uid = attrs.uid
      node.gid = attrs.gid
    }
    if (attrs.atime !== undefined && attrs.mtime !== undefined) {
      node.atime = attrs.atime
      node.mtime = attrs.mtime
    }
  }

  /** Adds a name for a node to a directory, charging its cost. */
  const link = (dir: DirectoryNode, name: string, node: Node): void => {
    charge(bytesOfName(name) + linkCost(node))
    dir.entries.set(name, node)
    dir.mtime = now()
    if (node._tag === "File") node.links++
    if (node._tag === "Directory") dir.subdirectories++
  }

  /** Removes a name from a directory, freeing its cost (and a file's bytes once nothing holds it). */
  const unlink = (dir: DirectoryNode, name: string): void => {
    const node = dir.entries.get(name)
    if (node === undefined) return
    dir.entries.delete(name)
    dir.mtime = now()
    if (node._tag === "Directory") dir.subdirectories--
    free(bytesOfName(name) + linkCost(node))
    if (node._tag === "File") {
      node.links--
      freeIfUnused(node)
    }
  }

  const vfsStats = (): VfsStats => {
    const blocks = BigInt(Math.floor(maxBytes / BLOCK_SIZE))
    const free = BigInt(Math.floor((maxBytes - used) / BLOCK_SIZE))
    const files = BigInt(Math.floor(maxBytes / ENTRY_BYTES))
    const filesFree = BigInt(Math.floor((maxBytes - used) / ENTRY_BYTES))
    return {
      bsize: BigInt(BLOCK_SIZE),
      frsize: BigInt(BLOCK_SIZE),
      blocks,
      bfree: free,
      bavail: free,
      files,
      ffree: filesFree,
      favail: filesFree,
      fsid: 0n,
      flag: 0n,
      namemax: 255n
    }
  }

  const fileHandle = (file: FileNode, flags: number): FileHandle => {
    let open = true
    file.handles++
    const readable = (flags & OpenFlags.Read) !== 0 || (flags & (OpenFlags.Write | OpenFlags.Append)) === 0
    const writable = (flags & (OpenFlags.Write | OpenFlags.Append)) !== 0
    const append = (flags & OpenFlags.Append) !== 0
    return {
      read: (offset, into) =>
        attempt(() => {
          if (!readable) failure(StatusCode.PermissionDenied, "file not open for reading")
          if (offset >= file.size) return 0
          const bytes = file.data.subarray(offset, Math.min(file.size, offset + into.length))
          into.set(bytes)
          return bytes.length
        }),
      write: (offset, data) =>
        attempt(() => {
          if (!writable) failure(StatusCode.PermissionDenied, "file not open for writing")
          // as pwrite(2) with O_APPEND on Linux: at the end, whatever the offset
          const at = append ? file.size : offset
          const end = at + data.length
          if (end > file.size) resize(file, end)
          file.data.set(data, at)
          file.mtime = now()
        }),
      stat: Effect.sync(() => attributesOf(file)),
      setstat: (attrs) => attempt(() => setAttributes(file, attrs)),
      close: Effect.sync(() => {
        if (!open) return
        open = false
        file.handles--
        freeIfUnused(file)
      }),
      sync: Effect.void,
      statvfs: Effect.sync(vfsStats)
    }
  }

  const directoryHandle = (dir: DirectoryNode, parent: DirectoryNode): DirectoryHandle => {
    // a live iterator over the directory's map: entries are read as the client asks, never copied whole
    const entries = dir.entries.entries()
    let started = false
    return {
      read: (max) =>
        Effect.sync(() => {
          const batch: Array<DirectoryEntry> = []
          if (!started) {
            started = true
            for (const [filename, node] of [[".", dir], ["..", parent]] as const) {
              const attrs = attributesOf(node)
              batch.push({ filename, attrs, longname: longName(filename, attrs, linksOf(node)) })
            }
          }
          while (batch.length < max) {
            const next = entries.next()
            if (next.done === true) break
            const [filename, node] = next.value
            const attrs = attributesOf(node)
            batch.push({ filename, attrs, longname: longName(filename, attrs, linksOf(node)) })
          }
          return batch
        }),
      stat: Effect.sync(() => attributesOf(dir)),
      setstat: (attrs) => attempt(() => setAttributes(dir, attrs)),
      close: Effect.void,
      statvfs: Effect.sync(vfsStats)
    }
  }

  /** The file OPEN names, created or truncated as `flags` say. */
  const openNode = (path: string, flags: number, permissions: number): FileNode =>
    walk(path, (place) => {
      if (place.name === undefined) return isDirectory()
      const found = place.dir.entries.get(place.name)
      const create = (flags & OpenFlags.Create) !== 0
      if (found !== undefined && create && (flags & OpenFlags.Exclusive) !== 0) return exists()
      if (found?._tag === "Link") return new Follow(found.target)
      if (found?._tag === "Directory") return isDirectory()
      if (found === undefined) {
        if (!create) return noSuchFile()
        const file: FileNode = { _tag: "File", data: new Uint8Array(0), size: 0, links: 0, handles: 0, ...meta(permissions) }
        link(place.dir, place.name, file)
        return file
      }
      if ((flags & OpenFlags.Truncate) !== 0 && (flags & (OpenFlags.Write | OpenFlags.Append)) !== 0) {
        resize(found, 0)
        found.mtime = now()
      }
      return found
    })

  const openFile = (path: string, flags: number, attrs: Attributes.Attributes): FileHandle =>
    fileHandle(openNode(path, flags, attrs.permissions ?? 0o644), flags)

  /** `mkdir -p`: each missing directory on the way is made, a link on the way followed. */
  const makeDirectories = (path: string, permissions: number): void => {
    const segments = Jail.segments(Jail.normalize(path))
    for (let depth = 1; depth <= segments.length; depth++) {
      walk("/" + segments.slice(0, depth).join("/"), (place) => {
        if (place.name === undefined) return
        const node = place.dir.entries.get(place.name)
        if (node === undefined) link(place.dir, place.name, directory(permissions))
        else if (node._tag === "Link") return new Follow(node.target)
        else if (node._tag === "File") failure(StatusCode.NoSuchFile, `${place.path} is not a directory`)
      })
    }
  }

  /** Creates or replaces a file with `data`, making the directories on the way. */
  const createFile = (path: string, data: Uint8Array, permissions: number): void => {
    makeDirectories(Jail.parent(Jail.normalize(path)), 0o755)
    const file = openNode(path, OpenFlags.Write | OpenFlags.Create | OpenFlags.Truncate, permissions)
    resize(file, data.length)
    file.data.set(data)
    file.mtime = now()
  }

  // depth-first without recursion: renames can nest directories deeper than the stack
  const snapshot = (): ReadonlyArray<MemoryEntry> => {
    const entries: Array<MemoryEntry> = []
    const stack: Array<{ readonly path: string; readonly names: Iterator<[string, Node]> }> = [{ path: "", names: root.entries.entries() }]
    while (stack.length > 0) {
      const top = stack.at(-1)!
      const next = top.names.next()
      if (next.done === true) {
        stack.pop()
        continue
      }
      const [name, node] = next.value
      const at = `${top.path}/${name}`
      entries.push({
        path: at,
        type: node._tag,
        permissions: node.permissions,
        size: node._tag === "File" ? node.size : node._tag === "Link" ? utf8.encode(node.target).length : 0,
        uid: node.uid,
        gid: node.gid,
        atime: node.atime,
        mtime: node.mtime,
        ...(node._tag === "Link" ? { target: node.target } : {})
      })
      if (node._tag === "Directory") stack.push({ path: at, names: node.entries.entries() })
    }
    return entries
  }

  const openDirectory = (path: string): DirectoryHandle =>
    walk(path, (place) => {
      if (place.name === undefined) return directoryHandle(place.dir, place.chain.at(-2) ?? root)
      const node = place.dir.entries.get(place.name) ?? noSuchFile()
      if (node._tag === "Link") return new Follow(node.target)
      if (node._tag !== "Directory") return noSuchFile()
      return directoryHandle(node, place.dir)
    })

  const rename = (oldPath: string, newPath: string, replace: boolean): void =>
    walk(oldPath, (source) =>
      walk(newPath, (target) => {
        const from = entryOf(source)
        const to = entryOf(target)
        const node = from.dir.entries.get(from.name) ?? noSuchFile()
        const existing = to.dir.entries.get(to.name)
        if (existing === node) return
        if (existing !== undefined) {
          if (!replace) return exists()
          if (node._tag === "Directory" && existing._tag !== "Directory") failure(StatusCode.NoSuchFile, "Not a directory")
          if (node._tag !== "Directory" && existing._tag === "Directory") isDirectory()
          if (existing._tag === "Directory" && existing.entries.size > 0) failure(StatusCode.Failure, "Directory not empty")
        }
        // a directory moved into itself would be lost from the tree
        if (node._tag === "Directory" && (target.chain.includes(node) || to.dir === node)) {
          failure(StatusCode.BadMessage, "a directory cannot move into itself")
        }
        // the same node under another name: only the names' costs differ, so a full tree can still rename
        const grows = bytesOfName(to.name) - bytesOfName(from.name) - (existing === undefined ? 0 : bytesOfName(to.name) + linkCost(existing))
        if (grows > 0) charge(grows)
        else free(-grows)
        if (existing?._tag === "File") {
          existing.links--
          freeIfUnused(existing)
        }
        if (existing?._tag === "Directory") to.dir.subdirectories--
        if (node._tag === "Directory") {
          from.dir.subdirectories--
          to.dir.subdirectories++
        }
        from.dir.entries.delete(from.name)
        to.dir.entries.set(to.name, node)
        from.dir.mtime = to.dir.mtime = now()
      }))

  const backend: MemoryBackend = {
    open: (path, flags, attrs) => attempt(() => openFile(path, flags, attrs)),
    opendir: (path) => attempt(() => openDirectory(path)),
    stat: (path) => attempt(() => attributesOf(lookupNode(path, true))),
    lstat: (path) => attempt(() => attributesOf(lookupNode(path, false))),
    setstat: (path, attrs) => attempt(() => setAttributes(lookupNode(path, true), attrs)),
    lsetstat: (path, attrs) => attempt(() => setAttributes(lookupNode(path, false), attrs)),
    mkdir: (path, attrs) =>
      attempt(() =>
        walk(path, (place) => {
          if (place.name === undefined || place.dir.entries.has(place.name)) return exists()
          link(place.dir, place.name, directory(attrs.permissions ?? 0o755))
        })
      ),
    rmdir: (path) =>
      attempt(() =>
        walk(path, (place) => {
          const { dir, name } = entryOf(place)
          const node = dir.entries.get(name) ?? noSuchFile()
          if (node._tag !== "Directory") return failure(StatusCode.NoSuchFile, "Not a directory")
          if (node.entries.size > 0) return failure(StatusCode.Failure, "Directory not empty")
          unlink(dir, name)
        })
      ),
    remove: (path) =>
      attempt(() =>
        walk(path, (place) => {
          const { dir, name } = entryOf(place)
          const node = dir.entries.get(name) ?? noSuchFile()
          if (node._tag === "Directory") return isDirectory()
          unlink(dir, name)
        })
      ),
    rename: (oldPath, newPath) => attempt(() => rename(oldPath, newPath, false)),
    posixRename: (oldPath, newPath) => attempt(() => rename(oldPath, newPath, true)),
    symlink: (targetPath, linkPath) =>
      attempt(() =>
        walk(linkPath, (place) => {
          if (place.name === undefined || place.dir.entries.has(place.name)) return exists()
          link(place.dir, place.name, { _tag: "Link", target: targetPath, ...meta(0o777) })
        })
      ),
    readlink: (path) =>
      attempt(() => {
        const node = lookupNode(path, false)
        return node._tag === "Link" ? node.target : failure(StatusCode.BadMessage, "not a symbolic link")
      }),
    realpath: (path) =>
      attempt(() =>
        walk(path, (place) => {
          const node = place.name === undefined ? undefined : place.dir.entries.get(place.name)
          return node?._tag === "Link" ? new Follow(node.target) : place.path
        }, (path) => path)
      ),
    statvfs: (path) => attempt(() => (lookupNode(path, true), vfsStats())),
    hardlink: (oldPath, newPath) =>
      attempt(() =>
        walk(oldPath, (source) =>
          walk(newPath, (target) => {
            const from = entryOf(source)
            const node = from.dir.entries.get(from.name) ?? noSuchFile()
            if (node._tag === "Directory") return failure(StatusCode.PermissionDenied, "directories cannot be hard linked")
            const to = entryOf(target)
            if (to.dir.entries.has(to.name)) return exists()
            link(to.dir, to.name, node)
          }))
      ),
    bytesUsed: () => used,
    maxBytes,
    readFile: (path) =>
      attempt(() => {
        const node = lookupNode(path, true)
        if (node._tag !== "File") return isDirectory()
        return node.data.slice(0, node.size)
      }),
    writeFile: (path, data, permissions = 0o644) => attempt(() => createFile(path, bytesOf(data), permissions & 0o7777)),
    makeDirectory: (path, permissions = 0o755) => attempt(() => makeDirectories(path, permissions & 0o7777)),
    snapshot
  }
  for (const [path, data] of Object.entries(options.files ?? {})) createFile(path, bytesOf(data), 0o644)
  return backend
}
