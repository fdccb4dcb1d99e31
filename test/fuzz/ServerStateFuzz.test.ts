/**
 * The server's state machines above the transport, fed mutated client
 * messages in memory (no sockets, no crypto): authentication
 * (`ServerAuth.authenticate`), the connection protocol with real session
 * handling (`Connection` + `ServerSession`), and the SFTP server on a real
 * directory. Each session replays a valid client script whose messages are
 * mutated (bit flips, length fields, truncation, number swaps, splices) and
 * reordered (dropped, repeated, swapped, foreign messages); it must end in
 * bounded time with success or a typed `SshError`, release its channels, and
 * (SFTP) never touch anything outside its root.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import * as ServerAuth from "../../src/Auth/ServerAuth.ts"
import * as AuthMessages from "../../src/Auth/Messages.ts"
import * as PrivateKey from "../../src/Auth/PrivateKey.ts"
import * as Connection from "../../src/Channel/Connection.ts"
import * as ServerSession from "../../src/Channel/ServerSession.ts"
import * as ChannelMessages from "../../src/Channel/Messages.ts"
import * as Requests from "../../src/Channel/Requests.ts"
import * as SftpServer from "../../src/Sftp/SftpServer.ts"
import * as SftpMessages from "../../src/Sftp/Messages.ts"
import { Framer } from "../../src/Sftp/Framer.ts"
import * as Messages from "../../src/Transport/Messages.ts"
import * as N from "../../src/Wire/MessageNumber.ts"
import { build } from "../../src/Wire/Writer.ts"
import { ChannelOpenFailed, type SshError } from "../../src/SshError.ts"
import { defaultKexInit } from "./peer.ts"
import { memoryTransport } from "./memory.ts"
import { FUZZ_SEED, mutate, reorder, Rng, scaled, scaledTimeout, Tally, typedProblem } from "./mutate.ts"

/** Mutated packets each suite must deliver at scale 1. */
const TARGET = 100_000
/** A session that has not ended after this long is a hang. */
const SESSION_BOUND = "10 seconds"

const USER = "alice"
const edKey = PrivateKey.generate("ssh-ed25519")
const otherKey = PrivateKey.generate("ssh-ed25519")
const SESSION_ID = new Uint8Array(32).fill(7)

interface Plan {
  readonly payloads: ReadonlyArray<Uint8Array>
  readonly mutated: ReadonlySet<Uint8Array>
}

/**
 * A valid script turned into a case: each message mutated with probability
 * `p`, and with probability `q` the sequence reordered with foreign messages.
 */
const plan = (rng: Rng, script: ReadonlyArray<Uint8Array>, foreign: ReadonlyArray<Uint8Array>, tally: Tally, p = 0.35, q = 0.3): Plan => {
  const order = rng.chance(q) ? reorder(rng, script, foreign) : script
  const mutated = new Set<Uint8Array>()
  const payloads = order.map((m) => {
    if (!rng.chance(p)) return Uint8Array.from(m)
    const bytes = mutate(rng, m, script, tally)
    mutated.add(bytes)
    return bytes
  })
  // at least one mutated message per case
  if (mutated.size === 0 && payloads.length > 0) {
    const i = rng.int(payloads.length)
    const bytes = mutate(rng, payloads[i]!, script, tally)
    payloads[i] = bytes
    mutated.add(bytes)
  }
  return { payloads, mutated }
}

/** The outcome's name for the tally; fails the test on a defect, an untyped or an escaped JavaScript error. */
const outcomeOf = (exit: Exit.Exit<unknown, SshError>, what: () => string): string => {
  if (Exit.isSuccess(exit)) return "success"
  if (Cause.hasDies(exit.cause) || !Cause.hasFails(exit.cause)) expect.fail(`${what()}: a defect or interruption\n${Cause.pretty(exit.cause)}`)
  const error = exit.cause.reasons.find(Cause.isFailReason)!.error
  const problem = typedProblem(error)
  if (problem !== undefined) expect.fail(`${what()}: ${problem}`)
  return error.reason._tag === "ProtocolError" ? `ProtocolError` : error.reason._tag
}

