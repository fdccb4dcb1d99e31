/**
 * Our client against our server over loopback: every kex (mlkem768x25519
 * included), cipher, MAC and host-key algorithm, auth methods and chains,
 * channels, exit status, window backpressure and rekeys.
 */
import { describe, expect, it } from "vitest"
import { createHash } from "node:crypto"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import { runFailure, runScoped } from "./helpers.ts"
import * as SshClient from "../src/Client.ts"
import * as SshServer from "../src/Server.ts"
import * as Auth from "../src/Auth/ClientAuth.ts"
import * as HostKeys from "../src/Auth/HostKeys.ts"
import * as PrivateKey from "../src/Auth/PrivateKey.ts"
import * as PublicKey from "../src/Auth/PublicKey.ts"
import * as Algorithms from "../src/Transport/Algorithms.ts"
import type { SshError } from "../src/SshError.ts"
import type { ServerSession } from "../src/Channel/ServerSession.ts"

const hostKeys = [PrivateKey.generate("ssh-ed25519"), PrivateKey.generate("ecdsa-sha2-nistp256"), PrivateKey.generate("ecdsa-sha2-nistp384"), PrivateKey.generate("ecdsa-sha2-nistp521"), PrivateKey.generate("ssh-rsa", { bits: 2048 })]
const userKey = PrivateKey.generate("ssh-ed25519")

/** A tiny exec handler: "echo X" prints X, "exit N" exits N, "cat" echoes stdin, "yes N" writes N bytes. */
const exec = (session: ServerSession, command: string) =>
  Effect.gen(function*() {
    const [verb, ...rest] = command.split(" ")
    if (verb === "echo") {
      yield* session.write(rest.join(" ") + "\n")
      return 0
    }
    if (verb === "exit") return Number(rest[0])
    if (verb === "stderr") {
      yield* session.write(rest.join(" ") + "\n", "stderr")
      return 0
    }
    if (verb === "cat") {
      yield* Stream.runForEach(session.stdin, (chunk) => session.write(chunk))
      return 0
    }
    if (verb === "zeros") {
      let left = Number(rest[0])
      const block = new Uint8Array(64 * 1024)
      while (left > 0) {
        const n = Math.min(left, block.length)
        yield* session.write(block.subarray(0, n))
        left -= n
      }
      return 0
    }
    if (verb === "kill") return { _tag: "Signaled" as const, signal: "KILL", coreDumped: false, message: "" }
    return 127
  })

const serverOptions = (extra: Partial<SshServer.ServeOptions> = {}): SshServer.ServeOptions => ({
  port: 0,
  hostKeys,
  auth: {
    password: ({ user, password }) => Effect.succeed(user === "alice" && Redacted.value(password) === "wonderland"),
    publicKey: ({ user, key }) => Effect.succeed(user === "alice" && PublicKey.equals(key, userKey.publicKey)),
    keyboardInteractive: ({ prompt }) =>
      Effect.map(prompt({ name: "", instruction: "", prompts: [{ prompt: "Code: ", echo: true }, { prompt: "Pin: ", echo: false }] }), (a) =>
        a[0] === "123" && a[1] === "456")
  },
  session: { exec },
  ...extra
})

const withServer = <A, E, R>(
  f: (port: number, server: SshServer.SshServer) => Effect.Effect<A, E, R>,
  extra: Partial<SshServer.ServeOptions> = {}
) =>
  Effect.gen(function*() {
    const server = yield* SshServer.serve(serverOptions(extra))
    return yield* f(server.address.port, server)
  })

const clientOptions = (port: number, extra: Partial<SshClient.ConnectOptions> = {}): SshClient.ConnectOptions => ({
  host: "127.0.0.1",
  port,
  username: "alice",
  auth: [Auth.privateKey(userKey)],
  hostKeys: HostKeys.fixed(...hostKeys.map((k) => k.publicKey)),
  ...extra
})

const echoWith = (extra: Partial<SshClient.ConnectOptions>) =>
  runScoped(Effect.gen(function*() {
    // legacy algorithms are opt-in on both ends: the server gets the same list
    const server = yield* SshServer.serve(serverOptions(extra.algorithms ? { algorithms: extra.algorithms } : {}))
    const ssh = yield* SshClient.connect(clientOptions(server.address.port, extra))
    const r = yield* ssh.run("echo hello")
    return { stdout: r.stdout, info: ssh.info }
  }))

