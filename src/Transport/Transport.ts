/**
 * The SSH transport (RFC 4253) as a scoped resource over any duplex byte
 * stream: version exchange, key exchange and re-exchange, packet protection,
 * strict kex, ext-info, compression, and the generic messages (IGNORE,
 * DEBUG, UNIMPLEMENTED, DISCONNECT).
 *
 * One reader fiber per connection reads the socket, answers transport
 * messages itself (so key re-exchange progresses whatever the upper layers are
 * doing) and hands every other payload, in order, to a small bounded queue
 * read by `receive`. Packets are sealed synchronously in order into an
 * outbox that one writer fiber drains; from our KEXINIT until our NEWKEYS
 * only transport messages are sealed and the upper layer's sends wait. What
 * may happen when (the sequencing) is decided by the pure `TransportMachine`;
 * the other pure pieces (framing, ciphers, kex math, negotiation, message
 * codecs) live in sibling modules. This module is the shell that runs them:
 * socket, fibers, latches, outbox, crypto objects, and the time from `Clock`.
 *
 * @since 0.1.0
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Latch from "effect/Latch"
import * as Queue from "effect/Queue"
import * as Scope from "effect/Scope"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import type * as Socket from "effect/socket/Socket"
import * as SshError from "../SshError.ts"
import * as N from "../Wire/MessageNumber.ts"
import { Reader } from "../Wire/Reader.ts"
import * as Version from "./Version.ts"
import * as Cipher from "./Cipher.ts"
import * as Compression from "./Compression.ts"
import { PacketReader, PacketWriter } from "./Packet.ts"
import * as Messages from "./Messages.ts"
import * as Negotiation from "./Negotiation.ts"
import * as Kex from "./Kex.ts"
import { deriveKey } from "./KeyDerivation.ts"
import { hostKeyDefaults } from "./Algorithms.ts"
import { equal } from "../internal/bytes.ts"
import { adopt } from "../internal/ownedBuffers.ts"
import * as Telemetry from "../internal/telemetry.ts"
import type { Payload } from "../internal/packetLayout.ts"
import * as Certificate from "../Auth/Certificate.ts"
import * as TransportMachine from "./TransportMachine.ts"

/** Which end of the connection we are. */
export type Role = "client" | "server"

/** Algorithm preferences, most preferred first. */
export interface Algorithms {
  readonly kex: ReadonlyArray<string>
  readonly hostKey: ReadonlyArray<string>
  readonly cipher: ReadonlyArray<string>
  readonly mac: ReadonlyArray<string>
  /**
   * Compression methods, both directions. Default by role, as OpenSSH: a
   * client offers `none`, a server `none,zlib@openssh.com` (`Compression`).
   */
  readonly compression?: ReadonlyArray<string> | undefined
}

/** A host key the server can sign with. */
export interface HostKeySigner {
  /** The public key blob (K_S). */
  readonly blob: Uint8Array
  /** Signature algorithms this key can produce (rsa: rsa-sha2-512, rsa-sha2-256). */
  readonly algorithms: ReadonlyArray<string>
  /** Signs the exchange hash with the negotiated algorithm, returning a signature blob. */
  readonly sign: (data: Uint8Array, algorithm: string) => Uint8Array
}

/** What the transport needs to run one connection. */
export interface TransportConfig {
  readonly role: Role
  readonly algorithms: Algorithms
  /** Rekey after this many bytes in either direction (default 1 GiB). */
  readonly rekeyBytes?: number | undefined
  /** Rekey after this many milliseconds (default 1 hour). */
  readonly rekeyIntervalMs?: number | undefined
  /** Client: checks the server's host key (policy: known_hosts, fingerprint, callback). */
  readonly verifyHostKey?: ((blob: Uint8Array, algorithm: string) => Effect.Effect<void, SshError.SshError>) | undefined
  /** Server: the host keys to offer. */
  readonly hostKeys?: ReadonlyArray<HostKeySigner> | undefined
  /** Client: group-exchange sizes (bits). */
  readonly gex?: { readonly gexMin?: number; readonly gexPreferred?: number; readonly gexMax?: number } | undefined
  /** Our identification string (without CR LF). */
  readonly version?: string | undefined
  /** What a peer can make this transport hold; each field defaults to `defaultLimits`' value. */
  readonly limits?: Partial<TransportLimits> | undefined
}

/**
 * Bounds on the memory and work a peer can cost us, in bytes where they are
 * sizes. Before `authenticated` the tighter pre-authentication bounds apply:
 * an unauthenticated peer has no channels, so nothing it may legitimately
 * send is large.
 *
 * The reader never waits for the upper layer while a key exchange runs (the
 * upper layer may itself be waiting for it to finish); otherwise it stops
 * reading the socket once `incomingBytes` of payloads wait to be taken, or once
 * `outboxBytes` of our packets wait for a peer that does not read them, so a
 * flooding peer meets TCP backpressure instead of growing our memory.
 */
