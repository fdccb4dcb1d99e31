/**
 * The transport's sequencing, event by event with no sockets (`TransportMachine`),
 * then through the shell: two real transports over an in-memory connection,
 * where a `TestClock` drives the rekey timer.
 */
import { describe, expect, it } from "vitest"
import { it as effectIt } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as TestClock from "effect/testing/TestClock"
import * as PrivateKey from "../../src/Auth/PrivateKey.ts"
import * as ChannelMessages from "../../src/Channel/Messages.ts"
import { hostKeySigner } from "../../src/Server.ts"
import * as Algorithms from "../../src/Transport/Algorithms.ts"
import * as Messages from "../../src/Transport/Messages.ts"
import * as Transport from "../../src/Transport/Transport.ts"
import { type MachineOptions, passesDuringKex, TransportMachine } from "../../src/Transport/TransportMachine.ts"
import * as N from "../../src/Wire/MessageNumber.ts"
import { socketPair, transportSockets } from "../fuzz/memorySocket.ts"
import { defaultKexInit, SshPeer } from "../fuzz/peer.ts"

const options = (overrides: Partial<MachineOptions> = {}): MachineOptions => ({
  role: "client",
  rekeyBytes: 1_000_000,
  rekeyPackets: 1_000,
  rekeyIntervalMs: 60_000,
  preAuthKex: 3,
  ...overrides
})

const agreement = { strict: true, extInfo: false, ignoreGuess: false }

/** The reason a call throws, or undefined. */
const thrown = (f: () => unknown): { readonly _tag: string; readonly message: string } | undefined => {
  try {
    f()
  } catch (e) {
    return e as { _tag: string; message: string }
  }
  return undefined
}

/** One whole key exchange as the machine sees it when we start it: KEXINITs, the kex reply, both NEWKEYS. */
const ourExchange = (machine: TransportMachine, now: number, strict = true) => {
  expect(machine.requestKex()).toBe(true)
  expect(machine.receive(N.KEXINIT, now)).toBe("kexinit")
  expect(machine.kexInitReceived()).toBe(false)
  machine.negotiated({ ...agreement, strict })
  expect(machine.receive(N.KEXDH_REPLY, now)).toBe("kex")
  expect(machine.kexMessage(N.KEXDH_REPLY)).toBe(true)
  const out = machine.kexFinished()
  expect(machine.receive(N.NEWKEYS, now)).toBe("newkeys")
  const into = machine.newKeysReceived(now)
  return { out, into }
}

