import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import { promisify } from "node:util"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  describeInterop,
  opensshPaths,
  renderSshdConfig,
  runSsh,
  type Sshd,
  sshClientArgs,
  startSshd
} from "./sshd.ts"

const execFile = promisify(ChildProcess.execFile)

const accepts = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = Net.connect({ host: "127.0.0.1", port })
    socket.once("connect", () => {
      socket.destroy()
      resolve(true)
    })
    socket.once("error", () => resolve(false))
  })

const processesRunning = (commandLine: string): number =>
  Fs.readdirSync("/proc")
    .filter((name) => /^\d+$/.test(name))
    .filter((name) => {
      try {
        return Fs.readFileSync(`/proc/${name}/cmdline`, "utf8").split("\0").join(" ").trim() === commandLine
      } catch {
        return false
      }
    }).length

const processAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

describe("renderSshdConfig", () => {
  it("replaces defaults case-insensitively, expands arrays and puts Match last", () => {
    const text = renderSshdConfig(
      [["Ciphers", "aes128-ctr"], ["HostKey", ["/k1", "/k2"]], ["LogLevel", "DEBUG1"]],
      { Match: "User nobody\n  PasswordAuthentication no", ciphers: "aes256-ctr", MaxAuthTries: "3" }
    )
    expect(text).toBe(
      "ciphers aes256-ctr\nHostKey /k1\nHostKey /k2\nLogLevel DEBUG1\nMaxAuthTries 3\n" +
        "Match User nobody\n  PasswordAuthentication no\n"
    )
  })

  it("rejects keywords and values that would inject extra lines", () => {
    expect(() => renderSshdConfig([], { "Ciphers\nUsePAM": "no" })).toThrow(/invalid sshd_config keyword/)
    expect(() => renderSshdConfig([], { Ciphers: "aes128-ctr\nUsePAM no" })).toThrow(/newline/)
  })
})

describeInterop("OpenSSH sshd harness", () => {
  let sshd: Sshd

  beforeAll(async () => {
    sshd = await startSshd()
  })

  afterAll(async () => {
    await sshd?.stop()
  })

  it("listens on 127.0.0.1 with the generated files in its temp dir", async () => {
    expect(sshd.host).toBe("127.0.0.1")
    expect(sshd.port).toBeGreaterThan(0)
    expect(await accepts(sshd.port)).toBe(true)
    for (const file of [sshd.configFile, sshd.knownHostsFile, sshd.logFile, ...Object.values(sshd.clientKeys)]) {
      expect(file.startsWith(`${sshd.dir}/`)).toBe(true)
      expect(Fs.existsSync(file)).toBe(true)
    }
    const config = Fs.readFileSync(sshd.configFile, "utf8").split("\n")
    expect(config).toContain("ListenAddress 127.0.0.1")
    expect(config).toContain(`AuthorizedKeysFile ${sshd.dir}/authorized_keys`)
    const { ssh } = opensshPaths()
    for (const [keyword, query] of [["KexAlgorithms", "kex"], ["Ciphers", "cipher"], ["MACs", "mac"], ["HostKeyAlgorithms", "HostKeyAlgorithms"]]) {
      const { stdout } = await execFile(ssh ?? "ssh", ["-Q", query ?? ""])
      expect(config).toContain(`${keyword} ${stdout.trim().split("\n").join(",")}`)
    }
  })

  it("describes three host keys whose fingerprints ssh sees, and a matching known_hosts", async () => {
    expect(sshd.hostKeys.map((key) => key.type)).toEqual(["ed25519", "ecdsa", "rsa"])
    expect(sshd.hostKeys.map((key) => key.algorithm)).toEqual(["ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa"])
    const knownHosts = Fs.readFileSync(sshd.knownHostsFile, "utf8").trim().split("\n")
    expect(knownHosts).toHaveLength(3)
    for (const key of sshd.hostKeys) {
      expect(key.fingerprint).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/)
      const blob = key.publicKeyLine.split(" ")[1]
      expect(knownHosts).toContain(`[127.0.0.1]:${sshd.port} ${key.algorithm} ${blob}`)
      const hostKeyAlgorithm = key.algorithm === "ssh-rsa" ? "rsa-sha2-512" : key.algorithm
      const result = await runSsh(sshd, "true", { identity: sshd.clientKeys.ed25519 }, {
        extraArgs: ["-o", `HostKeyAlgorithms=${hostKeyAlgorithm}`, "-o", "LogLevel=DEBUG1"]
      })
      expect(result.code).toBe(0)
      expect(result.stderr).toContain(`Server host key: ${key.algorithm} ${key.fingerprint}`)
    }
  })

  for (const type of ["ed25519", "ecdsa", "rsa"] as const) {
    it(`logs in with the ${type} client key`, async () => {
      const result = await runSsh(sshd, "echo ok; id -un", { identity: sshd.clientKeys[type] })
      expect(result).toMatchObject({ code: 0, stdout: `ok\n${sshd.user}\n` })
    })
  }

  it("enables legacy algorithms too (group1-sha1, 3des-cbc, hmac-md5, ssh-rsa signatures)", async () => {
    const result = await runSsh(sshd, "echo ok", { identity: sshd.clientKeys.rsa }, {
      extraArgs: [
        "-o", "KexAlgorithms=diffie-hellman-group1-sha1",
        "-o", "Ciphers=3des-cbc",
        "-o", "MACs=hmac-md5",
        "-o", "PubkeyAcceptedAlgorithms=ssh-rsa",
        "-o", "HostKeyAlgorithms=ssh-rsa"
      ]
    })
    expect(result).toMatchObject({ code: 0, stdout: "ok\n" })
  })

  it("refuses a key that is not authorized", async () => {
    const { sshKeygen } = opensshPaths()
    const stranger = `${sshd.dir}/stranger`
    await execFile(sshKeygen ?? "ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", stranger])
    const result = await runSsh(sshd, "echo ok", { identity: stranger })
    expect(result.code).toBe(255)
    expect(result.stdout).toBe("")
    expect(result.stderr).toMatch(/Permission denied/)
  })

  it("serves the sftp subsystem", async () => {
    const { sftp } = opensshPaths()
    const args = sshClientArgs(sshd, { identity: sshd.clientKeys.ed25519 }).map((arg) => (arg === "-p" ? "-P" : arg))
    const child = ChildProcess.spawnSync(sftp ?? "sftp", ["-b", "-", ...args, `${sshd.user}@${sshd.host}`], {
      input: `ls -1 ${sshd.dir}\n`,
      encoding: "utf8",
      timeout: 30_000
    })
    expect(child.status).toBe(0)
    expect(child.stdout).toContain(`${sshd.dir}/authorized_keys`)
  })
})

