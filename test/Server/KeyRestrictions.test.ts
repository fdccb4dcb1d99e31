/**
 * authorized_keys options enforced by our server, driven by our own client
 * over loopback: a key's options restrict the connection as a user
 * certificate's do (force-command, pty, forwarding), `from=` and
 * `expiry-time=` refuse the key, `environment=` reaches the session, a
 * `cert-authority` line accepts certificates for its principals (its options
 * and the certificate's combined), and `authorizedKeysFile` reads the file at
 * each login.
 */
import * as Effect from "effect/Effect"
import type * as FileSystem from "effect/FileSystem"
import type * as Scope from "effect/Scope"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as AuthorizedKeys from "../../src/Auth/AuthorizedKeys.ts"
import * as Auth from "../../src/Auth/ClientAuth.ts"
import * as Certificate from "../../src/Auth/Certificate.ts"
import * as KeyOptions from "../../src/Auth/KeyOptions.ts"
import * as PrivateKey from "../../src/Auth/PrivateKey.ts"
import * as ServerAuth from "../../src/Auth/ServerAuth.ts"
import type { SshChannel } from "../../src/Channel/Connection.ts"
import * as Requests from "../../src/Channel/Requests.ts"
import type * as ServerSession from "../../src/Channel/ServerSession.ts"
import * as SshClient from "../../src/Client.ts"
import * as SshServer from "../../src/Server.ts"
import * as SshError from "../../src/SshError.ts"
import * as N from "../../src/Wire/MessageNumber.ts"
import * as SecurityKey from "../../src/internal/securityKey.ts"
import { dummySecurityKey, securityAgentKey, startTestAgent } from "../Auth/agentFixtures.ts"
import { runScoped } from "../helpers.ts"
import { clientOptions, serverOptions, userKey } from "./fixtures.ts"

/** An exec handler printing what the session was given. */
const describeSession: ServerSession.SessionHandler<string> = (session, command) =>
  Effect.as(session.write(JSON.stringify({ command, env: session.env }) + "\n"), 0)

const allowAll = () => Effect.succeed(true)

/** Serves `authorized_keys` text (every forwarding allowed by the policy), then runs `f` against the port. */
const withKeys = <A, E>(
  text: string,
  f: (port: number) => Effect.Effect<A, E, Scope.Scope | SshClient.Connector | FileSystem.FileSystem>,
  extra: Partial<SshServer.ServeOptions> = {}
) =>
  runScoped(Effect.flatMap(
    SshServer.serve(serverOptions({
      auth: ServerAuth.authorizedKeys(text),
      session: { exec: describeSession },
      forwarding: { local: allowAll, remote: allowAll },
      ...extra
    })),
    (server) => f(server.address.port)
  ))

const line = (options: ReadonlyArray<string>, key = userKey.publicKey) => AuthorizedKeys.formatLine(key, options) + "\n"

const run = (port: number, command: string, auth = [Auth.privateKey(userKey)]) =>
  Effect.flatMap(SshClient.connect(clientOptions(port, { auth })), (ssh) => ssh.run(command))

const ask = (channel: SshChannel, name: string, data: Uint8Array) => channel.request(name, data, true)
const ptyRequest = Requests.encodePtyRequest({ term: "xterm", columns: 80, rows: 24 })

/** A TCP server on loopback answering every connection with "hello" then closing it. */
let echoPort = 0
let otherPort = 0
const servers: Array<net.Server> = []
const listen = () =>
  new Promise<number>((resolve) => {
    const server = net.createServer((socket) => socket.end("hello"))
    servers.push(server)
    server.listen(0, "127.0.0.1", () => resolve((server.address() as net.AddressInfo).port))
  })
beforeAll(async () => {
  echoPort = await listen()
  otherPort = await listen()
})
afterAll(() => {
  for (const s of servers) s.close()
})

/** Reads what the far end sends through a direct-tcpip channel to `port`. */
const through = (ssh: SshClient.SshConnection, port: number) =>
  Effect.flatMap(ssh.forwardOut({ host: "127.0.0.1", port }), (socket) =>
    Effect.gen(function*() {
      const { pull } = yield* socket.reader
      const batch = yield* pull
      return batch.map((chunk) => typeof chunk === "string" ? chunk : new TextDecoder().decode(chunk)).join("")
    }))

