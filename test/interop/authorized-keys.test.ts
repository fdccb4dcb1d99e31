/**
 * OpenSSH's `ssh` against `effect-ssh serve` (in process, `Serve.start`) with
 * an authorized_keys file whose lines carry options, one key per option:
 * `command=` forces the command and sets SSH_ORIGINAL_COMMAND, `no-pty`
 * refuses `ssh -t` its pty, `from=` a non-matching address refuses the key
 * (the same key without it logs in), `permitopen=` lets `ssh -L` reach the
 * listed port only and `permitlisten=` lets `ssh -R` listen on its port
 * only, `restrict,pty` gives a pty but no forwarding, `environment=` shows
 * in `env`, a past `expiry-time=` refuses the key, a
 * `cert-authority,principals=` line accepts `ssh-keygen -s` certificates for
 * its principals only, and a line with an option we do not enforce is
 * skipped with a warning.
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import * as ChildProcess from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { promisify } from "node:util"
import { afterAll, beforeAll, expect, it } from "vitest"
import * as PrivateKey from "../../src/Auth/PrivateKey.ts"
import * as PublicKey from "../../src/Auth/PublicKey.ts"
import * as Serve from "../../src/cli/Serve.ts"
import type { ServeArgs } from "../../src/cli/ServeArgs.ts"
import * as NodeSsh from "../../src/NodeSsh.ts"
import { describeInterop, opensshPaths } from "./sshd.ts"

const execFile = promisify(ChildProcess.execFile)

interface Run {
  readonly stdout: string
  readonly stderr: string
  readonly code: number | null
}

/** A free loopback port (listened on, then closed). */
const freePort = () =>
  new Promise<number>((resolve) => {
    const server = net.createServer().listen(0, "127.0.0.1", () => {
      const port = (server.address() as net.AddressInfo).port
      server.close(() => resolve(port))
    })
  })

/** Everything a TCP connection to `port` on loopback receives before it closes ("" when refused or cut). */
const receive = (port: number) =>
  new Promise<string>((resolve) => {
    let data = ""
    const socket = net.connect(port, "127.0.0.1")
    socket.on("data", (d) => data += d)
    socket.on("error", () => resolve(data))
    socket.on("close", () => resolve(data))
    setTimeout(() => socket.destroy(), 10_000)
  })

