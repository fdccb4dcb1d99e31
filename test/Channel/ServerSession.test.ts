/**
 * ServerSession: what a client's channel requests may make a session hold
 * — env (count and bytes, only before the start), one pty-req, one
 * exec — over our server and client on loopback, with raw requests on a
 * session channel.
 */
import { describe, expect, it } from "vitest"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { runScoped } from "../helpers.ts"
import * as SshClient from "../../src/Client.ts"
import * as SshServer from "../../src/Server.ts"
import * as Auth from "../../src/Auth/ClientAuth.ts"
import * as HostKeys from "../../src/Auth/HostKeys.ts"
import * as PrivateKey from "../../src/Auth/PrivateKey.ts"
import type { SshChannel } from "../../src/Channel/Connection.ts"
import * as Requests from "../../src/Channel/Requests.ts"
import { DEFAULT_MAX_ENV_BYTES, DEFAULT_MAX_ENV_VARIABLES, type SessionHandlers } from "../../src/Channel/ServerSession.ts"
import type { SshError } from "../../src/SshError.ts"

const hostKey = PrivateKey.generate("ssh-ed25519")
const decoder = new TextDecoder()

/** exec prints, at the client's EOF, the session's environment and pty as JSON and how many window-changes it saw. */
const reporting = (extra: Partial<SessionHandlers> = {}): SessionHandlers => ({
  exec: (session) =>
    Effect.gen(function*() {
      let resizes = 0
      session.onResize(() => void resizes++)
      yield* Stream.runDrain(session.stdin)
      yield* session.write(JSON.stringify({ env: session.env, pty: session.pty ?? null, resizes }))
      return 0
    }),
  ...extra
})

const withChannel = <A>(
  handlers: SessionHandlers,
  f: (channel: SshChannel) => Effect.Effect<A, SshError, Scope.Scope>
) =>
  runScoped(Effect.gen(function*() {
    const server = yield* SshServer.serve({
      port: 0,
      hostKeys: [hostKey],
      auth: { password: ({ password }) => Effect.succeed(Redacted.value(password) === "pw") },
      session: handlers
    })
    const ssh = yield* SshClient.connect({
      host: "127.0.0.1",
      port: server.address.port,
      username: "tester",
      auth: [Auth.password("pw")],
      hostKeys: HostKeys.fixed(hostKey.publicKey),
      connectTimeout: "20 seconds"
    })
    return yield* f(yield* ssh.openChannel("session"))
  }))

const env = (channel: SshChannel, name: string, value: string) => channel.request("env", Requests.encodeEnv(name, value), true)

/** Sends exec and reads the handler's JSON report. */
const report = (channel: SshChannel) =>
  Effect.gen(function*() {
    expect(yield* channel.request("exec", Requests.encodeString("report"), true)).toBe(true)
    yield* channel.eof
    const chunks = yield* Stream.runCollect(channel.stdout)
    return JSON.parse(decoder.decode(Buffer.concat(chunks))) as {
      readonly env: Record<string, string>
      readonly pty: Requests.PtyRequest | null
      readonly resizes: number
    }
  })

describe("ServerSession limits", () => {
  it("env: sshd's 128 variables and 128 KiB by default; over either is refused and nothing more is kept", async () => {
    expect([DEFAULT_MAX_ENV_VARIABLES, DEFAULT_MAX_ENV_BYTES]).toEqual([128, 128 * 1024])
    const out = await withChannel(reporting(), (channel) =>
      Effect.gen(function*() {
        const replies: Array<boolean> = []
        for (let i = 0; i < 130; i++) replies.push(yield* env(channel, `LC_V${i}`, "v"))
        // replacing a variable is not one more
        const replaced = yield* env(channel, "LC_V0", "again")
        const tooBig = yield* env(channel, "LANG", "x".repeat(DEFAULT_MAX_ENV_BYTES))
        return { replies, replaced, tooBig, report: yield* report(channel) }
      }))
    expect(out.replies.slice(0, 128).every((r) => r)).toBe(true)
    expect(out.replies.slice(128)).toEqual([false, false])
    expect(out.replaced).toBe(true)
    expect(out.tooBig).toBe(false)
    expect(Object.keys(out.report.env).sort()).toEqual(Array.from({ length: 128 }, (_, i) => `LC_V${i}`).sort())
    expect(out.report.env.LC_V0).toBe("again")
  })

  it("env: the byte budget counts names and values, and a replaced value gives its bytes back", async () => {
    const out = await withChannel(reporting({ maxEnvBytes: 100 }), (channel) =>
      Effect.gen(function*() {
        const replies = [
          yield* env(channel, "LC_A", "a".repeat(40)), // 44 bytes
          yield* env(channel, "LC_B", "b".repeat(40)), // 88
          yield* env(channel, "LC_C", "c".repeat(40)), // 132: refused
          yield* env(channel, "LC_A", "a"), // 88 - 44 + 5 = 49
          yield* env(channel, "LC_C", "c".repeat(40)), // 93
          yield* env(channel, "LC_D", "d".repeat(4)) // 101: refused
        ]
        return { replies, report: yield* report(channel) }
      }))
    expect(out.replies).toEqual([true, true, false, true, true, false])
    expect(out.report.env).toEqual({ LC_A: "a", LC_B: "b".repeat(40), LC_C: "c".repeat(40) })
  })

  it("env and pty-req after the start, a second pty-req and a second exec are refused; the channel goes on", async () => {
    const pty: Requests.PtyRequest = { term: "xterm", columns: 80, rows: 24 }
    const out = await withChannel(reporting(), (channel) =>
      Effect.gen(function*() {
        const first = yield* channel.request("pty-req", Requests.encodePtyRequest(pty), true)
        const second = yield* channel.request("pty-req", Requests.encodePtyRequest({ ...pty, term: "vt100" }), true)
        expect(yield* channel.request("exec", Requests.encodeString("report"), true)).toBe(true)
        const late = [
          yield* env(channel, "LANG", "C"),
          yield* channel.request("pty-req", Requests.encodePtyRequest(pty), true),
          yield* channel.request("exec", Requests.encodeString("again"), true),
          yield* channel.request("shell", new Uint8Array(0), true)
        ]
        // window-change after the start reaches the handler, and stores nothing
        const resizes: Array<boolean> = []
        for (let i = 0; i < 50; i++) {
          resizes.push(yield* channel.request("window-change", Requests.encodeWindowChange({ columns: 80 + i, rows: 24 }), true))
        }
        yield* channel.eof
        const chunks = yield* Stream.runCollect(channel.stdout)
        return { first, second, late, resizes, report: JSON.parse(decoder.decode(Buffer.concat(chunks))) }
      }))
    expect([out.first, out.second]).toEqual([true, false])
    expect(out.late).toEqual([false, false, false, false])
    expect(out.resizes.every((r) => r)).toBe(true)
    expect(out.report.pty.term).toBe("xterm")
    expect(out.report.env).toEqual({})
    expect(out.report.resizes).toBe(50)
  })
})
