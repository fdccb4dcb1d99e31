/**
 * Our client against a real OpenSSH sshd: every algorithm both implement,
 * every cipher × MAC pair, transfers both ways with rekeys initiated by each
 * side, every auth method, failures as typed errors, exit status and
 * signals, and many channels on one connection.
 */
import { afterAll, beforeAll, expect, it } from "vitest"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { type Sshd, describeInterop, startSshd } from "./sshd.ts"
import { runFailure, runScoped, sshdOptions } from "../helpers.ts"
import * as SshClient from "../../src/Client.ts"
import * as Auth from "../../src/Auth/ClientAuth.ts"
import * as HostKeys from "../../src/Auth/HostKeys.ts"
import * as PrivateKey from "../../src/Auth/PrivateKey.ts"
import type { SshError } from "../../src/SshError.ts"

const sha256 = (data: Uint8Array) => crypto.createHash("sha256").update(data).digest("hex")

describeInterop("client ↔ OpenSSH sshd", () => {
  let sshd: Sshd
  let keyAuth: Auth.AuthMethod
  beforeAll(async () => {
    sshd = await startSshd({ config: { RekeyLimit: "default none" } })
    keyAuth = Auth.privateKeyFile(sshd.clientKeys.ed25519)
  })
  afterAll(async () => {
    await sshd?.stop()
  })

  const echo = (extra: Partial<SshClient.ConnectOptions> = {}, auth: ReadonlyArray<Auth.AuthMethod> = [keyAuth]) =>
    runScoped(Effect.gen(function*() {
      const ssh = yield* SshClient.connect(sshdOptions(sshd, auth, extra))
      const r = yield* ssh.run("echo ok")
      return { stdout: r.stdout, exitCode: r.exitCode, info: ssh.info }
    }))

  const kexMethods = [
    "curve25519-sha256",
    "curve25519-sha256@libssh.org",
    "ecdh-sha2-nistp256",
    "ecdh-sha2-nistp384",
    "ecdh-sha2-nistp521",
    "diffie-hellman-group-exchange-sha256",
    "diffie-hellman-group16-sha512",
    "diffie-hellman-group18-sha512",
    "diffie-hellman-group14-sha256",
    "diffie-hellman-group14-sha1"
  ]
  for (const kex of kexMethods) {
    it(`kex ${kex}`, async () => {
      const r = await echo({ algorithms: { kex: [kex] } })
      expect(r.stdout).toBe("ok\n")
      expect(r.info.algorithms.kex).toBe(kex)
    })
  }

  const hostKeyAlgorithms = ["ssh-ed25519", "ecdsa-sha2-nistp256", "rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]
  for (const alg of hostKeyAlgorithms) {
    it(`host key ${alg}`, async () => {
      const r = await echo({ algorithms: { hostKey: [alg] } })
      expect(r.stdout).toBe("ok\n")
      expect(r.info.algorithms.hostKey).toBe(alg)
    })
  }

  const aead = ["chacha20-poly1305@openssh.com", "aes128-gcm@openssh.com", "aes256-gcm@openssh.com"]
  const ctr = ["aes128-ctr", "aes192-ctr", "aes256-ctr"]
  const macs = [
    "hmac-sha2-256",
    "hmac-sha2-512",
    "hmac-sha2-256-etm@openssh.com",
    "hmac-sha2-512-etm@openssh.com",
    "hmac-sha1",
    "hmac-sha1-etm@openssh.com"
  ]
  for (const cipher of aead) {
    it(`cipher ${cipher}`, async () => {
      const r = await echo({ algorithms: { cipher: [cipher] } })
      expect(r.stdout).toBe("ok\n")
      expect(r.info.algorithms.cipherClientToServer).toBe(cipher)
    })
  }
  for (const cipher of ctr) {
    for (const mac of macs) {
      it(`cipher ${cipher} × ${mac}`, async () => {
        const r = await echo({ algorithms: { cipher: [cipher], mac: [mac] } })
        expect(r.stdout).toBe("ok\n")
        expect(r.info.algorithms.macClientToServer).toBe(mac)
      })
    }
  }

  it("publickey with ed25519, ecdsa and rsa keys", async () => {
    for (const file of [sshd.clientKeys.ed25519, sshd.clientKeys.ecdsa, sshd.clientKeys.rsa]) {
      const r = await echo({}, [Auth.privateKeyFile(file)])
      expect(r.stdout).toBe("ok\n")
      expect(r.info.authMethods).toEqual(["publickey"])
    }
  })

  it("a wrong key then the right one", async () => {
    const stranger = PrivateKey.generate("ssh-ed25519")
    const r = await echo({}, [Auth.privateKey(stranger), keyAuth])
    expect(r.stdout).toBe("ok\n")
  })

  it("a wrong key alone → typed AuthFailed", async () => {
    const stranger = PrivateKey.generate("ssh-ed25519")
    const error = await runFailure(SshClient.connect(sshdOptions(sshd, [Auth.privateKey(stranger)])))
    expect((error as SshError).reason._tag).toBe("AuthFailed")
  })

  it("wrong host key → typed HostKeyRejected / HostKeyChanged", async () => {
    const other = PrivateKey.generate("ssh-ed25519")
    const pinned = await runFailure(SshClient.connect(sshdOptions(sshd, [keyAuth], { hostKeys: HostKeys.fixed(other.publicKey) })))
    expect(["HostKeyRejected", "HostKeyChanged"]).toContain((pinned as SshError).reason._tag)
    const unknown = await runFailure(SshClient.connect(sshdOptions(sshd, [keyAuth], {
      hostKeys: HostKeys.knownHosts({ files: [path.join(sshd.dir, "no-such-known-hosts")] })
    })))
    expect((unknown as SshError).reason._tag).toBe("HostKeyRejected")
    const fp = await runFailure(SshClient.connect(sshdOptions(sshd, [keyAuth], {
      hostKeys: HostKeys.fingerprint("SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
    })))
    expect((fp as SshError).reason._tag).toBe("HostKeyRejected")
  })

  it("host key by fingerprint", async () => {
    const ed = sshd.hostKeys.find((k) => k.type === "ed25519")!
    const r = await echo({ hostKeys: HostKeys.fingerprint(ed.fingerprint), algorithms: { hostKey: ["ssh-ed25519"] } })
    expect(r.stdout).toBe("ok\n")
  })

  it("exit status and exit signal", async () => {
    const result = await runScoped(Effect.gen(function*() {
      const ssh = yield* SshClient.connect(sshdOptions(sshd, [keyAuth]))
      const exited = yield* ssh.run("exit 42")
      const signaled = yield* ssh.run("kill -TERM $$")
      const stderr = yield* ssh.run("echo oops >&2; exit 3")
      return { exited, signaled, stderr }
    }))
    expect(result.exited.exit).toEqual({ _tag: "Exited", code: 42 })
    expect(result.signaled.exit._tag).toBe("Signaled")
    expect(result.signaled.exitCode).toBe(128 + 15)
    expect(result.stderr.stderr).toBe("oops\n")
    expect(result.stderr.exitCode).toBe(3)
  })

  it("multi-MiB transfers both ways, with rekeys started by the client and by the server", async () => {
    const size = 24 * 1024 * 1024
    const file = path.join(sshd.dir, "payload.bin")
    const payload = crypto.randomBytes(size)
    fs.writeFileSync(file, payload)
    const result = await runScoped(Effect.gen(function*() {
      const ssh = yield* SshClient.connect(sshdOptions(sshd, [keyAuth]))
      // download while we force a client-initiated rekey mid-stream
      const proc = yield* ssh.exec(`cat ${file}`)
      let received = 0
      let rekeyed = false
      const chunks: Array<Uint8Array> = []
      yield* Stream.runForEach(proc.stdout, (chunk) =>
        Effect.gen(function*() {
          chunks.push(chunk)
          received += chunk.length
          if (!rekeyed && received > size / 3) {
            rekeyed = true
            yield* ssh.rekey
          }
        }))
      const down = Buffer.concat(chunks)
      const kexAfterDownload = ssh.stats().kexCount
      // upload through stdin, hashed remotely
      const up = yield* ssh.run("sha256sum", { stdin: payload })
      return { down, kexAfterDownload, up: up.stdout.split(" ")[0] }
    }))
    expect(result.down.length).toBe(size)
    expect(sha256(result.down)).toBe(sha256(payload))
    expect(result.up).toBe(sha256(payload))
    expect(result.kexAfterDownload).toBeGreaterThanOrEqual(2)
  })

  it("server-initiated rekey (sshd RekeyLimit 1M) mid-transfer loses nothing", async () => {
    const small = await startSshd({ config: { RekeyLimit: "1M none" }, hostKeyTypes: ["ed25519"] })
    try {
      const size = 16 * 1024 * 1024
      const payload = crypto.randomBytes(size)
      const result = await runScoped(Effect.gen(function*() {
        const ssh = yield* SshClient.connect(sshdOptions(small, [Auth.privateKeyFile(small.clientKeys.ed25519)]))
        const r = yield* ssh.run(`cat > /dev/null; head -c ${size} /dev/zero | sha256sum`, { stdin: payload })
        const echoed = yield* ssh.run("cat", { stdin: payload })
        return { r, echoed, kex: ssh.stats().kexCount }
      }))
      expect(result.r.stdout.split(" ")[0]).toBe(sha256(new Uint8Array(size)))
      expect(sha256(result.echoed.stdoutBytes)).toBe(sha256(payload))
      expect(result.kex).toBeGreaterThan(4)
    } finally {
      await small.stop()
    }
  })

  it("100 concurrent channels on one connection", async () => {
    const outputs = await runScoped(Effect.gen(function*() {
      const ssh = yield* SshClient.connect(sshdOptions(sshd, [keyAuth]))
      return yield* Effect.forEach(
        Array.from({ length: 100 }, (_, i) => i),
        (i) => Effect.map(ssh.run(`echo channel-${i}`), (r) => r.stdout),
        { concurrency: "unbounded" }
      )
    }))
    expect(outputs).toEqual(Array.from({ length: 100 }, (_, i) => `channel-${i}\n`))
  })
})

describeInterop("client ↔ OpenSSH sshd: password, keyboard-interactive, multi-factor", () => {
  let sshd: Sshd
  beforeAll(async () => {
    sshd = await startSshd({ hostKeyTypes: ["ed25519"] })
  })
  afterAll(async () => {
    await sshd?.stop()
  })

  it("password", async () => {
    const r = await runScoped(Effect.gen(function*() {
      const ssh = yield* SshClient.connect(sshdOptions(sshd, [Auth.password(sshd.password!)]))
      return { out: (yield* ssh.run("echo ok")).stdout, methods: ssh.info.authMethods }
    }))
    expect(r.out).toBe("ok\n")
    expect(r.methods.length).toBe(1)
  })

  it("keyboard-interactive", async () => {
    const prompts: Array<string> = []
    const r = await runScoped(Effect.gen(function*() {
      const ssh = yield* SshClient.connect(sshdOptions(sshd, [
        Auth.keyboardInteractive((req) =>
          Effect.sync(() => {
            prompts.push(...req.prompts.map((p) => p.prompt))
            return req.prompts.map(() => sshd.password!)
          })
        )
      ]))
      return { out: (yield* ssh.run("echo ok")).stdout, methods: ssh.info.authMethods }
    }))
    expect(r.out).toBe("ok\n")
    expect(r.methods).toEqual(["keyboard-interactive"])
    expect(prompts.some((p) => /password/i.test(p))).toBe(true)
  })

  it("wrong password → typed AuthFailed listing the methods left", async () => {
    const error = await runFailure(SshClient.connect(sshdOptions(sshd, [Auth.password("definitely-wrong")])))
    expect((error as SshError).reason._tag).toBe("AuthFailed")
    expect((error as SshError & { reason: { methodsLeft: Array<string> } }).reason.methodsLeft).toContain("publickey")
  })

  it("multi-factor: AuthenticationMethods publickey,password", async () => {
    const mfa = await startSshd({ hostKeyTypes: ["ed25519"], config: { AuthenticationMethods: "publickey,password" } })
    try {
      const r = await runScoped(Effect.gen(function*() {
        // given in the "wrong" order on purpose: the client follows the server's chain
        const ssh = yield* SshClient.connect(sshdOptions(mfa, [Auth.password(mfa.password!), Auth.privateKeyFile(mfa.clientKeys.ed25519)]))
        return { out: (yield* ssh.run("echo ok")).stdout, methods: ssh.info.authMethods }
      }))
      expect(r.out).toBe("ok\n")
      expect(r.methods).toEqual(["publickey", "password"])
      const partial = await runFailure(SshClient.connect(sshdOptions(mfa, [Auth.privateKeyFile(mfa.clientKeys.ed25519)])))
      expect((partial as SshError).reason._tag).toBe("AuthFailed")
      expect((partial as SshError & { reason: { partial: boolean } }).reason.partial).toBe(true)
    } finally {
      await mfa.stop()
    }
  })
}, { requires: ["sshd", "ssh", "password"] })