describeInterop(
  "OpenSSH sshd harness: password account",
  () => {
    let sshd: Sshd

    beforeAll(async () => {
      sshd = await startSshd({ hostKeyTypes: ["ed25519"] })
    })

    afterAll(async () => {
      await sshd?.stop()
    })

    for (const method of ["password", "keyboard-interactive"] as const) {
      it(`logs in with ${method}`, async () => {
        expect(sshd.password).toBeTypeOf("string")
        const result = await runSsh(sshd, "echo ok; id -un", { password: sshd.password ?? "", method })
        expect(result).toMatchObject({ code: 0, stdout: `ok\n${sshd.user}\n` })
      })

      it(`rejects a wrong ${method}`, async () => {
        const result = await runSsh(sshd, "echo ok", { password: `${sshd.password}-wrong`, method })
        expect(result.code).toBe(255)
        expect(result.stdout).toBe("")
      })
    }
  },
  { requires: ["sshd", "ssh", "password"] }
)

describeInterop("OpenSSH sshd harness: options and stop()", () => {
  it("applies config overrides and the requested host key types", async () => {
    const sshd = await startSshd({ hostKeyTypes: ["ecdsa"], config: { Ciphers: "aes128-ctr" } })
    try {
      expect(sshd.hostKeys.map((key) => key.algorithm)).toEqual(["ecdsa-sha2-nistp256"])
      const allowed = await runSsh(sshd, "echo ok", { identity: sshd.clientKeys.ed25519 }, {
        extraArgs: ["-o", "Ciphers=aes128-ctr"]
      })
      expect(allowed).toMatchObject({ code: 0, stdout: "ok\n" })
      const refused = await runSsh(sshd, "echo ok", { identity: sshd.clientKeys.ed25519 }, {
        extraArgs: ["-o", "Ciphers=chacha20-poly1305@openssh.com"]
      })
      expect(refused.code).toBe(255)
      expect(refused.stderr).toMatch(/no matching cipher/)
    } finally {
      await sshd.stop()
    }
  })

  it("fails with the log's tail when sshd rejects its config", async () => {
    await expect(startSshd({ hostKeyTypes: ["ed25519"], config: { NoSuchKeyword: "yes" } })).rejects.toThrow(
      /NoSuchKeyword/
    )
  })

  it("runs several instances side by side on distinct ports", async () => {
    const instances = await Promise.all([1, 2, 3].map(() => startSshd({ hostKeyTypes: ["ed25519"] })))
    try {
      expect(new Set(instances.map((sshd) => sshd.port)).size).toBe(3)
      const results = await Promise.all(
        instances.map((sshd) => runSsh(sshd, "echo ok", { identity: sshd.clientKeys.ecdsa }))
      )
      expect(results.map((result) => result.stdout)).toEqual(["ok\n", "ok\n", "ok\n"])
    } finally {
      await Promise.all(instances.map((sshd) => sshd.stop()))
    }
  })

  it("stop() kills sshd, its sessions' commands and removes the temp dir", async () => {
    const sshd = await startSshd({ hostKeyTypes: ["ed25519"] })
    const pid = Number(Fs.readFileSync(`${sshd.dir}/sshd.pid`, "utf8").trim())
    expect(processAlive(pid)).toBe(true)
    const command = `sleep 29.${sshd.port}`
    const session = runSsh(sshd, command, { identity: sshd.clientKeys.ed25519 })
    for (let i = 0; i < 100 && processesRunning(command) === 0; i++) await new Promise((r) => setTimeout(r, 50))
    expect(processesRunning(command)).toBe(1)
    await sshd.stop()
    await sshd.stop()
    expect(processAlive(pid)).toBe(false)
    expect(Fs.existsSync(sshd.dir)).toBe(false)
    const ended = await session
    expect(ended.code).not.toBe(0)
    expect(processesRunning(command)).toBe(0)
  })
})
