/**
 * SFTP v3 packets (draft-ietf-secsh-filexfer-02 plus OpenSSH's extensions):
 * one tagged union, `SftpPacket`, shared by client and server, with
 * `encode` (a whole length-prefixed packet) and `decode` (a body without the
 * length prefix, as the `Framer` yields it).
 *
 * Representation choices:
 * - File names, long names, status messages and extension names/data are
 *   `string`s decoded from bytes as UTF-8; bytes that are not valid UTF-8 are
 *   kept as lone surrogates U+DC80..U+DCFF and re-encoded to the same bytes
 *   (see `internal/byteString.ts`), so any server file name round-trips.
 * - Handles and file data are `Uint8Array`; decoded ones are views into the
 *   decoded body, not copies.
 * - Offsets, lengths and sizes (uint64 on the wire) are `number`s: decoding
 *   rejects values above 2^53 - 1 with `ProtocolError`, and encoding rejects
 *   anything but a non-negative safe integer. This keeps the hot READ/WRITE
 *   path free of bigint arithmetic; 2^53 bytes is 8 PiB.
 * - SYMLINK goes on the wire in OpenSSH's order, `targetpath` then
 *   `linkpath` (openssh/PROTOCOL §4.1), which is the reverse of the draft and
 *   what every deployed server expects. The fields are named for what they mean.
 * - Decoding is strict: unknown packet types, truncated fields and trailing
 *   bytes are `ProtocolError`s. The one leniency: a STATUS that ends after its
 *   code (as pre-v3 servers send it) decodes with an empty message and tag.
 * - An EXTENDED request with a known name decodes to its typed form (see
 *   `Extensions.ts`); any other decodes to `Extended`. So an `Extended` built
 *   by hand with a known name re-decodes as the typed request.
 *
 * @since 0.1.0
 */
import { readByteString } from "../internal/byteString.ts"
import { FieldList, readSafeUint64, Uint64OutOfRange } from "../internal/fieldList.ts"
import { checkHandle, readHandle } from "../internal/sftpHandle.ts"
import { ProtocolError } from "../SshError.ts"
import { Reader } from "../Wire/Reader.ts"
import * as Attributes from "./Attributes.ts"
import * as Extensions from "./Extensions.ts"

const fail = (message: string): never => {
  throw new ProtocolError({ message })
}

/**
 * SFTP packet type numbers (SSH_FXP_*).
 *
 * @example
 * ```ts
 * PacketType.Open // 3
 * ```
 */
export const PacketType = {
  Init: 1,
  Version: 2,
  Open: 3,
  Close: 4,
  Read: 5,
  Write: 6,
  Lstat: 7,
  Fstat: 8,
  Setstat: 9,
  Fsetstat: 10,
  Opendir: 11,
  Readdir: 12,
  Remove: 13,
  Mkdir: 14,
  Rmdir: 15,
  Realpath: 16,
  Stat: 17,
  Rename: 18,
  Readlink: 19,
  Symlink: 20,
  Status: 101,
  Handle: 102,
  Data: 103,
  Name: 104,
  Attrs: 105,
  Extended: 200,
  ExtendedReply: 201
} as const

/**
 * The protocol version these codecs speak.
 *
 * @example
 * ```ts
 * encode({ _tag: "Init", version: SFTP_VERSION, extensions: [] })
 * ```
 */
export const SFTP_VERSION = 3

/**
 * OPEN `pflags` bits (SSH_FXF_*).
 *
 * @example
 * ```ts
 * OpenFlags.Write | OpenFlags.Create | OpenFlags.Truncate // 0x1a
 * ```
 */
export const OpenFlags = {
  Read: 0x01,
  Write: 0x02,
  Append: 0x04,
  Create: 0x08,
  Truncate: 0x10,
  Exclusive: 0x20
} as const

/** An `fopen`/Node-style open mode. */
export type OpenMode = "r" | "r+" | "w" | "w+" | "wx" | "wx+" | "a" | "a+" | "ax" | "ax+"

const { Read: R, Write: W, Append: A, Create: C, Truncate: T, Exclusive: X } = OpenFlags

const modeFlags: Readonly<Record<OpenMode, number>> = {
  "r": R,
  "r+": R | W,
  "w": W | C | T,
  "w+": R | W | C | T,
  "wx": W | C | X,
  "wx+": R | W | C | X,
  "a": W | C | A,
  "a+": R | W | C | A,
  "ax": W | C | A | X,
  "ax+": R | W | C | A | X
}

