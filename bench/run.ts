/**
 * `npm run bench`: effect-ssh, ssh2 and the OpenSSH client against ONE loopback sshd in ONE run, side by side.
 *
 *   1. exec throughput: `head -c BENCH_BYTES /dev/zero` (default 1 GiB) drained and discarded, BENCH_RUNS times
 *      each (default 3), alternating, median MB/s; plus this process's CPU time per GiB for the in-process clients.
 *   2. connect + auth latency: nothing → authenticated connection ready to open a channel, BENCH_CONNECT_RUNS
 *      times each (default 20), alternating, median ms (effect-ssh and ssh2).
 *   3. SFTP get and put of a random file (bench/sftp.ts), on loopback and then over a delayed round trip.
 *   4. forwarding: BENCH_FORWARD_BYTES (default 1 GiB) through `effect-ssh exec -N -L` and `ssh -N -L`
 *      (bench/forward.ts), BENCH_RUNS times each, alternating, median MB/s and the client process's CPU per GiB.
 *
 * Every client uses the same kex, host key, cipher (and MAC) and an ed25519 client key; see bench/config.ts for
 * the environment variables. The table gives effect-ssh/ssh2 and effect-ssh/OpenSSH ratios and whether the
 * issue's targets are met. The machine may be shared: the load average is printed at start and end, and the
 * ratios matter more than the absolute figures. Exits 1 if any measurement failed.
 *
 *     npm run bench
 *     BENCH_BYTES=256M BENCH_CIPHER=chacha20-poly1305@openssh.com npm run bench
 */
import * as ChildProcess from "node:child_process"
import { createRequire } from "node:module"
import { type BenchConfig, formatBytes, fromEnv } from "./config.ts"
import { effectSsh } from "./effectSsh.ts"
import { measureSessionSetup, openssh } from "./openssh.ts"
import { type ForwardSample, effectSshForward, forwardBytes, measureForward, opensshForward, startSink } from "./forward.ts"
import { formatTable, loadAverage, median, megabytesPerSecond, type Row } from "./report.ts"
import { sftpTransfers } from "./sftp.ts"
import { compressionThroughput } from "./compression.ts"
import { latencyThroughput } from "./latency.ts"
import { ssh2, ssh2BindingAvailable } from "./ssh2.ts"
import { type BenchTarget, type Contender, startTarget } from "./target.ts"

const SUBJECT = "effect-ssh"

/** What a section of the benchmark gets; it returns table rows and records failed measurements. */
interface SectionContext {
  readonly config: BenchConfig
  readonly target: BenchTarget
  readonly failures: Array<string>
}

type Section = (context: SectionContext) => Promise<ReadonlyArray<Row>>

/** Runs `measure` once per contender per round, starting each round with the next contender; keeps successes. */
const alternate = async <C extends { readonly name: string }, A>(
  contenders: ReadonlyArray<C>,
  rounds: number,
  failures: Array<string>,
  measure: (contender: C) => Promise<A>,
  report?: (contender: C, sample: A, round: number) => void
): Promise<ReadonlyMap<string, ReadonlyArray<A>>> => {
  const samples = new Map(contenders.map((contender) => [contender.name, [] as Array<A>]))
  for (let round = 0; round < rounds; round++) {
    for (let k = 0; k < contenders.length; k++) {
      const contender = contenders[(round + k) % contenders.length]!
      try {
        const sample = await measure(contender)
        samples.get(contender.name)!.push(sample)
        report?.(contender, sample, round)
      } catch (error) {
        const message = `${contender.name}: ${error instanceof Error ? error.message : String(error)}`
        failures.push(message)
        console.log(`  failed: ${message}`)
      }
    }
  }
  return samples
}

const medianOf = <A>(samples: ReadonlyArray<A> | undefined, value: (sample: A) => number): number | undefined =>
  samples === undefined || samples.length === 0 ? undefined : median(samples.map(value))

