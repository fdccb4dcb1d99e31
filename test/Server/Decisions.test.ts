/**
 * The server's decisions, custom channel types and global requests, driven
 * by our own client over loopback: each request is sent raw on a session
 * channel, so the test sees the exact reply (CHANNEL_SUCCESS / FAILURE) and
 * that a refusal leaves the channel and the connection usable.
 */
import * as Effect from "effect/Effect"
import type * as FileSystem from "effect/FileSystem"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { describe, expect, it } from "vitest"
import * as Auth from "../../src/Auth/ClientAuth.ts"
import * as Certificate from "../../src/Auth/Certificate.ts"
import * as PrivateKey from "../../src/Auth/PrivateKey.ts"
import * as Redacted from "effect/Redacted"
import * as SshClient from "../../src/Client.ts"
import * as Requests from "../../src/Channel/Requests.ts"
import * as ForwardingMessages from "../../src/Forwarding/Messages.ts"
import * as ServerSession from "../../src/Channel/ServerSession.ts"
import type { SshChannel } from "../../src/Channel/Connection.ts"
import * as SshServer from "../../src/Server.ts"
import * as Decisions from "../../src/Server/Decisions.ts"
import * as Extensions from "../../src/Server/Extensions.ts"
import type { SshError } from "../../src/SshError.ts"
import * as N from "../../src/Wire/MessageNumber.ts"
import { runFailure, runScoped } from "../helpers.ts"
import { clientOptions, serverOptions, userKey } from "./fixtures.ts"

const text = (bytes: Uint8Array | undefined) => bytes === undefined ? undefined : new TextDecoder().decode(bytes)
const bytesOf = (s: string) => new TextEncoder().encode(s)

/** Serves with `extra`, then runs `f` against the server's port. */
const withServer = <A, E>(
  extra: Partial<SshServer.ServeOptions>,
  f: (port: number) => Effect.Effect<A, E, Scope.Scope | SshClient.Connector | FileSystem.FileSystem>
) =>
  runScoped(Effect.flatMap(SshServer.serve(serverOptions(extra)), (server) => f(server.address.port)))

/** Sends a request on `channel` wanting a reply: whether the server granted it. */
const ask = (channel: SshChannel, name: string, data: Uint8Array) => channel.request(name, data, true)

/** Everything the channel's peer writes until EOF, as text. */
const output = (channel: SshChannel) =>
  Effect.map(Stream.runCollect(channel.stdout), (chunks) => chunks.map((c) => new TextDecoder().decode(c)).join(""))

/** An exec handler printing what the session was given. */
const describeSession: ServerSession.SessionHandler<string> = (session, command) =>
  Effect.as(
    session.write(JSON.stringify({ command, user: session.user, term: session.pty?.term ?? null, env: session.env }) + "\n"),
    0
  )