/** The CHANNEL_OPEN_FAILURE code a refused forwarding got. */
const prohibitedCode = (error: SshError.SshError | { readonly _tag: "SocketError" }) =>
  error._tag === "SshError" &&
  error.reason._tag === "ForwardFailed" && error.reason.cause instanceof SshError.ChannelOpenFailed ? error.reason.cause.code : undefined

describe("authorized_keys options on a key", () => {
  it("command= forces the command, keeping the asked one as SSH_ORIGINAL_COMMAND; environment= reaches the session when permitted", async () => {
    const r = await withKeys(
      line(['command="forced one"', 'environment="GREETING=hi there"']),
      (port) => run(port, "asked"),
      { permitUserEnvironment: true }
    )
    const out = JSON.parse(r.stdout)
    expect(out.command).toBe("forced one")
    expect(out.env.SSH_ORIGINAL_COMMAND).toBe("asked")
    expect(out.env.GREETING).toBe("hi there")
  })

  it("environment= is ignored by default (sshd's PermitUserEnvironment no); a predicate lets some names through", async () => {
    const keyLine = line(['environment="LD_PRELOAD=/tmp/evil.so"', 'environment="APP_MODE=blue"'])
    const byDefault = JSON.parse((await withKeys(keyLine, (port) => run(port, "env"))).stdout)
    expect(byDefault.env.LD_PRELOAD).toBeUndefined()
    expect(byDefault.env.APP_MODE).toBeUndefined()
    const some = JSON.parse((await withKeys(keyLine, (port) => run(port, "env"), {
      permitUserEnvironment: (name) => name.startsWith("APP_")
    })).stdout)
    expect(some.env.LD_PRELOAD).toBeUndefined()
    expect(some.env.APP_MODE).toBe("blue")
  })

  it("no-pty refuses a pty; restrict,pty grants one and refuses forwarding", async () => {
    const noPty = await withKeys(line(["no-pty"]), (port) =>
      Effect.gen(function*() {
        const ssh = yield* SshClient.connect(clientOptions(port))
        return yield* ask(yield* ssh.openChannel("session"), "pty-req", ptyRequest)
      }))
    expect(noPty).toBe(false)
    const restricted = await withKeys(line(["restrict", "pty"]), (port) =>
      Effect.gen(function*() {
        const ssh = yield* SshClient.connect(clientOptions(port))
        const pty = yield* ask(yield* ssh.openChannel("session"), "pty-req", ptyRequest)
        const forward = yield* Effect.flip(through(ssh, echoPort))
        return { pty, forward }
      }))
    expect(restricted.pty).toBe(true)
    expect(prohibitedCode(restricted.forward)).toBe(N.ChannelOpenFailure.ADMINISTRATIVELY_PROHIBITED)
  })

  it("from= refuses the key from another address; the same key without from= logs in", async () => {
    const refused = await withKeys(line(['from="10.0.0.0/8,192.168.*"']), (port) => Effect.flip(run(port, "x")))
    expect(refused.reason._tag).toBe("AuthFailed")
    const fromLoopback = await withKeys(line(['from="!10.0.0.1,127.0.0.0/8"']), (port) => run(port, "x"))
    expect(JSON.parse(fromLoopback.stdout).command).toBe("x")
  })

  it("expiry-time in the past refuses the key, in the future accepts it", async () => {
    const expired = await withKeys(line(['expiry-time="20200101Z"']), (port) => Effect.flip(run(port, "x")))
    expect(expired.reason._tag).toBe("AuthFailed")
    const valid = await withKeys(line(['expiry-time="29991231Z"']), (port) => run(port, "x"))
    expect(valid.exitCode).toBe(0)
  })

  it("permitopen lets direct-tcpip reach the listed target only (ADMINISTRATIVELY_PROHIBITED otherwise)", async () => {
    const r = await withKeys(line([`permitopen="127.0.0.1:${echoPort}"`]), (port) =>
      Effect.gen(function*() {
        const ssh = yield* SshClient.connect(clientOptions(port))
        const listed = yield* Effect.scoped(through(ssh, echoPort))
        const other = yield* Effect.flip(Effect.scoped(through(ssh, otherPort)))
        return { listed, other }
      }))
    expect(r.listed).toBe("hello")
    expect(prohibitedCode(r.other)).toBe(N.ChannelOpenFailure.ADMINISTRATIVELY_PROHIBITED)
  })

  it("permitlisten lets tcpip-forward listen on the listed port only", async () => {
    const free = await new Promise<number>((resolve) => {
      const s = net.createServer().listen(0, "127.0.0.1", () => {
        const p = (s.address() as net.AddressInfo).port
        s.close(() => resolve(p))
      })
    })
    const r = await withKeys(line([`permitlisten="localhost:${free}"`]), (port) =>
      Effect.gen(function*() {
        const ssh = yield* SshClient.connect(clientOptions(port))
        const listed = yield* Effect.scoped(Effect.map(ssh.forwardRemote({ bind: { host: "localhost", port: free } }), (f) => "port" in f.address ? f.address.port : undefined))
        const other = yield* Effect.flip(Effect.scoped(ssh.forwardRemote({ bind: { host: "localhost", port: 0 } })))
        return { listed, other: other.reason }
      }))
    expect(r.listed).toBe(free)
    expect(r.other).toMatchObject({ _tag: "ForwardFailed", kind: "refused" })
  })

  it("a line with an option it does not enforce is not used", async () => {
    const r = await withKeys(line(['tunnel="0"']), (port) => Effect.flip(run(port, "x")))
    expect(r.reason._tag).toBe("AuthFailed")
  })
})

