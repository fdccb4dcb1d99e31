/**
 * Handlers run off the connection's reading fiber: one that takes 5 s to
 * accept a channel delays neither another channel's data nor a keepalive
 * reply on the same connection.
 */
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Stream from "effect/Stream"
import { expect, it } from "vitest"
import type * as Connection from "../../src/Channel/Connection.ts"
import * as NodeSsh from "../../src/NodeSsh.ts"
import * as N from "../../src/Wire/MessageNumber.ts"
import { connectionPair } from "./connectionPair.ts"

const echo = (channel: Connection.SshChannel) =>
  Effect.andThen(channel.stdout.pipe(Stream.runForEach((chunk) => channel.write(chunk))), channel.eof)

it("a handler taking 5 s to accept one channel delays no other channel's data nor a keepalive reply by 100 ms", async () => {
  const result = await Effect.runPromise(Effect.gen(function*() {
    const { client } = yield* connectionPair({}, {
      onChannelOpen: (incoming) =>
        incoming.channelType === "slow"
          ? Effect.andThen(Effect.sleep("5 seconds"), Effect.flatMap(incoming.accept(), echo))
          : incoming.channelType === "echo"
          ? Effect.flatMap(incoming.accept(), echo)
          : incoming.reject(N.ChannelOpenFailure.UNKNOWN_CHANNEL_TYPE, "no"),
      onGlobalRequest: (name) => Effect.succeed(name === "keepalive@openssh.com" ? new Uint8Array(0) : undefined)
    })
    const slowStarted = Date.now()
    const slow = yield* Effect.forkChild(Effect.scoped(Effect.map(client.openChannel("slow"), () => Date.now() - slowStarted)))
    yield* Effect.sleep("100 millis")
    // while the slow open waits for its handler: echoes and keepalives on the same connection
    const echoChannel = yield* client.openChannel("echo")
    const roundTrips: Array<number> = []
    const keepalives: Array<number> = []
    const chunks = echoChannel.stdout.pipe(Stream.toPull)
    const pull = yield* chunks
    for (let i = 0; i < 20; i++) {
      const started = Date.now()
      yield* echoChannel.write(new Uint8Array(1000).fill(i))
      let got = 0
      while (got < 1000) got += (yield* pull).reduce((n, c) => n + c.length, 0)
      roundTrips.push(Date.now() - started)
      const pinged = Date.now()
      const reply = yield* client.globalRequest("keepalive@openssh.com", new Uint8Array(0), true)
      expect(reply).toBeDefined()
      keepalives.push(Date.now() - pinged)
      yield* Effect.sleep("150 millis")
    }
    const slowOpen = yield* Fiber.join(slow)
    return { roundTrips, keepalives, slowOpen }
  }).pipe(Effect.scoped, Effect.provide(NodeSsh.layer)))
  console.log(`slow open ${result.slowOpen} ms; echo round trips max ${Math.max(...result.roundTrips)} ms; keepalive replies max ${Math.max(...result.keepalives)} ms (20 each, during the slow open)`)
  expect(result.slowOpen).toBeGreaterThanOrEqual(4900)
  expect(Math.max(...result.roundTrips)).toBeLessThan(100)
  expect(Math.max(...result.keepalives)).toBeLessThan(100)
}, 30_000)
