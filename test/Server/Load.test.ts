/**
 * Server under load: 200 concurrent connections from our client, each with 5
 * channels open at the same time, all served correctly; once the clients are
 * gone every connection and channel is released and each Connected event has
 * its Closed event.
 */
import { describe, expect, it } from "vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { runScoped } from "../helpers.ts"
import * as SshClient from "../../src/Client.ts"
import * as SshServer from "../../src/Server.ts"
import { clientOptions, EventLog, serverOptions, waitUntil } from "./fixtures.ts"

const CONNECTIONS = 200
const CHANNELS = 5

const decoder = new TextDecoder()
const range = (n: number) => Array.from({ length: n }, (_, i) => i)

describe("server load", () => {
  it(`${CONNECTIONS} concurrent connections × ${CHANNELS} channels`, async () => {
    const r = await runScoped(Effect.gen(function*() {
      const log = new EventLog()
      // every handshake at once from one address: past MaxStartups' and PerSourceMaxStartups' defaults, as with sshd
      const server = yield* SshServer.serve(serverOptions({ onEvent: log.record, maxStartups: String(CONNECTIONS), perSourceMaxStartups: "none" }))
      const port = server.address.port
      const allOpen = yield* Deferred.make<void>()
      let ready = 0
      let peak = { connections: 0, channels: 0 }

      const client = (i: number) =>
        Effect.scoped(Effect.gen(function*() {
          const ssh = yield* SshClient.connect(clientOptions(port))
          const procs = yield* Effect.forEach(range(CHANNELS), () => ssh.exec("cat"), { concurrency: "unbounded" })
          // every channel of every connection is open at this point: the server holds them all at once
          if (++ready === CONNECTIONS) {
            peak = { connections: server.connectionCount(), channels: server.channelCount() }
            Deferred.doneUnsafe(allOpen, Effect.void)
          }
          yield* Deferred.await(allOpen)
          return yield* Effect.forEach(procs, (proc, k) =>
            Effect.gen(function*() {
              const [, out] = yield* Effect.all([
                Effect.andThen(proc.write(`connection ${i} channel ${k}`), proc.closeStdin),
                Stream.runCollect(proc.stdout)
              ], { concurrency: "unbounded" })
              const exit = yield* proc.exit
              return { text: out.map((c) => decoder.decode(c)).join(""), exit }
            }), { concurrency: "unbounded" })
        }))

      const results = yield* Effect.forEach(range(CONNECTIONS), client, { concurrency: "unbounded" })
      // the clients' scopes are closed: the server sees each DISCONNECT and releases everything
      yield* waitUntil(() => log.closed.length === CONNECTIONS, `${CONNECTIONS} Closed events`)
      yield* waitUntil(() => server.connectionCount() === 0 && server.channelCount() === 0, "counts back to 0")
      return {
        results,
        peak,
        after: { connections: server.connectionCount(), channels: server.channelCount() },
        connected: log.connected.length,
        closed: log.closed,
        authenticated: log.events.filter((e) => e._tag === "Authenticated").length
      }
    }).pipe(Effect.timeout("50 seconds")))

    expect(r.peak).toEqual({ connections: CONNECTIONS, channels: CONNECTIONS * CHANNELS })
    for (const [i, channels] of r.results.entries()) {
      expect(channels.map((c) => c.text)).toEqual(range(CHANNELS).map((k) => `connection ${i} channel ${k}`))
      for (const c of channels) expect(c.exit).toEqual({ _tag: "Exited", code: 0 })
    }
    expect(r.after).toEqual({ connections: 0, channels: 0 })
    expect(r.connected).toBe(CONNECTIONS)
    expect(r.authenticated).toBe(CONNECTIONS)
    expect(r.closed.length).toBe(CONNECTIONS)
    // the clients said goodbye with DISCONNECT: no connection ended in error
    expect(r.closed.filter((e) => e.error !== undefined).map((e) => e.error?.message)).toEqual([])
  })
})
