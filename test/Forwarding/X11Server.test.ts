/**
 * X11 forwarding from end to end between our client and our server: the
 * server's proxy display, the cookie it files with xauth (a script here), the
 * `x11` channel per connection, and the client's rewrite to a local display
 * (a Unix socket here).
 */
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Auth from "../../src/Auth/ClientAuth.ts"
import * as HostKeys from "../../src/Auth/HostKeys.ts"
import * as PrivateKey from "../../src/Auth/PrivateKey.ts"
import * as SshClient from "../../src/Client.ts"
import * as Messages from "../../src/Forwarding/Messages.ts"
import type * as ServerForwarding from "../../src/Forwarding/ServerForwarding.ts"
import { concat, fromHex, toHex, utf8 } from "../../src/internal/bytes.ts"
import * as NodeSsh from "../../src/NodeSsh.ts"
import * as SshServer from "../../src/Server.ts"

const hostKey = PrivateKey.generate("ssh-ed25519")
const NAME = utf8("MIT-MAGIC-COOKIE-1")

const setupPacket = (cookie: Uint8Array): Uint8Array => {
  const header = new Uint8Array(12)
  header[0] = 0x42
  header[3] = 11
  header[7] = NAME.length
  header[9] = cookie.length
  return concat([header, NAME, new Uint8Array(2), cookie])
}

/** An X client: connects to the proxy display's port, sends a setup packet, returns what came back. */
const xClient = (port: number, cookie: Uint8Array) =>
  new Promise<string>((resolve) => {
    const conn = net.connect({ host: "127.0.0.1", port })
    const chunks: Array<Buffer> = []
    conn.on("data", (chunk) => chunks.push(chunk))
    conn.on("close", () => resolve(Buffer.concat(chunks).toString()))
    conn.on("error", () => {})
    conn.end(setupPacket(cookie))
  })

