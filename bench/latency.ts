/**
 * Throughput over latency and the price of a rekey, through a delay proxy (bench/delayProxy.ts, default 50 ms
 * round trip, BENCH_LATENCY_RTT_MS) in front of the bench sshd and, for the rekey rows, of an effect-ssh server
 * in this process:
 *
 *   1. exec `head -c N /dev/zero` (default 256 MiB, BENCH_LATENCY_BYTES) drained by effect-ssh, ssh2 and the
 *      OpenSSH client: over a round trip a channel carries at most one window per round trip, so this measures
 *      how early each client grants window (CHANNEL_WINDOW_ADJUST) and how much it grants.
 *   2. a rekey-heavy upload (BENCH_REKEY_BYTES, default 2 MiB, into `cat > /dev/null`) with a small rekey limit
 *      (BENCH_REKEY_LIMIT, default 200K): OpenSSH `ssh -o RekeyLimit=...` into our server and into sshd, and our
 *      client (`rekeyBytes`) into sshd and into our server. A client-started rekey costs the client two round
 *      trips (its KEXINIT → the server's KEXINIT, its kex init → the server's reply and NEWKEYS) during which it
 *      may send no data; what a server adds to that is its share of the cost.
 *
 * BENCH_RUNS times each, alternating, medians.
 *
 *     BENCH_SECTIONS=latency npm run bench
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Effect from "effect/Effect"
import type * as FileSystem from "effect/FileSystem"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Exit from "effect/Exit"
import * as Auth from "../src/Auth/ClientAuth.ts"
import * as HostKeys from "../src/Auth/HostKeys.ts"
import * as PrivateKey from "../src/Auth/PrivateKey.ts"
import * as PublicKey from "../src/Auth/PublicKey.ts"
import * as SshClient from "../src/Client.ts"
import * as NodeSsh from "../src/NodeSsh.ts"
import * as SshServer from "../src/Server.ts"
import { opensshPaths, sshClientArgs } from "../test/interop/sshd.ts"
import { type BenchConfig, formatBytes, parseBytes } from "./config.ts"
import { type DelayProxy, startDelayProxy } from "./delayProxy.ts"
import { effectSsh } from "./effectSsh.ts"
import { opensshAlgorithmArgs } from "./openssh.ts"
import { median, megabytesPerSecond, type Row } from "./report.ts"
import { ssh2 } from "./ssh2.ts"
import { type BenchTarget, downloadCommand } from "./target.ts"

interface Endpoint {
  readonly host: string
  readonly port: number
}

/** An SSH server the OpenSSH client can reach: where, and which name its host key is known under. */
interface Server {
  readonly name: string
  readonly endpoint: Endpoint
  readonly hostKeyAlias: string
  readonly knownHostsFile: string
  readonly hostKeyLine: string
}

const runScoped = <A>(effect: Effect.Effect<A, unknown, SshClient.Connector | FileSystem.FileSystem | Scope.Scope>): Promise<A> =>
  Effect.runPromise(effect.pipe(Effect.scoped, Effect.provide(NodeSsh.layer)))

/** Wall seconds of `ssh ... command` against `server`, stdin from `stdinFile` (or nothing), stdout discarded. */
const timeSsh = (target: BenchTarget, server: Server, command: string, options: { readonly stdinFile?: string | undefined; readonly extra?: ReadonlyArray<string> | undefined } = {}) =>
  new Promise<number>((resolve, reject) => {
    const args = [
      // ssh keeps the first value of an option: ours go before the harness defaults
      ...(options.extra ?? []),
      ...opensshAlgorithmArgs(target),
      "-T",
      "-o", `HostKeyAlias=${server.hostKeyAlias}`,
      ...sshClientArgs({ ...target.sshd, port: server.endpoint.port, knownHostsFile: server.knownHostsFile }, { identity: target.clientKeyFile }),
      `${target.sshd.user}@${server.endpoint.host}`,
      command
    ]
    const stdin = options.stdinFile === undefined ? "ignore" : Fs.openSync(options.stdinFile, "r")
    const devNull = Fs.openSync("/dev/null", "w")
    const started = performance.now()
    const child = ChildProcess.spawn(opensshPaths().ssh ?? "ssh", args, { stdio: [stdin, devNull, "pipe"] })
    let stderr = ""
    child.stderr!.setEncoding("utf8").on("data", (text: string) => void (stderr += text))
    child.once("error", reject)
    child.once("close", (code, signal) => {
      Fs.closeSync(devNull)
      if (typeof stdin === "number") Fs.closeSync(stdin)
      if (code === 0) resolve((performance.now() - started) / 1000)
      else reject(new Error(`ssh exited with ${code ?? signal}: ${stderr.trim()}`))
    })
  })

