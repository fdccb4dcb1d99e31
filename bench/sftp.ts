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
import type { BenchTarget } from "./target.ts"

type Direction = "get" | "put"

interface SftpContender {
  readonly name: string
  /** Copies `from` to `to` once and returns the seconds it took. */
  readonly transfer: (direction: Direction, from: string, to: string) => Promise<number>
  readonly close: () => Promise<void>
}

// ---------------------------------------------------------------------------------------------------------------
// effect-ssh: one connection and SFTP session, kept open across runs
// ---------------------------------------------------------------------------------------------------------------

const effectSsh = async (target: BenchTarget): Promise<SftpContender> => {
  const { config, sshd } = target
  let release: () => void = () => undefined
  const session = new Promise<{ transfer: SftpContender["transfer"] }>((resolve, reject) => {
    const program = Effect.gen(function*() {
      const ssh = yield* SshClient.connect({
        host: sshd.host,
        port: sshd.port,
        username: sshd.user,
        auth: [Auth.privateKey(target.clientKeyText)],
        hostKeys: HostKeys.fixed(target.hostKeyLine),
        algorithms: { kex: [config.kex], hostKey: [config.hostKeyAlgorithm], cipher: [config.cipher], mac: [config.mac] }
      })
      const sftp = yield* ssh.sftp()
      const transfer = (direction: Direction, from: string, to: string) => {
        const started = performance.now()
        return Effect.runPromise(direction === "get" ? sftp.get(from, to) : sftp.put(from, to)).then(() => (performance.now() - started) / 1000)
      }
      resolve({ transfer })
      yield* Effect.callback<void>((resume) => {
        release = () => resume(Effect.void)
      })
    }).pipe(Effect.scoped, Effect.provide(NodeSsh.layer))
    Effect.runPromise(program).catch(reject)
  })
  const { transfer } = await session
  return { name: "effect-ssh", transfer, close: async () => release() }
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

const ssh2 = async (target: BenchTarget): Promise<SftpContender> => {
  const require = createRequire(import.meta.url)
  const { Client } = require("ssh2") as { readonly Client: new () => Ssh2Client }
  const { config, sshd } = target
  const client = new Client()
  const sftp = await new Promise<Ssh2Sftp>((resolve, reject) => {
    client.on("error", reject)
    client.on("ready", () => client.sftp((error, session) => error ? reject(error) : resolve(session)))
    client.connect({
      host: sshd.host,
      port: sshd.port,
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

const runBatch = (target: BenchTarget, batch: string): Promise<number> => {
  const sftp = opensshPaths().sftp
  if (sftp === undefined) return Promise.reject(new Error("the OpenSSH sftp client is not installed"))
  const { config, sshd } = target
  const args = [
    "-o", `Ciphers=${config.cipher}`,
    "-o", `MACs=${config.mac}`,
    "-o", `KexAlgorithms=${config.kex}`,
    "-o", `HostKeyAlgorithms=${config.hostKeyAlgorithm}`,
    "-o", "Compression=no",
    // sftp spells the port -P; the harness arguments are ssh's
    ...sshClientArgs(sshd, { identity: target.clientKeyFile }).map((arg) => arg === "-p" ? "-P" : arg),
    "-b", "-",
    `${sshd.user}@${sshd.host}`
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

const openssh = async (target: BenchTarget): Promise<SftpContender> => {
  const setups: Array<number> = []
  for (let i = 0; i < 3; i++) setups.push(await runBatch(target, "pwd\n"))
  const setup = median(setups)
  console.log(`  OpenSSH sftp session setup (median of an empty batch, subtracted from its transfers): ${(setup * 1000).toFixed(0)} ms`)
  return {
    name: "OpenSSH",
    transfer: async (direction, from, to) => Math.max((await runBatch(target, `${direction} ${from} ${to}\n`)) - setup, 1e-6),
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

/**
 * Measures SFTP get and put; returns the table rows ("sftp get", "sftp put") and records failed runs.
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
  const { config, target, failures } = context
  const bytes = process.env.BENCH_SFTP_BYTES ? parseBytes(process.env.BENCH_SFTP_BYTES) : 256 * 1024 * 1024
  // The login user may not be us: a world-writable remote directory, a readable source file.
  const remoteDir = Path.join(target.sshd.dir, "sftp-bench")
  Fs.mkdirSync(remoteDir, { mode: 0o777 })
  Fs.chmodSync(remoteDir, 0o777)
  const localDir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-ssh-bench-sftp-"))
  const source = Path.join(remoteDir, "source.bin")
  const localSource = Path.join(localDir, "source.bin")
  console.log(`\nSFTP get and put of ${formatBytes(bytes)} (random), a warm-up and ${config.runs} run(s) each, alternating`)
  const expected = writeRandomFile(source, bytes)
  Fs.copyFileSync(source, localSource)
  const samples = new Map<string, { get: Array<number>; put: Array<number> }>()
  const contenders: Array<SftpContender> = []
  try {
    for (const make of [effectSsh, ssh2, openssh]) {
      try {
        const contender = await make(target)
        contenders.push(contender)
        samples.set(contender.name, { get: [], put: [] })
      } catch (error) {
        failures.push(`sftp ${make.name}: ${error instanceof Error ? error.message : String(error)}`)
      }
    }
    // Round 0 is a warm-up, checked but not counted, for every contender alike: the in-process clients' first
    // transfer runs mostly unoptimised code (JIT), which no later transfer of a long-lived program does.
    for (let round = 0; round <= config.runs; round++) {
      for (let k = 0; k < contenders.length; k++) {
        const contender = contenders[(round + k) % contenders.length]!
        for (const direction of ["get", "put"] as const) {
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
            const label = round === 0 ? "warm-up" : `run ${round}`
            console.log(`  ${label.padEnd(7)} ${contender.name.padEnd(10)} ${direction} ${megabytesPerSecond(bytes, seconds).toFixed(0).padStart(6)} MB/s (${seconds.toFixed(2)} s)`)
          } catch (error) {
            const message = `sftp ${direction} ${contender.name}: ${error instanceof Error ? error.message : String(error)}`
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
  const rate = (direction: Direction) =>
    Object.fromEntries([...samples].map(([name, s]) => [name, s[direction].length === 0 ? undefined : megabytesPerSecond(bytes, median(s[direction]))]))
  const size = formatBytes(bytes)
  return [
    { metric: `sftp get ${size} MB/s`, better: "higher", values: rate("get"), target: { against: "OpenSSH", ratio: 2 } },
    { metric: `sftp get ${size} MB/s (vs ssh2 fastGet)`, better: "higher", values: rate("get"), target: { against: "ssh2", ratio: 6 } },
    { metric: `sftp put ${size} MB/s`, better: "higher", values: rate("put"), target: { against: "OpenSSH", ratio: 2 } }
  ]
}
