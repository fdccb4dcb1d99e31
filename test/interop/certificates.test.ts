/**
 * OpenSSH certificates against real OpenSSH: user-certificate login to
 * sshd with `TrustedUserCAKeys` (certificates from `ssh-keygen -s`, from a
 * file and through ssh-agent); host-certificate verification against sshd
 * with `HostCertificate` through a `@cert-authority` known_hosts line; our
 * server accepting OpenSSH user certificates from a configured CA; and
 * `ssh-keygen -L` reading certificates we issue.
 */
import * as NodeSocket from "@effect/platform-node/NodeSocket"
import * as Effect from "effect/Effect"
import * as ChildProcess from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { promisify } from "node:util"
import { afterAll, beforeAll, expect, it } from "vitest"
import * as Auth from "../../src/Auth/ClientAuth.ts"
import * as Certificate from "../../src/Auth/Certificate.ts"
import * as HostKeys from "../../src/Auth/HostKeys.ts"
import * as PrivateKey from "../../src/Auth/PrivateKey.ts"
import * as PublicKey from "../../src/Auth/PublicKey.ts"
import type { ServerSession } from "../../src/Channel/ServerSession.ts"
import * as SshClient from "../../src/Client.ts"
import * as SshServer from "../../src/Server.ts"
import type { SshError } from "../../src/SshError.ts"
import { runFailure, runScoped, sshdOptions } from "../helpers.ts"
import { describeInterop, opensshPaths, type Sshd, startSshd } from "./sshd.ts"

const execFile = promisify(ChildProcess.execFile)
const keygen = (...args: ReadonlyArray<string>) => execFile(opensshPaths().sshKeygen!, ["-q", ...args])

/** A new key pair file (no passphrase). */
const newKey = async (file: string, type: string) => {
  await keygen("-t", type, "-N", "", "-C", path.basename(file), "-f", file)
  return file
}