describe("TransportMachine", () => {
  it("runs a first strict key exchange: KEXINIT first, sequence numbers reset at each NEWKEYS", () => {
    const machine = new TransportMachine(options(), 0)
    expect(machine.firstKexDone).toBe(false)
    const { out, into } = ourExchange(machine, 10)
    expect(machine.strict).toBe(true)
    expect(out.resetSequence).toBe(true)
    expect(into).toEqual({ resetSequence: true, first: true })
    expect(machine.firstKexDone).toBe(true)
    expect(machine.kexRunning).toBe(false)
    expect(machine.kexCount).toBe(1)
    // a rekey keeps strict kex: the reset applies to every NEWKEYS
    const again = ourExchange(machine, 20)
    expect(again.out.resetSequence).toBe(true)
    expect(again.into).toEqual({ resetSequence: true, first: false })
  })

  it("resets no sequence number without strict kex", () => {
    const machine = new TransportMachine(options(), 0)
    const { out, into } = ourExchange(machine, 0, false)
    expect(out.resetSequence).toBe(false)
    expect(into.resetSequence).toBe(false)
  })

  it("strict kex: any non-kex message during the first exchange is a ProtocolError", () => {
    for (const type of [N.IGNORE, N.DEBUG, N.EXT_INFO, N.UNIMPLEMENTED, 8, N.SERVICE_REQUEST, N.CHANNEL_DATA]) {
      const machine = new TransportMachine(options(), 0)
      machine.requestKex()
      machine.receive(N.KEXINIT, 0)
      machine.kexInitReceived()
      machine.negotiated(agreement)
      expect(thrown(() => machine.receive(type, 0))?._tag, `message ${type}`).toBe("ProtocolError")
    }
  })

  it("without strict kex, IGNORE passes during the first exchange and unassigned numbers are answered", () => {
    const machine = new TransportMachine(options(), 0)
    machine.requestKex()
    machine.receive(N.KEXINIT, 0)
    machine.kexInitReceived()
    machine.negotiated({ ...agreement, strict: false })
    expect(machine.receive(N.IGNORE, 0)).toBe("ignore")
    expect(machine.receive(8, 0)).toBe("unimplemented")
    // but nothing of the upper layers before the first NEWKEYS
    expect(thrown(() => machine.receive(N.SERVICE_REQUEST, 0))?.message).toMatch(/before the first key exchange completed/)
  })

  it("strict kex: the KEXINIT must be the very first packet", () => {
    const machine = new TransportMachine(options(), 0)
    machine.requestKex()
    expect(machine.receive(N.IGNORE, 0)).toBe("ignore") // strict is not known yet
    machine.receive(N.KEXINIT, 0)
    machine.kexInitReceived()
    expect(thrown(() => machine.negotiated(agreement))?.message).toMatch(/KEXINIT was not the first packet/)
  })

  it("a server refuses a first packet that is not KEXINIT", () => {
    const machine = new TransportMachine(options({ role: "server" }), 0)
    machine.requestKex()
    expect(thrown(() => machine.receive(N.IGNORE, 0))?.message).toMatch(/first packet was 2, not KEXINIT/)
  })

  it("orders NEWKEYS: not before our exchange has its result; no kex message after it", () => {
    const machine = new TransportMachine(options(), 0)
    machine.requestKex()
    machine.receive(N.KEXINIT, 0)
    machine.kexInitReceived()
    machine.negotiated(agreement)
    machine.receive(N.NEWKEYS, 0)
    expect(thrown(() => machine.newKeysReceived(0))?.message).toMatch(/NEWKEYS before the key exchange finished/)

    const other = new TransportMachine(options(), 0)
    other.requestKex()
    other.receive(N.KEXINIT, 0)
    other.kexInitReceived()
    other.negotiated(agreement)
    other.kexMessage(N.KEXDH_REPLY)
    other.kexFinished()
    expect(thrown(() => other.kexMessage(N.KEXDH_REPLY))?.message).toMatch(/unexpected key exchange message 31/)
    expect(thrown(() => other.kexFinished())?._tag).toBe("ProtocolError")
    other.newKeysReceived(0)
    expect(thrown(() => other.newKeysReceived(0))?.message).toMatch(/NEWKEYS before the key exchange finished/)
  })

  it("a kex message before the KEXINITs are negotiated is a ProtocolError", () => {
    const machine = new TransportMachine(options(), 0)
    machine.requestKex()
    expect(thrown(() => machine.kexMessage(N.KEXDH_REPLY))?.message).toMatch(/unexpected key exchange message/)
  })

  it("holds the upper layer's sends from our KEXINIT until our NEWKEYS, and lets transport messages pass", () => {
    const machine = new TransportMachine(options(), 0)
    ourExchange(machine, 0)
    expect(machine.holdsSend(N.CHANNEL_DATA)).toBe(false)
    machine.requestKex()
    expect(machine.holdsSend(N.CHANNEL_DATA)).toBe(true)
    expect(machine.holdsSend(N.SERVICE_REQUEST)).toBe(true)
    expect(machine.holdsSend(N.IGNORE)).toBe(false)
    expect(machine.holdsSend(N.KEXDH_INIT)).toBe(false)
    machine.receive(N.KEXINIT, 0)
    machine.kexInitReceived()
    machine.negotiated(agreement)
    machine.kexMessage(N.KEXDH_REPLY)
    expect(machine.holdsSend(N.CHANNEL_DATA)).toBe(true)
    machine.kexFinished()
    // released once our NEWKEYS is out, before theirs arrives
    expect(machine.holdsSend(N.CHANNEL_DATA)).toBe(false)
    expect(machine.kexRunning).toBe(true)
    expect(passesDuringKex(N.DISCONNECT)).toBe(true)
    expect(passesDuringKex(N.USERAUTH_REQUEST)).toBe(false)
  })

  it("delivers upper-layer messages, except between the peer's KEXINIT and its NEWKEYS", () => {
    const machine = new TransportMachine(options(), 0)
    ourExchange(machine, 0)
    expect(machine.receive(N.CHANNEL_DATA, 0)).toBe("deliver")
    expect(machine.receive(N.SERVICE_ACCEPT, 0)).toBe("deliver")
    // we started a rekey: the peer may still send data until its own KEXINIT
    machine.requestKex()
    expect(machine.receive(N.CHANNEL_DATA, 0)).toBe("deliver")
    machine.receive(N.KEXINIT, 0)
    machine.kexInitReceived()
    expect(machine.peerInKex).toBe(true)
    expect(thrown(() => machine.receive(N.CHANNEL_DATA, 0))?.message).toMatch(/message 94 during a key exchange/)
  })

  it("counts what goes out after our NEWKEYS toward the next rekey, while the peer's NEWKEYS is on its way", () => {
    const machine = new TransportMachine(options({ rekeyBytes: 1000 }), 0)
    ourExchange(machine, 0)
    machine.sealed(1000)
    expect(machine.rekeyDue(0)).toBe(true)
    machine.requestKex()
    machine.receive(N.KEXINIT, 0)
    machine.kexInitReceived()
    machine.negotiated(agreement)
    machine.kexMessage(N.KEXDH_REPLY)
    machine.kexFinished()
    // under the new sending keys already; the old count is gone, this one stays
    machine.sealed(700)
    machine.read(200) // still under the old receiving keys: forgotten at their NEWKEYS
    machine.receive(N.NEWKEYS, 0)
    machine.newKeysReceived(0)
    expect(machine.rekeyDue(0)).toBe(false)
    machine.sealed(300)
    expect(machine.rekeyDue(0)).toBe(true)
  })

  it("rekeys by bytes in either direction", () => {
    const machine = new TransportMachine(options({ rekeyBytes: 1000 }), 0)
    ourExchange(machine, 0)
    machine.read(600)
    expect(machine.rekeyDue(0)).toBe(false)
    machine.sealed(400)
    expect(machine.rekeyDue(0)).toBe(true)
    // not while one runs, and the count starts over after it
    machine.requestKex()
    expect(machine.rekeyDue(0)).toBe(false)
    machine.receive(N.KEXINIT, 0)
    machine.kexInitReceived()
    machine.negotiated(agreement)
    machine.kexMessage(N.KEXDH_REPLY)
    machine.kexFinished()
    machine.newKeysReceived(0)
    expect(machine.rekeyDue(0)).toBe(false)
  })

  it("rekeys by packets in either direction", () => {
    const machine = new TransportMachine(options({ rekeyPackets: 10 }), 0)
    ourExchange(machine, 0) // 3 packets received, counted until the NEWKEYS that ends the exchange
    for (let i = 0; i < 5; i++) machine.receive(N.CHANNEL_DATA, 0)
    for (let i = 0; i < 4; i++) machine.sealed(100)
    expect(machine.rekeyDue(0)).toBe(false)
    machine.sealed(100)
    expect(machine.rekeyDue(0)).toBe(true)
  })

  it("rekeys by time since the last exchange, `now` being an input", () => {
    const machine = new TransportMachine(options({ rekeyIntervalMs: 60_000 }), 1_000)
    // no time trigger before the first exchange, whatever the clock says
    expect(machine.rekeyDue(1_000_000)).toBe(false)
    ourExchange(machine, 5_000)
    expect(machine.rekeyDelay(5_000)).toBe(60_000)
    expect(machine.rekeyDelay(50_000)).toBe(15_000)
    expect(machine.rekeyDue(64_999)).toBe(false)
    expect(machine.rekeyDue(65_000)).toBe(true)
    expect(machine.rekeyDelay(70_000)).toBe(0)
    machine.requestKex()
    // while one runs the timer looks again a whole interval later, and never spins
    expect(machine.rekeyDelay(70_000)).toBe(60_000)
    const eager = new TransportMachine(options({ rekeyIntervalMs: 0 }), 0)
    eager.requestKex()
    expect(eager.rekeyDelay(0)).toBe(1000)
  })

  it("answers a peer-initiated rekey with our KEXINIT, and refuses a second KEXINIT in one exchange", () => {
    const machine = new TransportMachine(options(), 0)
    ourExchange(machine, 0)
    expect(machine.receive(N.KEXINIT, 0)).toBe("kexinit")
    expect(machine.kexInitReceived()).toBe(true) // ours must be sent first
    expect(machine.kexRunning).toBe(true)
    expect(machine.holdsSend(N.CHANNEL_DATA)).toBe(true)
    expect(machine.requestKex()).toBe(false) // already running: no second KEXINIT of ours
    machine.receive(N.KEXINIT, 0)
    expect(thrown(() => machine.kexInitReceived())?.message).toMatch(/second KEXINIT during a key exchange/)
  })

  it("sends EXT_INFO once, after the server's first NEWKEYS, when the client asked for it", () => {
    const server = new TransportMachine(options({ role: "server" }), 0)
    const exchange = (extInfo: boolean) => {
      server.requestKex()
      server.receive(N.KEXINIT, 0)
      server.kexInitReceived()
      server.negotiated({ ...agreement, extInfo })
      server.kexMessage(N.KEXDH_INIT)
      const out = server.kexFinished()
      server.newKeysReceived(0)
      return out.sendExtInfo
    }
    expect(exchange(true)).toBe(true)
    expect(exchange(true)).toBe(false)

    const client = new TransportMachine(options(), 0)
    client.requestKex()
    client.receive(N.KEXINIT, 0)
    client.kexInitReceived()
    client.negotiated({ ...agreement, extInfo: true })
    client.kexMessage(N.KEXDH_REPLY)
    expect(client.kexFinished().sendExtInfo).toBe(false)
  })

  it("limits the key exchanges a peer starts before authentication, and lifts the limit after", () => {
    const peerRekey = (machine: TransportMachine) => {
      machine.receive(N.KEXINIT, 0)
      machine.kexInitReceived()
      machine.negotiated(agreement)
      machine.kexMessage(N.KEXDH_INIT)
      machine.kexFinished()
      machine.newKeysReceived(0)
    }
    const machine = new TransportMachine(options({ role: "server", preAuthKex: 2 }), 0)
    peerRekey(machine)
    peerRekey(machine)
    machine.receive(N.KEXINIT, 0)
    const error = thrown(() => machine.kexInitReceived())
    expect(error?._tag).toBe("LimitExceeded")
    expect(error?.message).toMatch(/key exchange 3 before authenticating; at most 2/)

    const authenticated = new TransportMachine(options({ role: "server", preAuthKex: 2 }), 0)
    peerRekey(authenticated)
    peerRekey(authenticated)
    authenticated.authenticated()
    peerRekey(authenticated)
    expect(authenticated.kexCount).toBe(3)
  })

  it("drops the peer's wrong-guess kex packet", () => {
    const machine = new TransportMachine(options({ role: "server" }), 0)
    machine.requestKex()
    machine.receive(N.KEXINIT, 0)
    machine.kexInitReceived()
    machine.negotiated({ ...agreement, ignoreGuess: true })
    expect(machine.kexMessage(N.KEXDH_INIT)).toBe(false)
    expect(machine.kexMessage(N.KEXDH_INIT)).toBe(true)
  })

  it("keeps the time of the last packet received, and the counters", () => {
    const machine = new TransportMachine(options(), 100)
    expect(machine.lastReceivedAt).toBe(100)
    ourExchange(machine, 250)
    machine.read(4000)
    machine.sealed(300)
    machine.receive(N.CHANNEL_DATA, 900)
    expect(machine.lastReceivedAt).toBe(900)
    expect([machine.bytesIn, machine.bytesOut, machine.packetsIn, machine.packetsOut]).toEqual([4000, 300, 4, 1])
  })

  it("refuses an empty packet", () => {
    const machine = new TransportMachine(options(), 0)
    ourExchange(machine, 0)
    expect(thrown(() => machine.receive(-1, 0))?.message).toBe("empty packet")
  })
})

