/**
 * `SshServer.handle` serves one connection over any Socket: here the other
 * end of an SSH channel (SSH inside SSH), and a plain TCP connection accepted
 * by code of the caller's.
 */
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import * as net from "node:net"
import { expect, it } from "vitest"
import * as Auth from "../../src/Auth/ClientAuth.ts"
import * as HostKeys from "../../src/Auth/HostKeys.ts"
import * as PrivateKey from "../../src/Auth/PrivateKey.ts"
import * as SshClient from "../../src/Client.ts"
import { acceptedTcp } from "../../src/internal/netSocket.ts"
import * as NodeSsh from "../../src/NodeSsh.ts"
import * as SshServer from "../../src/Server.ts"

const hostKey = PrivateKey.generate("ssh-ed25519")
const options = {
  hostKeys: [hostKey],
  auth: { password: ({ password }: { readonly password: Redacted.Redacted<string> }) => Effect.succeed(Redacted.value(password) === "pw") },
  session: { exec: (session: { readonly write: (data: string) => Effect.Effect<void, unknown> }, command: string) => Effect.as(Effect.orDie(session.write(`handled ${command}\n`)), 0) }
} as unknown as Omit<SshServer.ServeOptions, "host" | "port">

it("serves a connection accepted by the caller's own listener, with the endpoints it is given", async () => {
  const listener = net.createServer({ pauseOnConnect: true })
  await new Promise<void>((resolve) => listener.listen(0, "127.0.0.1", resolve))
  const port = (listener.address() as net.AddressInfo).port
  const events: Array<string> = []
  try {
    const result = await Effect.runPromise(Effect.gen(function*() {
      const accepted = Effect.callback<net.Socket>((resume) => void listener.once("connection", (conn) => resume(Effect.succeed(conn))))
      const serving = yield* Effect.forkChild(Effect.flatMap(accepted, (conn) =>
        SshServer.handle(acceptedTcp(conn), {
          ...options,
          onEvent: (event) => Effect.sync(() => void events.push(event._tag))
        }, { remoteAddress: conn.remoteAddress ?? "", remotePort: conn.remotePort ?? 0 })))
      const ssh = yield* SshClient.connect({
        host: "127.0.0.1",
        port,
        username: "me",
        auth: [Auth.password("pw")],
        hostKeys: HostKeys.fixed(hostKey.publicKey)
      })
      const run = yield* ssh.run("hello")
      yield* Fiber.interrupt(serving)
      return run
    }).pipe(Effect.scoped, Effect.provide(NodeSsh.layer)))
    expect(result.stdout).toBe("handled hello\n")
    expect(events.slice(0, 2)).toEqual(["Connected", "Authenticated"])
  } finally {
    listener.close()
  }
}, 30_000)

it("serves SSH inside SSH: a server behind a reverse tunnel (forwardRemote's connections, each a channel Socket)", async () => {
  const result = await Effect.runPromise(Effect.gen(function*() {
    // the public server only forwards
    const gateway = yield* SshServer.serve({ ...options, port: 0, forwarding: { remote: () => Effect.succeed(true) } })
    const connect = (port: number, socket?: SshClient.ConnectOptions["socket"]) =>
      SshClient.connect({
        host: "127.0.0.1",
        port,
        username: "me",
        auth: [Auth.password("pw")],
        hostKeys: HostKeys.fixed(hostKey.publicKey),
        ...(socket === undefined ? {} : { socket })
      })
    // a host with no listening port of its own: it asks the gateway to listen, and serves SSH on what arrives
    const hidden = yield* connect(gateway.address.port)
    const tunnel = yield* hidden.forwardRemote({ bind: { host: "127.0.0.1", port: 0 } })
    yield* Effect.forkScoped(tunnel.connections.pipe(
      Stream.runForEach((incoming) => Effect.forkScoped(SshServer.handle(incoming.socket, options)))
    ))
    if ("path" in tunnel.address) throw new Error("expected a TCP address")
    const visitor = yield* connect(tunnel.address.port)
    return yield* visitor.run("behind the tunnel")
  }).pipe(Effect.scoped, Effect.provide(NodeSsh.layer)))
  expect(result.stdout).toBe("handled behind the tunnel\n")
}, 30_000)
