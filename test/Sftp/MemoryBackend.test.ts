/**
 * The in-memory SFTP backend on its own (no server): every operation, its
 * failures as typed statuses, the `maxBytes` bound, and the seeding and
 * inspection a test uses.
 */
import * as Effect from "effect/Effect"
import { describe, expect, it } from "vitest"
import * as Attributes from "../../src/Sftp/Attributes.ts"
import type * as Backend from "../../src/Sftp/Backend.ts"
import * as MemoryBackend from "../../src/Sftp/MemoryBackend.ts"
import { OpenFlags } from "../../src/Sftp/Messages.ts"
import { StatusCode } from "../../src/Sftp/Status.ts"
import type { SftpStatus } from "../../src/SshError.ts"

const run = Effect.runSync
const statusOf = <A>(effect: Effect.Effect<A, SftpStatus>): SftpStatus => Effect.runSync(Effect.flip(effect))
const codeOf = <A>(effect: Effect.Effect<A, SftpStatus>): number => statusOf(effect).code
const text = (s: string) => new TextEncoder().encode(s)
const decode = (b: Uint8Array) => new TextDecoder().decode(b)

const { Read, Write, Append, Create, Truncate, Exclusive } = OpenFlags

/** Reads a whole file through a handle, `block` bytes at a time. */
const readAll = (file: Backend.FileHandle, block = 7): Uint8Array => {
  const parts: Array<Uint8Array> = []
  for (let offset = 0;;) {
    const into = new Uint8Array(block)
    const n = run(file.read(offset, into))
    if (n === 0) return new Uint8Array(Buffer.concat(parts))
    parts.push(into.subarray(0, n))
    offset += n
  }
}

/** Every name a directory handle gives, batch by batch. */
const batches = (dir: Backend.DirectoryHandle, max: number): Array<Array<string>> => {
  const out: Array<Array<string>> = []
  for (;;) {
    const batch = run(dir.read(max))
    if (batch.length === 0) return out
    expect(batch.length).toBeLessThanOrEqual(max)
    out.push(batch.map((entry) => entry.filename))
  }
}

describe("MemoryBackend: seeding and inspection", () => {
  it("starts with the files given (directories on the way made), lists them in snapshot, reads them back", () => {
    const fs = MemoryBackend.make({ files: { "/etc/motd": "hello\n", "/data/a/b.bin": new Uint8Array([1, 2, 3]) }, uid: 7, gid: 8 })
    expect(fs.snapshot().map((e) => [e.path, e.type, e.size])).toEqual([
      ["/etc", "Directory", 0],
      ["/etc/motd", "File", 6],
      ["/data", "Directory", 0],
      ["/data/a", "Directory", 0],
      ["/data/a/b.bin", "File", 3]
    ])
    expect(fs.snapshot().every((e) => e.uid === 7 && e.gid === 8)).toBe(true)
    expect(decode(run(fs.readFile("/etc/motd")))).toBe("hello\n")
    run(fs.writeFile("/x/y/z.txt", "zed", 0o600))
    run(fs.makeDirectory("/x/y/w", 0o700))
    run(fs.makeDirectory("/x/y/w"))
    const z = fs.snapshot().find((e) => e.path === "/x/y/z.txt")!
    expect(z).toMatchObject({ type: "File", permissions: 0o600, size: 3 })
    expect(fs.snapshot().find((e) => e.path === "/x/y/w")).toMatchObject({ type: "Directory", permissions: 0o700 })
    expect(codeOf(fs.makeDirectory("/x/y/z.txt/sub"))).toBe(StatusCode.NoSuchFile)
    expect(codeOf(fs.readFile("/x"))).toBe(StatusCode.Failure)
    expect(codeOf(fs.readFile("/nope"))).toBe(StatusCode.NoSuchFile)
  })

  it("refuses seeds that do not fit in maxBytes", () => {
    expect(() => MemoryBackend.make({ maxBytes: 1000, files: { "/big": new Uint8Array(2000) } })).toThrow(/No space/)
  })
})

