/**
 * Our SFTP client against our SFTP server over loopback SSH: every operation
 * and extension, scoped files, pipelined transfers (hash-compared), resume,
 * preserve, recursion, progress, the jail (no escape through "..", symlinks
 * or absolute paths), read-only mode, and typed errors.
 */
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { afterEach, beforeEach, describe, expect, it } from "vitest"
import * as Attributes from "../../src/Sftp/Attributes.ts"
import * as Extensions from "../../src/Sftp/Extensions.ts"
import type { OpenMode } from "../../src/Sftp/Messages.ts"
import { StatusCode } from "../../src/Sftp/Status.ts"
import * as Transfer from "../../src/Sftp/Transfer.ts"
import type { SshError } from "../../src/SshError.ts"
import { adopt, isOwned, release } from "../../src/internal/ownedBuffers.ts"
import { runFailure, runScoped } from "../helpers.ts"
import { randomBytes, sha256, tempDir, withSftp } from "./fixtures.ts"

let root = ""
let local = ""
let cleanup: Array<() => void> = []

beforeEach(() => {
  const r = tempDir("effect-ssh-sftp-root-")
  const l = tempDir("effect-ssh-sftp-local-")
  root = r.path
  local = l.path
  cleanup = [r.remove, l.remove]
})

afterEach(() => {
  for (const f of cleanup) f()
})

const inRoot = (p: string) => Path.join(root, p)
const text = (s: string) => new TextEncoder().encode(s)

const sftpStatus = (error: SshError) => {
  expect(error.reason._tag).toBe("SftpStatus")
  return error.reason as Extract<SshError["reason"], { _tag: "SftpStatus" }>
}

