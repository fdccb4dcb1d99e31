/**
 * A scripted raw SSH peer for the bad-input suites: a `node:net` server (to
 * feed our client) or client (to feed our server) that speaks just enough
 * SSH, built from our own pure modules, to reach a phase — version line,
 * KEXINIT, a real curve25519-sha256 exchange with an ed25519 host key,
 * NEWKEYS, service request, authentication, a session channel — and then
 * sends whatever a test wants: mutated messages, raw bytes, packets with a
 * forged body.
 *
 * Scripts are plain async functions. Every read is bounded by an idle
 * deadline: a peer that waits for bytes that never come gives up and closes
 * the socket, so a stalled exchange ends in a closed connection instead of a
 * hung test. Outgoing bytes pass through an optional `OutputFilter`, which
 * the property tests use to mutate a valid stream on the fly.
 */
import * as net from "node:net"
import * as v8 from "node:v8"
import * as vm from "node:vm"
import { createCipheriv, randomBytes } from "node:crypto"
import * as fc from "fast-check"
import { ByteQueue } from "../../src/internal/byteQueue.ts"
import { concat } from "../../src/internal/bytes.ts"
import { PacketReader, PacketWriter } from "../../src/Transport/Packet.ts"
import * as Cipher from "../../src/Transport/Cipher.ts"
import * as Messages from "../../src/Transport/Messages.ts"
import * as Kex from "../../src/Transport/Kex.ts"
import * as Negotiation from "../../src/Transport/Negotiation.ts"
import { TransportMachine } from "../../src/Transport/TransportMachine.ts"
import { deriveKey } from "../../src/Transport/KeyDerivation.ts"
import * as Version from "../../src/Transport/Version.ts"
import * as ChannelMessages from "../../src/Channel/Messages.ts"
import * as AuthMessages from "../../src/Auth/Messages.ts"
import * as Requests from "../../src/Channel/Requests.ts"
import type * as PrivateKey from "../../src/Auth/PrivateKey.ts"
import * as N from "../../src/Wire/MessageNumber.ts"
import { build } from "../../src/Wire/Writer.ts"

/** The script cannot go on: the other side closed, went silent, sent undecodable bytes, or something else. */
export class PeerGone extends Error {
  readonly kind: "closed" | "silent" | "garbage" | "unexpected"
  constructor(kind: PeerGone["kind"], message: string) {
    super(message)
    this.kind = kind
  }
}

/** Rewrites outgoing bytes; `{ thenClose }` writes those bytes and ends our side of the connection. */
export type OutputFilter = (
  chunk: Uint8Array,
  info: { readonly offset: number; readonly packetStart: boolean }
) => Uint8Array | { readonly thenClose: Uint8Array }

/** How long a peer waits for the other side before giving up (ms). */
export const DEFAULT_IDLE_MS = 1500

/** A socket with awaitable reads, an idle deadline and an output filter. */
export class Pipe {
  readonly socket: net.Socket
  readonly closed: Promise<void>
  /** Bytes handed to `write` so far (before filtering). */
  offset = 0
  /** Packets written so far. */
  packets = 0
  private readonly inbox = new ByteQueue()
  private wake: (() => void) | undefined
  private ended = false
  private outputEnded = false
  private readonly idleMs: number
  private readonly filter: OutputFilter | undefined

