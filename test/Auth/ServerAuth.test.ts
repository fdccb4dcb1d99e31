/**
 * Server authentication against guessing: sshd's failed-attempt delay (the
 * pure arithmetic, the per-user jitter) and, over loopback, that failed
 * attempts are slowed on their own connection only while another client
 * logs in at full speed; MaxAuthTries and repeated "none" requests.
 */
import { describe, expect, it } from "vitest"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { runScoped } from "../helpers.ts"
import * as SshClient from "../../src/Client.ts"
import * as SshServer from "../../src/Server.ts"
import * as Auth from "../../src/Auth/ClientAuth.ts"
import * as ServerAuth from "../../src/Auth/ServerAuth.ts"
import * as AuthMessages from "../../src/Auth/Messages.ts"
import * as Messages from "../../src/Transport/Messages.ts"
import * as N from "../../src/Wire/MessageNumber.ts"
import { clientOptions, serverOptions } from "../Server/fixtures.ts"
import { connectPeer } from "../fuzz/peer.ts"

const PASSWORD = "correct horse"

/** The fixture server, also taking alice's password. */
const options = (auth: Partial<ServerAuth.ServerAuthOptions>) =>
  serverOptions({
    auth: {
      ...serverOptions().auth,
      password: ({ user, password }) => Effect.succeed(user === "alice" && Redacted.value(password) === PASSWORD),
      ...auth
    },
    perSourcePenalties: false
  })

/** `n` wrong passwords on one connection; how long until the server gave up, and how it ended. */
const guess = (port: number, n: number) =>
  Effect.gen(function*() {
    const started = performance.now()
    const exit = yield* Effect.exit(Effect.scoped(SshClient.connect(clientOptions(port, {
      auth: Array.from({ length: n }, (_, i) => Auth.password(`guess ${i}`))
    }))))
    return { ms: performance.now() - started, failed: exit._tag === "Failure" }
  })

describe("failure delay (pure)", () => {
  it("waits out the rest of the delay, rounds a slow check up to the delay doubled, gives up past 5 s", () => {
    expect(ServerAuth.remainingDelayMillis(0, 5)).toBe(5)
    expect(ServerAuth.remainingDelayMillis(2, 5)).toBe(3)
    expect(ServerAuth.remainingDelayMillis(5, 5)).toBe(0)
    expect(ServerAuth.remainingDelayMillis(7, 5)).toBe(3)
    expect(ServerAuth.remainingDelayMillis(21, 5)).toBe(19)
    expect(ServerAuth.remainingDelayMillis(4999, 5)).toBe(5120 - 4999)
    expect(ServerAuth.remainingDelayMillis(5001, 5)).toBe(0)
    expect(ServerAuth.remainingDelayMillis(1, 0)).toBe(0)
  })

  it("the per-user delay is 5 to 9.3 ms by default, the same for a user, different across users and secrets", () => {
    const secret = new Uint8Array(32).fill(1)
    const users = Array.from({ length: 200 }, (_, i) => `user${i}`)
    const delays = users.map((u) => ServerAuth.userDelayMillis(secret, u, ServerAuth.DEFAULT_FAILURE_DELAY_MS))
    for (const d of delays) {
      expect(d).toBeGreaterThanOrEqual(5)
      expect(d).toBeLessThan(5 + 4.3)
    }
    expect(new Set(delays).size).toBe(200)
    expect(Math.max(...delays) - Math.min(...delays)).toBeGreaterThan(3)
    expect(ServerAuth.userDelayMillis(secret, "user7", 5)).toBe(delays[7])
    expect(ServerAuth.userDelayMillis(new Uint8Array(32).fill(2), "user7", 5)).not.toBe(delays[7])
  })
})