/** Uploads `payload` with our client into `cat > /dev/null` on `server`, rekeying every `rekeyBytes`. */
const uploadWithOurClient = (target: BenchTarget, server: Server, payload: Uint8Array, rekeyBytes: number) =>
  runScoped(Effect.gen(function*() {
    const ssh = yield* SshClient.connect({
      host: server.endpoint.host,
      port: server.endpoint.port,
      username: target.sshd.user,
      auth: [Auth.privateKey(target.clientKeyText)],
      hostKeys: HostKeys.fixed(server.hostKeyLine),
      algorithms: { kex: [target.config.kex], hostKey: [target.config.hostKeyAlgorithm], cipher: [target.config.cipher], mac: [target.config.mac] },
      rekeyBytes
    })
    const kexBefore = ssh.stats().kexCount
    const started = performance.now()
    const result = yield* ssh.run("cat > /dev/null", { stdin: payload })
    const seconds = (performance.now() - started) / 1000
    if (result.exitCode !== 0) throw new Error(`effect-ssh upload: the remote command exited with ${result.exitCode}`)
    return { seconds, rekeys: ssh.stats().kexCount - kexBefore }
  }))

/**
 * An effect-ssh server in this process whose sessions drain stdin (any command), accepting the bench's client
 * key for the bench user; closed with the returned scope.
 */
const startOurServer = async (target: BenchTarget, directory: string) => {
  const scope = Effect.runSync(Scope.make())
  const hostKey = PrivateKey.generate("ssh-ed25519")
  const clientKey = PublicKey.parseOpenSsh(Fs.readFileSync(`${target.clientKeyFile}.pub`, "utf8").trim())
  const server = await Effect.runPromise(
    SshServer.serve({
      host: "127.0.0.1",
      port: 0,
      hostKeys: [hostKey],
      auth: { publicKey: ({ user, key }) => Effect.succeed(user === target.sshd.user && PublicKey.equals(key, clientKey)) },
      session: { exec: (session) => Effect.as(Stream.runDrain(session.stdin), 0) }
    }).pipe(Scope.provide(scope), Effect.provide(NodeSsh.layer))
  )
  const hostKeyLine = PublicKey.toOpenSsh(hostKey.publicKey)
  const knownHostsFile = Path.join(directory, "known_hosts_effect_ssh")
  Fs.writeFileSync(knownHostsFile, `effect-ssh-server ${hostKeyLine}\n`)
  return { port: server.address.port, hostKeyLine, knownHostsFile, close: () => Effect.runPromise(Scope.close(scope, Exit.void)) }
}

const rate = (bytes: number, seconds: ReadonlyArray<number>): number | undefined =>
  seconds.length === 0 ? undefined : megabytesPerSecond(bytes, median(seconds))

/** Runs `measure` for each named contender, `runs` rounds, each round starting with the next; keeps successes. */
const alternate = async <A>(
  contenders: ReadonlyArray<readonly [name: string, measure: () => Promise<A>]>,
  runs: number,
  failures: Array<string>,
  report: (name: string, sample: A, round: number) => void
): Promise<ReadonlyMap<string, ReadonlyArray<A>>> => {
  const samples = new Map(contenders.map(([name]) => [name, [] as Array<A>]))
  for (let round = 0; round < runs; round++) {
    for (let k = 0; k < contenders.length; k++) {
      const [name, measure] = contenders[(round + k) % contenders.length]!
      try {
        const sample = await measure()
        samples.get(name)!.push(sample)
        report(name, sample, round)
      } catch (error) {
        const message = `${name}: ${error instanceof Error ? error.message : String(error)}`
        failures.push(message)
        console.log(`  failed: ${message}`)
      }
    }
  }
  return samples
}

