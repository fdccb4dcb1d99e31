/**
 * Bad SFTP input in both directions: a client sending garbage to our server,
 * and a server sending garbage to our client. Either way the result is a
 * typed error, that SFTP channel is closed, and the SSH connection stays
 * usable for new channels.
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as fc from "fast-check"
import * as Fs from "node:fs"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { ServerSession } from "../../src/Channel/ServerSession.ts"
import type * as Session from "../../src/Channel/Session.ts"
import { Framer } from "../../src/Sftp/Framer.ts"
import * as Messages from "../../src/Sftp/Messages.ts"
import * as SftpServer from "../../src/Sftp/SftpServer.ts"
import { StatusCode } from "../../src/Sftp/Status.ts"
import * as SshServer from "../../src/Server.ts"
import type { SshError } from "../../src/SshError.ts"
import { FieldList } from "../../src/internal/fieldList.ts"
import { runScoped } from "../helpers.ts"
import { connect, serverOptions, tempDir } from "./fixtures.ts"

let root = { path: "", remove: () => {} }
beforeAll(() => {
  root = tempDir("effect-ssh-sftp-bad-")
  Fs.writeFileSync(`${root.path}/file`, "content")
})
afterAll(() => root.remove())

const echo = (session: ServerSession, command: string) => Effect.as(session.write(`${command}\n`), 0)

const init = Messages.encode({ _tag: "Init", version: 3, extensions: [] })

/** A raw packet: uint32 length, then the body bytes as given. */
const packet = (body: Uint8Array, length = body.length) => {
  const out = new Uint8Array(4 + body.length)
  new DataView(out.buffer).setUint32(0, length)
  out.set(body, 4)
  return out
}

const readAll = (stream: Stream.Stream<Uint8Array, SshError>) =>
  Effect.map(Stream.runCollect(stream), (chunks) => new Uint8Array(Buffer.concat(chunks)))

/** Sends bytes on a raw "sftp" subsystem and collects what comes back until the server closes the channel. */
const sendRaw = (proc: Session.SshProcess, bytes: Uint8Array) =>
  Effect.gen(function*() {
    const [stdout, stderr] = yield* Effect.all([
      readAll(proc.stdout),
      readAll(proc.stderr),
      proc.write(bytes)
    ], { concurrency: "unbounded" })
    const exit = yield* proc.exit
    const replies = new Framer().push(stdout).map(Messages.decode)
    return { replies, stderr: new TextDecoder().decode(stderr), exit }
  })