/** Runs `cases` sessions in one fiber; `session(rng, index)` returns the exit of one. */
const runSessions = (
  tally: Tally,
  cases: number,
  seedOffset: number,
  session: (rng: Rng, index: number) => Effect.Effect<{ readonly exit: Exit.Exit<unknown, SshError>; readonly describe: () => string }>
) =>
  Effect.runPromise(Effect.gen(function*() {
    const root = new Rng(FUZZ_SEED + seedOffset)
    for (let i = 0; i < cases; i++) {
      const rng = root.fork(i)
      const { exit, describe } = yield* session(rng, i)
      tally.cases++
      tally.outcome(outcomeOf(exit, () => `case ${i} (seed ${FUZZ_SEED + seedOffset}): ${describe()}`))
    }
  }))

const describePlan = (p: Plan) => p.payloads.map((b) => `${p.mutated.has(b) ? "*" : ""}${Buffer.from(b.subarray(0, 48)).toString("hex")}`).join(" ")

// ---------------------------------------------------------------------------------------------------------------
// Authentication
// ---------------------------------------------------------------------------------------------------------------

const authOptions: ServerAuth.ServerAuthOptions = {
  none: () => Effect.succeed(false),
  password: ({ user, password }) => Effect.succeed(user === USER && Redacted.value(password) === "wonderland"),
  publicKey: ({ user, key }) => Effect.succeed(user === USER && key.type === "ssh-ed25519"),
  keyboardInteractive: ({ prompt }) =>
    Effect.map(prompt({ name: "", instruction: "one-time code", prompts: [{ prompt: "Code: ", echo: true }] }), (answers) => answers[0] === "123"),
  banner: "Welcome\r\n",
  maxTries: 6,
  loginGraceTime: SESSION_BOUND,
  // sshd's failed-auth delay (5 ms and more a failure) would make 100k cases take minutes; its own tests are elsewhere
  failureDelay: 0
}

const request = (r: AuthMessages.AuthMethodRequest, user = USER) => AuthMessages.encodeRequest({ user, service: "ssh-connection", request: r })
const signedRequest = (key: PrivateKey.PrivateKey) => {
  const blob = key.publicKey.blob
  const data = AuthMessages.publicKeySignedData(SESSION_ID, USER, "ssh-connection", "ssh-ed25519", blob)
  return request({ method: "publickey", algorithm: "ssh-ed25519", publicKey: blob, signature: key.sign(data) })
}

const authScripts: ReadonlyArray<ReadonlyArray<Uint8Array>> = [
  [
    Messages.encodeServiceRequest("ssh-userauth"),
    request({ method: "none" }),
    request({ method: "password", password: "guess" }),
    request({ method: "publickey", algorithm: "ssh-ed25519", publicKey: otherKey.publicKey.blob }),
    request({ method: "keyboard-interactive", submethods: "" }),
    AuthMessages.encodeInfoResponse(["999"]),
    request({ method: "keyboard-interactive", submethods: "" }),
    AuthMessages.encodeInfoResponse(["123"])
  ],
  [
    Messages.encodeServiceRequest("ssh-userauth"),
    request({ method: "publickey", algorithm: "ssh-ed25519", publicKey: edKey.publicKey.blob }),
    signedRequest(edKey)
  ],
  [
    Messages.encodeServiceRequest("ssh-userauth"),
    signedRequest(otherKey),
    request({ method: "password", password: "wonderland", newPassword: "x" }),
    request({ method: "password", password: "wonderland" })
  ]
]
const authForeign = [
  defaultKexInit("client"),
  ChannelMessages.channelOpen("session", 0, 1024, 1024),
  Messages.encodeServiceRequest("ssh-connection"),
  AuthMessages.encodeInfoResponse([]),
  request({ method: "password", password: "wonderland" }, "root"),
  request({ method: "hostbased", data: new Uint8Array(8) } as AuthMessages.AuthMethodRequest)
]

// ---------------------------------------------------------------------------------------------------------------
// Connection and sessions
// ---------------------------------------------------------------------------------------------------------------

/** An exec handler in memory: `cat` echoes stdin, `echo` writes its words, anything else exits 127. */
const exec: ServerSession.SessionHandler<string> = (session, command) =>
  Effect.gen(function*() {
    const [verb, ...rest] = command.split(" ")
    if (verb === "echo") {
      yield* session.write(rest.join(" ") + "\n")
      return 0
    }
    if (verb === "cat") {
      yield* Stream.runForEach(session.stdin, (chunk) => session.write(chunk))
      return 0
    }
    return 127
  })