const execThroughput: Section = async ({ config, failures, target }) => {
  const { bytes, runs } = config
  const sessionSetup = await measureSessionSetup(target, 3)
  console.log(`\nexec 'head -c ${bytes} /dev/zero' (${formatBytes(bytes)}), ${runs} run(s) each, alternating`)
  console.log(`  OpenSSH session setup (median wall time of 'ssh ... true', subtracted from its transfers): ${(sessionSetup * 1000).toFixed(0)} ms`)
  const lent = effectSsh(target, "lend")
  const contenders = [effectSsh(target), lent, ssh2(target), openssh(target, sessionSetup)]
  const samples = await alternate(contenders, runs, failures, (contender) => contender.download(bytes), (contender, sample, round) => {
    const cpu = sample.cpuSeconds === undefined ? "" : `, client CPU ${sample.cpuSeconds.toFixed(2)} s`
    console.log(`  run ${round + 1} ${contender.name.padEnd(15)} ${megabytesPerSecond(bytes, sample.seconds).toFixed(0).padStart(6)} MB/s (${sample.seconds.toFixed(2)} s${cpu})`)
  })
  const each = (value: (sample: { readonly seconds: number; readonly cpuSeconds?: number | undefined }) => number | undefined) =>
    Object.fromEntries(contenders.map(({ name }) => {
      const values = (samples.get(name) ?? []).map(value).filter((v): v is number => v !== undefined)
      return [name, medianOf(values, (v) => v)]
    }))
  const throughput = each((sample) => megabytesPerSecond(bytes, sample.seconds))
  const cpu = each((sample) => sample.cpuSeconds === undefined ? undefined : sample.cpuSeconds / (bytes / 1024 ** 3))
  // the lent rows put effect-ssh's borrowStdout figure in effect-ssh's column
  const asSubject = (values: Readonly<Record<string, number | undefined>>) => ({ ...values, [SUBJECT]: values[lent.name] })
  return [
    { metric: `exec ${formatBytes(bytes)} MB/s`, better: "higher", values: throughput, target: { against: "ssh2", ratio: 1.3 } },
    { metric: `exec ${formatBytes(bytes)} MB/s, borrowStdout`, better: "higher", values: asSubject(throughput), target: { against: "ssh2", ratio: 1.3 } },
    { metric: "client CPU s per GiB", better: "lower", values: cpu },
    { metric: "client CPU s per GiB, borrowStdout", better: "lower", values: asSubject(cpu) }
  ]
}

const WARMUP_CONNECTIONS = 2

const connectLatency: Section = async ({ config, failures, target }) => {
  const nagle = ssh2(target, { noDelay: false })
  const contenders = [effectSsh(target), ssh2(target), nagle]
  console.log(`\nconnect + auth, ${config.connectRuns} run(s) each after ${WARMUP_CONNECTIONS} warm-up, alternating`)
  await alternate(contenders, WARMUP_CONNECTIONS, failures, (contender) => contender.connect!())
  const samples = await alternate(contenders, config.connectRuns, failures, (contender) => contender.connect!())
  for (const { name } of contenders) {
    const ms = samples.get(name) ?? []
    if (ms.length > 0) console.log(`  ${name.padEnd(16)} min ${Math.min(...ms).toFixed(1)} ms, median ${median(ms).toFixed(1)} ms, max ${Math.max(...ms).toFixed(1)} ms`)
  }
  const ours = medianOf(samples.get(SUBJECT), (ms) => ms)
  return [
    {
      metric: "connect+auth ms",
      better: "lower",
      values: { [SUBJECT]: ours, ssh2: medianOf(samples.get("ssh2"), (ms) => ms) },
      target: { against: "ssh2", ratio: 0.5 }
    },
    {
      // ssh2 as it comes, Nagle's algorithm on (effect-ssh turns it off): the row above is the like-for-like one.
      metric: "connect+auth ms vs ssh2 defaults (Nagle on)",
      better: "lower",
      values: { [SUBJECT]: ours, ssh2: medianOf(samples.get(nagle.name), (ms) => ms) },
      target: { against: "ssh2", ratio: 0.5 }
    }
  ]
}

