/**
 * Zip bombs against our server over a real connection: a raw peer that
 * negotiated compression sends one small packet whose zlib stream inflates
 * far past the packet limit. The server must end that connection with a
 * typed `LimitExceeded` (in its `Closed` event and its DISCONNECT), without
 * inflating the bomb, and keep serving others.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as zlib from "node:zlib"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Redacted from "effect/Redacted"
import * as Scope from "effect/Scope"
import * as NodeSsh from "../../src/NodeSsh.ts"
import * as SshClient from "../../src/Client.ts"
import * as SshServer from "../../src/Server.ts"
import * as Auth from "../../src/Auth/ClientAuth.ts"
import * as HostKeys from "../../src/Auth/HostKeys.ts"
import * as PrivateKey from "../../src/Auth/PrivateKey.ts"
import * as Compression from "../../src/Transport/Compression.ts"
import * as N from "../../src/Wire/MessageNumber.ts"
import { exec } from "../Server/fixtures.ts"
import { connectPeer, defaultKexInit, type SshPeer } from "../fuzz/peer.ts"

const hostKey = PrivateKey.generate("ssh-ed25519")
const events: Array<SshServer.ServerEvent> = []
const serverScope = Scope.makeUnsafe()
let server: SshServer.SshServer

/** `n` zeros as a zlib stream: what a peer's first compressed packet looks like, a thousandth of `n` in size. */
const bomb = (n: number): Uint8Array =>
  new Uint8Array(zlib.deflateSync(new Uint8Array(n), { level: 9, finishFlush: zlib.constants.Z_SYNC_FLUSH }))

beforeAll(async () => {
  server = await Effect.runPromise(SshServer.serve({
    port: 0,
    hostKeys: [hostKey],
    auth: { password: ({ user, password }) => Effect.succeed(user === "alice" && Redacted.value(password) === "wonderland") },
    session: { exec },
    algorithms: { compression: ["none", "zlib@openssh.com", "zlib"] },
    perSourcePenalties: false,
    onEvent: (event) => Effect.sync(() => void events.push(event))
  }).pipe(Scope.provide(serverScope), Effect.provide(NodeSsh.layer)))
})

afterAll(async () => {
  await Effect.runPromise(Scope.close(serverScope, Exit.void))
})

const closedEvent = async (port: number) => {
  for (let i = 0; i < 200; i++) {
    const event = events.find((e): e is Extract<SshServer.ServerEvent, { _tag: "Closed" }> => e._tag === "Closed" && e.remotePort === port)
    if (event !== undefined) return event
    await new Promise((r) => setTimeout(r, 10))
  }
  throw new Error(`no Closed event for port ${port}`)
}

/** The DISCONNECT the server sent before closing (its packets compressed as negotiated), then the close. */
const disconnectAndClose = async (peer: SshPeer) => {
  for (;;) {
    const payload = await peer.receive()
    if (payload[0] === N.DISCONNECT) break
  }
  expect(await peer.pipe.waitClosed(3000)).toBe(true)
  return peer.disconnect!
}

describe("a zip bomb against our server", () => {
  it("zlib, before authentication: one packet inflating past 35000 bytes ends the connection with LimitExceeded", async () => {
    const peer = await connectPeer(server.address.port)
    const port = peer.pipe.socket.localPort!
    await peer.versionsAndKexInit(defaultKexInit("client", { compressionClientToServer: ["zlib"], compressionServerToClient: ["zlib"] }))
    expect(peer.negotiated!.compressionClientToServer).toBe("zlib")
    const result = await peer.clientKex()
    await peer.expectNewKeys(result)
    // the server compresses from its NEWKEYS on
    peer.reader.setDecompressor(Compression.makeDecompressor("zlib"))
    peer.sendNewKeys(result)
    // 32 MiB of zeros in one packet of about 32 KiB, below the pre-authentication packet limit
    const payload = bomb(32 * 1024 * 1024)
    expect(payload.length).toBeLessThan(35_000)
    const before = process.memoryUsage().arrayBuffers
    peer.send(payload)
    const disconnect = await disconnectAndClose(peer)
    expect(disconnect.description).toMatch(/inflates past 35000 bytes/)
    const closed = await closedEvent(port)
    expect(closed.error?.reason._tag).toBe("LimitExceeded")
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(16 * 1024 * 1024)
  })

  it("zlib@openssh.com, after authentication: one packet inflating past 256 KiB ends the connection with LimitExceeded", async () => {
    const peer = await connectPeer(server.address.port)
    const port = peer.pipe.socket.localPort!
    await peer.versionsAndKexInit(defaultKexInit("client", {
      compressionClientToServer: ["zlib@openssh.com"],
      compressionServerToClient: ["zlib@openssh.com"]
    }))
    const result = await peer.clientKex()
    await peer.expectNewKeys(result)
    peer.sendNewKeys(result)
    await peer.passwordAuth("alice", "wonderland")
    // delayed compression: both directions start right after USERAUTH_SUCCESS
    peer.reader.setDecompressor(Compression.makeDecompressor("zlib@openssh.com"))
    peer.send(bomb(16 * 1024 * 1024))
    const disconnect = await disconnectAndClose(peer)
    expect(disconnect.description).toMatch(new RegExp(`inflates past ${256 * 1024} bytes`))
    expect((await closedEvent(port)).error?.reason._tag).toBe("LimitExceeded")
  })

  it("the server goes on serving compressed connections", async () => {
    const stdout = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const ssh = yield* SshClient.connect({
        host: "127.0.0.1",
        port: server.address.port,
        username: "alice",
        auth: [Auth.password("wonderland")],
        hostKeys: HostKeys.fixed(hostKey.publicKey),
        compression: true
      })
      expect(ssh.info.algorithms.compressionServerToClient).toBe("zlib@openssh.com")
      return (yield* ssh.run("echo still here")).stdout
    })).pipe(Effect.provide(NodeSsh.layer)))
    expect(stdout).toBe("still here\n")
  })
})
