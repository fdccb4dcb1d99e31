/**
 * The client side of X11 forwarding between two of our connections: the
 * server end plays sshd (it answers `x11-req` and opens `x11` channels), a
 * Unix socket plays the local X server, and a script plays xauth.
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type * as Connection from "../../src/Channel/Connection.ts"
import * as Session from "../../src/Channel/Session.ts"
import * as ClientForwarding from "../../src/Forwarding/ClientForwarding.ts"
import * as Messages from "../../src/Forwarding/Messages.ts"
import * as X11Client from "../../src/Forwarding/X11Client.ts"
import { concat, fromHex, toHex, utf8 } from "../../src/internal/bytes.ts"
import type * as SshError from "../../src/SshError.ts"
import * as N from "../../src/Wire/MessageNumber.ts"
import { connectionPair } from "../Channel/connectionPair.ts"

const REAL = "00112233445566778899aabbccddeeff"
const NAME = utf8("MIT-MAGIC-COOKIE-1")

/** An X11 setup packet (little-endian) carrying `cookie`, then `rest`. */
const setupPacket = (cookie: Uint8Array, rest: Uint8Array = new Uint8Array(0)): Uint8Array => {
  const header = new Uint8Array(12)
  header[0] = 0x6c
  header[2] = 11
  header[6] = NAME.length
  header[8] = cookie.length
  return concat([header, NAME, new Uint8Array(2), cookie, rest])
}

interface XServer {
  readonly display: string
  /** Everything each connection sent, once it ended or sent a whole setup packet and more. */
  readonly received: Array<Uint8Array>
  readonly connections: () => number
  readonly close: () => void
}

/** Answers "ok" (and ends) once a connection has sent `expect` bytes. */
const xServer = async (dir: string, expect: number): Promise<XServer> => {
  const socketPath = path.join(dir, "X7")
  const received: Array<Uint8Array> = []
  let connections = 0
  const server = net.createServer((conn) => {
    connections++
    let bytes: Uint8Array = new Uint8Array(0)
    conn.on("data", (chunk) => {
      bytes = concat([bytes, chunk])
      if (bytes.length >= expect) {
        received.push(bytes)
        conn.end("ok")
      }
    })
    conn.on("error", () => {})
  })
  await new Promise<void>((resolve) => server.listen(socketPath, resolve))
  return { display: socketPath, received, connections: () => connections, close: () => server.close() }
}

/** A stand-in for xauth: records its arguments, lists one cookie for display 7. */
const fakeXauth = (dir: string): string => {
  const script = path.join(dir, "xauth")
  fs.writeFileSync(script, `#!/bin/sh\necho "$@" >> ${path.join(dir, "xauth.args")}\necho "myhost/unix:7  MIT-MAGIC-COOKIE-1  ${REAL}"\n`, { mode: 0o755 })
  return script
}

interface Sshd {
  /** The `x11-req` requests received. */
  readonly requests: Array<Messages.X11Request>
  /** Whether to grant them. */
  grant: boolean
}

/** A pair whose server end answers session requests (x11-req as `sshd.grant` says) and opens nothing itself. */
const pair = (x11: X11Client.X11Forwarding, sshd: Sshd) =>
  connectionPair(
    { onChannelOpen: ClientForwarding.byChannelType({ [Messages.ChannelType.x11]: x11.onChannelOpen }) },
    {
      onChannelOpen: (incoming) =>
        incoming.channelType !== "session"
          ? incoming.reject(N.ChannelOpenFailure.ADMINISTRATIVELY_PROHIBITED, "sessions only")
          : Effect.flatMap(incoming.accept(), (channel) => {
            channel.onRequest((name, data) =>
              Effect.sync(() => {
                if (name !== Messages.RequestName.x11) return true
                sshd.requests.push(Messages.decodeX11Request(data))
                return sshd.grant
              })
            )
            return Deferred.await(channel.closed)
          })
    }
  )