// ---------------------------------------------------------------------------------------------------------------
// Through the shell: two real transports over an in-memory connection
// ---------------------------------------------------------------------------------------------------------------

const hostKey = PrivateKey.generate("ssh-ed25519")
const algorithms = Algorithms.resolve({})

/** Lets the in-memory sockets' callbacks run (they are real I/O, not driven by the TestClock). */
const settle = (done: () => boolean) =>
  Effect.gen(function*() {
    for (let turn = 0; turn < 2000 && !done(); turn++) {
      yield* Effect.promise(() => new Promise((resolve) => setImmediate(resolve)))
    }
    return done()
  })

const transportPair = (rekeyIntervalMs?: number) =>
  Effect.gen(function*() {
    const sockets = transportSockets()
    const [client, server] = yield* Effect.all([
      Transport.make(sockets.client, { role: "client", algorithms, verifyHostKey: () => Effect.void, rekeyIntervalMs }),
      Transport.make(sockets.server, { role: "server", algorithms, hostKeys: [hostKeySigner(hostKey)], rekeyIntervalMs })
    ], { concurrency: 2 })
    return { client, server }
  })

describe("Transport.make with its machine", () => {
  effectIt.effect("rekeys a quiet connection once the TestClock passes the rekey interval", () =>
    Effect.gen(function*() {
      const { client, server } = yield* transportPair(60_000)
      expect([client.stats().kexCount, server.stats().kexCount]).toEqual([1, 1])
      yield* TestClock.adjust("59 seconds")
      yield* settle(() => false)
      expect(client.stats().kexCount).toBe(1)
      yield* TestClock.adjust("2 seconds")
      const rekeyed = yield* settle(() => client.stats().kexCount === 2 && server.stats().kexCount === 2)
      expect(rekeyed).toBe(true)
      // the connection still carries data under the new keys
      yield* client.send(ChannelMessages.channelData(0, new Uint8Array([1, 2, 3])))
      const payload = yield* server.receive
      expect(payload[0]).toBe(N.CHANNEL_DATA)
      yield* client.disconnect()
    }))

  effectIt.effect("holds a send made during a rekey and delivers it after NEWKEYS", () =>
    Effect.gen(function*() {
      const { client, server } = yield* transportPair()
      const before = client.stats().packetsOut
      const rekey = yield* Effect.forkChild(client.rekey)
      for (let turn = 0; turn < 100 && client.stats().packetsOut === before; turn++) yield* Effect.yieldNow
      // our KEXINIT is out, the server's reply not in: this payload must wait for our NEWKEYS, or the server
      // would see it inside its exchange (a ProtocolError that fails the rekey)
      expect(client.stats().packetsOut).toBe(before + 1)
      yield* client.send(Messages.encodeServiceRequest("ssh-userauth"))
      yield* Fiber.join(rekey)
      const payload = yield* server.receive
      expect(Transport.decodeServiceName(payload)).toBe("ssh-userauth")
      expect([client.stats().kexCount, server.stats().kexCount]).toEqual([2, 2])
      yield* client.disconnect()
    }))

  effectIt.effect("answers a rekey the peer starts", () =>
    Effect.gen(function*() {
      const { client, server } = yield* transportPair()
      yield* server.rekey
      expect(server.stats().kexCount).toBe(2)
      // the server is done once the client's NEWKEYS arrived; the client once the server's did
      expect(yield* settle(() => client.stats().kexCount === 2)).toBe(true)
      // EXT_INFO came once, after the first NEWKEYS
      expect(client.extensions().has("server-sig-algs")).toBe(true)
      yield* server.disconnect()
    }))
})