  constructor(socket: net.Socket, options: { readonly idleMs?: number | undefined; readonly filter?: OutputFilter | undefined } = {}) {
    this.socket = socket
    this.idleMs = options.idleMs ?? DEFAULT_IDLE_MS
    this.filter = options.filter
    socket.setNoDelay(true)
    socket.on("data", (chunk: Buffer) => {
      this.inbox.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length))
      this.notify()
    })
    socket.on("error", () => {})
    this.closed = new Promise((resolve) =>
      socket.once("close", () => {
        this.ended = true
        this.notify()
        resolve()
      })
    )
  }

  get isClosed(): boolean {
    return this.ended || this.socket.destroyed
  }

  /** Writes through the filter; nothing happens once our side is closed. */
  write(bytes: Uint8Array, packetStart = false): void {
    if (this.isClosed || this.outputEnded) return
    const info = { offset: this.offset, packetStart }
    this.offset += bytes.length
    if (packetStart) this.packets++
    const out = this.filter ? this.filter(bytes, info) : bytes
    if (out instanceof Uint8Array) {
      if (out.length > 0) this.socket.write(out)
      return
    }
    this.outputEnded = true
    this.socket.end(out.thenClose)
  }

  /** Every byte received and not yet read, waiting (bounded) for at least one. */
  async readSome(idleMs = this.idleMs): Promise<Uint8Array> {
    const deadline = Date.now() + idleMs
    while (this.inbox.length === 0) {
      if (this.ended) throw new PeerGone("closed", "the other side closed the connection")
      const left = deadline - Date.now()
      if (left <= 0) throw new PeerGone("silent", `no bytes from the other side for ${idleMs} ms`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        this.wake = () => {
          clearTimeout(timer)
          resolve()
        }
      })
      this.wake = undefined
    }
    return this.inbox.takeAll()
  }

  /** Waits (bounded) for the other side to close; destroys the socket either way. */
  async waitClosed(ms = this.idleMs): Promise<boolean> {
    const closedInTime = await Promise.race([
      this.closed.then(() => true),
      new Promise<boolean>((resolve) => setTimeout(() => resolve(false), ms).unref())
    ])
    this.destroy()
    return closedInTime
  }

  destroy(): void {
    if (!this.socket.destroyed) this.socket.destroy()
  }

  private notify(): void {
    this.wake?.()
  }
}

/** The algorithms a peer offers unless told otherwise: one of each, so the outcome is known. */
export const defaultKexInit = (role: "client" | "server", overrides: Partial<Messages.KexInit> = {}): Uint8Array =>
  Messages.encodeKexInit({
    cookie: randomBytes(Messages.KEXINIT_COOKIE_LENGTH),
    kexAlgorithms: ["curve25519-sha256", role === "server" ? Negotiation.KEX_STRICT_S : Negotiation.KEX_STRICT_C],
    serverHostKeyAlgorithms: ["ssh-ed25519"],
    ciphersClientToServer: ["aes128-gcm@openssh.com"],
    ciphersServerToClient: ["aes128-gcm@openssh.com"],
    macsClientToServer: ["hmac-sha2-256"],
    macsServerToClient: ["hmac-sha2-256"],
    compressionClientToServer: ["none"],
    compressionServerToClient: ["none"],
    languagesClientToServer: [],
    languagesServerToClient: [],
    firstKexPacketFollows: false,
    reserved: 0,
    ...overrides
  })

/** A string's characters as bytes (latin1), for raw version lines and hand-made messages. */
export const latin1 = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0) & 0xff)

/** Big-endian uint32 as 4 bytes. */
export const uint32 = (n: number): Uint8Array => build((w) => w.uint32(n >>> 0), 4)

/** Messages about already open channels. */
const channelTraffic: ReadonlyArray<number> = [
  N.CHANNEL_WINDOW_ADJUST,
  N.CHANNEL_DATA,
  N.CHANNEL_EXTENDED_DATA,
  N.CHANNEL_EOF,
  N.CHANNEL_REQUEST,
  N.CHANNEL_SUCCESS,
  N.CHANNEL_FAILURE
]

/** Options of a peer. */
export interface PeerOptions {
  /** Server role: the host key to sign the exchange hash with. */
  readonly hostKey?: PrivateKey.PrivateKey | undefined
  /** How long a read waits for the other side before giving up (default `DEFAULT_IDLE_MS`). */
  readonly idleMs?: number | undefined
  /** Rewrites everything we send (the property tests' mutations). */
  readonly filter?: OutputFilter | undefined
  /** Our identification line (without CR LF). */
  readonly version?: string | undefined
}

