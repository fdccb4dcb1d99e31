/**
 * OpenSSH's `ssh` forwarding through our server, data compared by hash:
 * `-L` (TCP and Unix socket), `-R` (port 0 too, and to a Unix socket),
 * `-D` with curl, `-W` as another ssh's ProxyCommand; the policy refuses what
 * it does not allow, and the server dials and listens for real.
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import * as ChildProcess from "node:child_process"
import * as Crypto from "node:crypto"
import * as fs from "node:fs"
import * as http from "node:http"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { promisify } from "node:util"
import { afterAll, beforeAll, expect, it } from "vitest"
import * as PrivateKey from "../../src/Auth/PrivateKey.ts"
import * as PublicKey from "../../src/Auth/PublicKey.ts"
import * as NodeSsh from "../../src/NodeSsh.ts"
import * as SshServer from "../../src/Server.ts"
import { accepts, echoServer, roundTrip, waitFor } from "./forwardingFixtures.ts"
import { describeInterop, opensshPaths } from "./sshd.ts"

const execFile = promisify(ChildProcess.execFile)
const sha256 = (data: Uint8Array) => Crypto.createHash("sha256").update(data).digest("hex")
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = net.createServer()
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port
      s.close(() => resolve(port))
    })
  })

describeInterop("OpenSSH ssh forwarding through our server", () => {
  let dir: string
  let scope: Scope.Closeable
  let port: number
  let identity: string
  let knownHosts: string
  let echo: Awaited<ReturnType<typeof echoServer>>
  let web: http.Server
  let webPort: number
  const page = Crypto.randomBytes(2 * 1024 * 1024)
  const decisions: Array<string> = []
  const children: Array<ChildProcess.ChildProcess> = []

  const sshArgs = () => [
    "-F", "/dev/null",
    "-p", String(port),
    "-o", `UserKnownHostsFile=${knownHosts}`,
    "-o", "GlobalKnownHostsFile=/dev/null",
    "-o", "StrictHostKeyChecking=yes",
    "-o", "IdentityAgent=none",
    "-o", "BatchMode=yes",
    "-o", "IdentitiesOnly=yes",
    "-o", "ExitOnForwardFailure=yes",
    "-i", identity
  ]

  /** `ssh -N` with the given forwarding flags, until the test ends. */
  const forwarding = (...flags: Array<string>) => {
    const child = ChildProcess.spawn(opensshPaths().ssh!, [...sshArgs(), "-N", ...flags, "me@127.0.0.1"], { stdio: ["ignore", "ignore", "pipe"] })
    let stderr = ""
    child.stderr!.on("data", (d) => stderr += d)
    children.push(child)
    return { child, stderr: () => stderr }
  }

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "effect-ssh-fwd-server-"))
    identity = path.join(dir, "id_ed25519")
    await execFile(opensshPaths().sshKeygen!, ["-q", "-t", "ed25519", "-N", "", "-f", identity])
    const clientKey = PublicKey.parse(fs.readFileSync(`${identity}.pub`, "utf8"))
    const hostKey = PrivateKey.generate("ssh-ed25519")
    echo = await echoServer({ port: 0 })
    await echoServer({ path: path.join(dir, "echo.sock") })
    web = http.createServer((_req, res) => res.end(page))
    await new Promise<void>((resolve) => web.listen(0, "127.0.0.1", resolve))
    webPort = (web.address() as net.AddressInfo).port
    scope = Effect.runSync(Scope.make())
    const server = await Effect.runPromise(Scope.provide(SshServer.serve({
      port: 0,
      hostKeys: [hostKey],
      auth: { publicKey: ({ key }) => Effect.succeed(PublicKey.equals(key, clientKey)) },
      session: { exec: (session, command) => Effect.as(session.write(`ran ${command}\n`), 0) },
      forwarding: {
        local: ({ host, port: targetPort, user }) =>
          Effect.sync(() => {
            decisions.push(`local ${user} ${host}:${targetPort}`)
            return targetPort !== 1
          }),
        remote: ({ address, port: bindPort }) =>
          Effect.sync(() => {
            decisions.push(`remote ${address}:${bindPort}`)
            return true
          }),
        streamLocal: ({ path: socketPath, direction }) =>
          Effect.sync(() => {
            decisions.push(`unix ${direction} ${socketPath}`)
            return socketPath.startsWith(dir)
          })
      }
    }), scope).pipe(Effect.provide(NodeSsh.layer)))
    port = server.address.port
    knownHosts = path.join(dir, "known_hosts")
    fs.writeFileSync(knownHosts, `[127.0.0.1]:${port} ${PublicKey.toOpenSsh(hostKey.publicKey)}\n`)
  }, 60_000)

  afterAll(async () => {
    for (const child of children) child.kill()
    echo?.server.close()
    web?.close()
    await Effect.runPromise(Scope.close(scope, Exit.void))
    fs.rmSync(dir, { recursive: true, force: true })
  })

  it("ssh -L: 8 MiB through our server to a TCP echo comes back intact", async () => {
    const local = await freePort()
    forwarding("-L", `127.0.0.1:${local}:127.0.0.1:${echo.port}`)
    await waitFor({ host: "127.0.0.1", port: local })
    const data = Crypto.randomBytes(8 * 1024 * 1024)
    expect(sha256(await roundTrip({ host: "127.0.0.1", port: local }, data))).toBe(sha256(data))
    expect(decisions).toContain(`local me 127.0.0.1:${echo.port}`)
  }, 60_000)

  it("ssh -L to a Unix socket (direct-streamlocal) and from one", async () => {
    const local = await freePort()
    const listenPath = path.join(dir, "l.sock")
    forwarding("-L", `127.0.0.1:${local}:${path.join(dir, "echo.sock")}`, "-L", `${listenPath}:127.0.0.1:${echo.port}`)
    await waitFor({ host: "127.0.0.1", port: local })
    await waitFor({ path: listenPath })
    const data = Crypto.randomBytes(1024 * 1024)
    expect(sha256(await roundTrip({ host: "127.0.0.1", port: local }, data))).toBe(sha256(data))
    expect(sha256(await roundTrip({ path: listenPath }, data))).toBe(sha256(data))
  }, 60_000)

  it("ssh -R 0: our server allocates the port (ssh prints it), listens, and forwards back to the client's target", async () => {
    const remote = forwarding("-R", `127.0.0.1:0:127.0.0.1:${echo.port}`)
    let allocated: number | undefined
    for (let i = 0; i < 200 && allocated === undefined; i++) {
      const match = /Allocated port (\d+)/.exec(remote.stderr())
      if (match) allocated = Number(match[1])
      else await sleep(50)
    }
    expect(allocated).toBeGreaterThan(0)
    const data = Crypto.randomBytes(4 * 1024 * 1024)
    expect(sha256(await roundTrip({ host: "127.0.0.1", port: allocated! }, data))).toBe(sha256(data))
    // the client leaving closes the listener
    remote.child.kill()
    await new Promise((resolve) => remote.child.once("exit", resolve))
    await waitFor({ host: "127.0.0.1", port: allocated! }, false)
  }, 60_000)

  it("ssh -R to a Unix socket on our server (streamlocal-forward)", async () => {
    const remotePath = path.join(dir, "r.sock")
    forwarding("-R", `${remotePath}:127.0.0.1:${echo.port}`)
    await waitFor({ path: remotePath })
    const data = Crypto.randomBytes(512 * 1024)
    expect(sha256(await roundTrip({ path: remotePath }, data))).toBe(sha256(data))
  }, 60_000)

  it("ssh -D: curl --socks5-hostname through our server", async () => {
    const socks = await freePort()
    forwarding("-D", `127.0.0.1:${socks}`)
    await waitFor({ host: "127.0.0.1", port: socks })
    const { stdout } = await execFile("curl", ["-sS", "--max-time", "20", "--socks5-hostname", `127.0.0.1:${socks}`, `http://localhost:${webPort}/`], {
      encoding: "buffer",
      maxBuffer: 16 * 1024 * 1024
    })
    expect(sha256(stdout)).toBe(sha256(page))
  }, 60_000)

  it("ssh -W as another ssh's ProxyCommand: the inner ssh runs a command through it", async () => {
    const proxy = [opensshPaths().ssh!, ...sshArgs(), "-W", "%h:%p", "me@127.0.0.1"].map((a) => `'${a}'`).join(" ")
    // the inner connection reaches our server itself, through -W
    const { stdout } = await execFile(opensshPaths().ssh!, [
      ...sshArgs(),
      "-o", `ProxyCommand=${proxy}`,
      "me@127.0.0.1",
      "echo", "through", "-W"
    ], { timeout: 30_000 })
    expect(stdout).toBe("ran echo through -W\n")
    expect(decisions).toContain(`local me 127.0.0.1:${port}`)
  }, 60_000)

  it("the policy refuses: ssh -L to a port it denies gets 'administratively prohibited'", async () => {
    const local = await freePort()
    const denied = forwarding("-L", `127.0.0.1:${local}:127.0.0.1:1`)
    await waitFor({ host: "127.0.0.1", port: local })
    await new Promise<void>((resolve) => {
      const conn = net.connect({ host: "127.0.0.1", port: local })
      conn.on("close", () => resolve())
      conn.on("error", () => resolve())
    })
    for (let i = 0; i < 100 && !/prohibited/.test(denied.stderr()); i++) await sleep(50)
    expect(denied.stderr()).toMatch(/administratively prohibited/)
  }, 60_000)
})
