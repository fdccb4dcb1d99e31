import { describe, expect, it } from "vitest"
import * as Effect from "effect/Effect"
import * as FileSystem from "effect/FileSystem"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { chunkWriter } from "../../src/internal/chunkWriter.ts"
import { allocate, isOwned } from "../../src/internal/ownedBuffers.ts"
import * as NodeSsh from "../../src/NodeSsh.ts"

const bytes = (text: string) => new TextEncoder().encode(text)

/** Counts the joined writes a File receives, so a test can tell which path a writer took. */
const counting = (file: FileSystem.File) => {
  let writeAlls = 0
  const proxy = new Proxy(file, {
    get: (target, key, receiver) =>
      key === "writeAll"
        ? (buffer: Uint8Array) => {
          writeAlls++
          return target.writeAll(buffer)
        }
        : Reflect.get(target, key, receiver)
  })
  return { file: proxy, writeAlls: () => writeAlls }
}

const withTempFile = <A>(f: (path: string) => Promise<A>): Promise<A> => {
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-ssh-chunkwriter-"))
  return f(Path.join(dir, "out.bin")).finally(() => Fs.rmSync(dir, { recursive: true, force: true }))
}

const writeBatches = (path: string, start: number, batches: ReadonlyArray<ReadonlyArray<Uint8Array>>) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const opened = yield* fs.open(path, { flag: start > 0 ? "r+" : "w" })
    if (start > 0) yield* opened.seek(BigInt(start), "start")
    const { file, writeAlls } = counting(opened)
    const write = chunkWriter(fs, file, start)
    for (const chunks of batches) yield* write(chunks)
    return writeAlls()
  }).pipe(Effect.scoped)

describe("chunkWriter", () => {
  const views = () => {
    const packet = bytes("xxhello, yy")
    return [[packet.subarray(2, 8), bytes("world")], [bytes("!")]]
  }

  it("writes chunks in order with writev, without joining, on NodeSsh's file system", () =>
    withTempFile(async (path) => {
      const joins = await Effect.runPromise(Effect.provide(writeBatches(path, 0, views()), NodeSsh.layer))
      expect(Fs.readFileSync(path, "utf8")).toBe("hello,world!")
      expect(joins).toBe(0)
    }))

  it("joins each batch into one writeAll on any other file system", () =>
    withTempFile(async (path) => {
      const joins = await Effect.runPromise(Effect.provide(writeBatches(path, 0, views()), NodeFileSystem.layer))
      expect(Fs.readFileSync(path, "utf8")).toBe("hello,world!")
      expect(joins).toBe(2)
    }))

  it("starts at the given offset (a resumed download) and keeps what is before it", () =>
    withTempFile(async (path) => {
      Fs.writeFileSync(path, "KEEP-and-overwrite")
      await Effect.runPromise(Effect.provide(writeBatches(path, 5, [[bytes("ab"), bytes("c")], [bytes("def")]]), NodeSsh.layer))
      expect(Fs.readFileSync(path, "utf8")).toBe("KEEP-abcdeferwrite")
    }))

  it("fails with the file system's typed error when the descriptor cannot be written", () =>
    withTempFile(async (path) => {
      Fs.writeFileSync(path, "read only")
      const failure = await Effect.runPromise(Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const file = yield* fs.open(path, { flag: "r" })
        return yield* Effect.flip(chunkWriter(fs, file, 0)([bytes("a"), bytes("b")]))
      }).pipe(Effect.scoped, Effect.provide(NodeSsh.layer)))
      expect(failure._tag).toBe("PlatformError")
      expect(failure.reason._tag).toBe("BadResource")
      expect(Fs.readFileSync(path, "utf8")).toBe("read only")
    }))

  /** Owned chunks holding `text`, one per part (as packets are). */
  const owned = (...parts: ReadonlyArray<string>) =>
    parts.map((part) => {
      const chunk = allocate(part.length)
      chunk.set(bytes(part))
      return chunk
    })

  it("frees the chunks it was given once writev has written them, on NodeSsh's file system (code of ours)", () =>
    withTempFile(async (path) => {
      const batches = [owned("hello, ", "world"), owned("!")]
      await Effect.runPromise(Effect.provide(writeBatches(path, 0, batches), NodeSsh.layer))
      expect(Fs.readFileSync(path, "utf8")).toBe("hello, world!")
      expect(batches.flat().every((chunk) => chunk.byteLength === 0)).toBe(true)
    }))

  it("never frees what another file system was given: a single chunk is handed over, a join is the file's", () =>
    withTempFile(async (path) => {
      const given: Array<Uint8Array> = []
      const single = owned("kept")
      const several = owned("a", "b")
      await Effect.runPromise(Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const opened = yield* fs.open(path, { flag: "w" })
        const keeping = new Proxy(opened, {
          get: (target, key, receiver) =>
            key === "writeAll"
              ? (buffer: Uint8Array) => {
                given.push(buffer)
                return target.writeAll(buffer)
              }
              : Reflect.get(target, key, receiver)
        })
        const write = chunkWriter(fs, keeping, 0)
        yield* write(single)
        yield* write(several)
      }).pipe(Effect.scoped, Effect.provide(NodeFileSystem.layer)))
      expect(Fs.readFileSync(path, "utf8")).toBe("keptab")
      expect(given.map((buffer) => new TextDecoder().decode(buffer))).toEqual(["kept", "ab"])
      expect(isOwned(single[0]!)).toBe(false)
      // the chunks a join was copied from were the library's alone: those are freed
      expect(several.every((chunk) => chunk.byteLength === 0)).toBe(true)
    }))
})