/**
 * One end of a raw SSH connection, driven step by step.
 *
 * @example
 * ```ts
 * const peer = await connectPeer(port)
 * await peer.clientHandshake()
 * await peer.passwordAuth("alice", "wonderland")
 * ```
 */
export class SshPeer {
  readonly role: "client" | "server"
  readonly pipe: Pipe
  readonly hostKey: PrivateKey.PrivateKey | undefined
  readonly version: string
  readonly reader = new PacketReader()
  readonly writer = new PacketWriter(Cipher.plainSealer(randomBytes))
  peerVersion = ""
  ourKexInit: Uint8Array | undefined
  theirKexInit: Uint8Array | undefined
  negotiated: Negotiation.Negotiated | undefined
  sessionId: Uint8Array | undefined
  /** The first DISCONNECT the other side sent, once one arrived. */
  disconnect: Required<Messages.Disconnect> | undefined
  /** Payloads received, in order (message numbers only, for assertions). */
  readonly receivedTypes: Array<number> = []
  private outKeys: Cipher.DirectionKeys | undefined
  /**
   * The handshake's sequencing (strict kex decided by the first exchange, where sequence numbers restart),
   * fed with the steps this peer's handshake methods take; whatever a script sends on its own is not its business.
   */
  private readonly sequencing: TransportMachine
  /** Whether our sequence number restarts after the NEWKEYS we send, once our exchange has its result. */
  private resetAfterOurNewKeys = false
  /** Packets sealed with `outKeys`: the AES-GCM invocation counter for `sendBody`. */
  private sealedWithKeys = 0

  constructor(socket: net.Socket, role: "client" | "server", options: PeerOptions = {}) {
    this.role = role
    this.pipe = new Pipe(socket, options)
    this.hostKey = options.hostKey
    this.version = options.version ?? "SSH-2.0-FuzzPeer_1.0"
    this.sequencing = new TransportMachine(
      { role, rekeyBytes: Infinity, rekeyPackets: Infinity, rekeyIntervalMs: Infinity, preAuthKex: Infinity },
      0
    )
  }

  /** Runs a step of the sequencing; a step out of order is the script's mistake, reported as `PeerGone`. */
  private sequenced<A>(step: (machine: TransportMachine) => A): A {
    try {
      return step(this.sequencing)
    } catch (e) {
      throw new PeerGone("unexpected", `handshake out of sequence: ${String((e as { message?: string }).message ?? e)}`)
    }
  }

  /** Our exchange has its result (we hold the new keys): where our sending side restarts its sequence number. */
  private kexResult(type: number): void {
    this.resetAfterOurNewKeys = this.sequenced((machine) => {
      machine.kexMessage(type)
      return machine.kexFinished().resetSequence
    })
  }

  // ---- writing

  /** Writes bytes as they are (through the output filter); `packetStart` marks the start of a packet. */
  sendRaw(bytes: Uint8Array, packetStart = false): void {
    this.pipe.write(bytes, packetStart)
  }

  /** Seals a payload with the current keys and writes it. */
  send(payload: Uint8Array): void {
    this.sendRaw(this.writer.seal(payload), true)
    this.sealedWithKeys++
  }