export interface TransportLimits {
  /** Largest packet on the wire before authentication: 35000, the size RFC 4253 §6.1 says every implementation must accept. */
  readonly preAuthPacketBytes: number
  /** Payload bytes waiting for the upper layer at which the reader pauses, before authentication (64 KiB). */
  readonly preAuthIncomingBytes: number
  /** The same after authentication (4 MiB): channel data is bounded by the windows we grant besides. */
  readonly incomingBytes: number
  /**
   * Payload bytes waiting at which a peer that keeps sending during a key exchange (when the reader may not
   * pause) is disconnected with `LimitExceeded`: 16 times the pausing bound of the phase.
   */
  readonly kexBacklogFactor: number
  /** Bytes of our sealed packets waiting for the socket at which the reader pauses (2 MiB). */
  readonly outboxBytes: number
  /** Key exchanges a peer may start before authentication, the first one included (3). */
  readonly preAuthKex: number
}

/**
 * The limits used when a config sets none.
 *
 * @example
 * ```ts
 * Transport.make(socket, { role: "server", algorithms, hostKeys, limits: { preAuthKex: 1 } })
 * defaultLimits.preAuthPacketBytes // 35000
 * ```
 */
export const defaultLimits: TransportLimits = {
  preAuthPacketBytes: 35000,
  preAuthIncomingBytes: 64 * 1024,
  incomingBytes: 4 * 1024 * 1024,
  kexBacklogFactor: 16,
  outboxBytes: 2 * 1024 * 1024,
  preAuthKex: 3
}

/** What a queued payload costs: its bytes and a share for the bookkeeping, so floods of tiny messages count. */
const queuedCost = (payload: Uint8Array): number => payload.length + 64

/**
 * A live transport.
 *
 * @example
 * ```ts
 * const transport = yield* Transport.make(socket, { role: "client", algorithms, verifyHostKey })
 * yield* transport.send(serviceRequest("ssh-userauth"))
 * const reply = yield* transport.receive
 * ```
 */
export interface Transport {
  readonly role: Role
  /** H of the first key exchange. */
  readonly sessionId: Uint8Array
  /** The peer's identification line. */
  readonly peerVersion: string
  /** Lines the server sent before its identification line. */
  readonly preamble: ReadonlyArray<string>
  /** The server's host key blob (K_S) from the last key exchange. */
  readonly hostKey: () => Uint8Array
  /** The algorithms in use. */
  readonly negotiated: () => Negotiation.Negotiated
  /** EXT_INFO extensions received from the peer (e.g. server-sig-algs). */
  readonly extensions: () => ReadonlyMap<string, Uint8Array>
  /** Next payload that is not a transport message, in order. */
  readonly receive: Effect.Effect<Uint8Array, SshError.SshError>
  /** Every such payload waiting (at least one), in order: the connection's pump takes them in batches. */
  readonly receiveAll: Effect.Effect<ReadonlyArray<Uint8Array>, SshError.SshError>
  /** Sends a payload (whole, or in parts sealed back to back); waits while a key exchange is running. */
  readonly send: (payload: Payload) => Effect.Effect<void, SshError.SshError>
  /** Starts a key re-exchange (unless one runs) and waits for it to finish. */
  readonly rekey: Effect.Effect<void, SshError.SshError>
  /** Sends SSH_MSG_IGNORE with the given data (traffic padding; allowed even during a key exchange). */
  readonly sendIgnore: (data: Uint8Array) => Effect.Effect<void, SshError.SshError>
  /**
   * Tells the transport the peer has authenticated: the pre-authentication
   * limits (packet size, queued bytes, key exchanges) give way to the regular ones.
   */
  readonly authenticated: Effect.Effect<void>
  /** Sends DISCONNECT and closes. */
  readonly disconnect: (code?: number, description?: string) => Effect.Effect<void>
  /** Completes with the reason once the transport is dead. */
  readonly closed: Deferred.Deferred<never, SshError.SshError>
  /** Epoch milliseconds of the last packet received. */
  readonly lastReceivedAt: () => number
  /** Counters. */
  readonly stats: () => TransportStats
}

/** Transport counters. */
export interface TransportStats {
  readonly bytesIn: number
  readonly bytesOut: number
  readonly packetsIn: number
  readonly packetsOut: number
  readonly kexCount: number
}

const ONE_GIB = 1024 * 1024 * 1024
const ONE_HOUR = 60 * 60 * 1000
/** Bytes of sealed packets the upper layer may queue before `send` waits for the socket. */
const OUTBOX_HIGH = 1024 * 1024