describe("MemoryBackend: files", () => {
  it("opens, writes at offsets (a gap reads as zeros), reads, fstats and closes", () => {
    const fs = MemoryBackend.make()
    const file = run(fs.open("/f", Read | Write | Create, { permissions: 0o640 }))
    run(file.write(0, text("hello")))
    run(file.write(10, text("world")))
    expect(readAll(file)).toEqual(new Uint8Array([...text("hello"), 0, 0, 0, 0, 0, ...text("world")]))
    const into = new Uint8Array(3)
    expect(run(file.read(1, into))).toBe(3)
    expect(decode(into)).toBe("ell")
    expect(run(file.read(15, into))).toBe(0)
    expect(run(file.read(1000, into))).toBe(0)
    const attrs = run(file.stat)
    expect(attrs.size).toBe(15)
    expect(Attributes.isFile(attrs)).toBe(true)
    expect(attrs.permissions! & 0o7777).toBe(0o640)
    run(file.close)
    expect(run(fs.stat("/f")).size).toBe(15)
  })

  it("keeps the bytes written, not the caller's buffer (lent memory)", () => {
    const fs = MemoryBackend.make()
    const file = run(fs.open("/f", Write | Create, {}))
    const data = text("abc")
    run(file.write(0, data))
    data.fill(0)
    run(file.close)
    expect(decode(run(fs.readFile("/f")))).toBe("abc")
  })

  it("honours Append, Truncate, Exclusive and Create, and the handle's access", () => {
    const fs = MemoryBackend.make({ files: { "/f": "12345" } })
    const appending = run(fs.open("/f", Write | Append, {}))
    run(appending.write(0, text("67")))
    run(appending.close)
    expect(decode(run(fs.readFile("/f")))).toBe("1234567")
    expect(codeOf(fs.open("/f", Write | Create | Exclusive, {}))).toBe(StatusCode.Failure)
    expect(statusOf(fs.open("/f", Write | Create | Exclusive, {})).message).toBe("File exists")
    expect(codeOf(fs.open("/missing", Read, {}))).toBe(StatusCode.NoSuchFile)
    expect(codeOf(fs.open("/missing/f", Write | Create, {}))).toBe(StatusCode.NoSuchFile)
    expect(codeOf(fs.open("/", Read, {}))).toBe(StatusCode.Failure)
    const truncated = run(fs.open("/f", Write | Truncate, {}))
    expect(run(truncated.stat).size).toBe(0)
    expect(codeOf(truncated.read(0, new Uint8Array(1)))).toBe(StatusCode.PermissionDenied)
    run(truncated.close)
    const reading = run(fs.open("/f", Read, {}))
    expect(codeOf(reading.write(0, text("x")))).toBe(StatusCode.PermissionDenied)
    run(reading.close)
  })

  it("sets attributes by path, by handle and on a link itself", () => {
    const fs = MemoryBackend.make({ files: { "/f": "0123456789" } })
    run(fs.setstat("/f", { permissions: 0o600, uid: 11, gid: 12, atime: 1_000, mtime: 2_000 }))
    expect(run(fs.stat("/f"))).toMatchObject({ size: 10, uid: 11, gid: 12, atime: 1_000, mtime: 2_000 })
    expect(run(fs.stat("/f")).permissions! & 0o7777).toBe(0o600)
    run(fs.setstat("/f", { size: 4 }))
    expect(decode(run(fs.readFile("/f")))).toBe("0123")
    run(fs.setstat("/f", { size: 6 }))
    expect(run(fs.readFile("/f"))).toEqual(new Uint8Array([...text("0123"), 0, 0]))
    const file = run(fs.open("/f", Write, {}))
    run(file.setstat({ size: 1, permissions: 0o644 }))
    run(file.close)
    expect(decode(run(fs.readFile("/f")))).toBe("0")
    run(fs.symlink("f", "/link"))
    run(fs.lsetstat!("/link", { atime: 5, mtime: 6 }))
    expect(run(fs.lstat("/link"))).toMatchObject({ atime: 5, mtime: 6 })
    expect(codeOf(fs.lsetstat!("/link", { permissions: 0o600 }))).toBe(StatusCode.OpUnsupported)
    expect(codeOf(fs.setstat("/", { size: 0 }))).toBe(StatusCode.Failure)
    expect(codeOf(fs.setstat("/none", { permissions: 0o600 }))).toBe(StatusCode.NoSuchFile)
  })
})

