/**
 * Server load: connections per second (TCP connect + key exchange + publickey
 * auth + one exec, many in parallel) and memory per idle authenticated
 * connection. The server runs in a child process so that its CPU time and
 * memory are measured apart from the clients'; the clients are ours, on
 * loopback. Not a timed test.
 *
 *     node --expose-gc bench/server-load.ts [connections, default 1000] [parallel, default 50] [idle, default 500]
 *
 * Without --expose-gc the heap figures include garbage not yet collected.
 */
import { fork } from "node:child_process"
import { fileURLToPath } from "node:url"
import * as Effect from "effect/Effect"
import * as SshClient from "../src/Client.ts"
import * as SshServer from "../src/Server.ts"
import * as NodeSsh from "../src/NodeSsh.ts"
import * as HostKeys from "../src/Auth/HostKeys.ts"
import * as PublicKey from "../src/Auth/PublicKey.ts"
import { clientOptions, hostKey, serverOptions } from "../test/Server/fixtures.ts"

/** What the server process reports when asked. */
interface ServerStats {
  readonly rss: number
  readonly heapUsed: number
  readonly cpuMs: number
  readonly connections: number
  readonly gc: boolean
}

const MiB = 1024 * 1024

const serverMain = () =>
  Effect.runFork(Effect.scoped(Effect.gen(function*() {
    // the client process has its own user key: any key of alice's will do (the signature is still checked)
    const server = yield* SshServer.serve(serverOptions({ maxConnections: 100_000, maxStartups: 100_000, perSourceMaxStartups: "none", perSourcePenalties: false, auth: { publicKey: ({ user }) => Effect.succeed(user === "alice") } }))
    const gc = (globalThis as { gc?: () => void }).gc
    process.on("message", () => {
      // twice: the first pass can leave objects only the second frees (finalizers, weak refs)
      gc?.()
      gc?.()
      const { user, system } = process.cpuUsage()
      const stats: ServerStats = {
        rss: process.memoryUsage.rss(),
        heapUsed: process.memoryUsage().heapUsed,
        cpuMs: (user + system) / 1000,
        connections: server.connectionCount(),
        gc: gc !== undefined
      }
      process.send!(stats)
    })
    process.on("disconnect", () => process.exit(0))
    process.send!({ port: server.address.port, hostKey: PublicKey.toOpenSsh(hostKey.publicKey) })
    return yield* Effect.never
  })))

const clientMain = async () => {
  const [total = 1000, parallel = 50, idle = 500] = process.argv.slice(2).map(Number)
  const child = fork(fileURLToPath(import.meta.url), ["--server"], { execArgv: process.execArgv })
  const { port, hostKey } = await new Promise<{ port: number; hostKey: string }>((resolve) => child.once("message", (m) => resolve(m as { port: number; hostKey: string })))
  const options = clientOptions(port, { hostKeys: HostKeys.fixed(hostKey) })
  const ask = () =>
    Effect.promise(() =>
      new Promise<ServerStats>((resolve) => {
        child.once("message", (m) => resolve(m as ServerStats))
        child.send("stats")
      })
    )
  const range = (n: number) => Array.from({ length: n }, (_, i) => i)
  const oneExec = Effect.scoped(Effect.flatMap(SshClient.connect(options), (ssh) => ssh.run("echo hi")))
  /** Waits for the server to have exactly `n` connections open. */
  const serverHolds = (n: number): Effect.Effect<void> =>
    Effect.flatMap(ask(), (s) => s.connections === n ? Effect.void : Effect.andThen(Effect.sleep(20), serverHolds(n)))

  const program = Effect.gen(function*() {
    console.log(`node ${process.version}, server in a child process${process.execArgv.includes("--expose-gc") ? ", --expose-gc" : ""}`)
    const negotiated = yield* Effect.scoped(Effect.map(SshClient.connect(options), (ssh) => ssh.info.algorithms))
    console.log(`kex ${negotiated.kex}, host key ${negotiated.hostKey}, cipher ${negotiated.cipherClientToServer}`)
    // warm-up: JIT, key and cipher setup
    yield* Effect.forEach(range(50), () => oneExec, { concurrency: 10 })
    yield* serverHolds(0)

    const before = yield* ask()
    const clientCpu = process.cpuUsage()
    const started = performance.now()
    yield* Effect.forEach(range(total), () => oneExec, { concurrency: parallel })
    const seconds = (performance.now() - started) / 1000
    const after = yield* ask()
    const serverCpuPerConnection = (after.cpuMs - before.cpuMs) / total
    const { user, system } = process.cpuUsage(clientCpu)
    const clientCpuPerConnection = (user + system) / 1000 / total
    console.log(
      `connect + auth + exec: ${total} connections, ${parallel} in parallel: ` +
        `${(total / seconds).toFixed(0)} connections/s (${seconds.toFixed(2)} s); ` +
        `server CPU ${serverCpuPerConnection.toFixed(2)} ms per connection (≈ ${(1000 / serverCpuPerConnection).toFixed(0)} connections per CPU second), ` +
        `client CPU ${clientCpuPerConnection.toFixed(2)} ms per connection`
    )

    yield* serverHolds(0)
    const baseline = yield* ask()
    yield* Effect.scoped(Effect.gen(function*() {
      yield* Effect.forEach(range(idle), () => SshClient.connect(options), { concurrency: parallel })
      yield* serverHolds(idle)
      yield* Effect.sleep(200)
      const loaded = yield* ask()
      const perConnection = (bytes: number) => `${(bytes / idle / 1024).toFixed(1)} KiB`
      console.log(
        `idle: ${idle} authenticated connections: ` +
          `RSS +${((loaded.rss - baseline.rss) / MiB).toFixed(1)} MiB (${perConnection(loaded.rss - baseline.rss)} per connection), ` +
          `heapUsed +${((loaded.heapUsed - baseline.heapUsed) / MiB).toFixed(1)} MiB (${perConnection(loaded.heapUsed - baseline.heapUsed)} per connection)` +
          (loaded.gc ? "" : " [no --expose-gc: heap includes uncollected garbage]")
      )
    }))
  })
  await Effect.runPromise(program.pipe(Effect.provide(NodeSsh.layer)))
  child.disconnect()
}

if (process.argv.includes("--server")) serverMain()
else await clientMain()