describeInterop("certificates against OpenSSH", () => {
  let dir: string
  let userCa: string
  let hostCa: string
  let sshd: Sshd
  let user: string

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "effect-ssh-cert-interop-"))
    fs.chmodSync(dir, 0o755)
    userCa = await newKey(path.join(dir, "user_ca"), "ed25519")
    hostCa = await newKey(path.join(dir, "host_ca"), "ecdsa")
    // a host key of our own, certified by the host CA for the name we dial
    const hostKey = await newKey(path.join(dir, "host_key"), "ed25519")
    await keygen("-s", hostCa, "-h", "-I", "test host", "-n", "127.0.0.1,localhost", "-V", "-5m:+1h", `${hostKey}.pub`)
    sshd = await startSshd({
      hostKeyTypes: ["ed25519"],
      config: {
        HostKey: [hostKey],
        HostCertificate: `${hostKey}-cert.pub`,
        TrustedUserCAKeys: `${userCa}.pub`
      }
    })
    user = sshd.user
  })
  afterAll(async () => {
    await sshd?.stop()
    fs.rmSync(dir, { recursive: true, force: true })
  })

  /** A key that is not in authorized_keys, and its certificate. */
  const certifiedKey = async (name: string, type: string, principals: string, extra: ReadonlyArray<string> = []) => {
    const key = await newKey(path.join(dir, name), type)
    await keygen("-s", userCa, "-I", `${name}@test`, "-n", principals, "-V", "-5m:+1h", ...extra, `${key}.pub`)
    return key
  }

  const knownHostsWith = (line: string) => {
    const file = path.join(dir, `known_hosts_${Math.random().toString(36).slice(2)}`)
    fs.writeFileSync(file, `${line}\n`)
    return HostKeys.knownHosts({ files: [file] })
  }

  /** The host's plain key in known_hosts (the harness's file lists other keys: this sshd uses our certified one). */
  const plainHostKey = () => knownHostsWith(`[127.0.0.1]:${sshd.port} ${fs.readFileSync(path.join(dir, "host_key.pub"), "utf8").trim()}`)

  /** Connect options for the sshd, trusting its plain host key unless told otherwise. */
  const options = (auth: ReadonlyArray<Auth.AuthMethod>, extra: Partial<SshClient.ConnectOptions> = {}) =>
    sshdOptions(sshd, auth, { hostKeys: plainHostKey(), ...extra })

  const caLine = (pattern: string, caFile = hostCa) =>
    `@cert-authority ${pattern} ${fs.readFileSync(`${caFile}.pub`, "utf8").trim().split(" ").slice(0, 2).join(" ")}`

  for (const type of ["ed25519", "ecdsa", "rsa"]) {
    it(`user certificate (${type}) from ssh-keygen -s logs in to sshd with TrustedUserCAKeys`, async () => {
      const key = await certifiedKey(`cert_${type}`, type, user)
      const r = await runScoped(Effect.gen(function*() {
        const ssh = yield* SshClient.connect(options([Auth.certificateFile(key)]))
        return { stdout: (yield* ssh.run("echo ok")).stdout, methods: ssh.info.authMethods }
      }))
      expect(r).toEqual({ stdout: "ok\n", methods: ["publickey"] })
      expect(fs.readFileSync(sshd.logFile, "utf8")).toMatch(new RegExp(`Accepted publickey for ${user} .* ID cert_${type}@test`))
    })
  }

  it("a user certificate for another principal, or an expired one, is refused by sshd", async () => {
    const other = await certifiedKey("cert_other", "ed25519", "somebody-else")
    const expired = await certifiedKey("cert_expired", "ed25519", user, ["-V", "20000101:20010101"])
    for (const key of [other, expired]) {
      const e = await runFailure(SshClient.connect(options([Auth.certificateFile(key)]))) as SshError
      expect(e.reason._tag).toBe("AuthFailed")
    }
  })

  it("a user certificate held by ssh-agent (ssh-add adds key and certificate) logs in through Auth.agent()", async () => {
    const key = await certifiedKey("cert_agent", "ecdsa", user)
    const socket = path.join(dir, "agent.sock")
    const agent = ChildProcess.spawn("/usr/bin/ssh-agent", ["-D", "-a", socket], { stdio: "ignore" })
    try {
      for (let i = 0; i < 200 && !fs.existsSync(socket); i++) await new Promise((r) => setTimeout(r, 10))
      await execFile("/usr/bin/ssh-add", [key], { env: { ...process.env, SSH_AUTH_SOCK: socket } })
      const r = await runScoped(Effect.gen(function*() {
        const ssh = yield* SshClient.connect(options([Auth.agent({ socketPath: socket })]))
        return (yield* ssh.run("echo ok")).stdout
      }))
      expect(r).toBe("ok\n")
      expect(fs.readFileSync(sshd.logFile, "utf8")).toMatch(/Accepted publickey for .* ID cert_agent@test/)
    } finally {
      agent.kill()
    }
  })

  it("verifies sshd's host certificate through a @cert-authority line (and nothing else in known_hosts)", async () => {
    const r = await runScoped(Effect.gen(function*() {
      const ssh = yield* SshClient.connect(options([Auth.privateKeyFile(sshd.clientKeys.ed25519)], {
        hostKeys: knownHostsWith(caLine(`[127.0.0.1]:${sshd.port}`))
      }))
      return { stdout: (yield* ssh.run("echo ok")).stdout, info: ssh.info }
    }))
    expect(r.stdout).toBe("ok\n")
    expect(r.info.algorithms.hostKey).toBe("ssh-ed25519-cert-v01@openssh.com")
    expect(r.info.hostCertificate?.keyId).toBe("test host")
    expect(r.info.hostCertificate?.principals).toEqual(["127.0.0.1", "localhost"])
    const plainHostKey = PublicKey.parseOpenSsh(fs.readFileSync(path.join(dir, "host_key.pub"), "utf8"))
    expect(PublicKey.equals(r.info.hostKey, plainHostKey)).toBe(true)
    expect(Certificate.fingerprint(r.info.hostCertificate!)).toBe(PublicKey.fingerprint(plainHostKey))
  })

  it("refuses the host certificate for a name it was not issued for, from an untrusted CA, or a @revoked CA", async () => {
    const untrustedCa = await newKey(path.join(dir, "other_ca"), "ed25519")
    const cases = [
      // a name the certificate was not issued for (the CA line matches every host)
      { host: "db.example.com", line: caLine("*"), reason: /"db.example.com" is not a principal of the certificate/ },
      // another CA: no plain key known either
      { host: "127.0.0.1", line: caLine(`[127.0.0.1]:${sshd.port}`, untrustedCa), reason: /is not in/ },
      { host: "127.0.0.1", line: `${caLine("*")}\n@revoked * ${fs.readFileSync(`${hostCa}.pub`, "utf8").trim()}`, reason: /@revoked/ }
    ]
    for (const { host, line, reason } of cases) {
      const e = await runFailure(Effect.gen(function*() {
        // dial 127.0.0.1 whatever name the client checks the certificate against
        const socket = yield* NodeSocket.makeNet({ host: "127.0.0.1", port: sshd.port })
        return yield* SshClient.connect({ ...options([Auth.privateKeyFile(sshd.clientKeys.ed25519)], { hostKeys: knownHostsWith(line) }), host, socket })
      })) as SshError
      expect(e.reason._tag, `${host} with ${line}`).toBe("HostKeyRejected")
      expect(e.reason.message).toMatch(reason)
    }
  })

  it("without a @cert-authority line a plain known_hosts key still works (no certificate asked for)", async () => {
    const r = await runScoped(Effect.gen(function*() {
      const ssh = yield* SshClient.connect(options([Auth.privateKeyFile(sshd.clientKeys.ed25519)]))
      return ssh.info
    }))
    expect(r.algorithms.hostKey).toBe("ssh-ed25519")
    expect(r.hostCertificate).toBeUndefined()
  })

  it("ssh-keygen -L reads a certificate we issue, with every field", async () => {
    const ca = PrivateKey.generate("ssh-rsa", { bits: 2048 })
    const key = PrivateKey.generate("ecdsa-sha2-nistp384")
    const cert = Certificate.sign({
      key: key.publicKey,
      role: "user",
      keyId: "issued by effect-ssh",
      principals: ["alice", "bob"],
      serial: 77n,
      validAfter: 946684800n,
      validBefore: 4102444800n,
      criticalOptions: [Certificate.stringValue("force-command", "/usr/bin/true")],
      extensions: [Certificate.flag("permit-pty")]
    }, ca, "rsa-sha2-512")
    const file = path.join(dir, "issued-cert.pub")
    fs.writeFileSync(file, `${Certificate.toOpenSsh(cert)}\n`)
    const { stdout } = await execFile(opensshPaths().sshKeygen!, ["-L", "-f", file], { env: { ...process.env, TZ: "UTC" } })
    expect(stdout).toContain("Type: ecdsa-sha2-nistp384-cert-v01@openssh.com user certificate")
    expect(stdout).toContain(`Public key: ECDSA-CERT ${PublicKey.fingerprint(key.publicKey)}`)
    expect(stdout).toContain(`Signing CA: RSA ${PublicKey.fingerprint(ca.publicKey)} (using rsa-sha2-512)`)
    expect(stdout).toContain(`Key ID: "issued by effect-ssh"`)
    expect(stdout).toContain("Serial: 77")
    expect(stdout).toContain("Valid: from 2000-01-01T00:00:00 to 2100-01-01T00:00:00")
    expect(stdout).toMatch(/Principals: \n\s+alice\n\s+bob/)
    expect(stdout).toMatch(/force-command \/usr\/bin\/true/)
    expect(stdout).toMatch(/Extensions: \n\s+permit-pty\n/)
  })

  it("our server accepts OpenSSH user certificates from its CA (ssh -i with CertificateFile), enforcing force-command", async () => {
    const plain = await certifiedKey("to_ours", "ed25519", "alice")
    const forced = await certifiedKey("to_ours_forced", "rsa", "alice", ["-O", "force-command=echo forced"])
    const wrongUser = await certifiedKey("to_ours_bob", "ed25519", "bob")
    const hostKey = PrivateKey.generate("ecdsa-sha2-nistp256")
    const exec = (session: ServerSession, command: string) =>
      Effect.as(session.write(`${session.user} ran ${command} (asked ${session.env.SSH_ORIGINAL_COMMAND ?? "-"})\n`), 0)
    const out = await runScoped(Effect.gen(function*() {
      const server = yield* SshServer.serve({
        port: 0,
        hostKeys: [hostKey],
        auth: { certificateAuthorities: [fs.readFileSync(`${userCa}.pub`, "utf8")] },
        session: { exec }
      })
      const knownHosts = path.join(dir, "known_hosts_ours")
      fs.writeFileSync(knownHosts, `[127.0.0.1]:${server.address.port} ${PublicKey.toOpenSsh(hostKey.publicKey, { comment: "" })}\n`)
      const ssh = (key: string) =>
        Effect.promise(() =>
          execFile(opensshPaths().ssh!, [
            "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
            "-o", "StrictHostKeyChecking=yes", "-o", `UserKnownHostsFile=${knownHosts}`,
            "-i", key, "-o", `CertificateFile=${key}-cert.pub`,
            "-p", String(server.address.port), "alice@127.0.0.1", "whoami"
          ]).then((r) => r.stdout, (e: { stderr?: string }) => `failed: ${e.stderr ?? ""}`)
        )
      return [yield* ssh(plain), yield* ssh(forced), yield* ssh(wrongUser)]
    }))
    expect(out[0]).toBe("alice ran whoami (asked -)\n")
    expect(out[1]).toBe("alice ran echo forced (asked whoami)\n")
    expect(out[2]).toMatch(/^failed: .*Permission denied/s)
  })
})
