/**
 * Where effect-ssh spends its CPU: runs one effect-ssh measurement against a fresh harness sshd under the V8
 * sampling profiler (node:inspector) and prints the functions and files with the most self time. The profile is
 * also written to a `.cpuprofile` file in the temp dir (open it in Chrome DevTools or VS Code).
 *
 *     node bench/profile.ts download     # exec of BENCH_BYTES (default 256 MiB)
 *     node bench/profile.ts connect      # BENCH_CONNECT_RUNS connections (default 50)
 *
 * The algorithms come from the same BENCH_* variables as `npm run bench` (bench/config.ts).
 */
import * as Fs from "node:fs/promises"
import * as Inspector from "node:inspector/promises"
import * as Os from "node:os"
import * as Path from "node:path"
import { fromEnv, parseBytes } from "./config.ts"
import { effectSsh } from "./effectSsh.ts"
import { startTarget } from "./target.ts"

interface ProfileNode {
  readonly id: number
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number }
  readonly children?: ReadonlyArray<number> | undefined
}

interface Profile {
  readonly nodes: ReadonlyArray<ProfileNode>
  readonly samples: ReadonlyArray<number>
}

/** A function or file and its share of the samples. */
interface Share {
  readonly label: string
  readonly samples: number
}

const shortUrl = (url: string): string => {
  const local = url.replace(/^file:\/\//, "")
  const modules = local.lastIndexOf("/node_modules/")
  return modules >= 0 ? local.slice(modules + "/node_modules/".length) : url === "" ? "(native)" : Path.relative(process.cwd(), local)
}

/**
 * Self-time samples grouped by `key`, largest first.
 *
 * @example
 * ```ts
 * const byFile = selfTime(profile, (frame) => frame.url)
 * ```
 */
const selfTime = (profile: Profile, key: (frame: ProfileNode["callFrame"]) => string): ReadonlyArray<Share> => {
  const byNode = new Map(profile.nodes.map((node) => [node.id, node]))
  const counts = new Map<string, number>()
  for (const id of profile.samples) {
    const node = byNode.get(id)
    if (node === undefined) continue
    const label = key(node.callFrame)
    counts.set(label, (counts.get(label) ?? 0) + 1)
  }
  return [...counts].map(([label, samples]) => ({ label, samples })).sort((a, b) => b.samples - a.samples)
}

const printTop = (title: string, shares: ReadonlyArray<Share>, total: number, count: number): void => {
  console.log(`\n${title}`)
  for (const { label, samples } of shares.slice(0, count)) {
    console.log(`  ${((samples / total) * 100).toFixed(1).padStart(5)}%  ${label}`)
  }
}

const mode = process.argv[2] ?? "download"
if (mode !== "download" && mode !== "connect") throw new Error(`usage: node bench/profile.ts [download|connect], got ${mode}`)
const config = fromEnv(process.env)
const bytes = process.env.BENCH_BYTES === undefined ? parseBytes("256M") : config.bytes
const connections = process.env.BENCH_CONNECT_RUNS === undefined ? 50 : config.connectRuns

const target = await startTarget(config)
const session = new Inspector.Session()
session.connect()
let profile: Profile
try {
  const contender = effectSsh(target)
  await contender.download(16 * 1024 ** 2) // warm up the JIT outside the profile
  await session.post("Profiler.enable")
  await session.post("Profiler.setSamplingInterval", { interval: 200 })
  await session.post("Profiler.start")
  if (mode === "download") {
    const sample = await contender.download(bytes)
    console.log(`effect-ssh: ${(bytes / 1e6 / sample.seconds).toFixed(0)} MB/s, ${sample.cpuSeconds?.toFixed(2)} CPU s for ${bytes} bytes`)
  } else {
    let total = 0
    for (let i = 0; i < connections; i++) total += await contender.connect!()
    console.log(`effect-ssh: ${connections} connections, mean ${(total / connections).toFixed(1)} ms`)
  }
  profile = (await session.post("Profiler.stop")).profile as unknown as Profile
} finally {
  session.disconnect()
  await target.sshd.stop()
}

const file = Path.join(Os.tmpdir(), `effect-ssh-${mode}-${Date.now()}.cpuprofile`)
await Fs.writeFile(file, JSON.stringify(profile))
const total = profile.samples.length
const idle = selfTime(profile, (frame) => frame.functionName).find((share) => share.label === "(idle)")?.samples ?? 0
console.log(`${total} samples, ${((idle / total) * 100).toFixed(0)}% idle; profile written to ${file}`)
printTop("self time by function", selfTime(profile, (frame) => `${frame.functionName || "(anonymous)"}  ${shortUrl(frame.url)}:${frame.lineNumber + 1}`), total, 25)
printTop("self time by file", selfTime(profile, (frame) => shortUrl(frame.url)), total, 15)
