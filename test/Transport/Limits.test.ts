/**
 * The transport's limits on what a peer can cost us: packet size and key
 * exchanges before authentication (the byte bounds of its queues are
 * exercised against a server process in test/hostile/flood.test.ts).
 */
import { randomBytes } from "node:crypto"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Scope from "effect/Scope"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as NodeSsh from "../../src/NodeSsh.ts"
import * as SshServer from "../../src/Server.ts"
import * as PrivateKey from "../../src/Auth/PrivateKey.ts"
import { LimitExceeded } from "../../src/SshError.ts"
import * as Cipher from "../../src/Transport/Cipher.ts"
import { PacketReader, PacketWriter } from "../../src/Transport/Packet.ts"
import { defaultLimits } from "../../src/Transport/Transport.ts"
import * as N from "../../src/Wire/MessageNumber.ts"
import { connectPeer, type SshPeer } from "../fuzz/peer.ts"

describe("PacketReader.limitPacketLength", () => {
  const wire = (payloadLength: number) => new PacketWriter(Cipher.plainSealer(randomBytes)).seal(new Uint8Array(payloadLength).fill(2))

  it("refuses a packet announced larger than the limit as soon as its length is read", () => {
    const reader = new PacketReader()
    reader.limitPacketLength({ bytes: 1000, phase: "before authentication" })
    const packet = wire(2000)
    reader.push(packet.subarray(0, 16))
    let error: unknown
    try {
      reader.next()
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(LimitExceeded)
    expect((error as LimitExceeded).message).toMatch(/packet of \d+ bytes; at most 1000 are accepted before authentication/)
  })

  it("accepts packets up to the limit, and larger ones once it is lifted", () => {
    const reader = new PacketReader()
    reader.limitPacketLength({ bytes: 1000, phase: "before authentication" })
    reader.push(wire(900))
    expect(reader.next()?.length).toBe(900)
    reader.limitPacketLength(undefined)
    reader.push(wire(50_000))
    expect(reader.next()?.length).toBe(50_000)
  })
})

const hostKey = PrivateKey.generate("ssh-ed25519")
const scope = Scope.makeUnsafe()
const events: Array<SshServer.ServerEvent> = []
let server: SshServer.SshServer

beforeAll(async () => {
  server = await Effect.runPromise(SshServer.serve({
    port: 0,
    hostKeys: [hostKey],
    auth: { password: ({ password }) => Effect.succeed(Redacted.value(password) === "pw") },
    session: { exec: (session) => Effect.as(session.write("ok\n"), 0) },
    onEvent: (event) => Effect.sync(() => void events.push(event))
  }).pipe(Scope.provide(scope), Effect.provide(NodeSsh.layer)))
})

afterAll(() => Effect.runPromise(Scope.close(scope, Effect.void as never)))

/** One key re-exchange started by the peer (client role), to completion. */
const rekey = async (peer: SshPeer) => {
  await peer.exchangeKexInit()
  const result = await peer.clientKex()
  await peer.expectNewKeys(result)
  peer.sendNewKeys(result)
}

describe("key exchanges before authentication", () => {
  it(`at most ${defaultLimits.preAuthKex} (the first included): the next KEXINIT ends the connection with LimitExceeded`, async () => {
    const peer = await connectPeer(server.address.port)
    await peer.clientHandshake()
    for (let i = 1; i < defaultLimits.preAuthKex; i++) await rekey(peer)
    const closedBefore = events.filter((e) => e._tag === "Closed").length
    await expect(rekey(peer)).rejects.toThrow()
    expect(peer.disconnect?.code).toBe(N.DisconnectReason.PROTOCOL_ERROR)
    expect(peer.disconnect?.description).toContain("key exchange 4 before authenticating")
    await peer.pipe.waitClosed()
    for (const deadline = Date.now() + 5000; events.filter((e) => e._tag === "Closed").length === closedBefore && Date.now() < deadline;) {
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    const closed = events.filter((e) => e._tag === "Closed").at(-1)
    expect(closed?._tag === "Closed" && closed.error?.reason._tag).toBe("LimitExceeded")
  })

  it("are not limited once the peer has authenticated", async () => {
    const peer = await connectPeer(server.address.port)
    await peer.clientHandshake()
    await peer.passwordAuth("me", "pw")
    for (let i = 0; i < defaultLimits.preAuthKex + 2; i++) await rekey(peer)
    const session = await peer.openSession()
    expect(session.remoteId).toBeGreaterThanOrEqual(0)
    peer.pipe.destroy()
  })
})
