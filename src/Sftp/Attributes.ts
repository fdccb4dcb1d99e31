/**
 * SFTP v3 file attributes (ATTRS, draft-ietf-secsh-filexfer-02 §5): the codec
 * and helpers to read the file type and permission bits out of `permissions`.
 *
 * An attribute is present when its field is defined; the flags word is derived
 * from that. `uid`/`gid` share one flag, as do `atime`/`mtime`, so they must be
 * given together. `size` is a `number`: values above 2^53 - 1 are rejected as a
 * protocol error (no real file is that large). Times are seconds since the
 * epoch (uint32). `extended` holds the extended attributes in wire order; an
 * empty array still sets the EXTENDED flag, so decode∘encode is the identity.
 *
 * @since 0.1.0
 */
import { decodeByteString } from "../internal/byteString.ts"
import { FieldList, readSafeUint64 } from "../internal/fieldList.ts"
import { ProtocolError } from "../SshError.ts"
import { Reader } from "../Wire/Reader.ts"

/** One extended attribute: a `name@domain` type and opaque data. */
export interface ExtendedAttribute {
  readonly type: string
  readonly data: Uint8Array
}

/** SFTP v3 file attributes; absent fields are not sent. */
export interface Attributes {
  readonly size?: number | undefined
  readonly uid?: number | undefined
  readonly gid?: number | undefined
  readonly permissions?: number | undefined
  readonly atime?: number | undefined
  readonly mtime?: number | undefined
  readonly extended?: ReadonlyArray<ExtendedAttribute> | undefined
}

/**
 * The ATTRS flag bits (SSH_FILEXFER_ATTR_*).
 *
 * @example
 * ```ts
 * SftpAttributes.flags({ size: 1 }) === SftpAttributes.AttributeFlags.Size // true
 * ```
 */
export const AttributeFlags = {
  Size: 0x0000_0001,
  UidGid: 0x0000_0002,
  Permissions: 0x0000_0004,
  AcModTime: 0x0000_0008,
  Extended: 0x8000_0000
} as const

const KNOWN_FLAGS = AttributeFlags.Size | AttributeFlags.UidGid | AttributeFlags.Permissions |
  AttributeFlags.AcModTime | AttributeFlags.Extended

/** Smallest encoding of one extended pair: two empty strings. */
const MIN_EXTENDED_PAIR = 8

/**
 * No attributes (flags 0): what OPEN and MKDIR send for "server defaults" and
 * what REALPATH/READLINK replies carry.
 *
 * @example
 * ```ts
 * SftpAttributes.encode(SftpAttributes.empty) // Uint8Array [0, 0, 0, 0]
 * ```
 */
export const empty: Attributes = {}

const fail = (message: string): never => {
  throw new ProtocolError({ message })
}

const paired = (a: number | undefined, b: number | undefined, names: string): boolean => {
  if ((a === undefined) !== (b === undefined)) fail(`attributes ${names} must be given together`)
  return a !== undefined
}

/**
 * The flags word for a set of attributes. Throws `ProtocolError` when only one
 * of uid/gid or atime/mtime is given.
 *
 * @example
 * ```ts
 * SftpAttributes.flags({ uid: 0, gid: 0, permissions: 0o644 }) // 0x6
 * ```
 */
export const flags = (attrs: Attributes): number =>
  ((attrs.size !== undefined ? AttributeFlags.Size : 0) |
  (paired(attrs.uid, attrs.gid, "uid and gid") ? AttributeFlags.UidGid : 0) |
  (attrs.permissions !== undefined ? AttributeFlags.Permissions : 0) |
  (paired(attrs.atime, attrs.mtime, "atime and mtime") ? AttributeFlags.AcModTime : 0) |
  (attrs.extended !== undefined ? AttributeFlags.Extended : 0)) >>> 0

/**
 * Appends the ATTRS encoding to a field list (used by the packet codecs).
 *
 * @example
 * ```ts
 * const bytes = SftpAttributes.writeTo(new FieldList(), { permissions: 0o755 }).bytes()
 * ```
 */
export const writeTo = (f: FieldList, attrs: Attributes): FieldList => {
  f.uint32(flags(attrs), "attribute flags")
  if (attrs.size !== undefined) f.uint64(attrs.size, "size")
  if (attrs.uid !== undefined) f.uint32(attrs.uid, "uid").uint32(attrs.gid!, "gid")
  if (attrs.permissions !== undefined) f.uint32(attrs.permissions, "permissions")
  if (attrs.atime !== undefined) f.uint32(attrs.atime, "atime").uint32(attrs.mtime!, "mtime")
  if (attrs.extended !== undefined) {
    f.uint32(attrs.extended.length, "extended count")
    for (const e of attrs.extended) f.text(e.type).string(e.data)
  }
  return f
}

/**
 * Encodes attributes as ATTRS bytes.
 *
 * @example
 * ```ts
 * SftpAttributes.encode({ size: 5 }) // flags 1, then uint64 5
 * ```
 */
export const encode = (attrs: Attributes): Uint8Array => writeTo(new FieldList(), attrs).bytes()

type Mutable<A> = { -readonly [K in keyof A]: A[K] }

/**
 * Reads ATTRS at the reader's position. Throws `ProtocolError` on truncation,
 * on flag bits SFTP v3 does not define, or on a size above 2^53 - 1.
 *
 * @example
 * ```ts
 * const body = Uint8Array.of(105, 0, 0, 0, 7, ...SftpAttributes.encode({ size: 5 })) // SSH_FXP_ATTRS, id 7, ATTRS
 * const r = new Reader.Reader(body, 5)
 * const attrs = SftpAttributes.read(r) // { size: 5 }
 * ```
 */
