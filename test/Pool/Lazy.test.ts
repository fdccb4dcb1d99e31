/**
 * The lazy connection and the SshClient service: no socket until first use,
 * one connection shared by concurrent first users, a new one after the old
 * one died; the layer closes it.
 */
import * as Effect from "effect/Effect"
import type * as FileSystem from "effect/FileSystem"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import { expect, it } from "vitest"
import * as Auth from "../../src/Auth/ClientAuth.ts"
import * as HostKeys from "../../src/Auth/HostKeys.ts"
import * as PrivateKey from "../../src/Auth/PrivateKey.ts"
import * as SshClient from "../../src/Client.ts"
import * as NodeSsh from "../../src/NodeSsh.ts"
import * as SshServer from "../../src/Server.ts"

const hostKey = PrivateKey.generate("ssh-ed25519")

const withServer = <A, E>(use: (port: number, events: Array<string>) => Effect.Effect<A, E, SshClient.Connector | FileSystem.FileSystem>) =>
  Effect.runPromise(Effect.gen(function*() {
    const events: Array<string> = []
    const server = yield* SshServer.serve({
      port: 0,
      hostKeys: [hostKey],
      perSourceMaxStartups: "none",
      auth: { password: ({ password }) => Effect.succeed(Redacted.value(password) === "pw") },
      session: { exec: (session, command) => Effect.as(Effect.orDie(session.write(`ran ${command}\n`)), 0) },
      onEvent: (event) => Effect.sync(() => void events.push(event._tag))
    })
    return yield* use(server.address.port, events)
  }).pipe(Effect.scoped, Effect.provide(NodeSsh.layer)))

const options = (port: number): SshClient.ConnectOptions => ({
  host: "127.0.0.1",
  port,
  username: "me",
  auth: [Auth.password("pw")],
  hostKeys: HostKeys.fixed(hostKey.publicKey)
})

it("opens no socket until first use; concurrent first users share one connection; a dead one is replaced", async () => {
  const r = await withServer((port, events) =>
    Effect.scoped(Effect.gen(function*() {
      const ssh = yield* SshClient.lazy(options(port), { reconnect: Schedule.recurs(3) })
      yield* Effect.sleep("200 millis")
      const before = { events: events.length, connected: yield* ssh.isConnected }
      const outputs = yield* Effect.forEach([1, 2, 3, 4, 5], (i) => Effect.map(ssh.run(`job ${i}`), (x) => x.stdout), { concurrency: 5 })
      const connectsAfterFirstUse = events.filter((e) => e === "Connected").length
      // the connection dies under it: the next use connects again
      const live = yield* ssh.get
      yield* Effect.ignore(live.connection.transport.disconnect(11, "test"))
      yield* Effect.sleep("100 millis")
      const again = yield* ssh.run("after")
      return { before, outputs, connectsAfterFirstUse, again: again.stdout, connects: events.filter((e) => e === "Connected").length }
    })))
  expect(r.before).toEqual({ events: 0, connected: false })
  expect(r.outputs).toEqual(["ran job 1\n", "ran job 2\n", "ran job 3\n", "ran job 4\n", "ran job 5\n"])
  expect(r.connectsAfterFirstUse).toBe(1)
  expect(r.again).toBe("ran after\n")
  expect(r.connects).toBe(2)
}, 30_000)

it("SshClient.layer provides the service; the layer's end closes the connection", async () => {
  const r = await withServer((port, events) =>
    Effect.gen(function*() {
      const out = yield* Effect.gen(function*() {
        const ssh = yield* SshClient.SshClient
        return (yield* ssh.run("via the layer")).stdout
      }).pipe(Effect.provide(SshClient.layer(options(port))))
      yield* Effect.sleep("100 millis")
      return { out, events: [...events] }
    }))
  expect(r.out).toBe("ran via the layer\n")
  expect(r.events).toContain("Closed")
}, 30_000)
