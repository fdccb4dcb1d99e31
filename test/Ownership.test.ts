/**
 * The ownership boundary: memory the library hands to code outside it (a
 * Stream's consumer, a `consumeStdout` callback, a user's `FileSystem`)
 * stays valid after the library is done with it, whatever that code keeps
 * — and whatever it passes back in (a chunk written to a socket of the
 * library's own, which frees the packets it owns once they are written).
 * Only `borrowStdout` lends, and says so in its name: there a batch is
 * valid while the borrower's effect runs.
 *
 * Our client against our server in-process: the SFTP root is a temp
 * directory, and an exec handler writes known bytes.
 */
import type * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as FileSystem from "effect/FileSystem"
import * as Queue from "effect/Queue"
import * as Socket from "effect/socket/Socket"
import * as Stream from "effect/Stream"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Path from "node:path"
import { afterEach, beforeEach, describe, expect, it } from "vitest"
import type { ServerSession } from "../src/Channel/ServerSession.ts"
import { Connector } from "../src/Client.ts"
import * as SshServer from "../src/Server.ts"
import { Framer } from "../src/Sftp/Framer.ts"
import * as Messages from "../src/Sftp/Messages.ts"
import * as SftpServer from "../src/Sftp/SftpServer.ts"
import { runScoped } from "./helpers.ts"
import { connect, hostKey, randomBytes, serverOptions, sha256, tempDir, userKey } from "./Sftp/fixtures.ts"
import * as Auth from "../src/Auth/ClientAuth.ts"
import * as HostKeys from "../src/Auth/HostKeys.ts"
import * as SshClient from "../src/Client.ts"

const FILE_BYTES = 4 * 1024 * 1024
const OUTPUT_BYTES = 8 * 1024 * 1024

/** The bytes the "bytes" command writes: a pattern that differs from block to block. */
const output = new Uint8Array(OUTPUT_BYTES).map((_, i) => (i * 131 + (i >> 12)) & 0xff)

/** "bytes" writes `output` in 64 KiB writes; "hash" writes the SHA-256 of its stdin. */
const exec = (session: ServerSession, command: string) =>
  Effect.gen(function*() {
    if (command === "hash") {
      const hash = Crypto.createHash("sha256")
      yield* Stream.runForEach(session.stdin, (chunk) => Effect.sync(() => hash.update(chunk)))
      yield* session.write(hash.digest("hex"))
      return 0
    }
    if (command !== "bytes") return 127
    for (let at = 0; at < output.length; at += 64 * 1024) yield* session.write(output.subarray(at, at + 64 * 1024))
    return 0
  })

let root = ""
let local = ""
let cleanup: Array<() => void> = []

beforeEach(() => {
  const r = tempDir("effect-ssh-ownership-root-")
  const l = tempDir("effect-ssh-ownership-local-")
  root = r.path
  local = l.path
  cleanup = [r.remove, l.remove]
})

afterEach(() => {
  for (const f of cleanup) f()
})

/** A client connected to our server (SFTP over `root`, the exec handler above). */
const withConnection = <A, E, R>(f: (ssh: Effect.Success<ReturnType<typeof connect>>) => Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const server = yield* SshServer.serve(serverOptions({ sftp: SftpServer.fileSystem({ root }), session: { exec } }))
    return yield* f(yield* connect(server.address.port))
  })

const concatenated = (chunks: ReadonlyArray<Uint8Array>): Uint8Array => Buffer.concat(chunks)

/** What a set of kept chunks looks like: their lengths must all be intact and their content the original's. */
const expectIntact = (kept: ReadonlyArray<Uint8Array>, original: Uint8Array) => {
  expect(kept.length).toBeGreaterThan(0)
  expect(kept.filter((chunk) => chunk.byteLength === 0).length).toBe(0)
  expect(kept.reduce((n, chunk) => n + chunk.byteLength, 0)).toBe(original.length)
  expect(sha256(concatenated(kept))).toBe(sha256(original))
}

/**
 * The FileSystem in context, wrapped so that every file it opens keeps each buffer `writeAll` is given (a
 * FileSystem that queues writes, or caches what it wrote, does this) and the part of each buffer `read` filled.
 */
const keepingFileSystem = Effect.map(FileSystem.FileSystem, (fs) => {
  const written: Array<Uint8Array> = []
  const read: Array<Uint8Array> = []
  const keepBuffers = (file: FileSystem.File): FileSystem.File =>
    new Proxy(file, {
      get: (target, key, receiver) =>
        key === "writeAll"
          ? (buffer: Uint8Array) => {
            written.push(buffer)
            return target.writeAll(buffer)
          }
          : key === "read"
          ? (buffer: Uint8Array, options?: Parameters<FileSystem.File["read"]>[1]) =>
            Effect.tap(target.read(buffer, options), (n) => Effect.sync(() => n > 0 && read.push(buffer.subarray(0, Number(n)))))
          : Reflect.get(target, key, receiver)
    })
  const keeping: FileSystem.FileSystem = new Proxy(fs, {
    get: (target, key, receiver) =>
      key === "open"
        ? (path: string, options?: Parameters<FileSystem.FileSystem["open"]>[1]) => Effect.map(target.open(path, options), keepBuffers)
        : Reflect.get(target, key, receiver)
  })
  return { fs: keeping, written, read }
})

