/**
 * The pure SFTP codecs against OpenSSH's own sftp-server, spoken to over its
 * stdin/stdout: every packet we encode must be understood by it and every
 * reply it sends must decode, match a pending request and mean what we think.
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { afterAll, beforeAll, expect, it } from "vitest"
import * as Attributes from "../../src/Sftp/Attributes.ts"
import * as Extensions from "../../src/Sftp/Extensions.ts"
import { Framer } from "../../src/Sftp/Framer.ts"
import { decode, encode, isResponse, openFlags, type SftpRequest, type SftpResponse, type Version } from "../../src/Sftp/Messages.ts"
import { RequestTable } from "../../src/Sftp/Requests.ts"
import * as Status from "../../src/Sftp/Status.ts"
import { describeInterop, opensshPaths } from "../interop/sshd.ts"

type Waiter = { readonly resolve: (reply: SftpResponse) => void; readonly reject: (e: unknown) => void }

/** A minimal client: the codecs, the framer and the request table wired to a child process. */
const connect = (server: string, cwd: string) => {
  const child = ChildProcess.spawn(server, ["-e", "-l", "ERROR", "-d", cwd], { stdio: ["pipe", "pipe", "pipe"] })
  const framer = new Framer()
  const table = new RequestTable<Waiter>()
  let onVersion: ((v: Version) => void) | undefined
  let failure: unknown
  const failAll = (e: unknown) => {
    failure = e
    for (const p of table.drain()) p.meta.reject(e)
  }
  child.stdout.on("data", (chunk: Buffer) => {
    try {
      for (const body of framer.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length))) {
        const packet = decode(body)
        if (packet._tag === "Version") onVersion?.(packet)
        else if (isResponse(packet)) table.settle(packet).meta.resolve(packet)
        else throw new Error(`server sent a ${packet._tag}`)
      }
    } catch (e) {
      failAll(e)
    }
  })
  child.on("exit", () => failAll(new Error("sftp-server exited")))
  return {
    init: () =>
      new Promise<Version>((resolve) => {
        onVersion = resolve
        child.stdin.write(encode({ _tag: "Init", version: 3, extensions: [] }))
      }),
    request: <R extends SftpRequest>(build: (id: number) => R): Promise<SftpResponse> =>
      new Promise((resolve, reject) => {
        if (failure !== undefined) return reject(failure)
        child.stdin.write(encode(table.submit(build, { resolve, reject })))
      }),
    pending: () => table.size,
    close: () => child.kill()
  }
}

type Client = ReturnType<typeof connect>

const expectTag = <T extends SftpResponse["_tag"]>(reply: SftpResponse, tag: T): Extract<SftpResponse, { _tag: T }> => {
  if (reply._tag === "Status" && tag !== "Status") throw Status.toReason(reply)
  expect(reply._tag).toBe(tag)
  return reply as Extract<SftpResponse, { _tag: T }>
}

const ok = async (reply: Promise<SftpResponse>) => Status.check(expectTag(await reply, "Status"))

const openHandle = async (client: Client, path: string, mode: Parameters<typeof openFlags>[0]) =>
  expectTag(await client.request((id) => ({ _tag: "Open", id, path, pflags: openFlags(mode), attrs: {} })), "Handle").handle

