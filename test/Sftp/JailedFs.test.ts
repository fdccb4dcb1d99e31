/**
 * The descriptor-holding jail under the SFTP server: operations act inside
 * the root whatever the links, every descriptor a walk opens is closed again
 * (after failures too, and when a session ends with handles open), and a
 * platform that cannot host it is refused with a typed error.
 */
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { afterEach, beforeEach, describe, expect, it } from "vitest"
import { JailedFs, JailUnsupported } from "../../src/internal/jailedFs.ts"
import * as Jail from "../../src/Sftp/Jail.ts"
import * as SftpServer from "../../src/Sftp/SftpServer.ts"
import { StatusCode } from "../../src/Sftp/Status.ts"
import { SftpStatus } from "../../src/SshError.ts"
import { runFailure, runScoped } from "../helpers.ts"
import { tempDir, withSftp } from "./fixtures.ts"

let base = { path: "", remove: () => {} }
let root = ""
let outside = ""

beforeEach(() => {
  base = tempDir("effect-ssh-jailedfs-")
  root = Path.join(base.path, "root")
  outside = Path.join(base.path, "outside")
  Fs.mkdirSync(Path.join(root, "dir", "sub"), { recursive: true })
  Fs.mkdirSync(outside)
  Fs.writeFileSync(Path.join(root, "dir", "file"), "inside")
  Fs.writeFileSync(Path.join(outside, "file"), "outside")
  Fs.symlinkSync(outside, Path.join(root, "abs"))
  Fs.symlinkSync("../outside", Path.join(root, "rel"))
  Fs.symlinkSync("dir/file", Path.join(root, "file-link"))
  Fs.symlinkSync("loop", Path.join(root, "loop"))
})
afterEach(() => base.remove())

/** Descriptors of this process that name something under `dir` (the jail's, or the outside's). */
const descriptorsUnder = (dir: string): Array<string> =>
  Fs.readdirSync("/proc/self/fd").flatMap((fd) => {
    try {
      const target = Fs.readlinkSync(`/proc/self/fd/${fd}`)
      return target === dir || target.startsWith(`${dir}/`) ? [target] : []
    } catch {
      return []
    }
  })

const code = async (p: Promise<unknown>): Promise<number | string> => {
  try {
    await p
    return "ok"
  } catch (e) {
    if (e instanceof SftpStatus) return e.code
    return (e as { code?: string }).code ?? String(e)
  }
}