const sessionPeer: ServerSession.SessionPeer = { user: USER, remoteAddress: "127.0.0.1", remotePort: 1 }
const sessionHandlers: ServerSession.SessionHandlers = { exec, shell: (session) => Effect.as(session.write("$ "), 0) }

/** Client scripts for the connection layer; the server numbers its channels 0, 1, ... in order. */
const connectionScripts: ReadonlyArray<ReadonlyArray<Uint8Array>> = [
  [
    ChannelMessages.channelOpen("session", 5, 1024 * 1024, 32 * 1024),
    ChannelMessages.channelRequest(0, "pty-req", true, Requests.encodePtyRequest({ term: "xterm", columns: 80, rows: 24, modes: { 53: 1 } })),
    ChannelMessages.channelRequest(0, "env", false, Requests.encodeEnv("LANG", "C")),
    ChannelMessages.channelRequest(0, "exec", true, Requests.encodeString("cat")),
    ChannelMessages.channelData(0, new TextEncoder().encode("hello")),
    ChannelMessages.windowAdjust(0, 4096),
    ChannelMessages.channelRequest(0, "window-change", false, Requests.encodeWindowChange({ columns: 100, rows: 30 })),
    ChannelMessages.channelRequest(0, "signal", false, Requests.encodeString("INT")),
    ChannelMessages.globalRequest("keepalive@openssh.com", true),
    ChannelMessages.channelData(0, new Uint8Array(300)),
    ChannelMessages.channelEof(0),
    ChannelMessages.channelClose(0)
  ],
  [
    ChannelMessages.channelOpen("session", 1, 64 * 1024, 16 * 1024),
    ChannelMessages.channelOpen("session", 2, 64 * 1024, 16 * 1024),
    ChannelMessages.channelRequest(0, "exec", true, Requests.encodeString("echo hi")),
    ChannelMessages.channelRequest(1, "shell", true),
    ChannelMessages.channelOpen("direct-tcpip", 3, 1024, 1024, build((w) => w.string("localhost").uint32(22).string("127.0.0.1").uint32(5000))),
    ChannelMessages.globalRequest("tcpip-forward", true, build((w) => w.string("0.0.0.0").uint32(8080))),
    ChannelMessages.channelData(1, new Uint8Array(10), 1),
    ChannelMessages.channelRequest(1, "window-change", false, Requests.encodeWindowChange({ columns: 10, rows: 10 })),
    ChannelMessages.channelClose(0),
    ChannelMessages.channelRequest(1, "exit-status", false, Requests.encodeExitStatus(0)),
    ChannelMessages.channelClose(1)
  ]
]
const connectionForeign = [
  ChannelMessages.channelOpenConfirmation(0, 9, 1024, 1024),
  ChannelMessages.channelOpenFailure(1, 2, "no"),
  ChannelMessages.requestSuccess(),
  ChannelMessages.requestFailure(),
  ChannelMessages.channelSuccess(0),
  ChannelMessages.channelData(7, new Uint8Array(4)),
  ChannelMessages.channelRequest(0, "subsystem", true, Requests.encodeString("nope")),
  AuthMessages.encodeSuccess(),
  Uint8Array.of(126)
]

// ---------------------------------------------------------------------------------------------------------------
// SFTP
// ---------------------------------------------------------------------------------------------------------------

let sandbox = ""
let sftpRoot = ""
const outsideMarker = () => path.join(sandbox, "outside.txt")

const resetTree = () => {
  fs.rmSync(sftpRoot, { recursive: true, force: true })
  fs.mkdirSync(path.join(sftpRoot, "dir", "sub"), { recursive: true })
  fs.writeFileSync(path.join(sftpRoot, "file.txt"), "0123456789".repeat(100))
  fs.writeFileSync(path.join(sftpRoot, "dir", "inner.txt"), "inner")
  fs.symlinkSync("file.txt", path.join(sftpRoot, "link"))
  fs.symlinkSync("../outside.txt", path.join(sftpRoot, "escape"))
}