describe("session decisions", () => {
  it("exec: refused by command, the same channel then runs an allowed one", async () => {
    const seen: Array<string> = []
    const r = await withServer({
      session: {
        exec: describeSession,
        decide: {
          exec: ({ command }, session) =>
            Effect.sync(() => {
              seen.push(`${session.user} ${command}`)
              return !command.startsWith("rm ")
            })
        }
      }
    }, (port) =>
      Effect.gen(function*() {
        const ssh = yield* SshClient.connect(clientOptions(port))
        const channel = yield* ssh.openChannel("session")
        const refused = yield* ask(channel, "exec", Requests.encodeString("rm -rf /"))
        const allowed = yield* ask(channel, "exec", Requests.encodeString("ls"))
        return { refused, allowed, out: JSON.parse(yield* output(channel)), viaRun: yield* Effect.flip(ssh.run("rm x")) }
      }))
    expect(r.refused).toBe(false)
    expect(r.allowed).toBe(true)
    expect(r.out.command).toBe("ls")
    expect(r.viaRun.reason._tag).toBe("ChannelRequestFailed")
    expect(seen).toEqual(["alice rm -rf /", "alice ls", "alice rm x"])
  })

  it("pty: decided on the terminal, per user; allowPty stays the default", async () => {
    const decide: Decisions.SessionDecisions = { pty: (pty, session) => Effect.succeed(session.user === "alice" && pty.term !== "dumb") }
    const r = await withServer({ session: { exec: describeSession, decide } }, (port) =>
      Effect.gen(function*() {
        const ssh = yield* SshClient.connect(clientOptions(port))
        const bob = yield* SshClient.connect(clientOptions(port, { username: "bob", auth: [Auth.keyboardInteractive(() => Effect.succeed(["123"]))] }))
        const pty = (term: string) => Requests.encodePtyRequest({ term, columns: 80, rows: 24 })
        const a = yield* ssh.openChannel("session")
        const dumb = yield* ask(a, "pty-req", pty("dumb"))
        const xterm = yield* ask(a, "pty-req", pty("xterm"))
        yield* ask(a, "exec", Requests.encodeString("x"))
        const b = yield* bob.openChannel("session")
        const forBob = yield* ask(b, "pty-req", pty("xterm"))
        return { dumb, xterm, term: JSON.parse(yield* output(a)).term, forBob }
      }))
    expect(r).toEqual({ dumb: false, xterm: true, term: "xterm", forBob: false })

    const off = await withServer({ session: { exec: describeSession, allowPty: false } }, (port) =>
      Effect.gen(function*() {
        const ssh = yield* SshClient.connect(clientOptions(port))
        const a = yield* ssh.openChannel("session")
        return yield* ask(a, "pty-req", Requests.encodePtyRequest({ term: "xterm", columns: 80, rows: 24 }))
      }))
    expect(off).toBe(false)
  })

  it("env: the same name accepted with one value and refused with another", async () => {
    const r = await withServer({
      session: { exec: describeSession, decide: { env: ({ name, value }) => Effect.succeed(name === "MODE" && value !== "evil") } }
    }, (port) =>
      Effect.gen(function*() {
        const ssh = yield* SshClient.connect(clientOptions(port))
        const a = yield* ssh.openChannel("session")
        const evil = yield* ask(a, "env", Requests.encodeEnv("MODE", "evil"))
        const good = yield* ask(a, "env", Requests.encodeEnv("MODE", "fast"))
        // the decision replaces acceptEnv: LANG is not accepted any more
        const lang = yield* ask(a, "env", Requests.encodeEnv("LANG", "C.UTF-8"))
        yield* ask(a, "exec", Requests.encodeString("env"))
        return { evil, good, lang, env: JSON.parse(yield* output(a)).env }
      }))
    expect(r).toEqual({ evil: false, good: true, lang: false, env: { MODE: "fast" } })
  })

  it("signal and window-change: a refused one never reaches the session", async () => {
    const delivered: Array<string> = []
    const r = await withServer({
      session: {
        exec: (session) =>
          Effect.gen(function*() {
            session.onSignal((signal) => delivered.push(`signal ${signal}`))
            session.onResize((size) => delivered.push(`resize ${size.columns}x${size.rows}`))
            yield* session.write("ready\n")
            yield* Stream.runDrain(session.stdin)
            return 0
          }),
        decide: {
          signal: ({ signal }, session) => Effect.succeed(signal !== "KILL" && session.user === "alice"),
          windowChange: (size) => Effect.succeed(size.columns <= 1000)
        }
      }
    }, (port) =>
      Effect.gen(function*() {
        const ssh = yield* SshClient.connect(clientOptions(port))
        const a = yield* ssh.openChannel("session")
        yield* ask(a, "exec", Requests.encodeString("wait"))
        const answers = [
          yield* ask(a, "signal", Requests.encodeString("TERM")),
          yield* ask(a, "signal", Requests.encodeString("KILL")),
          yield* ask(a, "window-change", Requests.encodeWindowChange({ columns: 120, rows: 40 })),
          yield* ask(a, "window-change", Requests.encodeWindowChange({ columns: 5000, rows: 40 }))
        ]
        yield* a.eof
        yield* output(a)
        return answers
      }))
    expect(r).toEqual([true, false, true, false])
    expect(delivered).toEqual(["signal TERM", "resize 120x40"])
  })

  it("shell and subsystem by name", async () => {
    const r = await withServer({
      session: {
        shell: (session) => Effect.as(session.write("shell\n"), 0),
        subsystems: { files: (session) => Effect.as(session.write("files\n"), 0), admin: (session) => Effect.as(session.write("admin\n"), 0) },
        decide: { shell: Decisions.refuse, subsystem: ({ name }) => Effect.succeed(name !== "admin") }
      }
    }, (port) =>
      Effect.gen(function*() {
        const ssh = yield* SshClient.connect(clientOptions(port))
        const a = yield* ssh.openChannel("session")
        const shell = yield* ask(a, "shell", new Uint8Array(0))
        const admin = yield* ask(a, "subsystem", Requests.encodeString("admin"))
        const files = yield* ask(a, "subsystem", Requests.encodeString("files"))
        return { shell, admin, files, out: yield* output(a) }
      }))
    expect(r).toEqual({ shell: false, admin: false, files: true, out: "files\n" })
  })

  it("agent forwarding per user, replacing the server's agentForwarding; without a decision that option decides", async () => {
    const agentReq = (port: number, username: string) =>
      Effect.gen(function*() {
        const ssh = yield* SshClient.connect(clientOptions(port, { username, auth: [Auth.keyboardInteractive(() => Effect.succeed(["123"]))] }))
        const a = yield* ssh.openChannel("session")
        const granted = yield* ask(a, "auth-agent-req@openssh.com", new Uint8Array(0))
        yield* ask(a, "exec", Requests.encodeString("x"))
        return { granted, socket: typeof JSON.parse(yield* output(a)).env.SSH_AUTH_SOCK }
      })
    const decided = await withServer({ session: { exec: describeSession, decide: { agentForwarding: Decisions.users(["alice"]) } } }, (port) =>
      Effect.all([agentReq(port, "alice"), agentReq(port, "bob")]))
    expect(decided).toEqual([{ granted: true, socket: "string" }, { granted: false, socket: "undefined" }])
    const byOption = await withServer({ agentForwarding: true, session: { exec: describeSession } }, (port) => agentReq(port, "bob"))
    expect(byOption).toEqual({ granted: true, socket: "string" })
    const off = await withServer({ session: { exec: describeSession } }, (port) => agentReq(port, "bob"))
    expect(off).toEqual({ granted: false, socket: "undefined" })
  })

  it("x11: the session's decision sees the request; with no forwarding policy of its own it decides alone", async () => {
    const seen: Array<Decisions.X11Request> = []
    const x11Req = (screen: number) =>
      ForwardingMessages.encodeX11Request({ singleConnection: false, authProtocol: "MIT-MAGIC-COOKIE-1", authCookie: "00ff".repeat(8), screen })
    const r = await withServer({
      // no real xauth: nothing is filed anywhere
      forwarding: { xauthLocation: "/bin/true" },
      session: {
        exec: describeSession,
        decide: { x11: (request) => Effect.sync(() => (seen.push(request), request.screen === 0)) }
      }
    }, (port) =>
      Effect.gen(function*() {
        const ssh = yield* SshClient.connect(clientOptions(port))
        const a = yield* ssh.openChannel("session")
        const screen1 = yield* ask(a, "x11-req", x11Req(1))
        const screen0 = yield* ask(a, "x11-req", x11Req(0))
        yield* ask(a, "exec", Requests.encodeString("x"))
        return { screen1, screen0, display: JSON.parse(yield* output(a)).env.DISPLAY }
      }))
    expect(r.screen1).toBe(false)
    expect(r.screen0).toBe(true)
    expect(r.display).toMatch(/^localhost:\d+\.0$/)
    expect(seen).toEqual([
      { singleConnection: false, authProtocol: "MIT-MAGIC-COOKIE-1", screen: 1 },
      { singleConnection: false, authProtocol: "MIT-MAGIC-COOKIE-1", screen: 0 }
    ])
  })

  it("a user certificate's restrictions apply on top of the decisions", async () => {
    const ca = PrivateKey.generate("ssh-ed25519")
    const key = PrivateKey.generate("ssh-ed25519")
    // no permit-pty, no permit-agent-forwarding
    const cert = Certificate.sign({ key: key.publicKey, role: "user", keyId: "k", principals: ["alice"], extensions: [] }, ca)
    const r = await withServer({
      auth: { certificateAuthorities: [ca.publicKey] },
      session: { exec: describeSession, decide: { pty: () => Effect.succeed(true), agentForwarding: () => Effect.succeed(true) } }
    }, (port) =>
      Effect.gen(function*() {
        const ssh = yield* SshClient.connect(clientOptions(port, { auth: [Auth.certificate(key, cert)] }))
        const a = yield* ssh.openChannel("session")
        return [
          yield* ask(a, "pty-req", Requests.encodePtyRequest({ term: "xterm", columns: 80, rows: 24 })),
          yield* ask(a, "auth-agent-req@openssh.com", new Uint8Array(0))
        ]
      }))
    expect(r).toEqual([false, false])
  })

  it("a decision that dies refuses its request and nothing else", async () => {
    const r = await withServer({
      session: { exec: describeSession, decide: { exec: ({ command }) => command === "boom" ? Effect.die("bug") : Effect.succeed(true) } }
    }, (port) =>
      Effect.gen(function*() {
        const ssh = yield* SshClient.connect(clientOptions(port))
        const a = yield* ssh.openChannel("session")
        const boom = yield* ask(a, "exec", Requests.encodeString("boom"))
        const ok = yield* ask(a, "exec", Requests.encodeString("fine"))
        return { boom, ok, command: JSON.parse(yield* output(a)).command }
      }))
    expect(r).toEqual({ boom: false, ok: true, command: "fine" })
  })
})

