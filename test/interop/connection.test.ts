/**
 * Connection-level behaviour against a real sshd: ECDSA host keys on every
 * curve, channel-open failures, global requests, a stalled channel not
 * blocking others (nor a rekey), keepalive detecting a dead peer, one
 * connect timeout, and the `effect-ssh exec` CLI.
 */
import { afterAll, beforeAll, expect, it } from "vitest"
import * as Effect from "effect/Effect"
import * as child from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as path from "node:path"
import { type Sshd, describeInterop, startSshd } from "./sshd.ts"
import { runFailure, runScoped, sshdOptions } from "../helpers.ts"
import * as SshClient from "../../src/Client.ts"
import * as Auth from "../../src/Auth/ClientAuth.ts"
import * as HostKeys from "../../src/Auth/HostKeys.ts"
import * as PrivateKey from "../../src/Auth/PrivateKey.ts"
import * as PublicKey from "../../src/Auth/PublicKey.ts"
import type { SshError } from "../../src/SshError.ts"
import { build } from "../../src/Wire/Writer.ts"

const reasonOf = (e: unknown) => (e as SshError).reason

/** A TCP proxy to `port` that can freeze: bytes stop flowing both ways but the sockets stay open. */
const freezableProxy = (port: number) =>
  new Promise<{ port: number; freeze: () => void; close: () => void }>((resolve) => {
    let frozen = false
    const sockets = new Set<net.Socket>()
    const server = net.createServer((client) => {
      const upstream = net.connect(port, "127.0.0.1")
      sockets.add(client).add(upstream)
      client.on("data", (d) => !frozen && upstream.write(d))
      upstream.on("data", (d) => !frozen && client.write(d))
      client.on("error", () => {})
      upstream.on("error", () => {})
    })
    server.listen(0, "127.0.0.1", () =>
      resolve({
        port: (server.address() as net.AddressInfo).port,
        freeze: () => {
          frozen = true
        },
        close: () => {
          for (const s of sockets) s.destroy()
          server.close()
        }
      }))
  })

