/**
 * The transport state machine — version exchange, key exchange, strict kex,
 * packet protection, rekey, the generic messages — fed mutated packets by a
 * scripted peer over an in-memory socket: our real `Transport` in both roles,
 * real ciphers and a real curve25519 exchange per connection, many mutated
 * packets per connection.
 *
 * Per connection, either one of the handshake packets is mutated (a version
 * line, the KEXINIT, the kex message, NEWKEYS), or the handshake completes
 * and a stream of transport-level payloads follows, each mutated with some
 * probability and sealed with valid keys (so the payload parsers and the
 * state machine see them), plus now and then a packet mutated after sealing
 * (bit flips in the ciphertext or tag, a forged length), a valid rekey, or
 * an out-of-order message. Every connection must end with a typed error (or
 * the peer's clean DISCONNECT) in bounded time; the packets the transport
 * read are counted from its own statistics.
 */
import { describe, expect, it } from "vitest"
import { randomBytes } from "node:crypto"
import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Scope from "effect/Scope"
import * as Transport from "../../src/Transport/Transport.ts"
import * as Cipher from "../../src/Transport/Cipher.ts"
import * as Kex from "../../src/Transport/Kex.ts"
import * as Version from "../../src/Transport/Version.ts"
import { PacketReader, PacketWriter } from "../../src/Transport/Packet.ts"
import { concat } from "../../src/internal/bytes.ts"
import * as Algorithms from "../../src/Transport/Algorithms.ts"
import * as Messages from "../../src/Transport/Messages.ts"
import * as PrivateKey from "../../src/Auth/PrivateKey.ts"
import * as AuthMessages from "../../src/Auth/Messages.ts"
import * as ChannelMessages from "../../src/Channel/Messages.ts"
import { hostKeySigner } from "../../src/Server.ts"
import * as N from "../../src/Wire/MessageNumber.ts"
import type { SshError } from "../../src/SshError.ts"
import { defaultKexInit, latin1, SshPeer } from "./peer.ts"
import { socketPair } from "./memorySocket.ts"
import { FUZZ_SEED, mutate, mutateWith, Rng, scaled, scaledTimeout, Tally, typedProblem } from "./mutate.ts"

const TARGET = 100_000
/**
 * Mutated packets our whole transport (one real key exchange per connection) must read per role, at scale 1:
 * a connection costs ~10 ms and reads ~3.5 mutated packets before one of them is fatal, so CI affords fewer
 * than the pure pieces get; a release run at scale 20 reads 120 000 per role.
 */
const SHELL_TARGET = 6_000
const hostKey = PrivateKey.generate("ssh-ed25519")
const algorithms = Algorithms.resolve({})
/** Handshake packets each side reads: KEXINIT, the kex message, NEWKEYS. */
const HANDSHAKE_PACKETS = 3
/** Post-handshake packets a connection sends at most. */
const STREAM_LENGTH = 60

const ciphers = [
  { cipher: "aes128-gcm@openssh.com", mac: "hmac-sha2-256" },
  { cipher: "chacha20-poly1305@openssh.com", mac: "hmac-sha2-256" },
  { cipher: "aes256-ctr", mac: "hmac-sha2-256-etm@openssh.com" },
  { cipher: "aes128-ctr", mac: "hmac-sha2-512" }
]

/** Transport-level payloads a peer may send after the handshake (valid, before mutation). */
const streamCorpus = (role: "client" | "server"): ReadonlyArray<Uint8Array> => [
  Messages.encodeIgnore(randomBytes(16)),
  Messages.encodeIgnore(new Uint8Array(0)),
  Messages.encodeDebug({ alwaysDisplay: true, message: "debug \x1b[31mred", language: "en" }),
  Messages.encodeUnimplemented(3),
  Uint8Array.of(N.NEWCOMPRESS, 1, 2, 3),
  Uint8Array.of(15),
  Messages.encodeExtInfo([["server-sig-algs", latin1("ssh-ed25519,rsa-sha2-256")], ["publickey-hostbound@openssh.com", latin1("0")]]),
  role === "client" ? Messages.encodeServiceRequest("ssh-userauth") : Messages.encodeServiceAccept("ssh-userauth"),
  role === "client"
    ? AuthMessages.encodeRequest({ user: "u", service: "ssh-connection", request: { method: "none" } })
    : AuthMessages.encodeBanner("hello"),
  ChannelMessages.channelData(0, randomBytes(32)),
  ChannelMessages.globalRequest("keepalive@openssh.com", true),
  Uint8Array.of(200, 1, 2)
]
/** Transport messages out of order after the handshake: each is fatal, as it must be. */
const outOfOrder: ReadonlyArray<Uint8Array> = [
  Messages.encodeNewKeys(),
  Messages.encodeKexEcdhInit({ clientPublic: randomBytes(32) }),
  Messages.encodeKexEcdhReply({ hostKey: hostKey.publicKey.blob, serverPublic: randomBytes(32), signature: randomBytes(83) }),
  Uint8Array.of(N.KEX_DH_GEX_REQUEST, 0, 0, 8, 0)
]