describe("per-user authentication methods", () => {
  const methodsFor = ({ user }: { readonly user: string }) =>
    Effect.succeed(
      user === "a" ? [["publickey"]] : user === "b" ? [["keyboard-interactive"]] : user === "c" ? [["publickey", "keyboard-interactive"]] : undefined
    )
  const auth = { ...serverOptions().auth, publicKey: () => Effect.succeed(true), methodsFor }
  const kbd = Auth.keyboardInteractive(() => Effect.succeed(["123"]))
  const key = Auth.privateKey(userKey)

  it("each user gets their own chains; failures list what can continue for that user", async () => {
    const ok = await withServer({ auth }, (port) =>
      Effect.gen(function*() {
        const connect = (username: string, methods: ReadonlyArray<Auth.AuthMethod>) =>
          Effect.map(SshClient.connect(clientOptions(port, { username, auth: methods })), (ssh) => ssh.info.authMethods)
        return {
          a: yield* connect("a", [kbd, key]),
          b: yield* connect("b", [key, kbd]),
          c: yield* connect("c", [kbd, key]),
          // a user methodsFor leaves alone gets the server-wide methods
          other: yield* connect("other", [kbd])
        }
      }))
    expect(ok).toEqual({ a: ["publickey"], b: ["keyboard-interactive"], c: ["publickey", "keyboard-interactive"], other: ["keyboard-interactive"] })

    const refusedA = await runFailure(Effect.flatMap(
      SshServer.serve(serverOptions({ auth })),
      (server) => SshClient.connect(clientOptions(server.address.port, { username: "a", auth: [kbd] }))
    )) as SshError
    expect(refusedA.reason).toMatchObject({ _tag: "AuthFailed", methodsLeft: ["publickey"] })
    const refusedB = await runFailure(Effect.flatMap(
      SshServer.serve(serverOptions({ auth })),
      (server) => SshClient.connect(clientOptions(server.address.port, { username: "b", auth: [key, Auth.password(Redacted.make("x"))] }))
    )) as SshError
    expect(refusedB.reason).toMatchObject({ _tag: "AuthFailed", methodsLeft: ["keyboard-interactive"] })
    const partialC = await runFailure(Effect.flatMap(
      SshServer.serve(serverOptions({ auth })),
      (server) => SshClient.connect(clientOptions(server.address.port, { username: "c", auth: [key] }))
    )) as SshError
    expect(partialC.reason).toMatchObject({ _tag: "AuthFailed", methodsLeft: ["keyboard-interactive"], partial: true })
  })
})

