/**
 * The client's state machines above the transport, fed mutated server
 * messages in memory: authentication (`ClientAuth.authenticate` with public
 * key, password and keyboard-interactive), and the connection protocol with
 * a command run and an SFTP session (`Connection`, `Session`, `SftpClient`).
 * A scripted server answers what the client sends; each answer is mutated
 * with some probability, and unsolicited server messages are mixed in. Every
 * case must end in bounded time with success or a typed `SshError`.
 */
import { describe, expect, it } from "vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FileSystem from "effect/FileSystem"
import * as Stream from "effect/Stream"
import * as NodeSsh from "../../src/NodeSsh.ts"
import * as ClientAuth from "../../src/Auth/ClientAuth.ts"
import * as AuthMessages from "../../src/Auth/Messages.ts"
import * as PrivateKey from "../../src/Auth/PrivateKey.ts"
import * as Connection from "../../src/Channel/Connection.ts"
import * as ChannelMessages from "../../src/Channel/Messages.ts"
import * as Requests from "../../src/Channel/Requests.ts"
import * as Session from "../../src/Channel/Session.ts"
import * as SftpClient from "../../src/Sftp/SftpClient.ts"
import * as SftpMessages from "../../src/Sftp/Messages.ts"
import * as Extensions from "../../src/Sftp/Extensions.ts"
import { Framer } from "../../src/Sftp/Framer.ts"
import * as Messages from "../../src/Transport/Messages.ts"
import * as N from "../../src/Wire/MessageNumber.ts"
import { build } from "../../src/Wire/Writer.ts"
import type { SshError } from "../../src/SshError.ts"
import { memoryTransport, type MemoryTransport, type MemoryTransportOptions } from "./memory.ts"
import { FUZZ_SEED, mutate, Rng, scaled, scaledTimeout, Tally, typedProblem } from "./mutate.ts"

const TARGET = 100_000
const edKey = PrivateKey.generate("ssh-ed25519")

const outcomeOf = (exit: Exit.Exit<unknown, SshError>, what: () => string): string => {
  if (Exit.isSuccess(exit)) return "success"
  if (Cause.hasDies(exit.cause) || !Cause.hasFails(exit.cause)) expect.fail(`${what()}: a defect or interruption\n${Cause.pretty(exit.cause)}`)
  const error = exit.cause.reasons.find(Cause.isFailReason)!.error
  const problem = typedProblem(error)
  if (problem !== undefined) expect.fail(`${what()}: ${problem}`)
  return error.reason._tag
}

/**
 * A scripted server: `answer` maps what the client sent to the valid
 * replies; each reply is mutated with probability `p`, and with probability
 * `q` an unsolicited message from `foreign` (mutated or not) follows.
 */
const scriptedServer = (
  rng: Rng,
  tally: Tally,
  answer: (payload: Uint8Array) => ReadonlyArray<Uint8Array>,
  foreign: ReadonlyArray<Uint8Array>,
  log: Array<string>,
  p = 0.15,
  q = 0.05
) =>
(payload: Uint8Array, self: MemoryTransport) => {
  const replies = [...answer(payload)]
  if (rng.chance(q)) replies.splice(rng.int(replies.length + 1), 0, rng.pick(foreign))
  for (const reply of replies) {
    const mutated = rng.chance(p)
    const bytes = mutated ? mutate(rng, reply, foreign, tally) : Uint8Array.from(reply)
    if (log.length < 64) log.push(`${mutated ? "*" : ""}${Buffer.from(bytes.subarray(0, 40)).toString("hex")}`)
    self.feed(bytes, mutated)
  }
}

/** How long the layer may take to finish once its transport is dead before the case counts as a hang. */
const AFTER_DEATH_MS = 1000

/** The client answered a CLOSE for a channel it never saw confirmed, to recipient 0xffffffff (its unset remote id). */
const echoedCloseBeforeConfirmation = (memory: MemoryTransport) =>
  memory.sent.some((m) => m.length === 5 && m[0] === N.CHANNEL_CLOSE && m[1] === 0xff && m[2] === 0xff && m[3] === 0xff && m[4] === 0xff)

/**
 * Runs cases until `tally.mutated` reaches the target; `session` runs one case. A case still running a
 * second after its transport died is a hang: it fails the test.
 */
