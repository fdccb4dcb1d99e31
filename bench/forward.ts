/**
 * The forwarding section of `npm run bench`: BENCH_FORWARD_BYTES (default 1 GiB) through a local forwarding,
 * `effect-ssh exec -N -L` against `ssh -N -L`, both to the run's sshd with the run's algorithms.
 *
 * Each run starts the client (a process of its own, as a user runs it), waits until its listener answers, then
 * times one connection end to end: a source in this process connects to the listener and writes the bytes (a
 * random 1 MiB block, repeated) as fast as the tunnel takes them, then half-closes; the sink behind the
 * forwarding (also in this process, reached by sshd over loopback) counts them and answers with the count once
 * the source's end arrives. The time runs from the connect to that answer. The client's CPU seconds meanwhile
 * are read from /proc (Linux). The client is stopped (SIGTERM) after each run.
 *
 *     BENCH_FORWARD_BYTES=256M BENCH_SECTIONS=forward npm run bench
 */
import * as ChildProcess from "node:child_process"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import * as Net from "node:net"
import { opensshPaths, sshClientArgs } from "../test/interop/sshd.ts"
import { opensshAlgorithmArgs } from "./openssh.ts"
import { parseBytes } from "./config.ts"
import type { BenchTarget } from "./target.ts"

const MAIN_SCRIPT = new URL("../src/cli/bin.ts", import.meta.url).pathname
const BLOCK = Crypto.randomBytes(1024 * 1024)
const READY_TIMEOUT_MS = 30_000

/**
 * Bytes per transfer: BENCH_FORWARD_BYTES (`K`, `M`, `G` are binary), default 1 GiB.
 *
 * @example
 * ```ts
 * forwardBytes({ BENCH_FORWARD_BYTES: "256M" }) // 268435456
 * ```
 */
export const forwardBytes = (env: Readonly<Record<string, string | undefined>>): number =>
  env.BENCH_FORWARD_BYTES === undefined || env.BENCH_FORWARD_BYTES === "" ? 1024 ** 3 : parseBytes(env.BENCH_FORWARD_BYTES)

/** One forwarding run: wall seconds of the transfer, and the client process's CPU seconds meanwhile. */
export interface ForwardSample {
  readonly seconds: number
  readonly cpuSeconds: number | undefined
}

/** A client that can forward a local port to a host and port through the sshd. */
export interface ForwardContender {
  readonly name: string
  /** The command line of `-N -L listenPort:host:port`. */
  readonly command: (listenPort: number, to: { readonly host: string; readonly port: number }) => readonly [string, ReadonlyArray<string>]
}

/**
 * `effect-ssh exec -N -L`, run with this Node, pinned to the run's algorithms and host key.
 *
 * @example
 * ```ts
 * const [program, args] = effectSshForward(target).command(40000, { host: "127.0.0.1", port: 5000 })
 * ```
 */
export const effectSshForward = (target: BenchTarget): ForwardContender => ({
  name: "effect-ssh",
  command: (listenPort, to) => [process.execPath, [
    MAIN_SCRIPT, "exec", "-N",
    "-L", `${listenPort}:${to.host}:${to.port}`,
    "-p", String(target.sshd.port),
    "-i", target.clientKeyFile,
    "--known-hosts", target.sshd.knownHostsFile,
    "-o", `Ciphers=${target.config.cipher}`,
    "-o", `MACs=${target.config.mac}`,
    "-o", `KexAlgorithms=${target.config.kex}`,
    "-o", `HostKeyAlgorithms=${target.config.hostKeyAlgorithm}`,
    `${target.sshd.user}@${target.sshd.host}`
  ]]
})

/**
 * OpenSSH's `ssh -N -L`, with the same algorithms.
 *
 * @example
 * ```ts
 * const [program, args] = opensshForward(target).command(40000, { host: "127.0.0.1", port: 5000 })
 * ```
 */
export const opensshForward = (target: BenchTarget): ForwardContender => ({
  name: "OpenSSH",
  command: (listenPort, to) => {
    const ssh = opensshPaths().ssh
    if (ssh === undefined) throw new Error("the OpenSSH client (ssh) is not installed")
    return [ssh, [
      ...opensshAlgorithmArgs(target),
      "-N",
      "-o", "ExitOnForwardFailure=yes",
      "-L", `${listenPort}:${to.host}:${to.port}`,
      ...sshClientArgs(target.sshd, { identity: target.clientKeyFile }),
      `${target.sshd.user}@${target.sshd.host}`
    ]]
  }
})

