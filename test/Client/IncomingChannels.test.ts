/**
 * Channels and global requests the server starts, handled by the client's
 * `channels` and `globalRequests` handlers: a channel of the application's
 * own type opened by our server's session carries data both ways; a type
 * without a handler, or one the client serves itself, is refused; a global
 * request is answered by its handler (with reply data) or with failure.
 */
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { describe, expect, it } from "vitest"
import * as Auth from "../../src/Auth/ClientAuth.ts"
import * as HostKeys from "../../src/Auth/HostKeys.ts"
import * as PrivateKey from "../../src/Auth/PrivateKey.ts"
import * as ChannelMessages from "../../src/Channel/Messages.ts"
import * as ServerSession from "../../src/Channel/ServerSession.ts"
import * as SshClient from "../../src/Client.ts"
import * as NodeSsh from "../../src/NodeSsh.ts"
import * as SshServer from "../../src/Server.ts"
import type { SshError } from "../../src/SshError.ts"
import * as N from "../../src/Wire/MessageNumber.ts"
import { fakeServer } from "../fuzz/peer.ts"
import { runScoped } from "../helpers.ts"
import { clientOptions, serverOptions } from "../Server/fixtures.ts"

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes)

/** The session opens `channelType` to the client, writes "ping", and prints what comes back (or the refusal). */
const opensChannel = (channelType: string): NonNullable<SshServer.ServeOptions["session"]>["exec"] => (session) =>
  Effect.scoped(Effect.gen(function*() {
    const opened = yield* Effect.result(ServerSession.openChannel(session, channelType))
    if (opened._tag === "Failure") {
      yield* Effect.orDie(session.write(`refused: ${opened.failure.message}\n`))
      return 1
    }
    const channel = opened.success
    yield* Effect.orDie(channel.write(new TextEncoder().encode("ping")))
    yield* Effect.orDie(channel.eof)
    const answer = yield* Stream.mkString(Stream.decodeText(channel.stdout)).pipe(Effect.orDie)
    yield* Effect.orDie(session.write(`answer: ${answer}\n`))
    return 0
  }))

describe("channels the server opens", () => {
  const handlers: SshClient.ConnectOptions["channels"] = {
    "echo@example.com": (incoming) =>
      Effect.flatMap(incoming.accept(), (channel) =>
        Effect.andThen(
          Stream.runForEach(channel.stdout, (chunk) => channel.write(new TextEncoder().encode(`pong:${text(chunk)}`))),
          channel.eof
        )),
    // the client serves these itself: a handler of that name is never consulted
    "forwarded-tcpip": (incoming) => incoming.accept().pipe(Effect.asVoid)
  }

  const runWith = (channelType: string, channels: SshClient.ConnectOptions["channels"]) =>
    runScoped(Effect.gen(function*() {
      const server = yield* SshServer.serve(serverOptions({ session: { exec: opensChannel(channelType) } }))
      const ssh = yield* SshClient.connect({ ...clientOptions(server.address.port), channels })
      return (yield* ssh.run("go")).stdout
    }))

  it("a type with a handler: accepted, data both ways", async () => {
    expect(await runWith("echo@example.com", handlers)).toBe("answer: pong:ping\n")
  })

  it("a type without a handler, or one the client serves itself, is refused", async () => {
    expect(await runWith("other@example.com", handlers)).toMatch(/^refused: .*other@example.com channels are not accepted/)
    expect(await runWith("forwarded-tcpip", handlers)).toMatch(/^refused: /)
    expect(await runWith("echo@example.com", undefined)).toMatch(/^refused: /)
  })
})

describe("global requests from the server", () => {
  it("are answered by their handler, with its reply data; others with failure", async () => {
    const hostKey = PrivateKey.generate("ssh-ed25519")
    const replies: Array<{ readonly type: number; readonly data: string }> = []
    const server = await fakeServer(async (peer) => {
      await peer.serverHandshake()
      await peer.acceptAuth()
      for (const name of ["ping@example.com", "unknown@example.com", "hostkeys-00@openssh.com"]) {
        peer.send(ChannelMessages.globalRequest(name, name !== "hostkeys-00@openssh.com"))
      }
      while (replies.length < 2) {
        const reply = await peer.receive()
        if (reply[0] === N.REQUEST_SUCCESS || reply[0] === N.REQUEST_FAILURE) replies.push({ type: reply[0], data: text(reply.subarray(1)) })
      }
    }, { hostKey, idleMs: 3000 })
    try {
      const seen: Array<string> = []
      await Effect.runPromise(Effect.gen(function*() {
        yield* SshClient.connect({
          host: "127.0.0.1",
          port: server.port,
          username: "me",
          auth: [Auth.password("pw")],
          hostKeys: HostKeys.fixed(hostKey.publicKey),
          keepaliveInterval: 0,
          globalRequests: {
            "ping@example.com": () => Effect.sync(() => void seen.push("ping")).pipe(Effect.as(new TextEncoder().encode("pong"))),
            "hostkeys-00@openssh.com": () => Effect.sync(() => void seen.push("hostkeys")).pipe(Effect.as(true))
          }
        })
        yield* Effect.sleep(300)
      }).pipe(Effect.scoped, Effect.provide(NodeSsh.layer)))
      expect(seen.sort()).toEqual(["hostkeys", "ping"])
      const outcome = await server.sessions[0]
      expect((outcome as { error?: SshError }).error).toBeUndefined()
    } finally {
      await server.close()
    }
    expect(replies).toEqual([{ type: N.REQUEST_SUCCESS, data: "pong" }, { type: N.REQUEST_FAILURE, data: "" }])
  })
})
