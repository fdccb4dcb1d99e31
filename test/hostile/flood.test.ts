/**
 * Peers that flood `effect-ssh serve` (in a child process) and never read:
 * the server must stop reading from them (TCP backpressure) or disconnect
 * them, and its memory must stay bounded whatever they send.
 */
import * as net from "node:net"
import { afterEach, describe, expect, it } from "vitest"
import * as N from "../../src/Wire/MessageNumber.ts"
import * as ChannelMessages from "../../src/Channel/Messages.ts"
import * as AuthMessages from "../../src/Auth/Messages.ts"
import * as TransportMessages from "../../src/Transport/Messages.ts"
import { concat } from "../../src/internal/bytes.ts"
import { connectPeer, SshPeer } from "../fuzz/peer.ts"
import { mib, password, type ServeProcess, startServe, user } from "./serveProcess.ts"

const MiB = 1024 * 1024
/**
 * Resident memory the attacks of one test may add to the server. Most of it is not held by anything: processing
 * hundreds of thousands of packets leaves memory the allocator keeps for reuse (RSS rose ~170 MiB with one
 * attacking connection and no more with four), so the bound is on the whole, and the bound that scales with the
 * attack is the one on live objects. Four connections sending a million unassigned messages measured +186 to
 * +264 MiB of RSS on a loaded 2-core machine, with live objects +33 to +47 MiB: /proc/PID/smaps shows the growth
 * spread over V8's anonymous pages (the malloc heap held 60 MiB), not one growing buffer.
 */
const RSS_OVERALL = 320 * MiB
/** Memory held by live objects (heap and external, after a full collection) one attacking connection may add: the
 * transport's bounds (4 MiB queued for the upper layer, 2 MiB of replies) and the socket's and framer's buffers. */
const LIVE_PER_CONNECTION = 32 * MiB

/** What the server holds now: resident memory, and what its live objects hold. */
const memory = async (server: ServeProcess) => {
  const usage = await server.liveMemory()
  return { rss: await server.heldBytes(), live: usage.heapUsed + usage.external }
}

/** Asserts the growth from `before` stays within the bounds for `connections` attackers. */
const expectBounded = async (server: ServeProcess, before: { rss: number; live: number }, connections: number, what: string) => {
  const after = await memory(server)
  const rss = after.rss - before.rss
  const live = after.live - before.live
  const summary = `${what}: server RSS +${mib(rss)}, live objects +${mib(live)}`
  console.log(summary)
  expect(live, summary).toBeLessThan(LIVE_PER_CONNECTION * connections)
  expect(rss, summary).toBeLessThan(RSS_OVERALL)
}

let server: ServeProcess | undefined
afterEach(async () => {
  await server?.stop()
  server = undefined
})

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/**
 * Writes batches of sealed packets as fast as the server takes them, never reading, for at most `ms`: stops once a
 * write has not drained for `stallMs` (the server stopped reading) or the server closed the connection.
 */
const flood = async (
  peer: SshPeer,
  nextBatch: () => ReadonlyArray<Uint8Array>,
  ms: number,
  maxPackets = Infinity,
  stallMs = 3000
) => {
  const socket = peer.pipe.socket
  socket.pause()
  let packets = 0
  let bytes = 0
  const deadline = Date.now() + ms
  while (Date.now() < deadline && packets < maxPackets) {
    if (socket.destroyed) return { packets, bytes, outcome: "closed" as const }
    const batch = nextBatch().map((payload) => peer.writer.seal(payload))
    packets += batch.length
    for (const packet of batch) bytes += packet.length
    if (!socket.write(Buffer.concat(batch))) {
      const drained = await Promise.race([
        new Promise<boolean>((resolve) => socket.once("drain", () => resolve(true))),
        new Promise<boolean>((resolve) => socket.once("close", () => resolve(false))),
        sleep(stallMs).then(() => false)
      ])
      if (!drained) return { packets, bytes, outcome: socket.destroyed ? "closed" as const : "stalled" as const }
    }
  }
  return { packets, bytes, outcome: "sent everything" as const }
}

/** A raw client from `localAddress` (attackers come from their own addresses: 127.0.0.0/8 is all loopback). */
const peerFrom = (port: number, localAddress: string): Promise<SshPeer> =>
  new Promise((resolve, reject) => {
    const socket = net.connect({ host: "127.0.0.1", port, localAddress })
    socket.once("error", reject)
    socket.once("connect", () => {
      socket.off("error", reject)
      resolve(new SshPeer(socket, "client", { idleMs: 10_000 }))
    })
  })

/** Admission off: these tests are about what one admitted connection can cost, not about admitting it. */
const admitAll = ["--max-startups", "1000", "--per-source-max-startups", "none", "--per-source-penalties", "off"]