  /**
   * Writes a packet whose body (`padding_length || payload || padding`) and
   * length field are ours to choose, sealed correctly with the current keys
   * (plaintext before NEWKEYS, AES-GCM after): a valid tag over an invalid packet.
   */
  sendBody(body: Uint8Array, packetLength = body.length): void {
    const length = uint32(packetLength)
    const keys = this.outKeys
    if (keys === undefined) {
      this.sendRaw(concat([length, body]), true)
    } else {
      if (!keys.cipher.startsWith("aes128-gcm")) throw new Error(`sendBody supports aes128-gcm only, not ${keys.cipher}`)
      const nonce = Uint8Array.from(keys.iv.subarray(0, 12))
      let counter = new DataView(nonce.buffer).getBigUint64(4) + BigInt(this.sealedWithKeys)
      counter &= 0xffffffffffffffffn
      new DataView(nonce.buffer).setBigUint64(4, counter)
      const cipher = createCipheriv("aes-128-gcm", keys.key.subarray(0, 16), nonce, { authTagLength: 16 })
      cipher.setAAD(length)
      const encrypted = cipher.update(body)
      cipher.final()
      this.sendRaw(concat([length, encrypted, cipher.getAuthTag()]), true)
    }
    this.writer.seal(new Uint8Array(0)) // keep the writer's sequence number in step
    this.sealedWithKeys++
  }

  // ---- reading

  /** The next payload; throws `PeerGone` on close, silence or an undecodable packet. */
  async receive(): Promise<Uint8Array> {
    for (;;) {
      let payload: Uint8Array | undefined
      try {
        payload = this.reader.next()
      } catch (e) {
        throw new PeerGone("garbage", `cannot read the other side's packet: ${String((e as { message?: string }).message ?? e)}`)
      }
      if (payload !== undefined) {
        const type = payload[0] ?? -1
        this.receivedTypes.push(type)
        if (type === N.DISCONNECT && this.disconnect === undefined) {
          try {
            this.disconnect = Messages.decodeDisconnect(payload)
          } catch {
            this.disconnect = { code: -1, description: "(undecodable)", language: "" }
          }
        }
        return payload
      }
      this.reader.push(await this.pipe.readSome())
    }
  }

  /** The next payload other than IGNORE/DEBUG/EXT_INFO (and the `skip` types), which must be of `type`. */
  async expect(type: number, skip: ReadonlyArray<number> = []): Promise<Uint8Array> {
    for (;;) {
      const payload = await this.receive()
      const got = payload[0]!
      if (got === N.IGNORE || got === N.DEBUG || got === N.EXT_INFO || skip.includes(got)) continue
      if (got === type) return payload
      const why = got === N.DISCONNECT ? `DISCONNECT ${this.disconnect?.code}: ${this.disconnect?.description}` : `message ${got}`
      throw new PeerGone("unexpected", `expected message ${type}, got ${why}`)
    }
  }

  /**
   * Reads until the other side closes (or goes silent), recording its
   * DISCONNECT, then closes our end. Returns whether the other side had
   * closed the connection.
   */
  async drain(ms = 3000): Promise<boolean> {
    const deadline = Date.now() + ms
    const left = () => Math.max(1, deadline - Date.now())
    try {
      while (Date.now() < deadline) await this.receive()
    } catch (e) {
      // bytes we cannot frame (a version line, a cipher we lost track of): wait for the close all the same
      if (e instanceof PeerGone && e.kind === "garbage") {
        try {
          while (Date.now() < deadline) await this.pipe.readSome(left())
        } catch {
          // closed or silent
        }
      }
    }
    const closedByOtherSide = this.pipe.isClosed
    this.pipe.destroy()
    return closedByOtherSide
  }

  // ---- version exchange and key exchange

  sendVersion(line: string = this.version): void {
    this.sendRaw(Version.versionLine(line))
  }

  async readVersion(): Promise<string> {
    const versions = new Version.VersionReader({ allowPreamble: this.role === "client" })
    for (;;) {
      let exchange: Version.VersionExchange | undefined
      try {
        exchange = versions.next()
      } catch (e) {
        throw new PeerGone("garbage", `bad version line: ${String(e)}`)
      }
      if (exchange) {
        this.peerVersion = exchange.version
        this.reader.push(exchange.rest)
        return exchange.version
      }
      versions.push(await this.pipe.readSome())
    }
  }