const fatalExpected = new Set(["ProtocolError", "MacMismatch", "NegotiationFailed", "PeerDisconnected", "ConnectionClosed", "KeyParseFailed", "HostKeySignatureInvalid", "LimitExceeded"])

interface ConnectionResult {
  readonly outcome: string
  readonly mutatedDelivered: number
  readonly delivered: number
}

/**
 * One connection: our transport in `role`, the peer in the other, the
 * handshake, then the mutated stream; returns what the transport read.
 */
const runConnection = async (rng: Rng, role: "client" | "server", tally: Tally, caseName: string): Promise<ConnectionResult> => {
  const pair = socketPair()
  const peerRole = role === "server" ? "client" : "server"
  const suite = rng.pick(ciphers)
  const kexInit = defaultKexInit(peerRole, {
    ciphersClientToServer: [suite.cipher],
    ciphersServerToClient: [suite.cipher],
    macsClientToServer: [suite.mac],
    macsServerToClient: [suite.mac],
    kexAlgorithms: rng.chance(0.8)
      ? ["curve25519-sha256", peerRole === "server" ? "kex-strict-s-v00@openssh.com" : "kex-strict-c-v00@openssh.com"]
      : ["curve25519-sha256"]
  })
  const peer = new SshPeer(pair.peer, peerRole, { hostKey, idleMs: 2000 })
  const scope = Scope.makeUnsafe()
  const transportReady = Deferred.makeUnsafe<Transport.Transport, SshError>()
  const config: Transport.TransportConfig = role === "server"
    ? { role, algorithms, hostKeys: [hostKeySigner(hostKey)] }
    : { role, algorithms, verifyHostKey: () => Effect.void }
  // our transport, its upper layer draining everything it hands up
  const fiber = Effect.runFork(Effect.gen(function*() {
    const transport = yield* Transport.make(pair.socket, config)
    Deferred.doneUnsafe(transportReady, Effect.succeed(transport))
    yield* Effect.forkIn(Effect.forever(transport.receiveAll), scope)
    return yield* Deferred.await(transport.closed)
  }).pipe(Scope.provide(scope)))
  // once the transport is dead its socket closes (as the server's connection scope does), so the peer stops waiting
  const ended = Effect.runPromise(Fiber.await(fiber))
  const closedScope = ended.then(() => Effect.runPromise(Scope.close(scope, Exit.void)))

  // which handshake packet (if any) is mutated: 0 version line, 1 KEXINIT, 2 kex message, 3 NEWKEYS
  const handshakeTarget = rng.chance(0.25) ? rng.int(4) : -1
  const sentAfter: Array<boolean> = []
  const mutatedPayload = (payload: Uint8Array) => mutate(rng, payload, streamCorpus(peerRole), tally)
  try {
    if (handshakeTarget === 0) {
      const line = latin1(`${peer.version}\r\n`)
      peer.sendRaw(rng.chance(0.5) ? mutateWith(rng, line, rng.pick(["flip", "byte", "insert", "delete", "truncate", "extend"]), []) : latin1("SSH-2.0-\x1b]0;title\x07\r\n"))
      await peer.readVersion()
    } else {
      await peer.exchangeVersions()
    }
    if (handshakeTarget === 1) {
      peer.send(mutatedPayload(kexInit))
      await peer.expect(N.KEXINIT)
      throw new Error("mutated KEXINIT sent")
    }
    // the peer's own handshake steps, sequenced by a TransportMachine of its own
    await peer.exchangeKexInit(kexInit)
    if (peerRole === "client") {
      const result = await peer.clientKex(handshakeTarget === 2 ? mutatedPayload : undefined)
      await peer.expectNewKeys(result)
      if (handshakeTarget === 3) {
        peer.send(mutatedPayload(Messages.encodeNewKeys()))
        throw new Error("mutated NEWKEYS sent")
      }
      peer.sendNewKeys(result)
    } else {
      const result = await peer.serverKexReply(handshakeTarget === 2 ? mutatedPayload : undefined)
      if (handshakeTarget === 2) throw new Error("mutated kex reply sent")
      if (handshakeTarget === 3) {
        peer.send(mutatedPayload(Messages.encodeNewKeys()))
        throw new Error("mutated NEWKEYS sent")
      }
      peer.sendNewKeys(result)
      await peer.expectNewKeys(result)
    }
    // the stream: many packets on one connection
    const corpus = streamCorpus(peerRole)
    const length = 1 + rng.int(STREAM_LENGTH)
    for (let i = 0; i < length && !peer.pipe.isClosed; i++) {
      const roll = rng.next() / 0x1_0000_0000
      if (roll < 0.02) {
        // mutated after sealing: the opener sees a forged packet
        const sealed = peer.writer.seal(rng.pick(corpus))
        peer.sendRaw(mutateWith(rng, sealed, rng.pick(["flip", "length", "truncate", "extend", "byte"]), []), true)
        sentAfter.push(true)
        tally.strategy("sealed-packet")
        break
      }
      if (roll < 0.03) {
        peer.send(rng.pick(outOfOrder))
        sentAfter.push(true)
        tally.strategy("out-of-order")
        break
      }
      const payload = rng.pick(corpus)
      const mutated = rng.chance(0.5)
      peer.send(mutated ? mutatedPayload(payload) : Uint8Array.from(payload))
      sentAfter.push(mutated)
      // let the transport read now and then, so a fatal packet ends the stream early
      if (i % 8 === 7) await new Promise((r) => setImmediate(r))
    }
    if (!peer.pipe.isClosed) peer.send(Messages.encodeDisconnect({ code: N.DisconnectReason.BY_APPLICATION, description: "done" }))
  } catch {
    // the transport may end the conversation at any point: what matters is how it ended
  }
  // The peer leaves once the transport is done with what it sent, or has been waiting for more for a moment
  // (a transport waiting on a silent peer is the server's login grace time's business, not the transport's).
  // Leaving at once would make the transport's DISCONNECT for a bad packet wait on a pipe nobody reads.
  await Promise.race([ended, new Promise((resolve) => setTimeout(resolve, 25))])
  pair.peer.end()

  const exit = await Promise.race([
    ended,
    new Promise<"hang">((resolve) => setTimeout(() => resolve("hang"), 10_000).unref())
  ])
  peer.pipe.destroy()
  await Promise.race([closedScope, new Promise((resolve) => setTimeout(resolve, 2000).unref())])
  if (exit === "hang") expect.fail(`${caseName}: the transport did not end within 10 s`)
  if (Exit.isSuccess(exit)) expect.fail(`${caseName}: closed cannot succeed`)
  if (Cause.hasDies(exit.cause)) expect.fail(`${caseName}: a defect\n${Cause.pretty(exit.cause)}`)
  const failure = exit.cause.reasons.find(Cause.isFailReason)
  if (failure === undefined) expect.fail(`${caseName}: ended without a typed error\n${Cause.pretty(exit.cause)}`)
  const error = failure.error as SshError
  const problem = typedProblem(error)
  if (problem !== undefined) expect.fail(`${caseName}: ${problem}`)
  if (!fatalExpected.has(error.reason._tag)) expect.fail(`${caseName}: unexpected reason ${error.reason._tag}: ${error.message}`)
  const transport = Deferred.isDoneUnsafe(transportReady) ? await Effect.runPromise(Deferred.await(transportReady)) : undefined
  let mutatedDelivered = 0
  let delivered = 0
  if (transport !== undefined) {
    // the transport's own count of packets read, handshake excluded (a packet that failed to open is not counted)
    delivered = Math.min(sentAfter.length, Math.max(0, transport.stats().packetsIn - HANDSHAKE_PACKETS))
    for (let i = 0; i < delivered; i++) if (sentAfter[i]) mutatedDelivered++
  }
  const clean = error.reason._tag === "PeerDisconnected" && (error.reason as { code?: number }).code === N.DisconnectReason.BY_APPLICATION
  const outcome = transport === undefined ? `handshake: ${error.reason._tag}` : clean ? "clean DISCONNECT" : error.reason._tag
  return { outcome, mutatedDelivered, delivered }
}

