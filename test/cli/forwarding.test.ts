/**
 * `effect-ssh exec`'s forwarding flags: their parsing, and the real command (a child process) against
 * OpenSSH's sshd: -N -L (TCP and Unix socket, data compared by hash), -N -R 0 (the "Allocated port" line),
 * -N -D with curl, -W as the ProxyCommand of OpenSSH's ssh, ExitOnForwardFailure, SIGINT/SIGTERM ending -N
 * with 0, and usage errors (exit 2).
 */
import * as ChildProcess from "node:child_process"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import * as Http from "node:http"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type ExecArgs, parseExec, UsageError } from "../../src/cli/Args.ts"
import { allocatedPortLine, localListenAt, remoteListenAt } from "../../src/cli/Forwarding.ts"
import { describeInterop, opensshPaths, type Sshd, sshClientArgs, startSshd } from "../interop/sshd.ts"

const mainScript = new URL("../../src/cli/main.ts", import.meta.url).pathname
const sha256 = (data: Uint8Array) => Crypto.createHash("sha256").update(data).digest("hex")

const ok = (argv: ReadonlyArray<string>): ExecArgs => {
  const result = parseExec(argv)
  if (result instanceof UsageError) throw new Error(`unexpected usage error: ${result.message}`)
  return result
}

const usage = (argv: ReadonlyArray<string>): string => {
  const result = parseExec(argv)
  expect(result).toBeInstanceOf(UsageError)
  return (result as UsageError).message
}