  /** Sends our KEXINIT (default: `defaultKexInit`) and reads theirs. */
  async exchangeKexInit(ours: Uint8Array = defaultKexInit(this.role)): Promise<Negotiation.Negotiated> {
    this.ourKexInit = ours
    this.send(ours)
    this.theirKexInit = await this.expect(N.KEXINIT)
    const mine = Messages.decodeKexInit(ours)
    const theirs = Messages.decodeKexInit(this.theirKexInit)
    const n = this.role === "server"
      ? Negotiation.negotiate(theirs, mine, "server")
      : Negotiation.negotiate(mine, theirs, "client")
    this.negotiated = n
    this.sequenced((machine) => {
      machine.requestKex()
      machine.receive(N.KEXINIT, 0)
      machine.kexInitReceived()
      machine.negotiated({ strict: n.strictKex, extInfo: n.extInfo, ignoreGuess: false })
    })
    return n
  }

  private inputs(): Kex.KexInputs {
    const client = this.role === "client"
    return {
      role: this.role,
      clientVersion: client ? this.version : this.peerVersion,
      serverVersion: client ? this.peerVersion : this.version,
      clientKexInit: client ? this.ourKexInit! : this.theirKexInit!,
      serverKexInit: client ? this.theirKexInit! : this.ourKexInit!,
      algorithm: this.negotiated!.kex
    }
  }

  /**
   * Server role: reads the client's KEX_ECDH_INIT and answers; `mutate` may
   * replace the reply (return `undefined` to send nothing).
   */
  async serverKexReply(mutate?: (reply: Uint8Array) => Uint8Array | undefined): Promise<Kex.KexResult> {
    const hostKey = this.hostKey!
    const algorithm = this.negotiated!.hostKey
    const machine = Kex.makeServerKex(this.inputs(), { blob: hostKey.publicKey.blob, sign: (h) => hostKey.sign(h, algorithm) })
    const step = machine.receive(await this.expect(N.KEXDH_INIT))
    this.kexResult(N.KEXDH_INIT)
    for (const reply of step.send) {
      const sent = mutate ? mutate(reply) : reply
      if (sent !== undefined) this.send(sent)
    }
    return step.result!
  }

  /**
   * Client role: sends KEX_ECDH_INIT and reads the server's reply; `mutate` may replace the init (the script
   * then ends: the server cannot answer it as expected).
   */
  async clientKex(mutate?: (init: Uint8Array) => Uint8Array): Promise<Kex.KexResult> {
    const machine = Kex.makeClientKex(this.inputs())
    for (const init of machine.start()) this.send(mutate ? mutate(init) : init)
    if (mutate) throw new PeerGone("unexpected", "the kex init was mutated")
    const step = machine.receive(await this.expect(N.KEXDH_REPLY))
    this.kexResult(N.KEXDH_REPLY)
    return step.result!
  }

  private keys(result: Kex.KexResult, direction: "clientToServer" | "serverToClient"): Cipher.DirectionKeys {
    const n = this.negotiated!
    const cs = direction === "clientToServer"
    const cipher = cs ? n.cipherClientToServer : n.cipherServerToClient
    const mac = cs ? n.macClientToServer : n.macServerToClient
    const spec = Cipher.cipherSpec(cipher)!
    const macSpec = spec.aead ? undefined : Cipher.macSpec(mac)
    const sessionId = this.sessionId ?? result.H
    const derive = (letter: "A" | "B" | "C" | "D" | "E" | "F", length: number) =>
      deriveKey(result.hashAlgorithm, result.K, result.H, letter, sessionId, length)
    return {
      cipher,
      mac: spec.aead ? "none" : mac,
      iv: derive(cs ? "A" : "B", spec.ivLength),
      key: derive(cs ? "C" : "D", spec.keyLength),
      macKey: macSpec ? derive(cs ? "E" : "F", macSpec.keyLength) : new Uint8Array(0)
    }
  }

