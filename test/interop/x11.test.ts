/**
 * X11 forwarding against OpenSSH's sshd (X11Forwarding yes, X11UseLocalhost
 * yes): our client asks for it on a session, sshd listens on its proxy
 * display (localhost:10 and up) and files our fake cookie with xauth, and a
 * small program there plays the X client. Here a fake X server listens on
 * /tmp/.X11-unix/X<n> for the display ":<n>", whose real cookie is in a
 * temporary XAUTHORITY file: it must only ever see the real cookie. Then the
 * other way round: OpenSSH's `ssh -Y` through our server.
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import * as ChildProcess from "node:child_process"
import * as Crypto from "node:crypto"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { promisify } from "node:util"
import { afterAll, afterEach, beforeAll, expect, it } from "vitest"
import * as Auth from "../../src/Auth/ClientAuth.ts"
import * as PrivateKey from "../../src/Auth/PrivateKey.ts"
import * as PublicKey from "../../src/Auth/PublicKey.ts"
import type * as Session from "../../src/Channel/Session.ts"
import * as SshClient from "../../src/Client.ts"
import * as NodeSsh from "../../src/NodeSsh.ts"
import * as SshServer from "../../src/Server.ts"
import * as ProcessSession from "../../src/Server/ProcessSession.ts"
import type * as SshError from "../../src/SshError.ts"
import { runFailure, runScoped, sshdOptions } from "../helpers.ts"
import { describeInterop, opensshPaths, type Sshd, startSshd } from "./sshd.ts"

const execFile = promisify(ChildProcess.execFile)
const XAUTH = "/usr/bin/xauth"
const X11_UNIX = "/tmp/.X11-unix"
const SETUP_LENGTH = 12 + 20 + 16 // header, "MIT-MAGIC-COOKIE-1" padded to 4, 16 bytes of cookie
const GREETING = "hello from the fake X server"

/**
 * The X client run by the server: reads its display's cookie from `xauth list` (the server filed our fake one
 * there; `xauth` options may follow the first argument), sends an X setup packet to the proxy display with it
 * (or with a wrong one when asked), and prints the display, what came back and the cookie it sent.
 */
const X_CLIENT = String.raw`
import os, socket, subprocess, sys
display = os.environ["DISPLAY"]
number = int(display.rsplit(":", 1)[1].split(".")[0])
entry = subprocess.run(["/usr/bin/xauth"] + sys.argv[2:] + ["list"], capture_output=True, text=True).stdout.split()
cookie = bytes.fromhex(entry[2])
if sys.argv[1] == "wrong":
    cookie = bytes(b ^ 0xff for b in cookie)
name = b"MIT-MAGIC-COOKIE-1"
setup = b"l\0" + (11).to_bytes(2, "little") + (0).to_bytes(2, "little") + len(name).to_bytes(2, "little") \
    + len(cookie).to_bytes(2, "little") + b"\0\0" + name + b"\0\0" + cookie
conn = socket.create_connection(("127.0.0.1", 6000 + number))
conn.sendall(setup)
answer = b""
while True:
    chunk = conn.recv(4096)
    if not chunk:
        break
    answer += chunk
print(display)
print(answer.decode())
print(cookie.hex())
`

interface FakeXServer {
  readonly display: string
  /** The cookie of each setup packet received, in hex. */
  readonly cookies: Array<string>
  /** How many connections it has accepted. */
  readonly connections: () => number
  readonly close: () => void
}

/** The first display number from 60 with no X socket or lock file. */
const freeDisplayNumber = (): number => {
  for (let n = 60; n < 1000; n++) {
    if (!fs.existsSync(path.join(X11_UNIX, `X${n}`)) && !fs.existsSync(`/tmp/.X${n}-lock`)) return n
  }
  throw new Error("no free X display number")
}

/** Listens on /tmp/.X11-unix/X<n>; answers a setup packet carrying `realHex` with GREETING, drops the others. */
const startFakeXServer = async (realHex: string): Promise<FakeXServer> => {
  // as an X server would; removed again when we made it
  const madeDirectory = !fs.existsSync(X11_UNIX)
  fs.mkdirSync(X11_UNIX, { recursive: true, mode: 0o1777 })
  const n = freeDisplayNumber()
  const socketPath = path.join(X11_UNIX, `X${n}`)
  const cookies: Array<string> = []
  let connections = 0
  const server = net.createServer((conn) => {
    connections++
    let received = Buffer.alloc(0)
    conn.on("data", (chunk) => {
      received = Buffer.concat([received, chunk])
      if (received.length < SETUP_LENGTH) return
      const cookie = received.subarray(32, 48).toString("hex")
      cookies.push(cookie)
      if (cookie === realHex && received.subarray(12, 30).toString("latin1") === "MIT-MAGIC-COOKIE-1") conn.end(GREETING)
      else conn.destroy()
    })
    conn.on("error", () => {})
  })
  await new Promise<void>((resolve) => server.listen(socketPath, resolve))
  return {
    display: `:${n}`,
    cookies,
    connections: () => connections,
    close: () => {
      server.close()
      fs.rmSync(socketPath, { force: true })
      if (madeDirectory && fs.readdirSync(X11_UNIX).length === 0) fs.rmdirSync(X11_UNIX)
    }
  }
}

