/**
 * SshFleet over 200 destinations of one server (and one that refuses):
 * every host reports, failures name their host, output tails are bounded.
 */
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as net from "node:net"
import { expect, it } from "vitest"
import * as Auth from "../../src/Auth/ClientAuth.ts"
import * as HostKeys from "../../src/Auth/HostKeys.ts"
import * as PrivateKey from "../../src/Auth/PrivateKey.ts"
import type * as SshClient from "../../src/Client.ts"
import * as SshFleet from "../../src/Fleet.ts"
import * as NodeSsh from "../../src/NodeSsh.ts"
import * as SshServer from "../../src/Server.ts"

const hostKey = PrivateKey.generate("ssh-ed25519")

const closedPort = () =>
  new Promise<number>((resolve) => {
    const s = net.createServer()
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port
      s.close(() => resolve(port))
    })
  })

it("200 hosts at concurrency 20: every one reports; an unreachable one fails naming its address", async () => {
  const dead = await closedPort()
  const results = await Effect.runPromise(Effect.gen(function*() {
    const server = yield* SshServer.serve({
      port: 0,
      hostKeys: [hostKey],
      perSourceMaxStartups: "none",
      maxStartups: 1000,
      auth: { password: ({ password }) => Effect.succeed(Redacted.value(password) === "pw") },
      session: {
        exec: (session, command) =>
          Effect.gen(function*() {
            // a long output: only its tail is kept
            yield* Effect.orDie(session.write("x".repeat(100_000)))
            yield* Effect.orDie(session.write(`\n${session.user} ran ${command}\n`))
            return session.user === "user7" ? 3 : 0
          })
      }
    })
    const destination = (i: number): SshClient.ConnectOptions => ({
      host: "127.0.0.1",
      port: server.address.port,
      username: `user${i}`,
      auth: [Auth.password("pw")],
      hostKeys: HostKeys.fixed(hostKey.publicKey)
    })
    const destinations = [...Array.from({ length: 200 }, (_, i) => destination(i)), { ...destination(0), port: dead }]
    return yield* SshFleet.collect(destinations, "uptime", { concurrency: 20, keepBytes: 1024, timeout: "30 seconds" })
  }).pipe(Effect.scoped, Effect.provide(NodeSsh.layer)))
  expect(results.length).toBe(201)
  const done = results.filter((r) => r._tag === "Done")
  expect(done.length).toBe(200)
  for (const r of done) {
    expect(r.truncated).toBe(true)
    expect(r.stdout.length).toBeLessThanOrEqual(1024)
    expect(r.stdout).toMatch(/user\d+ ran uptime\n$/)
  }
  expect(done.find((r) => r.stdout.includes("user7 ran"))!.exitCode).toBe(3)
  const failed = results.find((r) => r._tag === "Failed")!
  expect(failed.port).toBe(dead)
  expect(failed._tag === "Failed" && failed.error.message).toContain(`127.0.0.1:${dead}`)
}, 120_000)
