/**
 * Opening a channel is interruptible: a caller that gives up (a timeout) is
 * not held until the peer answers, and a late confirmation is answered with
 * CLOSE instead of breaking the connection.
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { expect, it } from "vitest"
import * as Auth from "../../src/Auth/ClientAuth.ts"
import * as HostKeys from "../../src/Auth/HostKeys.ts"
import * as PrivateKey from "../../src/Auth/PrivateKey.ts"
import * as ChannelMessages from "../../src/Channel/Messages.ts"
import * as SshClient from "../../src/Client.ts"
import * as NodeSsh from "../../src/NodeSsh.ts"
import * as N from "../../src/Wire/MessageNumber.ts"
import { fakeServer, PeerGone } from "../fuzz/peer.ts"

const hostKey = PrivateKey.generate("ssh-ed25519")
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

it("a timeout while the peer takes 3 s to confirm returns at once; the late confirmation gets CLOSE and the connection runs a command", async () => {
  let closedByClient = false
  const server = await fakeServer(async (peer) => {
    await peer.serverHandshake()
    await peer.acceptAuth()
    // the first open is answered only after 3 s
    const first = ChannelMessages.decode(await peer.expect(N.CHANNEL_OPEN))
    if (first._tag !== "ChannelOpen") throw new PeerGone("unexpected", "not a CHANNEL_OPEN")
    const second = peer.expect(N.CHANNEL_OPEN)
    await sleep(3000)
    peer.send(ChannelMessages.channelOpenConfirmation(first.sender, 1, 2 * 1024 * 1024, 32 * 1024))
    // the client opened another channel meanwhile; it must close the first one now
    const next = ChannelMessages.decode(await second)
    if (next._tag !== "ChannelOpen") throw new PeerGone("unexpected", "not a CHANNEL_OPEN")
    const close = ChannelMessages.decode(await peer.expect(N.CHANNEL_CLOSE))
    closedByClient = close._tag === "Close" && close.recipient === 1
    peer.send(ChannelMessages.channelClose(first.sender))
    peer.send(ChannelMessages.channelOpenConfirmation(next.sender, 2, 2 * 1024 * 1024, 32 * 1024))
    await peer.runCommand(next.sender, "second\n")
  }, { hostKey, idleMs: 10_000 })
  try {
    const result = await Effect.runPromise(Effect.gen(function*() {
      const ssh = yield* SshClient.connect({
        host: "127.0.0.1",
        port: server.port,
        username: "me",
        auth: [Auth.password("pw")],
        hostKeys: HostKeys.fixed(hostKey.publicKey),
        keepaliveInterval: 0
      })
      const started = Date.now()
      const timedOut = yield* Effect.exit(Effect.scoped(Effect.timeout(ssh.exec("first"), "50 millis")))
      const elapsed = Date.now() - started
      const second = yield* Effect.scoped(ssh.run("second"))
      return { timedOut, elapsed, second }
    }).pipe(Effect.scoped, Effect.provide(NodeSsh.layer)))
    expect(Exit.isFailure(result.timedOut)).toBe(true)
    expect(result.elapsed).toBeLessThan(200)
    expect(result.second.stdout).toBe("second\n")
    expect(closedByClient).toBe(true)
  } finally {
    await server.close()
  }
}, 30_000)
