/**
 * Two authenticated SFTP sessions against one jailed `SftpServer.fileSystem`
 * (what `effect-ssh serve --sftp-root` runs): a racer swaps a directory of
 * the root for a symlink to a directory outside it and back, as fast as it
 * can, while a victim session keeps using paths through it: reading, writing
 * and creating files, and renaming, removing, making directories, changing
 * modes and linking. Sentinel files next to the root must come out untouched
 * (content, mode, listing) and nothing outside may ever be read or listed.
 *
 * The counts at the end show the swap was exercised: the racer completed
 * iterations, and the victim both succeeded inside the jail (while the
 * directory was in place) and was refused (while the symlink was).
 */
import * as Effect from "effect/Effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { SftpClient } from "../../src/Sftp/SftpClient.ts"
import * as SftpServer from "../../src/Sftp/SftpServer.ts"
import * as SshServer from "../../src/Server.ts"
import { runScoped } from "../helpers.ts"
import { connect, serverOptions, tempDir } from "../Sftp/fixtures.ts"

/** How long each phase races; three phases keep the whole file under a minute. */
const PHASE_MS = 7_000

const SENTINEL = "SENTINEL: the host's file, outside the jail\n"
const INSIDE = "inside\n"
const text = (s: string) => new TextEncoder().encode(s)
const decode = (b: Uint8Array) => new TextDecoder().decode(b)

interface Counts {
  racer: number
  racerFailed: number
  attempts: number
  inside: number
  refused: number
  escapes: Array<string>
}

/** What the victim's operation saw: the jail's file, a refusal, or the outside. */
type Outcome = "inside" | "refused" | { readonly escaped: string }

let base = { path: "", remove: () => {} }
let root = ""
let outside = ""

/** A snapshot of everything outside the root: names, kinds, modes and contents. */
const snapshotOutside = (): string => {
  const lines: Array<string> = []
  const visit = (dir: string) => {
    for (const name of Fs.readdirSync(dir).sort()) {
      const path = Path.join(dir, name)
      const st = Fs.lstatSync(path)
      const content = st.isFile() ? Fs.readFileSync(path, "utf8") : st.isSymbolicLink() ? Fs.readlinkSync(path) : ""
      lines.push(`${Path.relative(base.path, path)} ${st.mode.toString(8)} ${st.uid}:${st.gid} ${st.mtimeMs} ${JSON.stringify(content)}`)
      if (st.isDirectory()) visit(path)
    }
  }
  visit(outside)
  for (const name of Fs.readdirSync(base.path).sort()) lines.push(`top ${name}`)
  return lines.join("\n")
}

beforeAll(() => {
  base = tempDir("effect-ssh-race-")
  root = Path.join(base.path, "root")
  outside = Path.join(base.path, "outside")
  Fs.mkdirSync(Path.join(root, "race"), { recursive: true })
  Fs.mkdirSync(outside)
  for (const dir of [Path.join(root, "race"), outside]) {
    const inJail = dir.startsWith(root)
    Fs.writeFileSync(Path.join(dir, "passwd"), inJail ? INSIDE : SENTINEL, { mode: 0o600 })
    Fs.chmodSync(Path.join(dir, "passwd"), 0o600)
    Fs.writeFileSync(Path.join(dir, "victim"), inJail ? INSIDE : SENTINEL)
    Fs.mkdirSync(Path.join(dir, "sub"))
    Fs.writeFileSync(Path.join(dir, inJail ? "inside-only" : "outside-only"), "")
  }
})
afterAll(() => base.remove())

const classify = (effect: Effect.Effect<Outcome, unknown>): Effect.Effect<Outcome> =>
  Effect.catch(effect, () => Effect.succeed<Outcome>("refused"))

/**
 * Swaps /race for a symlink to the outside directory and back, forever:
 * rename /race /race_dir; symlink <outside> /race; remove /race; rename /race_dir /race.
 * The link's target is the outside's absolute host path, or "../outside", in turn.
 */
const racer = (sftp: SftpClient, counts: Counts, until: number) =>
  Effect.gen(function*() {
    while (Date.now() < until) {
      const steps = [
        sftp.posixRename("/race", "/race_dir"),
        sftp.symlink(counts.racer % 2 === 0 ? outside : "../outside", "/race"),
        sftp.remove("/race"),
        sftp.posixRename("/race_dir", "/race")
      ]
      for (const step of steps) {
        const failed = yield* Effect.match(step, { onFailure: () => true, onSuccess: () => false })
        if (failed) counts.racerFailed++
      }
      counts.racer++
    }
  })

const victim = (sftp: SftpClient, counts: Counts, until: number, ops: ReadonlyArray<(i: number) => Effect.Effect<Outcome, unknown>>) =>
  Effect.gen(function*() {
    for (let i = 0; Date.now() < until; i++) {
      const outcome = yield* classify(ops[i % ops.length]!(i))
      counts.attempts++
      if (outcome === "inside") counts.inside++
      else if (outcome === "refused") counts.refused++
      else if (counts.escapes.length < 20) counts.escapes.push(outcome.escaped)
    }
  })