describe("SFTP operations", () => {
  it("negotiates v3 with every extension and the server's limits", async () => {
    const info = await runScoped(withSftp(root, (sftp) => Effect.succeed(sftp)))
    expect(info.version).toBe(3)
    for (const e of Extensions.OPENSSH_EXTENSIONS) expect(info.supports(e.name)).toBe(true)
    expect(info.limits.maxReadLength).toBe(256 * 1024)
    expect(info.blockSize).toEqual({ read: 256 * 1024, write: 256 * 1024 })
  })

  it("creates, stats, sets attributes, lists, renames and removes", async () => {
    await runScoped(withSftp(root, (sftp) =>
      Effect.gen(function*() {
        yield* sftp.mkdir("/dir", { permissions: 0o750 })
        expect(Fs.statSync(inRoot("dir")).mode & 0o777).toBe(0o750)
        yield* sftp.writeFile("/dir/a.txt", text("hello"))
        const attrs = yield* sftp.stat("/dir/a.txt")
        expect(attrs.size).toBe(5)
        expect(Attributes.isFile(attrs)).toBe(true)
        expect(Attributes.isDirectory(yield* sftp.lstat("dir"))).toBe(true)

        yield* sftp.chmod("/dir/a.txt", 0o600)
        yield* sftp.utimes("/dir/a.txt", 1_000_000, new Date(2_000_000_000))
        const st = Fs.statSync(inRoot("dir/a.txt"))
        expect(st.mode & 0o777).toBe(0o600)
        expect(st.mtimeMs).toBe(2_000_000_000)
        expect(st.atimeMs).toBe(1_000_000_000)
        yield* sftp.truncate("/dir/a.txt", 2)
        expect(Fs.readFileSync(inRoot("dir/a.txt"), "utf8")).toBe("he")

        expect(yield* sftp.exists("/dir/a.txt")).toBe(true)
        expect(yield* sftp.exists("/dir/none")).toBe(false)

        yield* sftp.writeFile("/dir/b.txt", text("b"))
        // plain RENAME refuses to replace; posix-rename (the default when offered) replaces
        const clash = yield* Effect.flip(sftp.rename("/dir/a.txt", "/dir/b.txt", { overwrite: false }))
        expect(sftpStatus(clash).code).toBe(StatusCode.Failure)
        yield* sftp.rename("/dir/a.txt", "/dir/b.txt")
        expect(Fs.readFileSync(inRoot("dir/b.txt"), "utf8")).toBe("he")
        yield* sftp.rename("/dir/b.txt", "/dir/c.txt", { overwrite: false })

        const names = (yield* sftp.list("/dir")).map((e) => e.filename)
        expect(names).toEqual(["c.txt"])
        yield* sftp.remove("/dir/c.txt")
        yield* sftp.rmdir("/dir")
        expect(Fs.existsSync(inRoot("dir"))).toBe(false)
      })))
  })

  it("lists large directories across several READDIR batches, as a Stream", async () => {
    Fs.mkdirSync(inRoot("many"))
    for (let i = 0; i < 250; i++) Fs.writeFileSync(inRoot(`many/f${i}`), String(i))
    const entries = await runScoped(withSftp(root, (sftp) => Stream.runCollect(sftp.readdir("/many"))))
    expect(entries.length).toBe(250)
    expect(new Set(entries.map((e) => e.filename)).size).toBe(250)
    const f7 = entries.find((e) => e.filename === "f7")!
    expect(f7.attrs.size).toBe(1)
    expect(f7.longname.startsWith("-rw")).toBe(true)
    expect(f7.longname.endsWith(" f7")).toBe(true)
  })

  it("makes and reads symlinks, resolves real paths", async () => {
    Fs.mkdirSync(inRoot("d"))
    Fs.writeFileSync(inRoot("d/file"), "x")
    await runScoped(withSftp(root, (sftp) =>
      Effect.gen(function*() {
        yield* sftp.symlink("d/file", "/link")
        expect(Fs.readlinkSync(inRoot("link"))).toBe("d/file")
        expect(yield* sftp.readlink("/link")).toBe("d/file")
        expect(Attributes.isSymbolicLink(yield* sftp.lstat("/link"))).toBe(true)
        expect(Attributes.isFile(yield* sftp.stat("/link"))).toBe(true)
        expect(yield* sftp.realpath(".")).toBe("/")
        expect(yield* sftp.realpath("d/../d/./file")).toBe("/d/file")
        expect(yield* sftp.realpath("/link")).toBe("/d/file")
        yield* sftp.lsetstat("/link", { atime: 1000, mtime: 2000 })
        expect(Fs.lstatSync(inRoot("link")).mtimeMs).toBe(2_000_000)
      })))
  })

  it("runs every extension: hardlink, statvfs, fstatvfs, fsync, limits, expand-path, copy-data, home-directory, users-groups", async () => {
    const data = randomBytes(300_000)
    Fs.writeFileSync(inRoot("src.bin"), data)
    await runScoped(withSftp(root, (sftp) =>
      Effect.gen(function*() {
        yield* sftp.hardlink("/src.bin", "/hard.bin")
        expect(Fs.statSync(inRoot("hard.bin")).ino).toBe(Fs.statSync(inRoot("src.bin")).ino)

        const vfs = yield* sftp.statvfs("/")
        const real = Fs.statfsSync(root, { bigint: true })
        expect(vfs.blocks).toBe(real.blocks)
        expect(vfs.bsize).toBe(real.bsize)
        expect(vfs.flag & Extensions.VfsFlag.ReadOnly).toBe(0n)

        const from = yield* sftp.openHandle("/src.bin", "r")
        const to = yield* sftp.openHandle("/copy.bin", "w")
        expect((yield* sftp.fstatvfs(from)).blocks).toBe(vfs.blocks)
        yield* sftp.copyData({ from, fromOffset: 1000, length: 100_000, to, toOffset: 0 })
        yield* sftp.fsync(to)
        yield* sftp.close(from)
        yield* sftp.close(to)
        expect(sha256(inRoot("copy.bin"))).toBe(sha256(data.subarray(1000, 101_000)))

        expect(yield* sftp.expandPath("~")).toBe("/")
        expect(yield* sftp.expandPath("~alice/x/..")).toBe("/")
        expect(yield* sftp.homeDirectory()).toBe("/")
        expect(yield* sftp.homeDirectory("alice")).toBe("/")
        expect(sftpStatus(yield* Effect.flip(sftp.homeDirectory("mallory"))).code).toBe(StatusCode.NoSuchFile)

        const me = Os.userInfo()
        const names = yield* sftp.usersGroupsById([me.uid, 0x7fff_fff0], [0])
        expect(names.usernames).toEqual([me.username, ""])
        expect(names.groupnames).toEqual([""])
      })))
  })

  it("fails with typed SftpStatus errors carrying code, message and path", async () => {
    Fs.mkdirSync(inRoot("full"))
    Fs.writeFileSync(inRoot("full/x"), "x")
    const missing = await runFailure(withSftp(root, (sftp) => sftp.stat("/nope")))
    expect(sftpStatus(missing)).toMatchObject({ code: StatusCode.NoSuchFile, path: "/nope" })
    expect(sftpStatus(missing).message).toBe("No such file")
    const notEmpty = await runFailure(withSftp(root, (sftp) => sftp.rmdir("/full")))
    expect(sftpStatus(notEmpty)).toMatchObject({ code: StatusCode.Failure, path: "/full" })
    const exclusive = await runFailure(withSftp(root, (sftp) => sftp.openHandle("/full/x", "wx")))
    expect(sftpStatus(exclusive).code).toBe(StatusCode.Failure)
    const badMode = await runFailure(withSftp(root, (sftp) => sftp.openHandle("/full/x", "rw" as OpenMode)))
    expect(badMode.reason).toMatchObject({ _tag: "ProtocolError", message: 'unknown open mode "rw"' })
    // A request that cannot be encoded is the caller's mistake: BAD_MESSAGE, nothing sent, the session usable.
    const [fractional, after] = await runScoped(withSftp(root, (sftp) =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(Stream.runDrain(sftp.readStream("/full/x", { offset: 1.5 })))
        return [error, yield* sftp.stat("/full/x")] as const
      })))
    expect(sftpStatus(fractional).code).toBe(StatusCode.BadMessage)
    expect(sftpStatus(fractional).message).toBe("invalid Read request: offset is not a non-negative safe integer: 1.5")
    expect(after.size).toBe(1)
    const unknown = await runScoped(withSftp(root, (sftp) => sftp.request({ _tag: "Extended", id: 0, request: "nope@example.com", data: new Uint8Array(2) })))
    expect(unknown).toMatchObject({ _tag: "Status", code: StatusCode.OpUnsupported })
  })
})