/**
 * The OPEN `pflags` for an open mode, with Node's `fs.open` meanings ("w"
 * creates and truncates, "a" appends, "x" fails if the file exists, "+" adds
 * the other direction).
 *
 * @example
 * ```ts
 * openFlags("a") === (OpenFlags.Write | OpenFlags.Create | OpenFlags.Append) // true
 * ```
 */
export const openFlags = (mode: OpenMode): number =>
  Object.hasOwn(modeFlags, mode) ? modeFlags[mode] : fail(`unknown open mode "${mode}"`)

/** One `extension_name`/`extension_data` pair of INIT or VERSION. */
export interface ExtensionPair {
  readonly name: string
  readonly data: string
}

/** SSH_FXP_INIT: the client's version and extensions (no request id). */
export interface Init {
  readonly _tag: "Init"
  readonly version: number
  readonly extensions: ReadonlyArray<ExtensionPair>
}

/** SSH_FXP_VERSION: the server's version and extensions (no request id). */
export interface Version {
  readonly _tag: "Version"
  readonly version: number
  readonly extensions: ReadonlyArray<ExtensionPair>
}

/** SSH_FXP_OPEN. Answered by HANDLE or STATUS. */
export interface Open {
  readonly _tag: "Open"
  readonly id: number
  readonly path: string
  readonly pflags: number
  readonly attrs: Attributes.Attributes
}

/** SSH_FXP_CLOSE. Answered by STATUS. */
export interface Close {
  readonly _tag: "Close"
  readonly id: number
  readonly handle: Uint8Array
}

/** SSH_FXP_READ of at most `length` bytes at `offset`. Answered by DATA or STATUS (EOF). */
export interface Read {
  readonly _tag: "Read"
  readonly id: number
  readonly handle: Uint8Array
  readonly offset: number
  readonly length: number
}

/** SSH_FXP_WRITE. Answered by STATUS. */
export interface Write {
  readonly _tag: "Write"
  readonly id: number
  readonly handle: Uint8Array
  readonly offset: number
  readonly data: Uint8Array
}

/** SSH_FXP_LSTAT (does not follow a final symlink). Answered by ATTRS or STATUS. */
export interface Lstat {
  readonly _tag: "Lstat"
  readonly id: number
  readonly path: string
}

/** SSH_FXP_FSTAT. Answered by ATTRS or STATUS. */
export interface Fstat {
  readonly _tag: "Fstat"
  readonly id: number
  readonly handle: Uint8Array
}

/** SSH_FXP_SETSTAT. Answered by STATUS. */
export interface Setstat {
  readonly _tag: "Setstat"
  readonly id: number
  readonly path: string
  readonly attrs: Attributes.Attributes
}

/** SSH_FXP_FSETSTAT. Answered by STATUS. */
export interface Fsetstat {
  readonly _tag: "Fsetstat"
  readonly id: number
  readonly handle: Uint8Array
  readonly attrs: Attributes.Attributes
}

/** SSH_FXP_OPENDIR. Answered by HANDLE or STATUS. */
export interface Opendir {
  readonly _tag: "Opendir"
  readonly id: number
  readonly path: string
}

/** SSH_FXP_READDIR. Answered by NAME or STATUS (EOF at the end). */
export interface Readdir {
  readonly _tag: "Readdir"
  readonly id: number
  readonly handle: Uint8Array
}

/** SSH_FXP_REMOVE (files only). Answered by STATUS. */
export interface Remove {
  readonly _tag: "Remove"
  readonly id: number
  readonly path: string
}

/** SSH_FXP_MKDIR. Answered by STATUS. */
export interface Mkdir {
  readonly _tag: "Mkdir"
  readonly id: number
  readonly path: string
  readonly attrs: Attributes.Attributes
}

/** SSH_FXP_RMDIR. Answered by STATUS. */
export interface Rmdir {
  readonly _tag: "Rmdir"
  readonly id: number
  readonly path: string
}

/** SSH_FXP_REALPATH. Answered by NAME (one entry) or STATUS. */
export interface Realpath {
  readonly _tag: "Realpath"
  readonly id: number
  readonly path: string
}

/** SSH_FXP_STAT (follows symlinks). Answered by ATTRS or STATUS. */
export interface Stat {
  readonly _tag: "Stat"
  readonly id: number
  readonly path: string
}

