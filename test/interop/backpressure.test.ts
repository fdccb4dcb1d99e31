/**
 * Backpressure is the SSH window: 1 GiB streamed from `head -c` on a real
 * sshd through a deliberately slow consumer (examples/stream-output.ts, in
 * its own process with Node's default flags) must not grow that process's
 * RSS by 64 MiB or more.
 *
 * Read with `proc.borrowStdout` (chunks lent, freed after use), RSS grows
 * by less than 64 MiB from the start of the stream. Read as a Stream (the
 * consumer owns every chunk), consumed chunks are garbage that V8 frees with
 * a full collection per 64 MiB of them (its external-memory trigger), so RSS
 * rises by about that much in the first 64 MiB and stays there: for that mode
 * the growth is measured from the point the stream is warm (64 MiB in) to its
 * peak over the remaining ~960 MiB — memory that grew with the data would
 * show there. Both figures are printed for both modes.
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

const runExample = (sshd: Sshd, mode: "stream" | "lend"): StreamReport => {
  const out = child.execFileSync(
    path.resolve("node_modules/.bin/node"),
    ["--conditions=effect-ssh-source", path.resolve("examples/stream-output.ts"), sshd.host, String(sshd.port), sshd.user, sshd.clientKeys.ed25519, sshd.knownHostsFile, String(GiB), mode],
    { encoding: "utf8", timeout: 240_000 }
  )
  const r = JSON.parse(out.trim().split("\n").pop()!) as StreamReport
  console.log(
    `[backpressure ${mode}] RSS: ${(r.baselineRss / MiB).toFixed(1)} MiB at stream start, ` +
      `${(r.warmedUpRss / MiB).toFixed(1)} MiB after 64 MiB, peak ${(r.peakRss / MiB).toFixed(1)} MiB ` +
      `(growth from start ${((r.peakRss - r.baselineRss) / MiB).toFixed(1)} MiB, ` +
      `after warm-up ${((r.peakRss - r.warmedUpRss) / MiB).toFixed(1)} MiB)`
  )
  return r
}

describeInterop("backpressure against OpenSSH sshd", () => {
  let sshd: Sshd
  beforeAll(async () => {
    sshd = await startSshd({ hostKeyTypes: ["ed25519"] })
  })
  afterAll(async () => {
    await sshd?.stop()
  })

  it("1 GiB lent to a slow consumer: RSS grows by less than 64 MiB from the start", () => {
    const r = runExample(sshd, "lend")
    expect(r.received).toBe(GiB)
    expect(r.exit).toEqual({ _tag: "Exited", code: 0 })
    expect(r.peakRss - r.baselineRss).toBeLessThan(64 * MiB)
  }, 300_000)

  it("1 GiB as a Stream into a slow consumer: RSS stays flat once the stream is running", () => {
    const r = runExample(sshd, "stream")
    expect(r.received).toBe(GiB)
    expect(r.exit).toEqual({ _tag: "Exited", code: 0 })
    expect(r.peakRss - r.warmedUpRss).toBeLessThan(64 * MiB)
  }, 300_000)
})
