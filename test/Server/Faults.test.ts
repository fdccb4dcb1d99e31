/**
 * Server fault tolerance: connections cut from the client side at every phase
 * (version exchange, key exchange, authentication, right after a channel
 * opens, in the middle of a bulk transfer in both directions). After each cut
 * the server is still up and serves a new connection, every per-connection
 * resource is released (connection and channel counts back to 0, one Closed
 * event per Connected event), and the Closed event carries a typed SshError.
 * A client that stalls before authenticating is dropped after the login grace
 * time. Closing the server's scope sends DISCONNECT to the clients still
 * connected.
 */
import { describe, expect, it } from "vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as FileSystem from "effect/FileSystem"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as net from "node:net"
import { runScoped } from "../helpers.ts"
import * as SshClient from "../../src/Client.ts"
import * as SshServer from "../../src/Server.ts"
import * as Auth from "../../src/Auth/ClientAuth.ts"
import * as HostKeys from "../../src/Auth/HostKeys.ts"
import { SshError } from "../../src/SshError.ts"
import { PacketWriter } from "../../src/Transport/Packet.ts"
import { plainSealer } from "../../src/Transport/Cipher.ts"
import { versionLine } from "../../src/Transport/Version.ts"
import { defaultKexInit } from "../fuzz/peer.ts"
import { clientOptions, cuttableSocket, EventLog, serverOptions, waitUntil } from "./fixtures.ts"

const randomBytes = (n: number) => globalThis.crypto.getRandomValues(new Uint8Array(n))

/** A raw TCP client and everything it has received so far. */
const rawConnect = (port: number) =>
  Effect.callback<{ readonly sock: net.Socket; readonly received: () => Buffer }>((resume) => {
    const chunks: Array<Buffer> = []
    const sock = net.createConnection({ host: "127.0.0.1", port })
    sock.on("data", (chunk) => chunks.push(chunk))
    sock.on("error", () => {})
    sock.once("connect", () => resume(Effect.succeed({ sock, received: () => Buffer.concat(chunks) })))
  })

/** The first KEXINIT a client would send, framed as the plain first packet. */
const clientKexInitPacket = () => new PacketWriter(plainSealer(randomBytes)).seal(defaultKexInit("client"))

interface FaultContext {
  readonly port: number
  readonly server: SshServer.SshServer
}

/** A fault: makes one connection, cuts it, and returns the client's port (the server's `remotePort`). */
type Fault = (ctx: FaultContext) => Effect.Effect<number, SshError, SshClient.Connector | FileSystem.FileSystem>

/** A raw client that stops at some point of the handshake, still connected. */
type Stall = (port: number) => Effect.Effect<net.Socket, SshError>

/** Connected, nothing sent: the server waits for our version line. */
const stallSilent: Stall = (port) =>
  Effect.gen(function*() {
    const { sock, received } = yield* rawConnect(port)
    yield* waitUntil(() => received().includes("\r\n"), "the server's version line")
    return sock
  })

/** Half a version line sent. */
const stallInVersion: Stall = (port) =>
  Effect.gen(function*() {
    const { sock, received } = yield* rawConnect(port)
    sock.write("SSH-2.0-half")
    yield* waitUntil(() => received().length > 0, "the server's version line")
    yield* Effect.sleep(20)
    return sock
  })

/** Versions and KEXINITs exchanged: the server waits for the key exchange init. */
const stallAfterKexInit: Stall = (port) =>
  Effect.gen(function*() {
    const { sock, received } = yield* rawConnect(port)
    sock.write(versionLine("SSH-2.0-cutter"))
    sock.write(clientKexInitPacket())
    const version = () => received().indexOf("\r\n")
    // the server's KEXINIT follows its version line: a packet of several hundred bytes
    yield* waitUntil(() => version() > 0 && received().length - version() - 2 > 200, "the server's KEXINIT")
    yield* Effect.sleep(20)
    return sock
  })

/** Stalls, then cuts. */
const cutAfter = (stall: Stall): Fault => ({ port }) =>
  Effect.map(stall(port), (sock) => {
    const localPort = sock.localPort!
    sock.destroy()
    return localPort
  })

/** Our client, cut while checking the host key: the server has sent its reply and waits for NEWKEYS. */
const duringKeyExchange: Fault = ({ port }) =>
  Effect.gen(function*() {
    const tcp = cuttableSocket(port)
    const exit = yield* Effect.exit(Effect.scoped(SshClient.connect(clientOptions(port, {
      socket: tcp.socket,
      hostKeys: HostKeys.callback(() => Effect.sync(() => (tcp.cut(), true)))
    }))))
    expect(Exit.isFailure(exit)).toBe(true)
    return tcp.localPort()!
  })

