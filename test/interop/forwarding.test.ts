/**
 * Forwarding against OpenSSH's sshd, data compared by hash: local (-L, TCP
 * and Unix socket), remote (-R, port 0 too), dynamic SOCKS (-D, with curl
 * --socks5-hostname and --socks4a), forwardOut as the socket of a second
 * connection (ProxyJump), and the typed errors of a refused forward and an
 * unreachable target.
 */
import * as Effect from "effect/Effect"
import * as ChildProcess from "node:child_process"
import * as Crypto from "node:crypto"
import * as fs from "node:fs"
import * as http from "node:http"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { promisify } from "node:util"
import { afterAll, beforeAll, expect, it } from "vitest"
import * as Auth from "../../src/Auth/ClientAuth.ts"
import * as PrivateKey from "../../src/Auth/PrivateKey.ts"
import * as SshClient from "../../src/Client.ts"
import type * as SshError from "../../src/SshError.ts"
import { runFailure, runScoped, sshdOptions } from "../helpers.ts"
import { accepts, echoServer, roundTrip, waitFor } from "./forwardingFixtures.ts"
import { describeInterop, type Sshd, startSshd } from "./sshd.ts"

const execFile = promisify(ChildProcess.execFile)
const sha256 = (data: Uint8Array) => Crypto.createHash("sha256").update(data).digest("hex")