const runPhase = (
  name: string,
  makeOps: (sftp: SftpClient) => ReadonlyArray<(i: number) => Effect.Effect<Outcome, unknown>>
) =>
  runScoped(Effect.gen(function*() {
    const server = yield* SshServer.serve(serverOptions({ sftp: SftpServer.fileSystem({ root }) }))
    const racerSsh = yield* connect(server.address.port)
    const victimSsh = yield* connect(server.address.port)
    const racerSftp = yield* racerSsh.sftp()
    const victimSftp = yield* victimSsh.sftp()
    const counts: Counts = { racer: 0, racerFailed: 0, attempts: 0, inside: 0, refused: 0, escapes: [] }
    const until = Date.now() + PHASE_MS
    const ops = makeOps(victimSftp)
    // two victim fibers on one session keep a request queued behind each one the server is answering
    yield* Effect.all([
      racer(racerSftp, counts, until),
      victim(victimSftp, counts, until, ops),
      victim(victimSftp, counts, until, ops)
    ], { concurrency: "unbounded", discard: true })
    // leave /race a directory again, whatever step the racer stopped at
    if (!Fs.existsSync(Path.join(root, "race")) || Fs.lstatSync(Path.join(root, "race")).isSymbolicLink()) {
      if (Fs.existsSync(Path.join(root, "race"))) Fs.unlinkSync(Path.join(root, "race"))
      Fs.renameSync(Path.join(root, "race_dir"), Path.join(root, "race"))
    }
    console.log(`${name}: ${JSON.stringify({ ...counts, escapes: counts.escapes.length })}`)
    return counts
  }))

const expectExercised = (counts: Counts) => {
  expect(counts.racerFailed).toBe(0)
  expect(counts.racer).toBeGreaterThan(100)
  expect(counts.inside).toBeGreaterThan(50)
  expect(counts.refused).toBeGreaterThan(50)
}

describe("a symlink swap racing jailed SFTP operations", () => {
  let before = ""
  beforeAll(() => {
    before = snapshotOutside()
  })

  it("never reads, lists or stats anything outside the root", async () => {
    const counts = await runPhase("read", (sftp) => [
      () => Effect.map(sftp.readFile("/race/passwd"), (b) => decode(b) === INSIDE ? "inside" : { escaped: `read ${JSON.stringify(decode(b))}` }),
      () =>
        Effect.map(sftp.list("/race"), (entries) => {
          const names = entries.map((e) => e.filename)
          return names.includes("outside-only") ? { escaped: `listed ${names.join(",")}` } : "inside"
        }),
      () => Effect.map(sftp.stat("/race/passwd"), (a) => a.size === INSIDE.length ? "inside" : { escaped: `stat size ${a.size}` }),
      () => Effect.map(sftp.readFile("/race/sub/../victim"), (b) => decode(b) === INSIDE ? "inside" : { escaped: `read ${JSON.stringify(decode(b))}` })
    ])
    expect(counts.escapes).toEqual([])
    expectExercised(counts)
    expect(snapshotOutside()).toBe(before)
  }, 60_000)

  it("never writes, creates or truncates a file outside the root", async () => {
    const counts = await runPhase("write", (sftp) => [
      // an existing file, opened for writing: the outside one would be overwritten
      () => Effect.as(sftp.writeFile("/race/passwd", text(INSIDE)), "inside" as const),
      // a new file, created (and then removed again, so the listing stays small)
      (i) => Effect.as(Effect.andThen(sftp.writeFile(`/race/new-${i % 8}`, text("new")), sftp.remove(`/race/new-${i % 8}`)), "inside" as const),
      // exclusive create, then append
      (i) =>
        Effect.as(
          Effect.scoped(Effect.flatMap(sftp.open(`/race/excl-${i % 8}`, "ax"), (file) => file.write(text("x")))).pipe(
            Effect.andThen(sftp.remove(`/race/excl-${i % 8}`))
          ),
          "inside" as const
        )
    ])
    expect(counts.escapes).toEqual([])
    expectExercised(counts)
    expect(snapshotOutside()).toBe(before)
  }, 60_000)

  it("never renames, removes, makes, chmods or links anything outside the root", async () => {
    const counts = await runPhase("namespace", (sftp) => [
      () => Effect.as(Effect.andThen(sftp.mkdir("/race/made"), sftp.rmdir("/race/made")), "inside" as const),
      () => Effect.as(Effect.andThen(sftp.rename("/race/victim", "/race/renamed"), sftp.rename("/race/renamed", "/race/victim")), "inside" as const),
      () => Effect.as(Effect.andThen(sftp.rename("/race/victim", "/race/v3", { overwrite: false }), sftp.rename("/race/v3", "/race/victim")), "inside" as const),
      () => Effect.as(sftp.chmod("/race/passwd", 0o666), "inside" as const),
      () => Effect.as(sftp.lsetstat("/race/passwd", { permissions: 0o644 }), "inside" as const),
      () => Effect.as(sftp.utimes("/race/victim", 1, 1), "inside" as const),
      () => Effect.as(sftp.truncate("/race/victim", INSIDE.length), "inside" as const),
      () => Effect.as(Effect.andThen(sftp.symlink("passwd", "/race/made-link"), sftp.remove("/race/made-link")), "inside" as const),
      () => Effect.as(Effect.andThen(sftp.hardlink("/race/victim", "/race/hard"), sftp.remove("/race/hard")), "inside" as const),
      () => Effect.as(sftp.rmdir("/race/sub").pipe(Effect.andThen(sftp.mkdir("/race/sub"))), "inside" as const),
      () => Effect.as(Effect.andThen(sftp.remove("/race/victim"), sftp.writeFile("/race/victim", text(INSIDE))), "inside" as const)
    ])
    expect(counts.escapes).toEqual([])
    expectExercised(counts)
    expect(snapshotOutside()).toBe(before)
  }, 60_000)
})
