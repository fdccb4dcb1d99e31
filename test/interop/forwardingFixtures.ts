/**
 * Endpoints for forwarding tests: echo servers that keep half-close, a
 * round trip that sends, half-closes and collects the answer, and probes of
 * whether something listens at an address.
 */
import * as net from "node:net"

/** A TCP address or a Unix socket. */
export type Endpoint = { readonly host: string; readonly port: number } | { readonly path: string }

/** An echo server (TCP on a free loopback port, or a Unix socket) that ends its side when the client ends its own. */
export const echoServer = async (at: { port: 0 } | { path: string }) => {
  const server = net.createServer({ allowHalfOpen: true }, (conn) => conn.pipe(conn))
  await new Promise<void>((resolve) => "path" in at ? server.listen(at.path, resolve) : server.listen(0, "127.0.0.1", resolve))
  return { server, port: "path" in at ? 0 : (server.address() as net.AddressInfo).port }
}

/** Sends `data`, half-closes, and collects everything until the other end ends. */
export const roundTrip = (to: Endpoint, data: Uint8Array) =>
  new Promise<Uint8Array>((resolve, reject) => {
    const conn = "path" in to ? net.connect({ path: to.path, allowHalfOpen: true }) : net.connect({ ...to, allowHalfOpen: true })
    const chunks: Array<Buffer> = []
    conn.on("data", (chunk) => chunks.push(chunk))
    conn.on("end", () => {
      conn.end()
      resolve(Buffer.concat(chunks))
    })
    conn.on("error", reject)
    conn.end(data)
  })

/** Whether a connection to `to` is accepted now. */
export const accepts = (to: Endpoint) =>
  new Promise<boolean>((resolve) => {
    const conn = "path" in to ? net.connect({ path: to.path }) : net.connect(to)
    conn.on("connect", () => {
      conn.destroy()
      resolve(true)
    })
    conn.on("error", () => resolve(false))
  })

/** Waits (up to 10 s) until `to` accepts, or stops accepting with `until: false`. */
export const waitFor = async (to: Endpoint, until = true) => {
  for (let i = 0; i < 200; i++) {
    if ((await accepts(to)) === until) return
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error(`${JSON.stringify(to)} still ${until ? "refuses" : "accepts"} connections`)
}
