/**
 * A run's memo (what `pexec` provides): identity files and known_hosts are
 * read and parsed once per run however many hosts use them, nothing is
 * remembered without a memo, and a known_hosts addition made during the run
 * is seen by the reads after it.
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as Effect from "effect/Effect"
import * as FileSystem from "effect/FileSystem"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import * as Identities from "../../src/Auth/Identities.ts"
import * as KnownHostsFile from "../../src/Auth/KnownHostsFile.ts"
import * as PrivateKey from "../../src/Auth/PrivateKey.ts"
import * as RunMemo from "../../src/internal/runMemo.ts"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "effect-ssh-run-memo-"))
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

const identity = path.join(dir, "id_ed25519")
fs.writeFileSync(identity, PrivateKey.toOpenSsh(PrivateKey.generate("ssh-ed25519")), { mode: 0o600 })

/** Runs `effect` on the real file system, counting the reads of each path. */
const counting = <A, E>(effect: Effect.Effect<A, E, FileSystem.FileSystem>) =>
  Effect.runPromise(Effect.gen(function*() {
    const real = yield* FileSystem.FileSystem
    const reads = new Map<string, number>()
    const count = (file: string) => reads.set(file, (reads.get(file) ?? 0) + 1)
    const wrapped: FileSystem.FileSystem = {
      ...real,
      readFile: (file) => Effect.andThen(Effect.sync(() => count(file)), real.readFile(file)),
      readFileString: (file, encoding) => Effect.andThen(Effect.sync(() => count(file)), real.readFileString(file, encoding))
    }
    const value = yield* Effect.provideService(effect, FileSystem.FileSystem, wrapped)
    return { value, reads }
  }).pipe(Effect.provide(NodeFileSystem.layer)))

const withMemo = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.provideServiceEffect(effect, RunMemo.RunMemo, Effect.sync(RunMemo.make))

describe("RunMemo", () => {
  it("an identity file used by 50 hosts is read once in a run, 50 times without a memo", async () => {
    const fifty = Effect.forEach(Array.from({ length: 50 }), () => Identities.authMethods({ files: [identity] }))
    const memoized = await counting(withMemo(fifty))
    expect(memoized.reads.get(identity)).toBe(1)
    expect(memoized.value.every((methods) => methods.length === 1 && methods[0]!._tag === "PrivateKey")).toBe(true)
    const plain = await counting(fifty)
    expect(plain.reads.get(identity)).toBe(50)
  })

  it("known_hosts: read once, and a host added during the run is seen by the next read", async () => {
    const knownHosts = path.join(dir, "known_hosts")
    fs.writeFileSync(knownHosts, "")
    const key = PrivateKey.generate("ssh-ed25519").publicKey
    const run = await counting(withMemo(Effect.gen(function*() {
      const before = yield* KnownHostsFile.read(knownHosts)
      yield* KnownHostsFile.read(knownHosts)
      yield* KnownHostsFile.addHost(knownHosts, "web1", 22, key)
      const after = yield* KnownHostsFile.read(knownHosts)
      yield* KnownHostsFile.read(knownHosts)
      return { before: before.entries.length, after: after.entries.length }
    })))
    expect(run.value).toEqual({ before: 0, after: 1 })
    // two memoized reads around the write, plus the write's own read of the file
    expect(run.reads.get(knownHosts)).toBe(3)
  })
})
