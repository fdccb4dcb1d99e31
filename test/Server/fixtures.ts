/**
 * Fixtures shared by the server load and fault tests and `bench/server-load.ts`:
 * a server with an in-process exec handler, client options trusting it, an
 * event log fed by `onEvent`, and a TCP socket the test can cut at will.
 */
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as Socket from "effect/socket/Socket"
import * as NodeSocket from "@effect/platform-node/NodeSocket"
import * as net from "node:net"
import * as SshClient from "../../src/Client.ts"
import type * as SshServer from "../../src/Server.ts"
import * as Auth from "../../src/Auth/ClientAuth.ts"
import * as HostKeys from "../../src/Auth/HostKeys.ts"
import * as PrivateKey from "../../src/Auth/PrivateKey.ts"
import * as PublicKey from "../../src/Auth/PublicKey.ts"
import * as SshError from "../../src/SshError.ts"
import type { ServerSession } from "../../src/Channel/ServerSession.ts"

/**
 * The server's host key (ed25519: cheap to sign with, so load measures the server, not RSA).
 *
 * @example
 * ```ts
 * HostKeys.fixed(hostKey.publicKey)
 * ```
 */
export const hostKey = PrivateKey.generate("ssh-ed25519")
/**
 * The only user key the server accepts (for user "alice").
 *
 * @example
 * ```ts
 * Auth.privateKey(userKey)
 * ```
 */
export const userKey = PrivateKey.generate("ssh-ed25519")

/**
 * The exec handler: "echo X" prints X; "cat" echoes stdin; "zeros N" writes N
 * zero bytes; "sleep MS" waits; anything else exits 127.
 *
 * @example
 * ```ts
 * SshServer.serve({ ...options, session: { exec } })
 * ```
 */
export const exec = (session: ServerSession, command: string) =>
  Effect.gen(function*() {
    const [verb, ...rest] = command.split(" ")
    if (verb === "echo") {
      yield* session.write(rest.join(" ") + "\n")
      return 0
    }
    if (verb === "cat") {
      yield* Stream.runForEach(session.stdin, (chunk) => session.write(chunk))
      return 0
    }
    if (verb === "zeros") {
      const block = new Uint8Array(64 * 1024)
      for (let left = Number(rest[0]); left > 0; left -= block.length) {
        yield* session.write(block.subarray(0, Math.min(left, block.length)))
      }
      return 0
    }
    if (verb === "sleep") {
      yield* Effect.sleep(Number(rest[0]))
      return 0
    }
    return 127
  })

/**
 * Server options: public key or keyboard-interactive ("123") for alice, the exec handler above.
 *
 * @example
 * ```ts
 * const server = yield* SshServer.serve(serverOptions({ maxChannels: 8 }))
 * ```
 */
export const serverOptions = (extra: Partial<SshServer.ServeOptions> = {}): SshServer.ServeOptions => ({
  port: 0,
  hostKeys: [hostKey],
  auth: {
    publicKey: ({ user, key }) => Effect.succeed(user === "alice" && PublicKey.equals(key, userKey.publicKey)),
    keyboardInteractive: ({ prompt }) =>
      Effect.map(prompt({ name: "", instruction: "", prompts: [{ prompt: "Code: ", echo: true }] }), (a) => a[0] === "123")
  },
  session: { exec },
  ...extra
})

/**
 * Client options for alice against a server on loopback.
 *
 * @example
 * ```ts
 * const ssh = yield* SshClient.connect(clientOptions(server.address.port))
 * ```
 */
export const clientOptions = (port: number, extra: Partial<SshClient.ConnectOptions> = {}): SshClient.ConnectOptions => ({
  host: "127.0.0.1",
  port,
  username: "alice",
  auth: [Auth.privateKey(userKey)],
  hostKeys: HostKeys.fixed(hostKey.publicKey),
  connectTimeout: "20 seconds",
  ...extra
})

/**
 * Waits (polling every 5 ms) until `condition` holds; fails with a Timeout naming `what` after `ms`.
 *
 * @example
 * ```ts
 * yield* waitUntil(() => server.connectionCount() === 0, "every connection closed")
 * ```
 */
export const waitUntil = (condition: () => boolean, what = "condition", ms = 10_000): Effect.Effect<void, SshError.SshError> => {
  const poll: Effect.Effect<void> = Effect.suspend(() => condition() ? Effect.void : Effect.andThen(Effect.sleep(5), poll))
  return Effect.timeoutOrElse(poll, {
    duration: ms,
    orElse: () => Effect.fail(SshError.make(new SshError.Timeout({ message: `waited ${ms} ms for ${what}` })))
  })
}

/**
 * Server events as they happen, plus the numbers the tests check.
 *
 * @example
 * ```ts
 * const log = new EventLog()
 * const server = yield* SshServer.serve(serverOptions({ onEvent: log.record }))
 * yield* waitUntil(() => log.closed.length === 1)
 * ```
 */
export class EventLog {
  readonly events: Array<SshServer.ServerEvent> = []
  readonly record = (event: SshServer.ServerEvent): Effect.Effect<void> =>
    Effect.sync(() => {
      this.events.push(event)
    })
  get connected() {
    return this.events.filter((e) => e._tag === "Connected")
  }
  get closed() {
    return this.events.filter((e): e is Extract<SshServer.ServerEvent, { _tag: "Closed" }> => e._tag === "Closed")
  }
  /** The Closed event of the connection from this client port, if it came. */
  closedFrom(remotePort: number) {
    return this.closed.find((e) => e.remotePort === remotePort)
  }
}

/** A client TCP connection the test can cut (destroy) at any moment. */
export interface CuttableSocket {
  /** For `ConnectOptions.socket`. */
  readonly socket: Socket.Socket
  /** Destroys the TCP connection at once (no DISCONNECT, no FIN-wait). */
  readonly cut: () => void
  /** Our local port once connected: the server reports it as `remotePort`. */
  readonly localPort: () => number | undefined
}

/**
 * Dials the server with `node:net` and hands the connection to our client,
 * keeping a handle to destroy it.
 *
 * @example
 * ```ts
 * const tcp = cuttableSocket(port)
 * const ssh = yield* SshClient.connect(clientOptions(port, { socket: tcp.socket }))
 * tcp.cut()
 * ```
 */
export const cuttableSocket = (port: number): CuttableSocket => {
  let conn: net.Socket | undefined
  let localPort: number | undefined
  const socket = Effect.runSync(NodeSocket.fromDuplex(
    Effect.acquireRelease(
      Effect.callback<net.Socket, Socket.SocketError>((resume) => {
        const c = net.createConnection({ host: "127.0.0.1", port, noDelay: true })
        conn = c
        c.once("connect", () => {
          localPort = c.localPort
          resume(Effect.succeed(c))
        })
        c.once("error", (cause) =>
          resume(Effect.fail(new Socket.SocketError({ reason: new Socket.SocketOpenError({ kind: "Unknown", cause }) }))))
      }),
      (c) => Effect.sync(() => c.destroy())
    )
  ))
  return { socket, cut: () => conn?.destroy(), localPort: () => localPort }
}