/**
 * A sink: every connection's bytes are counted, and the count is the answer once the connection's input ends.
 *
 * @example
 * ```ts
 * const sink = await startSink()
 * try { await measureForward(contender, sink.port, bytes) } finally { sink.close() }
 * ```
 */
export const startSink = async (): Promise<{ readonly port: number; readonly close: () => void }> => {
  const server = Net.createServer({ allowHalfOpen: true }, (conn) => {
    let received = 0
    conn.on("data", (chunk: Buffer) => {
      received += chunk.byteLength
    })
    conn.on("end", () => conn.end(`${received}\n`))
    conn.on("error", () => conn.destroy())
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  return { port: (server.address() as Net.AddressInfo).port, close: () => server.close() }
}

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = Net.createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as Net.AddressInfo
      server.close(() => resolve(port))
    })
  })

const canConnect = (port: number) =>
  new Promise<boolean>((resolve) => {
    const conn = Net.connect({ host: "127.0.0.1", port })
    conn.once("connect", () => {
      conn.destroy()
      resolve(true)
    })
    conn.once("error", () => resolve(false))
  })

/** User + system CPU seconds of a process so far (Linux /proc; undefined elsewhere). */
const processCpuSeconds = (pid: number): number | undefined => {
  try {
    // the fields after the command name, which is in parentheses and may hold spaces
    const fields = Fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")
    return (Number(fields[11]) + Number(fields[12])) / 100 // utime, stime in clock ticks (USER_HZ = 100)
  } catch {
    return undefined
  }
}

/** Writes `bytes` to port, half-closes, and resolves with the sink's count and the seconds it all took. */
const sendThrough = (port: number, bytes: number) =>
  new Promise<{ readonly seconds: number; readonly counted: number }>((resolve, reject) => {
    const started = performance.now()
    const conn = Net.connect({ host: "127.0.0.1", port, allowHalfOpen: true, noDelay: true })
    let answer = ""
    let left = bytes
    const pump = () => {
      while (left > 0) {
        const chunk = left >= BLOCK.byteLength ? BLOCK : BLOCK.subarray(0, left)
        left -= chunk.byteLength
        if (!conn.write(chunk)) return void conn.once("drain", pump)
      }
      conn.end()
    }
    conn.once("connect", pump)
    conn.setEncoding("utf8").on("data", (text: string) => {
      answer += text
    })
    conn.once("end", () => {
      conn.end()
      resolve({ seconds: (performance.now() - started) / 1000, counted: Number(answer.trim()) })
    })
    conn.once("error", reject)
  })

/**
 * Starts the contender's forwarding to the sink, times one transfer of `bytes` through it, and stops it.
 *
 * @example
 * ```ts
 * const sample = await measureForward(effectSshForward(target), sink.port, 256 * 1024 ** 2)
 * ```
 */
export const measureForward = async (contender: ForwardContender, sinkPort: number, bytes: number): Promise<ForwardSample> => {
  const listenPort = await freePort()
  const [program, args] = contender.command(listenPort, { host: "127.0.0.1", port: sinkPort })
  const child = ChildProcess.spawn(program, args, { stdio: ["ignore", "ignore", "pipe"] })
  let stderr = ""
  child.stderr!.setEncoding("utf8").on("data", (text: string) => {
    stderr += text
  })
  const exited = new Promise<void>((resolve) => child.once("close", () => resolve()))
  let running = true
  void exited.then(() => {
    running = false
  })
  try {
    const deadline = Date.now() + READY_TIMEOUT_MS
    while (!(await canConnect(listenPort))) {
      if (!running) throw new Error(`${contender.name} exited before its forwarding was up: ${stderr.trim()}`)
      if (Date.now() > deadline) throw new Error(`${contender.name}: no listener on ${listenPort} after ${READY_TIMEOUT_MS} ms`)
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    const cpuBefore = processCpuSeconds(child.pid!)
    const { seconds, counted } = await sendThrough(listenPort, bytes)
    const cpuAfter = processCpuSeconds(child.pid!)
    if (counted !== bytes) throw new Error(`${contender.name}: the sink counted ${counted} bytes, expected ${bytes}`)
    const cpuSeconds = cpuBefore === undefined || cpuAfter === undefined ? undefined : cpuAfter - cpuBefore
    return { seconds, cpuSeconds }
  } finally {
    if (running) child.kill("SIGTERM")
    await exited
  }
}
