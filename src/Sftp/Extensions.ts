/**
 * OpenSSH SFTP extensions (openssh/PROTOCOL §4): the typed EXTENDED requests
 * and the bodies of their EXTENDED_REPLY answers.
 *
 * A request is a packet like any other (`{ _tag: "Fsync", id, handle }`);
 * `Messages.encode` writes it as SSH_FXP_EXTENDED with its request name, and
 * `Messages.decode` turns an EXTENDED packet with a known name back into it.
 * An EXTENDED_REPLY does not say which request it answers, so its body is
 * decoded here by the caller that knows (`decodeVfsStats(reply.data)`).
 *
 * copy-data and home-directory follow draft-ietf-secsh-filexfer-extensions-00
 * (as OpenSSH implements them); the rest are OpenSSH's `@openssh.com` requests.
 * statvfs numbers are `bigint`: `f_fsid` is an arbitrary 64-bit value and block
 * counts are multiplied by block sizes. Limits are `number`s, saturated at
 * 2^53 - 1 (a larger limit is no limit).
 *
 * @since 0.1.0
 */
import { readByteString } from "../internal/byteString.ts"
import { FieldList, readSafeUint64, readSaturatingUint64 } from "../internal/fieldList.ts"
import { checkHandle, readHandle } from "../internal/sftpHandle.ts"
import { ProtocolError } from "../SshError.ts"
import { Reader } from "../Wire/Reader.ts"
import * as Attributes from "./Attributes.ts"
import type { ExtensionPair } from "./Messages.ts"

/**
 * Request names of the supported extensions, as sent in EXTENDED and advertised in VERSION.
 *
 * @example
 * ```ts
 * ExtensionName.PosixRename // "posix-rename@openssh.com"
 * ```
 */
export const ExtensionName = {
  PosixRename: "posix-rename@openssh.com",
  StatVfs: "statvfs@openssh.com",
  FstatVfs: "fstatvfs@openssh.com",
  Hardlink: "hardlink@openssh.com",
  Fsync: "fsync@openssh.com",
  Lsetstat: "lsetstat@openssh.com",
  Limits: "limits@openssh.com",
  ExpandPath: "expand-path@openssh.com",
  CopyData: "copy-data",
  HomeDirectory: "home-directory",
  UsersGroupsById: "users-groups-by-id@openssh.com"
} as const

/**
 * The extensions and versions OpenSSH's sftp-server advertises in VERSION, in
 * its order: what a server built on these codecs can announce.
 *
 * @example
 * ```ts
 * const version = { _tag: "Version", version: 3, extensions: OPENSSH_EXTENSIONS }
 * ```
 */
export const OPENSSH_EXTENSIONS: ReadonlyArray<ExtensionPair> = [
  { name: ExtensionName.PosixRename, data: "1" },
  { name: ExtensionName.StatVfs, data: "2" },
  { name: ExtensionName.FstatVfs, data: "2" },
  { name: ExtensionName.Hardlink, data: "1" },
  { name: ExtensionName.Fsync, data: "1" },
  { name: ExtensionName.Lsetstat, data: "1" },
  { name: ExtensionName.Limits, data: "1" },
  { name: ExtensionName.ExpandPath, data: "1" },
  { name: ExtensionName.CopyData, data: "1" },
  { name: ExtensionName.HomeDirectory, data: "1" },
  { name: ExtensionName.UsersGroupsById, data: "1" }
]

/**
 * Whether the peer advertised an extension, at the given version when one is
 * asked for ("Clients MUST check the version number before attempting to use
 * the extension"). Without a version, any advertised version counts.
 *
 * @example
 * ```ts
 * supports(version.extensions, ExtensionName.StatVfs, "2") // true for OpenSSH
 * ```
 */
export const supports = (
  advertised: ReadonlyArray<ExtensionPair>,
  name: string,
  version?: string | undefined
): boolean => advertised.some((e) => e.name === name && (version === undefined || e.data === version))

/** posix-rename@openssh.com: rename(2) semantics (replaces newPath). Answered by STATUS. */
export interface PosixRename {
  readonly _tag: "PosixRename"
  readonly id: number
  readonly oldPath: string
  readonly newPath: string
}

/** statvfs@openssh.com on a path. Answered by EXTENDED_REPLY (`decodeVfsStats`) or STATUS. */
export interface StatVfs {
  readonly _tag: "StatVfs"
  readonly id: number
  readonly path: string
}

/** fstatvfs@openssh.com on an open handle. Answered by EXTENDED_REPLY (`decodeVfsStats`) or STATUS. */
export interface FstatVfs {
  readonly _tag: "FstatVfs"
  readonly id: number
  readonly handle: Uint8Array
}