/** SSH_FXP_RENAME (fails if `newPath` exists; see `PosixRename`). Answered by STATUS. */
export interface Rename {
  readonly _tag: "Rename"
  readonly id: number
  readonly oldPath: string
  readonly newPath: string
}

/** SSH_FXP_READLINK. Answered by NAME (one entry: the target) or STATUS. */
export interface Readlink {
  readonly _tag: "Readlink"
  readonly id: number
  readonly path: string
}

/**
 * SSH_FXP_SYMLINK: create `linkPath` pointing at `targetPath`. On the wire in
 * OpenSSH order: targetpath, then linkpath. Answered by STATUS.
 */
export interface Symlink {
  readonly _tag: "Symlink"
  readonly id: number
  readonly linkPath: string
  readonly targetPath: string
}

/** SSH_FXP_EXTENDED with a request name not covered by `Extensions`; `data` is everything after the name. */
export interface Extended {
  readonly _tag: "Extended"
  readonly id: number
  readonly request: string
  readonly data: Uint8Array
}

/** SSH_FXP_STATUS: `code` is a `StatusCode`; `message` is UTF-8 text, `language` an RFC 1766 tag. */
export interface Status {
  readonly _tag: "Status"
  readonly id: number
  readonly code: number
  readonly message: string
  readonly language: string
}

/** SSH_FXP_HANDLE: an opaque handle of at most 256 bytes. */
export interface Handle {
  readonly _tag: "Handle"
  readonly id: number
  readonly handle: Uint8Array
}

/** SSH_FXP_DATA: the bytes read (possibly fewer than asked). */
export interface Data {
  readonly _tag: "Data"
  readonly id: number
  readonly data: Uint8Array
}

/** One file of a NAME reply: its name, an `ls -l` style line, and its attributes. */
export interface NameEntry {
  readonly filename: string
  readonly longname: string
  readonly attrs: Attributes.Attributes
}

/** SSH_FXP_NAME. */
export interface Name {
  readonly _tag: "Name"
  readonly id: number
  readonly entries: ReadonlyArray<NameEntry>
}

/** SSH_FXP_ATTRS. */
export interface Attrs {
  readonly _tag: "Attrs"
  readonly id: number
  readonly attrs: Attributes.Attributes
}

/** SSH_FXP_EXTENDED_REPLY: request-specific data (see `Extensions` for the known formats). */
export interface ExtendedReply {
  readonly _tag: "ExtendedReply"
  readonly id: number
  readonly data: Uint8Array
}

/** Every request a client sends after INIT. */
export type SftpRequest =
  | Open
  | Close
  | Read
  | Write
  | Lstat
  | Fstat
  | Setstat
  | Fsetstat
  | Opendir
  | Readdir
  | Remove
  | Mkdir
  | Rmdir
  | Realpath
  | Stat
  | Rename
  | Readlink
  | Symlink
  | Extended
  | Extensions.ExtensionRequest

/** Every reply a server sends after VERSION. */
export type SftpResponse = Status | Handle | Data | Name | Attrs | ExtendedReply

/** Every SFTP packet. */
export type SftpPacket = Init | Version | SftpRequest | SftpResponse

type CorePacket = Exclude<SftpPacket, Extensions.ExtensionRequest>

interface Codec<P> {
  readonly type: number
  readonly write: (f: FieldList, packet: P) => unknown
  readonly read: (r: Reader) => SftpPacket
}

type Codecs = { readonly [K in CorePacket["_tag"]]: Codec<Extract<CorePacket, { _tag: K }>> }

const id = (r: Reader): number => r.uint32()
const path = (r: Reader): string => readByteString(r, "path")

/** Smallest encoding of a NAME entry: two empty strings and flags 0. */
const MIN_NAME_ENTRY = 12

const writeExtensions = (f: FieldList, extensions: ReadonlyArray<ExtensionPair>): FieldList => {
  for (const e of extensions) f.text(e.name).text(e.data)
  return f
}

const readExtensions = (r: Reader): Array<ExtensionPair> => {
  const extensions: Array<ExtensionPair> = []
  while (r.remaining > 0) {
    extensions.push({ name: readByteString(r, "extension name"), data: readByteString(r, "extension data") })
  }
  return extensions
}

interface PathShape {
  readonly _tag: "Lstat" | "Opendir" | "Remove" | "Rmdir" | "Realpath" | "Stat" | "Readlink"
  readonly id: number
  readonly path: string
}

