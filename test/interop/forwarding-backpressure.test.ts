/**
 * Backpressure through forwarding, both directions, against sshd: a source
 * that would push 1 GiB into a target that reads 1 MiB/s is held back by the
 * SSH window and TCP (our memory stays flat), while a second tunnel on the
 * same connection keeps its speed.
 */
import * as Effect from "effect/Effect"
import * as net from "node:net"
import * as fs from "node:fs"
import { afterAll, beforeAll, expect, it } from "vitest"
import * as Auth from "../../src/Auth/ClientAuth.ts"
import * as PrivateKey from "../../src/Auth/PrivateKey.ts"
import * as SshClient from "../../src/Client.ts"
import { runScoped, sshdOptions } from "../helpers.ts"
import { describeInterop, type Sshd, startSshd } from "./sshd.ts"

const MiB = 1024 * 1024
const GiB = 1024 * MiB
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** A target that reads at most `rate` bytes a second (paused socket, one read a tick). */
const slowTarget = async (rate: number) => {
  let received = 0
  const server = net.createServer((conn) => {
    conn.pause()
    const timer = setInterval(() => {
      let budget = rate / 10
      let chunk: Buffer | null
      while (budget > 0 && (chunk = conn.read(Math.min(budget, 64 * 1024)) as Buffer | null) !== null) {
        received += chunk.length
        budget -= chunk.length
      }
      // `read(n)` returns null while fewer than n bytes are buffered: take what is there
      if (budget > 0 && conn.readableLength > 0) {
        const rest = conn.read(Math.min(budget, conn.readableLength)) as Buffer | null
        if (rest !== null) received += rest.length
      }
    }, 100)
    conn.on("close", () => clearInterval(timer))
    conn.on("error", () => clearInterval(timer))
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  return { server, port: (server.address() as net.AddressInfo).port, received: () => received }
}

/** A target that discards everything as fast as it comes. */
const sink = async () => {
  const server = net.createServer((conn) => conn.on("data", () => {}).on("error", () => {}))
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  return { server, port: (server.address() as net.AddressInfo).port }
}

/** Writes zeros to host:port as fast as the socket takes them, up to `limit` bytes; reports what it got out. */
const flood = (port: number, limit: number) => {
  let written = 0
  const block = Buffer.alloc(64 * 1024)
  const conn = net.connect({ host: "127.0.0.1", port })
  const pump = () => {
    while (written < limit) {
      written += block.length
      if (!conn.write(block)) return void conn.once("drain", pump)
    }
    conn.end()
  }
  conn.on("connect", pump)
  conn.on("error", () => {})
  return { written: () => written - conn.writableLength, stop: () => conn.destroy() }
}

/** MB/s of `bytes` pushed through to a sink at host:port (time until the last byte is written and the socket ends). */
const speedOf = (port: number, bytes: number) =>
  new Promise<number>((resolve, reject) => {
    const started = performance.now()
    const conn = net.connect({ host: "127.0.0.1", port })
    const block = Buffer.alloc(256 * 1024)
    let written = 0
    const pump = () => {
      while (written < bytes) {
        written += block.length
        if (!conn.write(block)) return void conn.once("drain", pump)
      }
      conn.end(() => resolve(bytes / MiB / ((performance.now() - started) / 1000)))
    }
    conn.on("connect", pump)
    conn.on("error", reject)
  })

describeInterop("forwarding backpressure against sshd", () => {
  let sshd: Sshd
  let auth: ReadonlyArray<Auth.AuthMethod>
  let fast: Awaited<ReturnType<typeof sink>>

  beforeAll(async () => {
    sshd = await startSshd()
    auth = [Auth.privateKey(PrivateKey.parse(fs.readFileSync(sshd.clientKeys.ed25519, "utf8")))]
    fast = await sink()
  }, 60_000)
  afterAll(async () => {
    fast?.server.close()
    await sshd?.stop()
  })

  const run = (direction: "-L" | "-R") => async () => {
    const slow = await slowTarget(MiB)
    const report = await runScoped(Effect.gen(function*() {
      const ssh = yield* SshClient.connect(sshdOptions(sshd, auth))
      const tunnel = (port: number) =>
        direction === "-L"
          ? ssh.forwardLocal({ listen: { port: 0 }, to: { host: "127.0.0.1", port } })
          : ssh.forwardRemote({ bind: { host: "127.0.0.1", port: 0 }, to: { host: "127.0.0.1", port } })
      const slowTunnel = yield* tunnel(slow.port)
      const fastTunnel = yield* tunnel(fast.port)
      const portOf = (t: { readonly address: { readonly host: string; readonly port: number } | { readonly path: string } }) =>
        "port" in t.address ? t.address.port : 0
      return yield* Effect.promise(async () => {
        const alone = await speedOf(portOf(fastTunnel), 64 * MiB)
        global.gc?.()
        const rssBefore = process.memoryUsage().rss
        const source = flood(portOf(slowTunnel), GiB)
        let peakRss = rssBefore
        const sample = setInterval(() => {
          peakRss = Math.max(peakRss, process.memoryUsage().rss)
        }, 50)
        await sleep(2000)
        const during = await speedOf(portOf(fastTunnel), 64 * MiB)
        await sleep(4000)
        clearInterval(sample)
        const pushed = source.written()
        source.stop()
        return { alone, during, rssGrowth: peakRss - rssBefore, pushed, read: slow.received() }
      })
    }))
    slow.server.close()
    console.log(
      `${direction}: source pushed ${(report.pushed / MiB).toFixed(1)} MiB of 1 GiB in ~7 s (target read ${(report.read / MiB).toFixed(1)} MiB); ` +
        `RSS growth ${(report.rssGrowth / MiB).toFixed(1)} MiB; second tunnel ${report.alone.toFixed(0)} MB/s alone, ${report.during.toFixed(0)} MB/s meanwhile`
    )
    // held back: what left the source is what the target read plus the bounded buffers on the way (windows, sockets)
    expect(report.pushed).toBeLessThan(report.read + 48 * MiB)
    expect(report.rssGrowth).toBeLessThan(64 * MiB)
    // the stalled tunnel does not slow the other (noisy shared machine: a wide margin)
    expect(report.during).toBeGreaterThan(report.alone * 0.4)
  }

  it("-L: a target reading 1 MiB/s holds a 1 GiB source back; memory flat; another tunnel keeps its speed", run("-L"), 60_000)
  it("-R: the same through a remote forward", run("-R"), 60_000)
})
