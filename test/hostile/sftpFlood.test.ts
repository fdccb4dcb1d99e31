/**
 * SFTP handle floods against `effect-ssh serve --sftp-root` in a child
 * process, measuring the server's own memory and descriptors:
 *
 * (a) five sessions on one connection open as many directory handles as the
 *     caps allow (64 a session, 256 a server) on a directory of 100,000
 *     entries and read one batch from each: a handle holds a stream of the
 *     directory, not its listing (which would be tens of MiB of names per
 *     handle), so the server grows by less than 64 MiB;
 * (b) twenty sessions open files until the server-wide cap refuses them with
 *     FAILURE; the refused sessions stay usable, the server keeps its
 *     descriptor reserve, and a new login with a new SFTP session works
 *     (and opens a file once a handle is given back).
 */
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Auth from "../../src/Auth/ClientAuth.ts"
import * as HostKeys from "../../src/Auth/HostKeys.ts"
import * as SshClient from "../../src/Client.ts"
import type { SftpClient } from "../../src/Sftp/SftpClient.ts"
import { StatusCode } from "../../src/Sftp/Status.ts"
import type { SshError } from "../../src/SshError.ts"
import { runScoped } from "../helpers.ts"
import { mib, password, type ServeProcess, startServe, user } from "./serveProcess.ts"

const ENTRIES = 100_000
const MiB = 1024 * 1024
/** (a): growth allowed for one attacking connection holding every directory handle it may. */
const DIRECTORY_FLOOD_BOUND = 64 * MiB
/** (b): growth allowed for the whole twenty-session flood. */
const HANDLE_FLOOD_BOUND = 256 * MiB
/** (a): the default directory caps, and sessions on one connection that together ask for more than the server's. */
const DIRECTORIES_PER_SESSION = 64
const SERVER_DIRECTORIES = 256
const DIRECTORY_SESSIONS = 5
const CONNECTIONS = 4
const SESSIONS_PER_CONNECTION = 5

let server: ServeProcess

beforeAll(async () => {
  server = await startServe()
  const big = Path.join(server.sftpRoot, "big")
  Fs.mkdirSync(big)
  // symlinks: the cheapest entries to make (one syscall each); READDIR lstats them like any other
  for (let i = 0; i < ENTRIES; i++) Fs.symlinkSync("target", Path.join(big, `entry-${String(i).padStart(6, "0")}-with-a-name-of-some-length`))
  Fs.writeFileSync(Path.join(server.sftpRoot, "file"), "content")
}, 120_000)

afterAll(() => server?.stop())

const connect = () =>
  SshClient.connect({
    host: "127.0.0.1",
    port: server.port,
    username: user,
    auth: [Auth.password(password)],
    hostKeys: HostKeys.fixed(server.hostKey.publicKey),
    connectTimeout: "20 seconds"
  })

const descriptors = () => Fs.readdirSync(`/proc/${server.pid}/fd`).length

const softFileLimit = (pid: number) => Number(/^Max open files\s+(\d+)/m.exec(Fs.readFileSync(`/proc/${pid}/limits`, "utf8"))![1])

const statusOf = (error: SshError) => {
  expect(error.reason._tag).toBe("SftpStatus")
  return error.reason as Extract<SshError["reason"], { _tag: "SftpStatus" }>
}

/** Opens `count` handles with `open`, 64 at a time: the handles opened and the failures. */
const openMany = (count: number, open: () => Effect.Effect<Uint8Array, SshError>) =>
  Effect.map(
    Effect.forEach(Array.from({ length: count }), () => Effect.result(open()), { concurrency: 64 }),
    (results) => ({
      handles: results.filter(Result.isSuccess).map((r) => r.success),
      failures: results.filter(Result.isFailure).map((r) => statusOf(r.failure))
    })
  )