describeInterop("X11 forwarding against OpenSSH sshd", () => {
  let sshd: Sshd
  let dir: string
  let xserver: FakeXServer
  let auth: ReadonlyArray<Auth.AuthMethod>
  const realHex = Crypto.randomBytes(16).toString("hex")
  const saved = { DISPLAY: process.env.DISPLAY, XAUTHORITY: process.env.XAUTHORITY }

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "effect-ssh-x11-"))
    // the sshd account keeps its xauth file (with our fake cookie) here, not in its home
    fs.chmodSync(dir, 0o777)
    sshd = await startSshd({
      config: {
        X11Forwarding: "yes",
        X11UseLocalhost: "yes",
        XAuthLocation: XAUTH,
        SetEnv: `XAUTHORITY=${path.join(dir, "remote.xauth")}`
      }
    })
    xserver = await startFakeXServer(realHex)
    const localXauthority = path.join(dir, "local.xauth")
    await execFile(XAUTH, ["-f", localXauthority, "add", xserver.display, "MIT-MAGIC-COOKIE-1", realHex])
    process.env.XAUTHORITY = localXauthority
    auth = [Auth.privateKey(PrivateKey.parse(fs.readFileSync(sshd.clientKeys.ed25519, "utf8")))]
  })
  afterEach(() => {
    process.env.DISPLAY = saved.DISPLAY
    if (saved.DISPLAY === undefined) delete process.env.DISPLAY
  })
  afterAll(async () => {
    if (saved.XAUTHORITY === undefined) delete process.env.XAUTHORITY
    else process.env.XAUTHORITY = saved.XAUTHORITY
    xserver?.close()
    await sshd?.stop()
    fs.rmSync(dir, { recursive: true, force: true })
  })

  const runXClient = (cookie: "right" | "wrong", x11: Session.SessionOptions["x11"]) =>
    runScoped(Effect.gen(function*() {
      const ssh = yield* SshClient.connect(sshdOptions(sshd, auth))
      return yield* ssh.run(`/usr/bin/python3 - ${cookie}`, { x11, stdin: X_CLIENT })
    }))

  it("forwards an X client's connection to the local display, with the real cookie in place of the fake one", async () => {
    const before = xserver.cookies.length
    const result = await runXClient("right", { display: xserver.display })
    expect(result.exitCode).toBe(0)
    const [remoteDisplay, answer, remoteCookie] = result.stdout.split("\n")
    // sshd's proxy display, on loopback
    expect(remoteDisplay).toMatch(/^localhost:\d+\.0$/)
    expect(answer).toBe(GREETING)
    expect(xserver.cookies.slice(before)).toEqual([realHex])
    // the server side only ever had the fake cookie
    expect(remoteCookie).toMatch(/^[0-9a-f]{32}$/)
    expect(remoteCookie).not.toBe(realHex)
  }, 30_000)

  it("forwards to $DISPLAY with x11: true", async () => {
    process.env.DISPLAY = xserver.display
    const before = xserver.cookies.length
    const result = await runXClient("right", true)
    expect(result.stdout.split("\n")[1]).toBe(GREETING)
    expect(xserver.cookies.slice(before)).toEqual([realHex])
  }, 30_000)

  it("closes a forwarded connection whose cookie is not the fake one: the X server sees nothing", async () => {
    const before = xserver.connections()
    const result = await runXClient("wrong", { display: xserver.display })
    const [remoteDisplay, answer] = result.stdout.split("\n")
    expect(remoteDisplay).toMatch(/^localhost:\d+\.0$/)
    expect(answer).toBe("")
    expect(xserver.connections()).toBe(before)
  }, 30_000)

  it("fails before the session when there is no display", async () => {
    delete process.env.DISPLAY
    const error = await runFailure(Effect.gen(function*() {
      const ssh = yield* SshClient.connect(sshdOptions(sshd, auth))
      return yield* ssh.run("true", { x11: true })
    })) as SshError.SshError
    expect(error.reason._tag).toBe("ConfigParseError")
    expect(error.message).toContain("DISPLAY is not set")
  }, 30_000)
})

