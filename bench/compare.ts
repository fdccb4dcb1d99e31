/**
 * `node bench/compare.ts OTHER_CHECKOUT`: this checkout's effect-ssh against another's (an earlier commit, say),
 * on one loopback sshd, in one process, alternating round by round (each round starts with the other one than
 * the round before): exec `head -c BENCH_BYTES /dev/zero` borrowed (`borrowStdout`, or the other checkout's own
 * lent mode) and as a Stream, then SFTP get and put of a random file (COMPARE_SFTP_BYTES, default 256 MiB). It
 * prints the median MB/s and client CPU seconds per GiB of each, and this/other.
 *
 * On a shared machine whole runs of `npm run bench` vary by tens of percent from one to the next; measuring both
 * side by side in one process, many rounds, is how to tell what a change costs.
 *
 *     git worktree add /tmp/before HEAD~3 && ln -s "$PWD/node_modules" /tmp/before/node_modules
 *     COMPARE_ROUNDS=10 BENCH_BYTES=256M node bench/compare.ts /tmp/before
 *
 * COMPARE_ROUNDS (default 5) rounds; COMPARE_ONLY=exec or sftp runs one half.
 */
import * as Effect from "effect/Effect"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { fromEnv, parseBytes } from "./config.ts"
import { median } from "./report.ts"
import { type BenchTarget, cpuSeconds, startTarget, type TransferSample } from "./target.ts"

/** The modules of one checkout that the comparison drives (the other checkout's are assumed to have this shape). */
interface Checkout {
  readonly name: string
  readonly Client: typeof import("../src/Client.ts")
  readonly Auth: typeof import("../src/Auth/ClientAuth.ts")
  readonly HostKeys: typeof import("../src/Auth/HostKeys.ts")
  readonly NodeSsh: typeof import("../src/NodeSsh.ts")
  readonly Bench: typeof import("./effectSsh.ts")
}

const load = async (name: string, root: string): Promise<Checkout> => ({
  name,
  Client: await import(Path.join(root, "src/Client.ts")),
  Auth: await import(Path.join(root, "src/Auth/ClientAuth.ts")),
  HostKeys: await import(Path.join(root, "src/Auth/HostKeys.ts")),
  NodeSsh: await import(Path.join(root, "src/NodeSsh.ts")),
  Bench: await import(Path.join(root, "bench/effectSsh.ts"))
})

type Direction = "get" | "put"

interface SftpSession {
  readonly transfer: (direction: Direction, from: string, to: string) => Promise<TransferSample>
  readonly close: () => void
}

/** One connection and SFTP session of `checkout`, kept open across rounds. */
const sftpSession = (checkout: Checkout, target: BenchTarget): Promise<SftpSession> =>
  new Promise((resolve, reject) => {
    let close: () => void = () => undefined
    const { config, sshd } = target
    const program = Effect.gen(function*() {
      const ssh = yield* checkout.Client.connect({
        host: sshd.host,
        port: sshd.port,
        username: sshd.user,
        auth: [checkout.Auth.privateKey(target.clientKeyText)],
        hostKeys: checkout.HostKeys.fixed(target.hostKeyLine),
        algorithms: { kex: [config.kex], hostKey: [config.hostKeyAlgorithm], cipher: [config.cipher], mac: [config.mac] }
      })
      const sftp = yield* ssh.sftp()
      resolve({
        transfer: (direction, from, to) => {
          const startedCpu = cpuSeconds()
          const started = performance.now()
          return Effect.runPromise(direction === "get" ? sftp.get(from, to) : sftp.put(from, to)).then(() => ({
            seconds: (performance.now() - started) / 1000,
            cpuSeconds: cpuSeconds() - startedCpu
          }))
        },
        close: () => close()
      })
      yield* Effect.callback<void>((resume) => {
        close = () => resume(Effect.void)
      })
    }).pipe(Effect.scoped, Effect.provide(checkout.NodeSsh.layer))
    Effect.runPromise(program).catch(reject)
  })

/** Samples by metric, then by checkout: MB/s and CPU s per GiB. */
type Samples = Map<string, Map<string, Array<{ readonly rate: number; readonly cpu: number }>>>

const record = (samples: Samples, metric: string, checkout: string, bytes: number, sample: TransferSample): void => {
  const byCheckout = samples.get(metric) ?? new Map()
  samples.set(metric, byCheckout)
  const list = byCheckout.get(checkout) ?? []
  byCheckout.set(checkout, list)
  const rate = bytes / sample.seconds / 1e6
  const cpu = (sample.cpuSeconds ?? Number.NaN) / (bytes / 1024 ** 3)
  list.push({ rate, cpu })
  console.log(`  ${checkout.padEnd(6)} ${metric.padEnd(12)} ${rate.toFixed(0).padStart(5)} MB/s, client CPU ${cpu.toFixed(2)} s/GiB`)
}