describe("custom channel types and global requests", () => {
  const channels: Record<string, Extensions.ChannelHandler> = {
    "echo@test": (incoming, peer) =>
      Effect.gen(function*() {
        const channel = yield* incoming.accept()
        yield* channel.write(bytesOf(`hello ${peer.user}: `))
        yield* channel.stdout.pipe(Stream.run(channel.stdin))
      }),
    "picky@test": (incoming) =>
      new TextDecoder().decode(incoming.data) === "please"
        ? Effect.flatMap(incoming.accept(), (channel) => Effect.andThen(channel.write(bytesOf("thanks")), channel.eof))
        : incoming.reject(N.ChannelOpenFailure.CONNECT_FAILED, "say please"),
    // neither accepts nor rejects: the server refuses it
    "silent@test": () => Effect.void,
    // a bug, in the Effect or before it: refused, the connection goes on
    "dies@test": () => Effect.die("bug"),
    "throws@test": () => {
      throw new Error("bug")
    },
    // the server's own type: never consulted
    session: (incoming) => incoming.reject(N.ChannelOpenFailure.RESOURCE_SHORTAGE, "not me")
  }
  const globalRequests: Record<string, Extensions.GlobalRequestHandler> = {
    "whoami@test": (_data, peer) => Effect.succeed(bytesOf(`${peer.user}@${peer.remoteAddress}`)),
    "yes@test": () => Effect.succeed(true),
    "no@test": () => Effect.succeed(false),
    "reverse@test": (data) => Effect.succeed(Uint8Array.from(data).reverse()),
    "bug@test": () => Effect.die("bug")
  }

  it("channels: accepted, rejected with the handler's reason, unknown ones refused as sshd", async () => {
    const r = await withServer({ channels, session: { exec: describeSession } }, (port) =>
      Effect.gen(function*() {
        const ssh = yield* SshClient.connect(clientOptions(port))
        const echo = yield* ssh.openChannel("echo@test")
        yield* Effect.andThen(echo.write(bytesOf("ping")), echo.eof)
        const echoed = yield* output(echo)
        const picky = yield* ssh.openChannel("picky@test", bytesOf("please"))
        const thanked = yield* output(picky)
        const openFailure = (type: string, data?: Uint8Array) =>
          Effect.map(Effect.flip(ssh.openChannel(type, data)), (e) => e.reason)
        const rude = yield* openFailure("picky@test", bytesOf("now"))
        const silent = yield* openFailure("silent@test")
        const unknown = yield* openFailure("unknown@test")
        const dies = yield* openFailure("dies@test")
        const throws = yield* openFailure("throws@test")
        // "session" is still the server's
        const session = yield* ssh.run("x")
        return { echoed, thanked, rude, silent, unknown, dies, throws, session: JSON.parse(session.stdout).command }
      }))
    expect(r.echoed).toBe("hello alice: ping")
    expect(r.thanked).toBe("thanks")
    expect(r.rude).toMatchObject({ _tag: "ChannelOpenFailed", code: N.ChannelOpenFailure.CONNECT_FAILED, description: "say please" })
    expect(r.silent).toMatchObject({ _tag: "ChannelOpenFailed", code: N.ChannelOpenFailure.ADMINISTRATIVELY_PROHIBITED })
    expect(r.unknown).toMatchObject({ _tag: "ChannelOpenFailed", code: N.ChannelOpenFailure.ADMINISTRATIVELY_PROHIBITED })
    expect(r.dies).toMatchObject({ _tag: "ChannelOpenFailed", code: N.ChannelOpenFailure.ADMINISTRATIVELY_PROHIBITED })
    expect(r.throws).toMatchObject({ _tag: "ChannelOpenFailed", code: N.ChannelOpenFailure.ADMINISTRATIVELY_PROHIBITED })
    expect(r.session).toBe("x")
  })

  it("global requests: reply data, success, failure; unknown names and keepalive fail as sshd answers", async () => {
    const r = await withServer({ globalRequests }, (port) =>
      Effect.gen(function*() {
        const ssh = yield* SshClient.connect(clientOptions(port))
        const g = (name: string, data = new Uint8Array(0)) => ssh.globalRequest(name, data, true)
        return {
          whoami: text(yield* g("whoami@test")),
          yes: yield* g("yes@test"),
          no: yield* g("no@test"),
          reverse: text(yield* g("reverse@test", bytesOf("abc"))),
          bug: yield* g("bug@test"),
          unknown: yield* g("unknown@test"),
          keepalive: yield* g("keepalive@openssh.com"),
          // the connection is still up after all the failures
          after: (yield* ssh.run("echo still")).stdout
        }
      }))
    expect(r).toEqual({
      whoami: "alice@127.0.0.1",
      yes: new Uint8Array(0),
      no: undefined,
      reverse: "cba",
      bug: undefined,
      unknown: undefined,
      keepalive: undefined,
      after: "still\n"
    })
  })

  it("a session and a channel handler open channels to the client; our client refuses types it did not ask for", async () => {
    const opened = (result: Effect.Effect<unknown, SshError>) =>
      Effect.match(result, {
        onSuccess: () => "opened",
        onFailure: (e) => e.reason._tag === "ChannelOpenFailed" ? `refused ${e.reason.code}` : e.message
      })
    const r = await withServer({
      session: {
        exec: (session) =>
          Effect.gen(function*() {
            const outcome = yield* opened(Effect.scoped(ServerSession.openChannel(session, "callback@test")))
            yield* session.write(`${outcome}\n`)
            return 0
          })
      },
      channels: {
        "call-me@test": (incoming, peer) =>
          Effect.gen(function*() {
            const channel = yield* incoming.accept()
            const outcome = yield* opened(Effect.scoped(peer.openChannel("callback@test", bytesOf("x"))))
            yield* channel.write(bytesOf(outcome))
            yield* channel.eof
          })
      }
    }, (port) =>
      Effect.gen(function*() {
        const ssh = yield* SshClient.connect(clientOptions(port))
        const fromSession = (yield* ssh.run("go")).stdout
        const fromChannel = yield* output(yield* ssh.openChannel("call-me@test"))
        return { fromSession, fromChannel }
      }))
    expect(r).toEqual({
      fromSession: `refused ${N.ChannelOpenFailure.ADMINISTRATIVELY_PROHIBITED}\n`,
      fromChannel: `refused ${N.ChannelOpenFailure.ADMINISTRATIVELY_PROHIBITED}`
    })
  })

  it("the routing helpers", () => {
    expect(Extensions.channelHandler(channels, "session")).toBeUndefined()
    expect(Extensions.channelHandler(channels, "direct-tcpip")).toBeUndefined()
    expect(Extensions.channelHandler(channels, "toString")).toBeUndefined()
    expect(Extensions.channelHandler(channels, "echo@test")).toBe(channels["echo@test"])
    expect(Extensions.globalRequestHandler(globalRequests, "hasOwnProperty")).toBeUndefined()
    expect(Extensions.globalReply(true)).toEqual(new Uint8Array(0))
    expect(Extensions.globalReply(false)).toBeUndefined()
  })
})