describeInterop("SFTP codecs against OpenSSH sftp-server", () => {
  let dir = ""
  let client: Client
  let version: Version

  beforeAll(async () => {
    dir = Fs.realpathSync(Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-ssh-sftp-")))
    client = connect(opensshPaths().sftpServer!, dir)
    version = await client.init()
  })

  afterAll(() => {
    client?.close()
    if (dir !== "") Fs.rmSync(dir, { recursive: true, force: true })
  })

  it("negotiates version 3 and advertises the OpenSSH extensions we know", () => {
    expect(version.version).toBe(3)
    for (const e of Extensions.OPENSSH_EXTENSIONS) {
      expect(Extensions.supports(version.extensions, e.name, e.data), e.name).toBe(true)
    }
  })

  it("writes pipelined chunks, reads them back out of order, and stats the size", async () => {
    const data = Uint8Array.from({ length: 200_000 }, (_, i) => (i * 7) & 0xff)
    const path = Path.join(dir, "file")
    const handle = await openHandle(client, path, "w")
    const chunk = 32768
    const writes = []
    for (let offset = 0; offset < data.length; offset += chunk) {
      writes.push(ok(client.request((id) => ({ _tag: "Write", id, handle, offset, data: data.subarray(offset, offset + chunk) }))))
    }
    expect(client.pending()).toBeGreaterThan(1)
    await Promise.all(writes)
    await ok(client.request((id) => ({ _tag: "Fsync", id, handle })))
    await ok(client.request((id) => ({ _tag: "Close", id, handle })))
    expect(Fs.readFileSync(path)).toEqual(Buffer.from(data))

    const attrs = expectTag(await client.request((id) => ({ _tag: "Stat", id, path })), "Attrs").attrs
    expect(attrs.size).toBe(data.length)
    expect(Attributes.isFile(attrs)).toBe(true)

    const reader = await openHandle(client, path, "r")
    const offsets = [131072, 0, 65536, 196608, 32768]
    const replies = await Promise.all(
      offsets.map((offset) => client.request((id) => ({ _tag: "Read", id, handle: reader, offset, length: chunk })))
    )
    replies.forEach((reply, i) => {
      const offset = offsets[i]!
      expect(expectTag(reply, "Data").data).toEqual(data.subarray(offset, offset + chunk))
    })
    const eof = await client.request((id) => ({ _tag: "Read", id, handle: reader, offset: data.length, length: chunk }))
    expect(Status.isEof(expectTag(eof, "Status"))).toBe(true)
    const fstat = expectTag(await client.request((id) => ({ _tag: "Fstat", id, handle: reader })), "Attrs")
    expect(fstat.attrs.size).toBe(data.length)
    await ok(client.request((id) => ({ _tag: "Close", id, handle: reader })))
  })

  it("creates symlinks with linkPath/targetPath meaning what they say", async () => {
    const linkPath = Path.join(dir, "link")
    await ok(client.request((id) => ({ _tag: "Symlink", id, linkPath, targetPath: "file" })))
    expect(Fs.readlinkSync(linkPath)).toBe("file")
    const target = expectTag(await client.request((id) => ({ _tag: "Readlink", id, path: linkPath })), "Name")
    expect(target.entries.map((e) => e.filename)).toEqual(["file"])
    const lstat = expectTag(await client.request((id) => ({ _tag: "Lstat", id, path: linkPath })), "Attrs")
    expect(Attributes.isSymbolicLink(lstat.attrs)).toBe(true)
    await ok(client.request((id) => ({ _tag: "Lsetstat", id, path: linkPath, attrs: { atime: 1000, mtime: 2000 } })))
    expect(Fs.lstatSync(linkPath).mtimeMs).toBe(2_000_000)
  })

  it("sets attributes and lists a directory until EOF", async () => {
    await ok(client.request((id) => ({ _tag: "Mkdir", id, path: Path.join(dir, "sub"), attrs: { permissions: 0o750 } })))
    await ok(client.request((id) => ({ _tag: "Setstat", id, path: Path.join(dir, "file"), attrs: { permissions: 0o600 } })))
    expect(Fs.statSync(Path.join(dir, "file")).mode & 0o7777).toBe(0o600)

    const handle = expectTag(await client.request((id) => ({ _tag: "Opendir", id, path: dir })), "Handle").handle
    const entries = []
    for (;;) {
      const reply = await client.request((id) => ({ _tag: "Readdir", id, handle }))
      if (reply._tag === "Status") {
        expect(Status.isEof(reply)).toBe(true)
        break
      }
      entries.push(...expectTag(reply, "Name").entries)
    }
    await ok(client.request((id) => ({ _tag: "Close", id, handle })))
    const byName = new Map(entries.map((e) => [e.filename, e]))
    expect([...byName.keys()].sort()).toEqual([".", "..", "file", "link", "sub"])
    expect(Attributes.isDirectory(byName.get("sub")!.attrs)).toBe(true)
    expect(byName.get("file")!.longname.startsWith(Attributes.modeString(byName.get("file")!.attrs.permissions!))).toBe(true)
  })

  it("answers REALPATH, expand-path and home-directory with one NAME", async () => {
    const real = expectTag(await client.request((id) => ({ _tag: "Realpath", id, path: "sub/.." })), "Name")
    expect(real.entries.map((e) => e.filename)).toEqual([dir])
    const expanded = expectTag(await client.request((id) => ({ _tag: "ExpandPath", id, path: "sub" })), "Name")
    expect(expanded.entries.map((e) => e.filename)).toEqual([Path.join(dir, "sub")])
    const user = Os.userInfo()
    const home = expectTag(await client.request((id) => ({ _tag: "HomeDirectory", id, username: user.username })), "Name")
    expect(home.entries.map((e) => e.filename)).toEqual([user.homedir])
  })

  it("renames, links, copies and removes", async () => {
    const file = Path.join(dir, "file")
    await ok(client.request((id) => ({ _tag: "Hardlink", id, oldPath: file, newPath: Path.join(dir, "hard") })))
    expect(Fs.statSync(Path.join(dir, "hard")).ino).toBe(Fs.statSync(file).ino)
    await ok(client.request((id) => ({ _tag: "Rename", id, oldPath: Path.join(dir, "hard"), newPath: Path.join(dir, "renamed") })))
    const clash = await client.request((id) => ({ _tag: "Rename", id, oldPath: Path.join(dir, "renamed"), newPath: file }))
    expect(expectTag(clash, "Status").code).not.toBe(Status.StatusCode.Ok)
    await ok(client.request((id) => ({ _tag: "PosixRename", id, oldPath: Path.join(dir, "renamed"), newPath: Path.join(dir, "posix") })))

    const from = await openHandle(client, file, "r")
    const to = await openHandle(client, Path.join(dir, "copy"), "w")
    await ok(client.request((id) => ({ _tag: "CopyData", id, readHandle: from, readOffset: 100, readLength: 1000, writeHandle: to, writeOffset: 0 })))
    await ok(client.request((id) => ({ _tag: "Close", id, handle: from })))
    await ok(client.request((id) => ({ _tag: "Close", id, handle: to })))
    expect(Fs.readFileSync(Path.join(dir, "copy"))).toEqual(Fs.readFileSync(file).subarray(100, 1100))

    await ok(client.request((id) => ({ _tag: "Remove", id, path: Path.join(dir, "posix") })))
    await ok(client.request((id) => ({ _tag: "Rmdir", id, path: Path.join(dir, "sub") })))
    expect(Fs.existsSync(Path.join(dir, "sub"))).toBe(false)
  })

  it("decodes statvfs, limits and users-groups-by-id replies", async () => {
    const vfs = Extensions.decodeVfsStats(
      expectTag(await client.request((id) => ({ _tag: "StatVfs", id, path: dir })), "ExtendedReply").data
    )
    const fsStat = Fs.statfsSync(dir, { bigint: true })
    expect(vfs.bsize).toBe(fsStat.bsize)
    expect(vfs.blocks).toBe(fsStat.blocks)
    expect(vfs.namemax).toBeGreaterThan(0n)

    const handle = await openHandle(client, Path.join(dir, "file"), "r")
    const fvfs = Extensions.decodeVfsStats(
      expectTag(await client.request((id) => ({ _tag: "FstatVfs", id, handle })), "ExtendedReply").data
    )
    expect(fvfs.blocks).toBe(vfs.blocks)
    await ok(client.request((id) => ({ _tag: "Close", id, handle })))

    const limits = Extensions.decodeLimits(
      expectTag(await client.request((id) => ({ _tag: "Limits", id })), "ExtendedReply").data
    )
    expect(limits.maxPacketLength).toBeGreaterThanOrEqual(34000)
    expect(limits.maxReadLength).toBeGreaterThanOrEqual(32768)
    expect(limits.maxWriteLength).toBeGreaterThanOrEqual(32768)

    const uid = process.getuid?.() ?? 0
    const names = Extensions.decodeUserGroupNames(
      expectTag(await client.request((id) => ({ _tag: "UsersGroupsById", id, uids: [uid, 0x7fff_fff0], gids: [] })), "ExtendedReply").data
    )
    expect(names.usernames).toEqual([Os.userInfo().username, ""])
    expect(names.groupnames).toEqual([])
  })

  it("maps failures to STATUS codes and refuses unknown extensions", async () => {
    const missing = Path.join(dir, "missing")
    const reply = expectTag(await client.request((id) => ({ _tag: "Stat", id, path: missing })), "Status")
    expect(reply.code).toBe(Status.StatusCode.NoSuchFile)
    expect(Status.toReason(reply, missing)).toMatchObject({ code: 2, path: missing })
    const unknown = await client.request((id) => ({ _tag: "Extended", id, request: "nope@example.com", data: new Uint8Array(3) }))
    expect(expectTag(unknown, "Status").code).toBe(Status.StatusCode.OpUnsupported)
    const exclusive = await client.request((id) => ({ _tag: "Open", id, path: Path.join(dir, "file"), pflags: openFlags("wx"), attrs: {} }))
    expect(expectTag(exclusive, "Status").code).toBe(Status.StatusCode.Failure)
  })
}, { requires: ["sftpServer"] })