beforeAll(() => {
  sandbox = fs.mkdtempSync(path.join(os.tmpdir(), "effect-ssh-sftp-fuzz-"))
  sftpRoot = path.join(sandbox, "root")
  fs.writeFileSync(outsideMarker(), "must not change")
  resetTree()
})

afterAll(() => {
  if (sandbox) fs.rmSync(sandbox, { recursive: true, force: true })
})

const sftp = (packet: SftpMessages.SftpPacket) => SftpMessages.encode(packet)
/** Handles are opaque; our server's count up from 1 as 4 bytes in each session (the mutations find the others). */
const handle = (n: number) => Uint8Array.of(0, 0, 0, n)
const sftpScripts: ReadonlyArray<ReadonlyArray<Uint8Array>> = [
  [
    sftp({ _tag: "Init", version: 3, extensions: [] }),
    sftp({ _tag: "Realpath", id: 1, path: "." }),
    sftp({ _tag: "Open", id: 2, path: "/file.txt", pflags: SftpMessages.openFlags("r"), attrs: {} }),
    sftp({ _tag: "Read", id: 3, handle: handle(1), offset: 0, length: 100 }),
    sftp({ _tag: "Fstat", id: 4, handle: handle(1) }),
    sftp({ _tag: "Close", id: 5, handle: handle(1) }),
    sftp({ _tag: "Opendir", id: 6, path: "/dir" }),
    sftp({ _tag: "Readdir", id: 7, handle: handle(2) }),
    sftp({ _tag: "Readdir", id: 8, handle: handle(2) }),
    sftp({ _tag: "Close", id: 9, handle: handle(2) }),
    sftp({ _tag: "Stat", id: 10, path: "/link" }),
    sftp({ _tag: "Lstat", id: 11, path: "/escape" }),
    sftp({ _tag: "Readlink", id: 12, path: "/link" }),
    sftp({ _tag: "StatVfs", id: 13, path: "/" }),
    sftp({ _tag: "Limits", id: 14 }),
    sftp({ _tag: "ExpandPath", id: 15, path: "~/dir" })
  ],
  [
    sftp({ _tag: "Init", version: 3, extensions: [] }),
    sftp({ _tag: "Open", id: 1, path: "/new.txt", pflags: SftpMessages.openFlags("w+"), attrs: { permissions: 0o644 } }),
    sftp({ _tag: "Write", id: 2, handle: handle(1), offset: 0, data: new Uint8Array(64).fill(65) }),
    sftp({ _tag: "Write", id: 3, handle: handle(1), offset: 64, data: new Uint8Array(64).fill(66) }),
    sftp({ _tag: "Fsetstat", id: 4, handle: handle(1), attrs: { permissions: 0o600 } }),
    sftp({ _tag: "Fsync", id: 5, handle: handle(1) }),
    sftp({ _tag: "Close", id: 6, handle: handle(1) }),
    sftp({ _tag: "Mkdir", id: 7, path: "/made", attrs: {} }),
    sftp({ _tag: "Rename", id: 8, oldPath: "/new.txt", newPath: "/made/new.txt" }),
    sftp({ _tag: "PosixRename", id: 9, oldPath: "/made/new.txt", newPath: "/made/renamed.txt" }),
    sftp({ _tag: "Hardlink", id: 10, oldPath: "/made/renamed.txt", newPath: "/made/hard.txt" }),
    sftp({ _tag: "Symlink", id: 11, linkPath: "/made/sym", targetPath: "renamed.txt" }),
    sftp({ _tag: "Setstat", id: 12, path: "/made/renamed.txt", attrs: { atime: 1, mtime: 2 } }),
    sftp({ _tag: "Remove", id: 13, path: "/made/hard.txt" }),
    sftp({ _tag: "Remove", id: 14, path: "/made/sym" }),
    sftp({ _tag: "Remove", id: 15, path: "/made/renamed.txt" }),
    sftp({ _tag: "Rmdir", id: 16, path: "/made" })
  ]
]

// ---------------------------------------------------------------------------------------------------------------

