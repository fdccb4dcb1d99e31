/**
 * fast-check arbitraries for SFTP packets, shared by the SFTP tests.
 */
import * as fc from "fast-check"
import { decodeByteString } from "../../src/internal/byteString.ts"
import type { Attributes, ExtendedAttribute } from "../../src/Sftp/Attributes.ts"
import { ExtensionName } from "../../src/Sftp/Extensions.ts"
import type { ExtensionPair, NameEntry, SftpPacket } from "../../src/Sftp/Messages.ts"

export const uint32 = fc.integer({ min: 0, max: 0xffff_ffff })
export const uint64 = fc.maxSafeNat()
export const bytes = fc.uint8Array({ maxLength: 64 })
export const handle = fc.uint8Array({ maxLength: 256 })

/** Any text that survives bytes → string → bytes: valid Unicode or decoded arbitrary bytes (non-UTF-8 names). */
export const text = fc.oneof(
  fc.string({ unit: "binary", maxLength: 24 }),
  fc.uint8Array({ maxLength: 24 }).map(decodeByteString)
)

const extendedAttribute: fc.Arbitrary<ExtendedAttribute> = fc.record({ type: text, data: bytes })

export const attributes: fc.Arbitrary<Attributes> = fc
  .record(
    {
      size: uint64,
      ids: fc.tuple(uint32, uint32),
      permissions: uint32,
      times: fc.tuple(uint32, uint32),
      extended: fc.array(extendedAttribute, { maxLength: 3 })
    },
    { requiredKeys: [] }
  )
  .map((r) => ({
    ...(r.size !== undefined ? { size: r.size } : {}),
    ...(r.ids !== undefined ? { uid: r.ids[0], gid: r.ids[1] } : {}),
    ...(r.permissions !== undefined ? { permissions: r.permissions } : {}),
    ...(r.times !== undefined ? { atime: r.times[0], mtime: r.times[1] } : {}),
    ...(r.extended !== undefined ? { extended: r.extended } : {})
  }))

const extensionPairs: fc.Arbitrary<Array<ExtensionPair>> = fc.array(fc.record({ name: text, data: text }), {
  maxLength: 4
})

const nameEntry: fc.Arbitrary<NameEntry> = fc.record({ filename: text, longname: text, attrs: attributes })

const knownExtensionNames: ReadonlySet<string> = new Set(Object.values(ExtensionName))

const id = uint32

/** One arbitrary per packet tag, so tests can also go tag by tag. */
export const packetsByTag: { readonly [K in SftpPacket["_tag"]]: fc.Arbitrary<Extract<SftpPacket, { _tag: K }>> } = {
  Init: fc.record({ _tag: fc.constant("Init"), version: uint32, extensions: extensionPairs }),
  Version: fc.record({ _tag: fc.constant("Version"), version: uint32, extensions: extensionPairs }),
  Open: fc.record({ _tag: fc.constant("Open"), id, path: text, pflags: uint32, attrs: attributes }),
  Close: fc.record({ _tag: fc.constant("Close"), id, handle }),
  Read: fc.record({ _tag: fc.constant("Read"), id, handle, offset: uint64, length: uint32 }),
  Write: fc.record({ _tag: fc.constant("Write"), id, handle, offset: uint64, data: fc.uint8Array({ maxLength: 2048 }) }),
  Lstat: fc.record({ _tag: fc.constant("Lstat"), id, path: text }),
  Fstat: fc.record({ _tag: fc.constant("Fstat"), id, handle }),
  Setstat: fc.record({ _tag: fc.constant("Setstat"), id, path: text, attrs: attributes }),
  Fsetstat: fc.record({ _tag: fc.constant("Fsetstat"), id, handle, attrs: attributes }),
  Opendir: fc.record({ _tag: fc.constant("Opendir"), id, path: text }),
  Readdir: fc.record({ _tag: fc.constant("Readdir"), id, handle }),
  Remove: fc.record({ _tag: fc.constant("Remove"), id, path: text }),
  Mkdir: fc.record({ _tag: fc.constant("Mkdir"), id, path: text, attrs: attributes }),
  Rmdir: fc.record({ _tag: fc.constant("Rmdir"), id, path: text }),
  Realpath: fc.record({ _tag: fc.constant("Realpath"), id, path: text }),
  Stat: fc.record({ _tag: fc.constant("Stat"), id, path: text }),
  Rename: fc.record({ _tag: fc.constant("Rename"), id, oldPath: text, newPath: text }),
  Readlink: fc.record({ _tag: fc.constant("Readlink"), id, path: text }),
  Symlink: fc.record({ _tag: fc.constant("Symlink"), id, linkPath: text, targetPath: text }),
  Extended: fc.record({
    _tag: fc.constant("Extended"),
    id,
    request: text.filter((name) => !knownExtensionNames.has(name)),
    data: bytes
  }),
  Status: fc.record({ _tag: fc.constant("Status"), id, code: uint32, message: text, language: text }),
  Handle: fc.record({ _tag: fc.constant("Handle"), id, handle }),
  Data: fc.record({ _tag: fc.constant("Data"), id, data: fc.uint8Array({ maxLength: 2048 }) }),
  Name: fc.record({ _tag: fc.constant("Name"), id, entries: fc.array(nameEntry, { maxLength: 4 }) }),
  Attrs: fc.record({ _tag: fc.constant("Attrs"), id, attrs: attributes }),
  ExtendedReply: fc.record({ _tag: fc.constant("ExtendedReply"), id, data: bytes }),
  PosixRename: fc.record({ _tag: fc.constant("PosixRename"), id, oldPath: text, newPath: text }),
  StatVfs: fc.record({ _tag: fc.constant("StatVfs"), id, path: text }),
  FstatVfs: fc.record({ _tag: fc.constant("FstatVfs"), id, handle }),
  Hardlink: fc.record({ _tag: fc.constant("Hardlink"), id, oldPath: text, newPath: text }),
  Fsync: fc.record({ _tag: fc.constant("Fsync"), id, handle }),
  Lsetstat: fc.record({ _tag: fc.constant("Lsetstat"), id, path: text, attrs: attributes }),
  Limits: fc.record({ _tag: fc.constant("Limits"), id }),
  ExpandPath: fc.record({ _tag: fc.constant("ExpandPath"), id, path: text }),
  CopyData: fc.record({
    _tag: fc.constant("CopyData"),
    id,
    readHandle: handle,
    readOffset: uint64,
    readLength: uint64,
    writeHandle: handle,
    writeOffset: uint64
  }),
  HomeDirectory: fc.record({ _tag: fc.constant("HomeDirectory"), id, username: text }),
  UsersGroupsById: fc.record({
    _tag: fc.constant("UsersGroupsById"),
    id,
    uids: fc.array(uint32, { maxLength: 8 }),
    gids: fc.array(uint32, { maxLength: 8 })
  })
}

export const packet: fc.Arbitrary<SftpPacket> = fc.oneof(
  ...Object.values(packetsByTag) as Array<fc.Arbitrary<SftpPacket>>
)
