/**
 * The SOCKS parser against a real SOCKS client: curl, through a loopback
 * server that answers every CONNECT itself (an HTTP response naming where
 * the client asked to go).
 */
import { execFile } from "node:child_process"
import { existsSync } from "node:fs"
import * as Net from "node:net"
import { describe, expect, it } from "vitest"
import * as Socks from "../../src/Forwarding/Socks.ts"

const curl = ["/usr/bin/curl", "/usr/local/bin/curl"].find((path) => existsSync(path))
if (curl === undefined) console.warn("[effect-ssh] skipping the SOCKS tests against curl: curl is not installed")

/**
 * A SOCKS server that answers each CONNECT with `HTTP/1.0 200` and where it
 * was asked to go as the body — or, given a SOCKS5 reply code, fails it.
 */
const startServer = async (failWith?: number) => {
  const server = Net.createServer((socket) => {
    let handshake: Socks.SocksHandshake | undefined = Socks.start
    socket.on("data", (chunk: Buffer) => {
      if (handshake === undefined) return
      const step = Socks.feed(handshake, new Uint8Array(chunk))
      socket.write(step.reply)
      if (step._tag === "NeedMore") {
        handshake = step.handshake
        return
      }
      handshake = undefined
      if (step._tag === "Refuse") {
        socket.end()
        return
      }
      // on failure the response follows too: a client that took the reply for success would print it
      socket.write(
        failWith === undefined ? Socks.connectSucceeded(step.request) : Socks.connectFailed(step.request, failWith)
      )
      const body = `${step.request.version} ${step.request.addressType} ${step.request.host} ${step.request.port}`
      socket.end(`HTTP/1.0 200 OK\r\nContent-Length: ${body.length}\r\n\r\n${body}`)
    })
    socket.on("error", () => socket.destroy())
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const port = (server.address() as Net.AddressInfo).port
  return { port, close: () => new Promise<void>((resolve) => server.close(() => resolve())) }
}

const fetchVia = (proxy: string, url: string): Promise<{ readonly code: number; readonly stdout: string }> =>
  new Promise((resolve) => {
    execFile(curl!, ["-s", "-S", "--max-time", "10", "-x", proxy, url], (error, stdout) => {
      resolve({ code: error === null ? 0 : Number((error as { code?: number }).code ?? 1), stdout })
    })
  })

describe.skipIf(curl === undefined)("SOCKS handshake with curl as the client", () => {
  const cases: ReadonlyArray<readonly [string, string, string]> = [
    ["socks4", "http://127.0.0.1:8080/", "4 ipv4 127.0.0.1 8080"],
    ["socks4a", "http://app.example.test:81/", "4 domain app.example.test 81"],
    ["socks5", "http://127.0.0.1:8443/", "5 ipv4 127.0.0.1 8443"],
    ["socks5", "http://[::1]:9000/", "5 ipv6 ::1 9000"],
    ["socks5h", "http://app.example.test:82/", "5 domain app.example.test 82"]
  ]
  for (const [scheme, url, expected] of cases) {
    it(`${scheme} ${url}`, async () => {
      const server = await startServer()
      try {
        expect(await fetchVia(`${scheme}://127.0.0.1:${server.port}`, url)).toEqual({ code: 0, stdout: expected })
      } finally {
        await server.close()
      }
    })
  }

  for (const scheme of ["socks4", "socks5"]) {
    it(`${scheme}: curl takes a failure reply as a failed connection`, async () => {
      const server = await startServer(Socks.Socks5Reply.connectionRefused)
      try {
        const result = await fetchVia(`${scheme}://127.0.0.1:${server.port}`, "http://127.0.0.1:8080/")
        expect(result.code).not.toBe(0)
        expect(result.stdout).toBe("")
      } finally {
        await server.close()
      }
    })
  }
})
