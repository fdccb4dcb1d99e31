/**
 * Node.js services for effect-ssh: TCP connections (`node:net`, Nagle off,
 * read through one reused buffer) and the file system (key files,
 * known_hosts, SFTP transfers), marked as Node's own so that SFTP downloads
 * write each block's chunks with one `writev` instead of joining them.
 *
 * @example
 * ```ts
 * const program = Effect.gen(function*() {
 *   const ssh = yield* SshClient.connect(options)
 *   const { stdout } = yield* ssh.run("uname -a")
 *   yield* Console.log(stdout)
 * })
 * program.pipe(Effect.scoped, Effect.provide(NodeSsh.layer), NodeRuntime.runMain)
 * ```
 * @since 0.1.0
 */
import * as Layer from "effect/Layer"
import * as Effect from "effect/Effect"
import * as FileSystem from "effect/FileSystem"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import { markNodeFileSystem } from "./internal/chunkWriter.ts"
import { Connector } from "./Client.ts"
import { connectTcp } from "./internal/netSocket.ts"

/**
 * Dials TCP with `node:net`.
 *
 * @example
 * ```ts
 * const program = Effect.scoped(Effect.flatMap(SshClient.connect(options), (ssh) => ssh.run("uptime")))
 * Effect.provide(program, NodeSsh.connectorLayer) // still needs a FileSystem (key files, known_hosts)
 * ```
 */
export const connectorLayer: Layer.Layer<Connector> = Layer.succeed(Connector)({
  connect: (host, port) => Effect.sync(() => connectTcp({ host, port }))
})

/**
 * Everything a client needs on Node: the TCP connector and the file system.
 *
 * @example
 * ```ts
 * const program = Effect.gen(function*() {
 *   const ssh = yield* SshClient.connect(options)
 *   const { stdout } = yield* ssh.run("uname -a")
 *   yield* Console.log(stdout)
 * })
 * Effect.runPromise(Effect.scoped(program).pipe(Effect.provide(NodeSsh.layer)))
 * ```
 */
export const layer = Layer.mergeAll(
  connectorLayer,
  // Marked as Node's own: SFTP downloads then write their blocks with writev (see internal/chunkWriter).
  Layer.effect(FileSystem.FileSystem, Effect.map(FileSystem.FileSystem, markNodeFileSystem)).pipe(Layer.provide(NodeFileSystem.layer))
)