describe("garbage from a client to our server", () => {
  const cases: ReadonlyArray<readonly [string, Uint8Array]> = [
    ["a zero-length packet", packet(new Uint8Array(0))],
    ["an oversize length", packet(Uint8Array.of(17), 0xffff_ffff)],
    ["a truncated STAT", packet(Uint8Array.of(17, 0, 0, 0, 1, 0, 0, 0, 9, 0x61))],
    ["a STAT with trailing bytes", packet(new FieldList().raw(Uint8Array.of(17)).uint32(1, "id").text("/").raw(Uint8Array.of(0)).bytes())],
    ["bad attribute flags in SETSTAT", packet(new FieldList().raw(Uint8Array.of(9)).uint32(1, "id").text("/file").uint32(0x40, "flags").bytes())],
    ["a second INIT", init],
    ["a reply packet from a client", Messages.encode({ _tag: "Status", id: 1, code: 0, message: "", language: "" })]
  ]

  it.each(cases)("%s closes the channel with a ProtocolError; the connection stays usable", async (name, garbage) => {
    const outcome = await runScoped(Effect.gen(function*() {
      const server = yield* SshServer.serve(serverOptions({ sftp: SftpServer.fileSystem({ root: root.path }), session: { exec: echo } }))
      const ssh = yield* connect(server.address.port)
      const proc = yield* ssh.subsystem("sftp")
      const result = yield* sendRaw(proc, new Uint8Array(Buffer.concat([init, garbage])))
      const sftp = yield* ssh.sftp()
      const after = yield* sftp.stat("/file")
      const ran = yield* ssh.run("still alive")
      return { ...result, after, ran }
    }))
    // VERSION, unless the garbage arrived in the same chunk as INIT and broke the framing first
    expect(outcome.replies.map((r) => r._tag)).toEqual(name.includes("length") ? expect.any(Array) : ["Version"])
    expect(outcome.replies.every((r) => r._tag === "Version")).toBe(true)
    expect(outcome.stderr).toContain("ProtocolError")
    expect(outcome.exit).toEqual({ _tag: "Exited", code: 1 })
    expect(outcome.after.size).toBe(7)
    expect(outcome.ran.stdout).toBe("still alive\n")
  })

  it("refuses requests before INIT", async () => {
    const outcome = await runScoped(Effect.gen(function*() {
      const server = yield* SshServer.serve(serverOptions({ sftp: SftpServer.fileSystem({ root: root.path }) }))
      const ssh = yield* connect(server.address.port)
      return yield* sendRaw(yield* ssh.subsystem("sftp"), Messages.encode({ _tag: "Stat", id: 1, path: "/" }))
    }))
    expect(outcome.replies).toEqual([])
    expect(outcome.stderr).toContain("before INIT")
  })

  it("answers a well-formed request of an unknown type with OP_UNSUPPORTED and carries on", async () => {
    const unknownType = packet(Uint8Array.of(77, 0, 0, 0, 42, 1, 2, 3))
    const stat = Messages.encode({ _tag: "Stat", id: 43, path: "/file" })
    const outcome = await runScoped(Effect.gen(function*() {
      const server = yield* SshServer.serve(serverOptions({ sftp: SftpServer.fileSystem({ root: root.path }) }))
      const ssh = yield* connect(server.address.port)
      const proc = yield* ssh.subsystem("sftp")
      yield* Effect.forkScoped(Effect.andThen(Effect.sleep(200), proc.closeStdin))
      return yield* sendRaw(proc, new Uint8Array(Buffer.concat([init, unknownType, stat])))
    }))
    expect(outcome.replies.map((r) => r._tag)).toEqual(["Version", "Status", "Attrs"])
    expect(outcome.replies[1]).toMatchObject({ id: 42, code: StatusCode.OpUnsupported })
    expect(outcome.exit).toEqual({ _tag: "Exited", code: 0 })
  })

  it("never crashes on random bytes after INIT (property)", async () => {
    await runScoped(Effect.gen(function*() {
      const server = yield* SshServer.serve(serverOptions({ sftp: SftpServer.fileSystem({ root: root.path }), session: { exec: echo } }))
      const ssh = yield* connect(server.address.port)
      yield* Effect.promise(() =>
        fc.assert(
          fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 64 }), fc.integer({ min: 1, max: 80 }), (body, length) =>
            Effect.runPromise(Effect.scoped(Effect.gen(function*() {
              const proc = yield* ssh.subsystem("sftp")
              yield* Effect.forkScoped(Effect.andThen(Effect.sleep(100), proc.closeStdin))
              const result = yield* sendRaw(proc, new Uint8Array(Buffer.concat([init, packet(body, length)])))
              expect(result.replies.length).toBeLessThanOrEqual(2)
              expect(result.replies.every((r) => r._tag === "Version" || r._tag === "Status")).toBe(true)
              expect(result.exit._tag).toBe("Exited")
            })))),
          { numRuns: 30 }
        )
      )
      expect((yield* ssh.run("ok")).stdout).toBe("ok\n")
    }))
  })
})