  /** Sends NEWKEYS and switches our outgoing direction to the new keys. */
  sendNewKeys(result: Kex.KexResult): void {
    this.sessionId ??= result.H
    this.send(Messages.encodeNewKeys())
    const keys = this.keys(result, this.role === "client" ? "clientToServer" : "serverToClient")
    this.writer.setSealer(Cipher.makeSealer(keys, randomBytes))
    if (this.resetAfterOurNewKeys) this.writer.resetSequence()
    this.outKeys = keys
    this.sealedWithKeys = 0
  }

  /** Reads the other side's NEWKEYS and switches our incoming direction. */
  async expectNewKeys(result: Kex.KexResult): Promise<void> {
    await this.expect(N.NEWKEYS)
    const step = this.sequenced((machine) => {
      machine.receive(N.NEWKEYS, 0)
      return machine.newKeysReceived(0)
    })
    this.sessionId ??= result.H
    this.reader.setOpener(Cipher.makeOpener(this.keys(result, this.role === "client" ? "serverToClient" : "clientToServer")))
    if (step.resetSequence) this.reader.resetSequence()
  }

  /** Sends our version line and reads theirs. */
  async exchangeVersions(): Promise<string> {
    this.sendVersion()
    return this.readVersion()
  }

  /** Both version lines and both KEXINITs exchanged (ours: `kexInit`, default `defaultKexInit`). */
  async versionsAndKexInit(kexInit?: Uint8Array): Promise<Negotiation.Negotiated> {
    await this.exchangeVersions()
    return this.exchangeKexInit(kexInit)
  }

  /** Server role, KEXINITs exchanged: the curve25519 reply, then NEWKEYS both ways. */
  async finishServerKex(): Promise<void> {
    const result = await this.serverKexReply()
    this.sendNewKeys(result)
    await this.expectNewKeys(result)
  }

  /** Server role: versions, KEXINIT (ours: `kexInit`), curve25519 exchange, NEWKEYS both ways. */
  async serverHandshake(kexInit?: Uint8Array): Promise<void> {
    await this.versionsAndKexInit(kexInit)
    await this.finishServerKex()
  }

  /** Server role: answers the service request and accepts the first USERAUTH_REQUEST. */
  async acceptAuth(): Promise<void> {
    await this.expect(N.SERVICE_REQUEST)
    this.send(Messages.encodeServiceAccept("ssh-userauth"))
    await this.expect(N.USERAUTH_REQUEST)
    this.send(AuthMessages.encodeSuccess())
  }

  /** Server role: accepts the client's session channel; returns the client's channel id. */
  async acceptSession(localId = 7, window = 2 * 1024 * 1024, maxPacket = 32 * 1024): Promise<number> {
    const open = ChannelMessages.decode(await this.expect(N.CHANNEL_OPEN))
    if (open._tag !== "ChannelOpen") throw new PeerGone("unexpected", "not a CHANNEL_OPEN")
    this.send(ChannelMessages.channelOpenConfirmation(open.sender, localId, window, maxPacket))
    return open.sender
  }

  /** Server role: answers the exec request, writes `stdout`, exit status 0, EOF and CLOSE. */
  async runCommand(clientId: number, stdout: string): Promise<void> {
    const request = ChannelMessages.decode(await this.expect(N.CHANNEL_REQUEST))
    if (request._tag !== "ChannelRequest") throw new PeerGone("unexpected", "not a CHANNEL_REQUEST")
    if (request.wantReply) this.send(ChannelMessages.channelSuccess(clientId))
    this.send(ChannelMessages.channelData(clientId, new TextEncoder().encode(stdout)))
    this.send(ChannelMessages.channelRequest(clientId, "exit-status", false, Requests.encodeExitStatus(0)))
    this.send(ChannelMessages.channelEof(clientId))
    this.send(ChannelMessages.channelClose(clientId))
    for (;;) {
      const type = (await this.receive())[0]
      if (type === N.CHANNEL_CLOSE) return
      if (type === N.DISCONNECT) throw new PeerGone("unexpected", "DISCONNECT instead of CHANNEL_CLOSE")
    }
  }

