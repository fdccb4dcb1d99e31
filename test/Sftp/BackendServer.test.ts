/**
 * `SftpServer.make` over backends other than the disk, driven by our
 * SftpClient over loopback SSH: a backend is all a user writes. A read-only
 * wrapper of the memory backend refusing every change, the memory backend's
 * bound reaching the client as a v3 status, and the server's own rules
 * (handle caps, bounded READDIR, the extensions a backend lacks, failures it
 * did not type, a backend made per session) holding whatever the backend.
 */
import * as Effect from "effect/Effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { afterEach, beforeEach, describe, expect, it } from "vitest"
import * as SshServer from "../../src/Server.ts"
import * as Backend from "../../src/Sftp/Backend.ts"
import * as Extensions from "../../src/Sftp/Extensions.ts"
import * as MemoryBackend from "../../src/Sftp/MemoryBackend.ts"
import { OpenFlags } from "../../src/Sftp/Messages.ts"
import type { SftpClient } from "../../src/Sftp/SftpClient.ts"
import * as SftpServer from "../../src/Sftp/SftpServer.ts"
import { StatusCode } from "../../src/Sftp/Status.ts"
import type { SshError } from "../../src/SshError.ts"
import { runScoped } from "../helpers.ts"
import { connect, randomBytes, serverOptions, sha256, tempDir } from "./fixtures.ts"

let local = { path: "", remove: () => {} }
beforeEach(() => {
  local = tempDir("effect-ssh-sftp-backend-")
})
afterEach(() => local.remove())

/** Serves `sftp` and gives a client session on it. */
const withServer = <A, E>(sftp: ReturnType<typeof SftpServer.make>, f: (client: SftpClient) => Effect.Effect<A, E>) =>
  runScoped(Effect.gen(function*() {
    const server = yield* SshServer.serve(serverOptions({ sftp }))
    const ssh = yield* connect(server.address.port)
    return yield* f(yield* ssh.sftp())
  }))

const statusOf = (error: SshError) => {
  expect(error.reason._tag).toBe("SftpStatus")
  return error.reason as Extract<SshError["reason"], { _tag: "SftpStatus" }>
}

const fails = <A>(effect: Effect.Effect<A, SshError>) => Effect.map(Effect.flip(effect), statusOf)

const MUTATING = OpenFlags.Write | OpenFlags.Append | OpenFlags.Create | OpenFlags.Truncate

/**
 * What a user writes: a backend that serves another one read-only. Every change is refused with
 * PERMISSION_DENIED; reads go through.
 */
const readOnly = (inner: Backend.Backend): Backend.Backend => {
  const denied = () => Backend.fail(StatusCode.PermissionDenied, "this share is read-only")
  return {
    open: (path, flags, attrs) =>
      (flags & MUTATING) !== 0
        ? denied()
        : Effect.map(inner.open(path, flags, attrs), (file) => ({ ...file, write: denied, setstat: denied })),
    opendir: (path) => Effect.map(inner.opendir(path), (dir) => ({ ...dir, setstat: denied })),
    stat: inner.stat,
    lstat: inner.lstat,
    setstat: denied,
    mkdir: denied,
    rmdir: denied,
    remove: denied,
    rename: denied,
    symlink: denied,
    readlink: inner.readlink,
    realpath: inner.realpath
  }
}