/** hardlink@openssh.com: link(oldPath, newPath). Answered by STATUS. */
export interface Hardlink {
  readonly _tag: "Hardlink"
  readonly id: number
  readonly oldPath: string
  readonly newPath: string
}

/** fsync@openssh.com on an open handle. Answered by STATUS. */
export interface Fsync {
  readonly _tag: "Fsync"
  readonly id: number
  readonly handle: Uint8Array
}

/** lsetstat@openssh.com: SETSTAT that does not follow a final symlink. Answered by STATUS. */
export interface Lsetstat {
  readonly _tag: "Lsetstat"
  readonly id: number
  readonly path: string
  readonly attrs: Attributes.Attributes
}

/** limits@openssh.com. Answered by EXTENDED_REPLY (`decodeLimits`). */
export interface Limits {
  readonly _tag: "Limits"
  readonly id: number
}

/** expand-path@openssh.com: REALPATH with "~" and "~user" expansion. Answered by NAME (one entry) or STATUS. */
export interface ExpandPath {
  readonly _tag: "ExpandPath"
  readonly id: number
  readonly path: string
}

/**
 * copy-data: server-side copy between two open handles. `readLength` 0 means
 * up to end of file. Answered by STATUS.
 */
export interface CopyData {
  readonly _tag: "CopyData"
  readonly id: number
  readonly readHandle: Uint8Array
  readonly readOffset: number
  readonly readLength: number
  readonly writeHandle: Uint8Array
  readonly writeOffset: number
}

/** home-directory: a user's home directory ("" = the current user). Answered by NAME (one entry) or STATUS. */
export interface HomeDirectory {
  readonly _tag: "HomeDirectory"
  readonly id: number
  readonly username: string
}

/**
 * users-groups-by-id@openssh.com: names for numeric ids. Answered by
 * EXTENDED_REPLY (`decodeUserGroupNames`) or STATUS.
 */
export interface UsersGroupsById {
  readonly _tag: "UsersGroupsById"
  readonly id: number
  readonly uids: ReadonlyArray<number>
  readonly gids: ReadonlyArray<number>
}

/** Every typed extension request. */
export type ExtensionRequest =
  | PosixRename
  | StatVfs
  | FstatVfs
  | Hardlink
  | Fsync
  | Lsetstat
  | Limits
  | ExpandPath
  | CopyData
  | HomeDirectory
  | UsersGroupsById

interface Codec<R> {
  readonly name: string
  readonly write: (f: FieldList, request: R) => unknown
  readonly read: (r: Reader, id: number) => ExtensionRequest
}

type Codecs = { readonly [K in ExtensionRequest["_tag"]]: Codec<Extract<ExtensionRequest, { _tag: K }>> }

const fail = (message: string): never => {
  throw new ProtocolError({ message })
}

const UINT32_BYTES = 4

const packIds = (ids: ReadonlyArray<number>, what: string): Uint8Array => {
  const f = new FieldList()
  for (const id of ids) f.uint32(id, what)
  return f.bytes()
}

const unpackIds = (packed: Uint8Array, what: string): Array<number> => {
  if (packed.length % UINT32_BYTES !== 0) fail(`${what} is ${packed.length} bytes, not a multiple of 4`)
  const r = new Reader(packed)
  const ids: Array<number> = []
  while (r.remaining > 0) ids.push(r.uint32())
  return ids
}

interface TwoPathShape {
  readonly _tag: "PosixRename" | "Hardlink"
  readonly id: number
  readonly oldPath: string
  readonly newPath: string
}

interface PathShape {
  readonly _tag: "StatVfs" | "ExpandPath"
  readonly id: number
  readonly path: string
}

interface HandleShape {
  readonly _tag: "FstatVfs" | "Fsync"
  readonly id: number
  readonly handle: Uint8Array
}

const twoPathCodec = (tag: TwoPathShape["_tag"]): Codec<TwoPathShape> => ({
  name: ExtensionName[tag],
  write: (f, p) => f.text(p.oldPath).text(p.newPath),
  read: (r, id) => ({ _tag: tag, id, oldPath: readByteString(r, "oldpath"), newPath: readByteString(r, "newpath") })
})

const pathCodec = (tag: PathShape["_tag"]): Codec<PathShape> => ({
  name: ExtensionName[tag],
  write: (f, p) => f.text(p.path),
  read: (r, id) => ({ _tag: tag, id, path: readByteString(r, "path") })
})