describe("MemoryBackend: directories", () => {
  it("makes and removes directories, refusing what POSIX refuses", () => {
    const fs = MemoryBackend.make()
    run(fs.mkdir("/d", { permissions: 0o750 }))
    expect(Attributes.isDirectory(run(fs.stat("/d")))).toBe(true)
    expect(run(fs.stat("/d")).permissions! & 0o7777).toBe(0o750)
    expect(codeOf(fs.mkdir("/d", {}))).toBe(StatusCode.Failure)
    expect(codeOf(fs.mkdir("/no/d", {}))).toBe(StatusCode.NoSuchFile)
    run(fs.writeFile("/d/f", "x"))
    expect(statusOf(fs.rmdir("/d")).message).toBe("Directory not empty")
    expect(codeOf(fs.rmdir("/d/f"))).toBe(StatusCode.NoSuchFile)
    expect(codeOf(fs.remove("/d"))).toBe(StatusCode.Failure)
    expect(codeOf(fs.remove("/d/none"))).toBe(StatusCode.NoSuchFile)
    run(fs.remove("/d/f"))
    run(fs.rmdir("/d"))
    expect(codeOf(fs.stat("/d"))).toBe(StatusCode.NoSuchFile)
    expect(codeOf(fs.rmdir("/"))).toBe(StatusCode.Failure)
  })

  it("lists a directory a bounded batch at a time, '.' and '..' first, with ls -l longnames", () => {
    const files: Record<string, string> = {}
    for (let i = 0; i < 250; i++) files[`/big/f${i}`] = "x"
    const fs = MemoryBackend.make({ files })
    const dir = run(fs.opendir("/big"))
    const got = batches(dir, 100)
    expect(got.map((b) => b.length)).toEqual([100, 100, 52])
    expect(got[0]!.slice(0, 3)).toEqual([".", "..", "f0"])
    expect(got.flat().length).toBe(252)
    run(dir.close)
    const small = run(fs.opendir("/"))
    const [entries] = [run(small.read(10))]
    const big = entries.find((e) => e.filename === "big")!
    expect(big.longname).toMatch(/^drwxr-xr-x\s+2 0\s+0\s+4096 \w{3} [ \d]\d \d\d:\d\d big$/)
    expect(run(small.read(10))).toEqual([])
    expect(codeOf(fs.opendir("/big/f1"))).toBe(StatusCode.NoSuchFile)
    expect(codeOf(fs.opendir("/none"))).toBe(StatusCode.NoSuchFile)
  })

  it("a listing in progress sees entries removed meanwhile gone, and is never held whole", () => {
    const fs = MemoryBackend.make({ files: { "/d/a": "", "/d/b": "", "/d/c": "" } })
    const dir = run(fs.opendir("/d"))
    expect(run(dir.read(3)).map((e) => e.filename)).toEqual([".", "..", "a"])
    run(fs.remove("/d/b"))
    expect(run(dir.read(3)).map((e) => e.filename)).toEqual(["c"])
  })
})