interface HandleShape {
  readonly _tag: "Close" | "Fstat" | "Readdir"
  readonly id: number
  readonly handle: Uint8Array
}

interface PathAttrsShape {
  readonly _tag: "Setstat" | "Mkdir"
  readonly id: number
  readonly path: string
  readonly attrs: Attributes.Attributes
}

const pathCodec = (tag: PathShape["_tag"]): Codec<PathShape> => ({
  type: PacketType[tag],
  write: (f, p) => f.uint32(p.id, "id").text(p.path),
  read: (r) => ({ _tag: tag, id: id(r), path: path(r) })
})

const handleCodec = (tag: HandleShape["_tag"]): Codec<HandleShape> => ({
  type: PacketType[tag],
  write: (f, p) => f.uint32(p.id, "id").string(checkHandle(p.handle)),
  read: (r) => ({ _tag: tag, id: id(r), handle: readHandle(r) })
})

const pathAttrsCodec = (tag: PathAttrsShape["_tag"]): Codec<PathAttrsShape> => ({
  type: PacketType[tag],
  write: (f, p) => Attributes.writeTo(f.uint32(p.id, "id").text(p.path), p.attrs),
  read: (r) => ({ _tag: tag, id: id(r), path: path(r), attrs: Attributes.read(r) })
})

const readExtended = (r: Reader): SftpPacket => {
  const requestId = id(r)
  const request = readByteString(r, "extended request name")
  return Extensions.readRequest(r, requestId, request) ??
    { _tag: "Extended", id: requestId, request, data: r.rest() }
}

const readName = (r: Reader): SftpPacket => {
  const requestId = id(r)
  const count = r.uint32()
  if (count > r.remaining / MIN_NAME_ENTRY) fail(`NAME count ${count} exceeds the packet`)
  const entries: Array<NameEntry> = []
  for (let i = 0; i < count; i++) {
    const filename = readByteString(r, "filename")
    const longname = readByteString(r, "longname")
    entries.push({ filename, longname, attrs: Attributes.read(r) })
  }
  return { _tag: "Name", id: requestId, entries }
}