const authenticatedPeer = async (port: number): Promise<SshPeer> => {
  const peer = await connectPeer(port, { idleMs: 10_000 })
  await peer.clientHandshake()
  await peer.passwordAuth(user, password)
  return peer
}

describe("flooding peers that never read", () => {
  it("unassigned messages before authentication: the server stops reading (its UNIMPLEMENTED replies are bounded)", async () => {
    server = await startServe()
    const attackers = 4
    const peers = await Promise.all(Array.from({ length: attackers }, async (_, i) => {
      const peer = await peerFrom(server!.port, `127.0.0.${i + 2}`)
      await peer.clientHandshake()
      return peer
    }))
    const before = await memory(server)
    const unassigned = Uint8Array.of(15)
    // each one is answered with UNIMPLEMENTED, which these peers never read
    const results = await Promise.all(peers.map((peer) =>
      flood(peer, () => Array.from({ length: 10_000 }, () => unassigned), 45_000, 600_000)))
    const packets = results.reduce((n, r) => n + r.packets, 0)
    await expectBounded(server, before, attackers, `${packets} unassigned messages from ${attackers} connections (${results.map((r) => r.outcome).join(", ")})`)
    for (const peer of peers) peer.pipe.destroy()
  }, 120_000)

  it("authentication requests sent faster than they are answered: what waits is bounded in bytes", async () => {
    server = await startServe()
    const peer = await connectPeer(server.port, { idleMs: 10_000 })
    await peer.clientHandshake()
    peer.send(TransportMessages.encodeServiceRequest("ssh-userauth"))
    await peer.expect(N.SERVICE_ACCEPT)
    const before = await memory(server)
    // "none" attempts do not count towards the authentication tries; each is answered with FAILURE, which this
    // peer never reads: once the replies back up, the authentication layer waits, and the large ones pile up
    const none = AuthMessages.encodeRequest({ user, service: "ssh-connection", request: { method: "none" } })
    const large = concat([none, new Uint8Array(30_000)])
    let tiny = 0
    const result = await flood(peer, () => {
      tiny++
      return tiny <= 15 ? Array.from({ length: 10_000 }, () => none) : Array.from({ length: 64 }, () => large)
    }, 40_000)
    expect(["stalled", "closed"], `${result.packets} packets, ${mib(result.bytes)} sent`).toContain(result.outcome)
    await expectBounded(server, before, 1, `${result.packets} USERAUTH_REQUESTs, ${mib(result.bytes)} (${result.outcome})`)
    peer.pipe.destroy()
  }, 90_000)

  it("global requests after authentication, each wanting a reply: the server stops reading once its backlog is full", async () => {
    server = await startServe()
    const peer = await authenticatedPeer(server.port)
    const before = await memory(server)
    // tiny requests fill the server's outbox with replies; the large ones would then pile up unread
    const tiny = ChannelMessages.globalRequest("flood@test", true, new Uint8Array(0))
    const large = ChannelMessages.globalRequest("flood@test", true, new Uint8Array(200_000))
    let round = 0
    const result = await flood(peer, () => (round++ % 2 === 0 ? Array.from({ length: 5000 }, () => tiny) : [large, large, large]), 25_000)
    expect(["stalled", "closed"], `${result.packets} packets, ${mib(result.bytes)} sent`).toContain(result.outcome)
    await expectBounded(server, before, 1, `${result.packets} global requests, ${mib(result.bytes)} (${result.outcome})`)
    peer.pipe.destroy()
  }, 60_000)
})

describe("partial packets", () => {
  it("a packet announced larger than authentication allows is refused before it is buffered", async () => {
    server = await startServe({ args: admitAll })
    const connections = 200
    const before = await memory(server)
    const sockets = await Promise.all(Array.from({ length: connections }, () =>
      new Promise<net.Socket>((resolve, reject) => {
        const socket = net.connect({ host: "127.0.0.1", port: server!.port }, () => resolve(socket))
        socket.once("error", reject)
      })))
    const closed = sockets.map((socket) => new Promise<void>((resolve) => socket.once("close", () => resolve())))
    for (const socket of sockets) {
      socket.on("error", () => {})
      socket.on("data", () => {})
      const header = Buffer.alloc(5)
      // packet_length + 4 is a multiple of the block size: a packet the cipher itself would accept
      header.writeUInt32BE(261_996, 0)
      header[4] = 4
      // a version line, then most of one packet that never completes
      socket.write(Buffer.concat([Buffer.from("SSH-2.0-Partial_1.0\r\n"), header, Buffer.alloc(261_000)]))
    }
    const allClosed = await Promise.race([Promise.all(closed).then(() => true), sleep(20_000).then(() => false)])
    for (const socket of sockets) socket.destroy()
    expect(allClosed, "the server closed every connection").toBe(true)
    await expectBounded(server, before, 1, `${connections} partial packets of 262,000 bytes`)
    expect(server.log()).toContain("LimitExceeded")
  }, 60_000)
})