/**
 * Writes `chunks` to a local TCP sink through a socket of the library's own Connector (NodeSsh's), and waits
 * until the sink has had every byte: the user hands the chunks back to the library, whose socket frees the
 * packets it owns once they are written. Returns the sink's SHA-256 of what it received.
 */
const writeThroughConnector = (chunks: ReadonlyArray<Uint8Array>) =>
  Effect.gen(function*() {
    let expected = 0
    for (const chunk of chunks) expected += chunk.byteLength
    const hash = Crypto.createHash("sha256")
    let got = 0
    let done: (digest: string) => void = () => {}
    const received = new Promise<string>((resolve) => {
      done = resolve
    })
    const sink = Net.createServer((conn) =>
      conn.on("data", (data) => {
        hash.update(data)
        got += data.length
        if (got >= expected) done(hash.digest("hex"))
      }))
    yield* Effect.acquireRelease(
      Effect.promise(() => new Promise<void>((resolve) => sink.listen(0, "127.0.0.1", resolve))),
      () => Effect.sync(() => sink.close())
    )
    const port = (sink.address() as Net.AddressInfo).port
    const socket = yield* Effect.flatMap(Connector, (connector) => connector.connect("127.0.0.1", port))
    const writer = yield* socket.writer
    for (const chunk of chunks) yield* writer.write(chunk)
    return yield* Effect.promise(() => received)
  })