describe("numbers beyond 2^53 from a client", () => {
  const { PacketType, OpenFlags } = Messages
  const handle = Uint8Array.of(0, 0, 0, 1) // the server's first handle
  const huge = [1n << 62n, (1n << 64n) - 1n, 1n << 53n]
  const sizeAttrs = (size: bigint) => new FieldList().uint32(1, "flags").bigUint64(size).bytes()

  it("READ, WRITE, SETSTAT, FSETSTAT and copy-data get FAILURE with a clear message; the session goes on", async () => {
    const requests = [
      Messages.encode({ _tag: "Open", id: 1, path: "/big-offsets", pflags: OpenFlags.Read | OpenFlags.Write | OpenFlags.Create, attrs: {} }),
      ...huge.map((offset, i) => new FieldList().uint32(10 + i, "id").string(handle).bigUint64(offset).uint32(10, "len").packet(PacketType.Read)),
      ...huge.map((offset, i) => new FieldList().uint32(20 + i, "id").string(handle).bigUint64(offset).text("x").packet(PacketType.Write)),
      new FieldList().uint32(30, "id").text("/big-offsets").raw(sizeAttrs(1n << 62n)).packet(PacketType.Setstat),
      new FieldList().uint32(31, "id").string(handle).raw(sizeAttrs((1n << 64n) - 1n)).packet(PacketType.Fsetstat),
      new FieldList().uint32(32, "id").text("copy-data").string(handle).bigUint64(1n << 62n).bigUint64(0n).string(handle).bigUint64(0n)
        .packet(PacketType.Extended),
      // representable, but offset + length is not
      Messages.encode({ _tag: "Read", id: 40, handle, offset: Number.MAX_SAFE_INTEGER - 4, length: 10 }),
      Messages.encode({ _tag: "Write", id: 41, handle, offset: Number.MAX_SAFE_INTEGER - 1, data: new Uint8Array(8) }),
      Messages.encode({ _tag: "Write", id: 50, handle, offset: 0, data: new TextEncoder().encode("ok") }),
      Messages.encode({ _tag: "Stat", id: 51, path: "/big-offsets" })
    ]
    const outcome = await runScoped(Effect.gen(function*() {
      const server = yield* SshServer.serve(serverOptions({ sftp: SftpServer.fileSystem({ root: root.path }) }))
      const ssh = yield* connect(server.address.port)
      const proc = yield* ssh.subsystem("sftp")
      yield* Effect.forkScoped(Effect.andThen(Effect.sleep(500), proc.closeStdin))
      return yield* sendRaw(proc, new Uint8Array(Buffer.concat([init, ...requests])))
    }))
    const byId = new Map(outcome.replies.filter((r) => "id" in r).map((r) => [(r as { id: number }).id, r]))
    expect(byId.get(1)).toMatchObject({ _tag: "Handle" })
    for (const id of [10, 11, 12, 20, 21, 22, 30, 31, 32]) {
      expect(byId.get(id), `request ${id}`).toMatchObject({ _tag: "Status", code: StatusCode.Failure })
      expect((byId.get(id) as Messages.Status).message).toMatch(/exceeds 2\^53-1, more than this server can address/)
    }
    for (const id of [40, 41]) expect(byId.get(id), `request ${id}`).toMatchObject({ _tag: "Status", code: StatusCode.Failure })
    expect((byId.get(40) as Messages.Status).message).toContain("offset + length exceeds 2^53-1")
    expect(byId.get(50)).toMatchObject({ _tag: "Status", code: StatusCode.Ok })
    expect(byId.get(51)).toMatchObject({ _tag: "Attrs", attrs: { size: 2 } })
    expect(outcome.exit).toEqual({ _tag: "Exited", code: 0 })
    expect(Fs.readFileSync(`${root.path}/big-offsets`, "utf8")).toBe("ok")
  })
})

/** A fake SFTP server: answers INIT with VERSION, then answers the first request with `reply(id)`. */
const evilSftp = (reply: (id: number) => Uint8Array) => (session: ServerSession) =>
  Effect.gen(function*() {
    const framer = new Framer()
    let answered = false
    yield* Stream.runForEach(session.stdin, (chunk) =>
      Effect.forEach(framer.push(chunk), (body) => {
        const p = Messages.decode(body)
        if (p._tag === "Init") return session.write(Messages.encode({ _tag: "Version", version: 3, extensions: [] }))
        if (answered || !Messages.isRequest(p)) return Effect.void
        answered = true
        return session.write(reply(p.id))
      }, { discard: true }))
    return 0
  })

