/**
 * OpenSSH's `ssh` client against our server.
 *
 * The server is the one `effect-ssh serve` builds (`Serve.serveOptions`: host
 * keys from `ssh-keygen` files, authorized_keys, a password file, sessions
 * through the real shell), started in-process with the two SHA-1 algorithms
 * we only offer on request; one suite runs the `serve` CLI itself as a child
 * process. Every `ssh` run trusts exactly our host keys (fresh known_hosts,
 * `StrictHostKeyChecking=yes`, `-F /dev/null`).
 */
import { afterAll, beforeAll, expect, it } from "vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { promisify } from "node:util"
import * as SshServer from "../../src/Server.ts"
import * as Serve from "../../src/cli/Serve.ts"
import type { ServeArgs } from "../../src/cli/ServeArgs.ts"
import {
  type KeyType,
  type Sshd,
  type SshdHostKey,
  type SshAuth,
  type SshResult,
  describeInterop,
  opensshPaths,
  runSsh,
  sshClientArgs
} from "./sshd.ts"

const execFile = promisify(ChildProcess.execFile)
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const mainScript = new URL("../../src/cli/main.ts", import.meta.url).pathname
/** util-linux `script`: gives ssh a terminal of a known size for the interactive pty test. */
const scriptProgram = ["/usr/bin/script", "/bin/script"].find((p) => Fs.existsSync(p))

const USER = "alice"
const PASSWORD = `pw-${Math.random().toString(36).slice(2)}:with colon`

/** ssh-keygen's `-t`/`-b` and the SSH type name of each host key we serve. */
const hostKeySpecs: ReadonlyArray<{ readonly name: string; readonly type: KeyType; readonly bits?: string }> = [
  { name: "ed25519", type: "ed25519" },
  { name: "ecdsa256", type: "ecdsa", bits: "256" },
  { name: "ecdsa384", type: "ecdsa", bits: "384" },
  { name: "ecdsa521", type: "ecdsa", bits: "521" },
  { name: "rsa", type: "rsa", bits: "2048" }
]

const keygen = async (file: string, type: KeyType, bits?: string): Promise<string> => {
  const sshKeygen = opensshPaths().sshKeygen ?? "ssh-keygen"
  await execFile(sshKeygen, ["-q", "-t", type, ...(bits === undefined ? [] : ["-b", bits]), "-N", "", "-C", `test-${Path.basename(file)}`, "-f", file])
  return Fs.readFileSync(`${file}.pub`, "utf8").trim()
}

/** Host and client keys, an authorized_keys with the client keys but one, a password file and an askpass script. */
const makeFixture = async (dir: string) => {
  const hostKeys = await Promise.all(hostKeySpecs.map(async ({ name, type, bits }): Promise<SshdHostKey> => {
    const path = Path.join(dir, `ssh_host_${name}_key`)
    const publicKeyLine = await keygen(path, type, bits)
    return { type, algorithm: publicKeyLine.split(" ")[0]!, publicKeyLine, fingerprint: "", path }
  }))
  const clientTypes = ["ed25519", "ecdsa", "rsa", "stranger"] as const
  const clientLines = await Promise.all(clientTypes.map((t) => keygen(Path.join(dir, `id_${t}`), t === "stranger" ? "ed25519" : t)))
  const authorizedKeys = Path.join(dir, "authorized_keys")
  Fs.writeFileSync(authorizedKeys, clientLines.slice(0, 3).map((l) => `${l}\n`).join(""))
  const passwordFile = Path.join(dir, "passwords")
  Fs.writeFileSync(passwordFile, `# test users\n${USER}:${PASSWORD}\n`, { mode: 0o600 })
  const askpassFile = Path.join(dir, "askpass")
  Fs.writeFileSync(askpassFile, "#!/bin/sh\nprintf '%s\\n' \"$EFFECT_SSH_ASKPASS_PASSWORD\"\n", { mode: 0o755 })
  const client = (t: (typeof clientTypes)[number]) => Path.join(dir, `id_${t}`)
  return {
    hostKeys,
    clientKeys: { ed25519: client("ed25519"), ecdsa: client("ecdsa"), rsa: client("rsa") },
    strangerKey: client("stranger"),
    authorizedKeys,
    passwordFile,
    askpassFile
  }
}

type Fixture = Awaited<ReturnType<typeof makeFixture>>