describe("MemoryBackend: names", () => {
  it("renames: plain RENAME refuses an existing target, posix-rename replaces it, subtrees move whole", () => {
    const fs = MemoryBackend.make({ files: { "/a": "A", "/b": "B", "/d/e/f": "F" } })
    expect(statusOf(fs.rename("/a", "/b")).message).toBe("File exists")
    run(fs.posixRename!("/a", "/b"))
    expect(decode(run(fs.readFile("/b")))).toBe("A")
    expect(codeOf(fs.stat("/a"))).toBe(StatusCode.NoSuchFile)
    run(fs.rename("/d", "/moved"))
    expect(decode(run(fs.readFile("/moved/e/f")))).toBe("F")
    expect(codeOf(fs.rename("/moved", "/moved/e/inside"))).toBe(StatusCode.BadMessage)
    expect(codeOf(fs.rename("/none", "/x"))).toBe(StatusCode.NoSuchFile)
    expect(codeOf(fs.posixRename!("/b", "/moved"))).toBe(StatusCode.Failure)
    run(fs.rename("/b", "/b"))
    expect(decode(run(fs.readFile("/b")))).toBe("A")
  })

  it("links: symlink stores the target as given, links are followed inside the tree, readlink and realpath", () => {
    const fs = MemoryBackend.make({ files: { "/d/f": "data" } })
    run(fs.mkdir("/d/e", {}))
    run(fs.symlink("f", "/d/rel"))
    run(fs.symlink("/d", "/abs"))
    run(fs.symlink("../../../../d/f", "/d/climb"))
    run(fs.symlink("loop2", "/loop1"))
    run(fs.symlink("loop1", "/loop2"))
    expect(run(fs.readlink("/d/rel"))).toBe("f")
    expect(Attributes.isSymbolicLink(run(fs.lstat("/d/rel")))).toBe(true)
    expect(run(fs.lstat("/d/rel")).size).toBe(1)
    expect(run(fs.stat("/d/rel")).size).toBe(4)
    expect(decode(run(fs.readFile("/abs/rel")))).toBe("data")
    expect(decode(run(fs.readFile("/d/climb")))).toBe("data")
    expect(run(fs.realpath("/abs/rel"))).toBe("/d/f")
    expect(run(fs.realpath("/../../abs/./e/../rel"))).toBe("/d/f")
    // as the disk backend: from a missing component on, the rest is taken as spelt
    expect(run(fs.realpath("/abs/x/../rel"))).toBe("/d/rel")
    expect(run(fs.realpath("/missing/deeper"))).toBe("/missing/deeper")
    expect(run(fs.realpath("."))).toBe("/")
    expect(codeOf(fs.stat("/loop1"))).toBe(StatusCode.NoSuchFile)
    expect(codeOf(fs.readlink("/d/f"))).toBe(StatusCode.BadMessage)
    expect(codeOf(fs.symlink("x", "/d/f"))).toBe(StatusCode.Failure)
    // a dangling link is a name: listed, removable
    run(fs.symlink("nowhere", "/dangling"))
    expect(codeOf(fs.stat("/dangling"))).toBe(StatusCode.NoSuchFile)
    run(fs.remove("/dangling"))
    expect(codeOf(fs.lstat("/dangling"))).toBe(StatusCode.NoSuchFile)
  })

  it("hard links share the bytes; the file lives until its last name goes", () => {
    const fs = MemoryBackend.make({ files: { "/a": "shared" } })
    run(fs.hardlink!("/a", "/b"))
    const file = run(fs.open("/b", Write | Append, {}))
    run(file.write(0, text("!")))
    run(file.close)
    expect(decode(run(fs.readFile("/a")))).toBe("shared!")
    run(fs.remove("/a"))
    expect(decode(run(fs.readFile("/b")))).toBe("shared!")
    expect(codeOf(fs.hardlink!("/", "/c"))).toBe(StatusCode.Failure)
    run(fs.mkdir("/dir", {}))
    expect(codeOf(fs.hardlink!("/dir", "/c"))).toBe(StatusCode.PermissionDenied)
    expect(codeOf(fs.hardlink!("/b", "/dir"))).toBe(StatusCode.Failure)
  })
})