describeInterop("forwarding against OpenSSH sshd", () => {
  let sshd: Sshd
  let dir: string
  let echo: Awaited<ReturnType<typeof echoServer>>
  let unixEcho: Awaited<ReturnType<typeof echoServer>>
  let web: http.Server
  let webPort: number
  const page = Crypto.randomBytes(3 * 1024 * 1024)
  let auth: ReadonlyArray<Auth.AuthMethod>

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "effect-ssh-forward-"))
    // the sshd account must be able to reach the Unix sockets it connects to
    fs.chmodSync(dir, 0o777)
    sshd = await startSshd({ config: { AllowTcpForwarding: "yes", AllowStreamLocalForwarding: "yes", StreamLocalBindUnlink: "yes" } })
    echo = await echoServer({ port: 0 })
    unixEcho = await echoServer({ path: path.join(dir, "echo.sock") })
    fs.chmodSync(path.join(dir, "echo.sock"), 0o777)
    web = http.createServer((_req, res) => res.end(page))
    await new Promise<void>((resolve) => web.listen(0, "127.0.0.1", resolve))
    webPort = (web.address() as net.AddressInfo).port
    auth = [Auth.privateKey(PrivateKey.parse(fs.readFileSync(sshd.clientKeys.ed25519, "utf8")))]
  }, 60_000)

  afterAll(async () => {
    echo?.server.close()
    unixEcho?.server.close()
    web?.close()
    await sshd?.stop()
    fs.rmSync(dir, { recursive: true, force: true })
  })

  it("-L: 8 MiB through a local TCP forward comes back intact, half-close both ways", async () => {
    const data = Crypto.randomBytes(8 * 1024 * 1024)
    const back = await runScoped(Effect.gen(function*() {
      const ssh = yield* SshClient.connect(sshdOptions(sshd, auth))
      const { address } = yield* ssh.forwardLocal({ listen: { port: 0 }, to: { host: "127.0.0.1", port: echo.port } })
      if ("path" in address) throw new Error("expected a TCP address")
      expect(address.host).toBe("127.0.0.1")
      return yield* Effect.promise(() => roundTrip({ host: "127.0.0.1", port: address.port }, data))
    }))
    expect(sha256(back)).toBe(sha256(data))
  }, 60_000)

  it("-L with Unix sockets on both ends (direct-streamlocal@openssh.com)", async () => {
    const data = Crypto.randomBytes(1024 * 1024)
    const listenPath = path.join(dir, "local.sock")
    const back = await runScoped(Effect.gen(function*() {
      const ssh = yield* SshClient.connect(sshdOptions(sshd, auth))
      yield* ssh.forwardLocal({ listen: { path: listenPath }, to: { path: path.join(dir, "echo.sock") } })
      return yield* Effect.promise(() => roundTrip({ path: listenPath }, data))
    }))
    expect(sha256(back)).toBe(sha256(data))
    // the scope removed the socket it created
    expect(fs.existsSync(listenPath)).toBe(false)
  }, 60_000)

  it("-R with port 0: sshd allocates the port, connections to it reach our target; the scope cancels it", async () => {
    const data = Crypto.randomBytes(4 * 1024 * 1024)
    let port = 0
    const back = await runScoped(Effect.gen(function*() {
      const ssh = yield* SshClient.connect(sshdOptions(sshd, auth))
      const { address } = yield* ssh.forwardRemote({ bind: { host: "127.0.0.1", port: 0 }, to: { host: "127.0.0.1", port: echo.port } })
      if ("path" in address) throw new Error("expected a TCP address")
      port = address.port
      expect(port).toBeGreaterThan(0)
      const results = yield* Effect.promise(() => Promise.all([0, 1, 2].map(() => roundTrip({ host: "127.0.0.1", port: address.port }, data))))
      return results
    }))
    for (const b of back) expect(sha256(b)).toBe(sha256(data))
    // cancelled: nothing listens there any more
    expect(await accepts({ host: "127.0.0.1", port })).toBe(false)
  }, 60_000)

  it("-R to a Unix socket on the server (streamlocal-forward@openssh.com), connections as a Stream", async () => {
    const remotePath = path.join(dir, "remote.sock")
    const data = Crypto.randomBytes(256 * 1024)
    const back = await runScoped(Effect.gen(function*() {
      const ssh = yield* SshClient.connect(sshdOptions(sshd, auth))
      const { address } = yield* ssh.forwardRemote({ bind: { path: remotePath }, to: { path: path.join(dir, "echo.sock") } })
      expect(address).toEqual({ path: remotePath })
      return yield* Effect.promise(() => roundTrip({ path: remotePath }, data))
    }))
    expect(sha256(back)).toBe(sha256(data))
  }, 60_000)

  it("-D: curl --socks5-hostname and --socks4a fetch a page through the SOCKS forward", async () => {
    const hashes = await runScoped(Effect.gen(function*() {
      const ssh = yield* SshClient.connect(sshdOptions(sshd, auth))
      const { address } = yield* ssh.socks({ listen: { port: 0 } })
      if ("path" in address) throw new Error("expected a TCP address")
      const fetch = (flag: string) =>
        Effect.promise(() =>
          execFile("curl", ["-sS", "--max-time", "20", flag, `127.0.0.1:${address.port}`, `http://localhost:${webPort}/page`], {
            encoding: "buffer",
            maxBuffer: 16 * 1024 * 1024
          }).then(({ stdout }) => sha256(stdout))
        )
      return [yield* fetch("--socks5-hostname"), yield* fetch("--socks4a"), yield* fetch("--socks5")]
    }))
    expect(hashes).toEqual([sha256(page), sha256(page), sha256(page)])
  }, 60_000)

  it("forwardOut is a Socket: a second connection to sshd through the first (ProxyJump)", async () => {
    const out = await runScoped(Effect.gen(function*() {
      const jump = yield* SshClient.connect(sshdOptions(sshd, auth))
      const socket = yield* jump.forwardOut({ host: "127.0.0.1", port: sshd.port })
      const inner = yield* SshClient.connect(sshdOptions(sshd, auth, { socket }))
      return yield* inner.run("echo through the jump")
    }))
    expect(out.stdout).toBe("through the jump\n")
  }, 60_000)

  it("1,000 concurrent connections through one -L tunnel, 64 KiB echoed each; closing the scope leaves no socket or channel", async () => {
    const tcpHandles = () => process.getActiveResourcesInfo().filter((r) => r.startsWith("TCP")).length
    const before = tcpHandles()
    const result = await runScoped(Effect.gen(function*() {
      const ssh = yield* SshClient.connect(sshdOptions(sshd, auth))
      const outcome = yield* Effect.scoped(Effect.gen(function*() {
        const { address } = yield* ssh.forwardLocal({ listen: { port: 0 }, to: { host: "127.0.0.1", port: echo.port } })
        if ("path" in address) throw new Error("expected a TCP address")
        const payloads = Array.from({ length: 1000 }, () => Crypto.randomBytes(64 * 1024))
        const backs = yield* Effect.promise(() => Promise.all(payloads.map((p) => roundTrip({ host: "127.0.0.1", port: address.port }, p))))
        const intact = backs.filter((b, i) => sha256(b) === sha256(payloads[i]!)).length
        return { intact, port: address.port }
      }))
      // the tunnel's scope is closed: its listener, connections and channels are gone
      for (let i = 0; i < 100 && ssh.connection.channelCount() > 0; i++) yield* Effect.sleep("20 millis")
      return { ...outcome, channelsAfter: ssh.connection.channelCount() }
    }))
    expect(result.intact).toBe(1000)
    expect(result.channelsAfter).toBe(0)
    // the SSH connection is closed too by now: every TCP handle this test opened is released
    for (let i = 0; i < 100 && tcpHandles() > before; i++) await new Promise((r) => setTimeout(r, 20))
    expect(tcpHandles()).toBeLessThanOrEqual(before)
    expect(await accepts({ host: "127.0.0.1", port: result.port })).toBe(false)
  }, 120_000)

  it("typed errors: an unreachable target, a refused remote listener, a local port in use", async () => {
    const closedPort = await new Promise<number>((resolve) => {
      const s = net.createServer()
      s.listen(0, "127.0.0.1", () => {
        const port = (s.address() as net.AddressInfo).port
        s.close(() => resolve(port))
      })
    })
    const unreachable = await runFailure(Effect.gen(function*() {
      const ssh = yield* SshClient.connect(sshdOptions(sshd, auth))
      return yield* ssh.forwardOut({ host: "127.0.0.1", port: closedPort })
    })) as SshError.SshError
    expect(unreachable.reason).toMatchObject({ _tag: "ForwardFailed", kind: "connect", address: `127.0.0.1:${closedPort}` })
    expect(unreachable.message).toContain(`127.0.0.1:${closedPort}`)

    // sshd refuses to listen on a privileged port for a non-root user, or on a port that is taken
    const refused = await runFailure(Effect.gen(function*() {
      const ssh = yield* SshClient.connect(sshdOptions(sshd, auth))
      return yield* ssh.forwardRemote({ bind: { host: "127.0.0.1", port: echo.port } })
    })) as SshError.SshError
    expect(refused.reason).toMatchObject({ _tag: "ForwardFailed", kind: "refused", address: `127.0.0.1:${echo.port}` })

    const inUse = await runFailure(Effect.gen(function*() {
      const ssh = yield* SshClient.connect(sshdOptions(sshd, auth))
      return yield* ssh.forwardLocal({ listen: { port: echo.port }, to: { host: "127.0.0.1", port: 1 } })
    })) as SshError.SshError
    expect(inUse.reason).toMatchObject({ _tag: "ForwardFailed", kind: "bind", address: `127.0.0.1:${echo.port}` })
    expect(inUse.message).toContain("EADDRINUSE")
  }, 60_000)
})