const codecs: Codecs = {
  Init: {
    type: PacketType.Init,
    write: (f, p) => writeExtensions(f.uint32(p.version, "version"), p.extensions),
    read: (r) => ({ _tag: "Init", version: r.uint32(), extensions: readExtensions(r) })
  },
  Version: {
    type: PacketType.Version,
    write: (f, p) => writeExtensions(f.uint32(p.version, "version"), p.extensions),
    read: (r) => ({ _tag: "Version", version: r.uint32(), extensions: readExtensions(r) })
  },
  Open: {
    type: PacketType.Open,
    write: (f, p) => Attributes.writeTo(f.uint32(p.id, "id").text(p.path).uint32(p.pflags, "pflags"), p.attrs),
    read: (r) => ({ _tag: "Open", id: id(r), path: path(r), pflags: r.uint32(), attrs: Attributes.read(r) })
  },
  Close: handleCodec("Close"),
  Read: {
    type: PacketType.Read,
    write: (f, p) =>
      f.uint32(p.id, "id").string(checkHandle(p.handle)).uint64(p.offset, "offset").uint32(p.length, "length"),
    read: (r) => ({
      _tag: "Read",
      id: id(r),
      handle: readHandle(r),
      offset: readSafeUint64(r, "offset"),
      length: r.uint32()
    })
  },
  Write: {
    type: PacketType.Write,
    write: (f, p) => f.uint32(p.id, "id").string(checkHandle(p.handle)).uint64(p.offset, "offset").string(p.data),
    read: (r) => ({
      _tag: "Write",
      id: id(r),
      handle: readHandle(r),
      offset: readSafeUint64(r, "offset"),
      data: r.string("data")
    })
  },
  Lstat: pathCodec("Lstat"),
  Fstat: handleCodec("Fstat"),
  Setstat: pathAttrsCodec("Setstat"),
  Fsetstat: {
    type: PacketType.Fsetstat,
    write: (f, p) => Attributes.writeTo(f.uint32(p.id, "id").string(checkHandle(p.handle)), p.attrs),
    read: (r) => ({ _tag: "Fsetstat", id: id(r), handle: readHandle(r), attrs: Attributes.read(r) })
  },
  Opendir: pathCodec("Opendir"),
  Readdir: handleCodec("Readdir"),
  Remove: pathCodec("Remove"),
  Mkdir: pathAttrsCodec("Mkdir"),
  Rmdir: pathCodec("Rmdir"),
  Realpath: pathCodec("Realpath"),
  Stat: pathCodec("Stat"),
  Rename: {
    type: PacketType.Rename,
    write: (f, p) => f.uint32(p.id, "id").text(p.oldPath).text(p.newPath),
    read: (r) => ({ _tag: "Rename", id: id(r), oldPath: readByteString(r, "oldpath"), newPath: readByteString(r, "newpath") })
  },
  Readlink: pathCodec("Readlink"),
  Symlink: {
    type: PacketType.Symlink,
    write: (f, p) => f.uint32(p.id, "id").text(p.targetPath).text(p.linkPath),
    read: (r) => {
      const requestId = id(r)
      const targetPath = readByteString(r, "targetpath")
      return { _tag: "Symlink", id: requestId, linkPath: readByteString(r, "linkpath"), targetPath }
    }
  },
  Extended: {
    type: PacketType.Extended,
    write: (f, p) => f.uint32(p.id, "id").text(p.request).raw(p.data),
    read: readExtended
  },
  Status: {
    type: PacketType.Status,
    write: (f, p) => f.uint32(p.id, "id").uint32(p.code, "status code").text(p.message).text(p.language),
    read: (r) => {
      const requestId = id(r)
      const code = r.uint32()
      // Pre-v3 servers end the packet after the code; accept that as an empty message.
      if (r.remaining === 0) return { _tag: "Status", id: requestId, code, message: "", language: "" }
      return { _tag: "Status", id: requestId, code, message: readByteString(r, "message"), language: readByteString(r, "language tag") }
    }
  },
  Handle: {
    type: PacketType.Handle,
    write: (f, p) => f.uint32(p.id, "id").string(checkHandle(p.handle)),
    read: (r) => ({ _tag: "Handle", id: id(r), handle: readHandle(r) })
  },
  Data: {
    type: PacketType.Data,
    write: (f, p) => f.uint32(p.id, "id").string(p.data),
    read: (r) => ({ _tag: "Data", id: id(r), data: r.string("data") })
  },
  Name: {
    type: PacketType.Name,
    write: (f, p) => {
      f.uint32(p.id, "id").uint32(p.entries.length, "count")
      for (const e of p.entries) Attributes.writeTo(f.text(e.filename).text(e.longname), e.attrs)
    },
    read: readName
  },
  Attrs: {
    type: PacketType.Attrs,
    write: (f, p) => Attributes.writeTo(f.uint32(p.id, "id"), p.attrs),
    read: (r) => ({ _tag: "Attrs", id: id(r), attrs: Attributes.read(r) })
  },
  ExtendedReply: {
    type: PacketType.ExtendedReply,
    write: (f, p) => f.uint32(p.id, "id").raw(p.data),
    read: (r) => ({ _tag: "ExtendedReply", id: id(r), data: r.rest() })
  }
}

const byType: ReadonlyMap<number, Codec<CorePacket>> = new Map(
  Object.values(codecs).map((c) => [c.type, c as Codec<CorePacket>])
)

/**
 * Encodes a packet as it goes on the wire: uint32 length, byte type, fields.
 * The result is allocated once at its exact size. Throws `ProtocolError` for
 * values the wire cannot carry (a negative or unsafe offset, a handle over
 * 256 bytes, uid without gid, ...).
 *
 * @example
 * ```ts
 * const bytes = encode({ _tag: "Stat", id: 1, path: "/etc/hosts" })
 * ```
 */
export const encode = (packet: SftpPacket): Uint8Array => {
  const f = new FieldList()
  if (Extensions.isExtensionTag(packet._tag)) {
    const request = packet as Extensions.ExtensionRequest
    Extensions.writeRequest(f.uint32(request.id, "id").text(Extensions.requestName(request)), request)
    return f.packet(PacketType.Extended)
  }
  const codec = codecs[packet._tag as CorePacket["_tag"]] as Codec<CorePacket>
  codec.write(f, packet as CorePacket)
  return f.packet(codec.type)
}

/** Bytes of an encoded DATA reply before its data: uint32 length, byte type, uint32 id, uint32 data length. */
export const DATA_HEADER_LENGTH = 13

/**
 * Writes the header of a DATA reply into the first `DATA_HEADER_LENGTH` bytes of `packet`, whose `dataLength`
 * bytes of data follow it: with the data read straight into place, it is `encode` of that reply without a copy.
 *
 * @example
 * ```ts
 * const packet = new Uint8Array(DATA_HEADER_LENGTH + n) // data read into packet.subarray(DATA_HEADER_LENGTH)
 * writeDataHeader(packet, id, n)
 * ```
 */
