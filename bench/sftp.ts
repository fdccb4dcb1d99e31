/**
 * The SFTP section of `npm run bench`: get and put of one file (BENCH_SFTP_BYTES, default 256 MiB of random
 * bytes) against the run's loopback sshd and its sftp-server, by effect-ssh (`ssh.sftp()` get/put), ssh2
 * (`sftp.fastGet`/`fastPut`, default options) and OpenSSH's `sftp` in batch mode, alternating, BENCH_RUNS times
 * each after one uncounted warm-up transfer each way. Every client uses the run's kex and cipher. In-process
 * clients are timed from an established SFTP session; OpenSSH's time has its session setup (an empty batch,
 * median of 3) subtracted. Every copy is checked (size each run, SHA-256 on the warm-up and the first run).
 *
 *     BENCH_SFTP_BYTES=64M npm run bench
 */
import * as Effect from "effect/Effect"
import * as ChildProcess from "node:child_process"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import { createRequire } from "node:module"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Auth from "../src/Auth/ClientAuth.ts"
import * as HostKeys from "../src/Auth/HostKeys.ts"
import * as SshClient from "../src/Client.ts"
import * as NodeSsh from "../src/NodeSsh.ts"
import { opensshPaths, sshClientArgs } from "../test/interop/sshd.ts"
import { type BenchConfig, formatBytes, parseBytes } from "./config.ts"
import { median, megabytesPerSecond, type Row } from "./report.ts"
import { startDelayProxy } from "./delayProxy.ts"
import type { BenchTarget } from "./target.ts"

type Direction = "get" | "put"

/** Where a contender connects: the sshd itself, or a delay proxy in front of it. */
interface Endpoint {
  readonly host: string
  readonly port: number
}

interface SftpContender {
  readonly name: string
  /** What it is measured on (default both). */
  readonly directions?: ReadonlyArray<Direction> | undefined
  /** Copies `from` to `to` once and returns the seconds it took. */
  readonly transfer: (direction: Direction, from: string, to: string) => Promise<number>
  readonly close: () => Promise<void>
}

// ---------------------------------------------------------------------------------------------------------------
// effect-ssh: one connection and SFTP session, kept open across runs
// ---------------------------------------------------------------------------------------------------------------

const effectSsh = (target: BenchTarget, endpoint: Endpoint): Promise<SftpContender> => effectSshWith(target, endpoint, {})

/** effect-ssh uploading over 4 SFTP channels (`channels: 4`): only `put` (a download is not split). */
const effectSshChannels = (target: BenchTarget, endpoint: Endpoint): Promise<SftpContender> =>
  effectSshWith(target, endpoint, { channels: 4 })

const effectSshWith = async (target: BenchTarget, endpoint: Endpoint, options: { readonly channels?: number }): Promise<SftpContender> => {
  const { config, sshd } = target
  let release: () => void = () => undefined
  const session = new Promise<{ transfer: SftpContender["transfer"] }>((resolve, reject) => {
    const program = Effect.gen(function*() {
      const ssh = yield* SshClient.connect({
        host: endpoint.host,
        port: endpoint.port,
        username: sshd.user,
        auth: [Auth.privateKey(target.clientKeyText)],
        hostKeys: HostKeys.fixed(target.hostKeyLine),
        algorithms: { kex: [config.kex], hostKey: [config.hostKeyAlgorithm], cipher: [config.cipher], mac: [config.mac] }
      })
      const sftp = yield* ssh.sftp()
      const transfer = (direction: Direction, from: string, to: string) => {
        const started = performance.now()
        return Effect.runPromise(direction === "get" ? sftp.get(from, to) : sftp.put(from, to, options)).then(() => (performance.now() - started) / 1000)
      }
      resolve({ transfer })
      yield* Effect.callback<void>((resume) => {
        release = () => resume(Effect.void)
      })
    }).pipe(Effect.scoped, Effect.provide(NodeSsh.layer))
    Effect.runPromise(program).catch(reject)
  })
  const { transfer } = await session
  return options.channels === undefined
    ? { name: "effect-ssh", transfer, close: async () => release() }
    : { name: `effect-ssh ×${options.channels}`, directions: ["put"], transfer, close: async () => release() }
}