  /** Client role: versions, KEXINIT, curve25519 exchange, NEWKEYS both ways. */
  async clientHandshake(): Promise<void> {
    await this.versionsAndKexInit()
    const result = await this.clientKex()
    await this.expectNewKeys(result)
    this.sendNewKeys(result)
  }

  /** Client role: ssh-userauth service, then password authentication; throws unless it succeeds. */
  async passwordAuth(user: string, password: string): Promise<void> {
    this.send(Messages.encodeServiceRequest("ssh-userauth"))
    await this.expect(N.SERVICE_ACCEPT)
    this.send(AuthMessages.encodeRequest({ user, service: "ssh-connection", request: { method: "password", password } }))
    for (;;) {
      const reply = await this.receive()
      if (reply[0] === N.USERAUTH_BANNER) continue
      if (reply[0] === N.USERAUTH_SUCCESS) return
      throw new PeerGone("unexpected", `password authentication answered with message ${reply[0]}`)
    }
  }

  /** Client role: opens a session channel; returns the server's channel id and the window it granted. */
  async openSession(localId = 0, window = 2 * 1024 * 1024, maxPacket = 32 * 1024): Promise<{ readonly remoteId: number; readonly window: number; readonly maxPacket: number }> {
    this.send(ChannelMessages.channelOpen("session", localId, window, maxPacket))
    // traffic of channels opened before may come first
    const reply = ChannelMessages.decode(await this.expect(N.CHANNEL_OPEN_CONFIRMATION, channelTraffic))
    if (reply._tag !== "ChannelOpenConfirmation") throw new PeerGone("unexpected", "not a confirmation")
    return { remoteId: reply.sender, window: reply.window, maxPacket: reply.maxPacket }
  }
}

/** A listening fake server; each accepted connection runs the script. */
export interface FakeServer {
  readonly port: number
  /** One entry per accepted connection: the finished peer and the script's error, if any. */
  readonly sessions: Array<Promise<{ readonly peer: SshPeer; readonly error?: unknown }>>
  readonly close: () => Promise<void>
}

/**
 * Starts a fake SSH server on 127.0.0.1. After the script, the peer keeps
 * reading until the client closes (recording its DISCONNECT), then closes.
 *
 * @example
 * ```ts
 * const server = await fakeServer(async (peer) => { await peer.serverHandshake(); peer.sendRaw(garbage) }, { hostKey })
 * ```
 */
export const fakeServer = async (script: (peer: SshPeer) => Promise<unknown>, options: PeerOptions = {}): Promise<FakeServer> => {
  const sessions: Array<Promise<{ readonly peer: SshPeer; readonly error?: unknown }>> = []
  const sockets = new Set<net.Socket>()
  const server = net.createServer((socket) => {
    sockets.add(socket)
    socket.once("close", () => sockets.delete(socket))
    const peer = new SshPeer(socket, "server", options)
    sessions.push((async () => {
      let error: unknown
      try {
        await script(peer)
      } catch (e) {
        error = e
      }
      // after a failed script the other side has been silent or gone already: do not wait long
      await peer.drain(error === undefined ? 3000 : 100)
      return error === undefined ? { peer } : { peer, error }
    })())
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const port = (server.address() as net.AddressInfo).port
  return {
    port,
    sessions,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy()
        server.close(() => resolve())
      })
  }
}

/**
 * Connects a raw client peer to `port` on 127.0.0.1.
 *
 * @example
 * ```ts
 * const peer = await connectPeer(server.address.port)
 * ```
 */