describeInterop("connection behaviour against OpenSSH sshd", () => {
  let sshd: Sshd
  let keyAuth: Auth.AuthMethod
  beforeAll(async () => {
    sshd = await startSshd()
    keyAuth = Auth.privateKeyFile(sshd.clientKeys.ed25519)
  })
  afterAll(async () => {
    await sshd?.stop()
  })

  it("ECDSA host keys on nistp384 and nistp521 (written by our key writer)", async () => {
    const dir = fs.mkdtempSync("/tmp/effect-ssh-hostkeys-")
    const keys = (["ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521"] as const).map((type) => {
      const key = PrivateKey.generate(type)
      const file = path.join(dir, type)
      fs.writeFileSync(file, PrivateKey.toOpenSsh(key), { mode: 0o600 })
      return { key, file }
    })
    const ecdsa = await startSshd({ config: { HostKey: keys.map((k) => k.file) } })
    try {
      for (const { key } of keys) {
        const type = key.publicKey.type
        const info = await runScoped(Effect.map(
          SshClient.connect(sshdOptions(ecdsa, [Auth.privateKeyFile(ecdsa.clientKeys.ed25519)], {
            hostKeys: HostKeys.fixed(key.publicKey),
            algorithms: { hostKey: [type] }
          })),
          (ssh) => ssh.info
        ))
        expect(info.algorithms.hostKey).toBe(type)
        expect(PublicKey.equals(info.hostKey, key.publicKey)).toBe(true)
      }
    } finally {
      await ecdsa.stop()
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it("channel open failure → ChannelOpenFailed with the code", async () => {
    const error = await runFailure(Effect.gen(function*() {
      const ssh = yield* SshClient.connect(sshdOptions(sshd, [keyAuth]))
      return yield* ssh.openChannel("no-such-channel-type@example.com")
    }))
    expect(reasonOf(error)._tag).toBe("ChannelOpenFailed")
    // sshd answers an unknown type with OPEN_CONNECT_FAILED, "open failed"
    const reason = reasonOf(error) as unknown as { code: number; description: string }
    expect(reason.code).toBe(2)
    expect(reason.description).toBe("open failed")
  })

  it("direct-tcpip refused by sshd (AllowTcpForwarding no) → ChannelOpenFailed code 1", async () => {
    const noForward = await startSshd({ hostKeyTypes: ["ed25519"], config: { AllowTcpForwarding: "no" } })
    try {
      const error = await runFailure(Effect.gen(function*() {
        const ssh = yield* SshClient.connect(sshdOptions(noForward, [Auth.privateKeyFile(noForward.clientKeys.ed25519)]))
        const data = build((w) => w.string("127.0.0.1").uint32(noForward.port).string("127.0.0.1").uint32(1))
        return yield* ssh.openChannel("direct-tcpip", data)
      }))
      expect(reasonOf(error)._tag).toBe("ChannelOpenFailed")
      expect((reasonOf(error) as unknown as { code: number }).code).toBe(1)
    } finally {
      await noForward.stop()
    }
  })

  it("global requests (a reply for want-reply, nothing for no-reply) and IGNORE; connection still usable", async () => {
    const r = await runScoped(Effect.gen(function*() {
      const ssh = yield* SshClient.connect(sshdOptions(sshd, [keyAuth]))
      const reply = yield* ssh.globalRequest("keepalive@openssh.com", new Uint8Array(0), true)
      const none = yield* ssh.globalRequest("nonexistent@example.com", new Uint8Array(0), false)
      const before = ssh.stats().packetsOut
      yield* ssh.sendIgnore(4096)
      yield* ssh.sendIgnore()
      const ignoresSent = ssh.stats().packetsOut - before
      return { reply, none, ignoresSent, after: (yield* ssh.run("echo after")).stdout }
    }))
    expect(r.reply).toBeUndefined()
    expect(r.none).toBeUndefined()
    expect(r.ignoresSent).toBe(2)
    expect(r.after).toBe("after\n")
  })

  it("a stalled channel blocks neither other channels nor a rekey", async () => {
    const r = await runScoped(Effect.gen(function*() {
      const ssh = yield* SshClient.connect(sshdOptions(sshd, [keyAuth]))
      // never read: the server fills our window and waits
      yield* ssh.exec("head -c 67108864 /dev/zero")
      yield* Effect.sleep("200 millis")
      const outputs = yield* Effect.forEach([1, 2, 3, 4, 5], (i) => Effect.map(ssh.run(`echo ${i}`), (x) => x.stdout))
      yield* ssh.rekey
      const afterRekey = (yield* ssh.run("echo rekeyed")).stdout
      return { outputs, afterRekey, kex: ssh.stats().kexCount }
    }))
    expect(r.outputs).toEqual(["1\n", "2\n", "3\n", "4\n", "5\n"])
    expect(r.afterRekey).toBe("rekeyed\n")
    expect(r.kex).toBe(2)
  })

  it("keepalive: a peer that goes silent → Timeout", async () => {
    const proxy = await freezableProxy(sshd.port)
    try {
      const started = Date.now()
      const error = await runFailure(Effect.gen(function*() {
        const ssh = yield* SshClient.connect(sshdOptions(sshd, [keyAuth], {
          port: proxy.port,
          hostKeys: HostKeys.fixed(...sshd.hostKeys.map((k) => k.publicKeyLine)),
          keepaliveInterval: "200 millis",
          keepaliveCountMax: 2
        }))
        proxy.freeze()
        const proc = yield* ssh.exec("sleep 30")
        return yield* proc.exit
      }))
      expect(reasonOf(error)._tag).toBe("Timeout")
      expect(Date.now() - started).toBeLessThan(10_000)
    } finally {
      proxy.close()
    }
  })

  it("connectTimeout covers a server that accepts TCP but never speaks", async () => {
    const silent = net.createServer(() => {})
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", () => r()))
    try {
      const started = Date.now()
      const error = await runFailure(SshClient.connect({
        host: "127.0.0.1",
        port: (silent.address() as net.AddressInfo).port,
        username: "x",
        auth: [Auth.password("x")],
        hostKeys: HostKeys.fingerprint("SHA256:x"),
        connectTimeout: "500 millis"
      }))
      expect(reasonOf(error)._tag).toBe("Timeout")
      expect(Date.now() - started).toBeLessThan(3000)
    } finally {
      silent.close()
    }
  })

  it("connection refused → ConnectFailed", async () => {
    const port = await new Promise<number>((r) => {
      const s = net.createServer().listen(0, "127.0.0.1", () => {
        const p = (s.address() as net.AddressInfo).port
        s.close(() => r(p))
      })
    })
    const error = await runFailure(SshClient.connect({
      host: "127.0.0.1",
      port,
      username: "x",
      auth: [],
      hostKeys: HostKeys.fingerprint("SHA256:x")
    }))
    expect(reasonOf(error)._tag).toBe("ConnectFailed")
  })

  const cli = (args: ReadonlyArray<string>, input?: string) =>
    child.spawnSync(path.resolve("node_modules/.bin/node"), [path.resolve("src/cli/main.ts"), ...args], {
      encoding: "utf8",
      input: input ?? "",
      timeout: 30_000
    })

  const cliBase = () => ["-p", String(sshd.port), "-i", sshd.clientKeys.ed25519, "--known-hosts", sshd.knownHostsFile, `${sshd.user}@127.0.0.1`]

  it("effect-ssh exec streams output and returns the remote exit code", () => {
    const ok = cli(["exec", ...cliBase(), "--", "echo", "hello;", "echo", "err", ">&2"])
    expect(ok.stdout).toBe("hello\n")
    expect(ok.stderr).toBe("err\n")
    expect(ok.status).toBe(0)
    expect(cli(["exec", ...cliBase(), "--", "exit 7"]).status).toBe(7)
    expect(cli(["exec", ...cliBase(), "--", "kill -TERM $$"]).status).toBe(143)
    const piped = cli(["exec", ...cliBase(), "--", "wc", "-c"], "x".repeat(100_000))
    expect(piped.stdout.trim()).toBe("100000")
  })

  it("effect-ssh exec -o algorithms, bad flags exit 2, connection errors exit 255", () => {
    const r = cli(["exec", "-o", "Ciphers=aes256-ctr", "-o", "MACs=hmac-sha2-512", "-o", "KexAlgorithms=ecdh-sha2-nistp384", "-o", "ConnectTimeout=10", ...cliBase(), "--", "echo", "ok"])
    expect(r.stdout).toBe("ok\n")
    expect(r.status).toBe(0)
    const bad = cli(["exec", "--bogus", "host", "--", "true"])
    expect(bad.status).toBe(2)
    expect(bad.stderr).toMatch(/usage: effect-ssh exec/)
    const unknown = cli(["exec", "-o", "Ciphers=rot13", ...cliBase(), "--", "true"])
    expect(unknown.status).toBe(255)
    expect(unknown.stderr).toMatch(/UnknownAlgorithm/)
    const hostKey = cli(["exec", "-p", String(sshd.port), "-i", sshd.clientKeys.ed25519, "--host-key-fingerprint", "SHA256:nope", "127.0.0.1", "--", "true"])
    expect(hostKey.status).toBe(255)
    expect(hostKey.stderr).toMatch(/HostKeyRejected/)
  })
})