const handleCodec = (tag: HandleShape["_tag"]): Codec<HandleShape> => ({
  name: ExtensionName[tag],
  write: (f, p) => f.string(checkHandle(p.handle)),
  read: (r, id) => ({ _tag: tag, id, handle: readHandle(r) })
})

const codecs: Codecs = {
  PosixRename: twoPathCodec("PosixRename"),
  StatVfs: pathCodec("StatVfs"),
  FstatVfs: handleCodec("FstatVfs"),
  Hardlink: twoPathCodec("Hardlink"),
  Fsync: handleCodec("Fsync"),
  Lsetstat: {
    name: ExtensionName.Lsetstat,
    write: (f, p) => Attributes.writeTo(f.text(p.path), p.attrs),
    read: (r, id) => ({ _tag: "Lsetstat", id, path: readByteString(r, "path"), attrs: Attributes.read(r) })
  },
  Limits: {
    name: ExtensionName.Limits,
    write: () => undefined,
    read: (_r, id) => ({ _tag: "Limits", id })
  },
  ExpandPath: pathCodec("ExpandPath"),
  CopyData: {
    name: ExtensionName.CopyData,
    write: (f, p) =>
      f
        .string(checkHandle(p.readHandle))
        .uint64(p.readOffset, "read-from-offset")
        .uint64(p.readLength, "read-data-length")
        .string(checkHandle(p.writeHandle))
        .uint64(p.writeOffset, "write-to-offset"),
    read: (r, id) => ({
      _tag: "CopyData",
      id,
      readHandle: readHandle(r),
      readOffset: readSafeUint64(r, "read-from-offset"),
      readLength: readSafeUint64(r, "read-data-length"),
      writeHandle: readHandle(r),
      writeOffset: readSafeUint64(r, "write-to-offset")
    })
  },
  HomeDirectory: {
    name: ExtensionName.HomeDirectory,
    write: (f, p) => f.text(p.username),
    read: (r, id) => ({ _tag: "HomeDirectory", id, username: readByteString(r, "username") })
  },
  UsersGroupsById: {
    name: ExtensionName.UsersGroupsById,
    write: (f, p) => f.string(packIds(p.uids, "uid")).string(packIds(p.gids, "gid")),
    read: (r, id) => ({
      _tag: "UsersGroupsById",
      id,
      uids: unpackIds(r.string("uids"), "uids"),
      gids: unpackIds(r.string("gids"), "gids")
    })
  }
}

const byName: ReadonlyMap<string, Codec<ExtensionRequest>> = new Map(
  Object.values(codecs).map((c) => [c.name, c as Codec<ExtensionRequest>])
)

/**
 * Whether a packet tag names a typed extension request.
 *
 * @example
 * ```ts
 * isExtensionTag("Fsync") // true
 * ```
 */
export const isExtensionTag = (tag: string): tag is ExtensionRequest["_tag"] => Object.hasOwn(codecs, tag)

/**
 * The request name a typed extension request is sent under.
 *
 * @example
 * ```ts
 * requestName({ _tag: "Limits", id: 1 }) // "limits@openssh.com"
 * ```
 */
export const requestName = (request: ExtensionRequest): string => codecs[request._tag].name

/**
 * Appends the request-specific fields (after the request name) to a field list.
 *
 * @example
 * ```ts
 * writeRequest(new FieldList(), { _tag: "Fsync", id: 3, handle })
 * ```
 */
export const writeRequest = (f: FieldList, request: ExtensionRequest): FieldList => {
  ;(codecs[request._tag] as Codec<ExtensionRequest>).write(f, request)
  return f
}

/**
 * Reads the fields of a known extension request after its name, or returns
 * `undefined` for a name this module does not know (left to the caller as a
 * generic EXTENDED packet). Throws `ProtocolError` on a malformed known request.
 *
 * @example
 * ```ts
 * readRequest(reader, 5, "fsync@openssh.com") // { _tag: "Fsync", id: 5, handle }
 * ```
 */
export const readRequest = (r: Reader, id: number, name: string): ExtensionRequest | undefined =>
  byName.get(name)?.read(r, id)

/** The answer to statvfs@openssh.com / fstatvfs@openssh.com (struct statvfs). */
export interface VfsStats {
  readonly bsize: bigint
  readonly frsize: bigint
  readonly blocks: bigint
  readonly bfree: bigint
  readonly bavail: bigint
  readonly files: bigint
  readonly ffree: bigint
  readonly favail: bigint
  readonly fsid: bigint
  readonly flag: bigint
  readonly namemax: bigint
}

const vfsFields: ReadonlyArray<keyof VfsStats> = [
  "bsize",
  "frsize",
  "blocks",
  "bfree",
  "bavail",
  "files",
  "ffree",
  "favail",
  "fsid",
  "flag",
  "namemax"
]