describe("our client ↔ our server", () => {
  for (const kex of Algorithms.kexSupported) {
    it(`kex ${kex}`, async () => {
      const r = await echoWith({ algorithms: { kex: [kex] } })
      expect(r.stdout).toBe("hello\n")
      expect(r.info.algorithms.kex).toBe(kex)
    })
  }
  for (const hostKey of Algorithms.hostKeyDefaults) {
    it(`host key ${hostKey}`, async () => {
      const r = await echoWith({ algorithms: { hostKey: [hostKey] } })
      expect(r.info.algorithms.hostKey).toBe(hostKey)
    })
  }
  for (const cipher of Algorithms.cipherSupported) {
    for (const mac of cipher.includes("gcm") || cipher.includes("chacha") ? ["(implicit)"] : Algorithms.macSupported) {
      it(`cipher ${cipher} × ${mac}`, async () => {
        const r = await echoWith({ algorithms: { cipher: [cipher], ...(mac === "(implicit)" ? {} : { mac: [mac] }) } })
        expect(r.stdout).toBe("hello\n")
        expect(r.info.algorithms.cipherServerToClient).toBe(cipher)
      })
    }
  }

  it("password, keyboard-interactive, and wrong credentials", async () => {
    const ok = await runScoped(withServer((port) =>
      Effect.gen(function*() {
        const a = yield* SshClient.connect(clientOptions(port, { auth: [Auth.password("wonderland")] }))
        const b = yield* SshClient.connect(clientOptions(port, { auth: [Auth.keyboardInteractive(() => Effect.succeed(["123", "456"]))] }))
        return [a.info.authMethods, b.info.authMethods]
      })))
    expect(ok).toEqual([["password"], ["keyboard-interactive"]])
    const bad = await runFailure(withServer((port) => SshClient.connect(clientOptions(port, { auth: [Auth.password("nope")] }))))
    expect((bad as SshError).reason._tag).toBe("AuthFailed")
  })

  it("method chains (publickey then password)", async () => {
    const methods = await runScoped(withServer(
      (port) =>
        Effect.map(
          SshClient.connect(clientOptions(port, { auth: [Auth.password("wonderland"), Auth.privateKey(userKey)] })),
          (ssh) => ssh.info.authMethods
        ),
      { auth: { ...serverOptions().auth, methods: [["publickey", "password"]] } }
    ))
    expect(methods).toEqual(["publickey", "password"])
  })

  it("exit status, signals, stderr", async () => {
    const r = await runScoped(withServer((port) =>
      Effect.gen(function*() {
        const ssh = yield* SshClient.connect(clientOptions(port))
        return [yield* ssh.run("exit 7"), yield* ssh.run("kill"), yield* ssh.run("stderr boom")]
      })))
    expect(r[0]!.exitCode).toBe(7)
    expect(r[1]!.exit._tag).toBe("Signaled")
    expect(r[1]!.exitCode).toBe(137)
    expect(r[2]!.stderr).toBe("boom\n")
  })

  it("stdin round trip of 8 MiB with rekeys from both sides", async () => {
    const size = 8 * 1024 * 1024
    const payload = new Uint8Array(size).map((_, i) => (i * 31) & 0xff)
    const r = await runScoped(withServer((port) =>
      Effect.gen(function*() {
        const ssh = yield* SshClient.connect(clientOptions(port, { rekeyBytes: 3 * 1024 * 1024 }))
        const result = yield* ssh.run("cat", { stdin: payload })
        yield* ssh.rekey
        return { out: result.stdoutBytes, kex: ssh.stats().kexCount }
      })))
    expect(r.out.length).toBe(size)
    expect(Buffer.compare(Buffer.from(r.out), Buffer.from(payload))).toBe(0)
    expect(r.kex).toBeGreaterThanOrEqual(4)
  })

  it("borrowStdout lends each batch and frees its packet buffers after use, but not after the borrower failed", async () => {
    const size = 8 * 1024 * 1024
    const payload = new Uint8Array(size).map((_, i) => (i * 131 + (i >> 12)) & 0xff)
    const r = await runScoped(withServer((port) =>
      Effect.gen(function*() {
        const ssh = yield* SshClient.connect(clientOptions(port))
        const proc = yield* ssh.exec("cat")
        yield* Effect.forkChild(Effect.andThen(proc.write(payload), proc.closeStdin))
        const hash = createHash("sha256")
        const lent: Array<Uint8Array> = []
        let received = 0
        yield* proc.borrowStdout((chunks) =>
          Effect.sync(() => {
            for (const chunk of chunks) {
              hash.update(chunk)
              received += chunk.length
              lent.push(chunk)
            }
          })
        )
        // a failed borrower may have left an operation reading its batch: the batch is not freed
        const failing = yield* ssh.exec("zeros 100000")
        let kept: ReadonlyArray<Uint8Array> = []
        const failure = yield* Effect.flip(failing.borrowStdout((chunks) => {
          kept = chunks
          return Effect.fail("stop" as const)
        }))
        return { hash: hash.digest("hex"), received, lent, failure, kept }
      })))
    expect(r.received).toBe(size)
    expect(r.hash).toBe(createHash("sha256").update(payload).digest("hex"))
    expect(r.lent.length).toBeGreaterThan(0)
    expect(r.lent.every((chunk) => chunk.byteLength === 0)).toBe(true)
    expect(r.failure).toBe("stop")
    expect(r.kept.length).toBeGreaterThan(0)
    expect(r.kept.every((chunk) => chunk.byteLength > 0)).toBe(true)
  })

  it("growWindow lets the client send past the default window before the server reads anything", async () => {
    const MiB = 1024 * 1024
    // a subsystem that takes nothing until told to: only the window it granted bounds what the client may send
    const hold = (size: number | undefined) => (session: ServerSession) =>
      Effect.andThen(size === undefined ? Effect.void : session.channel.growWindow(size), Effect.as(Effect.never, 0))
    const sent = await runScoped(withServer((port) =>
      Effect.gen(function*() {
        const ssh = yield* SshClient.connect(clientOptions(port))
        const write = (name: string) =>
          Effect.flatMap(ssh.subsystem(name), (proc) =>
            Effect.timeoutOption(proc.channel.write(new Uint8Array(6 * MiB)), "2 seconds"))
        return { grown: yield* write("grown"), plain: yield* write("plain") }
      }), { session: { exec, subsystems: { grown: hold(8 * MiB), plain: hold(undefined) } } }))
    expect(sent.grown._tag).toBe("Some")
    expect(sent.plain._tag).toBe("None")
  })

  it("many concurrent channels", async () => {
    const out = await runScoped(withServer((port) =>
      Effect.gen(function*() {
        const ssh = yield* SshClient.connect(clientOptions(port))
        return yield* Effect.forEach(Array.from({ length: 50 }, (_, i) => i), (i) => Effect.map(ssh.run(`echo ${i}`), (r) => r.stdout), {
          concurrency: "unbounded"
        })
      }), { maxChannels: 64 }))
    expect(out).toEqual(Array.from({ length: 50 }, (_, i) => `${i}\n`))
  })

  it("a slow consumer holds the sender to the window", async () => {
    const r = await runScoped(withServer((port) =>
      Effect.gen(function*() {
        const ssh = yield* SshClient.connect(clientOptions(port, { windowSize: 256 * 1024 }))
        const proc = yield* ssh.exec("zeros 67108864")
        // read a little, then stop pulling: the server must stall at our window
        const first = yield* Stream.runCollect(Stream.take(proc.stdout, 1))
        yield* Effect.sleep("300 millis")
        const before = ssh.stats().bytesIn
        yield* Effect.sleep("300 millis")
        const after = ssh.stats().bytesIn
        return { first: first.length, stalledGrowth: after - before, total: after }
      })))
    expect(r.first).toBe(1)
    expect(r.stalledGrowth).toBe(0)
    expect(r.total).toBeLessThan(2 * 1024 * 1024)
  })

  it("a max packet larger than the transport allows is clamped, and big packets flow", async () => {
    const r = await runScoped(withServer((port) =>
      Effect.gen(function*() {
        const ssh = yield* SshClient.connect(clientOptions(port, { maxPacket: 1024 * 1024, windowSize: 8 * 1024 * 1024 }))
        const result = yield* ssh.run("zeros 4194304")
        return { bytes: result.stdoutBytes.length, packets: ssh.stats().packetsIn }
      })))
    expect(r.bytes).toBe(4194304)
    // 64 KiB writes by the handler arrive as 64 KiB packets, not 32 KiB ones
    expect(r.packets).toBeLessThan(4194304 / 32768)
  })

  it("unknown algorithm names are a typed error", async () => {
    const e = await runFailure(withServer((port) => SshClient.connect(clientOptions(port, { algorithms: { cipher: ["rot13"] } }))))
    expect((e as SshError).reason._tag).toBe("UnknownAlgorithm")
  })

  it("no common algorithm → NegotiationFailed naming the category and both lists", async () => {
    const e = await runFailure(withServer(
      (port) => SshClient.connect(clientOptions(port, { algorithms: { cipher: ["aes128-ctr"] } })),
      { algorithms: { cipher: ["aes256-gcm@openssh.com"] } }
    ))
    const reason = (e as SshError).reason as unknown as { _tag: string; kind: string; ours: Array<string>; theirs: Array<string> }
    expect(reason._tag).toBe("NegotiationFailed")
    expect(reason.ours).toContain("aes128-ctr")
    expect(reason.theirs).toContain("aes256-gcm@openssh.com")
  })

  it("server-side host key chosen per client", async () => {
    const types = await Promise.all(["ssh-ed25519", "ecdsa-sha2-nistp521", "rsa-sha2-256"].map(async (alg) => {
      const r = await echoWith({ algorithms: { hostKey: [alg] } })
      return r.info.hostKey.type
    }))
    expect(types).toEqual(["ssh-ed25519", "ecdsa-sha2-nistp521", "ssh-rsa"])
  })
})

describe("a connection that dies under a running process", () => {
  it("proc.exit fails with the typed reason instead of reporting an unknown exit", async () => {
    const error = await runFailure(Effect.gen(function*() {
      const server = yield* SshServer.serve(serverOptions({
        session: { exec: () => Effect.never }
      }))
      const ssh = yield* SshClient.connect(clientOptions(server.address.port))
      const proc = yield* ssh.exec("hang")
      // the server's scope is ours: close the transport from our side by disconnecting
      yield* ssh.connection.transport.disconnect(11, "test closes the connection")
      return yield* proc.exit
    }))
    expect((error as SshError).reason._tag).toBe("ConnectionClosed")
  })
})
