/**
 * Compression over a long link: a compressible exec stream (`yes 'some text' | head -c N`, default 256 MiB,
 * BENCH_COMPRESSION_BYTES) through a delay proxy (BENCH_COMPRESSION_RTT_MS, default 50 ms round trip) in front
 * of the bench sshd, drained by effect-ssh and by the OpenSSH client, each with compression off and on
 * (`compression: true`, `ssh -C`: zlib@openssh.com), BENCH_RUNS times each, alternating, median MB/s; plus the
 * bytes each effect-ssh run received on the wire and this process's CPU time per GiB of output.
 *
 * Over a round trip a channel's throughput is bounded by window / RTT, counted in uncompressed bytes (the window
 * is), so what compression buys there comes from the wire and the crypto carrying less; its price is CPU.
 *
 *     BENCH_SECTIONS=compression npm run bench
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Effect from "effect/Effect"
import type * as FileSystem from "effect/FileSystem"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Auth from "../src/Auth/ClientAuth.ts"
import * as HostKeys from "../src/Auth/HostKeys.ts"
import * as Session from "../src/Channel/Session.ts"
import * as SshClient from "../src/Client.ts"
import * as NodeSsh from "../src/NodeSsh.ts"
import { opensshPaths, sshClientArgs } from "../test/interop/sshd.ts"
import { type BenchConfig, formatBytes, parseBytes } from "./config.ts"
import { startDelayProxy } from "./delayProxy.ts"
import { opensshAlgorithmArgs } from "./openssh.ts"
import { median, megabytesPerSecond, type Row } from "./report.ts"
import { type BenchTarget, checkTransfer, cpuSeconds } from "./target.ts"

/** The remote command: text that compresses about a hundredfold. */
const textCommand = (bytes: number): string => `yes 'some text' | head -c ${bytes}`

interface Endpoint {
  readonly host: string
  readonly port: number
}

/** One run: wall seconds of the command, and for effect-ssh the wire bytes received and this process's CPU. */
interface Sample {
  readonly seconds: number
  readonly wireBytes?: number | undefined
  readonly cpuSeconds?: number | undefined
}

interface Contender {
  readonly name: string
  readonly compressed: boolean
  readonly run: (bytes: number) => Promise<Sample>
}

const runScoped = <A>(effect: Effect.Effect<A, unknown, SshClient.Connector | FileSystem.FileSystem | Scope.Scope>): Promise<A> =>
  Effect.runPromise(effect.pipe(Effect.scoped, Effect.provide(NodeSsh.layer)))

const effectSsh = (target: BenchTarget, endpoint: Endpoint, compression: boolean): Contender => ({
  name: "effect-ssh",
  compressed: compression,
  run: (bytes) =>
    runScoped(Effect.gen(function*() {
      const ssh = yield* SshClient.connect({
        host: endpoint.host,
        port: endpoint.port,
        username: target.sshd.user,
        auth: [Auth.privateKey(target.clientKeyText)],
        hostKeys: HostKeys.fixed(target.hostKeyLine),
        algorithms: { kex: [target.config.kex], hostKey: [target.config.hostKeyAlgorithm], cipher: [target.config.cipher], mac: [target.config.mac] },
        compression
      })
      const wireBefore = ssh.stats().bytesIn
      const startedCpu = cpuSeconds()
      const started = performance.now()
      const proc = yield* ssh.exec(textCommand(bytes), { stderr: "discard" })
      let received = 0
      yield* Stream.runForEachArray(proc.stdout, (chunks) =>
        Effect.sync(() => {
          for (const chunk of chunks) received += chunk.byteLength
        }))
      const status = yield* proc.exit
      const seconds = (performance.now() - started) / 1000
      checkTransfer("effect-ssh", bytes, received, Session.exitCode(status))
      return { seconds, wireBytes: ssh.stats().bytesIn - wireBefore, cpuSeconds: cpuSeconds() - startedCpu }
    }))
})

/** Wall seconds of `ssh ... command` through the proxy, trusting the sshd's key under its own name. */
const timeSsh = (target: BenchTarget, endpoint: Endpoint, compression: boolean) => {
  const args = (command: string) => [
    // ssh keeps the first value of an option: ours go before opensshAlgorithmArgs' Compression=no
    ...(compression ? ["-o", "Compression=yes"] : []),
    ...opensshAlgorithmArgs(target),
    "-T",
    "-o", `HostKeyAlias=[${target.sshd.host}]:${target.sshd.port}`,
    ...sshClientArgs({ ...target.sshd, port: endpoint.port }, { identity: target.clientKeyFile }),
    `${target.sshd.user}@${endpoint.host}`,
    command
  ]
  const time = (command: string) =>
    new Promise<number>((resolve, reject) => {
      const devNull = Fs.openSync("/dev/null", "w")
      const started = performance.now()
      const child = ChildProcess.spawn(opensshPaths().ssh ?? "ssh", args(command), { stdio: ["ignore", devNull, "pipe"] })
      let stderr = ""
      child.stderr!.setEncoding("utf8").on("data", (text: string) => void (stderr += text))
      child.once("error", reject)
      child.once("close", (code, signal) => {
        Fs.closeSync(devNull)
        if (code === 0) resolve((performance.now() - started) / 1000)
        else reject(new Error(`ssh exited with ${code ?? signal}: ${stderr.trim()}`))
      })
    })
  return time
}