/** What an X client on the server sends through a new `x11` channel, and what comes back before the end. */
const xClient = (server: Connection.Connection, pieces: ReadonlyArray<Uint8Array>) =>
  Effect.scoped(Effect.gen(function*() {
    const channel = yield* server.openChannel(
      Messages.ChannelType.x11,
      Messages.encodeX11Channel({ originatorAddress: "127.0.0.1", originatorPort: 40000 })
    )
    for (const piece of pieces) yield* channel.write(piece)
    const answer = yield* Stream.runCollect(channel.stdout)
    return new TextDecoder().decode(concat(answer))
  }))

const openFailure = (server: Connection.Connection) =>
  Effect.flip(xClient(server, [])).pipe(
    Effect.map((error: SshError.SshError) => error.reason._tag === "ChannelOpenFailed" ? error.reason.code : error.reason._tag)
  )

const run = <A, E>(effect: Effect.Effect<A, E, Scope.Scope>) => Effect.runPromise(Effect.scoped(effect))

describe("X11Client", () => {
  let dir: string
  let xauth: string

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "effect-ssh-x11client-"))
    xauth = fakeXauth(dir)
  })
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

  it("refuses x11 channels before a session asked, and after its scope closed", async () => {
    const x11 = X11Client.make({ xauthLocation: xauth })
    const sshd: Sshd = { requests: [], grant: true }
    const display = path.join(dir, "X7")
    const [before, after] = await run(Effect.gen(function*() {
      const { client, server } = yield* pair(x11, sshd)
      const before = yield* openFailure(server)
      yield* Effect.scoped(Session.exec(client, "xterm", { x11: { display } }, { x11: x11.prepare }))
      const after = yield* openFailure(server)
      return [before, after]
    }))
    expect(before).toBe(N.ChannelOpenFailure.ADMINISTRATIVELY_PROHIBITED)
    expect(after).toBe(N.ChannelOpenFailure.ADMINISTRATIVELY_PROHIBITED)
    expect(sshd.requests).toHaveLength(1)
  })

  it("sends a fake cookie, and swaps the real one into a setup packet that arrives in pieces", async () => {
    const x = await xServer(dir, 48 + 5)
    try {
      const x11 = X11Client.make({ xauthLocation: xauth })
      const sshd: Sshd = { requests: [], grant: true }
      const answer = await run(Effect.gen(function*() {
        const { client, server } = yield* pair(x11, sshd)
        yield* Session.exec(client, "xterm", { x11: { display: `${x.display}` } }, { x11: x11.prepare })
        const fake = fromHex(sshd.requests[0]!.authCookie)
        const setup = setupPacket(fake, utf8("after"))
        return yield* xClient(server, [setup.subarray(0, 5), setup.subarray(5, 20), setup.subarray(20)])
      }))
      const request = sshd.requests[0]!
      expect(request.authProtocol).toBe("MIT-MAGIC-COOKIE-1")
      expect(request.authCookie).toMatch(/^[0-9a-f]{32}$/)
      expect(request.authCookie).not.toBe(REAL)
      expect(request.singleConnection).toBe(false)
      expect(answer).toBe("ok")
      expect(x.received.map(toHex)).toEqual([toHex(setupPacket(fromHex(REAL), utf8("after")))])
      expect(fs.readFileSync(path.join(dir, "xauth.args"), "utf8")).toContain(`list ${x.display}`)
    } finally {
      x.close()
    }
  })

  it("closes a channel whose setup packet carries another cookie, before reaching the display", async () => {
    const x = await xServer(dir, 48)
    try {
      const x11 = X11Client.make({ xauthLocation: xauth })
      const sshd: Sshd = { requests: [], grant: true }
      const answers = await run(Effect.gen(function*() {
        const { client, server } = yield* pair(x11, sshd)
        yield* Session.exec(client, "xterm", { x11: { display: x.display } }, { x11: x11.prepare })
        const wrong = yield* xClient(server, [setupPacket(fromHex(REAL))])
        const short = yield* xClient(server, [setupPacket(new Uint8Array(8))])
        const badOrder = yield* xClient(server, [utf8("GET / HTTP/1.1\r\n\r\n")])
        return [wrong, short, badOrder]
      }))
      expect(answers).toEqual(["", "", ""])
      expect(x.connections()).toBe(0)
    } finally {
      x.close()
    }
  })

  it("single: accepts the first x11 channel only", async () => {
    const x = await xServer(dir, 48)
    try {
      const x11 = X11Client.make({ xauthLocation: xauth })
      const sshd: Sshd = { requests: [], grant: true }
      const [first, second] = await run(Effect.gen(function*() {
        const { client, server } = yield* pair(x11, sshd)
        yield* Session.exec(client, "xterm", { x11: { display: x.display, single: true } }, { x11: x11.prepare })
        const setup = setupPacket(fromHex(sshd.requests[0]!.authCookie))
        return [yield* xClient(server, [setup]), yield* openFailure(server)] as const
      }))
      expect(sshd.requests[0]!.singleConnection).toBe(true)
      expect(first).toBe("ok")
      expect(second).toBe(N.ChannelOpenFailure.ADMINISTRATIVELY_PROHIBITED)
    } finally {
      x.close()
    }
  })

  it("without xauth, puts made-up data in the fake cookie's place, as OpenSSH does", async () => {
    const x = await xServer(dir, 48)
    try {
      const x11 = X11Client.make({ xauthLocation: path.join(dir, "no-such-xauth") })
      const sshd: Sshd = { requests: [], grant: true }
      const answer = await run(Effect.gen(function*() {
        const { client, server } = yield* pair(x11, sshd)
        yield* Session.exec(client, "xterm", { x11: { display: x.display } }, { x11: x11.prepare })
        return yield* xClient(server, [setupPacket(fromHex(sshd.requests[0]!.authCookie))])
      }))
      expect(answer).toBe("ok")
      const sent = toHex(x.received[0]!.subarray(32, 48))
      expect(sent).not.toBe(sshd.requests[0]!.authCookie)
      expect(sent).not.toBe(REAL)
    } finally {
      x.close()
    }
  })

  it("a refused x11-req: the session goes on, and no x11 channel gets in", async () => {
    const x11 = X11Client.make({ xauthLocation: xauth })
    const sshd: Sshd = { requests: [], grant: false }
    const refused = await run(Effect.gen(function*() {
      const { client, server } = yield* pair(x11, sshd)
      yield* Session.exec(client, "xterm", { x11: { display: path.join(dir, "X7") } }, { x11: x11.prepare })
      return yield* openFailure(server)
    }))
    expect(sshd.requests).toHaveLength(1)
    expect(refused).toBe(N.ChannelOpenFailure.ADMINISTRATIVELY_PROHIBITED)
  })

  it("fails before opening a session: no display, a bad one, a second display, no X11 forwarding", async () => {
    const x11 = X11Client.make({ xauthLocation: xauth, defaultDisplay: "" })
    const sshd: Sshd = { requests: [], grant: true }
    const failures = await run(Effect.gen(function*() {
      const { client } = yield* pair(x11, sshd)
      const attempt = (options: Session.SessionOptions, forwarding: Session.SessionForwarding = { x11: x11.prepare }) =>
        Effect.scoped(Effect.flip(Session.exec(client, "xterm", options, forwarding))).pipe(
          Effect.map((error) => `${error.reason._tag}: ${error.message}`)
        )
      const none = yield* attempt({ x11: true })
      const bad = yield* attempt({ x11: { display: ":0; rm -rf /" } })
      yield* Effect.scoped(Session.exec(client, "xterm", { x11: { display: ":7" } }, { x11: x11.prepare }))
      const second = yield* attempt({ x11: { display: ":8" } })
      const unsupported = yield* attempt({ x11: { display: ":7" } }, {})
      return [none, bad, second, unsupported]
    }))
    expect(failures[0]).toMatch(/^ConfigParseError: .*DISPLAY is not set/)
    expect(failures[1]).toMatch(/^ConfigParseError: .*is invalid/)
    expect(failures[2]).toMatch(/^ConfigParseError: .*already forwards ":7"/)
    expect(failures[3]).toMatch(/^ConfigParseError: .*needs a connection that handles x11 channels/)
    // only the one session that could ask did
    expect(sshd.requests).toHaveLength(1)
  })
})