// ---------------------------------------------------------------------------------------------------------------
// ssh2: fastGet / fastPut with their defaults
// ---------------------------------------------------------------------------------------------------------------

interface Ssh2Sftp {
  fastGet(remote: string, local: string, callback: (error: Error | null | undefined) => void): void
  fastPut(local: string, remote: string, callback: (error: Error | null | undefined) => void): void
}

interface Ssh2Client {
  on(event: "ready", listener: () => void): this
  on(event: "error", listener: (error: Error) => void): this
  connect(config: Readonly<Record<string, unknown>>): this
  sftp(callback: (error: Error | undefined, sftp: Ssh2Sftp) => void): void
  end(): this
}

const ssh2 = async (target: BenchTarget, endpoint: Endpoint): Promise<SftpContender> => {
  const require = createRequire(import.meta.url)
  const { Client } = require("ssh2") as { readonly Client: new () => Ssh2Client }
  const { config, sshd } = target
  const client = new Client()
  const sftp = await new Promise<Ssh2Sftp>((resolve, reject) => {
    client.on("error", reject)
    client.on("ready", () => client.sftp((error, session) => error ? reject(error) : resolve(session)))
    client.connect({
      host: endpoint.host,
      port: endpoint.port,
      username: sshd.user,
      privateKey: target.clientKeyText,
      hostVerifier: (key: Buffer) => key.equals(target.hostKeyBlob),
      algorithms: {
        kex: [config.kex],
        serverHostKey: [config.hostKeyAlgorithm],
        cipher: [config.cipher],
        hmac: [config.mac],
        compress: ["none"]
      },
      readyTimeout: 20_000
    })
  })
  const transfer = (direction: Direction, from: string, to: string) =>
    new Promise<number>((resolve, reject) => {
      const started = performance.now()
      const done = (error: Error | null | undefined) => error ? reject(error) : resolve((performance.now() - started) / 1000)
      if (direction === "get") sftp.fastGet(from, to, done)
      else sftp.fastPut(from, to, done)
    })
  return { name: "ssh2", transfer, close: async () => void client.end() }
}

// ---------------------------------------------------------------------------------------------------------------
// OpenSSH: `sftp -b -`, a new process per transfer, session setup subtracted
// ---------------------------------------------------------------------------------------------------------------

const runBatch = (target: BenchTarget, endpoint: Endpoint, batch: string): Promise<number> => {
  const sftp = opensshPaths().sftp
  if (sftp === undefined) return Promise.reject(new Error("the OpenSSH sftp client is not installed"))
  const { config, sshd } = target
  const args = [
    "-o", `Ciphers=${config.cipher}`,
    "-o", `MACs=${config.mac}`,
    "-o", `KexAlgorithms=${config.kex}`,
    "-o", `HostKeyAlgorithms=${config.hostKeyAlgorithm}`,
    "-o", "Compression=no",
    // through a proxy, the host key is still the sshd's, recorded under its own port
    "-o", `HostKeyAlias=[${sshd.host}]:${sshd.port}`,
    // sftp spells the port -P; the harness arguments are ssh's
    ...sshClientArgs({ ...sshd, port: endpoint.port }, { identity: target.clientKeyFile }).map((arg) => arg === "-p" ? "-P" : arg),
    "-b", "-",
    `${sshd.user}@${endpoint.host}`
  ]
  return new Promise((resolve, reject) => {
    const started = performance.now()
    const child = ChildProcess.spawn(sftp, args, { stdio: ["pipe", "ignore", "pipe"] })
    let stderr = ""
    child.stderr!.setEncoding("utf8").on("data", (text: string) => {
      stderr += text
    })
    child.once("error", reject)
    child.once("close", (code) => code === 0 ? resolve((performance.now() - started) / 1000) : reject(new Error(`sftp exited with ${code}: ${stderr.trim()}`)))
    child.stdin!.end(batch)
  })
}

