import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import { fromHex, toHex } from "../../src/internal/bytes.ts"
import { ProtocolError } from "../../src/SshError.ts"
import {
  decodeLimits,
  decodeUserGroupNames,
  decodeVfsStats,
  encodeLimits,
  encodeUserGroupNames,
  encodeVfsStats,
  ExtensionName,
  isExtensionTag,
  OPENSSH_EXTENSIONS,
  requestName,
  supports,
  type VfsStats,
  VfsFlag
} from "../../src/Sftp/Extensions.ts"
import { decode, encode } from "../../src/Sftp/Messages.ts"
import { text, uint32 } from "./arbitraries.ts"

const ascii = (s: string) => toHex(new TextEncoder().encode(s))
const str = (s: string) => (s.length).toString(16).padStart(8, "0") + ascii(s)
const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n })

const expectProtocolErrorOrValue = (f: () => unknown) => {
  try {
    f()
  } catch (e) {
    expect(e).toBeInstanceOf(ProtocolError)
  }
}

describe("Extensions requests on the wire (openssh/PROTOCOL §4)", () => {
  it("posix-rename@openssh.com: oldpath, newpath", () => {
    const bytes = encode({ _tag: "PosixRename", id: 1, oldPath: "a", newPath: "b" })
    expect(toHex(bytes.subarray(4))).toBe("c8" + "00000001" + str("posix-rename@openssh.com") + str("a") + str("b"))
  })

  it("copy-data: handle, offset, length, handle, offset", () => {
    const bytes = encode({
      _tag: "CopyData",
      id: 2,
      readHandle: fromHex("01"),
      readOffset: 16,
      readLength: 0,
      writeHandle: fromHex("02"),
      writeOffset: 2 ** 33
    })
    expect(toHex(bytes.subarray(4))).toBe(
      "c8" + "00000002" + str("copy-data") + "0000000101" + "0000000000000010" + "0000000000000000" + "0000000102" +
        "0000000200000000"
    )
  })

  it("users-groups-by-id@openssh.com: packed uint32 ids", () => {
    const bytes = encode({ _tag: "UsersGroupsById", id: 3, uids: [0, 1000], gids: [] })
    expect(toHex(bytes.subarray(4))).toBe(
      "c8" + "00000003" + str("users-groups-by-id@openssh.com") + "00000008" + "00000000" + "000003e8" + "00000000"
    )
  })

  it("lsetstat@openssh.com carries ATTRS after the path", () => {
    const bytes = encode({ _tag: "Lsetstat", id: 4, path: "/l", attrs: { atime: 1, mtime: 2 } })
    expect(toHex(bytes.subarray(4))).toBe(
      "c8" + "00000004" + str("lsetstat@openssh.com") + str("/l") + "00000008" + "00000001" + "00000002"
    )
  })

  it("rejects malformed known requests", () => {
    const packed = "c8" + "00000003" + str("users-groups-by-id@openssh.com") + "00000003" + "000000" + "00000000"
    expect(() => decode(fromHex(packed))).toThrow(/uids is 3 bytes/)
    expect(() => decode(fromHex("c8" + "00000001" + str("fsync@openssh.com")))).toThrow(ProtocolError)
    expect(() => decode(fromHex("c8" + "00000001" + str("limits@openssh.com") + "00"))).toThrow(/trailing/)
  })

  it("knows every extension request by tag and name", () => {
    expect(isExtensionTag("Hardlink")).toBe(true)
    expect(isExtensionTag("Open")).toBe(false)
    expect(isExtensionTag("constructor")).toBe(false)
    expect(requestName({ _tag: "HomeDirectory", id: 1, username: "" })).toBe("home-directory")
    expect(new Set(OPENSSH_EXTENSIONS.map((e) => e.name))).toEqual(new Set(Object.values(ExtensionName)))
  })

  it("supports checks name and, when given, version", () => {
    expect(supports(OPENSSH_EXTENSIONS, ExtensionName.StatVfs, "2")).toBe(true)
    expect(supports(OPENSSH_EXTENSIONS, ExtensionName.StatVfs, "1")).toBe(false)
    expect(supports(OPENSSH_EXTENSIONS, ExtensionName.Limits)).toBe(true)
    expect(supports([], ExtensionName.Limits)).toBe(false)
  })
})