const execOverLatency = async (config: BenchConfig, target: BenchTarget, failures: Array<string>, proxy: DelayProxy, rttMs: number): Promise<ReadonlyArray<Row>> => {
  const bytes = process.env.BENCH_LATENCY_BYTES ? parseBytes(process.env.BENCH_LATENCY_BYTES) : 256 * 1024 * 1024
  const proxied: BenchTarget = { ...target, sshd: { ...target.sshd, port: proxy.port } }
  const sshd: Server = {
    name: "sshd",
    endpoint: { host: target.sshd.host, port: proxy.port },
    hostKeyAlias: `[${target.sshd.host}]:${target.sshd.port}`,
    knownHostsFile: target.sshd.knownHostsFile,
    hostKeyLine: target.hostKeyLine
  }
  const setups: Array<number> = []
  for (let i = 0; i < 3; i++) setups.push(await timeSsh(target, sshd, "true"))
  const setup = median(setups)
  console.log(`\nexec "${downloadCommand(bytes)}" (${formatBytes(bytes)}) over a ${rttMs} ms round trip, ${config.runs} run(s) each, alternating`)
  console.log(`  OpenSSH session setup through the proxy (subtracted from its transfers): ${(setup * 1000).toFixed(0)} ms`)
  const samples = await alternate<number>(
    [
      ["effect-ssh", async () => (await effectSsh(proxied).download(bytes)).seconds],
      ["ssh2", async () => (await ssh2(proxied).download(bytes)).seconds],
      ["OpenSSH", async () => Math.max((await timeSsh(target, sshd, downloadCommand(bytes))) - setup, 1e-6)]
    ],
    config.runs,
    failures,
    (name, seconds, round) =>
      console.log(`  run ${round + 1} ${name.padEnd(12)} ${megabytesPerSecond(bytes, seconds).toFixed(1).padStart(6)} MB/s (${seconds.toFixed(2)} s)`)
  )
  return [{
    metric: `exec ${formatBytes(bytes)} MB/s, ${rttMs} ms RTT`,
    better: "higher",
    values: Object.fromEntries([...samples].map(([name, seconds]) => [name, rate(bytes, seconds)])),
    target: { against: "OpenSSH", ratio: 1 }
  }]
}