describe("MemoryBackend: structure", () => {
  it("a directory's link count follows its subdirectories through mkdir, rename and rmdir", () => {
    const fs = MemoryBackend.make()
    const nlinkOf = (name: string) => {
      const dir = run(fs.opendir("/"))
      const entry = run(dir.read(100)).find((e) => e.filename === name)!
      run(dir.close)
      return Number(entry.longname!.split(/\s+/)[1])
    }
    run(fs.makeDirectory("/p/a"))
    run(fs.makeDirectory("/p/b"))
    run(fs.makeDirectory("/q"))
    expect([nlinkOf("p"), nlinkOf("q")]).toEqual([4, 2])
    run(fs.rename("/p/a", "/q/a"))
    expect([nlinkOf("p"), nlinkOf("q")]).toEqual([3, 3])
    run(fs.mkdir("/q/empty", {}))
    run(fs.posixRename!("/p/b", "/q/empty"))
    expect([nlinkOf("p"), nlinkOf("q")]).toEqual([2, 4])
    run(fs.rmdir("/q/a"))
    expect(nlinkOf("q")).toBe(3)
  })
})

describe("MemoryBackend: the maxBytes bound", () => {
  const noSpace = <A>(effect: Effect.Effect<A, SftpStatus>) => {
    const status = statusOf(effect)
    expect(status.code).toBe(StatusCode.NoSpaceOnFilesystem)
    expect(status.message).toMatch(/^No space on file system/)
  }

  it("a write past the bound fails NO_SPACE_ON_FILESYSTEM and the usage stays within it", () => {
    const fs = MemoryBackend.make({ maxBytes: 64 * 1024 })
    const file = run(fs.open("/f", Write | Create, {}))
    run(file.write(0, new Uint8Array(40 * 1024)))
    noSpace(file.write(40 * 1024, new Uint8Array(40 * 1024)))
    expect(fs.bytesUsed()).toBeLessThanOrEqual(fs.maxBytes)
    // a far offset would be a sparse file here: refused too, nothing allocated
    noSpace(file.write(2 ** 40, new Uint8Array(1)))
    noSpace(file.setstat({ size: 2 ** 40 }))
    noSpace(fs.setstat("/f", { size: 1024 * 1024 }))
    expect(run(file.stat).size).toBe(40 * 1024)
    run(file.close)
    expect(fs.bytesUsed()).toBeLessThanOrEqual(fs.maxBytes)
  })

  it("counts names: a flood of empty files or links ends in NO_SPACE, and removing them gives the room back", () => {
    const fs = MemoryBackend.make({ maxBytes: 16 * 1024 })
    const empty = fs.bytesUsed()
    let created = 0
    for (;; created++) {
      const result = Effect.runSync(Effect.result(fs.mkdir(`/d${created}`, {})))
      if (result._tag === "Failure") {
        expect(result.failure.code).toBe(StatusCode.NoSpaceOnFilesystem)
        break
      }
    }
    expect(created).toBeGreaterThan(10)
    expect(created).toBeLessThan(16 * 1024 / MemoryBackend.ENTRY_BYTES)
    noSpace(fs.symlink("x".repeat(100), "/link"))
    noSpace(fs.open("/new", Write | Create, {}))
    // renaming in a full tree still works: it costs only the names' difference
    run(fs.rename("/d0", "/e0"))
    for (let i = 1; i < created; i++) run(fs.rmdir(`/d${i}`))
    run(fs.rmdir("/e0"))
    expect(fs.bytesUsed()).toBe(empty)
  })

  it("a removed file's bytes are freed when its last handle closes; statvfs reports the usage", () => {
    const fs = MemoryBackend.make({ maxBytes: 1024 * 1024 })
    const before = fs.bytesUsed()
    run(fs.writeFile("/f", new Uint8Array(300 * 1024)))
    const file = run(fs.open("/f", Read, {}))
    run(fs.remove("/f"))
    expect(fs.bytesUsed()).toBeGreaterThanOrEqual(before + 300 * 1024)
    expect(run(file.read(0, new Uint8Array(10)))).toBe(10)
    const vfs = run(fs.statvfs!("/"))
    expect(vfs.blocks).toBe(256n)
    expect(vfs.bfree).toBeLessThan(256n - 70n)
    run(file.close)
    expect(fs.bytesUsed()).toBe(before)
    expect(run(fs.statvfs!("/")).bfree).toBeGreaterThan(250n)
    expect(codeOf(fs.statvfs!("/none"))).toBe(StatusCode.NoSuchFile)
  })
})
