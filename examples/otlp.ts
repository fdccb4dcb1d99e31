/**
 * Traces and metrics of an SSH session exported to an OpenTelemetry
 * collector over OTLP/HTTP, with Effect's own exporter: the embedded server
 * serves a temporary directory, the client connects, runs a command and
 * downloads a file over SFTP; the spans `ssh.connect` (with `ssh.kex` and
 * `ssh.auth` under it), `ssh.exec` and `sftp.get` — each with `ssh.host`,
 * `ssh.port` and `ssh.user` — and the `ssh_*` metrics go to the collector.
 *
 * Usage: node examples/otlp.ts [COLLECTOR_URL]   (default http://localhost:4318, or OTEL_EXPORTER_OTLP_ENDPOINT)
 */
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Otlp from "effect/observability/Otlp"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Auth, HostKeys, NodeSsh, PrivateKey, PublicKey, SftpServer, SshClient, SshServer } from "effect-ssh"

const collector = process.argv[2] ?? process.env.OTEL_EXPORTER_OTLP_ENDPOINT ?? "http://localhost:4318"

/** Spans and metrics to the collector as OTLP/HTTP JSON; what is buffered is flushed when the layer closes. */
const Telemetry = Otlp.layerJson({
  baseUrl: collector,
  resource: { serviceName: "effect-ssh-example" },
  tracerExportInterval: "1 second",
  metricsExportInterval: "1 second"
}).pipe(Layer.provide(NodeHttpClient.layerUndici))

const program = Effect.gen(function*() {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "effect-ssh-otlp-example-"))
  yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(root, { recursive: true, force: true })))
  fs.writeFileSync(path.join(root, "motd.txt"), "hello from the embedded server\n")

  const hostKey = PrivateKey.generate("ssh-ed25519")
  const userKey = PrivateKey.generate("ssh-ed25519")
  const server = yield* SshServer.serve({
    port: 0,
    host: "127.0.0.1",
    hostKeys: [hostKey],
    auth: { publicKey: ({ key }) => Effect.succeed(PublicKey.equals(key, userKey.publicKey)) },
    session: { exec: (session, command) => Effect.as(Effect.orDie(session.write(`you ran: ${command}\n`)), 0) },
    sftp: SftpServer.fileSystem({ root })
  })
  const ssh = yield* SshClient.connect({
    host: server.address.host,
    port: server.address.port,
    username: "demo",
    auth: [Auth.privateKey(userKey)],
    hostKeys: HostKeys.fixed(hostKey.publicKey)
  })
  const result = yield* ssh.run("uptime")
  yield* Console.log(`exec: ${result.stdout.trim()} (exit ${result.exitCode})`)
  const sftp = yield* ssh.sftp()
  const local = path.join(root, "motd.copy")
  const got = yield* sftp.get("/motd.txt", local)
  yield* Console.log(`sftp get: ${got.bytes} bytes`)
}).pipe(Effect.withSpan("example.otlp"))

program.pipe(Effect.scoped, Effect.provide(NodeSsh.layer), Effect.provide(Telemetry), Effect.runPromise).then(
  () => {
    console.log(`spans and metrics sent to ${collector}`)
    process.exit(0)
  },
  (error) => {
    console.error(`otlp example failed: ${error}`)
    process.exit(1)
  }
)