/** Our client, cut while answering a keyboard-interactive prompt: the server waits for the answer. */
const duringAuthentication: Fault = ({ port }) =>
  Effect.gen(function*() {
    const tcp = cuttableSocket(port)
    const exit = yield* Effect.exit(Effect.scoped(SshClient.connect(clientOptions(port, {
      socket: tcp.socket,
      auth: [Auth.keyboardInteractive(() => Effect.sync(() => (tcp.cut(), ["123"])))]
    }))))
    expect(Exit.isFailure(exit)).toBe(true)
    return tcp.localPort()!
  })

/** A session channel open on the server, then cut. */
const afterChannelOpen: Fault = ({ port, server }) =>
  Effect.scoped(Effect.gen(function*() {
    const tcp = cuttableSocket(port)
    const ssh = yield* SshClient.connect(clientOptions(port, { socket: tcp.socket }))
    yield* ssh.openChannel("session")
    expect(server.channelCount()).toBe(1)
    tcp.cut()
    return tcp.localPort()!
  }))

/** `cat` with megabytes in flight both ways (our stdin to the server, its echo back), then cut. */
const duringBulkTransfer: Fault = ({ port, server }) =>
  Effect.scoped(Effect.gen(function*() {
    const tcp = cuttableSocket(port)
    const ssh = yield* SshClient.connect(clientOptions(port, { socket: tcp.socket }))
    const proc = yield* ssh.exec("cat")
    const block = new Uint8Array(256 * 1024).fill(7)
    let echoed = 0
    const reachedMiddle = yield* Deferred.make<void>()
    const feed = Effect.forever(proc.write(block))
    const drain = Stream.runForEach(proc.stdout, (chunk) =>
      Effect.sync(() => {
        echoed += chunk.length
        if (echoed >= 8 * 1024 * 1024) Deferred.doneUnsafe(reachedMiddle, Effect.void)
      }))
    yield* Effect.forkScoped(Effect.ignore(feed))
    yield* Effect.forkScoped(Effect.ignore(drain))
    yield* Deferred.await(reachedMiddle)
    expect(server.channelCount()).toBe(1)
    expect(ssh.stats().bytesOut).toBeGreaterThan(8 * 1024 * 1024)
    tcp.cut()
    return tcp.localPort()!
  }))

const faults: ReadonlyArray<readonly [string, Fault]> = [
  ["connected, nothing sent", cutAfter(stallSilent)],
  ["in the middle of the version line", cutAfter(stallInVersion)],
  ["after KEXINIT", cutAfter(stallAfterKexInit)],
  ["during the key exchange", duringKeyExchange],
  ["during authentication", duringAuthentication],
  ["right after a channel opened", afterChannelOpen],
  ["in the middle of a bulk transfer both ways", duringBulkTransfer]
]

/** Runs a fault, then checks what the server made of it and that it still serves. */
const cutAndCheck = (ctx: FaultContext, log: EventLog, fault: Fault) =>
  Effect.gen(function*() {
    const remotePort = yield* fault(ctx)
    yield* waitUntil(() => log.closedFrom(remotePort) !== undefined, `the Closed event of port ${remotePort}`)
    yield* waitUntil(() => ctx.server.connectionCount() === 0 && ctx.server.channelCount() === 0, "counts back to 0")
    const closed = log.closedFrom(remotePort)!
    const healthy = yield* Effect.scoped(Effect.flatMap(SshClient.connect(clientOptions(ctx.port)), (ssh) => ssh.run("echo still here")))
    yield* waitUntil(() => log.closed.length === log.connected.length, "every Connected to be Closed")
    return {
      error: closed.error,
      healthy: healthy.stdout,
      connections: ctx.server.connectionCount(),
      channels: ctx.server.channelCount(),
      connected: log.connected.length,
      closed: log.closed.length
    }
  })

const expectCleanCut = (r: Effect.Success<ReturnType<typeof cutAndCheck>>) => {
  expect(r.error).toBeInstanceOf(SshError)
  expect(r.error?.reason._tag).toBe("ConnectionClosed")
  expect(r.healthy).toBe("still here\n")
  expect({ connections: r.connections, channels: r.channels }).toEqual({ connections: 0, channels: 0 })
  expect(r.closed).toBe(r.connected)
}