const runUntil = async (
  tally: Tally,
  seedOffset: number,
  session: (rng: Rng, log: Array<string>) => {
    readonly options: MemoryTransportOptions
    readonly program: (memory: MemoryTransport) => Effect.Effect<unknown, SshError>
  }
) => {
  const root = new Rng(FUZZ_SEED + seedOffset)
  for (let i = 0; tally.mutated < scaled(TARGET); i++) {
    const log: Array<string> = []
    const { options, program } = session(root.fork(i), log)
    const memory = Effect.runSync(memoryTransport(options))
    const timers: Array<ReturnType<typeof setTimeout>> = []
    const outcome = await Promise.race([
      Effect.runPromise(Effect.exit(program(memory))),
      new Promise<"hang">((resolve) => {
        timers.push(setTimeout(() => resolve("hang"), 15_000))
        void memory.dead.then(() => {
          timers.push(setTimeout(() => resolve("hang"), AFTER_DEATH_MS))
        })
      })
    ])
    for (const t of timers) clearTimeout(t)
    const describe = () => `case ${i} (seed ${FUZZ_SEED + seedOffset}): server sent ${log.join(" ")}`
    tally.cases++
    tally.delivered += memory.delivered()
    tally.mutated += memory.deliveredMutated()
    if (outcome === "hang") expect.fail(`${describe()}: the client did not finish after its transport died (a hang)`)
    tally.outcome(outcomeOf(outcome, describe))
  }
  tally.report()
}


// ---------------------------------------------------------------------------------------------------------------

const authMethods: ReadonlyArray<ClientAuth.AuthMethod> = [
  ClientAuth.privateKey(edKey),
  ClientAuth.password("pw"),
  ClientAuth.keyboardInteractive((request) => Effect.succeed(request.prompts.map(() => "123")))
]
const allMethods = ["publickey", "password", "keyboard-interactive"]

/** The server's valid answers to the client's authentication messages: a partial success or two, then success. */
const authAnswer = (rng: Rng) => {
  let round = 0
  return (payload: Uint8Array): ReadonlyArray<Uint8Array> => {
    round++
    if (payload[0] === N.SERVICE_REQUEST) return [Messages.encodeServiceAccept("ssh-userauth"), AuthMessages.encodeBanner("Hello\r\n")]
    if (payload[0] === N.USERAUTH_INFO_RESPONSE) return [AuthMessages.encodeSuccess()]
    if (payload[0] !== N.USERAUTH_REQUEST) return []
    const request = AuthMessages.decodeRequest(payload).request
    switch (request.method) {
      case "publickey": {
        const r = request as Extract<AuthMessages.AuthMethodRequest, { method: "publickey" }>
        return r.signature === undefined ? [AuthMessages.encodePkOk(r.algorithm, r.publicKey)] : [AuthMessages.encodeFailure(allMethods, true)]
      }
      case "password":
        return [round > 3 && rng.chance(0.3) ? AuthMessages.encodeSuccess() : AuthMessages.encodeFailure(allMethods, false)]
      case "keyboard-interactive":
        return [AuthMessages.encodeInfoRequest({ name: "otp", instruction: "Enter the code", prompts: [{ prompt: "Code: ", echo: false }] })]
      default:
        return [AuthMessages.encodeFailure(allMethods, false)]
    }
  }
}
const authForeign = [
  AuthMessages.encodeBanner("\x1b[2Jbanner"),
  AuthMessages.encodeSuccess(),
  AuthMessages.encodeFailure([], false),
  AuthMessages.encodePkOk("ssh-ed25519", edKey.publicKey.blob),
  AuthMessages.encodeInfoRequest({ name: "", instruction: "", prompts: [] }),
  Messages.encodeServiceAccept("ssh-connection"),
  ChannelMessages.channelOpenConfirmation(0, 1, 1024, 1024),
  Uint8Array.of(N.USERAUTH_PASSWD_CHANGEREQ, 0, 0, 0, 2, 104, 105, 0, 0, 0, 0)
]

// ---------------------------------------------------------------------------------------------------------------

const SERVER_CHANNEL = 9

const sftpReply = (body: Uint8Array, state: { readdirs: number }): ReadonlyArray<SftpMessages.SftpPacket> => {
  let packet: SftpMessages.SftpPacket
  try {
    packet = SftpMessages.decode(body)
  } catch {
    return []
  }
  if (packet._tag === "Init") return [{ _tag: "Version", version: 3, extensions: Extensions.OPENSSH_EXTENSIONS }]
  if (!("id" in packet)) return []
  const id = packet.id
  const attrs = { size: 5, uid: 1, gid: 1, permissions: 0o100644, atime: 1, mtime: 2 }
  switch (packet._tag) {
    case "Stat":
    case "Lstat":
    case "Fstat":
      return [{ _tag: "Attrs", id, attrs }]
    case "Realpath":
      return [{ _tag: "Name", id, entries: [{ filename: "/home/fuzz", longname: "", attrs: {} }] }]
    case "Open":
    case "Opendir":
      return [{ _tag: "Handle", id, handle: Uint8Array.of(0, 0, 0, 1) }]
    case "Readdir":
      if (state.readdirs++ > 0) return [{ _tag: "Status", id, code: 1, message: "EOF", language: "" }]
      return [{ _tag: "Name", id, entries: [{ filename: "a\x1b]52;c;Zm9v\x07", longname: "-rw-r--r-- 1 a a 5 Jan 1 00:00 a", attrs }] }]
    case "Read":
      return [packet.offset === 0 ? { _tag: "Data", id, data: new TextEncoder().encode("hello") } : { _tag: "Status", id, code: 1, message: "EOF", language: "" }]
    case "Limits":
      return [{ _tag: "ExtendedReply", id, data: Extensions.encodeLimits({ maxPacketLength: 34000, maxReadLength: 32768, maxWriteLength: 32768, maxOpenHandles: 10 }) }]
    default:
      return [{ _tag: "Status", id, code: 0, message: "ok", language: "" }]
  }
}