describe("SftpFile", () => {
  it("reads, writes, seeks and truncates with a position", async () => {
    await runScoped(withSftp(root, (sftp) =>
      Effect.gen(function*() {
        const file = yield* sftp.open("/f.txt", "w+")
        yield* file.write("hello world")
        expect(yield* file.tell).toBe(11)
        expect(yield* file.seek(6)).toBe(6)
        expect(new TextDecoder().decode(yield* file.read(5))).toBe("world")
        expect((yield* file.read(5)).length).toBe(0)
        expect(yield* file.seek(-5, "end")).toBe(6)
        yield* file.write("there")
        yield* file.seek(0)
        expect(new TextDecoder().decode(yield* file.readAll)).toBe("hello there")
        yield* file.truncate(5)
        expect((yield* file.stat).size).toBe(5)
        yield* file.sync
        yield* file.seek(2, "current")
        expect(yield* file.tell).toBe(13)
        const streamed = yield* Stream.runCollect((yield* Effect.as(file.seek(1), file)).stream())
        expect(new TextDecoder().decode(streamed[0]!)).toBe("ello")
        yield* file.close
        const closed = yield* Effect.flip(file.read(1))
        expect(sftpStatus(closed).message).toBe("the file is closed")
      })))
    expect(Fs.readFileSync(inRoot("f.txt"), "utf8")).toBe("hello")
  })

  it("sends a WRITE of data the library owns without copying it, holding it until sealed", async () => {
    const source = randomBytes(200_000)
    const owned = adopt(Uint8Array.from(source))
    const small = adopt(Uint8Array.from(source.subarray(0, 1000)))
    await runScoped(withSftp(root, (sftp) =>
      Effect.gen(function*() {
        const handle = yield* sftp.openHandle("/owned", "w")
        yield* sftp.write(handle, 0, owned)
        yield* sftp.write(handle, owned.length, small)
        yield* sftp.close(handle)
      })))
    // the outbox released only the holder the WRITE took: ours still keeps the buffer (a small one was copied)
    expect(isOwned(owned) && owned.length).toBe(200_000)
    expect(isOwned(small) && small.length).toBe(1000)
    release(owned)
    expect(owned.byteLength).toBe(0)
    expect(sha256(Fs.readFileSync(inRoot("owned")))).toBe(sha256(concat([source, source.subarray(0, 1000)])))
  })

  it("pipelines large reads and writes, and closes the handle with its scope", async () => {
    const data = randomBytes(3 * 1024 * 1024 + 12345)
    await runScoped(withSftp(root, (sftp) =>
      Effect.gen(function*() {
        const handle = yield* Effect.scoped(Effect.gen(function*() {
          const file = yield* sftp.open("/big", "w")
          yield* file.write(data)
          return file.handle
        }))
        // the scope closed the handle: it is no longer valid on the server
        expect(sftpStatus(yield* Effect.flip(sftp.fstat(handle))).code).toBe(StatusCode.Failure)
        const read = yield* Effect.scoped(Effect.flatMap(sftp.open("/big", "r"), (file) => file.read(data.length + 10)))
        expect(sha256(read)).toBe(sha256(data))
      })))
    expect(sha256(inRoot("big"))).toBe(sha256(data))
  })
})

