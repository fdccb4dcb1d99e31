/**
 * Port forwarding end to end on one machine, through the embedded server: a
 * local forward (`ssh -L`) to an HTTP server, a remote forward (`ssh -R`) on a
 * port the server picks, and a SOCKS proxy (`ssh -D`) — each checked by
 * fetching a page through it.
 *
 * Usage: node examples/forwarding.ts
 */
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as crypto from "node:crypto"
import * as http from "node:http"
import * as net from "node:net"
import { Auth, HostKeys, NodeSsh, PrivateKey, PublicKey, SshClient, SshServer } from "effect-ssh"

/** A page served on a free loopback port. */
const startWebServer = (page: Buffer) =>
  Effect.acquireRelease(
    Effect.callback<http.Server>((resume) => {
      const server = http.createServer((_request, response) => response.end(page))
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
    }),
    (server) => Effect.sync(() => server.close())
  )

/** GET / from host:port over a plain socket (optionally after a SOCKS5 greeting), returning the body's sha256. */
const fetchThrough = (port: number, socksTarget?: { readonly host: string; readonly port: number }) =>
  Effect.promise(() =>
    new Promise<string>((resolve, reject) => {
      const conn = net.connect({ host: "127.0.0.1", port })
      const chunks: Array<Buffer> = []
      const request = () => conn.write("GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
      let handshake = socksTarget === undefined ? 0 : 2
      conn.on("connect", () => {
        if (socksTarget === undefined) return request()
        const name = Buffer.from(socksTarget.host)
        conn.write(Buffer.from([5, 1, 0])) // SOCKS5, one method: no authentication
        conn.write(Buffer.concat([Buffer.from([5, 1, 0, 3, name.length]), name, Buffer.from([socksTarget.port >> 8, socksTarget.port & 0xff])]))
      })
      conn.on("data", (chunk) => {
        // the method choice (2 bytes) and the CONNECT reply (10 bytes for an IPv4 bound address) come first
        if (handshake > 0) {
          const skip = handshake === 2 ? 12 : 0
          handshake = 0
          chunk = chunk.subarray(skip)
          request()
        }
        chunks.push(chunk)
      })
      conn.on("end", () => {
        const response = Buffer.concat(chunks)
        const body = response.subarray(response.indexOf("\r\n\r\n") + 4)
        resolve(crypto.createHash("sha256").update(body).digest("hex"))
      })
      conn.on("error", reject)
    })
  )

const program = Effect.gen(function*() {
  const page = crypto.randomBytes(1024 * 1024)
  const expected = crypto.createHash("sha256").update(page).digest("hex")
  const web = yield* startWebServer(page)
  const webPort = (web.address() as net.AddressInfo).port

  const hostKey = PrivateKey.generate("ssh-ed25519")
  const userKey = PrivateKey.generate("ssh-ed25519")
  const server = yield* SshServer.serve({
    port: 0,
    hostKeys: [hostKey],
    auth: { publicKey: ({ key }) => Effect.succeed(PublicKey.equals(key, userKey.publicKey)) },
    // default deny: this server forwards to loopback only, and listens for clients on any port
    forwarding: {
      local: ({ host }) => Effect.succeed(host === "127.0.0.1" || host === "localhost"),
      remote: () => Effect.succeed(true)
    }
  })
  const ssh = yield* SshClient.connect({
    host: server.address.host,
    port: server.address.port,
    username: "demo",
    auth: [Auth.privateKey(userKey)],
    hostKeys: HostKeys.fixed(hostKey.publicKey)
  })

  const local = yield* ssh.forwardLocal({ listen: { port: 0 }, to: { host: "127.0.0.1", port: webPort } })
  if ("path" in local.address) return
  const viaLocal = yield* fetchThrough(local.address.port)
  yield* Console.log(`-L ${local.address.host}:${local.address.port} → 127.0.0.1:${webPort}: page ${viaLocal === expected ? "intact" : "DIFFERENT"}`)

  const remote = yield* ssh.forwardRemote({ bind: { host: "127.0.0.1", port: 0 }, to: { host: "127.0.0.1", port: webPort } })
  if ("path" in remote.address) return
  const viaRemote = yield* fetchThrough(remote.address.port)
  yield* Console.log(`-R port ${remote.address.port} (picked by the server) → 127.0.0.1:${webPort}: page ${viaRemote === expected ? "intact" : "DIFFERENT"}`)

  const socks = yield* ssh.socks({ listen: { port: 0 } })
  if ("path" in socks.address) return
  const viaSocks = yield* fetchThrough(socks.address.port, { host: "localhost", port: webPort })
  yield* Console.log(`-D SOCKS5 on port ${socks.address.port} → localhost:${webPort}: page ${viaSocks === expected ? "intact" : "DIFFERENT"}`)

  if (viaLocal !== expected || viaRemote !== expected || viaSocks !== expected) {
    return yield* Effect.fail(new Error("a page came through altered"))
  }
})

program.pipe(Effect.scoped, Effect.provide(NodeSsh.layer), Effect.runPromise).then(
  () => process.exit(0),
  (error) => {
    console.error(`forwarding example failed: ${error}`)
    process.exit(1)
  }
)
