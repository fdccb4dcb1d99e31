/**
 * The one loopback sshd every implementation talks to, and the shape of an implementation under test.
 *
 * `startTarget` starts a harness sshd (test/interop/sshd.ts) with only an ed25519 host key and quiet logging,
 * and loads the key material each client needs in memory, so that every client pays the same parsing costs.
 */
import * as Fs from "node:fs/promises"
import { type Sshd, startSshd } from "../test/interop/sshd.ts"
import type { BenchConfig } from "./config.ts"

/** The sshd plus what a client needs to reach it with the benchmark's algorithms. */
export interface BenchTarget {
  readonly config: BenchConfig
  readonly sshd: Sshd
  /** `ssh-ed25519 AAAA...` of the server. */
  readonly hostKeyLine: string
  /** The host key blob (base64 field of `hostKeyLine`, decoded). */
  readonly hostKeyBlob: Uint8Array
  /** Private key file authorized on the server (ed25519, unencrypted). */
  readonly clientKeyFile: string
  /** That file's text. */
  readonly clientKeyText: string
}

/** A transfer: wall seconds from starting the command to its exit, and this process's CPU seconds meanwhile. */
export interface TransferSample {
  readonly seconds: number
  /** Omitted when the client runs in another process (OpenSSH). */
  readonly cpuSeconds?: number | undefined
}

/** One SSH client implementation. Each method runs one measurement and fails if the result is wrong. */
export interface Contender {
  readonly name: string
  /** Runs `head -c bytes /dev/zero` on a fresh connection, counts every byte, and times the command alone. */
  readonly download: (bytes: number) => Promise<TransferSample>
  /** Milliseconds from nothing to an authenticated connection ready to open a channel; absent = not measured. */
  readonly connect?: (() => Promise<number>) | undefined
}

/**
 * The remote command of a transfer.
 *
 * @example
 * ```ts
 * downloadCommand(1024) // "head -c 1024 /dev/zero"
 * ```
 */
export const downloadCommand = (bytes: number): string => `head -c ${bytes} /dev/zero`

/**
 * Starts the sshd and reads the key material.
 *
 * @example
 * ```ts
 * const target = await startTarget(fromEnv(process.env))
 * try { ... } finally { await target.sshd.stop() }
 * ```
 */
export const startTarget = async (config: BenchConfig): Promise<BenchTarget> => {
  const sshd = await startSshd({ hostKeyTypes: ["ed25519"], config: { LogLevel: "ERROR" } })
  try {
    const hostKey = sshd.hostKeys.find((key) => key.algorithm === config.hostKeyAlgorithm)
    if (hostKey === undefined) throw new Error(`the sshd has no ${config.hostKeyAlgorithm} host key`)
    const [algorithm, base64] = hostKey.publicKeyLine.split(" ")
    return {
      config,
      sshd,
      hostKeyLine: `${algorithm} ${base64}`,
      hostKeyBlob: Buffer.from(base64!, "base64"),
      clientKeyFile: sshd.clientKeys.ed25519,
      clientKeyText: await Fs.readFile(sshd.clientKeys.ed25519, "utf8")
    }
  } catch (error) {
    await sshd.stop()
    throw error
  }
}

/**
 * Throws unless a transfer delivered exactly the bytes asked for and the command exited with 0.
 *
 * @example
 * ```ts
 * checkTransfer("ssh2", 1024, received, 0)
 * ```
 */
export const checkTransfer = (name: string, expected: number, received: number, exitCode: number | null | undefined): void => {
  if (received !== expected) throw new Error(`${name}: received ${received} bytes, expected ${expected}`)
  if (exitCode !== 0) throw new Error(`${name}: the remote command exited with ${exitCode}`)
}

/**
 * This process's CPU time in seconds (user + system).
 *
 * @example
 * ```ts
 * const before = cpuSeconds(); work(); const spent = cpuSeconds() - before
 * ```
 */
export const cpuSeconds = (): number => {
  const { user, system } = process.cpuUsage()
  return (user + system) / 1e6
}