const main = async (): Promise<void> => {
  const other = process.argv[2]
  if (other === undefined) throw new Error("usage: node bench/compare.ts OTHER_CHECKOUT")
  const config = fromEnv(process.env)
  const rounds = Number(process.env.COMPARE_ROUNDS ?? 5)
  const only = process.env.COMPARE_ONLY
  const sftpBytes = process.env.COMPARE_SFTP_BYTES ? parseBytes(process.env.COMPARE_SFTP_BYTES) : 256 * 1024 * 1024
  const checkouts = [await load("this", Path.resolve(import.meta.dirname, "..")), await load("other", Path.resolve(other))]
  const target = await startTarget(config)
  const local = Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-ssh-compare-"))
  try {
    // the login user may not be us: a world-writable remote directory, a readable source file
    const remote = Path.join(target.sshd.dir, "compare")
    Fs.mkdirSync(remote, { mode: 0o777 })
    Fs.chmodSync(remote, 0o777)
    const source = Path.join(remote, "source.bin")
    Fs.writeFileSync(source, Crypto.randomBytes(sftpBytes))
    Fs.chmodSync(source, 0o644)
    const localSource = Path.join(local, "source.bin")
    Fs.copyFileSync(source, localSource)
    const sessions = new Map<string, SftpSession>()
    for (const checkout of checkouts) sessions.set(checkout.name, await sftpSession(checkout, target))
    // a warm-up of each (JIT), not counted
    for (const checkout of checkouts) {
      if (only !== "sftp") await checkout.Bench.effectSsh(target, "lend").download(64 * 1024 * 1024)
      if (only !== "exec") {
        await sessions.get(checkout.name)!.transfer("get", source, Path.join(local, `warm-${checkout.name}`))
        await sessions.get(checkout.name)!.transfer("put", localSource, Path.join(remote, `warm-${checkout.name}`))
      }
    }
    console.log(`${rounds} round(s), alternating; exec ${config.bytes} bytes, SFTP ${sftpBytes} bytes`)
    const samples: Samples = new Map()
    for (let round = 0; round < rounds; round++) {
      for (const checkout of round % 2 === 0 ? checkouts : [...checkouts].reverse()) {
        if (only !== "sftp") {
          record(samples, "exec lent", checkout.name, config.bytes, await checkout.Bench.effectSsh(target, "lend").download(config.bytes))
          record(samples, "exec stream", checkout.name, config.bytes, await checkout.Bench.effectSsh(target).download(config.bytes))
        }
        if (only !== "exec") {
          const session = sessions.get(checkout.name)!
          const copy = Path.join(local, `get-${checkout.name}`)
          record(samples, "sftp get", checkout.name, sftpBytes, await session.transfer("get", source, copy))
          if (Fs.statSync(copy).size !== sftpBytes) throw new Error(`${checkout.name}: the downloaded copy has the wrong size`)
          record(samples, "sftp put", checkout.name, sftpBytes, await session.transfer("put", localSource, Path.join(remote, `put-${checkout.name}`)))
        }
      }
    }
    for (const session of sessions.values()) session.close()
    console.log("\nmetric        this MB/s  other MB/s  this/other  this CPU s/GiB  other CPU s/GiB  this/other")
    for (const [metric, byCheckout] of samples) {
      const ours = byCheckout.get("this") ?? []
      const theirs = byCheckout.get("other") ?? []
      const rate = [median(ours.map((s) => s.rate)), median(theirs.map((s) => s.rate))] as const
      const cpu = [median(ours.map((s) => s.cpu)), median(theirs.map((s) => s.cpu))] as const
      console.log(
        `${metric.padEnd(12)} ${rate[0].toFixed(0).padStart(10)} ${rate[1].toFixed(0).padStart(11)} ${(rate[0] / rate[1]).toFixed(3).padStart(11)}` +
          ` ${cpu[0].toFixed(2).padStart(15)} ${cpu[1].toFixed(2).padStart(16)} ${(cpu[0] / cpu[1]).toFixed(3).padStart(11)}`
      )
    }
  } finally {
    Fs.rmSync(local, { recursive: true, force: true })
    await target.sshd.stop()
  }
}

main().then(() => process.exit(0), (error) => {
  console.error(error)
  process.exit(1)
})