describe("server state machines ← mutated client messages (in memory)", () => {
  it("authentication", async () => {
    const tally = new Tally("server/auth")
    // the unmutated scripts succeed, before the mutations and after every batch of them
    const wellBehavedLogins = async () => {
      for (const script of authScripts) {
        const memory = await Effect.runPromise(memoryTransport({ role: "server" }))
        for (const m of script) memory.feed(Uint8Array.from(m))
        const exit = await Effect.runPromise(Effect.exit(ServerAuth.authenticate(memory.transport, authOptions, sessionPeer)))
        expect(Exit.isSuccess(exit), Exit.isFailure(exit) ? Cause.pretty(exit.cause) : "").toBe(true)
      }
    }
    await wellBehavedLogins()
    let cases = 0
    while (tally.mutated < scaled(TARGET)) {
      const batch = 2000
      await runSessions(tally, batch, 10 + cases, (rng) =>
        Effect.gen(function*() {
          const p = plan(rng, rng.pick(authScripts), authForeign, tally)
          const memory = yield* memoryTransport({ role: "server" })
          for (const m of p.payloads) memory.feed(m, p.mutated.has(m))
          const exit = yield* Effect.exit(Effect.timeoutOrElse(ServerAuth.authenticate(memory.transport, authOptions, sessionPeer), {
            duration: SESSION_BOUND,
            orElse: () => Effect.die(new Error("authentication did not end: a hang"))
          }))
          tally.delivered += memory.delivered()
          tally.mutated += memory.deliveredMutated()
          return { exit, describe: () => describePlan(p) }
        }))
      cases += batch
      await wellBehavedLogins()
    }
    tally.report()
    expect(tally.mutated).toBeGreaterThanOrEqual(scaled(TARGET))
    expect(tally.outcomes.get("success")).toBeGreaterThan(0)
    expect(tally.outcomes.get("ProtocolError")).toBeGreaterThan(0)
  }, scaledTimeout(180_000))

  it("connection protocol and sessions", async () => {
    const tally = new Tally("server/connection")
    const serveConnection = (memory: Effect.Success<ReturnType<typeof memoryTransport>>) =>
      Effect.scoped(Effect.gen(function*() {
        const connection = yield* Connection.make(memory.transport, {
          maxChannels: 4,
          windowSize: 64 * 1024,
          onChannelOpen: (incoming) =>
            incoming.channelType === "session"
              ? Effect.flatMap(incoming.accept(), (channel) => ServerSession.serve(channel, sessionPeer, sessionHandlers))
              : incoming.reject(N.ChannelOpenFailure.ADMINISTRATIVELY_PROHIBITED, "no"),
          onGlobalRequest: () => Effect.succeed(undefined)
        })
        const exit = yield* Effect.exit(Deferred.await(connection.closed))
        return { exit, connection }
      }))
    // the unmutated scripts run to the end of the input: channels confirmed, requests answered, cat echoes;
    // checked before the mutations and after every batch of them
    const wellBehavedConnections = async () => {
    for (const script of connectionScripts) {
      const memory = await Effect.runPromise(memoryTransport({ role: "server", idleTurns: 16, turnsBetween: 4 }))
      for (const m of script) memory.feed(Uint8Array.from(m))
      const { exit } = await Effect.runPromise(serveConnection(memory))
      expect(outcomeOf(exit, () => "control"), `the input ended, nothing went wrong before: ${Exit.isFailure(exit) ? Cause.pretty(exit.cause) : ""} sent ${memory.sent.map((m) => m[0]).join(",")}`).toBe("ConnectionClosed")
      expect(memory.delivered()).toBe(script.length)
      const sentTypes = memory.sent.map((m) => m[0])
      expect(sentTypes).toContain(N.CHANNEL_OPEN_CONFIRMATION)
      expect(sentTypes).toContain(N.CHANNEL_SUCCESS)
      expect(sentTypes).toContain(N.CHANNEL_DATA)
    }
    }
    await wellBehavedConnections()
    let cases = 0
    while (tally.mutated < scaled(TARGET)) {
      const batch = 1000
      await runSessions(tally, batch, 20 + cases, (rng) =>
        Effect.gen(function*() {
          const p = plan(rng, rng.pick(connectionScripts), connectionForeign, tally, rng.pick([0.15, 0.3, 0.6]))
          const memory = yield* memoryTransport({ role: "server", idleTurns: 16, turnsBetween: 4 })
          for (const m of p.payloads) memory.feed(m, p.mutated.has(m))
          const result = yield* Effect.exit(Effect.timeoutOrElse(serveConnection(memory), {
            duration: SESSION_BOUND,
            orElse: () => Effect.die(new Error("the connection did not end: a hang"))
          }))
          tally.delivered += memory.delivered()
          tally.mutated += memory.deliveredMutated()
          if (Exit.isFailure(result)) return { exit: result as unknown as Exit.Exit<never, SshError>, describe: () => describePlan(p) }
          const { exit, connection } = result.value
          if (connection.channelCount() !== 0) expect.fail(`channels left after the connection closed: ${connection.channelCount()}\n${describePlan(p)}`)
          return { exit, describe: () => describePlan(p) }
        }))
      cases += batch
      await wellBehavedConnections()
    }
    tally.report()
    expect(tally.mutated).toBeGreaterThanOrEqual(scaled(TARGET))
    expect(tally.outcomes.get("ProtocolError")).toBeGreaterThan(0)
  }, scaledTimeout(240_000))

  it("SFTP server on a real directory, jailed", async () => {
    const tally = new Tally("server/sftp")
    let cases = 0
    let replies = 0
    while (tally.mutated < scaled(TARGET)) {
      const batch = 500
      resetTree()
      await runSessions(tally, batch, 30 + cases, (rng) =>
        Effect.gen(function*() {
          const script = rng.pick(sftpScripts)
          const p = plan(rng, script, sftpScripts[0]!, tally, 0.4, 0.3)
          let pulled = 0
          let pulledMutated = 0
          function* input() {
            for (const packet of p.payloads) {
              pulled++
              if (p.mutated.has(packet)) pulledMutated++
              yield packet
            }
          }
          const framer = new Framer()
          const write = (bytes: Uint8Array) =>
            Effect.sync(() => {
              for (const body of framer.push(bytes)) {
                replies++
                SftpMessages.decode(body)
              }
            })
          const exit = yield* Effect.exit(Effect.timeoutOrElse(
            Effect.scoped(SftpServer.serve(Stream.fromIterable(input(), { chunkSize: 1 }), write, { root: sftpRoot, maxHandles: 8 }, { user: USER })),
            { duration: SESSION_BOUND, orElse: () => Effect.die(new Error("the SFTP session did not end: a hang")) }
          ))
          tally.delivered += pulled
          tally.mutated += pulledMutated
          return { exit, describe: () => describePlan(p) }
        }))
      cases += batch
      expect(fs.readFileSync(outsideMarker(), "utf8"), "nothing outside the root changes").toBe("must not change")
      expect(fs.readdirSync(sandbox).sort(), "nothing is created outside the root").toEqual(["outside.txt", "root"])
      // a well-behaved session on a fresh tree: every request answered, the session ends cleanly
      resetTree()
      for (const script of sftpScripts) {
        const framer = new Framer()
        const answers: Array<SftpMessages.SftpPacket> = []
        const write = (bytes: Uint8Array) => Effect.sync(() => {
          for (const body of framer.push(bytes)) answers.push(SftpMessages.decode(body))
        })
        const exit = await Effect.runPromise(Effect.exit(Effect.scoped(SftpServer.serve(Stream.fromIterable(script.map((m) => Uint8Array.from(m))), write, { root: sftpRoot, maxHandles: 8 }, { user: USER }))))
        expect(Exit.isSuccess(exit), Exit.isFailure(exit) ? Cause.pretty(exit.cause) : "").toBe(true)
        expect(answers.length, "one answer per request").toBe(script.length)
        expect(answers.filter((a) => a._tag === "Status" && a.code !== 0 && a.code !== 1), "no request of the valid script fails").toEqual([])
      }
    }
    tally.report()
    expect(tally.mutated).toBeGreaterThanOrEqual(scaled(TARGET))
    expect(replies, "the server answered requests").toBeGreaterThan(scaled(TARGET))
    expect(tally.outcomes.get("success")).toBeGreaterThan(0)
    expect(tally.outcomes.get("ProtocolError")).toBeGreaterThan(0)
  }, scaledTimeout(300_000))
})
