/**
 * Backpressure is the SSH window: 1 GiB streamed from `head -c` on a real
 * sshd through a deliberately slow consumer (examples/stream-output.ts, in
 * its own process with Node's default flags) must not grow that process's
 * RSS by 64 MiB or more while it streams.
 *
 * Node itself adds a fixed ~60 MiB of RSS in the first tens of MiB of any
 * fast socket read (buffer churn before V8 collects; a bare `net.Socket`
 * reader shows the same), so growth is measured from the point the stream
 * is warm (64 MiB in) to its peak over the remaining ~960 MiB — memory that
 * grew with the data would show there. The growth from the very start is
 * printed as well.
 */
import { afterAll, beforeAll, expect, it } from "vitest"
import * as child from "node:child_process"
import * as path from "node:path"
import { type Sshd, describeInterop, startSshd } from "./sshd.ts"

const GiB = 1024 * 1024 * 1024
const MiB = 1024 * 1024

interface StreamReport {
  readonly received: number
  readonly exit: unknown
  readonly baselineRss: number
  readonly warmedUpRss: number
  readonly peakRss: number
}

const runExample = (sshd: Sshd): StreamReport => {
  const out = child.execFileSync(
    path.resolve("node_modules/.bin/node"),
    [path.resolve("examples/stream-output.ts"), sshd.host, String(sshd.port), sshd.user, sshd.clientKeys.ed25519, sshd.knownHostsFile, String(GiB)],
    { encoding: "utf8", timeout: 240_000 }
  )
  return JSON.parse(out.trim().split("\n").pop()!) as StreamReport
}

describeInterop("backpressure against OpenSSH sshd", () => {
  let sshd: Sshd
  beforeAll(async () => {
    sshd = await startSshd({ hostKeyTypes: ["ed25519"] })
  })
  afterAll(async () => {
    await sshd?.stop()
  })

  it("1 GiB through a slow consumer: RSS stays flat once the stream is running", () => {
    const r = runExample(sshd)
    const growth = r.peakRss - r.warmedUpRss
    console.log(
      `[backpressure] RSS: ${(r.baselineRss / MiB).toFixed(1)} MiB at stream start, ` +
        `${(r.warmedUpRss / MiB).toFixed(1)} MiB after 64 MiB, peak ${(r.peakRss / MiB).toFixed(1)} MiB ` +
        `(growth while streaming ${(growth / MiB).toFixed(1)} MiB, from start ${((r.peakRss - r.baselineRss) / MiB).toFixed(1)} MiB)`
    )
    expect(r.received).toBe(GiB)
    expect(r.exit).toEqual({ _tag: "Exited", code: 0 })
    expect(growth).toBeLessThan(64 * MiB)
  }, 300_000)
})