/** The OpenSSH client, its session setup (`ssh ... true`, measured once) subtracted from each transfer. */
const openssh = (target: BenchTarget, endpoint: Endpoint, compression: boolean, setupSeconds: number): Contender => {
  const time = timeSsh(target, endpoint, compression)
  return {
    name: "OpenSSH",
    compressed: compression,
    // `head` exits 0 only after writing every byte, and ssh returns its status
    run: async (bytes) => ({ seconds: Math.max((await time(textCommand(bytes))) - setupSeconds, 1e-6) })
  }
}

const label = (contender: Contender) => `${contender.name} ${contender.compressed ? "compressed" : "plain"}`

/**
 * The compression section of `npm run bench`: rows for MB/s without and with compression over the round trip,
 * and effect-ssh's wire bytes and CPU per GiB with compression.
 *
 * @example
 * ```ts
 * rows.push(...await compressionThroughput({ config, target, failures }))
 * ```
 */
export const compressionThroughput = async (context: {
  readonly config: BenchConfig
  readonly target: BenchTarget
  readonly failures: Array<string>
}): Promise<ReadonlyArray<Row>> => {
  const { config, target, failures } = context
  const bytes = process.env.BENCH_COMPRESSION_BYTES ? parseBytes(process.env.BENCH_COMPRESSION_BYTES) : 256 * 1024 * 1024
  const rttEnv = process.env.BENCH_COMPRESSION_RTT_MS
  const rttMs = rttEnv === undefined || rttEnv === "" ? 50 : Number(rttEnv)
  const proxy = await startDelayProxy(target.sshd, rttMs / 2)
  try {
    const endpoint = { host: "127.0.0.1", port: proxy.port }
    const setups: Array<number> = []
    for (let i = 0; i < 3; i++) setups.push(await timeSsh(target, endpoint, false)("true"))
    const setup = median(setups)
    const contenders = [
      effectSsh(target, endpoint, false),
      effectSsh(target, endpoint, true),
      openssh(target, endpoint, false, setup),
      openssh(target, endpoint, true, setup)
    ]
    console.log(`\nexec "${textCommand(bytes)}" (${formatBytes(bytes)}) over a ${rttMs} ms round trip, ${config.runs} run(s) each, alternating`)
    console.log(`  OpenSSH session setup through the proxy (subtracted from its transfers): ${(setup * 1000).toFixed(0)} ms`)
    const samples = new Map(contenders.map((c) => [label(c), [] as Array<Sample>]))
    for (let round = 0; round < config.runs; round++) {
      for (let k = 0; k < contenders.length; k++) {
        const contender = contenders[(round + k) % contenders.length]!
        try {
          const sample = await contender.run(bytes)
          samples.get(label(contender))!.push(sample)
          const wire = sample.wireBytes === undefined ? "" : `, ${formatBytes(sample.wireBytes)} on the wire`
          const cpu = sample.cpuSeconds === undefined ? "" : `, client CPU ${sample.cpuSeconds.toFixed(2)} s`
          console.log(`  run ${round + 1} ${label(contender).padEnd(22)} ${megabytesPerSecond(bytes, sample.seconds).toFixed(0).padStart(6)} MB/s (${sample.seconds.toFixed(2)} s${wire}${cpu})`)
        } catch (error) {
          const message = `${label(contender)}: ${error instanceof Error ? error.message : String(error)}`
          failures.push(message)
          console.log(`  failed: ${message}`)
        }
      }
    }
    const medianOf = (name: string, value: (sample: Sample) => number | undefined): number | undefined => {
      const values = (samples.get(name) ?? []).map(value).filter((v): v is number => v !== undefined)
      return values.length === 0 ? undefined : median(values)
    }
    const rate = (name: string) => medianOf(name, (s) => megabytesPerSecond(bytes, s.seconds))
    const size = formatBytes(bytes)
    return [
      {
        metric: `exec ${size} text MB/s, ${rttMs} ms RTT, no compression`,
        better: "higher",
        values: { "effect-ssh": rate("effect-ssh plain"), OpenSSH: rate("OpenSSH plain") }
      },
      {
        metric: `exec ${size} text MB/s, ${rttMs} ms RTT, compression`,
        better: "higher",
        values: { "effect-ssh": rate("effect-ssh compressed"), OpenSSH: rate("OpenSSH compressed") }
      },
      {
        metric: `exec ${size} text, compression: speed-up over plain`,
        better: "higher",
        values: {
          "effect-ssh": ratioOf(rate("effect-ssh compressed"), rate("effect-ssh plain")),
          OpenSSH: ratioOf(rate("OpenSSH compressed"), rate("OpenSSH plain"))
        }
      },
      {
        metric: `exec ${size} text, compression: wire bytes per output byte ×1000`,
        better: "lower",
        values: { "effect-ssh": medianOf("effect-ssh compressed", (s) => s.wireBytes === undefined ? undefined : (s.wireBytes / bytes) * 1000) }
      },
      {
        metric: `exec ${size} text, client CPU s/GiB, compression`,
        better: "lower",
        values: { "effect-ssh": medianOf("effect-ssh compressed", (s) => s.cpuSeconds === undefined ? undefined : s.cpuSeconds / (bytes / 1024 ** 3)) }
      },
      {
        metric: `exec ${size} text, client CPU s/GiB, no compression`,
        better: "lower",
        values: { "effect-ssh": medianOf("effect-ssh plain", (s) => s.cpuSeconds === undefined ? undefined : s.cpuSeconds / (bytes / 1024 ** 3)) }
      }
    ]
  } finally {
    await proxy.close()
  }
}

const ratioOf = (a: number | undefined, b: number | undefined): number | undefined =>
  a === undefined || b === undefined || b === 0 ? undefined : a / b