/** The server's valid answers to the client's connection messages. */
const connectionAnswer = () => {
  const framer = new Framer()
  const sftpState = { readdirs: 0 }
  let sftpChannel = -1
  const closedByUs = new Set<number>()
  const close = (to: number) => {
    closedByUs.add(to)
    return ChannelMessages.channelClose(to)
  }
  const channelData = (recipient: number, packets: ReadonlyArray<SftpMessages.SftpPacket>) =>
    packets.map((p) => ChannelMessages.channelData(recipient, SftpMessages.encode(p)))
  return (payload: Uint8Array): ReadonlyArray<Uint8Array> => {
    let m: ChannelMessages.ConnectionMessage
    try {
      m = ChannelMessages.decode(payload)
    } catch {
      return []
    }
    switch (m._tag) {
      case "ChannelOpen":
        return [ChannelMessages.channelOpenConfirmation(m.sender, SERVER_CHANNEL + m.sender, 256 * 1024, 32 * 1024)]
      case "GlobalRequest":
        return m.wantReply ? [ChannelMessages.requestSuccess()] : []
      case "ChannelRequest": {
        const to = m.recipient - SERVER_CHANNEL
        const ok = m.wantReply ? [ChannelMessages.channelSuccess(to)] : []
        if (m.request === "subsystem") {
          sftpChannel = to
          return ok
        }
        if (m.request !== "exec") return ok
        return [
          ...ok,
          ChannelMessages.channelData(to, new TextEncoder().encode("out\n")),
          ChannelMessages.channelData(to, new TextEncoder().encode("err\n"), 1),
          ChannelMessages.windowAdjust(to, 1000),
          ChannelMessages.channelRequest(to, "exit-status", false, Requests.encodeExitStatus(3)),
          ChannelMessages.channelRequest(to, "exit-signal", false, Requests.encodeExitSignal({ signal: "TERM", coreDumped: false, message: "terminated" })),
          ChannelMessages.channelEof(to),
          close(to)
        ]
      }
      case "Data": {
        const to = m.recipient - SERVER_CHANNEL
        if (to !== sftpChannel) return []
        try {
          return framer.push(m.data).flatMap((body) => channelData(to, sftpReply(body, sftpState)))
        } catch {
          return []
        }
      }
      case "Close": {
        const to = m.recipient - SERVER_CHANNEL
        return closedByUs.has(to) ? [] : [close(to)]
      }
      default:
        return []
    }
  }
}
const connectionForeign = [
  ChannelMessages.globalRequest("keepalive@openssh.com", true),
  ChannelMessages.globalRequest("hostkeys-00@openssh.com", false, build((w) => w.string(edKey.publicKey.blob))),
  ChannelMessages.channelOpen("forwarded-tcpip", 77, 1024, 1024, build((w) => w.string("127.0.0.1").uint32(80).string("1.1.1.1").uint32(1))),
  ChannelMessages.channelOpen("x11", 78, 1024, 1024),
  ChannelMessages.windowAdjust(0, 0xffffffff),
  ChannelMessages.channelData(0, new Uint8Array(10)),
  ChannelMessages.channelRequest(0, "keepalive@openssh.com", true),
  ChannelMessages.channelOpenFailure(1, 4, "resource shortage"),
  ChannelMessages.requestFailure()
]

/** Built once: providing the layer per case would cost more than the case. */
const nodeFileSystem = Effect.runSync(Effect.provide(Effect.service(FileSystem.FileSystem), NodeSsh.layer))

/** The client's program: run a command, then an SFTP session with a few operations. */
const clientProgram = (memory: MemoryTransport) =>
  Effect.scoped(Effect.gen(function*() {
    const connection = yield* Connection.make(memory.transport, { keepaliveIntervalMs: 0 })
    const result = yield* Session.run(connection, "echo hi")
    const sftp = yield* SftpClient.make(yield* Session.subsystem(connection, "sftp"))
    yield* sftp.stat("/etc/hosts")
    yield* sftp.realpath(".")
    yield* Stream.runDrain(sftp.readdir("/"))
    const content = yield* sftp.readFile("/file")
    return { result, content }
  })).pipe(Effect.provideService(FileSystem.FileSystem, nodeFileSystem))