describe("JailedFs", () => {
  it("follows links inside the root only, and acts on a link itself where asked", async () => {
    const jail = await JailedFs.open(root)
    try {
      expect(await code(jail.stat("/abs/file", true))).toBe(StatusCode.NoSuchFile)
      expect(await code(jail.stat("/rel/file", true))).toBe(StatusCode.NoSuchFile)
      expect((await jail.stat("/file-link", true)).size).toBe(6)
      expect((await jail.stat("/file-link", false)).isSymbolicLink()).toBe(true)
      // an absolute target is the jail's: "/<outside's host path>" does not exist here, and is taken as spelt
      expect(await jail.realpath("/abs/../rel/x/..")).toBe(`${base.path}/rel`)
      expect(await jail.realpath("/rel/x")).toBe("/outside/x")
      expect(await jail.realpath("/file-link")).toBe("/dir/file")
      expect(await jail.realpath("/missing/a/../b")).toBe("/missing/b")
      expect(await jail.readlink("/abs")).toBe(outside)
      // a link's own times change, not its target's; its mode cannot
      const target = Fs.statSync(Path.join(root, "dir", "file")).mtimeMs
      await jail.setAttributes("/file-link", false, { atime: 1000, mtime: 1000 })
      expect(Fs.lstatSync(Path.join(root, "file-link")).mtimeMs).toBe(1_000_000)
      expect(Fs.statSync(Path.join(root, "dir", "file")).mtimeMs).toBe(target)
      expect(await code(jail.setAttributes("/file-link", false, { permissions: 0o600 }))).toBe(StatusCode.OpUnsupported)
      // following, the target inside the jail changes
      await jail.setAttributes("/file-link", true, { permissions: 0o600 })
      expect(Fs.statSync(Path.join(root, "dir", "file")).mode & 0o777).toBe(0o600)
      // an escaping link as the parent of a new name creates nothing outside
      expect(await code(jail.mkdir("/abs/new", 0o755))).toBe(StatusCode.NoSuchFile)
      expect(await code(jail.openFile("/rel/new", Fs.constants.O_WRONLY | Fs.constants.O_CREAT, 0o644))).toBe(StatusCode.NoSuchFile)
      expect(Fs.readdirSync(outside)).toEqual(["file"])
      // the root is its own parent and cannot be removed or renamed
      expect(await code(jail.rmdir("/.."))).toBe("EBUSY")
      expect(await code(jail.rename("/", "/x", true))).toBe("EBUSY")
    } finally {
      jail.close()
    }
  })

  it("walks '..' past the directories it holds by re-opening from the root", async () => {
    const deep = Array.from({ length: 3 * Jail.WALK_WINDOW }, (_, i) => `d${i}`)
    Fs.mkdirSync(Path.join(root, ...deep), { recursive: true })
    Fs.writeFileSync(Path.join(root, deep[0]!, "mark"), "mark")
    const jail = await JailedFs.open(root)
    try {
      const climb = `/${deep.join("/")}/${"../".repeat(deep.length - 1)}mark`
      expect((await jail.stat(climb, true)).size).toBe(4)
      expect(await jail.realpath(climb)).toBe(`/${deep[0]}/mark`)
      expect(descriptorsUnder(root)).toEqual([root])
    } finally {
      jail.close()
    }
  })

  it("closes every descriptor of a walk, whether the operation succeeds or fails", async () => {
    const before = descriptorsUnder(base.path)
    const jail = await JailedFs.open(root)
    const attempts = [
      () => jail.stat("/dir/sub/../file", true),
      () => jail.stat("/dir/sub/missing/x", true),
      () => jail.stat("/dir/file/x", true),
      () => jail.stat("/loop/x", true),
      () => jail.openFile("/loop", Fs.constants.O_RDONLY, 0),
      () => jail.openFile("/dir/sub", Fs.constants.O_WRONLY, 0),
      () => jail.openDirectory("/dir/file"),
      () => jail.rename("/dir/file", "/dir/sub/missing/x", true),
      () => jail.link("/nope", "/dir/x"),
      () => jail.stat("a/../".repeat(Jail.MAX_WALK_OPENS + 1), true),
      () => jail.mkdir("/dir/sub", 0o755),
      () => jail.symlink("/etc", "/dir/sub/../sub/l"),
      () => jail.unlink("/dir/sub/l")
    ]
    const outcomes = []
    for (const attempt of attempts) outcomes.push(await code(attempt()))
    expect(outcomes).toEqual([
      "ok",
      StatusCode.NoSuchFile,
      StatusCode.NoSuchFile,
      StatusCode.NoSuchFile,
      StatusCode.NoSuchFile,
      "EISDIR",
      "ENOTDIR",
      StatusCode.NoSuchFile,
      "ENOENT",
      StatusCode.NoSuchFile,
      "EEXIST",
      "ok",
      "ok"
    ])
    // only the root is held between operations, and nothing once closed
    expect(descriptorsUnder(base.path)).toEqual([...before, root])
    jail.close()
    expect(descriptorsUnder(base.path)).toEqual(before)
  })

  it("keeps the root open until the walk in flight ends, then lets it go", async () => {
    const before = descriptorsUnder(base.path)
    const jail = await JailedFs.open(root)
    const inFlight = jail.stat("/dir/sub/../sub/../file", true)
    jail.close()
    expect((await inFlight).size).toBe(6)
    expect(descriptorsUnder(base.path)).toEqual(before)
    expect(await code(jail.stat("/", true))).toBe("EBADF")
  })

  it("refuses a platform without O_PATH and /proc/self/fd with a reason, and the server with NotImplemented", async () => {
    const platform = Object.getOwnPropertyDescriptor(process, "platform")!
    Object.defineProperty(process, "platform", { value: "darwin" })
    try {
      const e = await JailedFs.open(root).catch((e: unknown) => e)
      expect(e).toBeInstanceOf(JailUnsupported)
      expect((e as Error).message).toContain("needs Linux (O_PATH and /proc/self/fd); this is darwin")
      const failure = await runFailure(SftpServer.serve(Stream.empty, () => Effect.void, { root }, { user: "alice" }))
      expect(failure.reason._tag).toBe("NotImplemented")
      expect(failure.reason.message).toContain("needs Linux")
    } finally {
      Object.defineProperty(process, "platform", platform)
    }
  })
})

describe("an SFTP session's descriptors", () => {
  it("are all closed when the session ends with file and directory handles open", async () => {
    const before = descriptorsUnder(base.path)
    const during = await runScoped(withSftp(root, (sftp) =>
      Effect.gen(function*() {
        yield* sftp.openHandle("/dir/file", "r")
        yield* sftp.openHandle("/dir/new", "w")
        const dir = yield* sftp.opendir("/dir")
        yield* sftp.readdirHandle(dir)
        yield* sftp.opendir("/")
        // a refused open and a failed walk leave nothing behind
        yield* Effect.flip(sftp.openHandle("/abs/file", "r"))
        yield* Effect.flip(sftp.opendir("/loop"))
        return descriptorsUnder(base.path).length
      })))
    // the root, two files, and two descriptors per directory handle
    expect(during - before.length).toBe(1 + 2 + 2 * 2)
    for (let i = 0; i < 100 && descriptorsUnder(base.path).length > before.length; i++) await new Promise((r) => setTimeout(r, 10))
    expect(descriptorsUnder(base.path)).toEqual(before)
  })

  it("a handle over the session's cap gets FAILURE and the session goes on", async () => {
    const outcome = await runScoped(withSftp(root, (sftp) =>
      Effect.gen(function*() {
        const a = yield* sftp.openHandle("/dir/file", "r")
        yield* sftp.opendir("/dir")
        const overFile = yield* Effect.flip(sftp.openHandle("/dir/file", "r"))
        yield* sftp.close(a)
        const overDirectory = yield* Effect.flip(sftp.opendir("/"))
        const file = yield* sftp.openHandle("/dir/file", "r")
        return { limit: sftp.limits.maxOpenHandles, overFile, overDirectory, data: yield* sftp.read(file, 0, 10) }
      }), { maxHandlesPerSession: 2, maxDirectoryHandlesPerSession: 1 }))
    expect(outcome.limit).toBe(2)
    expect(outcome.overFile.reason).toMatchObject({ code: StatusCode.Failure, message: "too many open handles: a session may hold 2; close some first" })
    expect(outcome.overDirectory.reason).toMatchObject({
      code: StatusCode.Failure,
      message: "too many open directories: a session may hold 1; close some first"
    })
    expect(new TextDecoder().decode(outcome.data)).toBe("inside")
  })
})
