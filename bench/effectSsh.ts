/**
 * effect-ssh under test: `SshClient.connect` in a scope, `ssh.exec` and `proc.stdout` consumed array by array
 * (the cheapest way a user drains a Stream), on the Node layer.
 */
import * as Effect from "effect/Effect"
import type * as FileSystem from "effect/FileSystem"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Auth from "../src/Auth/ClientAuth.ts"
import * as HostKeys from "../src/Auth/HostKeys.ts"
import * as SshClient from "../src/Client.ts"
import * as NodeSsh from "../src/NodeSsh.ts"
import * as Session from "../src/Channel/Session.ts"
import { type BenchTarget, type Contender, checkTransfer, cpuSeconds, downloadCommand } from "./target.ts"

// Built per connection, inside the timed region: parsing the key text and the pinned host key is part of
// connecting, as it is for ssh2 (which parses `privateKey` in `connect()`).
const connectOptions = (target: BenchTarget): SshClient.ConnectOptions => ({
  host: target.sshd.host,
  port: target.sshd.port,
  username: target.sshd.user,
  auth: [Auth.privateKey(target.clientKeyText)],
  hostKeys: HostKeys.fixed(target.hostKeyLine),
  algorithms: {
    kex: [target.config.kex],
    hostKey: [target.config.hostKeyAlgorithm],
    cipher: [target.config.cipher],
    mac: [target.config.mac]
  }
})

const runScoped = <A>(effect: Effect.Effect<A, unknown, SshClient.Connector | FileSystem.FileSystem | Scope.Scope>): Promise<A> =>
  Effect.runPromise(effect.pipe(Effect.scoped, Effect.provide(NodeSsh.layer)))

/** How the output is read: as a Stream (the consumer owns each chunk) or lent through `borrowStdout`. */
export type Consumption = "stream" | "lend"

const download = (target: BenchTarget, consumption: Consumption) => (bytes: number) =>
  runScoped(Effect.gen(function*() {
    const ssh = yield* SshClient.connect(connectOptions(target))
    const startedCpu = cpuSeconds()
    const started = performance.now()
    const proc = yield* ssh.exec(downloadCommand(bytes), { stderr: "discard" })
    let received = 0
    const count = (chunks: ReadonlyArray<Uint8Array>) =>
      Effect.sync(() => {
        for (const chunk of chunks) received += chunk.byteLength
      })
    yield* consumption === "lend" ? proc.borrowStdout(count) : Stream.runForEachArray(proc.stdout, count)
    const status = yield* proc.exit
    const seconds = (performance.now() - started) / 1000
    const cpu = cpuSeconds() - startedCpu
    checkTransfer("effect-ssh", bytes, received, Session.exitCode(status))
    return { seconds, cpuSeconds: cpu }
  }))

const connect = (target: BenchTarget) => () =>
  runScoped(Effect.gen(function*() {
    const started = performance.now()
    yield* Effect.suspend(() => SshClient.connect(connectOptions(target)))
    return performance.now() - started
  }))

/**
 * The effect-ssh contender: named "effect-ssh" reading a Stream, "effect-ssh lent" with `borrowStdout`.
 *
 * @example
 * ```ts
 * const sample = await effectSsh(target).download(1024 ** 2)
 * const lent = await effectSsh(target, "lend").download(1024 ** 2)
 * ```
 */
export const effectSsh = (target: BenchTarget, consumption: Consumption = "stream"): Contender => ({
  name: consumption === "lend" ? "effect-ssh lent" : "effect-ssh",
  download: download(target, consumption),
  connect: connect(target)
})
