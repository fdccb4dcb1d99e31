/**
 * A channel whose CLOSEs are exchanged while one of its requests is still
 * being decided: on a live connection it is released once the decision ends
 * and the connection goes on; when the connection dies first (the client
 * breaks the protocol) it ends with the connection at once. The recorded
 * fuzz case in `test/fuzz/ServerFuzz.test.ts` covers the same state reached
 * in one batch, where the request's worker never gets to start.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Redacted from "effect/Redacted"
import * as Scope from "effect/Scope"
import * as NodeSsh from "../../src/NodeSsh.ts"
import * as SshServer from "../../src/Server.ts"
import * as PrivateKey from "../../src/Auth/PrivateKey.ts"
import * as ChannelMessages from "../../src/Channel/Messages.ts"
import * as Requests from "../../src/Channel/Requests.ts"
import * as N from "../../src/Wire/MessageNumber.ts"
import { connectPeer } from "../fuzz/peer.ts"

const USER = "alice"
const PASSWORD = "wonderland"
const events: Array<SshServer.ServerEvent> = []
const serverScope = Scope.makeUnsafe()
let server: SshServer.SshServer
/** Opened to let the window-change decisions end. */
let release: Deferred.Deferred<void>

beforeAll(async () => {
  release = Deferred.makeUnsafe<void>()
  server = await Effect.runPromise(SshServer.serve({
    port: 0,
    hostKeys: [PrivateKey.generate("ssh-ed25519")],
    auth: { password: ({ user, password }) => Effect.succeed(user === USER && Redacted.value(password) === PASSWORD) },
    session: {
      exec: (session, command) => Effect.as(Effect.orDie(session.write(`${command}\n`)), 0),
      // a decision that takes its time: the channel's requests are not done when its CLOSEs are exchanged
      decide: { windowChange: () => Effect.as(Deferred.await(release), true) }
    },
    perSourcePenalties: false,
    perSourceMaxStartups: "none",
    onEvent: (event) => Effect.sync(() => void events.push(event))
  }).pipe(Scope.provide(serverScope), Effect.provide(NodeSsh.layer)))
})

afterAll(() => Effect.runPromise(Scope.close(serverScope, Exit.void)))

const closedEventFor = (port: number) =>
  events.find((e): e is Extract<SshServer.ServerEvent, { _tag: "Closed" }> => e._tag === "Closed" && e.remotePort === port)

/** Authenticated; a session ran `echo hi` and both CLOSEs are exchanged while a window-change is being decided. */
const closedWhileDeciding = async () => {
  const peer = await connectPeer(server.address.port, { idleMs: 3000 })
  await peer.clientHandshake()
  await peer.passwordAuth(USER, PASSWORD)
  const channel = await peer.openSession()
  peer.send(ChannelMessages.channelRequest(channel.remoteId, "exec", true, Requests.encodeString("hi")))
  await peer.expect(N.CHANNEL_SUCCESS)
  peer.send(ChannelMessages.channelRequest(channel.remoteId, "window-change", true, Requests.encodeWindowChange({ columns: 80, rows: 24 })))
  // the command ends: exit-status, EOF and the server's CLOSE, which we answer
  await peer.expect(N.CHANNEL_CLOSE, [N.CHANNEL_DATA, N.CHANNEL_REQUEST, N.CHANNEL_EOF, N.CHANNEL_WINDOW_ADJUST])
  peer.send(ChannelMessages.channelClose(channel.remoteId))
  return { peer, localPort: peer.pipe.socket.localPort! }
}

const waitFor = async <A>(probe: () => A | undefined, ms: number, what: string): Promise<A> => {
  const deadline = Date.now() + ms
  for (;;) {
    const value = probe()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

describe("a channel closed while its requests are being decided", () => {
  it("the connection dying ends it at once: DISCONNECT, closed socket and the Closed event within 2 s", async () => {
    const { peer, localPort } = await closedWhileDeciding()
    await new Promise((r) => setTimeout(r, 100))
    const started = Date.now()
    // data for a channel that does not exist: a protocol error ends the connection
    peer.send(ChannelMessages.channelData(77, new Uint8Array(1)))
    expect(await peer.drain(4000), "the server closes the connection").toBe(true)
    expect(peer.disconnect?.code).toBe(N.DisconnectReason.PROTOCOL_ERROR)
    const event = await waitFor(() => closedEventFor(localPort), 2000, "the Closed event")
    expect(event.error?.reason._tag).toBe("ProtocolError")
    expect(Date.now() - started).toBeLessThan(2000)
    await waitFor(() => server.connectionCount() === 0 ? true : undefined, 2000, "no connection left")
    expect(server.channelCount()).toBe(0)
  })

  it("on a live connection it is closed once the decision ends, and the connection goes on", async () => {
    const { peer, localPort } = await closedWhileDeciding()
    Deferred.doneUnsafe(release, Exit.void)
    const next = await peer.openSession(1)
    peer.send(ChannelMessages.channelRequest(next.remoteId, "exec", true, Requests.encodeString("again")))
    await peer.expect(N.CHANNEL_SUCCESS)
    const data = await peer.expect(N.CHANNEL_DATA, [N.CHANNEL_WINDOW_ADJUST])
    expect(ChannelMessages.decode(data)).toMatchObject({ _tag: "Data", data: new TextEncoder().encode("again\n") })
    peer.send(ChannelMessages.channelClose(next.remoteId))
    await waitFor(() => server.channelCount() === 0 ? true : undefined, 2000, "both channels released")
    expect(closedEventFor(localPort)).toBeUndefined()
    peer.pipe.destroy()
  })
})