const systemRandom = (n: number): Uint8Array => {
  const out = new Uint8Array(n)
  for (let o = 0; o < n; o += 65536) globalThis.crypto.getRandomValues(out.subarray(o, Math.min(n, o + 65536)))
  return out
}

const fail = (reason: SshError.SshErrorReason) => Effect.fail(new SshError.SshError({ reason }))

/**
 * Runs a pure core function: a thrown reason is the typed failure, anything
 * else thrown (a bug) a defect.
 *
 * @example
 * ```ts
 * const kexInit = yield* core(() => Messages.decodeKexInit(payload))
 * ```
 */
export const core = <A>(f: () => A): Effect.Effect<A, SshError.SshError> =>
  Effect.suspend(() => {
    try {
      return Effect.succeed(f())
    } catch (u) {
      return SshError.failOrDie(u)
    }
  })

const socketError = (cause: Socket.SocketError): SshError.SshError => {
  const reason = cause.reason
  if (reason._tag === "SocketOpenError") {
    return SshError.make(SshError.connectFailed({}, reason.cause ?? reason))
  }
  if (reason._tag === "SocketCloseError") {
    return SshError.make(new SshError.ConnectionClosed({ message: "connection closed by peer" }))
  }
  return SshError.make(new SshError.ConnectionClosed({ message: `socket error: ${reason.message}` }))
}

/** What the shell holds of a running key exchange: the bytes and crypto objects the machine has no use for. */
interface KexState {
  readonly ourKexInit: Uint8Array
  negotiated: Negotiation.Negotiated | undefined
  method: Kex.ClientKex | Kex.ServerKex | undefined
  pendingIncoming: Cipher.DirectionKeys | undefined
  readonly done: Deferred.Deferred<void, SshError.SshError>
}

/** Strict kex markers: the pre-standard OpenSSH names and the standard ones of draft-miller-sshm-strict-kex §3.1. */
const strictNames = { client: ["kex-strict-c-v00@openssh.com", "kex-strict-c"], server: ["kex-strict-s-v00@openssh.com", "kex-strict-s"] }

/** Packets in both directions after which we rekey: well before sequence numbers wrap at 2^32 (RFC 4344 §3.1). */
const REKEY_PACKETS = 2 ** 31

/** The message number of a payload given whole or in parts. */
const messageType = (payload: Payload): number => {
  if (payload instanceof Uint8Array) return payload.length > 0 ? payload[0]! : -1
  for (const part of payload) if (part.length > 0) return part[0]!
  return -1
}

/**
 * Opens a transport over a socket: exchanges versions and runs the first key
 * exchange, then returns. Closing the scope sends DISCONNECT and closes the socket.
 *
 * The sequencing (which message may come when, where keys switch, when to
 * rekey) is `TransportMachine`'s; this shell owns the socket, the fibers, the
 * latches, the outbox and the crypto objects, and reads the time from `Clock`.
 *
 * @example
 * ```ts
 * const socket = yield* NodeSocket.makeNet({ host: "127.0.0.1", port: 22 })
 * const transport = yield* Transport.make(socket, { role: "client", algorithms, verifyHostKey })
 * ```
 */