describe("a backend of one's own", () => {
  it("a read-only wrapper over the memory backend serves reads and refuses every change with PERMISSION_DENIED", async () => {
    const data = randomBytes(300_000)
    const memory = MemoryBackend.make({ files: { "/pub/data.bin": data, "/pub/readme.txt": "read me\n" } })
    const before = memory.snapshot()
    await withServer(SftpServer.make(readOnly(memory)), (sftp) =>
      Effect.gen(function*() {
        const names = (yield* sftp.list("/pub")).map((e) => e.filename).sort()
        expect(names).toEqual(["data.bin", "readme.txt"])
        expect(new TextDecoder().decode(yield* sftp.readFile("/pub/readme.txt"))).toBe("read me\n")
        yield* sftp.get("/pub/data.bin", Path.join(local.path, "data.bin"))
        expect((yield* sftp.stat("/pub/data.bin")).size).toBe(data.length)
        expect(yield* sftp.realpath("/pub/../pub/./readme.txt")).toBe("/pub/readme.txt")

        const refusals = [
          yield* fails(sftp.writeFile("/pub/new.txt", new Uint8Array(3))),
          yield* fails(sftp.openHandle("/pub/readme.txt", "r+")),
          yield* fails(sftp.mkdir("/pub/dir")),
          yield* fails(sftp.remove("/pub/readme.txt")),
          yield* fails(sftp.rmdir("/pub")),
          yield* fails(sftp.rename("/pub/readme.txt", "/pub/other.txt", { overwrite: false })),
          yield* fails(sftp.symlink("readme.txt", "/pub/link")),
          yield* fails(sftp.chmod("/pub/readme.txt", 0o600))
        ]
        for (const refused of refusals) expect(refused).toMatchObject({ code: StatusCode.PermissionDenied, message: "this share is read-only" })
        // an extension the backend lacks is not offered, and a client asking anyway gets OP_UNSUPPORTED
        expect(sftp.supports(Extensions.ExtensionName.PosixRename)).toBe(false)
        expect(sftp.supports(Extensions.ExtensionName.Hardlink)).toBe(false)
        expect(sftp.supports(Extensions.ExtensionName.StatVfs)).toBe(false)
        expect(sftp.supports(Extensions.ExtensionName.Limits)).toBe(true)
        const asked = yield* sftp.request({ _tag: "PosixRename", id: 0, oldPath: "/pub/readme.txt", newPath: "/x" })
        expect(asked).toMatchObject({ _tag: "Status", code: StatusCode.OpUnsupported })
        // the session goes on
        expect((yield* sftp.stat("/pub/readme.txt")).size).toBe(8)
      }))
    expect(sha256(Path.join(local.path, "data.bin"))).toBe(sha256(data))
    expect(memory.snapshot()).toEqual(before)
  })

  it("a backend made for each session is released when the session ends", async () => {
    const events: Array<string> = []
    let sessions = 0
    const perSession: Backend.BackendSource = (peer) =>
      Effect.acquireRelease(
        Effect.sync(() => {
          const n = ++sessions
          events.push(`open ${n} ${peer.user}`)
          return MemoryBackend.make({ files: { "/whoami": `${peer.user} #${n}` } })
        }),
        () => Effect.sync(() => void events.push("released"))
      )
    await runScoped(Effect.gen(function*() {
      const server = yield* SshServer.serve(serverOptions({ sftp: SftpServer.make(perSession) }))
      const ssh = yield* connect(server.address.port)
      const first = new TextDecoder().decode(yield* Effect.scoped(Effect.flatMap(ssh.sftp(), (sftp) => sftp.readFile("/whoami"))))
      const second = new TextDecoder().decode(yield* Effect.scoped(Effect.flatMap(ssh.sftp(), (sftp) => sftp.readFile("/whoami"))))
      expect([first, second]).toEqual(["alice #1", "alice #2"])
      // the server notices a closed channel on its own time
      for (let i = 0; i < 100 && events.filter((e) => e === "released").length < 2; i++) yield* Effect.sleep("20 millis")
    }))
    expect(events).toEqual(["open 1 alice", "released", "open 2 alice", "released"])
  })
})

