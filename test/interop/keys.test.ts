/**
 * Keys and known_hosts against a real OpenSSH: keys from `effect-ssh keygen`
 * log in to sshd (encrypted ones through our CLI with SSH_ASKPASS_REQUIRE=force),
 * known_hosts files our acceptNew policy writes (plain and hashed) are trusted
 * by `ssh -o StrictHostKeyChecking=yes`, and the CLI's
 * `-o StrictHostKeyChecking=accept-new|yes` behave like ssh's.
 */
import * as Effect from "effect/Effect"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { afterAll, beforeAll, expect, it } from "vitest"
import * as Auth from "../../src/Auth/ClientAuth.ts"
import * as HostKeys from "../../src/Auth/HostKeys.ts"
import * as KnownHosts from "../../src/Auth/KnownHosts.ts"
import * as PrivateKey from "../../src/Auth/PrivateKey.ts"
import * as PublicKey from "../../src/Auth/PublicKey.ts"
import * as SshClient from "../../src/Client.ts"
import { UsageError } from "../../src/cli/Args.ts"
import * as Keygen from "../../src/cli/Keygen.ts"
import { runScoped, sshdOptions } from "../helpers.ts"
import { type Sshd, describeInterop, runSsh, startSshd } from "./sshd.ts"

const mainScript = Path.resolve("src/cli/main.ts")