export const read = (r: Reader): Attributes => {
  const bits = r.uint32()
  if ((bits & ~KNOWN_FLAGS) !== 0) fail(`unsupported attribute flags 0x${(bits >>> 0).toString(16)}`)
  const attrs: Mutable<Attributes> = {}
  if (bits & AttributeFlags.Size) attrs.size = readSafeUint64(r, "size")
  if (bits & AttributeFlags.UidGid) {
    attrs.uid = r.uint32()
    attrs.gid = r.uint32()
  }
  if (bits & AttributeFlags.Permissions) attrs.permissions = r.uint32()
  if (bits & AttributeFlags.AcModTime) {
    attrs.atime = r.uint32()
    attrs.mtime = r.uint32()
  }
  if (bits & AttributeFlags.Extended) {
    const count = r.uint32()
    if (count > r.remaining / MIN_EXTENDED_PAIR) fail(`extended attribute count ${count} exceeds the packet`)
    const extended: Array<ExtendedAttribute> = []
    for (let i = 0; i < count; i++) {
      const type = decodeByteString(r.string("extended attribute type"))
      extended.push({ type, data: r.string("extended attribute data") })
    }
    attrs.extended = extended
  }
  return attrs
}

/**
 * Decodes a buffer holding exactly one ATTRS.
 *
 * @example
 * ```ts
 * SftpAttributes.decode(SftpAttributes.encode({ permissions: 0o644 })) // { permissions: 420 }
 * ```
 */
export const decode = (bytes: Uint8Array): Attributes => {
  const r = new Reader(bytes)
  const attrs = read(r)
  r.end("attributes")
  return attrs
}

/**
 * POSIX `st_mode` file type bits, as carried in `permissions`.
 *
 * @example
 * ```ts
 * (0o100644 & SftpAttributes.FileMode.TypeMask) === SftpAttributes.FileMode.Regular // true
 * ```
 */
export const FileMode = {
  TypeMask: 0o170000,
  Socket: 0o140000,
  SymbolicLink: 0o120000,
  Regular: 0o100000,
  BlockDevice: 0o060000,
  Directory: 0o040000,
  CharacterDevice: 0o020000,
  Fifo: 0o010000
} as const

/** What kind of file system object attributes describe. */
export type FileType =
  | "file"
  | "directory"
  | "symlink"
  | "block-device"
  | "character-device"
  | "fifo"
  | "socket"
  | "unknown"

const typeNames: ReadonlyArray<readonly [number, FileType, string]> = [
  [FileMode.Regular, "file", "-"],
  [FileMode.Directory, "directory", "d"],
  [FileMode.SymbolicLink, "symlink", "l"],
  [FileMode.BlockDevice, "block-device", "b"],
  [FileMode.CharacterDevice, "character-device", "c"],
  [FileMode.Fifo, "fifo", "p"],
  [FileMode.Socket, "socket", "s"]
]

const typeEntry = (permissions: number | undefined) => {
  if (permissions === undefined) return undefined
  const bits = permissions & FileMode.TypeMask
  return typeNames.find(([mode]) => mode === bits)
}

/**
 * The file type encoded in `permissions`; "unknown" when permissions are absent
 * or carry no known type.
 *
 * @example
 * ```ts
 * SftpAttributes.fileType({ permissions: 0o040755 }) // "directory"
 * ```
 */
export const fileType = (attrs: Attributes): FileType => typeEntry(attrs.permissions)?.[1] ?? "unknown"

/**
 * Whether the attributes describe a directory.
 *
 * @example
 * ```ts
 * SftpAttributes.isDirectory({ permissions: 0o040755 }) // true
 * ```
 */
export const isDirectory = (attrs: Attributes): boolean => fileType(attrs) === "directory"

/**
 * Whether the attributes describe a regular file.
 *
 * @example
 * ```ts
 * SftpAttributes.isFile({ permissions: 0o100644 }) // true
 * ```
 */
export const isFile = (attrs: Attributes): boolean => fileType(attrs) === "file"

/**
 * Whether the attributes describe a symbolic link (only LSTAT and READDIR can say so).
 *
 * @example
 * ```ts
 * SftpAttributes.isSymbolicLink({ permissions: 0o120777 }) // true
 * ```
 */
export const isSymbolicLink = (attrs: Attributes): boolean => fileType(attrs) === "symlink"

/**
 * The permission bits of a mode (rwx for user, group, other, plus setuid,
 * setgid and sticky), without the file type.
 *
 * @example
 * ```ts
 * SftpAttributes.permissionBits(0o100755) // 0o755
 * ```
 */
export const permissionBits = (mode: number): number => mode & 0o7777

const triplet = (mode: number, shift: number, special: number, specialChar: string): string => {
  const r = mode & (4 << shift) ? "r" : "-"
  const w = mode & (2 << shift) ? "w" : "-"
  const x = mode & (1 << shift)
  const exec = mode & special ? (x ? specialChar : specialChar.toUpperCase()) : x ? "x" : "-"
  return r + w + exec
}

/**
 * The `ls -l` style mode string for a `permissions` value, as used in the
 * longname of NAME entries ("?" for an unknown file type).
 *
 * @example
 * ```ts
 * SftpAttributes.modeString(0o104755) // "-rwsr-xr-x"
 * ```
 */
export const modeString = (permissions: number): string =>
  (typeEntry(permissions)?.[2] ?? "?") +
  triplet(permissions, 6, 0o4000, "s") +
  triplet(permissions, 3, 0o2000, "s") +
  triplet(permissions, 0, 0o1000, "t")
