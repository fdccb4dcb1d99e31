/**
 * Fleets at scale against our own server: `effect-ssh pexec` over 200 hosts,
 * and every failure of a fleet or of a connection naming its destination.
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import * as ChildProcess from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Auth from "../../src/Auth/ClientAuth.ts"
import * as HostKeys from "../../src/Auth/HostKeys.ts"
import * as PrivateKey from "../../src/Auth/PrivateKey.ts"
import * as PublicKey from "../../src/Auth/PublicKey.ts"
import * as SshClient from "../../src/Client.ts"
import * as SshFleet from "../../src/Fleet.ts"
import * as NodeSsh from "../../src/NodeSsh.ts"
import * as SshServer from "../../src/Server.ts"
import * as SshError from "../../src/SshError.ts"
import { runFailure } from "../helpers.ts"

const node = path.resolve("node_modules/.bin/node")
const main = path.resolve("src/cli/main.ts")

/** A loopback port nothing listens on (bound, then released). */
const closedPort = (): Promise<number> =>
  new Promise((resolve) => {
    const server = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })

describe("fleets against our server", () => {
  let dir: string
  let scope: Scope.Closeable
  let port: number
  const clientKey = PrivateKey.generate("ssh-ed25519")
  const hostKey = PrivateKey.generate("ssh-ed25519")
  const identity = () => path.join(dir, "id_ed25519")

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "effect-ssh-fleet-"))
    fs.writeFileSync(identity(), PrivateKey.toOpenSsh(clientKey), { mode: 0o600 })
    scope = Effect.runSync(Scope.make())
    const server = await Effect.runPromise(Scope.provide(
      SshServer.serve({
        port: 0,
        host: "127.0.0.1",
        hostKeys: [hostKey],
        perSourceMaxStartups: "none",
        perSourcePenalties: false,
        maxStartups: 1000,
        maxConnections: 1000,
        auth: { publicKey: ({ key }) => Effect.succeed(PublicKey.equals(key, clientKey.publicKey)) },
        session: { exec: (session, command) => Effect.as(Effect.orDie(session.write(`${session.user}: ${command}\n`)), 0) }
      }),
      scope
    ).pipe(Effect.provide(NodeSsh.layer)))
    port = server.address.port
    fs.writeFileSync(path.join(dir, "known_hosts"), `[127.0.0.1]:${port} ${PublicKey.toOpenSsh(hostKey.publicKey)}\n`)
  }, 60_000)

  afterAll(async () => {
    await Effect.runPromise(Scope.close(scope, Exit.void))
    fs.rmSync(dir, { recursive: true, force: true })
  })

  const options = (user: string, to = port): SshClient.ConnectOptions => ({
    host: "127.0.0.1",
    port: to,
    username: user,
    auth: [Auth.privateKey(clientKey)],
    hostKeys: HostKeys.fixed(hostKey.publicKey),
    connectTimeout: "20 seconds"
  })

  it("20 hosts at concurrency 20, one port closed: that host's result names it, the 19 others succeed", async () => {
    const dead = await closedPort()
    const destinations = Array.from({ length: 20 }, (_, i) => options(`u${i}`, i === 7 ? dead : port))
    const results = await Effect.runPromise(SshFleet.collect(destinations, "hostname", { concurrency: 20 }).pipe(Effect.provide(NodeSsh.layer)))
    expect(results.length).toBe(20)
    const failed = results.filter((r) => r._tag === "Failed")
    expect(failed.length).toBe(1)
    const failure = failed[0]! as Extract<SshFleet.HostResult, { _tag: "Failed" }>
    expect(failure.port).toBe(dead)
    expect(failure.error.reason._tag).toBe("ConnectFailed")
    expect(failure.error.destination).toBe(`u7@127.0.0.1:${dead}`)
    expect(failure.error.message.startsWith(`u7@127.0.0.1:${dead}: ConnectFailed: `)).toBe(true)
    for (const r of results) if (r._tag === "Done") expect(r.stdout).toMatch(/^u\d+: hostname\n$/)
  }, 60_000)

  it("errors of operations on a connection name it: a refused subsystem, a refused channel, a closed connection", async () => {
    const where = `ops@127.0.0.1:${port}`
    const sftp = await runFailure(Effect.flatMap(SshClient.connect(options("ops")), (ssh) => ssh.sftp()))
    expect(sftp.destination).toBe(where)
    expect(sftp.message.startsWith(`${where}: `)).toBe(true)
    const channel = await runFailure(Effect.flatMap(SshClient.connect(options("ops")), (ssh) => ssh.openChannel("no-such-type")))
    expect(channel.reason._tag).toBe("ChannelOpenFailed")
    expect(channel.message.startsWith(`${where}: ChannelOpenFailed: `)).toBe(true)
    // the connection's `closed` fails naming it once the server is gone
    const closed = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const serverScope = yield* Scope.make()
      const server = yield* Scope.provide(SshServer.serve({
        port: 0,
        host: "127.0.0.1",
        hostKeys: [hostKey],
        auth: { publicKey: ({ key }) => Effect.succeed(PublicKey.equals(key, clientKey.publicKey)) }
      }), serverScope)
      const ssh = yield* SshClient.connect(options("ops", server.address.port))
      yield* Scope.close(serverScope, Exit.void)
      return yield* Effect.flip(Effect.timeout(Deferred.await(ssh.closed), "5 seconds"))
    })).pipe(Effect.provide(NodeSsh.layer)))
    expect(SshError.isSshError(closed) && closed.destination).toMatch(/^ops@127\.0\.0\.1:\d+$/)
    expect(closed.message).toMatch(/^ops@127\.0\.0\.1:\d+: (PeerDisconnected|ConnectionClosed): /)
  }, 60_000)

  it("effect-ssh pexec over 200 hosts at -p 200: 200 SUCCESS lines, exit 0", async () => {
    fs.writeFileSync(path.join(dir, "hosts"), Array.from({ length: 200 }, (_, i) => `u${i}@127.0.0.1:${port}`).join("\n") + "\n")
    const started = performance.now()
    const r = await new Promise<{ stdout: string; stderr: string; code: number | null }>((resolve) => {
      ChildProcess.execFile(
        node,
        [main, "pexec", "--identity", identity(), "--known-hosts", path.join(dir, "known_hosts"), "-h", path.join(dir, "hosts"), "-p", "200", "--", "true"],
        { timeout: 60_000 },
        (error, stdout, stderr) => resolve({ stdout, stderr, code: error === null ? 0 : typeof error.code === "number" ? error.code : null })
      )
    })
    const seconds = (performance.now() - started) / 1000
    expect(r.stderr).toBe("")
    expect(r.code).toBe(0)
    const lines = r.stdout.trim().split("\n")
    expect(lines.length).toBe(200)
    for (const line of lines) expect(line).toMatch(new RegExp(`^\\[\\d+\\] \\d\\d:\\d\\d:\\d\\d \\[SUCCESS\\] 127\\.0\\.0\\.1:${port}$`))
    expect(seconds).toBeLessThan(60)
  }, 70_000)
})