describeInterop("OpenSSH ssh -Y through our server", () => {
  let dir: string
  let scope: Scope.Closeable
  let port: number
  let identity: string
  let knownHosts: string
  let xserver: FakeXServer
  let clientXauthority: string
  let serverXauthority: string
  const realHex = Crypto.randomBytes(16).toString("hex")
  const decisions: Array<string> = []

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "effect-ssh-x11-server-"))
    identity = path.join(dir, "id_ed25519")
    await execFile(opensshPaths().sshKeygen!, ["-q", "-t", "ed25519", "-N", "", "-f", identity])
    const clientKey = PublicKey.parse(fs.readFileSync(`${identity}.pub`, "utf8"))
    const hostKey = PrivateKey.generate("ssh-ed25519")
    xserver = await startFakeXServer(realHex)
    clientXauthority = path.join(dir, "client.xauth")
    await execFile(XAUTH, ["-f", clientXauthority, "add", xserver.display, "MIT-MAGIC-COOKIE-1", realHex])
    // the server files the session's cookie in a file of its own, through an xauth that names it
    serverXauthority = path.join(dir, "server.xauth")
    const xauthLocation = path.join(dir, "xauth")
    fs.writeFileSync(xauthLocation, `#!/bin/sh\nexec ${XAUTH} -f ${serverXauthority} "$@"\n`, { mode: 0o755 })
    scope = Effect.runSync(Scope.make())
    const server = await Effect.runPromise(Scope.provide(SshServer.serve({
      port: 0,
      hostKeys: [hostKey],
      auth: { publicKey: ({ key }) => Effect.succeed(PublicKey.equals(key, clientKey)) },
      session: ProcessSession.handlers({ shell: "/bin/sh" }),
      forwarding: {
        x11: ({ user, singleConnection, authProtocol, screen }) =>
          Effect.sync(() => {
            decisions.push(`x11 ${user} ${singleConnection} ${authProtocol} ${screen}`)
            return true
          }),
        xauthLocation
      }
    }), scope).pipe(Effect.provide(NodeSsh.layer)))
    port = server.address.port
    knownHosts = path.join(dir, "known_hosts")
    fs.writeFileSync(knownHosts, `[127.0.0.1]:${port} ${PublicKey.toOpenSsh(hostKey.publicKey)}\n`)
  }, 60_000)

  afterAll(async () => {
    xserver?.close()
    if (scope !== undefined) await Effect.runPromise(Scope.close(scope, Exit.void))
    fs.rmSync(dir, { recursive: true, force: true })
  })

  /** `ssh -Y` running the X client on our server, the script on its stdin. */
  const sshY = (cookie: "right" | "wrong") =>
    new Promise<{ stdout: string; stderr: string; code: number | null }>((resolve, reject) => {
      const args = [
        "-F", "/dev/null",
        "-p", String(port),
        "-o", `UserKnownHostsFile=${knownHosts}`,
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "StrictHostKeyChecking=yes",
        "-o", "IdentityAgent=none",
        "-o", "BatchMode=yes",
        "-o", "IdentitiesOnly=yes",
        "-o", `XAuthLocation=${XAUTH}`,
        "-i", identity,
        "-Y",
        "me@127.0.0.1",
        `/usr/bin/python3 - ${cookie} -f ${serverXauthority}`
      ]
      const child = ChildProcess.spawn(opensshPaths().ssh!, args, {
        env: { ...process.env, DISPLAY: xserver.display, XAUTHORITY: clientXauthority },
        stdio: ["pipe", "pipe", "pipe"]
      })
      let stdout = ""
      let stderr = ""
      child.stdout.on("data", (d) => stdout += d)
      child.stderr.on("data", (d) => stderr += d)
      child.on("error", reject)
      child.on("close", (code) => resolve({ stdout, stderr, code }))
      child.stdin.end(X_CLIENT)
    })

  it("an X client on our server reaches the display of OpenSSH's client, which swaps in the real cookie", async () => {
    const before = xserver.cookies.length
    const result = await sshY("right")
    expect(result.code, result.stderr).toBe(0)
    const [display, answer, cookie] = result.stdout.split("\n")
    // our proxy display: loopback, from X11DisplayOffset 10 on
    expect(display).toMatch(/^localhost:\d+\.0$/)
    expect(Number(display!.slice("localhost:".length, -2))).toBeGreaterThanOrEqual(10)
    expect(answer).toBe(GREETING)
    expect(cookie).toMatch(/^[0-9a-f]{32}$/)
    expect(cookie).not.toBe(realHex)
    expect(xserver.cookies.slice(before)).toEqual([realHex])
    expect(decisions).toContain("x11 me false MIT-MAGIC-COOKIE-1 0")
    // the cookie our server filed is the one the client sent (the fake one)
    const { stdout: filed } = await execFile(XAUTH, ["-f", serverXauthority, "list"])
    expect(filed).toContain(cookie)
  }, 30_000)

  it("OpenSSH's client refuses a connection with a wrong cookie: its display gets no setup packet", async () => {
    const before = xserver.cookies.length
    const result = await sshY("wrong")
    const [display, answer] = result.stdout.split("\n")
    expect(display).toMatch(/^localhost:\d+\.0$/)
    expect(answer).toBe("")
    // (OpenSSH connects to the display when the channel opens, before the check: only the bytes are kept back)
    expect(xserver.cookies.length).toBe(before)
  }, 30_000)
})
