/**
 * A loopback TCP proxy that delays every byte by a fixed time in each direction: a long-distance link (round trip
 * = twice the delay) with no bandwidth limit of its own, for the "over a round trip" SFTP rows of `npm run bench`.
 * Each direction holds at most `MAX_HELD` bytes in flight (the link's "pipe"); beyond that it stops reading, so TCP
 * flow control reaches the sender as it would on a real path.
 *
 * It runs in a process of its own (`startDelayProxy` spawns this file), so that forwarding never competes with
 * the in-process clients for their event loop:
 *
 *     node bench/delayProxy.ts 127.0.0.1 2222 25   # prints the proxy's port
 */
import * as ChildProcess from "node:child_process"
import * as net from "node:net"
import { fileURLToPath } from "node:url"

/** Bytes one direction may hold (sent, not yet delivered) before it stops reading. */
const MAX_HELD = 64 * 1024 * 1024

/** The listening proxy. */
export interface DelayProxy {
  readonly port: number
  readonly close: () => Promise<void>
}

/** Forwards `from` to `to`, each chunk `delayMs` after it arrived, in order. */
const relay = (from: net.Socket, to: net.Socket, delayMs: number): void => {
  const queue: Array<{ readonly due: number; readonly chunk: Buffer }> = []
  let held = 0
  let timer: NodeJS.Timeout | undefined
  let ended = false
  const flush = () => {
    timer = undefined
    const now = performance.now()
    while (queue.length > 0 && queue[0]!.due <= now) {
      const { chunk } = queue.shift()!
      held -= chunk.length
      to.write(chunk)
    }
    if (queue.length > 0) timer = setTimeout(flush, queue[0]!.due - now)
    else if (ended) to.end()
    if (from.isPaused() && held + to.writableLength < MAX_HELD) from.resume()
  }
  from.on("data", (chunk: Buffer) => {
    queue.push({ due: performance.now() + delayMs, chunk })
    held += chunk.length
    if (held + to.writableLength >= MAX_HELD) from.pause()
    timer ??= setTimeout(flush, delayMs)
  })
  to.on("drain", () => {
    if (from.isPaused() && held + to.writableLength < MAX_HELD) from.resume()
  })
  from.on("end", () => {
    ended = true
    if (queue.length === 0) to.end()
  })
}

/** Listens on 127.0.0.1 (any port) and forwards each connection to `target`, `delayMs` each way. */
const listen = (target: { readonly host: string; readonly port: number }, delayMs: number): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = net.createServer({ noDelay: true }, (client) => {
      const upstream = net.connect({ host: target.host, port: target.port, noDelay: true })
      for (const socket of [client, upstream]) {
        socket.on("error", () => {
          client.destroy()
          upstream.destroy()
        })
      }
      relay(client, upstream, delayMs)
      relay(upstream, client, delayMs)
    })
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => resolve((server.address() as net.AddressInfo).port))
  })

/**
 * Starts a proxy process on 127.0.0.1 to `target`, adding `delayMs` each way; `close` ends the process.
 *
 * @example
 * ```ts
 * const proxy = await startDelayProxy({ host: "127.0.0.1", port: sshd.port }, 25) // 50 ms round trip
 * try { ... connect to proxy.port ... } finally { await proxy.close() }
 * ```
 */
export const startDelayProxy = (target: { readonly host: string; readonly port: number }, delayMs: number): Promise<DelayProxy> =>
  new Promise((resolve, reject) => {
    const child = ChildProcess.spawn(process.execPath, [fileURLToPath(import.meta.url), target.host, String(target.port), String(delayMs)], {
      // its stdin is ours: it ends with this process, however this process ends
      stdio: ["pipe", "pipe", "inherit"]
    })
    let output = ""
    child.once("error", reject)
    child.once("exit", (code) => reject(new Error(`the delay proxy exited with ${code} before listening`)))
    child.stdout!.setEncoding("utf8").on("data", (text: string) => {
      output += text
      const line = /^(\d+)\n/.exec(output)
      if (line === null) return
      resolve({
        port: Number(line[1]),
        close: () =>
          new Promise<void>((done) => {
            child.once("exit", () => done())
            child.kill()
          })
      })
    })
  })

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [host, port, delay] = process.argv.slice(2)
  process.stdin.on("end", () => process.exit(0)).resume()
  console.log(await listen({ host: host!, port: Number(port) }, Number(delay)))
}