const writeKnownHosts = (file: string, port: number, keys: ReadonlyArray<SshdHostKey>) =>
  Fs.writeFileSync(file, keys.map((k) => `[127.0.0.1]:${port} ${k.publicKeyLine.split(" ").slice(0, 2).join(" ")}\n`).join(""))

/** Our server described as the harness's `Sshd`, so that `runSsh`/`sshClientArgs` drive it. */
const asTarget = (dir: string, port: number, fixture: Fixture, logFile: string, stop: () => Promise<void>): Sshd => {
  const knownHostsFile = Path.join(dir, `known_hosts_${port}`)
  writeKnownHosts(knownHostsFile, port, fixture.hostKeys)
  return {
    host: "127.0.0.1",
    port,
    dir,
    user: USER,
    password: PASSWORD,
    hostKeys: fixture.hostKeys,
    clientKeys: fixture.clientKeys,
    knownHostsFile,
    askpassFile: fixture.askpassFile,
    configFile: "/dev/null",
    logFile,
    stop
  }
}

/** Runs `ssh` with our own stdin and environment (runSsh closes stdin at once). */
const spawnSsh = (
  args: ReadonlyArray<string>,
  options: { readonly input?: string | Uint8Array | undefined; readonly wrapInScript?: string | undefined } = {}
): Promise<SshResult> => {
  const ssh = opensshPaths().ssh!
  const [file, argv] = options.wrapInScript === undefined
    ? [ssh, args]
    : [scriptProgram ?? "script", ["-qfec", `${options.wrapInScript}; exec ${[ssh, ...args].map(shellQuote).join(" ")}`, "/dev/null"]]
  return new Promise((resolve, reject) => {
    const child = ChildProcess.spawn(file, argv, { stdio: ["pipe", "pipe", "pipe"] })
    const stdout: Array<Buffer> = []
    const stderr: Array<Buffer> = []
    child.stdout.on("data", (b: Buffer) => stdout.push(b))
    child.stderr.on("data", (b: Buffer) => stderr.push(b))
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000)
    child.on("error", reject)
    child.on("close", (code) => {
      clearTimeout(timer)
      resolve({ stdout: Buffer.concat(stdout).toString(), stderr: Buffer.concat(stderr).toString(), code })
    })
    if (typeof options.input === "string" && options.wrapInScript !== undefined) {
      // typed into the terminal line by line, as a person would (the shell reads each after its prompt)
      const lines = options.input.split(/(?<=\n)/)
      void (async () => {
        await sleep(1_000)
        for (const line of lines) {
          child.stdin.write(line)
          await sleep(300)
        }
        await sleep(2_000)
        child.stdin.end()
      })()
    } else {
      child.stdin.end(options.input)
    }
  })
}

