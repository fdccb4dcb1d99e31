import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import { fromHex, toHex } from "../../src/internal/bytes.ts"
import { ProtocolError } from "../../src/SshError.ts"
import {
  AttributeFlags,
  decode,
  empty,
  encode,
  fileType,
  flags,
  isDirectory,
  isFile,
  isSymbolicLink,
  modeString,
  permissionBits
} from "../../src/Sftp/Attributes.ts"
import { attributes } from "./arbitraries.ts"

describe("Attributes codec (draft-ietf-secsh-filexfer-02 §5)", () => {
  it("encodes no attributes as flags 0", () => {
    expect(toHex(encode(empty))).toBe("00000000")
    expect(decode(fromHex("00000000"))).toEqual({})
  })

  it.each([
    ["size", { size: 2 ** 32 + 1 }, "00000001" + "0000000100000001"],
    ["uid/gid", { uid: 1000, gid: 100 }, "00000002" + "000003e8" + "00000064"],
    ["permissions", { permissions: 0o100644 }, "00000004" + "000081a4"],
    ["atime/mtime", { atime: 1, mtime: 2 }, "00000008" + "00000001" + "00000002"],
    ["extended", { extended: [{ type: "a@b", data: fromHex("ff") }] }, "80000000" + "00000001" + "00000003614062" + "00000001ff"],
    ["empty extended", { extended: [] }, "80000000" + "00000000"]
  ])("encodes %s alone", (_, attrs, hex) => {
    expect(toHex(encode(attrs))).toBe(hex)
    expect(decode(fromHex(hex))).toEqual(attrs)
  })

  it("encodes every field in spec order", () => {
    const attrs = { size: 5, uid: 1, gid: 2, permissions: 0o755, atime: 3, mtime: 4, extended: [] }
    expect(toHex(encode(attrs))).toBe(
      "8000000f" + "0000000000000005" + "00000001" + "00000002" + "000001ed" + "00000003" + "00000004" + "00000000"
    )
    expect(flags(attrs)).toBe(0x8000000f)
  })

  it("decode∘encode is the identity, with and without each flag", () => {
    fc.assert(fc.property(attributes, (attrs) => {
      expect(decode(encode(attrs))).toEqual(attrs)
    }), { numRuns: 2000 })
  })

  it("flags match the fields present", () => {
    fc.assert(
      fc.property(attributes, (attrs) => {
        const f = flags(attrs)
        expect((f & AttributeFlags.Size) !== 0).toBe(attrs.size !== undefined)
        expect((f & AttributeFlags.UidGid) !== 0).toBe(attrs.uid !== undefined)
        expect((f & AttributeFlags.Permissions) !== 0).toBe(attrs.permissions !== undefined)
        expect((f & AttributeFlags.AcModTime) !== 0).toBe(attrs.atime !== undefined)
        expect((f & AttributeFlags.Extended) !== 0).toBe(attrs.extended !== undefined)
        expect(f).toBeGreaterThanOrEqual(0)
      })
    )
  })

  it("rejects unknown flag bits, truncation, trailing bytes and absurd extended counts", () => {
    expect(() => decode(fromHex("00000010"))).toThrow(/unsupported attribute flags 0x10/)
    expect(() => decode(fromHex("00000001000000"))).toThrow(ProtocolError)
    expect(() => decode(fromHex("0000000000"))).toThrow(/trailing/)
    expect(() => decode(fromHex("80000000ffffffff"))).toThrow(/extended attribute count/)
    expect(() => decode(fromHex("00000001" + "ffffffffffffffff"))).toThrow(/size exceeds/)
  })

  it("garbage: attributes or a ProtocolError, never another exception", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), (bytes) => {
        try {
          decode(bytes)
        } catch (e) {
          expect(e).toBeInstanceOf(ProtocolError)
        }
      }),
      { numRuns: 3000 }
    )
  })

  it("requires uid with gid and atime with mtime", () => {
    expect(() => encode({ gid: 1 })).toThrow(/uid and gid/)
    expect(() => encode({ atime: 1 })).toThrow(/atime and mtime/)
  })
})

describe("Attributes mode helpers", () => {
  it("reads the file type out of permissions", () => {
    expect(fileType({ permissions: 0o100644 })).toBe("file")
    expect(fileType({ permissions: 0o040755 })).toBe("directory")
    expect(fileType({ permissions: 0o120777 })).toBe("symlink")
    expect(fileType({ permissions: 0o060660 })).toBe("block-device")
    expect(fileType({ permissions: 0o020666 })).toBe("character-device")
    expect(fileType({ permissions: 0o010644 })).toBe("fifo")
    expect(fileType({ permissions: 0o140755 })).toBe("socket")
    expect(fileType({ permissions: 0o644 })).toBe("unknown")
    expect(fileType({})).toBe("unknown")
    expect(isDirectory({ permissions: 0o040700 })).toBe(true)
    expect(isFile({ permissions: 0o040700 })).toBe(false)
    expect(isSymbolicLink({ permissions: 0o120777 })).toBe(true)
    expect(permissionBits(0o104755)).toBe(0o4755)
  })

  it("formats ls -l mode strings", () => {
    expect(modeString(0o100644)).toBe("-rw-r--r--")
    expect(modeString(0o040755)).toBe("drwxr-xr-x")
    expect(modeString(0o120777)).toBe("lrwxrwxrwx")
    expect(modeString(0o104755)).toBe("-rwsr-xr-x")
    expect(modeString(0o102644)).toBe("-rw-r-Sr--")
    expect(modeString(0o041777)).toBe("drwxrwxrwt")
    expect(modeString(0o041776)).toBe("drwxrwxrwT")
    expect(modeString(0o644)).toBe("?rw-r--r--")
  })
})