describe("transfers", () => {
  it("get and put files, hash-identical, with progress", async () => {
    const data = randomBytes(5 * 1024 * 1024 + 7)
    Fs.writeFileSync(inRoot("remote.bin"), data)
    Fs.writeFileSync(Path.join(local, "up.bin"), data)
    const seen: Array<Transfer.Progress> = []
    const [got, put] = await runScoped(withSftp(root, (sftp) =>
      Effect.all([
        sftp.get("/remote.bin", Path.join(local, "down.bin"), { onProgress: (p) => Effect.sync(() => void seen.push(p)) }),
        sftp.put(Path.join(local, "up.bin"), "/up.bin")
      ])))
    expect(got).toEqual({ bytes: data.length, files: 1 })
    expect(put).toEqual({ bytes: data.length, files: 1 })
    expect(sha256(Path.join(local, "down.bin"))).toBe(sha256(data))
    expect(sha256(inRoot("up.bin"))).toBe(sha256(data))
    expect(seen.at(-1)).toEqual({ bytes: data.length, total: data.length })
    for (let i = 1; i < seen.length; i++) expect(seen[i]!.bytes).toBeGreaterThan(seen[i - 1]!.bytes)
  })

  it("transfers empty files and refuses directories without recursive", async () => {
    Fs.writeFileSync(inRoot("empty"), "")
    Fs.mkdirSync(inRoot("dir"))
    await runScoped(withSftp(root, (sftp) =>
      Effect.gen(function*() {
        expect(yield* sftp.get("/empty", Path.join(local, "empty"))).toEqual({ bytes: 0, files: 1 })
        const e = yield* Effect.flip(sftp.get("/dir", Path.join(local, "dir")))
        expect(sftpStatus(e).path).toBe("/dir")
      })))
    expect(Fs.readFileSync(Path.join(local, "empty")).length).toBe(0)
  })

  it("resumes partial downloads and uploads", async () => {
    const data = randomBytes(2 * 1024 * 1024 + 99)
    Fs.writeFileSync(inRoot("r.bin"), data)
    Fs.writeFileSync(Path.join(local, "r.bin"), data.subarray(0, 700_001))
    Fs.writeFileSync(Path.join(local, "u.bin"), data)
    Fs.writeFileSync(inRoot("u.bin"), data.subarray(0, 1_000_000))
    const [got, put] = await runScoped(withSftp(root, (sftp) =>
      Effect.all([
        sftp.get("/r.bin", Path.join(local, "r.bin"), { resume: true }),
        sftp.put(Path.join(local, "u.bin"), "/u.bin", { resume: true })
      ])))
    expect(got.bytes).toBe(data.length)
    expect(put.bytes).toBe(data.length)
    expect(sha256(Path.join(local, "r.bin"))).toBe(sha256(data))
    expect(sha256(inRoot("u.bin"))).toBe(sha256(data))
  })

  it("copies trees recursively, preserving times and permissions", async () => {
    const tree: Record<string, Uint8Array> = {
      "t/a.bin": randomBytes(400_000),
      "t/sub/b.bin": randomBytes(10),
      "t/sub/deeper/c.bin": randomBytes(1_000_000),
      "t/empty.bin": new Uint8Array(0)
    }
    for (const [p, d] of Object.entries(tree)) {
      Fs.mkdirSync(Path.dirname(inRoot(p)), { recursive: true })
      Fs.writeFileSync(inRoot(p), d)
    }
    Fs.mkdirSync(inRoot("t/emptydir"))
    Fs.chmodSync(inRoot("t/a.bin"), 0o640)
    Fs.utimesSync(inRoot("t/sub/b.bin"), 1_500_000_000, 1_600_000_000)
    const down = Path.join(local, "down")
    const [got, put] = await runScoped(withSftp(root, (sftp) =>
      Effect.gen(function*() {
        const got = yield* sftp.get("/t", down, { recursive: true, preserve: true, concurrency: 3 })
        const put = yield* sftp.put(down, "/copy", { recursive: true, preserve: true })
        return [got, put] as const
      })))
    expect(got.files).toBe(4)
    expect(put.files).toBe(4)
    for (const [p, d] of Object.entries(tree)) {
      expect(sha256(Path.join(down, p.slice(2)))).toBe(sha256(d))
      expect(sha256(inRoot(`copy/${p.slice(2)}`))).toBe(sha256(d))
    }
    expect(Fs.statSync(Path.join(down, "emptydir")).isDirectory()).toBe(true)
    expect(Fs.statSync(inRoot("copy/emptydir")).isDirectory()).toBe(true)
    expect(Fs.statSync(Path.join(down, "a.bin")).mode & 0o777).toBe(0o640)
    expect(Fs.statSync(inRoot("copy/a.bin")).mode & 0o777).toBe(0o640)
    expect(Fs.statSync(Path.join(down, "sub/b.bin")).mtimeMs).toBe(1_600_000_000_000)
    expect(Fs.statSync(inRoot("copy/sub/b.bin")).mtimeMs).toBe(1_600_000_000_000)
  })

  it("streams with readStream (offset, length) and writeSink (small chunks gathered)", async () => {
    const data = randomBytes(1_500_000)
    Fs.writeFileSync(inRoot("s.bin"), data)
    await runScoped(withSftp(root, (sftp) =>
      Effect.gen(function*() {
        const part = yield* Stream.runCollect(sftp.readStream("/s.bin", { offset: 100_000, length: 1_000_000, blockSize: 65536, maxInFlight: 3 }))
        expect(sha256(concat(part))).toBe(sha256(data.subarray(100_000, 1_100_000)))
        const chunks = Array.from({ length: 1000 }, (_, i) => data.subarray(i * 1500, (i + 1) * 1500))
        const written = yield* Stream.run(Stream.fromIterable(chunks), sftp.writeSink("/w.bin"))
        expect(written).toBe(data.length)
        expect(sha256(yield* sftp.readFile("/w.bin"))).toBe(sha256(data))
      })))
  })

  it("reports progress as a Stream", async () => {
    const data = randomBytes(3 * 1024 * 1024)
    Fs.writeFileSync(inRoot("p.bin"), data)
    const updates = await runScoped(withSftp(root, (sftp) =>
      Stream.runCollect(Transfer.progressStream((onProgress) => sftp.get("/p.bin", Path.join(local, "p.bin"), { onProgress })))))
    expect(updates.length).toBeGreaterThan(0)
    expect(updates.at(-1)).toEqual({ bytes: data.length, total: data.length })
  })

  it("leaves the session usable after an interrupted transfer", async () => {
    Fs.writeFileSync(inRoot("i.bin"), randomBytes(4 * 1024 * 1024))
    await runScoped(withSftp(root, (sftp) =>
      Effect.gen(function*() {
        const firstChunk = yield* Stream.runHead(sftp.readStream("/i.bin"))
        expect(firstChunk._tag).toBe("Some")
        expect((yield* sftp.stat("/i.bin")).size).toBe(4 * 1024 * 1024)
        expect((yield* sftp.readFile("/i.bin")).length).toBe(4 * 1024 * 1024)
      })))
  })
})