const rekeyUploads = async (config: BenchConfig, target: BenchTarget, failures: Array<string>, sshdProxy: DelayProxy, rttMs: number): Promise<ReadonlyArray<Row>> => {
  const bytes = process.env.BENCH_REKEY_BYTES ? parseBytes(process.env.BENCH_REKEY_BYTES) : 2 * 1024 * 1024
  const limitText = process.env.BENCH_REKEY_LIMIT || "200K"
  const limit = parseBytes(limitText)
  const directory = Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-ssh-bench-rekey-"))
  const payloadFile = Path.join(directory, "payload")
  const payload = new Uint8Array(bytes).map(() => Math.floor(Math.random() * 256))
  Fs.writeFileSync(payloadFile, payload)
  const ours = await startOurServer(target, directory)
  const oursProxy = await startDelayProxy({ host: "127.0.0.1", port: ours.port }, rttMs / 2)
  try {
    const sshd: Server = {
      name: "sshd",
      endpoint: { host: target.sshd.host, port: sshdProxy.port },
      hostKeyAlias: `[${target.sshd.host}]:${target.sshd.port}`,
      knownHostsFile: target.sshd.knownHostsFile,
      hostKeyLine: target.hostKeyLine
    }
    const server: Server = {
      name: "effect-ssh server",
      endpoint: { host: "127.0.0.1", port: oursProxy.port },
      hostKeyAlias: "effect-ssh-server",
      knownHostsFile: ours.knownHostsFile,
      hostKeyLine: ours.hostKeyLine
    }
    const sshUpload = (to: Server) => () =>
      timeSsh(target, to, "cat > /dev/null", { stdinFile: payloadFile, extra: ["-o", `RekeyLimit=${limitText}`] })
    const ourUpload = (to: Server) => async () => {
      const { seconds, rekeys } = await uploadWithOurClient(target, to, payload, limit)
      console.log(`    (effect-ssh → ${to.name}: ${rekeys} rekeys, ${(seconds * 1000 / Math.max(rekeys, 1)).toFixed(0)} ms of transfer per rekey)`)
      return seconds
    }
    console.log(`\nupload ${formatBytes(bytes)} into "cat > /dev/null", rekey limit ${limitText}, over a ${rttMs} ms round trip, ${config.runs} run(s) each, alternating`)
    const names = { sshToOurs: "ssh → effect-ssh server", sshToSshd: "ssh → sshd", oursToSshd: "effect-ssh → sshd", oursToOurs: "effect-ssh → effect-ssh server" }
    const samples = await alternate<number>(
      [
        [names.sshToOurs, sshUpload(server)],
        [names.sshToSshd, sshUpload(sshd)],
        [names.oursToSshd, ourUpload(sshd)],
        [names.oursToOurs, ourUpload(server)]
      ],
      config.runs,
      failures,
      (name, seconds, round) => console.log(`  run ${round + 1} ${name.padEnd(32)} ${seconds.toFixed(2)} s`)
    )
    const seconds = (name: string) => {
      const values = samples.get(name) ?? []
      return values.length === 0 ? undefined : median(values)
    }
    return [
      {
        // the OpenSSH client's time is its whole run (process, login, upload): the same on both servers
        metric: `ssh -o RekeyLimit=${limitText} upload ${formatBytes(bytes)} s, ${rttMs} ms RTT, by server`,
        better: "lower",
        values: { "effect-ssh": seconds(names.sshToOurs), OpenSSH: seconds(names.sshToSshd) },
        target: { against: "OpenSSH", ratio: 1 }
      },
      {
        metric: `client upload ${formatBytes(bytes)} to sshd s, rekey every ${limitText}, ${rttMs} ms RTT`,
        better: "lower",
        // ssh's figure includes its process start and login; ours counts the upload alone
        values: { "effect-ssh": seconds(names.oursToSshd), OpenSSH: seconds(names.sshToSshd) }
      },
      {
        metric: `effect-ssh → effect-ssh server upload ${formatBytes(bytes)} s, rekey every ${limitText}, ${rttMs} ms RTT`,
        better: "lower",
        values: { "effect-ssh": seconds(names.oursToOurs) }
      }
    ]
  } finally {
    await oursProxy.close()
    await ours.close()
    Fs.rmSync(directory, { recursive: true, force: true })
  }
}

/**
 * The latency section of `npm run bench`: exec MB/s over the round trip for the three clients, and rekey-heavy
 * uploads between OpenSSH and effect-ssh clients and servers.
 *
 * @example
 * ```ts
 * rows.push(...await latencyThroughput({ config, target, failures }))
 * ```
 */
export const latencyThroughput = async (context: {
  readonly config: BenchConfig
  readonly target: BenchTarget
  readonly failures: Array<string>
}): Promise<ReadonlyArray<Row>> => {
  const { config, target, failures } = context
  const rttEnv = process.env.BENCH_LATENCY_RTT_MS
  const rttMs = rttEnv === undefined || rttEnv === "" ? 50 : Number(rttEnv)
  const proxy = await startDelayProxy(target.sshd, rttMs / 2)
  try {
    const parts = (process.env.BENCH_LATENCY_PARTS ?? "exec,rekey").split(",")
    return [
      ...(parts.includes("exec") ? await execOverLatency(config, target, failures, proxy, rttMs) : []),
      ...(parts.includes("rekey") ? await rekeyUploads(config, target, failures, proxy, rttMs) : [])
    ]
  } finally {
    await proxy.close()
  }
}
