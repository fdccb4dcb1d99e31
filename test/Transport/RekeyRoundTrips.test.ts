/**
 * What a rekey costs in flights over a slow link: two of our transports joined by a relay that holds each
 * direction's bytes and delivers them only at a "hop" (one one-way trip; two hops are a round trip). Between
 * hops each side gets a bounded number of event-loop turns to answer, so a side that waits on a timer, a
 * delayed flush or anything else than the bytes it received spends hops and fails the count.
 *
 * A client-started rekey cannot take fewer than two round trips for the client (KEXINIT → the server's
 * KEXINIT; kex init → the server's reply and NEWKEYS) and five hops for the server (the client's NEWKEYS);
 * a server-started one two round trips for the server (the client answers KEXINIT with its kex init at once).
 */
import { it } from "@effect/vitest"
import { expect } from "vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as PrivateKey from "../../src/Auth/PrivateKey.ts"
import { hostKeySigner } from "../../src/Server.ts"
import * as Algorithms from "../../src/Transport/Algorithms.ts"
import * as Transport from "../../src/Transport/Transport.ts"
import { socketPair } from "../fuzz/memorySocket.ts"

const hostKey = PrivateKey.generate("ssh-ed25519")
const algorithms = Algorithms.resolve({ kex: ["curve25519-sha256"] })

/** Event-loop turns each side gets per hop: ample for a kex step, far short of any timer of milliseconds. */
const TURNS_PER_HOP = 100

const turn = Effect.promise(() => new Promise((resolve) => setImmediate(resolve)))

/** Two transports whose bytes flow freely until `hold()`, then only at each `hop()`. */
const heldLink = Effect.gen(function*() {
  const toServer = socketPair()
  const toClient = socketPair()
  let holding = false
  const held = { toServer: [] as Array<Buffer>, toClient: [] as Array<Buffer> }
  // the client's bytes arrive at toServer.peer and go on to the server's end (toClient.peer), and back
  toServer.peer.on("data", (chunk: Buffer) => holding ? held.toServer.push(chunk) : toClient.peer.write(chunk))
  toClient.peer.on("data", (chunk: Buffer) => holding ? held.toClient.push(chunk) : toServer.peer.write(chunk))
  const [client, server] = yield* Effect.all([
    Transport.make(toServer.socket, { role: "client", algorithms, verifyHostKey: () => Effect.void }),
    Transport.make(toClient.socket, { role: "server", algorithms, hostKeys: [hostKeySigner(hostKey)] })
  ], { concurrency: 2 })
  /** Lets both sides work for a bounded number of turns, then delivers what each wrote: one one-way trip. */
  const hop = Effect.gen(function*() {
    for (let i = 0; i < TURNS_PER_HOP; i++) yield* turn
    if (held.toServer.length > 0) toClient.peer.write(Buffer.concat(held.toServer.splice(0)))
    if (held.toClient.length > 0) toServer.peer.write(Buffer.concat(held.toClient.splice(0)))
  })
  return { client, server, hold: () => void (holding = true), hop }
})

/** Hops until `done`, at most `limit`; the count, or `limit + 1` when it did not happen. */
const hopsUntil = (hop: Effect.Effect<void>, done: () => boolean, limit: number) =>
  Effect.gen(function*() {
    for (let hops = 0; hops <= limit; hops++) {
      if (done()) return hops
      yield* hop
    }
    return done() ? limit : limit + 1
  })

it.live("a rekey the client starts completes in two round trips for the client, five hops for the server", () =>
  Effect.gen(function*() {
    const { client, server, hold, hop } = yield* heldLink
    hold()
    const rekey = yield* Effect.forkChild(client.rekey)
    const clientHops = yield* hopsUntil(hop, () => client.stats().kexCount === 2, 8)
    const serverHops = clientHops + (yield* hopsUntil(hop, () => server.stats().kexCount === 2, 8))
    // done already when the counts hold; otherwise stuck behind the held link
    yield* Fiber.interrupt(rekey)
    expect([clientHops, serverHops]).toEqual([4, 5])
  }))

it.live("a rekey the server starts completes in two round trips for the server", () =>
  Effect.gen(function*() {
    const { client, server, hold, hop } = yield* heldLink
    hold()
    const rekey = yield* Effect.forkChild(server.rekey)
    const serverHops = yield* hopsUntil(hop, () => server.stats().kexCount === 2, 8)
    yield* Fiber.interrupt(rekey)
    expect(serverHops).toBe(4)
    expect(client.stats().kexCount).toBe(2)
  }))