describe("a publicKey handler returning restrictions", () => {
  it("enforces them as authorized_keys options are", async () => {
    const restrictions = KeyOptions.parse(["restrict", 'command="only this"']).restrictions
    const r = await runScoped(Effect.flatMap(
      SshServer.serve(serverOptions({ auth: { publicKey: () => Effect.succeed(restrictions) }, session: { exec: describeSession } })),
      (server) =>
        Effect.gen(function*() {
          const ssh = yield* SshClient.connect(clientOptions(server.address.port))
          const pty = yield* ask(yield* ssh.openChannel("session"), "pty-req", ptyRequest)
          return { pty, command: JSON.parse((yield* ssh.run("other")).stdout).command }
        })
    ))
    expect(r).toEqual({ pty: false, command: "only this" })
  })
})

describe("a securityKey handler returning no-touch-required or verify-required", () => {
  const sk = dummySecurityKey("ecdsa_sk1")
  /** Logs in with the security key signing with `flags`, the handler answering `decision`: the error tag, or "ok". */
  const login = (flags: number, decision: ServerAuth.KeyDecision) =>
    runScoped(Effect.gen(function*() {
      const agent = yield* Effect.acquireRelease(
        Effect.promise(() => startTestAgent([securityAgentKey(sk, flags)])),
        (a) => Effect.promise(() => a.stop())
      )
      const server = yield* SshServer.serve(serverOptions({ auth: { securityKey: () => Effect.succeed(decision) } }))
      const connected = yield* Effect.result(SshClient.connect(clientOptions(server.address.port, { auth: [Auth.agent({ socketPath: agent.path })] })))
      return connected._tag === "Success" ? "ok" : connected.failure.reason._tag
    }))
  const present = SecurityKey.FLAG_USER_PRESENT
  const verified = SecurityKey.FLAG_USER_PRESENT | SecurityKey.FLAG_USER_VERIFIED

  it("no-touch-required waives user presence; verify-required demands verification", async () => {
    expect(await login(0, true)).toBe("AuthFailed")
    expect(await login(0, KeyOptions.parse(["no-touch-required"]).restrictions)).toBe("ok")
    expect(await login(present, KeyOptions.parse(["verify-required"]).restrictions)).toBe("AuthFailed")
    expect(await login(verified, KeyOptions.parse(["verify-required"]).restrictions)).toBe("ok")
  })
})