describe("garbage from a server to our client", () => {
  const encode = Messages.encode
  const cases: ReadonlyArray<readonly [string, (id: number) => Uint8Array, string]> = [
    ["a reply to an unknown request id", (id) => encode({ _tag: "Status", id: id + 1000, code: 0, message: "", language: "" }), "unknown request id"],
    ["a reply of the wrong type", (id) => encode({ _tag: "Data", id, data: new Uint8Array(3) }), "unexpected SFTP Data reply"],
    ["a zero-length packet", () => packet(new Uint8Array(0)), "length 0"],
    ["an oversize length", () => packet(Uint8Array.of(101), 0x7fff_ffff), "exceeds the maximum"],
    ["an unknown packet type", (id) => packet(Uint8Array.of(99, 0, 0, 0, id)), "unknown SFTP packet type 99"],
    ["truncated attributes", (id) => packet(Uint8Array.of(105, 0, 0, 0, id, 0, 0, 0, 1, 0, 0)), "truncated"],
    ["a request packet", (id) => encode({ _tag: "Stat", id, path: "/" }), "sent a Stat packet"]
  ]

  it.each(cases)("%s fails the session with a ProtocolError, closes the channel, keeps the connection", async (_name, reply, message) => {
    const outcome = await runScoped(Effect.gen(function*() {
      const server = yield* SshServer.serve(serverOptions({ session: { exec: echo, subsystems: { sftp: evilSftp(reply) } } }))
      const ssh = yield* connect(server.address.port)
      const sftp = yield* ssh.sftp()
      const failure = yield* Effect.flip(sftp.stat("/x"))
      const closed = yield* Effect.flip(Deferred.await(sftp.closed))
      const later = yield* Effect.flip(sftp.stat("/y"))
      // the client closed the SFTP channel itself
      let channels = ssh.connection.channelCount()
      for (let i = 0; i < 100 && channels > 0; i++) {
        yield* Effect.sleep(10)
        channels = ssh.connection.channelCount()
      }
      const ran = yield* ssh.run("alive")
      return { failure, closed, later, channels, ran }
    }))
    expect(outcome.failure.reason._tag).toBe("ProtocolError")
    expect(outcome.failure.reason.message).toContain(message)
    // the operations' errors name the connection's destination; `closed` carries the same reason
    expect(outcome.closed.reason).toBe(outcome.failure.reason)
    expect(outcome.later).toStrictEqual(outcome.failure)
    expect(outcome.channels).toBe(0)
    expect(outcome.ran.stdout).toBe("alive\n")
  })

  it("a server that closes the channel fails pending requests with ConnectionClosed", async () => {
    const quitter = (session: ServerSession) =>
      Effect.gen(function*() {
        const framer = new Framer()
        let requests = 0
        yield* Stream.runForEach(session.stdin, (chunk) =>
          Effect.forEach(framer.push(chunk), (body) => {
            const p = Messages.decode(body)
            if (p._tag === "Init") return session.write(Messages.encode({ _tag: "Version", version: 3, extensions: [] }))
            requests++
            return Effect.fail(undefined)
          }, { discard: true })).pipe(Effect.ignore)
        yield* session.write("giving up\n", "stderr")
        return requests
      })
    const failure = await runScoped(Effect.gen(function*() {
      const server = yield* SshServer.serve(serverOptions({ session: { subsystems: { sftp: quitter } } }))
      const ssh = yield* connect(server.address.port)
      const sftp = yield* ssh.sftp()
      return yield* Effect.flip(sftp.stat("/x"))
    }))
    expect(failure.reason._tag).toBe("ConnectionClosed")
    expect(failure.reason.message).toContain("giving up")
  })
})