describe("memory handed to code outside the library stays valid", () => {
  it("sftp.get into a FileSystem that keeps the buffers it is given", async () => {
    const source = randomBytes(FILE_BYTES)
    Fs.writeFileSync(Path.join(root, "big.bin"), source)
    const { kept, result } = await runScoped(Effect.gen(function*() {
      const { fs, written } = yield* keepingFileSystem
      const result = yield* Effect.provideService(
        withConnection((ssh) => Effect.flatMap(ssh.sftp(), (sftp) => sftp.get("/big.bin", Path.join(local, "big.bin")))),
        FileSystem.FileSystem,
        fs
      )
      return { kept: written, result }
    }))
    expect(result.bytes).toBe(FILE_BYTES)
    expect(sha256(Path.join(local, "big.bin"))).toBe(sha256(source))
    expectIntact(kept, source)
  })

  it("sftp.put from a FileSystem that keeps the buffers it reads into", async () => {
    const source = randomBytes(FILE_BYTES)
    Fs.writeFileSync(Path.join(local, "big.bin"), source)
    const { kept, result } = await runScoped(Effect.gen(function*() {
      const { fs, read } = yield* keepingFileSystem
      const result = yield* Effect.provideService(
        withConnection((ssh) => Effect.flatMap(ssh.sftp(), (sftp) => sftp.put(Path.join(local, "big.bin"), "/big.bin"))),
        FileSystem.FileSystem,
        fs
      )
      return { kept: read, result }
    }))
    expect(result.bytes).toBe(FILE_BYTES)
    expect(sha256(Path.join(root, "big.bin"))).toBe(sha256(source))
    expectIntact(kept, source)
  })

  it("sftp.readStream, collected, then written out through the library's own socket", async () => {
    const source = randomBytes(FILE_BYTES)
    Fs.writeFileSync(Path.join(root, "big.bin"), source)
    const { chunks, forwarded } = await runScoped(withConnection((ssh) =>
      Effect.gen(function*() {
        const sftp = yield* ssh.sftp()
        const chunks = yield* Stream.runCollect(sftp.readStream("/big.bin"))
        // more traffic on the same session after the stream ended: a download whose packets are freed as written
        yield* sftp.get("/big.bin", Path.join(local, "again.bin"))
        return { chunks, forwarded: yield* writeThroughConnector(chunks) }
      })))
    expect(forwarded).toBe(sha256(source))
    expectIntact(chunks, source)
  })

  it("consumeStdout with a consumer that keeps the chunks", async () => {
    const kept = await runScoped(withConnection((ssh) =>
      Effect.gen(function*() {
        const proc = yield* ssh.exec("bytes")
        const kept: Array<Uint8Array> = []
        yield* proc.consumeStdout((chunks) => Effect.sync(() => kept.push(...chunks)))
        yield* proc.exit
        return kept
      })))
    expectIntact(kept, output)
  })

  it("exec stdout, collected, then written out through the library's own socket", async () => {
    const { chunks, forwarded } = await runScoped(withConnection((ssh) =>
      Effect.gen(function*() {
        const proc = yield* ssh.exec("bytes")
        const chunks = yield* Stream.runCollect(proc.stdout)
        yield* proc.exit
        return { chunks, forwarded: yield* writeThroughConnector(chunks) }
      })))
    expect(forwarded).toBe(sha256(output))
    expectIntact(chunks, output)
  })

  it("borrowStdout says it lends: the batch is valid while the borrower's effect runs, and freed after", async () => {
    const { hash, lent } = await runScoped(withConnection((ssh) =>
      Effect.gen(function*() {
        const proc = yield* ssh.exec("bytes")
        const hash = Crypto.createHash("sha256")
        const lent: Array<Uint8Array> = []
        yield* proc.borrowStdout((chunks) =>
          Effect.sync(() => {
            for (const chunk of chunks) hash.update(chunk)
            lent.push(...chunks)
          })
        )
        yield* proc.exit
        return { hash: hash.digest("hex"), lent }
      })))
    expect(hash).toBe(sha256(output))
    expect(lent.length).toBeGreaterThan(0)
    expect(lent.every((chunk) => chunk.byteLength === 0)).toBe(true)
  })

  it("a socket of the user's own, which keeps what it writes and passes it on to the library's socket", async () => {
    // every chunk the connection writes, with its SHA-256 when it was written
    const written: Array<{ readonly chunk: Uint8Array; readonly hash: string }> = []
    const input = randomBytes(FILE_BYTES)
    const stdout = await runScoped(Effect.gen(function*() {
      const server = yield* SshServer.serve(serverOptions({ session: { exec } }))
      const inner = yield* Effect.flatMap(Connector, (connector) => connector.connect("127.0.0.1", server.address.port))
      const logging = Socket.make({
        reader: inner.reader,
        writer: Effect.map(inner.writer, (writer): Socket.Writer => ({
          write: (chunk) => {
            if (chunk instanceof Uint8Array) written.push({ chunk, hash: sha256(chunk) })
            return writer.write(chunk)
          },
          writeAll: (chunks) => {
            for (const chunk of chunks) if (chunk instanceof Uint8Array) written.push({ chunk, hash: sha256(chunk) })
            return writer.writeAll(chunks)
          }
        }))
      })
      const ssh = yield* SshClient.connect({
        host: "127.0.0.1",
        username: "alice",
        socket: logging,
        auth: [Auth.privateKey(userKey)],
        hostKeys: HostKeys.fixed(hostKey.publicKey)
      })
      // a large input: the packets it goes out in are big enough for the library to own and free
      const result = yield* ssh.run("hash", { stdin: input })
      return result.stdout
    }))
    expect(stdout).toBe(sha256(input))
    expect(written.length).toBeGreaterThan(0)
    expect(written.filter(({ chunk }) => chunk.byteLength === 0).length).toBe(0)
    expect(written.filter(({ chunk, hash }) => sha256(chunk) !== hash).length).toBe(0)
  })

  it("SftpServer.serve with a caller's write that keeps the replies, then passes them to the library's socket", async () => {
    const source = randomBytes(200_000)
    Fs.writeFileSync(Path.join(root, "small.bin"), source)
    const replies: Array<Uint8Array> = []
    const { data, forwarded } = await runScoped(Effect.gen(function*() {
      // a client driven by the replies: INIT, OPEN, READ until EOF, CLOSE
      const requests = yield* Queue.unbounded<Uint8Array, Cause.Done>()
      const framer = new Framer()
      const data: Array<Uint8Array> = []
      let handle: Uint8Array | undefined
      let offset = 0
      const request = (packet: Messages.SftpPacket) => Queue.offerUnsafe(requests, Messages.encode(packet))
      const read = () => request({ _tag: "Read", id: 3, handle: handle!, offset, length: 256 * 1024 })
      const write = (bytes: Uint8Array) =>
        Effect.sync(() => {
          replies.push(bytes)
          for (const body of framer.push(bytes)) {
            const reply = Messages.decode(body)
            if (reply._tag === "Version") request({ _tag: "Open", id: 1, path: "/small.bin", pflags: Messages.openFlags("r"), attrs: {} })
            else if (reply._tag === "Handle") {
              handle = reply.handle.slice()
              read()
            } else if (reply._tag === "Data") {
              data.push(reply.data.slice())
              offset += reply.data.length
              read()
            } else if (reply._tag === "Status" && reply.id === 3) request({ _tag: "Close", id: 4, handle: handle! })
            else Queue.endUnsafe(requests)
          }
        })
      request({ _tag: "Init", version: 3, extensions: [] })
      yield* SftpServer.serve(Stream.fromQueue(requests), write, { root }, { user: "alice" })
      return { data: concatenated(data), forwarded: yield* writeThroughConnector(replies) }
    }))
    expect(sha256(data)).toBe(sha256(source))
    expect(forwarded).toBe(sha256(concatenated(replies)))
    expect(replies.filter((reply) => reply.byteLength === 0).length).toBe(0)
  })
})