const fuzzRole = async (role: "client" | "server", seedOffset: number) => {
  const tally = new Tally(`transport/${role}`)
  const root = new Rng(FUZZ_SEED + seedOffset)
  for (let i = 0; tally.mutated < scaled(SHELL_TARGET); i++) {
    const result = await runConnection(root.fork(i), role, tally, `${role} connection ${i} (seed ${FUZZ_SEED + seedOffset})`)
    tally.cases++
    tally.delivered += result.delivered
    tally.mutated += result.mutatedDelivered
    tally.outcome(result.outcome)
  }
  tally.report()
  expect(tally.mutated).toBeGreaterThanOrEqual(scaled(SHELL_TARGET))
  const outcomes = [...tally.outcomes.keys()]
  expect(outcomes.some((o) => o.startsWith("handshake: ")), "handshake mutations reached the transport").toBe(true)
  expect(tally.outcomes.get("clean DISCONNECT"), "some connections survive their whole mutated stream").toBeGreaterThan(0)
  expect(tally.outcomes.get("MacMismatch"), "forged packets are caught").toBeGreaterThan(0)
  return tally
}

// ---------------------------------------------------------------------------------------------------------------
// The pure pieces of the transport, where a mutated packet costs microseconds
// ---------------------------------------------------------------------------------------------------------------

