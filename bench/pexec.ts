/**
 * Fleet execution: `effect-ssh pexec` against Debian's `parallel-ssh` (pssh), the same 200 hosts — 200
 * `user@127.0.0.1:port` entries of one OpenSSH sshd started for this section with `MaxStartups 1000` (the run's
 * shared sshd keeps the default 10:30:100, which refuses most of a burst of 200) — running `true`, at
 * parallelism 32 and 200. Both use the benchmark's algorithms and ed25519 client key, and each run starts a fresh
 * process (pexec: node; pssh: python and one `ssh` per host). Wall time from spawn to exit, BENCH_RUNS each,
 * alternating, median; both must report 200 successes.
 *
 * Also the client's CPU (user + system, GNU time's `%U %S`: for pssh its python process and the ssh processes it
 * waits for). The sshd runs on the same machine and does most of the work of a connection (a fork and re-exec,
 * its half of the key exchange, the session's shell): wall time is bounded by it for both clients alike, the
 * client CPU is what tells the clients apart.
 *
 * pexec runs as the package's `effect-ssh` command does (`src/cli/bin.ts`: Node's compile cache on).
 *
 * Memory: the peak RSS of the pexec process (GNU time's `%M`) over 200 hosts at -p 200, divided by the hosts,
 * and the marginal figure (that peak minus the peak of a 1-host run, over 199): node's own ~50 MB is in the
 * first, not the second. pssh's memory is its python process plus one ssh process per host and is not compared.
 *
 *     BENCH_SECTIONS=pexec npm run bench
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { startSshd } from "../test/interop/sshd.ts"
import type { BenchConfig } from "./config.ts"
import { opensshAlgorithmArgs } from "./openssh.ts"
import { median, type Row } from "./report.ts"
import type { BenchTarget } from "./target.ts"

const HOSTS = 200
const PARALLELISMS = [32, 200] as const
const PSSH = "/usr/bin/parallel-ssh"
const TIME = "/usr/bin/time"
const node = Path.resolve("node_modules/.bin/node")
const main = Path.resolve("src/cli/bin.ts")

interface Run {
  readonly seconds: number
  /** Peak RSS in KiB, when measured. */
  readonly maxRssKiB?: number | undefined
  /** User + system CPU seconds of the process and the children it waited for (pssh's ssh processes). */
  readonly cpuSeconds?: number | undefined
}