describe("parseExec: forwarding flags", () => {
  it("-L, -R and -D in every OpenSSH form, several of each, flags bundled or with attached values", () => {
    const args = ok([
      "-N",
      "-L", "8080:localhost:80",
      "-L[::1]:8081:[fe80::1]:80",
      "-L", "8082:/run/db.sock",
      "-L", "/tmp/l.sock:db:5432",
      "-R", "0:127.0.0.1:3000",
      "-R", "*:2222:localhost:22",
      "-R", "/tmp/r.sock:localhost:80",
      "-D", "1080",
      "-NnD", "localhost:1081",
      "host"
    ])
    expect(args.command).toBeUndefined()
    expect(args.noCommand).toBe(true)
    expect(args.noStdin).toBe(true)
    expect(args.forwarding.local).toEqual([
      { listen: { port: 8080 }, connect: { host: "localhost", port: 80 } },
      { listen: { host: "::1", port: 8081 }, connect: { host: "fe80::1", port: 80 } },
      { listen: { port: 8082 }, connect: { path: "/run/db.sock" } },
      { listen: { path: "/tmp/l.sock" }, connect: { host: "db", port: 5432 } }
    ])
    expect(args.forwarding.remote).toEqual([
      { listen: { port: 0 }, connect: { host: "127.0.0.1", port: 3000 } },
      { listen: { host: "*", port: 2222 }, connect: { host: "localhost", port: 22 } },
      { listen: { path: "/tmp/r.sock" }, connect: { host: "localhost", port: 80 } }
    ])
    expect(args.forwarding.dynamic).toEqual([{ listen: { port: 1080 } }, { listen: { host: "localhost", port: 1081 } }])
    expect(args.forwarding).toMatchObject({ stdio: undefined, exitOnForwardFailure: false, gatewayPorts: false })
  })

  it("forwards alongside a command", () => {
    const args = ok(["-L", "8080:localhost:80", "host", "sleep", "10"])
    expect(args).toMatchObject({ command: "sleep 10", noCommand: false })
    expect(args.forwarding.local).toHaveLength(1)
  })

  it("-o LocalForward, RemoteForward and DynamicForward add up; ExitOnForwardFailure and GatewayPorts", () => {
    const args = ok([
      "-o", "LocalForward=8080 localhost:80",
      "-o", "LocalForward 8081 db:5432",
      "-o", "RemoteForward=0 127.0.0.1:3000",
      "-o", "DynamicForward=1080",
      "-o", "ExitOnForwardFailure=yes",
      "-o", "GatewayPorts=Yes",
      "-N",
      "host"
    ])
    expect(args.forwarding).toEqual({
      local: [
        { listen: { port: 8080 }, connect: { host: "localhost", port: 80 } },
        { listen: { port: 8081 }, connect: { host: "db", port: 5432 } }
      ],
      remote: [{ listen: { port: 0 }, connect: { host: "127.0.0.1", port: 3000 } }],
      dynamic: [{ listen: { port: 1080 } }],
      stdio: undefined,
      exitOnForwardFailure: true,
      gatewayPorts: true
    })
  })

  it("-W: a target, no command, ExitOnForwardFailure implied", () => {
    const args = ok(["-W", "db.internal:22", "host"])
    expect(args.command).toBeUndefined()
    expect(args.forwarding).toMatchObject({ stdio: { host: "db.internal", port: 22 }, exitOnForwardFailure: true })
    expect(ok(["-W", "[2001:db8::7]:22", "host"]).forwarding.stdio).toEqual({ host: "2001:db8::7", port: 22 })
    expect(ok(["-W", "/run/ssh.sock", "host"]).forwarding.stdio).toEqual({ path: "/run/ssh.sock" })
  })

  it("-X and -Y are parsed (and refused when run)", () => {
    expect(ok(["-X", "host", "xterm"]).x11).toBe(true)
    expect(ok(["-Y", "host", "xterm"]).x11).toBe(true)
  })

  it("usage errors name the flag and the problem", () => {
    expect(usage(["-L", "8080", "h", "x"])).toMatch(/^-L: bad forwarding specification "8080": no destination/)
    expect(usage(["-L", "0:h:80", "h", "x"])).toMatch(/the local port is 0/)
    expect(usage(["-L", "8080:h:99999", "h", "x"])).toMatch(/out of range/)
    expect(usage(["-D", "0", "h", "x"])).toMatch(/^-D: .*the local port is 0/)
    expect(usage(["-D", "1080:h:80", "h", "x"])).toMatch(/^-D: .*only \[bind_address:\]port/)
    expect(usage(["-W", "nohostport", "h"])).toMatch(/^-W: .*expected host:port/)
    expect(usage(["-R", "8080:h", "h", "x"])).toMatch(/^-R: .*is not a number/)
    expect(usage(["-o", "LocalForward=8080", "h", "x"])).toBe("LocalForward: LocalForward takes a listener and a destination, got 1 argument(s)")
    expect(usage(["-o", "ExitOnForwardFailure=maybe", "h", "x"])).toBe('bad ExitOnForwardFailure "maybe" (yes or no)')
    expect(usage(["-o", "GatewayPorts=1", "-N", "h"])).toBe('bad GatewayPorts "1" (yes or no)')
    expect(usage(["-L"])).toBe("-L needs a value")
    expect(usage(["-NL"])).toBe("-L needs a value")
  })

  it("remote dynamic forwarding is refused as unsupported, not faked", () => {
    for (const argv of [["-R", "1080", "-N", "h"], ["-R", "*:1080", "-N", "h"], ["-o", "RemoteForward=1080", "-N", "h"]]) {
      expect(usage(argv)).toMatch(/remote dynamic forwarding \(SOCKS on the server's listener\) is not supported yet/)
    }
  })

  it("-N and -W run no command; -W takes no other forwarding", () => {
    expect(usage(["-N", "h", "ls"])).toBe("-N runs no command; drop the command or -N")
    expect(usage(["-W", "a:22", "h", "ls"])).toBe("-W runs no command; drop the command")
    expect(usage(["-W", "a:22", "-L", "8080:h:80", "h"])).toBe("-W cannot be combined with -L, -R or -D")
    expect(usage(["-W", "a:22", "-W", "b:22", "h"])).toBe("-W may be given once")
    expect(parseExec(["h"])).toMatchObject({ command: undefined, noCommand: false })
  })
})

describe("forward addresses", () => {
  it("local listeners bind loopback unless GatewayPorts=yes or a bind address says otherwise", () => {
    expect(localListenAt({ port: 8080 }, false)).toEqual({ host: "localhost", port: 8080 })
    expect(localListenAt({ port: 8080 }, true)).toEqual({ host: "*", port: 8080 })
    expect(localListenAt({ host: "localhost", port: 8080 }, true)).toEqual({ host: "localhost", port: 8080 })
    expect(localListenAt({ host: "", port: 8080 }, false)).toEqual({ host: "*", port: 8080 })
    expect(localListenAt({ host: "*", port: 8080 }, false)).toEqual({ host: "*", port: 8080 })
    expect(localListenAt({ host: "10.0.0.1", port: 8080 }, false)).toEqual({ host: "10.0.0.1", port: 8080 })
    expect(localListenAt({ path: "/tmp/s" }, true)).toEqual({ path: "/tmp/s" })
  })

  it("remote listeners ask for what ssh sends", () => {
    expect(remoteListenAt({ port: 0 })).toEqual({ host: "localhost", port: 0 })
    expect(remoteListenAt({ host: "*", port: 80 })).toEqual({ host: "", port: 80 })
    expect(remoteListenAt({ host: "0.0.0.0", port: 80 })).toEqual({ host: "0.0.0.0", port: 80 })
    expect(remoteListenAt({ path: "/tmp/s" })).toEqual({ path: "/tmp/s" })
  })

  it("the Allocated port line is ssh's", () => {
    expect(allocatedPortLine(40123, { host: "localhost", port: 80 })).toBe("Allocated port 40123 for remote forward to localhost:80\n")
    expect(allocatedPortLine(40123, { path: "/tmp/s" })).toBe("Allocated port 40123 for remote forward to /tmp/s\n")
  })
})

// ---------------------------------------------------------------------------------------------------------------
// the command
// ---------------------------------------------------------------------------------------------------------------

interface Cli {
  readonly child: ChildProcess.ChildProcess
  readonly stderr: () => string
  /** Resolves with the first match of `pattern` on stderr; rejects if the command exits first. */
  readonly waitFor: (pattern: RegExp) => Promise<RegExpMatchArray>
  readonly exited: Promise<{ readonly code: number | null; readonly signal: NodeJS.Signals | null }>
}

const spawnCli = (argv: ReadonlyArray<string>, stdio: ChildProcess.StdioOptions = ["ignore", "pipe", "pipe"]): Cli => {
  const child = ChildProcess.spawn(process.execPath, [mainScript, ...argv], { stdio })
  let stderr = ""
  const listeners = new Set<() => void>()
  child.stderr!.setEncoding("utf8").on("data", (text: string) => {
    stderr += text
    for (const listener of listeners) listener()
  })
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("close", (code, signal) => resolve({ code, signal }))
  )
  const waitFor = (pattern: RegExp) =>
    new Promise<RegExpMatchArray>((resolve, reject) => {
      const check = () => {
        const match = pattern.exec(stderr)
        if (match !== null) {
          listeners.delete(check)
          resolve(match)
        }
      }
      listeners.add(check)
      check()
      void exited.then(({ code }) => reject(new Error(`exited with ${code} before ${pattern}: ${stderr}`)))
    })
  return { child, stderr: () => stderr, waitFor, exited }
}

const runCli = (argv: ReadonlyArray<string>) =>
  new Promise<{ readonly code: number | null; readonly stdout: string; readonly stderr: string }>((resolve) => {
    ChildProcess.execFile(process.execPath, [mainScript, ...argv], { timeout: 30_000 }, (error, stdout, stderr) =>
      resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : null, stdout, stderr }))
  })

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = Net.createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as Net.AddressInfo
      server.close(() => resolve(port))
    })
  })