const openssh = async (target: BenchTarget, endpoint: Endpoint): Promise<SftpContender> => {
  const setups: Array<number> = []
  for (let i = 0; i < 3; i++) setups.push(await runBatch(target, endpoint, "pwd\n"))
  const setup = median(setups)
  console.log(`  OpenSSH sftp session setup (median of an empty batch, subtracted from its transfers): ${(setup * 1000).toFixed(0)} ms`)
  return {
    name: "OpenSSH",
    transfer: async (direction, from, to) => Math.max((await runBatch(target, endpoint, `${direction} ${from} ${to}\n`)) - setup, 1e-6),
    close: async () => undefined
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The section
// ---------------------------------------------------------------------------------------------------------------

const writeRandomFile = (path: string, bytes: number): string => {
  const hash = Crypto.createHash("sha256")
  const fd = Fs.openSync(path, "w", 0o644)
  const block = Buffer.alloc(4 * 1024 * 1024)
  for (let left = bytes; left > 0; left -= block.length) {
    const chunk = block.subarray(0, Math.min(left, block.length))
    Crypto.randomFillSync(chunk)
    hash.update(chunk)
    Fs.writeSync(fd, chunk)
  }
  Fs.closeSync(fd)
  return hash.digest("hex")
}

const sha256File = (path: string): string => Crypto.createHash("sha256").update(Fs.readFileSync(path)).digest("hex")

/** One pass: a random file of `bytes`, every contender through `endpoint`, a warm-up then `config.runs` rounds. */
const measurePass = async (context: {
  readonly config: BenchConfig
  readonly target: BenchTarget
  readonly failures: Array<string>
  readonly endpoint: Endpoint
  readonly bytes: number
  readonly label: string
  readonly contenders: ReadonlyArray<(target: BenchTarget, endpoint: Endpoint) => Promise<SftpContender>>
}): Promise<{ readonly get: Rates; readonly put: Rates }> => {
  const { config, target, failures, endpoint, bytes, label } = context
  // The login user may not be us: a world-writable remote directory, a readable source file.
  const remoteDir = Path.join(target.sshd.dir, "sftp-bench")
  Fs.mkdirSync(remoteDir, { mode: 0o777 })
  Fs.chmodSync(remoteDir, 0o777)
  const localDir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-ssh-bench-sftp-"))
  const source = Path.join(remoteDir, "source.bin")
  const localSource = Path.join(localDir, "source.bin")
  console.log(`\nSFTP get and put of ${formatBytes(bytes)} (random)${label}, a warm-up and ${config.runs} run(s) each, alternating`)
  const expected = writeRandomFile(source, bytes)
  Fs.copyFileSync(source, localSource)
  const samples = new Map<string, { get: Array<number>; put: Array<number> }>()
  const contenders: Array<SftpContender> = []
  try {
    for (const make of context.contenders) {
      try {
        const contender = await make(target, endpoint)
        contenders.push(contender)
        samples.set(contender.name, { get: [], put: [] })
      } catch (error) {
        failures.push(`sftp${label} ${make.name}: ${error instanceof Error ? error.message : String(error)}`)
      }
    }
    // Round 0 is a warm-up, checked but not counted, for every contender alike: the in-process clients' first
    // transfer runs mostly unoptimised code (JIT), which no later transfer of a long-lived program does.
    for (let round = 0; round <= config.runs; round++) {
      for (let k = 0; k < contenders.length; k++) {
        const contender = contenders[(round + k) % contenders.length]!
        for (const direction of contender.directions ?? ["get", "put"] as const) {
          const [from, to] = direction === "get"
            ? [source, Path.join(localDir, `${contender.name}.bin`)]
            : [localSource, Path.join(remoteDir, `${contender.name}.bin`)]
          try {
            Fs.rmSync(to, { force: true })
            const seconds = await contender.transfer(direction, from, to)
            const size = Fs.statSync(to).size
            if (size !== bytes) throw new Error(`copied ${size} bytes, expected ${bytes}`)
            if (round <= 1 && sha256File(to) !== expected) throw new Error("the copy differs from the source")
            if (round > 0) samples.get(contender.name)![direction].push(seconds)
            const run = round === 0 ? "warm-up" : `run ${round}`
            console.log(`  ${run.padEnd(7)} ${contender.name.padEnd(13)} ${direction} ${megabytesPerSecond(bytes, seconds).toFixed(0).padStart(6)} MB/s (${seconds.toFixed(2)} s)`)
          } catch (error) {
            const message = `sftp${label} ${direction} ${contender.name}: ${error instanceof Error ? error.message : String(error)}`
            failures.push(message)
            console.log(`  failed: ${message}`)
          }
        }
      }
    }
  } finally {
    for (const contender of contenders) await contender.close().catch(() => undefined)
    Fs.rmSync(localDir, { recursive: true, force: true })
    Fs.rmSync(remoteDir, { recursive: true, force: true })
  }
  const rate = (direction: Direction): Rates =>
    Object.fromEntries([...samples].map(([name, s]) => [name, s[direction].length === 0 ? undefined : megabytesPerSecond(bytes, median(s[direction]))]))
  return { get: rate("get"), put: rate("put") }
}

type Rates = Readonly<Record<string, number | undefined>>

/**
 * Measures SFTP get and put; returns the table rows and records failed runs. The rows are on loopback
 * (no latency: what limits a transfer there is CPU). A second pass (BENCH_SFTP_RTT_MS, default 50; 0 skips it)
 * puts a delay proxy in front of the same sshd, so that each client's pipelining and channel window decide, as
 * on a long-distance link; its file is BENCH_SFTP_RTT_BYTES (default 64 MiB).
 *
 * @example
 * ```ts
 * rows.push(...await sftpTransfers({ config, target, failures }))
 * ```
 */
export const sftpTransfers = async (context: {
  readonly config: BenchConfig
  readonly target: BenchTarget
  readonly failures: Array<string>
}): Promise<ReadonlyArray<Row>> => {
  const { target } = context
  const bytes = process.env.BENCH_SFTP_BYTES ? parseBytes(process.env.BENCH_SFTP_BYTES) : 256 * 1024 * 1024
  const loopback = await measurePass({ ...context, endpoint: target.sshd, bytes, label: "", contenders: [effectSsh, ssh2, openssh] })
  const size = formatBytes(bytes)
  const rows: Array<Row> = [
    { metric: `sftp get ${size} MB/s`, better: "higher", values: loopback.get, target: { against: "OpenSSH", ratio: 2 } },
    { metric: `sftp get ${size} MB/s (vs ssh2 fastGet)`, better: "higher", values: loopback.get, target: { against: "ssh2", ratio: 6 } },
    { metric: `sftp put ${size} MB/s`, better: "higher", values: loopback.put, target: { against: "OpenSSH", ratio: 2 } }
  ]
  const rttMs = process.env.BENCH_SFTP_RTT_MS === undefined || process.env.BENCH_SFTP_RTT_MS === "" ? 50 : Number(process.env.BENCH_SFTP_RTT_MS)
  if (!(rttMs > 0)) return rows
  const rttBytes = process.env.BENCH_SFTP_RTT_BYTES ? parseBytes(process.env.BENCH_SFTP_RTT_BYTES) : 64 * 1024 * 1024
  const proxy = await startDelayProxy(target.sshd, rttMs / 2)
  try {
    const label = ` over a ${rttMs} ms round trip`
    const delayed = await measurePass({
      ...context,
      endpoint: { host: "127.0.0.1", port: proxy.port },
      bytes: rttBytes,
      label,
      contenders: [effectSsh, effectSshChannels, ssh2, openssh]
    })
    const rttSize = formatBytes(rttBytes)
    const { "effect-ssh ×4": split, ...put } = delayed.put
    rows.push(
      { metric: `sftp get ${rttSize} MB/s, ${rttMs} ms RTT`, better: "higher", values: delayed.get },
      { metric: `sftp put ${rttSize} MB/s, ${rttMs} ms RTT`, better: "higher", values: put },
      // the others have no such option: theirs is the single-channel figure above
      { metric: `sftp put ${rttSize} MB/s, ${rttMs} ms RTT, effect-ssh channels: 4`, better: "higher", values: { ...put, "effect-ssh": split } }
    )
  } finally {
    await proxy.close()
  }
  return rows
}