describe("SFTP handle floods against effect-ssh serve", () => {
  it("(a) directory handles on 100k entries up to the caps, one batch read from each: server grows < 64 MiB", async () => {
    const outcome = await runScoped(Effect.gen(function*() {
      const ssh = yield* connect()
      const sessions: Array<SftpClient> = []
      for (let s = 0; s < DIRECTORY_SESSIONS; s++) sessions.push(yield* ssh.sftp())
      yield* sessions[0]!.list("/") // warm the server up before its baseline
      const before = server.rssBytes()
      const started = Date.now()
      // the first session asks for one more than a session may hold, then the others together for more than the server's
      const first = yield* openMany(DIRECTORIES_PER_SESSION + 1, () => sessions[0]!.opendir("/big"))
      const rest = yield* Effect.forEach(sessions.slice(1), (sftp) => openMany(DIRECTORIES_PER_SESSION + 1, () => sftp.opendir("/big")), {
        concurrency: "unbounded"
      })
      const floods = [first, ...rest]
      const batches = yield* Effect.forEach(floods, (f, i) => Effect.forEach(f.handles, (h) => sessions[i]!.readdirHandle(h), { concurrency: 16 }), {
        concurrency: "unbounded"
      })
      const measured = { growth: server.peakRssBytes() - before, seconds: (Date.now() - started) / 1000, descriptors: descriptors() }
      // a session refused a directory still reads files, and lists once a directory is given back
      const refusedSession = sessions.at(-1)!
      const file = yield* refusedSession.readFile("/file")
      yield* sessions[0]!.close(first.handles.pop()!)
      const listed = yield* refusedSession.readdirHandle(yield* refusedSession.opendir("/big"))
      yield* Effect.forEach(floods, (f, i) => Effect.forEach(f.handles, (h) => sessions[i]!.close(h), { discard: true }), { discard: true })
      return { floods, batches, file, listed, ...measured, after: descriptors() }
    }))
    const [first, ...rest] = outcome.floods
    const opened = outcome.floods.reduce((n, f) => n + f.handles.length, 0) + 1
    const refused = outcome.floods.flatMap((f) => f.failures)
    console.log(
      `(a) ${opened} directory handles on ${ENTRIES} entries (${DIRECTORY_SESSIONS} sessions, one connection), one READDIR each, ` +
        `${refused.length} refused: server RSS +${mib(outcome.growth)}, ${outcome.descriptors} descriptors, ${outcome.seconds.toFixed(1)} s; ` +
        `${outcome.after} descriptors after closing`
    )
    expect(opened).toBe(SERVER_DIRECTORIES)
    for (const batch of outcome.batches.flat()) {
      expect(batch).toBeDefined()
      expect(batch!.length).toBeGreaterThan(0)
      expect(batch!.length).toBeLessThanOrEqual(100)
    }
    expect(outcome.growth).toBeLessThan(DIRECTORY_FLOOD_BOUND)
    // the session's cap, then the server's, refuse with a FAILURE status; the sessions go on
    expect(first!.failures.map((f) => [f.code, f.message])).toEqual([
      [StatusCode.Failure, `too many open directories: a session may hold ${DIRECTORIES_PER_SESSION}; close some first`]
    ])
    const serverRefusals = rest.flatMap((f) => f.failures)
    expect(serverRefusals).toHaveLength((DIRECTORY_SESSIONS - 1) * (DIRECTORIES_PER_SESSION + 1) - (SERVER_DIRECTORIES - DIRECTORIES_PER_SESSION))
    for (const f of serverRefusals) {
      expect(f.code).toBe(StatusCode.Failure)
      expect(f.message).toBe(`too many open directories on this server (${SERVER_DIRECTORIES}); try again later`)
    }
    expect(new TextDecoder().decode(outcome.file)).toBe("content")
    expect(outcome.listed?.length).toBe(100)
    // each directory handle held two descriptors, all released on CLOSE
    expect(outcome.descriptors).toBeGreaterThanOrEqual(2 * SERVER_DIRECTORIES)
    expect(outcome.after).toBeLessThan(outcome.descriptors - 2 * SERVER_DIRECTORIES + 16)
  }, 120_000)

  it("(b) twenty sessions flooding handles hit the server's cap with FAILURE; logins and new sessions still work", async () => {
    const outcome = await runScoped(Effect.gen(function*() {
      const sessions: Array<SftpClient> = []
      for (let c = 0; c < CONNECTIONS; c++) {
        const ssh = yield* connect()
        for (let s = 0; s < SESSIONS_PER_CONNECTION; s++) sessions.push(yield* ssh.sftp())
      }
      const before = server.rssBytes()
      const started = Date.now()
      const perSession = sessions[0]!.limits.maxOpenHandles
      const floods = yield* Effect.forEach(sessions, (sftp) => openMany(perSession, () => sftp.openHandle("/file", "r")), { concurrency: "unbounded" })
      const opened = floods.reduce((n, f) => n + f.handles.length, 0)
      const refused = floods.flatMap((f) => f.failures)
      const held = descriptors()
      // a refused session is still usable
      const refusedSession = sessions[floods.findIndex((f) => f.failures.length > 0)]!
      const stillWorks = yield* refusedSession.stat("/file")
      // a new login and a new SFTP session work, and can open a handle once one is given back
      const newcomer = yield* Effect.scoped(Effect.gen(function*() {
        const ssh = yield* connect()
        const sftp = yield* ssh.sftp()
        const refusedOpen = yield* Effect.flip(sftp.openHandle("/file", "r"))
        const flood = floods.find((f) => f.handles.length > 0)!
        yield* sessions[floods.indexOf(flood)]!.close(flood.handles.pop()!)
        const file = yield* sftp.openHandle("/file", "r")
        const data = yield* sftp.read(file, 0, 100)
        return { refusedOpen, data }
      }))
      const measured = { growth: server.peakRssBytes() - before, seconds: (Date.now() - started) / 1000 }
      yield* Effect.forEach(floods, (f, i) => Effect.forEach(f.handles, (h) => sessions[i]!.close(h), { concurrency: 64, discard: true }), {
        concurrency: "unbounded",
        discard: true
      })
      return { perSession, opened, refused, held, stillWorks, newcomer, ...measured }
    }))
    const limit = softFileLimit(server.pid)
    console.log(
      `(b) ${CONNECTIONS * SESSIONS_PER_CONNECTION} sessions × ${outcome.perSession}: ${outcome.opened} handles opened, ${outcome.refused.length} refused; ` +
        `${outcome.held} of ${limit} descriptors held; server RSS +${mib(outcome.growth)}; ${outcome.seconds.toFixed(1)} s`
    )
    expect(outcome.refused.length).toBeGreaterThan(0)
    for (const failure of outcome.refused) {
      expect(failure.code).toBe(StatusCode.Failure)
      expect(failure.message).toMatch(/too many open handles on this server \(\d+\)/)
    }
    // every handle the server allows was given out, and the descriptor reserve stayed free
    expect(outcome.opened + outcome.refused.length).toBe(CONNECTIONS * SESSIONS_PER_CONNECTION * outcome.perSession)
    expect(outcome.held).toBeLessThan(limit - 1024)
    expect(outcome.stillWorks.size).toBe(7)
    expect(statusOf(outcome.newcomer.refusedOpen).message).toMatch(/too many open handles on this server/)
    expect(new TextDecoder().decode(outcome.newcomer.data)).toBe("content")
    expect(outcome.growth).toBeLessThan(HANDLE_FLOOD_BOUND)
  }, 120_000)
})