describe("server faults: a connection cut by the client", () => {
  for (const [name, fault] of faults) {
    it(name, async () => {
      const r = await runScoped(Effect.gen(function*() {
        const log = new EventLog()
        const server = yield* SshServer.serve(serverOptions({ onEvent: log.record }))
        return yield* cutAndCheck({ port: server.address.port, server }, log, fault)
      }).pipe(Effect.timeout("20 seconds")))
      expectCleanCut(r)
      // the cut connection and the healthy one
      expect(r.connected).toBe(2)
    })
  }

  it("every fault three times over, against one server", async () => {
    const rounds = await runScoped(Effect.gen(function*() {
      const log = new EventLog()
      // 21 connections from 127.0.0.1 cut before authenticating would earn it an active penalty (noauth, authfail)
      const server = yield* SshServer.serve(serverOptions({ onEvent: log.record, perSourcePenalties: false }))
      const ctx = { port: server.address.port, server }
      return yield* Effect.forEach([1, 2, 3].flatMap(() => faults), ([, fault]) => cutAndCheck(ctx, log, fault))
    }).pipe(Effect.timeout("40 seconds")))
    for (const r of rounds) expectCleanCut(r)
    expect(rounds.at(-1)!.connected).toBe(faults.length * 3 * 2)
  })
})

describe("server faults: a client that stalls before authenticating", () => {
  it("is dropped after the login grace time, whatever the phase", async () => {
    const r = await runScoped(Effect.gen(function*() {
      const log = new EventLog()
      const server = yield* SshServer.serve(serverOptions({
        onEvent: log.record,
        auth: { ...serverOptions().auth, loginGraceTime: "300 millis" }
      }))
      const port = server.address.port
      const started = Date.now()
      const socks = yield* Effect.forEach([stallSilent, stallInVersion, stallAfterKexInit], (stall) => stall(port))
      yield* waitUntil(() => log.closed.length === 3, "3 Closed events")
      const elapsed = Date.now() - started
      // the server closed its end of each
      yield* waitUntil(() => socks.every((sock) => sock.readableEnded), "the server to close the sockets")
      for (const sock of socks) sock.destroy()
      return { elapsed, errors: log.closed.map((e) => e.error), connections: server.connectionCount() }
    }).pipe(Effect.timeout("10 seconds")))
    expect(r.errors.map((e) => e?.reason._tag)).toEqual(["Timeout", "Timeout", "Timeout"])
    expect(r.elapsed).toBeLessThan(3_000)
    expect(r.connections).toBe(0)
  })
})

describe("server shutdown", () => {
  it("closing the server's scope sends DISCONNECT to every client and closes them", async () => {
    const r = await runScoped(Effect.gen(function*() {
      const log = new EventLog()
      const serverScope = yield* Scope.make()
      const server = yield* Scope.provide(SshServer.serve(serverOptions({ onEvent: log.record })), serverScope)
      const port = server.address.port
      const clients = yield* Effect.forEach([0, 1, 2, 3, 4], () => SshClient.connect(clientOptions(port)))
      // some connections are busy: a running command, an idle open channel
      const running = yield* clients[0]!.exec("sleep 60000")
      yield* clients[1]!.openChannel("session")
      yield* waitUntil(() => server.connectionCount() === 5 && server.channelCount() === 2, "5 connections, 2 channels")
      const started = Date.now()
      yield* Scope.close(serverScope, Exit.void)
      const closing = Date.now() - started
      const errors = yield* Effect.forEach(clients, (ssh) => Effect.flip(Deferred.await(ssh.closed)))
      const exit = yield* Effect.exit(running.exit)
      const reconnect = yield* Effect.flip(Effect.scoped(SshClient.connect(clientOptions(port))))
      return {
        closing,
        errors,
        exit,
        reconnect,
        counts: { connections: server.connectionCount(), channels: server.channelCount() },
        connected: log.connected.length,
        closed: log.closed
      }
    }).pipe(Effect.timeout("20 seconds")))
    for (const e of r.errors) {
      expect(e).toBeInstanceOf(SshError)
      expect(e.reason._tag).toBe("PeerDisconnected")
    }
    // the server does not wait out a channel close timeout while it shuts down
    expect(r.closing).toBeLessThan(5_000)
    expect(r.counts).toEqual({ connections: 0, channels: 0 })
    expect(r.connected).toBe(5)
    expect(r.closed.length).toBe(5)
    // a shutdown is ours, not a connection's failure
    expect(r.closed.map((e) => e.error)).toEqual([undefined, undefined, undefined, undefined, undefined])
    expect(r.reconnect.reason._tag).toBe("ConnectFailed")
  })
})
