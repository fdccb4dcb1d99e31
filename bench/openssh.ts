/**
 * The OpenSSH `ssh` client under test: `ssh ... 'head -c N /dev/zero' > /dev/null`, timed by wall clock.
 *
 * A process pays for its own start, the key exchange and authentication, which the in-process clients do
 * before their timer starts. So `download` subtracts the median wall time of `ssh ... true` (measured once, by
 * `measureSessionSetup`) from each transfer: what remains is the command's own time, like the other two.
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import { opensshPaths, sshClientArgs } from "../test/interop/sshd.ts"
import { median } from "./report.ts"
import { type BenchTarget, type Contender, downloadCommand } from "./target.ts"

/**
 * The benchmark's algorithms as `ssh` options, no compression and no connection sharing. ssh keeps the first
 * value of an option: these go before the harness defaults (`sshClientArgs`).
 *
 * @example
 * ```ts
 * const args = [...opensshAlgorithmArgs(target), ...sshClientArgs(target.sshd, { identity }), destination]
 * ```
 */
export const opensshAlgorithmArgs = (target: BenchTarget): ReadonlyArray<string> => [
  "-c", target.config.cipher,
  "-m", target.config.mac,
  "-o", `KexAlgorithms=${target.config.kex}`,
  "-o", `HostKeyAlgorithms=${target.config.hostKeyAlgorithm}`,
  "-o", "Compression=no",
  "-o", "ControlMaster=no",
  "-o", "ControlPath=none"
]

const sshArgs = (target: BenchTarget, command: string): ReadonlyArray<string> => [
  ...opensshAlgorithmArgs(target),
  "-T",
  ...sshClientArgs(target.sshd, { identity: target.clientKeyFile }),
  `${target.sshd.user}@${target.sshd.host}`,
  command
]

/** Runs ssh with stdout to /dev/null; resolves with the wall seconds, rejects on a non-zero exit. */
const timeSsh = (target: BenchTarget, command: string): Promise<number> => {
  const ssh = opensshPaths().ssh
  if (ssh === undefined) return Promise.reject(new Error("the OpenSSH client (ssh) is not installed"))
  const devNull = Fs.openSync("/dev/null", "w")
  return new Promise<number>((resolve, reject) => {
    const started = performance.now()
    const child = ChildProcess.spawn(ssh, sshArgs(target, command), { stdio: ["ignore", devNull, "pipe"] })
    let stderr = ""
    child.stderr!.setEncoding("utf8").on("data", (text: string) => {
      stderr += text
    })
    child.once("error", reject)
    child.once("close", (code, signal) => {
      const seconds = (performance.now() - started) / 1000
      if (code === 0) resolve(seconds)
      else reject(new Error(`ssh exited with ${code ?? signal}: ${stderr.trim()}`))
    })
  }).finally(() => Fs.closeSync(devNull))
}

/**
 * Median wall seconds of `ssh ... true`: process start, key exchange, authentication, session and exit.
 *
 * @example
 * ```ts
 * const setup = await measureSessionSetup(target, 3)
 * ```
 */
export const measureSessionSetup = async (target: BenchTarget, runs: number): Promise<number> => {
  const samples: Array<number> = []
  for (let i = 0; i < runs; i++) samples.push(await timeSsh(target, "true"))
  return median(samples)
}

/**
 * The OpenSSH contender; `sessionSetupSeconds` (from `measureSessionSetup`) is subtracted from each transfer.
 * It has no `connect` latency: a process start is not comparable with an in-process connection.
 *
 * @example
 * ```ts
 * const contender = openssh(target, await measureSessionSetup(target, 3))
 * ```
 */
export const openssh = (target: BenchTarget, sessionSetupSeconds: number): Contender => ({
  name: "OpenSSH",
  // `head` exits 0 only after writing every byte, and ssh returns its status, so exit 0 means all arrived.
  download: async (bytes) => ({ seconds: Math.max((await timeSsh(target, downloadCommand(bytes))) - sessionSetupSeconds, 1e-6) })
})
