/**
 * Stderr that nobody reads never stalls stdout: it shares the channel's
 * window, so until someone pulls it only a bounded amount is kept.
 */
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import { expect, it } from "vitest"
import * as Auth from "../../src/Auth/ClientAuth.ts"
import * as HostKeys from "../../src/Auth/HostKeys.ts"
import * as PrivateKey from "../../src/Auth/PrivateKey.ts"
import { UNREAD_STDERR_LIMIT } from "../../src/Channel/Connection.ts"
import * as SshClient from "../../src/Client.ts"
import * as NodeSsh from "../../src/NodeSsh.ts"
import * as SshServer from "../../src/Server.ts"

const hostKey = PrivateKey.generate("ssh-ed25519")
const MiB = 1024 * 1024

const withServer = <A, E>(use: (ssh: SshClient.SshConnection) => Effect.Effect<A, E, never>) =>
  Effect.runPromise(Effect.gen(function*() {
    const server = yield* SshServer.serve({
      port: 0,
      hostKeys: [hostKey],
      auth: { password: ({ password }) => Effect.succeed(Redacted.value(password) === "pw") },
      session: {
        // 8 MiB of stderr, then the stdout the client waits for
        exec: (session) =>
          Effect.gen(function*() {
            const block = new Uint8Array(64 * 1024).fill(101)
            for (let i = 0; i < 128; i++) yield* session.write(block, "stderr")
            yield* session.write("stdout after 8 MiB of stderr\n")
            return 0
          })
      }
    })
    const ssh = yield* SshClient.connect({
      host: "127.0.0.1",
      port: server.address.port,
      username: "me",
      auth: [Auth.password("pw")],
      hostKeys: HostKeys.fixed(hostKey.publicKey)
    })
    return yield* use(ssh)
  }).pipe(Effect.scoped, Effect.provide(NodeSsh.layer)))

it("reading only stdout of a command that writes 8 MiB to stderr completes; what was kept of stderr is bounded", async () => {
  const { stdout, stderr } = await withServer((ssh) =>
    Effect.scoped(Effect.gen(function*() {
      const proc = yield* ssh.exec("noisy")
      const stdout = yield* proc.stdout.pipe(Stream.decodeText(), Stream.mkString, Effect.timeout("20 seconds"))
      // stderr read only afterwards: what was kept of it, no more
      const stderr = yield* proc.stderr.pipe(Stream.runFold(() => 0, (n, chunk: Uint8Array) => n + chunk.length))
      return { stdout, stderr }
    })))
  expect(stdout).toBe("stdout after 8 MiB of stderr\n")
  expect(stderr).toBeGreaterThan(0)
  expect(stderr).toBeLessThanOrEqual(UNREAD_STDERR_LIMIT)
}, 60_000)

it("stderr read from the start is kept whole", async () => {
  const { stdout, stderr } = await withServer((ssh) =>
    Effect.scoped(Effect.gen(function*() {
      const proc = yield* ssh.exec("noisy")
      const [stdout, stderr] = yield* Effect.all([
        proc.stdout.pipe(Stream.decodeText(), Stream.mkString),
        proc.stderr.pipe(Stream.runFold(() => 0, (n, chunk: Uint8Array) => n + chunk.length))
      ], { concurrency: 2 })
      return { stdout, stderr }
    })))
  expect(stdout).toBe("stdout after 8 MiB of stderr\n")
  expect(stderr).toBe(8 * MiB)
}, 60_000)