export const make = Effect.fnUntraced(function*(socket: Socket.Socket, config: TransportConfig) {
  const scope = yield* Effect.scope
  const clock = yield* Clock.Clock
  const now = () => clock.currentTimeMillisUnsafe()
  const tracePacket = yield* Telemetry.packetTracer
  const role = config.role
  const ourVersion = config.version ?? Version.ourVersion
  if (role === "server" && (config.hostKeys === undefined || config.hostKeys.length === 0)) {
    return yield* fail(new SshError.ConfigParseError({ message: "a server needs at least one host key" }))
  }

  const socketReader = yield* Effect.mapError(socket.reader, socketError)
  const socketWriter = yield* socket.writer

  // ---- wire state
  const limits: TransportLimits = { ...defaultLimits, ...config.limits }
  const machine = new TransportMachine.TransportMachine({
    role,
    rekeyBytes: config.rekeyBytes ?? ONE_GIB,
    rekeyPackets: REKEY_PACKETS,
    rekeyIntervalMs: config.rekeyIntervalMs ?? ONE_HOUR,
    preAuthKex: limits.preAuthKex
  }, now())
  const packetReader = new PacketReader()
  packetReader.limitPacketLength({ bytes: limits.preAuthPacketBytes, phase: "before authentication" })
  // padding comes from a pool: one system call per 4 KiB instead of one per packet
  const random = Cipher.pooledRandom(systemRandom)
  const packetWriter = new PacketWriter(Cipher.plainSealer(random))
  /** Open while the upper layer's payloads may be sealed: closed from our KEXINIT until our NEWKEYS. */
  const sendable = Latch.makeUnsafe(false)
  const incoming = yield* Queue.unbounded<Uint8Array, SshError.SshError>()
  /** `queuedCost` of the payloads in `incoming`. */
  let incomingBytes = 0
  let isAuthenticated = false
  /** Open while the reader may read; the reader closes it when it pauses, and whatever may unblock it opens it. */
  const readable = Latch.makeUnsafe(true)
  const incomingPause = () => isAuthenticated ? limits.incomingBytes : limits.preAuthIncomingBytes
  const closed = yield* Deferred.make<never, SshError.SshError>()
  let failure: SshError.SshError | undefined

  // ---- session state
  let sessionId: Uint8Array | undefined
  let peerVersion = ""
  let preamble: ReadonlyArray<string> = []
  let hostKey: Uint8Array = new Uint8Array(0)
  let negotiated: Negotiation.Negotiated | undefined
  /** Defined exactly while `machine.kexRunning`. */
  let kex: KexState | undefined
  let extensions: ReadonlyMap<string, Uint8Array> = new Map()

  // ---- compression (RFC 4253 §6.2): the method each direction's current keys selected, and whether
  // USERAUTH_SUCCESS has passed (sent by a server, received by a client), which starts `zlib@openssh.com`
  const compressionOffer = config.algorithms.compression ??
    (role === "client" ? Compression.clientOffer(false) : Compression.serverOffer())
  let compressionOut: string = Compression.NONE
  let compressionIn: string = Compression.NONE
  let pastAuthentication = false

  // ---- writing
  // Sealed packets wait in the outbox for the writer fiber. Sealing and queueing are synchronous, so they need
  // no lock and never wait: the reader can always answer a key exchange even while the socket is backed up
  // (waiting there while holding a write lock deadlocks two peers whose buffers are both full). The upper
  // layer's `send` alone waits, for the outbox to drain below OUTBOX_HIGH.
  let outbox: Array<Uint8Array> = []
  let outboxBytes = 0
  const hasOutput = Latch.makeUnsafe(false)
  const belowHigh = Latch.makeUnsafe(true)
  const empty = Latch.makeUnsafe(true)

  const enqueue = (packet: Uint8Array): void => {
    outbox.push(packet)
    outboxBytes += queuedCost(packet)
    hasOutput.openUnsafe()
    empty.closeUnsafe()
    if (outboxBytes > OUTBOX_HIGH) belowHigh.closeUnsafe()
  }

  /** Seals a payload with the current keys and queues it; false when the transport is dead. */
  const sealNow = (payload: Payload): boolean => {
    if (failure) return false
    // the socket frees it once written (ownedBuffers)
    const packet = adopt(packetWriter.seal(payload))
    tracePacket?.("sent", messageType(payload), packet.length)
    machine.sealed(packet.length)
    enqueue(packet)
    // the server's delayed compression starts with the packet after its USERAUTH_SUCCESS
    if (!pastAuthentication && role === "server" && messageType(payload) === N.USERAUTH_SUCCESS) authenticationPassed()
    return true
  }

  /** A fresh stream for a direction whose keys selected `name`, when it compresses now; none otherwise. */
  const compressorFor = (name: string): Compression.Compressor | undefined =>
    Compression.isActive(name, pastAuthentication) ? Compression.makeCompressor(name) : undefined
  const decompressorFor = (name: string): Compression.Decompressor | undefined =>
    Compression.isActive(name, pastAuthentication) ? Compression.makeDecompressor(name) : undefined

  /**
   * USERAUTH_SUCCESS has passed: each direction whose keys selected delayed
   * compression starts now (OpenSSH's `ssh_packet_enable_delayed_compress`),
   * and the key exchanges after this one start it at their NEWKEYS.
   */
  const authenticationPassed = (): void => {
    pastAuthentication = true
    if (!packetWriter.compressing) packetWriter.setCompressor(compressorFor(compressionOut))
    if (!packetReader.decompressing) packetReader.setDecompressor(decompressorFor(compressionIn))
  }

  /** Sends a transport-level message now (kex messages may go out during a key exchange). */
  const sealAndWrite = (payload: Uint8Array): Effect.Effect<void, SshError.SshError> =>
    Effect.suspend(() => sealNow(payload) ? Effect.void : Effect.fail(failure!))

  const writerLoop = Effect.forever(
    Effect.gen(function*() {
      yield* hasOutput.await
      const batch = outbox
      outbox = []
      hasOutput.closeUnsafe()
      if (batch.length === 0) return
      let size = 0
      for (const packet of batch) size += queuedCost(packet)
      yield* Effect.mapError(socketWriter.writeAll(batch as unknown as readonly [Uint8Array, ...Array<Uint8Array>]), socketError)
      outboxBytes -= size
      if (outboxBytes <= OUTBOX_HIGH) belowHigh.openUnsafe()
      if (outboxBytes === 0) empty.openUnsafe()
      if (outboxBytes <= limits.outboxBytes) readable.openUnsafe()
    }),
    { disableYield: true }
  )

  const die = (error: SshError.SshError) =>
    Effect.suspend(() => {
      if (failure) return Effect.void
      failure = error
      sendable.openUnsafe()
      readable.openUnsafe()
      if (kex) Deferred.doneUnsafe(kex.done, Effect.fail(error))
      Deferred.doneUnsafe(closed, Effect.fail(error))
      return Queue.fail(incoming, error)
    })

  /** Sends DISCONNECT (best effort) for an error we detected, then dies. */
  const abort = (error: SshError.SshError, code: number) =>
    Effect.suspend(() => {
      sealNow(Messages.encodeDisconnect({ code, description: error.reason.message.slice(0, 256) }))
      return Effect.andThen(Effect.ignore(Effect.timeout(empty.await, 1000)), die(error))
    })

  // ---- key exchange
  const buildKexInit = (): Uint8Array => {
    const a = config.algorithms
    const pseudo = machine.firstKexDone ? [] : role === "client" ? ["ext-info-c", ...strictNames.client] : strictNames.server
    const hostKeyAlgorithms = role === "server"
      ? a.hostKey.filter((alg) => config.hostKeys!.some((k) => k.algorithms.includes(alg)))
      : a.hostKey
    return Messages.encodeKexInit({
      cookie: systemRandom(16),
      kexAlgorithms: [...a.kex, ...pseudo],
      serverHostKeyAlgorithms: [...hostKeyAlgorithms],
      ciphersClientToServer: [...a.cipher],
      ciphersServerToClient: [...a.cipher],
      macsClientToServer: [...a.mac],
      macsServerToClient: [...a.mac],
      compressionClientToServer: [...compressionOffer],
      compressionServerToClient: [...compressionOffer],
      languagesClientToServer: [],
      languagesServerToClient: [],
      firstKexPacketFollows: false,
      reserved: 0
    })
  }

  /** Seals our KEXINIT for the exchange the machine just began, holding the upper layer's sends. */
  const beginKex = (): boolean => {
    const ourKexInit = buildKexInit()
    kex = { ourKexInit, negotiated: undefined, method: undefined, pendingIncoming: undefined, done: Deferred.makeUnsafe() }
    sendable.closeUnsafe()
    // the reader never pauses during a key exchange
    readable.openUnsafe()
    return sealNow(ourKexInit)
  }

  /** Starts a key exchange unless one runs; the running exchange's completion. */
  const startKex = Effect.suspend(() => {
    if (machine.requestKex() && !beginKex()) return Effect.fail(failure!)
    return Effect.succeed(kex!.done)
  })

  const keysFor = (
    n: Negotiation.Negotiated,
    result: Kex.KexResult,
    direction: "clientToServer" | "serverToClient"
  ): Cipher.DirectionKeys => {
    const cs = direction === "clientToServer"
    const cipherName = cs ? n.cipherClientToServer : n.cipherServerToClient
    const macName = cs ? n.macClientToServer : n.macServerToClient
    const spec = Cipher.cipherSpec(cipherName)!
    const macSpec = spec.aead ? undefined : Cipher.macSpec(macName)
    const derive = (letter: "A" | "B" | "C" | "D" | "E" | "F", length: number) =>
      deriveKey(result.hashAlgorithm, result.K, result.H, letter, sessionId!, length)
    return {
      cipher: cipherName,
      mac: spec.aead ? "none" : macName,
      iv: derive(cs ? "A" : "B", spec.ivLength),
      key: derive(cs ? "C" : "D", spec.keyLength),
      macKey: macSpec ? derive(cs ? "E" : "F", macSpec.keyLength) : new Uint8Array(0)
    }
  }

  const onTheirKexInit = (payload: Uint8Array) =>
    Effect.gen(function*() {
      // the peer started this exchange: our KEXINIT goes first
      if ((yield* core(() => machine.kexInitReceived())) && !beginKex()) return yield* Effect.fail(failure!)
      const state = kex!
      const ours = yield* core(() => Messages.decodeKexInit(state.ourKexInit))
      const theirs = yield* core(() => Messages.decodeKexInit(payload))
      const client = role === "client" ? ours : theirs
      const server = role === "client" ? theirs : ours
      const n = yield* core(() => Negotiation.negotiate(client, server, role))
      state.negotiated = n
      yield* core(() =>
        machine.negotiated({
          strict: n.strictKex,
          extInfo: n.extInfo,
          ignoreGuess: theirs.firstKexPacketFollows && Negotiation.guessIsWrong(client, server)
        })
      )
      const inputs: Kex.KexInputs = {
        role,
        clientVersion: role === "client" ? ourVersion : peerVersion,
        serverVersion: role === "client" ? peerVersion : ourVersion,
        clientKexInit: role === "client" ? state.ourKexInit : payload,
        serverKexInit: role === "client" ? payload : state.ourKexInit,
        algorithm: n.kex
      }
      if (role === "client") {
        const method = yield* core(() => Kex.makeClientKex(inputs, config.gex ?? {}))
        state.method = method
        for (const msg of yield* core(() => method.start())) yield* sealAndWrite(msg)
      } else {
        const signer = config.hostKeys!.find((k) => k.algorithms.includes(n.hostKey))!
        state.method = yield* core(() =>
          Kex.makeServerKex(inputs, { blob: signer.blob, sign: (h) => signer.sign(h, n.hostKey) })
        )
      }
    })

  const onKexMessage = (payload: Uint8Array) =>
    Effect.gen(function*() {
      // false: the peer's first kex packet on a wrong guess, dropped
      if (!(yield* core(() => machine.kexMessage(payload[0]!)))) return
      const state = kex!
      const method = state.method!
      const step = yield* core(() => method.receive(payload))
      for (const msg of step.send) yield* sealAndWrite(msg)
      if (!step.result) return
      const result = step.result
      const n = state.negotiated!
      if (role === "client") {
        if (machine.firstKexDone && !equal(result.hostKeyBlob, hostKey)) {
          return yield* fail(new SshError.HostKeyChanged({ host: "(rekey)", expected: ["the key of the first exchange"], received: "another key" }))
        }
        // a certificate host key signs as the key it certifies
        const valid = yield* core(() =>
          Certificate.verifyKeySignature(result.hostKeyBlob, n.hostKey, result.signature, result.H)
        )
        if (!valid) {
          return yield* fail(new SshError.HostKeySignatureInvalid({ message: `the server's ${n.hostKey} signature over the exchange hash does not verify` }))
        }
        if (!machine.firstKexDone && config.verifyHostKey) yield* config.verifyHostKey(result.hostKeyBlob, n.hostKey)
      }
      hostKey = result.hostKeyBlob
      if (sessionId === undefined) sessionId = result.H
      const outKeys = keysFor(n, result, role === "client" ? "clientToServer" : "serverToClient")
      state.pendingIncoming = keysFor(n, result, role === "client" ? "serverToClient" : "clientToServer")
      const sealer = yield* core(() => Cipher.makeSealer(outKeys, random))
      const out = yield* core(() => machine.kexFinished())
      // NEWKEYS goes out under the old keys; everything after it under the new ones.
      if (!sealNow(Uint8Array.of(N.NEWKEYS))) return yield* Effect.fail(failure!)
      packetWriter.setSealer(sealer)
      if (out.resetSequence) packetWriter.resetSequence()
      // the new keys bring a new stream (RFC 4253 §6.2), as OpenSSH's ssh_set_newkeys does
      compressionOut = role === "client" ? n.compressionClientToServer : n.compressionServerToClient
      packetWriter.setCompressor(yield* core(() => compressorFor(compressionOut)))
      negotiated = n
      if (out.sendExtInfo) {
        yield* sealAndWrite(
          Messages.encodeExtInfo([["server-sig-algs", new TextEncoder().encode(userSignatureAlgorithms.join(","))]])
        )
      }
      // the upper layer's held payloads go now, under the new keys
      sendable.openUnsafe()
    })

  const onNewKeys = Effect.gen(function*() {
    const step = yield* core(() => machine.newKeysReceived(now()))
    const state = kex!
    const opener = yield* core(() => Cipher.makeOpener(state.pendingIncoming!))
    packetReader.setOpener(opener)
    if (step.resetSequence) packetReader.resetSequence()
    const n = state.negotiated!
    compressionIn = role === "client" ? n.compressionServerToClient : n.compressionClientToServer
    packetReader.setDecompressor(yield* core(() => decompressorFor(compressionIn)))
    kex = undefined
    Deferred.doneUnsafe(state.done, Effect.void)
  })

  /** The transport messages the machine routes to the shell to decode and act on. */
  const onTransportMessage = (payload: Uint8Array, route: TransportMachine.Route) =>
    Effect.gen(function*() {
      switch (route) {
        case "disconnect": {
          const d = yield* core(() => Messages.decodeDisconnect(payload))
          return yield* fail(new SshError.PeerDisconnected({ code: d.code, description: d.description }))
        }
        case "extinfo": {
          const ext = yield* core(() => Messages.decodeExtInfo(payload))
          extensions = new Map(ext)
          return
        }
        case "kexinit":
          return yield* onTheirKexInit(payload)
        case "newkeys":
          return yield* onNewKeys
        case "kex":
          return yield* onKexMessage(payload)
      }
    })

  // ---- reading
  const pullMore = Effect.map(Effect.mapError(socketReader.pull, socketError), (chunks) => {
    for (const chunk of chunks) {
      const bytes = typeof chunk === "string" ? new TextEncoder().encode(chunk) : chunk
      machine.read(bytes.length)
      packetReader.push(bytes)
    }
  })

  const pullBytes = Effect.map(Effect.mapError(socketReader.pull, socketError), (chunks) =>
    chunks.map((c) => typeof c === "string" ? new TextEncoder().encode(c) : c))

  const readVersion = Effect.gen(function*() {
    const versionReader = new Version.VersionReader({ allowPreamble: role === "client" })
    for (;;) {
      const exchange = yield* core(() => versionReader.next())
      if (exchange) return exchange
      for (const chunk of yield* pullBytes) versionReader.push(chunk)
    }
  })

  /**
   * Routes one payload as the machine says. Transport messages return the
   * effect that handles them; everything else is queued for the upper layer
   * synchronously, so a burst of channel data costs no effect per packet.
   * Throws a reason for a message that may not come now.
   */
  const route = (payload: Uint8Array): Effect.Effect<void, SshError.SshError> | undefined => {
    tracePacket?.("received", payload.length > 0 ? payload[0]! : -1, payload.length)
    const to = machine.receive(payload.length > 0 ? payload[0]! : -1, now())
    switch (to) {
      case "deliver":
        // the client's delayed compression starts with the packet after USERAUTH_SUCCESS: before it is opened
        if (!pastAuthentication && role === "client" && payload[0] === N.USERAUTH_SUCCESS) authenticationPassed()
        incomingBytes += queuedCost(payload)
        if (machine.kexRunning && incomingBytes > incomingPause() * limits.kexBacklogFactor) {
          throw new SshError.LimitExceeded({
            limit: "queued incoming bytes",
            message: `peer sent ${incomingBytes} bytes we could not process yet during a key exchange`
          })
        }
        Queue.offerUnsafe(incoming, payload)
        return undefined
      case "ignore":
        return undefined
      case "unimplemented":
        // the messages a flooding peer can send at will are answered here, with no effect per message
        return sealNow(Messages.encodeUnimplemented(packetReader.sequence - 1)) ? undefined : Effect.fail(failure!)
      default:
        return onTransportMessage(payload, to)
    }
  }

  const readerLoop = Effect.gen(function*() {
    for (;;) {
      let payload: Uint8Array | undefined
      while ((payload = packetReader.next()) !== undefined) {
        const handle = route(payload)
        if (handle !== undefined) yield* handle
      }
      if (machine.rekeyDue(now())) yield* Effect.asVoid(startKex)
      while (mustPause()) {
        readable.closeUnsafe()
        yield* readable.await
      }
      yield* pullMore
    }
  })

  /** Rekeys by time on a quiet connection too: wakes when the interval since the last exchange ends. */
  const rekeyTimer = Effect.gen(function*() {
    while (failure === undefined) {
      yield* Effect.sleep(machine.rekeyDelay(now()))
      if (machine.rekeyDue(now())) yield* Effect.asVoid(startKex)
    }
  })

  /** Whether the reader must stop reading the socket for now (see `TransportLimits`). */
  const mustPause = (): boolean =>
    failure === undefined &&
    (outboxBytes > limits.outboxBytes || (!machine.kexRunning && incomingBytes > incomingPause()))

  /** Accounts for payloads the upper layer took, and lets a paused reader go on once they are few enough. */
  const took = (bytes: number): void => {
    incomingBytes -= bytes
    if (incomingBytes <= incomingPause()) readable.openUnsafe()
  }
  const takeOne = (payload: Uint8Array): Uint8Array => {
    took(queuedCost(payload))
    return payload
  }
  const takeBatch = <A extends ReadonlyArray<Uint8Array>>(batch: A): A => {
    let bytes = 0
    for (const payload of batch) bytes += queuedCost(payload)
    took(bytes)
    return batch
  }

  /** A bug of ours (a defect) is logged with its stack; the peer is told of a protocol error, not blamed for it. */
  const logBug = (cause: Cause.Cause<unknown>) =>
    SshError.fromCause(cause) === undefined ? Effect.logError("transport failed", cause) : Effect.void

  // ---- start
  const writerFiber = yield* writerLoop.pipe(
    Effect.catchCause((cause) =>
      Cause.hasInterruptsOnly(cause) ? Effect.void : Effect.andThen(logBug(cause), die(SshError.fromCauseOrInternal(cause)))),
    Effect.forkIn(scope)
  )
  enqueue(Version.versionLine(ourVersion))
  const exchange = yield* readVersion
  peerVersion = exchange.version
  preamble = exchange.preamble
  if (exchange.rest.length > 0) packetReader.push(exchange.rest)

  const readerFiber = yield* readerLoop.pipe(
    Effect.catchCause((cause) => {
      if (Cause.hasInterruptsOnly(cause)) return Effect.void
      const sshError = SshError.fromCauseOrInternal(cause)
      const code = sshError.reason._tag === "MacMismatch"
        ? N.DisconnectReason.MAC_ERROR
        : sshError.reason._tag === "PeerDisconnected" || sshError.reason._tag === "ConnectionClosed"
        ? -1
        : sshError.reason._tag === "NegotiationFailed"
        ? N.DisconnectReason.KEY_EXCHANGE_FAILED
        : sshError.reason._tag === "HostKeyRejected" || sshError.reason._tag === "HostKeyChanged" ||
            sshError.reason._tag === "HostKeySignatureInvalid"
        ? N.DisconnectReason.HOST_KEY_NOT_VERIFIABLE
        : N.DisconnectReason.PROTOCOL_ERROR
      return Effect.andThen(logBug(cause), code < 0 ? die(sshError) : abort(sshError, code))
    }),
    Effect.forkIn(scope)
  )

  const firstKex = yield* startKex
  yield* Deferred.await(firstKex)
  const timerFiber = yield* Effect.forkIn(Effect.ignore(rekeyTimer), scope)

  const send = (payload: Payload): Effect.Effect<void, SshError.SshError> =>
    Effect.suspend(function attempt(): Effect.Effect<void, SshError.SshError> {
      if (failure) return Effect.fail(failure)
      if (machine.holdsSend(messageType(payload))) return Effect.andThen(sendable.await, Effect.suspend(attempt))
      sealNow(payload)
      const rekey = machine.rekeyDue(now()) ? Effect.asVoid(startKex) : Effect.void
      return outboxBytes > OUTBOX_HIGH ? Effect.andThen(belowHigh.await, rekey) : rekey
    })

  const disconnect = (code: number = N.DisconnectReason.BY_APPLICATION, description = "closed by application") =>
    Effect.suspend(() => {
      if (failure) return Effect.void
      sealNow(Messages.encodeDisconnect({ code, description }))
      return Effect.ignore(Effect.timeout(empty.await, 1000)).pipe(
        Effect.andThen(die(SshError.make(new SshError.ConnectionClosed({ message: description }))))
      )
    })

  yield* Scope.addFinalizer(
    scope,
    Effect.andThen(disconnect(), Fiber.interruptAll([readerFiber, writerFiber, timerFiber])).pipe(
      // zlib's memory is native: freed now rather than whenever the garbage collector finds the streams
      Effect.andThen(Effect.sync(() => {
        packetWriter.setCompressor(undefined)
        packetReader.setDecompressor(undefined)
      }))
    )
  )

  const transport: Transport = {
    role,
    sessionId: sessionId!,
    peerVersion,
    preamble,
    hostKey: () => hostKey,
    negotiated: () => negotiated!,
    extensions: () => extensions,
    receive: Effect.map(Queue.take(incoming), takeOne),
    receiveAll: Effect.map(Queue.takeAll(incoming), takeBatch),
    send,
    rekey: Effect.flatMap(startKex, Deferred.await),
    sendIgnore: (data) => sealAndWrite(Messages.encodeIgnore(data)),
    authenticated: Effect.sync(() => {
      isAuthenticated = true
      machine.authenticated()
      packetReader.limitPacketLength(undefined)
      readable.openUnsafe()
    }),
    disconnect,
    closed,
    lastReceivedAt: () => machine.lastReceivedAt,
    stats: () => ({
      bytesIn: machine.bytesIn,
      bytesOut: machine.bytesOut,
      packetsIn: machine.packetsIn,
      packetsOut: machine.packetsOut,
      kexCount: machine.kexCount
    })
  }
  return transport
})

/** Signature algorithms our server accepts for user keys, advertised in server-sig-algs: the SHA-2 ones we verify. */
const userSignatureAlgorithms: ReadonlyArray<string> = hostKeyDefaults

/**
 * Decodes a SERVICE_ACCEPT / SERVICE_REQUEST's service name.
 *
 * @example
 * ```ts
 * decodeServiceName(payload) // "ssh-userauth"
 * ```
 */
export const decodeServiceName = (payload: Uint8Array): string => {
  const r = new Reader(payload, 1)
  return r.name("service name")
}