describe("cert-authority lines", () => {
  const ca = PrivateKey.generate("ssh-ed25519")
  const key = PrivateKey.generate("ssh-ed25519")
  const cert = (principals: ReadonlyArray<string>, extensions = Certificate.defaultExtensions) =>
    Certificate.sign({ key: key.publicKey, role: "user", keyId: "k", principals, extensions: extensions.map(Certificate.flag) }, ca)
  const login = (text: string, certificate: Certificate.Certificate) =>
    withKeys(text, (port) =>
      Effect.gen(function*() {
        const ssh = yield* SshClient.connect(clientOptions(port, { auth: [Auth.certificate(key, certificate)] }))
        const pty = yield* ask(yield* ssh.openChannel("session"), "pty-req", ptyRequest)
        return { pty, command: JSON.parse((yield* ssh.run("asked")).stdout).command }
      }))

  it("accepts a certificate the CA signed for the user; the line's options add to the certificate's", async () => {
    expect(await login(line(["cert-authority"], ca.publicKey), cert(["alice"]))).toEqual({ pty: true, command: "asked" })
    expect(await login(line(["cert-authority", "no-pty", 'command="forced"'], ca.publicKey), cert(["alice"]))).toEqual({
      pty: false,
      command: "forced"
    })
    // the certificate grants no pty: the line's cannot give one back
    expect(await login(line(["cert-authority", "pty"], ca.publicKey), cert(["alice"], []))).toMatchObject({ pty: false })
  })

  it("principals= replaces the user name among the certificate's principals", async () => {
    const ok = await login(line(["cert-authority", 'principals="ops,deploy"'], ca.publicKey), cert(["deploy"]))
    expect(ok.command).toBe("asked")
    const refused = await withKeys(line(["cert-authority", 'principals="ops"'], ca.publicKey), (port) =>
      Effect.flip(run(port, "x", [Auth.certificate(key, cert(["alice"]))])))
    expect(refused.reason._tag).toBe("AuthFailed")
  })

  it("a plain key line does not accept certificates, nor a CA line the CA's own key", async () => {
    const plain = await withKeys(line([], ca.publicKey), (port) => Effect.flip(run(port, "x", [Auth.certificate(key, cert(["alice"]))])))
    expect(plain.reason._tag).toBe("AuthFailed")
    const caKey = await withKeys(line(["cert-authority"]), (port) => Effect.flip(run(port, "x")))
    expect(caKey.reason._tag).toBe("AuthFailed")
  })
})

describe("ServerAuth.authorizedKeysFile", () => {
  it("reads the file (%u expanded) at each login: an edit applies to the next one", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "effect-ssh-authkeys-"))
    const file = path.join(dir, "keys_alice")
    try {
      fs.writeFileSync(file, line(['command="first"']))
      const r = await runScoped(Effect.flatMap(
        SshServer.serve(serverOptions({ auth: ServerAuth.authorizedKeysFile(path.join(dir, "keys_%u")), session: { exec: describeSession } })),
        (server) =>
          Effect.gen(function*() {
            const first = JSON.parse((yield* Effect.scoped(run(server.address.port, "x"))).stdout).command
            yield* Effect.sync(() => fs.writeFileSync(file, line(['command="second"'])))
            const second = JSON.parse((yield* Effect.scoped(run(server.address.port, "x"))).stdout).command
            yield* Effect.sync(() => fs.rmSync(file))
            const gone = yield* Effect.flip(Effect.scoped(run(server.address.port, "x")))
            return { first, second, gone: gone.reason._tag }
          })
      ))
      expect(r).toEqual({ first: "first", second: "second", gone: "AuthFailed" })
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it("expands ~, %h, %u and %%", () => {
    expect(ServerAuth.expandAuthorizedKeysPath("~/.ssh/authorized_keys", "bob", "/home/s")).toBe("/home/s/.ssh/authorized_keys")
    expect(ServerAuth.expandAuthorizedKeysPath("%h/keys/%u%%", "bob", "/home/s")).toBe("/home/s/keys/bob%")
  })
})