describeInterop("OpenSSH ssh against effect-ssh serve's authorized_keys options", () => {
  let dir: string
  let scope: Scope.Closeable
  let knownHosts: string
  const ports: Record<"main" | "plain", number> = { main: 0, plain: 0 }
  const log: Array<string> = []
  const keys: Record<string, string> = {}
  const targets: Array<net.Server> = []
  let target = 0
  let otherTarget = 0
  let listenPort = 0

  const newKey = async (name: string) => {
    const file = path.join(dir, name)
    await execFile(opensshPaths().sshKeygen!, ["-q", "-t", "ed25519", "-N", "", "-C", name, "-f", file])
    keys[name] = file
    return fs.readFileSync(`${file}.pub`, "utf8").trim()
  }

  const hello = () =>
    new Promise<number>((resolve) => {
      const server = net.createServer((socket) => socket.end("hello from the target\n"))
      targets.push(server)
      server.listen(0, "127.0.0.1", () => resolve((server.address() as net.AddressInfo).port))
    })

  /** Starts `effect-ssh serve` on an authorized_keys file of `lines`; its port. */
  const serve = async (name: string, lines: ReadonlyArray<string>, hostKeyFile: string) => {
    const file = path.join(dir, `authorized_keys_${name}`)
    fs.writeFileSync(file, lines.join("\n") + "\n")
    const args: ServeArgs = {
      _tag: "Serve",
      listen: "127.0.0.1",
      port: 0,
      hostKeys: [hostKeyFile],
      authorizedKeys: file,
      allowForwarding: ["local", "remote"],
      permitUserEnvironment: "GREETING",
      perSourceMaxStartups: "none",
      perSourcePenalties: false
    }
    const server = await Effect.runPromise(
      Scope.provide(Serve.start(args, (line) => Effect.sync(() => void log.push(line))), scope).pipe(Effect.provide(NodeSsh.layer))
    )
    return server.address.port
  }

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "effect-ssh-authkeys-interop-"))
    target = await hello()
    listenPort = await freePort()
    otherTarget = await hello()
    const hostKey = PrivateKey.generate("ssh-ed25519")
    const hostKeyFile = path.join(dir, "host_key")
    fs.writeFileSync(hostKeyFile, PrivateKey.toOpenSsh(hostKey), { mode: 0o600 })
    const lines = [
      `command="echo forced:$SSH_ORIGINAL_COMMAND" ${await newKey("command")}`,
      `no-pty ${await newKey("nopty")}`,
      `from="10.0.0.0/8,!127.0.0.1" ${await newKey("from")}`,
      `permitopen="127.0.0.1:${target}" ${await newKey("permitopen")}`,
      `restrict,pty ${await newKey("restrict")}`,
      `environment="GREETING=hello world" ${await newKey("environment")}`,
      `expiry-time="20200101Z" ${await newKey("expired")}`,
      `tunnel="0" ${await newKey("tunnel")}`,
      `permitlisten="${listenPort}" ${await newKey("permitlisten")}`,
      `cert-authority,principals="ops",command="echo certified:$SSH_ORIGINAL_COMMAND" ${await newKey("ca")}`
    ]
    // certificates from the CA: one for the principal the line names, one for another
    await newKey("certified")
    await execFile(opensshPaths().sshKeygen!, ["-q", "-s", keys.ca!, "-I", "ops cert", "-n", "ops", "-V", "-5m:+1h", `${keys.certified}.pub`])
    await newKey("uncertified")
    await execFile(opensshPaths().sshKeygen!, ["-q", "-s", keys.ca!, "-I", "dev cert", "-n", "dev", "-V", "-5m:+1h", `${keys.uncertified}.pub`])
    scope = Effect.runSync(Scope.make())
    ports.main = await serve("main", lines, hostKeyFile)
    // the from= key on a line of its own, without from=
    ports.plain = await serve("plain", [fs.readFileSync(`${keys.from}.pub`, "utf8").trim()], hostKeyFile)
    knownHosts = path.join(dir, "known_hosts")
    fs.writeFileSync(
      knownHosts,
      Object.values(ports).map((port) => `[127.0.0.1]:${port} ${PublicKey.toOpenSsh(hostKey.publicKey)}\n`).join("")
    )
  }, 60_000)

  afterAll(async () => {
    if (scope !== undefined) await Effect.runPromise(Scope.close(scope, Exit.void))
    for (const s of targets) s.close()
    fs.rmSync(dir, { recursive: true, force: true })
  })

  const sshArgv = (key: string, args: ReadonlyArray<string>, port = ports.main): Array<string> => [
    ...args,
    "-F", "/dev/null",
    "-p", String(port),
    "-o", `UserKnownHostsFile=${knownHosts}`,
    "-o", "GlobalKnownHostsFile=/dev/null",
    "-o", "StrictHostKeyChecking=yes",
    "-o", "IdentitiesOnly=yes",
    "-o", "BatchMode=yes",
    "-o", "ConnectTimeout=10",
    "-i", keys[key]!,
    `${os.userInfo().username}@127.0.0.1`
  ]

  /** Runs `ssh` with `key`; the last of `args` is the command. */
  const ssh = (key: string, args: ReadonlyArray<string>, port = ports.main): Promise<Run> =>
    new Promise((resolve, reject) => {
      const argv = [...sshArgv(key, args.slice(0, -1), port), args[args.length - 1]!]
      ChildProcess.execFile(opensshPaths().ssh!, argv, { timeout: 30_000 }, (error, stdout, stderr) => {
        if (error === null) resolve({ stdout, stderr, code: 0 })
        else if (typeof error.code === "number") resolve({ stdout, stderr, code: error.code })
        else reject(new Error(`ssh failed: ${error.message} ${stderr}`))
      }).stdin?.end()
    })

  it("skips only the line with an option it does not enforce, naming it", () => {
    expect(log.some((l) => /line 8: key option tunnel is not supported; key skipped$/.test(l))).toBe(true)
    expect(log).toContain(`Authorized keys: 9 from ${path.join(dir, "authorized_keys_main")}`)
  })

  it("command= runs the forced command, with what was asked in SSH_ORIGINAL_COMMAND", async () => {
    const r = await ssh("command", ["uname -a"])
    expect(r.stdout).toBe("forced:uname -a\n")
    expect(r.code).toBe(0)
  })

  it("no-pty: ssh -t is refused its pty; without -t the key logs in", async () => {
    const r = await ssh("nopty", ["-tt", "tty"])
    expect(r.stderr).toContain("PTY allocation request failed")
    // a pty asked for explicitly and refused closes the session, as against sshd
    expect(r.stdout).toBe("")
    expect((await ssh("nopty", ["echo without"])).stdout).toBe("without\n")
  })

  it("from= refuses the key from 127.0.0.1, while the same key without from= logs in", async () => {
    const refused = await ssh("from", ["true"])
    expect(refused.code).toBe(255)
    expect(refused.stderr).toContain("Permission denied")
    const plain = await ssh("from", ["echo in"], ports.plain)
    expect(plain.stdout).toBe("in\n")
  })

  it("expiry-time in the past refuses the key", async () => {
    const r = await ssh("expired", ["true"])
    expect(r.code).toBe(255)
    expect(r.stderr).toContain("Permission denied")
    expect((await ssh("tunnel", ["true"])).stderr).toContain("Permission denied")
  })

  it("environment= is in the session's environment", async () => {
    const r = await ssh("environment", ["env"])
    expect(r.stdout.split("\n")).toContain("GREETING=hello world")
  })

  /** `ssh -N -L` forwarding a free local port to each of `to` with `key`; what each local port then receives, and ssh's stderr. */
  const forwardLocal = async (key: string, to: ReadonlyArray<number>) => {
    const locals = await Promise.all(to.map(() => freePort()))
    const argv = sshArgv(key, ["-N", ...to.flatMap((port, i) => ["-L", `127.0.0.1:${locals[i]}:127.0.0.1:${port}`])])
    const child = ChildProcess.spawn(opensshPaths().ssh!, argv, { stdio: ["ignore", "ignore", "pipe"] })
    let stderr = ""
    child.stderr.on("data", (d) => stderr += d)
    try {
      // ssh listens once it is logged in
      for (let i = 0; i < 200; i++) {
        const up = await new Promise<boolean>((resolve) => {
          const probe = net.connect(locals[0]!, "127.0.0.1")
          probe.on("connect", () => (probe.destroy(), resolve(true)))
          probe.on("error", () => resolve(false))
        })
        if (up) break
        await new Promise((r) => setTimeout(r, 50))
      }
      const received: Array<string> = []
      for (const local of locals) received.push(await receive(local))
      // the refusal is reported on ssh's stderr as it happens
      await new Promise((r) => setTimeout(r, 200))
      return { received, stderr }
    } finally {
      child.kill()
    }
  }

  it("permitopen: ssh -L reaches the listed port; another port is administratively prohibited", async () => {
    const r = await forwardLocal("permitopen", [target, otherTarget])
    expect(r.received).toEqual(["hello from the target\n", ""])
    expect(r.stderr).toMatch(new RegExp(`open failed: administratively prohibited: forwarding to 127\\.0\\.0\\.1:${otherTarget}`))
  })

  it("permitlisten: ssh -R listens on the listed port; another is refused", async () => {
    const other = await freePort()
    const forward = (port: number) =>
      new Promise<{ readonly code: number | null; readonly stderr: string; readonly received: string }>((resolve) => {
        const argv = sshArgv("permitlisten", ["-N", "-o", "ExitOnForwardFailure=yes", "-R", `${port}:127.0.0.1:${target}`])
        const child = ChildProcess.spawn(opensshPaths().ssh!, argv, { stdio: ["ignore", "ignore", "pipe"] })
        let stderr = ""
        let received = ""
        child.stderr.on("data", (d) => stderr += d)
        child.on("close", (code) => resolve({ code, stderr, received }))
        // listening: a connection to the server's port reaches the target through ssh
        const poll = async () => {
          for (let i = 0; i < 100 && child.exitCode === null; i++) {
            received = await receive(port)
            if (received !== "") break
            await new Promise((r) => setTimeout(r, 50))
          }
          child.kill()
        }
        void poll()
      })
    const listed = await forward(listenPort)
    expect(listed.received).toBe("hello from the target\n")
    const refused = await forward(other)
    expect(refused.code).toBe(255)
    expect(refused.stderr).toContain(`remote port forwarding failed for listen port ${other}`)
  })

  it("cert-authority,principals=: a certificate for the listed principal logs in, under the line's command", async () => {
    const r = await ssh("certified", ["whoami"])
    expect(r.stdout).toBe("certified:whoami\n")
    const other = await ssh("uncertified", ["whoami"])
    expect(other.code).toBe(255)
    expect(other.stderr).toContain("Permission denied")
  })

  it("restrict,pty: a pty, but no forwarding", async () => {
    const r = await ssh("restrict", ["-tt", "tty"])
    expect(r.stdout).toMatch(/^\/dev\/pts\/\d+/)
    const forwarded = await forwardLocal("restrict", [target])
    expect(forwarded.received).toEqual([""])
    expect(forwarded.stderr).toContain("administratively prohibited")
  })
})