describeInterop("keys and known_hosts ↔ OpenSSH", () => {
  let sshd: Sshd
  let dir: string
  let n = 0
  beforeAll(async () => {
    sshd = await startSshd()
    dir = Fs.mkdtempSync(Path.join(sshd.dir, "keys-"))
  })
  afterAll(async () => {
    await sshd?.stop()
  })

  const fresh = (name: string) => Path.join(dir, `${name}-${n++}`)

  const keygen = async (argv: ReadonlyArray<string>) => {
    const args = Keygen.parseKeygen(argv)
    if (args instanceof UsageError) throw new Error(args.message)
    const result = await Effect.runPromise(Effect.provide(Keygen.runKeygen(args), NodeFileSystem.layer))
    if (result._tag !== "Written") throw new Error(`${result.file} exists`)
    Fs.appendFileSync(Path.join(sshd.dir, "authorized_keys"), Fs.readFileSync(result.publicFile, "utf8"))
    return result
  }

  const cli = (args: ReadonlyArray<string>, env: NodeJS.ProcessEnv = {}) =>
    ChildProcess.spawnSync(process.execPath, [mainScript, ...args], {
      encoding: "utf8",
      input: "",
      timeout: 60_000,
      env: { ...process.env, DISPLAY: "", SSH_ASKPASS_REQUIRE: "never", ...env }
    })
  const target = () => [`${sshd.user}@127.0.0.1`]

  for (const [name, flags] of [
    ["ed25519", ["-t", "ed25519"]],
    ["ecdsa 256", ["-t", "ecdsa", "-b", "256"]],
    ["ecdsa 384", ["-t", "ecdsa", "-b", "384"]],
    ["ecdsa 521", ["-t", "ecdsa", "-b", "521"]],
    ["rsa 3072", ["-t", "rsa"]]
  ] as const) {
    it(`sshd accepts a ${name} key from effect-ssh keygen (OpenSSH's ssh logs in with it)`, async () => {
      const file = fresh(name.replace(" ", ""))
      await keygen([...flags, "-f", file])
      const r = await runSsh(sshd, "echo ok", { identity: file })
      expect(r.stderr).not.toMatch(/denied/i)
      expect(r.stdout).toBe("ok\n")
    })
  }

  it("an encrypted keygen key logs in through effect-ssh exec, the passphrase from SSH_ASKPASS (force)", async () => {
    const file = fresh("enc")
    await keygen(["-t", "ecdsa", "-N", "open sesame", "-f", file])
    const askpass = Path.join(dir, "askpass-ok")
    Fs.writeFileSync(askpass, "#!/bin/sh\necho 'open sesame'\n", { mode: 0o755 })
    const base = ["exec", "-p", String(sshd.port), "-i", file, "--known-hosts", sshd.knownHostsFile, ...target(), "--", "echo", "in"]
    const ok = cli(base, { SSH_ASKPASS: askpass, SSH_ASKPASS_REQUIRE: "force" })
    expect(ok.stderr).toBe("")
    expect(ok.stdout).toBe("in\n")
    expect(ok.status).toBe(0)
    // without a way to ask, the key is skipped and nothing else is offered: authentication fails
    const none = cli(base)
    expect(none.status).toBe(255)
    expect(none.stderr).toMatch(/Permission denied \(publickey\)\./)
  })

  it("a PuTTY key needs no conversion: ssh-keygen -y agrees with the key we read", async () => {
    const ppk = Fs.readFileSync(new URL("../Auth/fixtures/ppk/sshj_ed25519_v2.ppk", import.meta.url), "utf8")
    const key = PrivateKey.parse(ppk)
    const file = fresh("from-ppk")
    Fs.writeFileSync(file, PrivateKey.toOpenSsh(key), { mode: 0o600 })
    const y = ChildProcess.spawnSync("ssh-keygen", ["-y", "-f", file], { encoding: "utf8" })
    expect(y.stdout.split(" ").slice(0, 2).join(" ")).toBe(PublicKey.toOpenSsh(key.publicKey, { comment: "" }))
  })

  for (const hashed of [false, true]) {
    it(`known_hosts written by acceptNew (${hashed ? "hashed" : "plain"}) is trusted by ssh -o StrictHostKeyChecking=yes`, async () => {
      const file = fresh("known_hosts")
      await runScoped(Effect.gen(function*() {
        const ssh = yield* SshClient.connect(sshdOptions(sshd, [Auth.privateKeyFile(sshd.clientKeys.ed25519)], {
          hostKeys: HostKeys.acceptNew({ files: [file], hashed })
        }))
        return yield* ssh.run("true")
      }))
      const lines = Fs.readFileSync(file, "utf8").trimEnd().split("\n")
      expect(lines).toHaveLength(1)
      expect(lines[0]!.startsWith("|1|")).toBe(hashed)
      const r = await runSsh(sshd, "echo trusted", { identity: sshd.clientKeys.ed25519 }, {
        extraArgs: ["-o", `UserKnownHostsFile=${file}`]
      })
      expect(r.stderr).not.toMatch(/Host key verification failed/)
      expect(r.stdout).toBe("trusted\n")
      // and ssh with an empty file refuses, so the line above is what made it pass
      const empty = fresh("empty_known_hosts")
      Fs.writeFileSync(empty, "")
      const refused = await runSsh(sshd, "echo trusted", { identity: sshd.clientKeys.ed25519 }, {
        extraArgs: ["-o", `UserKnownHostsFile=${empty}`]
      })
      expect(refused.code).toBe(255)
    })
  }

  it("a known_hosts file hashed by ssh-keygen -H is read by our strict policy", async () => {
    const file = fresh("hashed_by_openssh")
    Fs.copyFileSync(sshd.knownHostsFile, file)
    expect(ChildProcess.spawnSync("ssh-keygen", ["-H", "-f", file]).status).toBe(0)
    expect(Fs.readFileSync(file, "utf8")).toMatch(/^\|1\|/)
    const out = await runScoped(Effect.gen(function*() {
      const ssh = yield* SshClient.connect(sshdOptions(sshd, [Auth.privateKeyFile(sshd.clientKeys.ed25519)], {
        hostKeys: HostKeys.knownHosts({ files: [file] })
      }))
      return (yield* ssh.run("echo hashed")).stdout
    }))
    expect(out).toBe("hashed\n")
  })

  it("effect-ssh exec -o StrictHostKeyChecking: accept-new adds one line, yes then trusts it, a changed key exits 255", () => {
    const file = fresh("cli_known_hosts")
    const run = (option: string, knownHosts = file) =>
      cli(["exec", "-p", String(sshd.port), "-i", sshd.clientKeys.ed25519, "-o", `StrictHostKeyChecking=${option}`, "--known-hosts", knownHosts, ...target(), "--", "echo", "hi"])
    expect(run("yes").status).toBe(255)
    expect(Fs.existsSync(file)).toBe(false)
    const added = run("accept-new")
    expect(added.stdout).toBe("hi\n")
    expect(Fs.readFileSync(file, "utf8").trimEnd().split("\n")).toHaveLength(1)
    expect(run("yes").stdout).toBe("hi\n")
    expect(run("accept-new").status).toBe(0)
    expect(Fs.readFileSync(file, "utf8").trimEnd().split("\n")).toHaveLength(1)
    // every host key of the server recorded as some other key: HostKeyChanged, whatever the option
    const wrong = fresh("wrong_known_hosts")
    const impostor = PrivateKey.generate("ssh-ed25519").publicKey
    Fs.writeFileSync(wrong, `${KnownHosts.formatLine("127.0.0.1", sshd.port, impostor)}\n`)
    for (const option of ["yes", "accept-new", "no"]) {
      const changed = run(option, wrong)
      expect(changed.status).toBe(255)
      expect(changed.stderr).toMatch(/HostKeyChanged/)
      expect(changed.stderr).toContain(PublicKey.fingerprint(impostor))
    }
    expect(run("maybe").status).toBe(255)
  })
}, { requires: ["sshd", "ssh"] })
