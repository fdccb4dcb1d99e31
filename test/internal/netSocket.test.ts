import { describe, expect, it } from "vitest"
import * as Effect from "effect/Effect"
import * as Crypto from "node:crypto"
import * as net from "node:net"
import { acceptedTcp } from "../../src/internal/netSocket.ts"

/** A loopback server whose first connection is handed to `f`; resolves with what `f` returns. */
const withAccepted = <A>(send: (client: net.Socket) => void, f: (conn: net.Socket) => Promise<A>): Promise<A> =>
  new Promise<A>((resolve, reject) => {
    const server = net.createServer({ pauseOnConnect: true }, (conn) => {
      f(conn).then(resolve, reject).finally(() => {
        conn.destroy()
        server.close()
      })
    })
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo
      const client = net.connect({ port, host: "127.0.0.1" }, () => send(client))
      client.on("error", () => undefined)
    })
  })

describe("acceptedTcp", () => {
  it("delivers every byte in order and frees each buffer Node read into once it is copied", async () => {
    const payload = Crypto.randomBytes(3 * 1024 * 1024 + 17)
    const { received, nodeBuffers } = await withAccepted(
      (client) => {
        for (let at = 0; at < payload.length; at += 100_000) client.write(payload.subarray(at, at + 100_000))
        client.end()
      },
      (conn) =>
        Effect.runPromise(Effect.scoped(Effect.gen(function*() {
          const reader = yield* acceptedTcp(conn).reader
          // registered after the socket's own listener: sees each buffer once it has been copied
          const nodeBuffers: Array<Buffer> = []
          conn.on("data", (data: Buffer) => void nodeBuffers.push(data))
          const hash = Crypto.createHash("sha256")
          let received = 0
          while (received < payload.length) {
            const chunks = yield* reader.pull
            for (const chunk of chunks) {
              hash.update(chunk)
              received += chunk.length
            }
          }
          return { received: hash.digest("hex"), nodeBuffers }
        })))
    )
    expect(received).toBe(Crypto.createHash("sha256").update(payload).digest("hex"))
    expect(nodeBuffers.length).toBeGreaterThan(0)
    expect(nodeBuffers.every((b) => b.byteLength === 0)).toBe(true)
  })
})