describe("Extensions replies", () => {
  const stats = (values: ReadonlyArray<bigint>): VfsStats => {
    const [bsize, frsize, blocks, bfree, bavail, files, ffree, favail, fsid, flag, namemax] = values as Array<bigint>
    return { bsize: bsize!, frsize: frsize!, blocks: blocks!, bfree: bfree!, bavail: bavail!, files: files!, ffree: ffree!, favail: favail!, fsid: fsid!, flag: flag!, namemax: namemax! }
  }

  it("statvfs: 11 uint64s in struct statvfs order", () => {
    const s = stats([4096n, 4096n, 100n, 50n, 40n, 1000n, 500n, 400n, 0xffff_ffff_ffff_fffen, VfsFlag.ReadOnly, 255n])
    const hex = toHex(encodeVfsStats(s))
    expect(hex.length).toBe(11 * 16)
    expect(hex.slice(0, 16)).toBe("0000000000001000")
    expect(hex.slice(8 * 16, 9 * 16)).toBe("fffffffffffffffe")
    expect(decodeVfsStats(encodeVfsStats(s))).toEqual(s)
    fc.assert(
      fc.property(fc.array(u64, { minLength: 11, maxLength: 11 }), (values) => {
        expect(decodeVfsStats(encodeVfsStats(stats(values)))).toEqual(stats(values))
      })
    )
    expect(() => decodeVfsStats(new Uint8Array(87))).toThrow(ProtocolError)
    expect(() => decodeVfsStats(new Uint8Array(89))).toThrow(/trailing/)
  })

  it("limits: 4 uint64s, saturating above 2^53 - 1", () => {
    const limits = { maxPacketLength: 262144, maxReadLength: 261120, maxWriteLength: 261120, maxOpenHandles: 0 }
    expect(toHex(encodeLimits(limits))).toBe("0000000000040000" + "000000000003fc00" + "000000000003fc00" + "0000000000000000")
    expect(decodeLimits(encodeLimits(limits))).toEqual(limits)
    expect(decodeLimits(fromHex("0000000000040000".repeat(3) + "ffffffffffffffff")).maxOpenHandles).toBe(Number.MAX_SAFE_INTEGER)
    expect(() => decodeLimits(new Uint8Array(31))).toThrow(ProtocolError)
  })

  it("users-groups-by-id: a string of name strings for each", () => {
    const names = { usernames: ["root", ""], groupnames: ["wheel"] }
    expect(toHex(encodeUserGroupNames(names))).toBe(
      "0000000c" + str("root") + str("") + "00000009" + str("wheel")
    )
    expect(decodeUserGroupNames(encodeUserGroupNames(names))).toEqual(names)
    fc.assert(
      fc.property(fc.array(text, { maxLength: 5 }), fc.array(text, { maxLength: 5 }), (usernames, groupnames) => {
        expect(decodeUserGroupNames(encodeUserGroupNames({ usernames, groupnames }))).toEqual({ usernames, groupnames })
      })
    )
    expect(() => decodeUserGroupNames(fromHex("00000003" + "000000" + "00000000"))).toThrow(ProtocolError)
  })

  it("garbage reply bodies: a value or a ProtocolError", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 120 }), (bytes) => {
        expectProtocolErrorOrValue(() => decodeVfsStats(bytes))
        expectProtocolErrorOrValue(() => decodeLimits(bytes))
        expectProtocolErrorOrValue(() => decodeUserGroupNames(bytes))
      }),
      { numRuns: 3000 }
    )
  })

  it("packs ids as uint32 and rejects ids out of range", () => {
    fc.assert(
      fc.property(fc.array(uint32, { maxLength: 6 }), (uids) => {
        const p = { _tag: "UsersGroupsById" as const, id: 1, uids, gids: uids }
        expect(decode(encode(p).subarray(4))).toEqual(p)
      })
    )
    expect(() => encode({ _tag: "UsersGroupsById", id: 1, uids: [-1], gids: [] })).toThrow(ProtocolError)
  })
})