const forwardThroughput: Section = async ({ config, failures, target }) => {
  const bytes = forwardBytes(process.env)
  const sink = await startSink()
  try {
    const contenders = [effectSshForward(target), opensshForward(target)]
    console.log(`\nforward ${formatBytes(bytes)} through -N -L to a local sink, ${config.runs} run(s) each, alternating`)
    const samples = await alternate(
      contenders,
      config.runs,
      failures,
      (contender) => measureForward(contender, sink.port, bytes),
      (contender, sample, round) => {
        const cpu = sample.cpuSeconds === undefined ? "" : `, client CPU ${sample.cpuSeconds.toFixed(2)} s`
        console.log(`  run ${round + 1} ${contender.name.padEnd(15)} ${megabytesPerSecond(bytes, sample.seconds).toFixed(0).padStart(6)} MB/s (${sample.seconds.toFixed(2)} s${cpu})`)
      }
    )
    const each = (value: (sample: ForwardSample) => number | undefined) =>
      Object.fromEntries(contenders.map(({ name }) => {
        const values = (samples.get(name) ?? []).map(value).filter((v): v is number => v !== undefined)
        return [name, medianOf(values, (v) => v)]
      }))
    return [
      {
        metric: `forward -L ${formatBytes(bytes)} MB/s`,
        better: "higher",
        values: each((sample) => megabytesPerSecond(bytes, sample.seconds)),
        target: { against: "OpenSSH", ratio: 1 }
      },
      {
        metric: "forward client CPU s per GiB",
        better: "lower",
        values: each((sample) => sample.cpuSeconds === undefined ? undefined : sample.cpuSeconds / (bytes / 1024 ** 3))
      }
    ]
  } finally {
    sink.close()
  }
}

const sections: ReadonlyArray<readonly [name: string, section: Section]> = [
  ["exec", execThroughput],
  ["connect", connectLatency],
  // SFTP get/put (bench/sftp.ts)
  ["sftp", sftpTransfers],
  // -N -L against ssh -N -L (bench/forward.ts)
  ["forward", forwardThroughput],
  ["compression", compressionThroughput],
  ["latency", latencyThroughput],
  ["pexec", async (context) => (await import("./pexec.ts")).pexecFleet(context)]
]

/** The sections BENCH_SECTIONS names (comma-separated: exec, connect, sftp, forward, compression, latency, pexec), or all of them when it is unset. */
const selectedSections = (env: NodeJS.ProcessEnv): ReadonlyArray<Section> => {
  const names = (env.BENCH_SECTIONS ?? "").split(",").map((name) => name.trim()).filter((name) => name !== "")
  if (names.length === 0) return sections.map(([, section]) => section)
  const unknown = names.filter((name) => !sections.some(([known]) => known === name))
  if (unknown.length > 0) throw new Error(`BENCH_SECTIONS: unknown section(s) ${unknown.join(", ")} (known: ${sections.map(([known]) => known).join(", ")})`)
  return sections.filter(([name]) => names.includes(name)).map(([, section]) => section)
}

const commandOutput = (command: string, args: ReadonlyArray<string>): string => {
  const result = ChildProcess.spawnSync(command, args, { encoding: "utf8" })
  return `${result.stdout ?? ""}${result.stderr ?? ""}`.trim() || "unknown"
}

const main = async (): Promise<number> => {
  const config = fromEnv(process.env)
  const chosen = selectedSections(process.env)
  const require = createRequire(import.meta.url)
  const ssh2Version = (require("ssh2/package.json") as { readonly version: string }).version
  console.log(`effect-ssh benchmark — node ${process.version}, ssh2 ${ssh2Version} (native crypto binding: ${ssh2BindingAvailable() ? "yes" : "no"}), ${commandOutput("ssh", ["-V"])}`)
  console.log(`algorithms: kex ${config.kex}, host key ${config.hostKeyAlgorithm}, cipher ${config.cipher}${config.cipher.includes("gcm") || config.cipher.includes("poly1305") ? "" : `, mac ${config.mac}`}, client key ed25519`)
  console.log(`load average at start: ${loadAverage()}`)
  const started = performance.now()
  const target = await startTarget(config)
  const failures: Array<string> = []
  const rows: Array<Row> = []
  try {
    for (const section of chosen) rows.push(...await section({ config, target, failures }))
  } finally {
    await target.sshd.stop()
  }
  console.log(`\n${formatTable(rows, SUBJECT, [SUBJECT, "ssh2", "OpenSSH"])}`)
  console.log(`\nload average at end: ${loadAverage()}; took ${((performance.now() - started) / 1000).toFixed(0)} s`)
  if (failures.length > 0) console.log(`\n${failures.length} measurement(s) failed:\n${failures.map((f) => `  ${f}`).join("\n")}`)
  return failures.length > 0 ? 1 : 0
}

process.exitCode = await main()
