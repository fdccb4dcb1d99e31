/**
 * An env flood against `effect-ssh serve` in a child process: authenticated
 * clients send, on several session channels of several connections, 120
 * env requests of 200 KB (names the default AcceptEnv lets through: LC_*)
 * and 200 small ones. The server must refuse what is over sshd's limits
 * (128 variables, and here 128 KiB of names and values per session),
 * replying CHANNEL_FAILURE, keep its peak resident memory growth under
 * 64 MiB per attacking connection, and each channel must still run a command
 * whose environment holds exactly the variables that were accepted.
 */
import { describe, expect, it } from "vitest"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { fileURLToPath } from "node:url"
import * as SshClient from "../../src/Client.ts"
import * as Auth from "../../src/Auth/ClientAuth.ts"
import * as HostKeys from "../../src/Auth/HostKeys.ts"
import * as Requests from "../../src/Channel/Requests.ts"
import { runScoped } from "../helpers.ts"
import { mib, password, startServe, user } from "./serveProcess.ts"

const CONNECTIONS = 2
const CHANNELS_PER_CONNECTION = 3
const BIG = 120
const BIG_BYTES = 200 * 1000
const SMALL = 200
/** Peak RSS growth: the packets' transient buffers (144 MB pass through), not what channels keep (under 128 KiB each). */
const GROWTH_PER_CONNECTION = 64 * 1024 * 1024

const preload = fileURLToPath(new URL("./sessionPreload.ts", import.meta.url))
const decoder = new TextDecoder()

describe("env flood", () => {
  it(`${CONNECTIONS} connections × ${CHANNELS_PER_CONNECTION} channels × ${BIG} env of 200 KB: refused past the limits, memory bounded, channels usable`, async () => {
    const server = await startServe({ sftp: false, nodeArgs: ["--import", preload] })
    try {
      const options: SshClient.ConnectOptions = {
        host: "127.0.0.1",
        port: server.port,
        username: user,
        auth: [Auth.password(password)],
        hostKeys: HostKeys.fixed(server.hostKey.publicKey),
        connectTimeout: "30 seconds"
      }
      const big = "x".repeat(BIG_BYTES)
      const before = server.rssBytes()
      const channels = await runScoped(Effect.forEach(
        Array.from({ length: CONNECTIONS }),
        () =>
          Effect.gen(function*() {
            const ssh = yield* SshClient.connect(options)
            return yield* Effect.forEach(
              Array.from({ length: CHANNELS_PER_CONNECTION }),
              () =>
                Effect.gen(function*() {
                  const channel = yield* ssh.openChannel("session")
                  const sent: Array<readonly [string, string]> = [
                    ["LC_KEEP", "kept"],
                    ...Array.from({ length: BIG }, (_, i) => [`LC_BIG_${i}`, big] as const),
                    ...Array.from({ length: SMALL }, (_, i) => [`LC_SMALL_${i}`, `${i}`.padEnd(100, ".")] as const)
                  ]
                  const replies = yield* Effect.forEach(
                    sent,
                    ([name, value]) => channel.request("env", Requests.encodeEnv(name, value), true),
                    { concurrency: 8 }
                  )
                  const accepted = sent.filter((_, i) => replies[i]).map(([name, value]) => `${name}=${value}`)
                  expect(yield* channel.request("exec", Requests.encodeString("env"), true)).toBe(true)
                  yield* channel.eof
                  const output = decoder.decode(Buffer.concat(yield* Stream.runCollect(channel.stdout)))
                  const seen = output.split("\n").filter((line) => line.startsWith("LC_"))
                  return { accepted, seen }
                }),
              { concurrency: "unbounded" }
            )
          }),
        { concurrency: "unbounded" }
      ).pipe(Effect.map((perConnection) => perConnection.flat())))
      const peak = server.peakRssBytes()
      console.log(`env flood: server RSS ${mib(before)} before, peak ${mib(peak)} (+${mib(peak - before)}); ` +
        `accepted per channel ${JSON.stringify(channels.map((c) => c.accepted.length))}`)
      for (const { accepted, seen } of channels) {
        expect(accepted).toContain("LC_KEEP=kept")
        expect(accepted.filter((v) => v.startsWith("LC_BIG_"))).toEqual([])
        expect(accepted.length).toBe(128)
        expect(accepted.reduce((n, v) => n + v.length - 1, 0)).toBeLessThanOrEqual(128 * 1024)
        expect(seen.sort()).toEqual([...accepted].sort())
      }
      expect(peak - before).toBeLessThan(CONNECTIONS * GROWTH_PER_CONNECTION)
    } finally {
      await server.stop()
    }
  }, 180_000)
})