/**
 * Bits of `VfsStats.flag` (SSH_FXE_STATVFS_ST_*).
 *
 * @example
 * ```ts
 * (stats.flag & VfsFlag.ReadOnly) !== 0n
 * ```
 */
export const VfsFlag = {
  ReadOnly: 0x1n,
  NoSuid: 0x2n
} as const

const decodeWhole = <A>(data: Uint8Array, what: string, f: (r: Reader) => A): A => {
  const r = new Reader(data)
  const value = f(r)
  r.end(what)
  return value
}

/**
 * Encodes a statvfs reply body (11 uint64s).
 *
 * @example
 * ```ts
 * const reply = { _tag: "ExtendedReply", id, data: encodeVfsStats(stats) }
 * ```
 */
export const encodeVfsStats = (stats: VfsStats): Uint8Array => {
  const f = new FieldList()
  for (const field of vfsFields) f.bigUint64(stats[field], field)
  return f.bytes()
}

/**
 * Decodes a statvfs reply body.
 *
 * @example
 * ```ts
 * const free = decodeVfsStats(reply.data).bavail * decodeVfsStats(reply.data).frsize
 * ```
 */
export const decodeVfsStats = (data: Uint8Array): VfsStats =>
  decodeWhole(data, "statvfs reply", (r) => {
    const stats: Record<string, bigint> = {}
    for (const field of vfsFields) stats[field] = r.uint64()
    return stats as unknown as VfsStats
  })

/** The answer to limits@openssh.com; 0 means the server sets no limit. */
export interface ServerLimits {
  readonly maxPacketLength: number
  readonly maxReadLength: number
  readonly maxWriteLength: number
  readonly maxOpenHandles: number
}

/**
 * Encodes a limits reply body (4 uint64s).
 *
 * @example
 * ```ts
 * encodeLimits({ maxPacketLength: 262144, maxReadLength: 261120, maxWriteLength: 261120, maxOpenHandles: 0 })
 * ```
 */
export const encodeLimits = (limits: ServerLimits): Uint8Array =>
  new FieldList()
    .uint64(limits.maxPacketLength, "max-packet-length")
    .uint64(limits.maxReadLength, "max-read-length")
    .uint64(limits.maxWriteLength, "max-write-length")
    .uint64(limits.maxOpenHandles, "max-open-handles")
    .bytes()

/**
 * Decodes a limits reply body; values above 2^53 - 1 read as `Number.MAX_SAFE_INTEGER`.
 *
 * @example
 * ```ts
 * const chunk = Math.min(decodeLimits(reply.data).maxReadLength || 32768, 256 * 1024)
 * ```
 */
export const decodeLimits = (data: Uint8Array): ServerLimits =>
  decodeWhole(data, "limits reply", (r) => ({
    maxPacketLength: readSaturatingUint64(r),
    maxReadLength: readSaturatingUint64(r),
    maxWriteLength: readSaturatingUint64(r),
    maxOpenHandles: readSaturatingUint64(r)
  }))

/** The answer to users-groups-by-id@openssh.com: names in request order, "" when unknown. */
export interface UserGroupNames {
  readonly usernames: ReadonlyArray<string>
  readonly groupnames: ReadonlyArray<string>
}

const packNames = (names: ReadonlyArray<string>): Uint8Array => {
  const f = new FieldList()
  for (const n of names) f.text(n)
  return f.bytes()
}

const unpackNames = (packed: Uint8Array, what: string): Array<string> =>
  decodeWhole(packed, what, (r) => {
    const names: Array<string> = []
    while (r.remaining > 0) names.push(readByteString(r, what))
    return names
  })

/**
 * Encodes a users-groups-by-id reply body.
 *
 * @example
 * ```ts
 * encodeUserGroupNames({ usernames: ["root"], groupnames: ["wheel", ""] })
 * ```
 */
export const encodeUserGroupNames = (names: UserGroupNames): Uint8Array =>
  new FieldList().string(packNames(names.usernames)).string(packNames(names.groupnames)).bytes()

/**
 * Decodes a users-groups-by-id reply body.
 *
 * @example
 * ```ts
 * decodeUserGroupNames(reply.data).usernames // ["root"]
 * ```
 */
export const decodeUserGroupNames = (data: Uint8Array): UserGroupNames =>
  decodeWhole(data, "users-groups-by-id reply", (r) => ({
    usernames: unpackNames(r.string("usernames"), "usernames"),
    groupnames: unpackNames(r.string("groupnames"), "groupnames")
  }))