describe("the jail", () => {
  let outside = ""
  beforeEach(() => {
    const o = tempDir("effect-ssh-sftp-outside-")
    outside = o.path
    cleanup.push(o.remove)
    Fs.writeFileSync(Path.join(outside, "secret"), "top secret")
  })

  it("keeps '..' and absolute paths inside the root", async () => {
    Fs.writeFileSync(inRoot("inside"), "in")
    await runScoped(withSftp(root, (sftp) =>
      Effect.gen(function*() {
        expect(yield* sftp.realpath("../../..")).toBe("/")
        expect(yield* sftp.realpath(`../../${outside}`)).toBe(outside)
        const escape = `../../../../../../..${outside}/secret`
        expect(sftpStatus(yield* Effect.flip(sftp.stat(escape))).code).toBe(StatusCode.NoSuchFile)
        expect(sftpStatus(yield* Effect.flip(sftp.stat(`${outside}/secret`))).code).toBe(StatusCode.NoSuchFile)
        expect(sftpStatus(yield* Effect.flip(sftp.readFile(`/..${outside}/secret`))).code).toBe(StatusCode.NoSuchFile)
        expect((yield* sftp.stat("/../../inside")).size).toBe(2)
        const listed = (yield* sftp.list("/..")).map((e) => e.filename)
        expect(listed).toEqual(["inside"])
      })))
  })

  it("follows links inside the jail only: absolute and relative escapes land in the root", async () => {
    Fs.symlinkSync(outside, inRoot("abs"))
    Fs.symlinkSync(Path.relative(root, outside), inRoot("rel"))
    Fs.symlinkSync(Path.join(outside, "secret"), inRoot("file-link"))
    await runScoped(withSftp(root, (sftp) =>
      Effect.gen(function*() {
        for (const path of ["/abs/secret", "/rel/secret", "/file-link"]) {
          expect(sftpStatus(yield* Effect.flip(sftp.readFile(path))).code, path).toBe(StatusCode.NoSuchFile)
        }
        expect(sftpStatus(yield* Effect.flip(sftp.list("/abs"))).code).toBe(StatusCode.NoSuchFile)
        // writing through an escaping link creates nothing outside
        const put = yield* Effect.flip(sftp.writeFile("/abs/planted", text("x")))
        expect(sftpStatus(put).code).toBe(StatusCode.NoSuchFile)
        // a link made over SFTP is confined the same way
        yield* sftp.symlink(outside, "/made")
        expect(sftpStatus(yield* Effect.flip(sftp.stat("/made/secret"))).code).toBe(StatusCode.NoSuchFile)
        // with the same path created inside the root, the link resolves to it
        Fs.mkdirSync(inRoot(outside), { recursive: true })
        Fs.writeFileSync(inRoot(`${outside}/secret`), "decoy")
        expect(new TextDecoder().decode(yield* sftp.readFile("/made/secret"))).toBe("decoy")
        expect(yield* sftp.realpath("/abs/secret")).toBe(`${outside}/secret`)
      })))
    expect(Fs.existsSync(Path.join(outside, "planted"))).toBe(false)
    expect(Fs.readFileSync(Path.join(outside, "secret"), "utf8")).toBe("top secret")
  })

  it("refuses changes in read-only mode", async () => {
    Fs.writeFileSync(inRoot("ro"), "ro")
    await runScoped(withSftp(root, (sftp) =>
      Effect.gen(function*() {
        expect(new TextDecoder().decode(yield* sftp.readFile("/ro"))).toBe("ro")
        const attempts = [
          sftp.writeFile("/new", text("x")),
          sftp.mkdir("/d"),
          sftp.remove("/ro"),
          sftp.rename("/ro", "/ro2"),
          sftp.chmod("/ro", 0o777),
          sftp.symlink("ro", "/l"),
          sftp.hardlink("/ro", "/h")
        ]
        for (const attempt of attempts) {
          expect(sftpStatus(yield* Effect.flip(attempt)).code).toBe(StatusCode.PermissionDenied)
        }
        expect((yield* sftp.statvfs("/")).flag & Extensions.VfsFlag.ReadOnly).toBe(Extensions.VfsFlag.ReadOnly)
      }), { readOnly: true }))
    expect(Fs.readdirSync(root)).toEqual(["ro"])
  })
})

const concat = (chunks: ReadonlyArray<Uint8Array>) => new Uint8Array(Buffer.concat(chunks))