describe("failure delay over loopback", () => {
  it("failed attempts are slowed on their own connection; another client logs in meanwhile at full speed", async () => {
    const r = await runScoped(Effect.gen(function*() {
      const server = yield* SshServer.serve(options({ failureDelay: "200 millis", maxTries: 20 }))
      const port = server.address.port
      // warm up (JIT, key setup), so the timings compare connections, not the first one's start-up
      yield* Effect.scoped(Effect.flatMap(SshClient.connect(clientOptions(port)), (ssh) => ssh.run("echo warm")))
      const [guesser, login] = yield* Effect.all([
        guess(port, 8),
        Effect.gen(function*() {
          yield* Effect.sleep(300)
          const started = performance.now()
          const out = yield* Effect.scoped(Effect.flatMap(
            SshClient.connect(clientOptions(port, { auth: [Auth.password(PASSWORD)] })),
            (ssh) => ssh.run("echo in")
          ))
          return { ms: performance.now() - started, stdout: out.stdout, endedAt: performance.now() }
        })
      ], { concurrency: "unbounded" })
      return { guesser, login }
    }))
    // 8 failures, each answered no sooner than 200 ms after it arrived: at least 1.6 s, at most 5 guesses a second
    expect(r.guesser.failed).toBe(true)
    expect(r.guesser.ms).toBeGreaterThanOrEqual(8 * 200)
    // the other connection logs in (with the right password) and runs a command while the guesser still waits
    expect(r.login.stdout).toBe("in\n")
    expect(r.login.ms).toBeLessThan(r.guesser.ms / 2)
  })

  it("by default (5 ms + jitter): a connection's failures take at least 5 ms each", async () => {
    const r = await runScoped(Effect.gen(function*() {
      const server = yield* SshServer.serve(options({ maxTries: 40 }))
      return yield* guess(server.address.port, 40)
    }))
    expect(r.failed).toBe(true)
    expect(r.ms).toBeGreaterThanOrEqual(40 * 5)
  })

  it("without the delay the same guesses go through much faster (the delay is what slows them)", async () => {
    const r = await runScoped(Effect.gen(function*() {
      const server = yield* SshServer.serve(options({ maxTries: 20, failureDelay: 0 }))
      const slow = yield* SshServer.serve(options({ maxTries: 20, failureDelay: "100 millis" }))
      const fast = yield* guess(server.address.port, 10)
      const delayed = yield* guess(slow.address.port, 10)
      return { fast, delayed }
    }))
    expect(r.delayed.ms).toBeGreaterThanOrEqual(1_000)
    expect(r.fast.ms).toBeLessThan(r.delayed.ms / 2)
  })
})

describe("MaxAuthTries", () => {
  it("disconnects after maxTries failures (default 6, as sshd)", async () => {
    const events: Array<SshServer.ServerEvent> = []
    let checked = 0
    const r = await runScoped(Effect.gen(function*() {
      const server = yield* SshServer.serve({
        ...options({ password: () => Effect.sync(() => (checked++, false)) }),
        onEvent: (e) => Effect.sync(() => void events.push(e))
      })
      // ten passwords offered: the server checks six and disconnects
      return yield* guess(server.address.port, 10)
    }))
    expect(r.failed).toBe(true)
    expect(checked).toBe(6)
    const closed = events.find((e) => e._tag === "Closed")
    expect(closed?._tag === "Closed" && closed.error?.reason._tag).toBe("AuthFailed")
  })

  it("a repeated \"none\" is a failed attempt: the first is free, the next six disconnect", async () => {
    const answers = await runScoped(Effect.gen(function*() {
      const server = yield* SshServer.serve(options({}))
      return yield* Effect.promise(async () => {
        const peer = await connectPeer(server.address.port)
        await peer.clientHandshake()
        peer.send(Messages.encodeServiceRequest("ssh-userauth"))
        await peer.expect(N.SERVICE_ACCEPT)
        const got: Array<number> = []
        for (let i = 0; i < 10 && peer.disconnect === undefined; i++) {
          peer.send(AuthMessages.encodeRequest({ user: "alice", service: "ssh-connection", request: { method: "none" } }))
          const reply = await peer.expect(N.USERAUTH_FAILURE, [N.USERAUTH_BANNER]).catch(() => undefined)
          got.push(reply?.[0] ?? N.DISCONNECT)
        }
        peer.pipe.destroy()
        return { got, disconnect: peer.disconnect?.code }
      })
    }))
    expect(answers.got).toEqual([...new Array(6).fill(N.USERAUTH_FAILURE), N.DISCONNECT])
    expect(answers.disconnect).toBe(N.DisconnectReason.NO_MORE_AUTH_METHODS_AVAILABLE)
  })
})