const shellQuote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`

const publicKey = (identity: string): SshAuth => ({ identity })
const withPassword = (method: "password" | "keyboard-interactive") => ({ password: PASSWORD, method })

/** The `ssh -v` line OpenSSH prints for each negotiated algorithm. */
const negotiated = (stderr: string) => ({
  kex: /kex: algorithm: (\S+)/.exec(stderr)?.[1],
  hostKey: /kex: host key algorithm: (\S+)/.exec(stderr)?.[1],
  cipher: /kex: server->client cipher: (\S+)/.exec(stderr)?.[1],
  mac: /kex: server->client cipher: \S+ MAC: (\S+)/.exec(stderr)?.[1]
})

const freeLocalPort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = Net.createServer()
    server.on("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as Net.AddressInfo).port
      server.close(() => resolve(port))
    })
  })

/** Connects until the port accepts, then waits for the peer to close: what ssh does with a refused -L channel. */
const connectAndAwaitClose = async (port: number): Promise<string> => {
  for (let attempt = 0; attempt < 100; attempt++) {
    const result = await new Promise<string | undefined>((resolve) => {
      const socket = Net.connect({ host: "127.0.0.1", port })
      let received = ""
      socket.on("data", (b: Buffer) => void (received += b.toString()))
      socket.on("error", () => resolve(undefined))
      socket.on("connect", () => socket.on("close", () => resolve(received)))
    })
    if (result !== undefined) return result
    await sleep(50)
  }
  throw new Error(`nothing listened on ${port}`)
}

// ---------------------------------------------------------------------------------------------------------------
// The in-process server
// ---------------------------------------------------------------------------------------------------------------

let dir: string
let fixture: Fixture
let scope: Scope.Closeable
let target: Sshd
const logLines: Array<string> = []

describeInterop("OpenSSH ssh against our server", () => {
  beforeAll(async () => {
    dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-ssh-serve-"))
    fixture = await makeFixture(dir)
    const args: ServeArgs = {
      _tag: "Serve",
      listen: "127.0.0.1",
      port: 0,
      hostKeys: fixture.hostKeys.map((k) => k.path),
      authorizedKeys: fixture.authorizedKeys,
      passwordFile: fixture.passwordFile,
      // the refused logins below, all from 127.0.0.1, would earn it an active penalty (as with sshd)
      perSourcePenalties: false
    }
    const log = (line: string) => Effect.sync(() => void logLines.push(line))
    scope = await Effect.runPromise(Scope.make())
    const server = await Effect.runPromise(Effect.gen(function*() {
      const options = yield* Serve.serveOptions(args, log)
      // SHA-1 key exchange and MACs are opt-in on our side; OpenSSH 9.2 still offers them
      return yield* SshServer.serve({
        ...options,
        algorithms: { kex: "+diffie-hellman-group14-sha1", mac: "+hmac-sha1,hmac-sha1-etm@openssh.com" }
      })
    }).pipe(Scope.provide(scope)))
    target = asTarget(dir, server.address.port, fixture, "/dev/null", async () => {})
  })

  afterAll(async () => {
    if (scope !== undefined) await Effect.runPromise(Scope.close(scope, Exit.void))
    if (dir !== undefined) Fs.rmSync(dir, { recursive: true, force: true })
  })

  const ed25519 = () => publicKey(fixture.clientKeys.ed25519)

  const kexAlgorithms = [
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
  it.each(kexAlgorithms)("kex %s", async (kex) => {
    const r = await runSsh(target, "echo ok", ed25519(), { extraArgs: ["-v", "-o", `KexAlgorithms=${kex}`] })
    expect(r.stdout).toBe("ok\n")
    expect(r.code).toBe(0)
    expect(negotiated(r.stderr).kex).toBe(kex)
  })

  const ciphers = [
    "chacha20-poly1305@openssh.com",
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "aes128-ctr",
    "aes192-ctr",
    "aes256-ctr"
  ]
  it.each(ciphers)("cipher %s", async (cipher) => {
    const r = await runSsh(target, "echo ok", ed25519(), { extraArgs: ["-v", "-o", `Ciphers=${cipher}`] })
    expect(r.stdout).toBe("ok\n")
    expect(r.code).toBe(0)
    expect(negotiated(r.stderr).cipher).toBe(cipher)
  })

  const macs = [
    "hmac-sha2-256",
    "hmac-sha2-512",
    "hmac-sha2-256-etm@openssh.com",
    "hmac-sha2-512-etm@openssh.com",
    "hmac-sha1",
    "hmac-sha1-etm@openssh.com"
  ]
  it.each(macs)("MAC %s (with aes128-ctr)", async (mac) => {
    const r = await runSsh(target, "echo ok", ed25519(), { extraArgs: ["-v", "-o", "Ciphers=aes128-ctr", "-o", `MACs=${mac}`] })
    expect(r.stdout).toBe("ok\n")
    expect(r.code).toBe(0)
    expect(negotiated(r.stderr).mac).toBe(mac)
  })

  const hostKeyAlgorithms = [
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "rsa-sha2-256",
    "rsa-sha2-512"
  ]
  it.each(hostKeyAlgorithms)("host key %s, checked against known_hosts", async (algorithm) => {
    const r = await runSsh(target, "echo ok", ed25519(), { extraArgs: ["-v", "-o", `HostKeyAlgorithms=${algorithm}`] })
    expect(r.stdout).toBe("ok\n")
    expect(r.code).toBe(0)
    expect(negotiated(r.stderr).hostKey).toBe(algorithm)
    expect(r.stderr).toMatch(/Host '\[127\.0\.0\.1\]:\d+' is known and matches/)
  })

  it("StrictHostKeyChecking refuses a host key that does not match known_hosts", async () => {
    const knownHosts = Path.join(dir, "known_hosts_ed25519_only")
    writeKnownHosts(knownHosts, target.port, fixture.hostKeys.filter((k) => k.algorithm === "ssh-ed25519"))
    const r = await runSsh({ ...target, knownHostsFile: knownHosts }, "echo ok", ed25519(), {
      extraArgs: ["-o", "HostKeyAlgorithms=ecdsa-sha2-nistp256"]
    })
    expect(r.code).toBe(255)
    expect(r.stdout).toBe("")
    expect(r.stderr).toContain("Host key verification failed")
  })

  it.each(["ed25519", "ecdsa", "rsa"] as const)("publickey with a %s client key", async (type) => {
    const before = logLines.length
    const r = await runSsh(target, "echo ok", publicKey(fixture.clientKeys[type]), { extraArgs: ["-v"] })
    expect(r.stdout).toBe("ok\n")
    expect(r.code).toBe(0)
    expect(r.stderr).toContain(`Authenticated to 127.0.0.1 ([127.0.0.1]:${target.port}) using "publickey"`)
    // RSA signs with SHA-2 only because ext-info's server-sig-algs offers it (ssh-rsa/SHA-1 is not offered)
    const sigAlgs = /server-sig-algs=<([^>]*)>/.exec(r.stderr)?.[1]?.split(",")
    expect(sigAlgs).toEqual(expect.arrayContaining(["ssh-ed25519", "ecdsa-sha2-nistp256", "rsa-sha2-512", "rsa-sha2-256"]))
    expect(sigAlgs).not.toContain("ssh-rsa")
    expect(r.stderr).toMatch(new RegExp(`Server accepts key: \\S+ ${type === "rsa" ? "RSA" : type.toUpperCase()} SHA256:`))
    expect(logLines.slice(before).some((l) => l === `Authenticated ${USER} from 127.0.0.1 (publickey)`)).toBe(true)
  })

  it("publickey with a key not in authorized_keys is refused", async () => {
    const r = await runSsh(target, "echo ok", publicKey(fixture.strangerKey))
    expect(r.code).toBe(255)
    expect(r.stdout).toBe("")
    expect(r.stderr).toContain("Permission denied (publickey,password,keyboard-interactive)")
  })

  it.each(["password", "keyboard-interactive"] as const)("%s through SSH_ASKPASS", async (method) => {
    const r = await runSsh(target, "echo ok", withPassword(method), { extraArgs: ["-v"] })
    expect(r.stdout).toBe("ok\n")
    expect(r.code).toBe(0)
    expect(r.stderr).toContain(`using "${method}"`)
    expect(logLines).toContain(`Authenticated ${USER} from 127.0.0.1 (${method})`)
  })

  it.each(["password", "keyboard-interactive"] as const)("%s: a wrong password or unknown user is refused", async (method) => {
    const wrong = await runSsh(target, "echo ok", { password: `${PASSWORD}x`, method })
    expect(wrong.code).toBe(255)
    expect(wrong.stderr).toContain("Permission denied")
    const stranger = await runSsh({ ...target, user: "mallory" }, "echo ok", withPassword(method))
    expect(stranger.code).toBe(255)
    expect(stranger.stderr).toContain("Permission denied")
  })

  it("exec: stdout and stderr apart, stdin forwarded, exit code propagated", async () => {
    const r = await spawnSsh([...sshClientArgs(target, ed25519()), `${USER}@127.0.0.1`, "wc -c; echo oops >&2; exit 3"], {
      input: "x".repeat(100_000)
    })
    expect(r.stdout.trim()).toBe("100000")
    expect(r.stderr).toBe("oops\n")
    expect(r.code).toBe(3)
  })

  it.each([0, 1, 42, 255])("exit %i becomes ssh's exit code", async (code) => {
    const r = await runSsh(target, `exit ${code}`, ed25519())
    expect(r.code).toBe(code)
  })

  it("a process killed by a signal: exit-signal is sent, ssh exits 255 without an exit status", async () => {
    const r = await runSsh(target, "echo before; kill -TERM $$; echo after", ed25519(), { extraArgs: ["-v"] })
    expect(r.stdout).toBe("before\n")
    // OpenSSH's client reads exit-signal but only reports it at debug level, and exits 255 for want of an exit-status
    expect(r.stderr).toContain("client_input_channel_req: channel 0 rtype exit-signal reply 0")
    expect(r.stderr).toContain("Exit status -1")
    expect(r.code).toBe(255)
  })

  it("ssh -tt command: runs on a pseudo-terminal", async () => {
    const r = await runSsh(target, "tty; test -t 0 && echo stdin-is-a-tty", ed25519(), { extraArgs: ["-tt"] })
    expect(r.stdout).toMatch(/^\/dev\/pts\/\d+\r\nstdin-is-a-tty\r\n$/)
    expect(r.code).toBe(0)
  })

  it.skipIf(scriptProgram === undefined)("ssh -tt shell: terminal size, typed commands, exit code", async () => {
    const r = await spawnSsh([...sshClientArgs(target, ed25519()), "-tt", `${USER}@127.0.0.1`], {
      wrapInScript: "stty rows 40 cols 100",
      input: "tty\nstty size\necho \"term=$TERM\"\nexit 4\n"
    })
    expect(r.stdout).toMatch(/\/dev\/pts\/\d+\r\n/)
    expect(r.stdout).toContain("40 100\r\n")
    expect(r.stdout).toMatch(/term=\S+\r\n/)
    expect(r.code).toBe(4)
  })

  it("-L is refused (administratively prohibited) and the session still works", async () => {
    const localPort = await freeLocalPort()
    const ssh = runSsh(target, "sleep 1; echo ok", ed25519(), {
      extraArgs: ["-o", "ExitOnForwardFailure=yes", "-L", `${localPort}:127.0.0.1:9`]
    })
    const received = await connectAndAwaitClose(localPort)
    const r = await ssh
    expect(received).toBe("")
    expect(r.stdout).toBe("ok\n")
    expect(r.code).toBe(0)
    expect(r.stderr).toMatch(/open failed: administratively prohibited: forwarding to [^ ]+ is not allowed/)
  })

  it("-W (stdio forwarding) is refused: ssh reports it and exits 255", async () => {
    const r = await runSsh(target, "", ed25519(), { extraArgs: ["-W", "127.0.0.1:9"] })
    expect(r.code).toBe(255)
    expect(r.stderr).toContain("administratively prohibited")
    expect(r.stderr).toContain("stdio forwarding failed")
  })

  it("-R is refused: the session goes on, or ssh exits with ExitOnForwardFailure", async () => {
    const lenient = await runSsh(target, "echo ok", ed25519(), { extraArgs: ["-R", "0:127.0.0.1:9"] })
    expect(lenient.stdout).toBe("ok\n")
    expect(lenient.code).toBe(0)
    expect(lenient.stderr).toContain("Warning: remote port forwarding failed for listen port 0")
    const strict = await runSsh(target, "echo ok", ed25519(), { extraArgs: ["-o", "ExitOnForwardFailure=yes", "-R", "0:127.0.0.1:9"] })
    expect(strict.code).toBe(255)
    expect(strict.stderr).toContain("Error: remote port forwarding failed for listen port 0")
  })

  it("logs every connection: Connected, Authenticated, Closed", () => {
    const connected = logLines.filter((l) => l.startsWith("Connected 127.0.0.1:")).length
    const closed = logLines.filter((l) => l.startsWith("Closed 127.0.0.1:")).length
    expect(connected).toBeGreaterThan(40)
    expect(closed).toBe(connected)
    expect(logLines.some((l) => /^Authenticated alice from 127\.0\.0\.1 \(publickey\)$/.test(l))).toBe(true)
  })
}, { requires: ["ssh"] })

// ---------------------------------------------------------------------------------------------------------------
// The CLI as a child process
// ---------------------------------------------------------------------------------------------------------------

/** Waits until a process is gone or a zombie (an orphan's reaper, PID 1 in a container, may never reap it). */
const processEnds = async (pid: number, ms: number): Promise<boolean> => {
  for (const deadline = Date.now() + ms; Date.now() < deadline; await sleep(25)) {
    try {
      const stat = Fs.readFileSync(`/proc/${pid}/stat`, "utf8")
      if (stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z")) return true
    } catch {
      return true
    }
  }
  return false
}

/** Starts `effect-ssh serve` and waits for its "Listening on" line. */
const startCli = async (args: ReadonlyArray<string>) => {
  const child = ChildProcess.spawn(process.execPath, [mainScript, "serve", "--port", "0", ...args], {
    stdio: ["ignore", "pipe", "pipe"]
  })
  let stderr = ""
  child.stderr.on("data", (b: Buffer) => void (stderr += b.toString()))
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)))
  const deadline = Date.now() + 20_000
  for (;;) {
    const port = /Listening on 127\.0\.0\.1:(\d+)/.exec(stderr)?.[1]
    if (port !== undefined) return { child, port: Number(port), stderr: () => stderr, exited }
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill("SIGKILL")
      throw new Error(`effect-ssh serve did not start:\n${stderr}`)
    }
    await sleep(30)
  }
}

describeInterop("OpenSSH ssh against the effect-ssh serve CLI", () => {
  let cliDir: string
  let cliFixture: Fixture

  beforeAll(async () => {
    cliDir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-ssh-serve-cli-"))
    cliFixture = await makeFixture(cliDir)
  })

  afterAll(() => {
    if (cliDir !== undefined) Fs.rmSync(cliDir, { recursive: true, force: true })
  })

  it("serves exec, logs connections, and on SIGTERM disconnects clients, ends their processes and exits 0", async () => {
    const hostKey = cliFixture.hostKeys.find((k) => k.algorithm === "ecdsa-sha2-nistp384")!
    const server = await startCli([
      "--host-key", hostKey.path,
      "--authorized-keys", cliFixture.authorizedKeys,
      "--password-file", cliFixture.passwordFile
    ])
    try {
      const cliTarget = asTarget(cliDir, server.port, { ...cliFixture, hostKeys: [hostKey] }, "/dev/null", async () => {})
      const r = await runSsh(cliTarget, "echo ok", { identity: cliFixture.clientKeys.rsa })
      expect(r.stdout).toBe("ok\n")
      expect(r.code).toBe(0)
      const p = await runSsh(cliTarget, "echo ok", withPassword("keyboard-interactive"))
      expect(p.stdout).toBe("ok\n")

      // a session still running when the server stops
      const pidFile = Path.join(cliDir, "session.pid")
      const running = runSsh(cliTarget, `echo $$ > ${pidFile}; exec sleep 30`, { identity: cliFixture.clientKeys.ed25519 })
      for (let i = 0; i < 200 && !Fs.existsSync(pidFile); i++) await sleep(25)
      await sleep(100)
      const sessionPid = Number(Fs.readFileSync(pidFile, "utf8"))
      expect(sessionPid).toBeGreaterThan(0)
      server.child.kill("SIGTERM")
      const [cut, code] = await Promise.all([running, server.exited])
      expect(code).toBe(0)
      expect(cut.code).toBe(255)
      expect(cut.stderr).toMatch(/Received disconnect from 127\.0\.0\.1 port \d+:11: server shutting down/)
      expect(await processEnds(sessionPid, 3_000)).toBe(true)

      const log = server.stderr()
      expect(log).toContain(`Host key ecdsa-sha2-nistp384 SHA256:`)
      expect(log.match(/ Connected 127\.0\.0\.1:\d+\n/g)?.length).toBe(3)
      expect(log).toContain(`Authenticated ${USER} from 127.0.0.1 (publickey)`)
      expect(log).toContain(`Authenticated ${USER} from 127.0.0.1 (keyboard-interactive)`)
      expect(log.match(/ Closed 127\.0\.0\.1:\d+\n/g)?.length).toBe(3)
      expect(log).toMatch(/Shutting down[\s\S]*Stopped\n$/)
    } finally {
      server.child.kill("SIGKILL")
    }
  })

  it("without --host-key: generates a key, prints its fingerprint, and ssh can pin it", async () => {
    const server = await startCli(["--authorized-keys", cliFixture.authorizedKeys])
    try {
      const fingerprint = /Host key ssh-ed25519 (SHA256:[A-Za-z0-9+/]+) \(generated, in memory only\)/.exec(server.stderr())?.[1]
      expect(fingerprint).toBeDefined()
      // learn the key with accept-new, then check ssh computed the fingerprint we printed
      const knownHosts = Path.join(cliDir, "known_hosts_generated")
      const r = await runSsh(
        { ...asTarget(cliDir, server.port, cliFixture, "/dev/null", async () => {}), knownHostsFile: knownHosts },
        "echo ok",
        { identity: cliFixture.clientKeys.ed25519 },
        { extraArgs: ["-o", "StrictHostKeyChecking=accept-new"] }
      )
      expect(r.stdout).toBe("ok\n")
      const { stdout } = await execFile(opensshPaths().sshKeygen ?? "ssh-keygen", ["-l", "-E", "sha256", "-f", knownHosts])
      expect(stdout).toContain(fingerprint!)
    } finally {
      server.child.kill("SIGTERM")
      expect(await server.exited).toBe(0)
    }
  })
}, { requires: ["ssh"] })