describe("the fuzz peer's handshake, sequenced by its own machine", () => {
  it("keeps strict kex through a rekey whose KEXINITs no longer carry the markers", async () => {
    const pair = socketPair()
    const peer = new SshPeer(pair.peer, "client", { idleMs: 2000 })
    // chacha20-poly1305's nonce is the sequence number: a reset missed on either side fails the next packet's MAC
    const kexInit = () => defaultKexInit("client", { ciphersClientToServer: ["chacha20-poly1305@openssh.com"], ciphersServerToClient: ["chacha20-poly1305@openssh.com"] })
    const served = Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const server = yield* Transport.make(pair.socket, { role: "server", algorithms, hostKeys: [hostKeySigner(hostKey)] })
      const first = yield* server.receive
      const second = yield* server.receive
      return { types: [first[0], second[0]], kexCount: server.stats().kexCount }
    })))
    await peer.exchangeVersions()
    await peer.exchangeKexInit(kexInit())
    const result = await peer.clientKex()
    await peer.expectNewKeys(result)
    peer.sendNewKeys(result)
    peer.send(Messages.encodeServiceRequest("ssh-userauth"))
    // the peer's rekey: our server's KEXINIT now offers no strict marker, so this negotiation says "not strict"
    const rekeyed = await peer.exchangeKexInit(kexInit())
    expect(rekeyed.strictKex).toBe(false)
    const again = await peer.clientKex()
    await peer.expectNewKeys(again)
    peer.sendNewKeys(again)
    peer.send(Messages.encodeServiceRequest("ssh-connection"))
    expect(await served).toEqual({ types: [N.SERVICE_REQUEST, N.SERVICE_REQUEST], kexCount: 2 })
    peer.pipe.destroy()
  })
})