/** Spawns a fleet runner; resolves with its wall time once it exits 0 having reported every host's success. */
const timeRun = (command: string, args: ReadonlyArray<string>, successes: RegExp, expected: number): Promise<Run> =>
  new Promise((resolve, reject) => {
    const rssFile = Path.join(Fs.mkdtempSync("/tmp/effect-ssh-bench-pexec-"), "rss")
    const measured = Fs.existsSync(TIME)
    const [program, argv] = measured ? [TIME, ["-f", "%M %U %S", "-o", rssFile, command, ...args]] : [command, args]
    const started = performance.now()
    const child = ChildProcess.spawn(program, argv, { stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    child.stdout!.setEncoding("utf8").on("data", (text: string) => void (stdout += text))
    child.stderr!.setEncoding("utf8").on("data", (text: string) => void (stderr += text))
    child.once("error", reject)
    child.once("close", (code) => {
      const seconds = (performance.now() - started) / 1000
      const [rss, user, system] = measured ? Fs.readFileSync(rssFile, "utf8").trim().split("\n").at(-1)!.split(" ").map(Number) : []
      const maxRssKiB = rss
      const cpuSeconds = user === undefined || system === undefined ? undefined : user + system
      Fs.rmSync(Path.dirname(rssFile), { recursive: true, force: true })
      const ok = stdout.split("\n").filter((line) => successes.test(line)).length
      if (code === 0 && ok === expected) resolve({ seconds, maxRssKiB, cpuSeconds })
      else reject(new Error(`${Path.basename(command)} exited with ${code}, ${ok}/${expected} successes: ${(stderr || stdout).trim().split("\n").slice(-3).join(" | ")}`))
    })
  })

/** The section, with the run's shared target for its configuration only. */
export const pexecFleet = async (
  { config, failures }: { readonly config: BenchConfig; readonly target: BenchTarget; readonly failures: Array<string> }
): Promise<ReadonlyArray<Row>> => {
  if (!Fs.existsSync(PSSH)) {
    failures.push(`pexec: ${PSSH} is not installed (Debian package pssh)`)
    return []
  }
  const sshd = await startSshd({ hostKeyTypes: ["ed25519"], config: { LogLevel: "ERROR", MaxStartups: "1000", MaxSessions: "10" } })
  const dir = Fs.mkdtempSync("/tmp/effect-ssh-bench-hosts-")
  try {
    const hostsFile = (n: number) => {
      const file = Path.join(dir, `hosts-${n}`)
      Fs.writeFileSync(file, Array.from({ length: n }, () => `${sshd.user}@127.0.0.1:${sshd.port}`).join("\n") + "\n")
      return file
    }
    const all = hostsFile(HOSTS)
    const one = hostsFile(1)
    const ours = (hosts: string, parallelism: number) =>
      timeRun(node, [
        main, "pexec",
        "--identity", sshd.clientKeys.ed25519,
        "--known-hosts", sshd.knownHostsFile,
        "-O", `Ciphers=${config.cipher}`, "-O", `KexAlgorithms=${config.kex}`, "-O", `HostKeyAlgorithms=${config.hostKeyAlgorithm}`,
        "-h", hosts, "-p", String(parallelism), "--", "true"
      ], /\[SUCCESS\]/, hosts === all ? HOSTS : 1)
    const sshOptions = [
      ...opensshAlgorithmArgs({ config } as BenchTarget),
      "-i", sshd.clientKeys.ed25519,
      "-o", "IdentitiesOnly=yes",
      "-o", `UserKnownHostsFile=${sshd.knownHostsFile}`,
      "-o", "StrictHostKeyChecking=yes",
      "-o", "BatchMode=yes",
      "-o", "LogLevel=ERROR"
    ]
    const pssh = (parallelism: number) =>
      timeRun(PSSH, ["-h", all, "-p", String(parallelism), "-t", "0", "-x", sshOptions.join(" "), "true"], /\[SUCCESS\]/, HOSTS)

    console.log(`\npexec: 'true' on ${HOSTS} hosts (one sshd, MaxStartups 1000), ${config.runs} run(s) each, alternating`)
    const rows: Array<Row> = []
    let peak: number | undefined
    for (const parallelism of PARALLELISMS) {
      const samples: Record<string, Array<Run>> = { "effect-ssh": [], "parallel-ssh": [] }
      for (let round = 0; round < config.runs; round++) {
        const order = round % 2 === 0 ? ["effect-ssh", "parallel-ssh"] : ["parallel-ssh", "effect-ssh"]
        for (const name of order) {
          try {
            const run = await (name === "effect-ssh" ? ours(all, parallelism) : pssh(parallelism))
            samples[name]!.push(run)
            const cpu = run.cpuSeconds === undefined ? "" : `, client CPU ${run.cpuSeconds.toFixed(2)} s`
            const rss = run.maxRssKiB === undefined ? "" : `, peak RSS ${(run.maxRssKiB / 1024).toFixed(0)} MiB`
            console.log(`  -p ${String(parallelism).padEnd(3)} run ${round + 1} ${name.padEnd(13)} ${run.seconds.toFixed(2)} s${cpu}${rss}`)
          } catch (error) {
            const message = `pexec -p ${parallelism} ${name}: ${error instanceof Error ? error.message : String(error)}`
            failures.push(message)
            console.log(`  failed: ${message}`)
          }
        }
      }
      const medianBy = (name: string, value: (run: Run) => number | undefined) => {
        const values = samples[name]!.map(value).filter((v): v is number => v !== undefined)
        return values.length === 0 ? undefined : median(values)
      }
      const ourSeconds = medianBy("effect-ssh", (r) => r.seconds)
      const theirSeconds = medianBy("parallel-ssh", (r) => r.seconds)
      const ourCpu = medianBy("effect-ssh", (r) => r.cpuSeconds)
      const theirCpu = medianBy("parallel-ssh", (r) => r.cpuSeconds)
      if (ourSeconds !== undefined && theirSeconds !== undefined) {
        console.log(`  -p ${parallelism}: wall effect-ssh ${ourSeconds.toFixed(2)} s, parallel-ssh ${theirSeconds.toFixed(2)} s: ${(theirSeconds / ourSeconds).toFixed(2)}× as fast`)
      }
      if (ourCpu !== undefined && theirCpu !== undefined) {
        console.log(`  -p ${parallelism}: client CPU effect-ssh ${ourCpu.toFixed(2)} s, parallel-ssh (python + ssh) ${theirCpu.toFixed(2)} s: ${(theirCpu / ourCpu).toFixed(2)}× less`)
      }
      rows.push({
        metric: `pexec ${HOSTS} hosts -p ${parallelism} wall s`,
        better: "lower",
        values: { "effect-ssh": ourSeconds, "parallel-ssh": theirSeconds },
        target: { against: "parallel-ssh", ratio: 0.2 }
      })
      rows.push({
        metric: `pexec ${HOSTS} hosts -p ${parallelism} client CPU s`,
        better: "lower",
        values: { "effect-ssh": ourCpu, "parallel-ssh": theirCpu },
        target: { against: "parallel-ssh", ratio: 0.2 }
      })
      if (parallelism === HOSTS) {
        const rss = samples["effect-ssh"]!.map((r) => r.maxRssKiB).filter((kib): kib is number => kib !== undefined)
        if (rss.length > 0) peak = median(rss)
      }
    }
    if (peak !== undefined) {
      const base = (await ours(one, 1).catch(() => undefined))?.maxRssKiB
      const perHost = peak / HOSTS
      const marginal = base === undefined ? undefined : (peak - base) / (HOSTS - 1)
      console.log(`  effect-ssh pexec peak RSS ${(peak / 1024).toFixed(0)} MiB over ${HOSTS} hosts at -p ${HOSTS}: ${perHost.toFixed(0)} KiB per connection` +
        (base === undefined || marginal === undefined ? "" : `; 1 host: ${(base / 1024).toFixed(0)} MiB, so ${marginal.toFixed(0)} KiB per added connection`))
      rows.push({ metric: `pexec peak RSS KiB per connection (${HOSTS} at once)`, better: "lower", values: { "effect-ssh": perHost } })
      if (marginal !== undefined) rows.push({ metric: "pexec RSS KiB per added connection", better: "lower", values: { "effect-ssh": marginal } })
    }
    return rows
  } finally {
    Fs.rmSync(dir, { recursive: true, force: true })
    await sshd.stop()
  }
}