describe("the server's rules hold for every backend", () => {
  it("the memory backend's bound reaches a v3 client as FAILURE, 'No space on file system', and the session goes on", async () => {
    const memory = MemoryBackend.make({ maxBytes: 256 * 1024 })
    const big = Path.join(local.path, "big.bin")
    Fs.writeFileSync(big, randomBytes(512 * 1024))
    await withServer(SftpServer.make(memory), (sftp) =>
      Effect.gen(function*() {
        const full = yield* fails(sftp.put(big, "/big.bin"))
        expect(full.code).toBe(StatusCode.Failure)
        expect(full.message).toMatch(/^No space on file system/)
        expect(memory.bytesUsed()).toBeLessThanOrEqual(memory.maxBytes)
        yield* sftp.remove("/big.bin")
        yield* sftp.writeFile("/small.txt", new TextEncoder().encode("fits"))
        const vfs = yield* sftp.statvfs("/")
        expect(vfs.blocks * vfs.frsize).toBe(256n * 1024n)
      }))
    expect(new TextDecoder().decode(Effect.runSync(memory.readFile("/small.txt")))).toBe("fits")
    expect(memory.snapshot().map((e) => e.path)).toEqual(["/small.txt"])
  })

  it("handle caps apply to a memory backend as to the disk", async () => {
    const memory = MemoryBackend.make({ files: { "/f": "x" } })
    await withServer(SftpServer.make(memory, { maxHandlesPerSession: 4, maxDirectoryHandlesPerSession: 2 }), (sftp) =>
      Effect.gen(function*() {
        const dirs = [yield* sftp.opendir("/"), yield* sftp.opendir("/")]
        expect((yield* fails(sftp.opendir("/"))).message).toMatch(/too many open directories/)
        const files = [yield* sftp.openHandle("/f", "r"), yield* sftp.openHandle("/f", "r")]
        expect((yield* fails(sftp.openHandle("/f", "r"))).message).toMatch(/too many open handles/)
        yield* sftp.close(files[0]!)
        yield* sftp.close(dirs[0]!)
        yield* sftp.close(yield* sftp.openHandle("/f", "r"))
        expect(sftp.limits.maxOpenHandles).toBe(4)
      }))
  })

  it("a READDIR reply carries at most 100 entries, even from a backend that gives more at once", async () => {
    const memory = MemoryBackend.make()
    let largest = 0
    const generous: Backend.Backend = {
      ...memory,
      opendir: (path) =>
        Effect.map(memory.opendir(path), (dir) => ({
          ...dir,
          // asked for a reply's worth, it gives everything it has
          read: () => Effect.map(dir.read(1_000_000), (entries) => (largest = Math.max(largest, entries.length), entries))
        }))
    }
    for (let i = 0; i < 350; i++) Effect.runSync(memory.writeFile(`/many/f${i}`, ""))
    await withServer(SftpServer.make(generous), (sftp) =>
      Effect.gen(function*() {
        const handle = yield* sftp.opendir("/many")
        const sizes: Array<number> = []
        for (;;) {
          const batch = yield* sftp.readdirHandle(handle)
          if (batch === undefined) break
          sizes.push(batch.length)
        }
        expect(sizes).toEqual([100, 100, 100, 52])
        yield* sftp.close(handle)
      }))
    expect(largest).toBe(352)
  })

  it("a failure the backend did not type, or a defect, is FAILURE without its text, and the session goes on", async () => {
    const memory = MemoryBackend.make({ files: { "/ok": "fine" } })
    const broken: Backend.Backend = {
      ...memory,
      stat: (path) => path === "/die" ? Effect.die(new Error("secret host detail")) : memory.stat(path),
      mkdir: () => Backend.fail(StatusCode.FileAlreadyExists, "already there"),
      rmdir: () => Backend.fail(StatusCode.NoSuchPath)
    }
    await withServer(SftpServer.make(broken), (sftp) =>
      Effect.gen(function*() {
        const died = yield* fails(sftp.stat("/die"))
        expect(died.code).toBe(StatusCode.Failure)
        expect(died.message).not.toMatch(/secret/)
        // codes of the later drafts go out as their v3 equivalents, their message kept
        expect(yield* fails(sftp.mkdir("/d"))).toMatchObject({ code: StatusCode.Failure, message: "already there" })
        expect(yield* fails(sftp.rmdir("/d"))).toMatchObject({ code: StatusCode.NoSuchFile, message: "No such path" })
        expect((yield* sftp.stat("/ok")).size).toBe(4)
      }))
  })

  it("readOnly and the umask are the server's: applied before any backend sees the request", async () => {
    const memory = MemoryBackend.make({ files: { "/f": "x" } })
    await withServer(SftpServer.make(memory, { readOnly: true }), (sftp) =>
      Effect.gen(function*() {
        expect((yield* fails(sftp.mkdir("/d"))).code).toBe(StatusCode.PermissionDenied)
        expect((yield* fails(sftp.writeFile("/f", new Uint8Array(1)))).code).toBe(StatusCode.PermissionDenied)
        expect((yield* sftp.statvfs("/")).flag & Extensions.VfsFlag.ReadOnly).toBe(Extensions.VfsFlag.ReadOnly)
      }))
    await withServer(SftpServer.make(memory, { umask: 0o077 }), (sftp) =>
      Effect.gen(function*() {
        yield* sftp.mkdir("/d", { permissions: 0o777 })
        yield* sftp.writeFile("/d/g", new Uint8Array(1))
      }))
    const modes = Object.fromEntries(memory.snapshot().map((e) => [e.path, e.permissions]))
    expect(modes).toEqual({ "/f": 0o644, "/d": 0o700, "/d/g": 0o600 })
  })
})
