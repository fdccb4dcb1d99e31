/**
 * A test tracer records the span tree of connect + exec + sftp get, with the
 * destination, the negotiated algorithms and the bytes moved as attributes;
 * the metrics count channels, bytes and key exchanges.
 */
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Tracer from "effect/Tracer"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { expect, it } from "vitest"
import * as Auth from "../../src/Auth/ClientAuth.ts"
import * as HostKeys from "../../src/Auth/HostKeys.ts"
import * as PrivateKey from "../../src/Auth/PrivateKey.ts"
import * as SshClient from "../../src/Client.ts"
import * as NodeSsh from "../../src/NodeSsh.ts"
import * as SshServer from "../../src/Server.ts"
import * as SftpServer from "../../src/Sftp/SftpServer.ts"
import * as Telemetry from "../../src/internal/telemetry.ts"

const hostKey = PrivateKey.generate("ssh-ed25519")

it("connect, exec and sftp get make a span tree with the attributes users filter on", async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "effect-ssh-spans-"))
  fs.writeFileSync(path.join(root, "file.bin"), Buffer.alloc(100_000, 7))
  const spans: Array<Tracer.NativeSpan> = []
  const tracer = Tracer.make({
    span(options) {
      const span = new Tracer.NativeSpan(options)
      spans.push(span)
      return span
    }
  })
  const program = Effect.gen(function*() {
    const server = yield* SshServer.serve({
      port: 0,
      hostKeys: [hostKey],
      auth: { password: ({ password }) => Effect.succeed(Redacted.value(password) === "pw") },
      session: { exec: (session) => Effect.as(Effect.orDie(session.write("ok\n")), 0) },
      sftp: SftpServer.fileSystem({ root })
    })
    yield* Effect.scoped(Effect.gen(function*() {
      const ssh = yield* SshClient.connect({
        host: "127.0.0.1",
        port: server.address.port,
        username: "alice",
        auth: [Auth.password("pw")],
        hostKeys: HostKeys.fixed(hostKey.publicKey)
      })
      yield* ssh.run("echo ok")
      const sftp = yield* ssh.sftp()
      yield* sftp.get("/file.bin", path.join(root, "copy.bin"))
    }))
    return {
      channels: (yield* Metric.value(Telemetry.channelsOpened)).count,
      bytesIn: (yield* Metric.value(Telemetry.bytesIn)).count,
      kex: (yield* Metric.value(Telemetry.kexDuration)).count
    }
  }).pipe(Effect.withSpan("test"), Effect.scoped, Effect.provide(NodeSsh.layer), Effect.provideService(Tracer.Tracer, tracer))
  const metrics = await Effect.runPromise(program)
  fs.rmSync(root, { recursive: true, force: true })

  const byName = (name: string) => spans.filter((s) => s.name === name)
  const parentName = (span: Tracer.NativeSpan) =>
    Option.match(span.parent, { onNone: () => undefined, onSome: (p) => (p as Tracer.NativeSpan).name })
  const connect = byName("ssh.connect")[0]!
  expect(connect.attributes.get("ssh.host")).toBe("127.0.0.1")
  expect(connect.attributes.get("ssh.user")).toBe("alice")
  expect(typeof connect.attributes.get("ssh.port")).toBe("number")
  expect(connect.attributes.get("ssh.kex")).toMatch(/mlkem|curve25519|ecdh|diffie/)
  expect(connect.attributes.get("ssh.cipher")).toBeTypeOf("string")
  expect(parentName(byName("ssh.kex")[0]!)).toBe("ssh.connect")
  expect(parentName(byName("ssh.auth")[0]!)).toBe("ssh.connect")
  expect(byName("ssh.exec")[0]!.attributes.get("ssh.command")).toBe("echo ok")
  expect(byName("ssh.channel.open").map((s) => s.attributes.get("ssh.channel.type"))).toEqual(expect.arrayContaining(["session"]))
  expect(parentName(byName("ssh.channel.open")[0]!)).toBe("ssh.exec")
  const get = byName("sftp.get")[0]!
  expect(get.attributes.get("sftp.remote")).toBe("/file.bin")
  expect(get.attributes.get("sftp.bytes")).toBe(100_000)
  for (const span of spans.filter((s) => s.name.startsWith("ssh.") || s.name.startsWith("sftp."))) {
    expect(span.status._tag, span.name).toBe("Ended")
  }
  expect(metrics.channels).toBeGreaterThanOrEqual(2)
  expect(metrics.bytesIn).toBeGreaterThan(100_000)
  expect(metrics.kex).toBeGreaterThanOrEqual(1)
}, 30_000)
