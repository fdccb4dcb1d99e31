/**
 * Compression between our own client and server over loopback: plain `zlib`
 * (which OpenSSH's sshd no longer implements) and `zlib@openssh.com`, data
 * both ways compared by hash, rekeys in the middle (each restarting both
 * streams), negotiation by role defaults.
 */
import { describe, expect, it } from "vitest"
import { createHash } from "node:crypto"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { runFailure, runScoped } from "../helpers.ts"
import * as SshClient from "../../src/Client.ts"
import * as SshServer from "../../src/Server.ts"
import * as Auth from "../../src/Auth/ClientAuth.ts"
import * as HostKeys from "../../src/Auth/HostKeys.ts"
import * as PrivateKey from "../../src/Auth/PrivateKey.ts"
import * as PublicKey from "../../src/Auth/PublicKey.ts"
import type { ServerSession } from "../../src/Channel/ServerSession.ts"

const hostKey = PrivateKey.generate("ssh-ed25519")
const userKey = PrivateKey.generate("ssh-ed25519")
const SIZE = 8 * 1024 * 1024

/** Numbered lines, the same on both ends. */
const text = (size: number): Uint8Array => {
  const lines: Array<string> = []
  for (let i = 1, length = 0; length < size; i++) {
    const line = `line ${i} of some compressible text\n`
    lines.push(line)
    length += line.length
  }
  return new TextEncoder().encode(lines.join("")).subarray(0, size)
}
const TEXT = text(SIZE)
const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest("hex")

/** "text" writes TEXT; "sha256" answers the hash of its stdin. */
const exec = (session: ServerSession, command: string) =>
  Effect.gen(function*() {
    if (command === "text") {
      for (let o = 0; o < TEXT.length; o += 64 * 1024) yield* session.write(TEXT.subarray(o, o + 64 * 1024))
      return 0
    }
    if (command === "sha256") {
      const hash = createHash("sha256")
      yield* Stream.runForEach(session.stdin, (chunk) => Effect.sync(() => void hash.update(chunk)))
      yield* session.write(hash.digest("hex"))
      return 0
    }
    return 127
  })

const serve = (compression?: string | ReadonlyArray<string>) =>
  SshServer.serve({
    port: 0,
    hostKeys: [hostKey],
    auth: { publicKey: ({ key }) => Effect.succeed(PublicKey.equals(key, userKey.publicKey)) },
    session: { exec },
    ...(compression === undefined ? {} : { algorithms: { compression } })
  })

const connect = (port: number, extra: Partial<SshClient.ConnectOptions>) =>
  SshClient.connect({
    host: "127.0.0.1",
    port,
    username: "alice",
    auth: [Auth.privateKey(userKey)],
    hostKeys: HostKeys.fixed(hostKey.publicKey),
    ...extra
  })

/** Downloads TEXT with a rekey every `rekeyEvery` bytes received, then uploads it: both hashes and the stats. */
const roundTrip = (port: number, extra: Partial<SshClient.ConnectOptions>, rekeyEvery = SIZE / 4) =>
  Effect.gen(function*() {
    const ssh = yield* connect(port, extra)
    const proc = yield* ssh.exec("text")
    const hash = createHash("sha256")
    let received = 0
    let nextRekey = rekeyEvery
    yield* Stream.runForEach(proc.stdout, (chunk) =>
      Effect.gen(function*() {
        hash.update(chunk)
        received += chunk.length
        if (received >= nextRekey) {
          nextRekey += rekeyEvery
          yield* ssh.rekey
        }
      }))
    const down = ssh.stats()
    const up = yield* ssh.run("sha256", { stdin: TEXT })
    return { algorithms: ssh.info.algorithms, received, down: hash.digest("hex"), up: up.stdout, afterDown: down, after: ssh.stats() }
  })

describe("compression between our client and our server", () => {
  for (const method of ["zlib", "zlib@openssh.com"]) {
    it(`${method}: 8 MiB down and up with rekeys in the middle, equal by hash, a fraction of it on the wire`, async () => {
      const r = await runScoped(Effect.gen(function*() {
        const server = yield* serve([method])
        return yield* roundTrip(server.address.port, { compression: true, algorithms: { compression: [method] } })
      }))
      expect(r.algorithms.compressionClientToServer).toBe(method)
      expect(r.algorithms.compressionServerToClient).toBe(method)
      expect(r.received).toBe(SIZE)
      expect(r.down).toBe(sha256(TEXT))
      expect(r.up).toBe(sha256(TEXT))
      expect(r.afterDown.kexCount).toBeGreaterThanOrEqual(4)
      expect(r.afterDown.bytesIn).toBeLessThan(SIZE / 3)
      expect(r.after.bytesOut).toBeLessThan(SIZE / 3)
    }, 60_000)
  }

  it("rekeys by volume (rekeyBytes) while compressing keep the data intact", async () => {
    const r = await runScoped(Effect.gen(function*() {
      const server = yield* serve()
      return yield* roundTrip(server.address.port, { compression: true, rekeyBytes: 128 * 1024 }, SIZE * 2)
    }))
    expect(r.algorithms.compressionServerToClient).toBe("zlib@openssh.com")
    expect(r.down).toBe(sha256(TEXT))
    expect(r.up).toBe(sha256(TEXT))
    expect(r.after.kexCount).toBeGreaterThanOrEqual(4)
  }, 60_000)

  it("by default the server offers zlib@openssh.com, as sshd, and a client compresses only when asked", async () => {
    const r = await runScoped(Effect.gen(function*() {
      const server = yield* serve()
      const plain = yield* connect(server.address.port, {})
      const compressed = yield* connect(server.address.port, { compression: true })
      return { plain: plain.info.algorithms, compressed: compressed.info.algorithms }
    }))
    expect(r.plain.compressionClientToServer).toBe("none")
    expect(r.compressed.compressionClientToServer).toBe("zlib@openssh.com")
    expect(r.compressed.compressionServerToClient).toBe("zlib@openssh.com")
  })

  it("a client that insists on compression against a server that offers none fails to negotiate", async () => {
    const error = await runFailure(Effect.gen(function*() {
      const server = yield* serve(["none"])
      return yield* connect(server.address.port, { algorithms: { compression: ["zlib@openssh.com", "zlib"] } })
    }))
    expect(error.reason._tag).toBe("NegotiationFailed")
  })
})