export const writeDataHeader = (packet: Uint8Array, id: number, dataLength: number): void => {
  const view = new DataView(packet.buffer, packet.byteOffset, DATA_HEADER_LENGTH)
  view.setUint32(0, DATA_HEADER_LENGTH - 4 + dataLength)
  view.setUint8(4, PacketType.Data)
  view.setUint32(5, id)
  view.setUint32(9, dataLength)
}

const NO_DATA = new Uint8Array(0)

/**
 * A WRITE request encoded up to and including its data's length prefix, with a packet length that counts the
 * data: sent followed by `request.data` itself, it is `encode(request)` without copying the data.
 *
 * @example
 * ```ts
 * outbox.enqueue(encodeWriteHeader(request))
 * outbox.enqueue(request.data)
 * ```
 */
export const encodeWriteHeader = (request: Write): Uint8Array => {
  const header = encode({ ...request, data: NO_DATA })
  const total = header.length - 4 + request.data.length
  if (total > 0xffff_ffff) fail(`WRITE of ${request.data.length} bytes does not fit a packet`)
  const view = new DataView(header.buffer, header.byteOffset, header.byteLength)
  view.setUint32(0, total)
  view.setUint32(header.length - 4, request.data.length)
  return header
}

/**
 * Decodes a packet body (type byte onwards, without the length prefix).
 * Throws `ProtocolError` on an unknown type, a truncated or over-long body, or
 * a value out of range. Byte fields are views into `body`.
 *
 * @example
 * ```ts
 * const packet = decode(body)
 * if (packet._tag === "Data") consume(packet.data)
 * ```
 */
export const decode = (body: Uint8Array): SftpPacket => {
  const r = new Reader(body)
  const type = r.byte()
  const codec = byType.get(type) ?? fail(`unknown SFTP packet type ${type}`)
  const packet = codec.read(r)
  r.end(`SFTP ${packet._tag} packet`)
  return packet
}

/**
 * A well-formed request the server cannot act on: it carries a uint64 (an
 * offset, length or size) beyond 2^53 - 1. `id` is the request's, for its
 * STATUS reply.
 */
export interface Unrepresentable {
  readonly _tag: "Unrepresentable"
  readonly id: number
  readonly message: string
}

/**
 * `decode` for a server: a request carrying a uint64 beyond 2^53 - 1 decodes
 * to `Unrepresentable` (to be answered with a STATUS) rather than failing,
 * since it is well-formed. Anything else malformed throws `ProtocolError` as
 * in `decode`.
 *
 * @example
 * ```ts
 * const packet = decodeRequest(body)
 * if (packet._tag === "Unrepresentable") reply(Status.make(packet.id, StatusCode.Failure, packet.message))
 * ```
 */
export const decodeRequest = (body: Uint8Array): SftpPacket | Unrepresentable => {
  try {
    return decode(body)
  } catch (e) {
    // the id follows the type byte in every request (INIT and VERSION have none, and no uint64 either)
    const type = body[0]!
    const isRequest = type === PacketType.Extended || (type > PacketType.Version && type < PacketType.Status)
    if (!(e instanceof Uint64OutOfRange) || !isRequest) throw e
    const id = new DataView(body.buffer, body.byteOffset, body.byteLength).getUint32(1)
    return { _tag: "Unrepresentable", id, message: `${e.message}, more than this server can address` }
  }
}

const responseTags: ReadonlySet<string> = new Set(["Status", "Handle", "Data", "Name", "Attrs", "ExtendedReply"])

/**
 * Whether a packet is a server reply carrying a request id.
 *
 * @example
 * ```ts
 * isResponse(decode(body)) // true for STATUS, HANDLE, DATA, NAME, ATTRS, EXTENDED_REPLY
 * ```
 */
export const isResponse = (packet: SftpPacket): packet is SftpResponse => responseTags.has(packet._tag)

/**
 * Whether a packet is a client request carrying a request id.
 *
 * @example
 * ```ts
 * isRequest({ _tag: "Stat", id: 1, path: "." }) // true
 * ```
 */
export const isRequest = (packet: SftpPacket): packet is SftpRequest =>
  packet._tag !== "Init" && packet._tag !== "Version" && !responseTags.has(packet._tag)