describe("client state machines ← mutated server messages (in memory)", () => {
  it("authentication", async () => {
    const tally = new Tally("client/auth")
    const program = (memory: MemoryTransport) =>
      ClientAuth.authenticate(memory.transport, { username: "fuzz", methods: authMethods, onBanner: () => Effect.void }).pipe(Effect.provideService(FileSystem.FileSystem, nodeFileSystem))
    // control: without mutations the client authenticates
    {
      const rng = new Rng(1)
      const memory = await Effect.runPromise(memoryTransport({ role: "client", respond: scriptedServer(rng, tally, authAnswer(rng), authForeign, [], 0, 0) }))
      const exit = await Effect.runPromise(Effect.exit(program(memory)))
      expect(Exit.isSuccess(exit), Exit.isFailure(exit) ? Cause.pretty(exit.cause) : "").toBe(true)
    }
    await runUntil(tally, 100, (rng, log) => ({
      options: { role: "client", respond: scriptedServer(rng, tally, authAnswer(rng), authForeign, log, rng.pick([0.15, 0.3, 0.6]), 0.1) },
      program
    }))
    expect(tally.mutated).toBeGreaterThanOrEqual(scaled(TARGET))
    expect(tally.outcomes.get("success")).toBeGreaterThan(0)
    expect(tally.outcomes.get("ProtocolError")).toBeGreaterThan(0)
  }, scaledTimeout(180_000))

  it("connection protocol: a command and an SFTP session", async () => {
    const tally = new Tally("client/connection+sftp")
    // control: without mutations the command and the SFTP operations succeed
    {
      const rng = new Rng(2)
      const memory = await Effect.runPromise(memoryTransport({ role: "client", idleTurns: 32, respond: scriptedServer(rng, tally, connectionAnswer(), connectionForeign, [], 0, 0) }))
      const exit = await Effect.runPromise(Effect.exit(clientProgram(memory)))
      expect(Exit.isSuccess(exit), Exit.isFailure(exit) ? `${Cause.pretty(exit.cause)}\nclient sent ${memory.sent.slice(0, 40).map((m) => Buffer.from(m.subarray(0, 24)).toString("hex")).join(" ")}` : "").toBe(true)
      if (Exit.isSuccess(exit)) {
        expect(exit.value.result.stdout).toBe("out\n")
        expect(new TextDecoder().decode(exit.value.content)).toBe("hello")
      }
    }
    await runUntil(tally, 200, (rng, log) => ({
      options: { role: "client", idleTurns: 32, respond: scriptedServer(rng, tally, connectionAnswer(), connectionForeign, log, rng.pick([0.1, 0.3, 0.6]), 0.05) },
      program: clientProgram
    }))
    expect(tally.mutated).toBeGreaterThanOrEqual(scaled(TARGET))
    expect(tally.outcomes.get("success")).toBeGreaterThan(0)
  }, scaledTimeout(300_000))
})

describe("client connection ← a CHANNEL_CLOSE answering CHANNEL_OPEN (found by the fuzzer)", () => {
  // The server answers the client's CHANNEL_OPEN with CHANNEL_CLOSE for it (no confirmation, no failure): a
  // message about a channel whose open it has not answered is a protocol error, and no CLOSE goes back.
  it("openChannel ends with a typed error", async () => {
    const memory = Effect.runSync(memoryTransport({
      role: "client",
      respond: (payload, self) => {
        if (payload[0] === N.CHANNEL_OPEN) {
          const open = ChannelMessages.decode(payload) as Extract<ChannelMessages.ConnectionMessage, { _tag: "ChannelOpen" }>
          self.feed(ChannelMessages.channelClose(open.sender))
        }
      }
    }))
    const program = Effect.scoped(Effect.gen(function*() {
      const connection = yield* Connection.make(memory.transport, { keepaliveIntervalMs: 0 })
      yield* connection.openChannel("session")
    }))
    const outcome = await Promise.race([
      Effect.runPromise(Effect.exit(program)),
      new Promise<"hang">((resolve) => setTimeout(() => resolve("hang"), 2000).unref())
    ])
    expect(outcome, "openChannel returned").not.toBe("hang")
    if (outcome !== "hang") expect(outcomeOf(outcome, () => "openChannel")).not.toBe("success")
    expect(echoedCloseBeforeConfirmation(memory), "no CLOSE to recipient 0xffffffff").toBe(false)
  })
})