/** Resolves once something accepts connections at `to` (the forward is up), or rejects after `ms`. */
const waitForListener = async (to: { readonly port: number } | { readonly path: string }, ms = 15_000): Promise<void> => {
  const deadline = Date.now() + ms
  while (true) {
    const up = await new Promise<boolean>((resolve) => {
      const conn = "path" in to ? Net.connect({ path: to.path }) : Net.connect({ host: "127.0.0.1", port: to.port })
      conn.once("connect", () => {
        conn.destroy()
        resolve(true)
      })
      conn.once("error", () => resolve(false))
    })
    if (up) return
    if (Date.now() > deadline) throw new Error(`nothing listens at ${JSON.stringify(to)}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

/** An echo server that keeps half-close: it ends its side once the client has ended its own. */
const echoServer = async (at: { readonly port: 0 } | { readonly path: string }) => {
  const server = Net.createServer({ allowHalfOpen: true }, (conn) => conn.pipe(conn))
  await new Promise<void>((resolve) => "path" in at ? server.listen(at.path, resolve) : server.listen(0, "127.0.0.1", resolve))
  return { server, port: "path" in at ? 0 : (server.address() as Net.AddressInfo).port }
}

/** Sends `data`, half-closes, and collects everything until the other end ends. */
const roundTrip = (to: { readonly port: number } | { readonly path: string }, data: Uint8Array) =>
  new Promise<Uint8Array>((resolve, reject) => {
    const conn = "path" in to
      ? Net.connect({ path: to.path, allowHalfOpen: true })
      : Net.connect({ host: "127.0.0.1", port: to.port, allowHalfOpen: true })
    const chunks: Array<Buffer> = []
    conn.on("data", (chunk) => chunks.push(chunk))
    conn.on("end", () => {
      conn.end()
      resolve(Buffer.concat(chunks))
    })
    conn.on("error", reject)
    conn.end(data)
  })

describeInterop("effect-ssh exec forwarding against OpenSSH sshd", () => {
  let sshd: Sshd
  let dir: string
  let echo: Awaited<ReturnType<typeof echoServer>>
  let unixEcho: Awaited<ReturnType<typeof echoServer>>
  let web: Http.Server
  let webPort: number
  const page = Crypto.randomBytes(2 * 1024 * 1024)
  const payload = Crypto.randomBytes(8 * 1024 * 1024)
  const running = new Set<Cli>()

  const connection = () => [
    "-p", String(sshd.port),
    "-i", sshd.clientKeys.ed25519,
    "--known-hosts", sshd.knownHostsFile
  ]
  const destination = () => `${sshd.user}@${sshd.host}`
  const start = (argv: ReadonlyArray<string>) => {
    const cli = spawnCli(["exec", ...argv])
    running.add(cli)
    void cli.exited.then(() => running.delete(cli))
    return cli
  }

  beforeAll(async () => {
    dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-ssh-cli-forward-"))
    // the sshd account must be able to reach the Unix sockets it connects to
    Fs.chmodSync(dir, 0o777)
    sshd = await startSshd({ config: { AllowTcpForwarding: "yes", AllowStreamLocalForwarding: "yes", StreamLocalBindUnlink: "yes" } })
    echo = await echoServer({ port: 0 })
    unixEcho = await echoServer({ path: Path.join(dir, "echo.sock") })
    Fs.chmodSync(Path.join(dir, "echo.sock"), 0o777)
    web = Http.createServer((_req, res) => res.end(page))
    await new Promise<void>((resolve) => web.listen(0, "127.0.0.1", resolve))
    webPort = (web.address() as Net.AddressInfo).port
  }, 60_000)

  afterAll(async () => {
    for (const cli of running) cli.child.kill("SIGKILL")
    echo?.server.close()
    unixEcho?.server.close()
    web?.close()
    await sshd?.stop()
    Fs.rmSync(dir, { recursive: true, force: true })
  })

  it("-N -L: TCP to TCP, TCP to a Unix socket and a Unix socket to TCP, in one command; SIGINT ends it with 0", async () => {
    const [tcpPort, toUnixPort] = [await freePort(), await freePort()]
    const localSocket = Path.join(dir, "local.sock")
    const cli = start([
      "-N",
      "-L", `${tcpPort}:127.0.0.1:${echo.port}`,
      "-L", `${toUnixPort}:${Path.join(dir, "echo.sock")}`,
      "-L", `${localSocket}:127.0.0.1:${echo.port}`,
      ...connection(), destination()
    ])
    await waitForListener({ port: tcpPort })
    await waitForListener({ port: toUnixPort })
    await waitForListener({ path: localSocket })
    const [viaTcp, viaUnixTarget, viaUnixListener] = await Promise.all([
      roundTrip({ port: tcpPort }, payload),
      roundTrip({ port: toUnixPort }, payload),
      roundTrip({ path: localSocket }, payload)
    ])
    for (const received of [viaTcp, viaUnixTarget, viaUnixListener]) expect(sha256(received)).toBe(sha256(payload))
    cli.child.kill("SIGINT")
    expect((await cli.exited).code).toBe(0)
    expect(cli.stderr()).toBe("")
    expect(Fs.existsSync(localSocket)).toBe(false)
  }, 60_000)

  it("-N -R 0: prints ssh's Allocated port line; connections to that port reach our target; SIGTERM ends it with 0", async () => {
    const cli = start(["-N", "-R", `0:127.0.0.1:${echo.port}`, ...connection(), destination()])
    const match = await cli.waitFor(new RegExp(`^Allocated port (\\d+) for remote forward to 127\\.0\\.0\\.1:${echo.port}$`, "m"))
    const port = Number(match[1])
    const received = await roundTrip({ port }, payload)
    expect(sha256(received)).toBe(sha256(payload))
    cli.child.kill("SIGTERM")
    expect((await cli.exited).code).toBe(0)
  }, 60_000)

  it("-N -D: curl --socks5-hostname fetches a page through the server", async () => {
    const port = await freePort()
    const cli = start(["-N", "-D", `${port}`, ...connection(), destination()])
    await waitForListener({ port })
    const body = await new Promise<Buffer>((resolve, reject) =>
      ChildProcess.execFile(
        "curl",
        ["--silent", "--show-error", "--fail", "--max-time", "20", "--socks5-hostname", `127.0.0.1:${port}`, `http://localhost:${webPort}/`],
        { encoding: "buffer", maxBuffer: 16 * 1024 * 1024 },
        (error, stdout, stderr) => error === null ? resolve(stdout) : reject(new Error(`curl: ${error.message} ${stderr}`))
      )
    )
    expect(sha256(body)).toBe(sha256(page))
    cli.child.kill("SIGINT")
    expect((await cli.exited).code).toBe(0)
  }, 60_000)

  it("-W as OpenSSH's ProxyCommand: ssh reaches the server through our stdio", async () => {
    const proxy = [process.execPath, mainScript, "exec", "-W", "%h:%p", ...connection(), destination()].join(" ")
    const { ssh } = opensshPaths()
    const result = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
      ChildProcess.execFile(
        ssh!,
        ["-o", `ProxyCommand=${proxy}`, ...sshClientArgs(sshd, { identity: sshd.clientKeys.ed25519 }), destination(), "echo ok"],
        { timeout: 30_000 },
        (error, stdout, stderr) => resolve({ code: error === null ? 0 : (error.code as number), stdout, stderr })
      )
    )
    expect(result).toMatchObject({ code: 0, stdout: "ok\n" })
  }, 60_000)

  it("-W to a closed port: exit 255, the address in the message", async () => {
    const port = await freePort()
    const result = await runCli(["exec", "-W", `127.0.0.1:${port}`, ...connection(), destination()])
    expect(result.code).toBe(255)
    expect(result.stdout).toBe("")
    expect(result.stderr).toMatch(new RegExp(`^effect-ssh: ForwardFailed: .*127\\.0\\.0\\.1:${port}`))
  }, 60_000)

  it("ExitOnForwardFailure=yes and a port in use: exit 255 before the command, the address in the message", async () => {
    const taken = Net.createServer()
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve))
    const port = (taken.address() as Net.AddressInfo).port
    try {
      const strict = await runCli([
        "exec", "-o", "ExitOnForwardFailure=yes", "-L", `${port}:127.0.0.1:${echo.port}`, ...connection(), destination(), "echo", "ran"
      ])
      expect(strict.code).toBe(255)
      expect(strict.stdout).toBe("")
      expect(strict.stderr).toContain(`effect-ssh: ForwardFailed: cannot listen on 127.0.0.1:${port}`)
      // the default (no): a warning, and the command runs
      const lenient = await runCli(["exec", "-L", `${port}:127.0.0.1:${echo.port}`, ...connection(), destination(), "echo", "ran"])
      expect(lenient).toMatchObject({ code: 0, stdout: "ran\n" })
      expect(lenient.stderr).toContain(`effect-ssh: ForwardFailed: cannot listen on 127.0.0.1:${port}`)
    } finally {
      taken.close()
    }
  }, 60_000)

  it("a forward alongside a command lasts as long as the command", async () => {
    const port = await freePort()
    const cli = start(["-L", `${port}:127.0.0.1:${echo.port}`, ...connection(), destination(), "sleep", "30"])
    await waitForListener({ port })
    const received = await roundTrip({ port }, payload.subarray(0, 1024 * 1024))
    expect(sha256(received)).toBe(sha256(payload.subarray(0, 1024 * 1024)))
    cli.child.kill("SIGKILL")
    await cli.exited
  }, 60_000)

  it("LocalForward from the configuration is set up beside -o LocalForward, and one given both ways once", async () => {
    const [fromFile, fromOption] = [await freePort(), await freePort()]
    const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-ssh-forward-config-"))
    const config = Path.join(dir, "config")
    const forward = (port: number) => `${port} 127.0.0.1:${echo.port}`
    // the option's forwarding is in the file too: set up once, not refused as a port in use
    Fs.writeFileSync(config, `Host *\n  LocalForward ${forward(fromFile)}\n  LocalForward ${forward(fromOption)}\n  ExitOnForwardFailure yes\n`)
    const cli = start(["-F", config, "-o", `LocalForward=${forward(fromOption)}`, ...connection(), destination(), "sleep", "30"])
    for (const port of [fromFile, fromOption]) {
      await waitForListener({ port })
      const received = await roundTrip({ port }, payload.subarray(0, 64 * 1024))
      expect(sha256(received)).toBe(sha256(payload.subarray(0, 64 * 1024)))
    }
    expect(cli.stderr()).not.toMatch(/not set up from ssh_config|in use/)
    cli.child.kill("SIGKILL")
    await cli.exited
    Fs.rmSync(dir, { recursive: true, force: true })
  }, 60_000)
})

describe("effect-ssh exec: forwarding usage errors and -X, without a server", () => {
  it.each([
    [["-L", "8080"]],
    [["-R", "1080"]],
    [["-D", "0"]],
    [["-W", "nohostport"]],
    [["-o", "RemoteForward=1080"]]
  ])("%j exits 2 with the usage text", async (flags) => {
    const result = await runCli(["exec", ...flags, "-N", "127.0.0.1"])
    expect(result.code).toBe(2)
    expect(result.stderr).toMatch(/^effect-ssh: /)
    expect(result.stderr).toContain("usage: effect-ssh exec")
  })

  it("-X says X11 forwarding is not available, exit 255", async () => {
    const result = await runCli(["exec", "-X", "-p", "1", "127.0.0.1", "xterm"])
    expect(result.code).toBe(255)
    expect(result.stderr).toBe("effect-ssh: NotImplemented: X11 forwarding (-X, -Y) is not available yet\n")
  })
})