export const connectPeer = (port: number, options: PeerOptions = {}): Promise<SshPeer> =>
  new Promise((resolve, reject) => {
    const socket = net.connect({ host: "127.0.0.1", port })
    socket.once("error", reject)
    socket.once("connect", () => {
      socket.off("error", reject)
      resolve(new SshPeer(socket, "client", options))
    })
  })

// ---------------------------------------------------------------------------
// Mutations of a valid byte stream (for the property tests)
// ---------------------------------------------------------------------------

/** One change to an outgoing stream; offsets and packet numbers refer to the unmutated stream. */
export type Mutation =
  | { readonly _tag: "flip"; readonly at: number; readonly bit: number }
  | { readonly _tag: "truncate"; readonly at: number }
  | { readonly _tag: "insert"; readonly at: number; readonly bytes: Uint8Array }
  | { readonly _tag: "length"; readonly packet: number; readonly value: number }

/**
 * Mutations of a stream of `bytes` bytes in `packets` packets: bit flips,
 * truncation (our side closes there), insertion of random bytes, and
 * overwrites of a packet's length field with absurd, random or small values.
 */
export const mutationArbitrary = (recorded: { readonly bytes: number; readonly packets: number }): fc.Arbitrary<Mutation> =>
  fc.oneof(
    fc.record({ _tag: fc.constant("flip" as const), at: fc.nat({ max: recorded.bytes - 1 }), bit: fc.nat({ max: 7 }) }),
    fc.record({ _tag: fc.constant("truncate" as const), at: fc.nat({ max: recorded.bytes - 1 }) }),
    fc.record({
      _tag: fc.constant("insert" as const),
      at: fc.nat({ max: recorded.bytes - 1 }),
      bytes: fc.uint8Array({ minLength: 1, maxLength: 64 })
    }),
    fc.record({
      _tag: fc.constant("length" as const),
      packet: fc.nat({ max: recorded.packets - 1 }),
      value: fc.oneof(
        fc.constantFrom(0, 1, 13, 0x7fffffff, 0xffffffff, 256 * 1024 + 4),
        fc.nat({ max: 0xffffffff }),
        fc.nat({ max: 4096 })
      )
    })
  )

/** An output filter applying `mutations` as the stream is written. */
export const mutator = (mutations: ReadonlyArray<Mutation>): OutputFilter => {
  let packetIndex = -1
  return (chunk, { offset, packetStart }) => {
    if (packetStart) packetIndex++
    const end = offset + chunk.length
    let out: Uint8Array = Uint8Array.from(chunk)
    let close = false
    const inserts: Array<{ at: number; bytes: Uint8Array }> = []
    for (const m of mutations) {
      switch (m._tag) {
        case "flip":
          if (m.at >= offset && m.at < end) out[m.at - offset]! ^= 1 << m.bit
          break
        case "length":
          if (packetStart && m.packet === packetIndex && out.length >= 4) out.set(uint32(m.value), 0)
          break
        case "truncate":
          if (m.at >= offset && m.at < end) {
            out = out.subarray(0, m.at - offset)
            close = true
          }
          break
        case "insert":
          if (m.at >= offset && m.at < end) inserts.push({ at: m.at - offset, bytes: m.bytes })
          break
      }
    }
    for (const { at, bytes } of inserts.sort((a, b) => b.at - a.at)) {
      if (at <= out.length) out = concat([out.subarray(0, at), bytes, out.subarray(at)])
    }
    return close ? { thenClose: out } : out
  }
}

/** A short description of mutations, for failure messages. */
export const describeMutations = (mutations: ReadonlyArray<Mutation>): string =>
  JSON.stringify(mutations.map((m) => m._tag === "insert" ? { ...m, bytes: m.bytes.length } : m))

/** A full garbage collection (vitest runs each test file in its own process, so exposing gc is local to it). */
export const collectGarbage: () => void = (() => {
  v8.setFlagsFromString("--expose-gc")
  return vm.runInNewContext("gc") as () => void
})()