describe("X11 forwarding, our client through our server", () => {
  let dir: string
  let xauthLocation: string
  let filedFile: string
  let xServerPath: string
  let xServer: net.Server
  const seenByX: Array<string> = []

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "effect-ssh-x11-e2e-"))
    // the server's xauth: keeps what it is told to file
    filedFile = path.join(dir, "filed")
    xauthLocation = path.join(dir, "xauth")
    fs.writeFileSync(xauthLocation, `#!/bin/sh\ncat >> ${filedFile}\n`, { mode: 0o755 })
    // the client's display: answers any setup packet, recording its cookie
    xServerPath = path.join(dir, "X5")
    xServer = net.createServer((conn) => {
      conn.once("data", (chunk) => {
        seenByX.push(Buffer.from(chunk).subarray(32, 48).toString("hex"))
        conn.end("ok")
      })
      conn.on("error", () => {})
    })
    await new Promise<void>((resolve) => xServer.listen(xServerPath, resolve))
  })
  afterAll(() => {
    xServer.close()
    fs.rmSync(dir, { recursive: true, force: true })
  })

  /** The cookie the server last filed, and for which display number. */
  const filed = () => {
    const match = /add unix:(\d+)\.0 MIT-MAGIC-COOKIE-1 ([0-9a-f]+)\n$/.exec(fs.readFileSync(filedFile, "utf8"))!
    return { display: Number(match[1]), cookie: fromHex(match[2]!) }
  }

  /** Serves one exec with X11 per `policy`; its handler runs `command` as X clients and prints their answers. */
  const run = (policy: Partial<ServerForwarding.ForwardingPolicy>, x11: { readonly single?: boolean }, clients: number) =>
    Effect.runPromise(Effect.gen(function*() {
      const server = yield* SshServer.serve({
        port: 0,
        hostKeys: [hostKey],
        auth: { password: ({ password }) => Effect.succeed(Redacted.value(password) === "pw") },
        session: {
          exec: (session) =>
            Effect.gen(function*() {
              yield* session.write(`DISPLAY=${session.env.DISPLAY ?? ""} x11Display=${session.x11Display ?? ""}\n`)
              if (session.x11Display === undefined) return 0
              const { display, cookie } = filed()
              expect(session.x11Display).toBe(`localhost:${display}.0`)
              for (let i = 0; i < clients; i++) {
                yield* session.write(`${yield* Effect.promise(() => xClient(6000 + display, cookie))}\n`)
              }
              return 0
            })
        },
        forwarding: { xauthLocation, ...policy }
      })
      const ssh = yield* SshClient.connect({
        host: "127.0.0.1",
        port: server.address.port,
        username: "me",
        auth: [Auth.password("pw")],
        hostKeys: HostKeys.fixed(hostKey.publicKey)
      })
      return (yield* ssh.run("xclock", { x11: { display: xServerPath, ...x11 } })).stdout.split("\n")
    }).pipe(Effect.scoped, Effect.provide(NodeSsh.layer)))

  it("a granted x11-req: DISPLAY on a loopback proxy, the client's fake cookie filed, the local display reached", async () => {
    const requests: Array<ServerForwarding.X11ForwardRequest> = []
    const before = seenByX.length
    const lines = await run({ x11: (request) => Effect.sync(() => requests.push(request) > 0) }, {}, 2)
    expect(lines[0]).toMatch(/^DISPLAY=localhost:(\d+)\.0 x11Display=localhost:\1\.0$/)
    expect(lines.slice(1, 3)).toEqual(["ok", "ok"])
    expect(requests).toEqual([{ user: "me", singleConnection: false, authProtocol: "MIT-MAGIC-COOKIE-1", screen: 0 }])
    // what reached the display is not the cookie filed on the server (no xauth data here: a made-up one)
    expect(seenByX.length).toBe(before + 2)
    expect(seenByX.at(-1)).not.toBe(Buffer.from(filed().cookie).toString("hex"))
  })

  it("single connection: the proxy forwards the first connection only", async () => {
    const before = seenByX.length
    const lines = await run({ x11: () => Effect.succeed(true) }, { single: true }, 2)
    expect(lines.slice(1, 3)).toEqual(["ok", ""])
    expect(seenByX.length).toBe(before + 1)
  })

  it("one x11-req per session, before it starts; a cookie that is not hex is refused", async () => {
    const request = (authCookie: string) =>
      Messages.encodeX11Request({ singleConnection: false, authProtocol: "MIT-MAGIC-COOKIE-1", authCookie, screen: 0 })
    const answers = await Effect.runPromise(Effect.gen(function*() {
      const server = yield* SshServer.serve({
        port: 0,
        hostKeys: [hostKey],
        auth: { password: () => Effect.succeed(true) },
        session: { exec: () => Effect.never },
        forwarding: { xauthLocation, x11: () => Effect.succeed(true) }
      })
      const ssh = yield* SshClient.connect({
        host: "127.0.0.1",
        port: server.address.port,
        username: "me",
        auth: [Auth.password("pw")],
        hostKeys: HostKeys.fixed(hostKey.publicKey)
      })
      const cookie = toHex(new Uint8Array(16).fill(7))
      const badCookie = yield* Effect.flatMap(ssh.openChannel("session"), (channel) =>
        channel.request(Messages.RequestName.x11, request("not hex; add evil"), true))
      const channel = yield* ssh.openChannel("session")
      const first = yield* channel.request(Messages.RequestName.x11, request(cookie), true)
      const second = yield* channel.request(Messages.RequestName.x11, request(cookie), true)
      yield* channel.request("exec", utf8("\0\0\0\x04wait"), true)
      const afterStart = yield* Effect.flatMap(ssh.openChannel("session"), (other) =>
        Effect.andThen(other.request("exec", utf8("\0\0\0\x04wait"), true), other.request(Messages.RequestName.x11, request(cookie), true)))
      return { badCookie, first, second, afterStart }
    }).pipe(Effect.scoped, Effect.provide(NodeSsh.layer)))
    expect(answers).toEqual({ badCookie: false, first: true, second: false, afterStart: false })
  })

  it("without an x11 policy the request is refused: no DISPLAY, the session runs all the same", async () => {
    const lines = await run({}, {}, 1)
    expect(lines[0]).toBe("DISPLAY= x11Display=")
  })
})
