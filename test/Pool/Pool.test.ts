/**
 * SshPool: 1,000 runs over 10 destinations open exactly 10 connections;
 * after the server restarts, the next call connects again.
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Redacted from "effect/Redacted"
import * as Scope from "effect/Scope"
import { expect, it } from "vitest"
import * as Auth from "../../src/Auth/ClientAuth.ts"
import * as HostKeys from "../../src/Auth/HostKeys.ts"
import * as PrivateKey from "../../src/Auth/PrivateKey.ts"
import type * as SshClient from "../../src/Client.ts"
import * as NodeSsh from "../../src/NodeSsh.ts"
import * as SshPool from "../../src/Pool.ts"
import * as SshServer from "../../src/Server.ts"

const hostKey = PrivateKey.generate("ssh-ed25519")

const startServer = (port: number, logins: { count: number }) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const server = yield* Scope.provide(SshServer.serve({
      port,
      hostKeys: [hostKey],
      // ten logins at once from one address: past sshd's per-source defaults
      perSourceMaxStartups: "none",
      auth: { password: ({ password }) => Effect.succeed(Redacted.value(password) === "pw") },
      session: { exec: (session, command) => Effect.as(Effect.orDie(session.write(`${session.user}: ${command}\n`)), 0) },
      onEvent: (event) => Effect.sync(() => {
        if (event._tag === "Authenticated") logins.count++
      })
    }), scope)
    return { server, scope }
  })

it("1,000 runs over 10 destinations open 10 connections; a restarted server is connected to again", async () => {
  const logins = { count: 0 }
  const result = await Effect.runPromise(Effect.gen(function*() {
    const first = yield* startServer(0, logins)
    const port = first.server.address.port
    const destination = (i: number): SshClient.ConnectOptions => ({
      host: "127.0.0.1",
      port,
      username: `user${i}`,
      auth: [Auth.password("pw")],
      hostKeys: HostKeys.fixed(hostKey.publicKey)
    })
    const pool = yield* SshPool.make({ idleTimeToLive: "1 minute" })
    const outputs = yield* Effect.forEach(
      Array.from({ length: 1000 }, (_, i) => i),
      (i) => Effect.map(pool.run(destination(i % 10), `job ${i}`), (r) => r.stdout === `user${i % 10}: job ${i}\n`),
      { concurrency: 50 }
    )
    const loginsBefore = logins.count
    const sizeBefore = yield* pool.size
    // the server goes away and comes back on the same port
    yield* Scope.close(first.scope, Exit.void)
    yield* Effect.sleep("100 millis")
    const second = yield* startServer(port, logins)
    const again = yield* pool.run(destination(3), "after the restart")
    yield* Scope.close(second.scope, Exit.void)
    return { intact: outputs.filter(Boolean).length, loginsBefore, sizeBefore, again: again.stdout, loginsAfter: logins.count }
  }).pipe(Effect.scoped, Effect.provide(NodeSsh.layer)))
  expect(result.intact).toBe(1000)
  expect(result.loginsBefore).toBe(10)
  expect(result.sizeBefore).toBe(10)
  expect(result.again).toBe("user3: after the restart\n")
  expect(result.loginsAfter).toBe(11)
}, 60_000)