const allCiphers = [
  ...ciphers,
  { cipher: "aes256-gcm@openssh.com", mac: "" },
  { cipher: "aes192-ctr", mac: "hmac-sha1" },
  { cipher: "aes128-ctr", mac: "hmac-sha2-256-etm@openssh.com" }
]

/** Random keys for a cipher suite (both directions use the same: one side seals, the other opens). */
const suiteKeys = (rng: Rng, suite: { readonly cipher: string; readonly mac: string }): Cipher.DirectionKeys => {
  const spec = Cipher.cipherSpec(suite.cipher)!
  const mac = spec.aead ? undefined : Cipher.macSpec(suite.mac)
  return { cipher: suite.cipher, mac: spec.aead ? "none" : suite.mac, key: rng.bytes(spec.keyLength), iv: rng.bytes(spec.ivLength), macKey: rng.bytes(mac?.keyLength ?? 0) }
}

describe("transport pieces ← mutated bytes (pure)", () => {
  it("the packet reader under every cipher: forged, cut and stretched packets in random chunks", () => {
    const tally = new Tally("transport/packet-reader")
    const root = new Rng(FUZZ_SEED + 500)
    const corpus = streamCorpus("server")
    const plain = { cipher: "none", mac: "none" }
    for (let c = 0; tally.mutated < scaled(TARGET); c++) {
      const rng = root.fork(c)
      const suite = rng.chance(0.15) ? plain : rng.pick(allCiphers)
      const keys = suite === plain ? undefined : suiteKeys(rng, suite)
      const writer = new PacketWriter(keys ? Cipher.makeSealer(keys, (n) => rng.bytes(n)) : Cipher.plainSealer((n) => rng.bytes(n)))
      const reader = new PacketReader(keys ? Cipher.makeOpener(keys) : Cipher.plainOpener())
      const packets = Array.from({ length: 2 + rng.int(8) }, () => writer.seal(rng.pick(corpus)))
      const target = rng.int(packets.length)
      packets[target] = mutateWith(rng, packets[target]!, rng.pick(["flip", "flip", "length", "length", "truncate", "extend", "byte", "insert", "delete", "splice"]), packets, 0)
      const stream = concat(packets)
      let read = 0
      let outcome = "read all"
      try {
        for (let at = 0; at < stream.length;) {
          const n = 1 + rng.int(Math.min(stream.length - at, rng.chance(0.5) ? 16 : 4096))
          reader.push(stream.subarray(at, at + n))
          at += n
          for (let payload = reader.next(); payload !== undefined; payload = reader.next()) read++
        }
        if (reader.buffered > 0) outcome = "waiting for more"
      } catch (e) {
        const problem = typedProblem(e)
        if (problem !== undefined) expect.fail(`packet reader, case ${c} (${suite.cipher}): ${problem}\n${Buffer.from(stream).toString("hex")}`)
        outcome = (e as { _tag: string })._tag
        read++
      }
      tally.cases++
      tally.delivered += read
      // the mutated packet was reached when every packet before it was read
      if (read > target) tally.mutated++
      tally.outcome(outcome)
    }
    tally.report()
    expect(tally.mutated).toBeGreaterThanOrEqual(scaled(TARGET))
    expect(tally.outcomes.get("MacMismatch")).toBeGreaterThan(0)
    expect(tally.outcomes.get("ProtocolError")).toBeGreaterThan(0)
  }, scaledTimeout(120_000))

  it("the version reader: mutated preambles and identification lines", () => {
    const tally = new Tally("transport/version")
    const root = new Rng(FUZZ_SEED + 600)
    const valid = [
      latin1("SSH-2.0-OpenSSH_9.6\r\n"),
      latin1("banner line\r\nanother\r\nSSH-2.0-Server comment here\r\n\x00\x00\x01\x0c"),
      latin1("SSH-1.99-Compat\n"),
      latin1("SSH-2.0-x\r\n")
    ]
    for (let c = 0; c < scaled(TARGET); c++) {
      const rng = root.fork(c)
      const bytes = mutate(rng, rng.pick(valid), valid, tally)
      const reader = new Version.VersionReader({ allowPreamble: rng.chance(0.5) })
      let outcome = "waiting for more"
      try {
        for (let at = 0; at < bytes.length; at += 7) {
          reader.push(bytes.subarray(at, at + 7))
          const exchange = reader.next()
          if (exchange !== undefined) {
            outcome = "version"
            // what reaches the exchange hash and the logs: no line ends, no NUL
            expect(exchange.version).not.toMatch(/[\r\n\0]/)
            break
          }
        }
      } catch (e) {
        const problem = typedProblem(e)
        if (problem !== undefined) expect.fail(`version reader, case ${c}: ${problem}\n${Buffer.from(bytes).toString("hex")}`)
        outcome = (e as { _tag: string })._tag
      }
      tally.cases++
      tally.delivered++
      tally.mutated++
      tally.outcome(outcome)
    }
    tally.report()
    expect(tally.outcomes.get("version")).toBeGreaterThan(0)
    expect(tally.outcomes.get("ProtocolError")).toBeGreaterThan(0)
  }, scaledTimeout(60_000))

  it("the key exchange machines of every method: mutated kex messages, both roles", () => {
    const tally = new Tally("transport/kex-machines")
    const root = new Rng(FUZZ_SEED + 700)
    const signer = { blob: hostKey.publicKey.blob, sign: (h: Uint8Array) => hostKey.sign(h) }
    // the finite-field methods cost milliseconds per valid step (group18: 8192-bit), so they come rarely
    const methods = Kex.kexNames.flatMap((name) =>
      /group1[68]/.test(name) ? [name] : name.startsWith("diffie-hellman") ? Array(4).fill(name) : Array(20).fill(name))
    const clientKexInit = defaultKexInit("client")
    const serverKexInit = defaultKexInit("server")
    for (let c = 0; c < scaled(5_000); c++) {
      const rng = root.fork(c)
      const algorithm = rng.pick(methods)
      const inputs = { clientVersion: "SSH-2.0-a", serverVersion: "SSH-2.0-b", clientKexInit, serverKexInit, algorithm }
      let outcome = "done"
      try {
        const client = Kex.makeClientKex({ ...inputs, role: "client" }, { gexMin: 2048, gexPreferred: 2048, gexMax: 2048 })
        const server = Kex.makeServerKex({ ...inputs, role: "server" }, signer)
        // run the exchange, mutating one message of it on its way
        const mutateAt = rng.int(algorithm.includes("group-exchange") ? 4 : 2)
        let step = 0
        let toServer = [...client.start()]
        for (let round = 0; round < 4 && toServer.length > 0; round++) {
          const toClient: Array<Uint8Array> = []
          for (const m of toServer) {
            const bytes = step++ === mutateAt ? mutate(rng, m, toServer, tally) : m
            if (step - 1 === mutateAt) tally.mutated++
            tally.delivered++
            const answer = server.receive(bytes)
            toClient.push(...answer.send)
          }
          toServer = []
          for (const m of toClient) {
            const bytes = step++ === mutateAt ? mutate(rng, m, toClient, tally) : m
            if (step - 1 === mutateAt) tally.mutated++
            tally.delivered++
            const answer = client.receive(bytes)
            toServer.push(...answer.send)
          }
        }
      } catch (e) {
        const problem = typedProblem(e)
        if (problem !== undefined) expect.fail(`kex ${algorithm}, case ${c}: ${problem}`)
        outcome = (e as { _tag: string })._tag
      }
      tally.cases++
      tally.outcome(outcome)
    }
    tally.report()
    expect(tally.mutated).toBeGreaterThanOrEqual(scaled(5_000))
    expect(tally.outcomes.get("ProtocolError")).toBeGreaterThan(0)
  }, scaledTimeout(180_000))
})

describe("transport ← mutated packets (in memory, real ciphers and key exchange)", () => {
  it("our server's transport", async () => {
    await fuzzRole("server", 300)
  }, scaledTimeout(300_000))

  it("our client's transport", async () => {
    await fuzzRole("client", 400)
  }, scaledTimeout(300_000))
})
