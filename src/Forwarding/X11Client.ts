/**
 * X11 forwarding, the client side (`ssh -X` / `-Y`, RFC 4254 §6.3): a
 * session asks the server with `x11-req` to forward the X clients started
 * there, and the server opens an `x11` channel for each one that connects to
 * its proxy display. Each channel's first bytes, the X connection setup, are
 * checked and rewritten, then the channel is joined to the local X server.
 *
 * As with OpenSSH, the server only ever sees a fake MIT-MAGIC-COOKIE-1: a
 * forwarded connection must present it, and reaches the local display with
 * the real cookie (from `xauth list`) in its place. When there is no real
 * cookie (no xauth program, or no entry for the display), a random one takes
 * its place, so the X server falls back on whatever other access control it
 * uses for local clients — what OpenSSH does ("No xauth data; using fake
 * authentication data").
 *
 * One display and one pair of cookies per connection, as in OpenSSH: the
 * server's `x11` channels do not say which session they belong to. They are
 * accepted only while a session of the connection has asked for X11.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Pull from "effect/Pull"
import type * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import * as Stream from "effect/Stream"
import * as ChildProcess from "node:child_process"
import * as fs from "node:fs"
import type { IncomingChannel, SshChannel } from "../Channel/Connection.ts"
import { concat } from "../internal/bytes.ts"
import { fromNetSocket } from "../internal/netSocket.ts"
import * as SshError from "../SshError.ts"
import * as N from "../Wire/MessageNumber.ts"
import { bridge } from "./Bridge.ts"
import { dial } from "./Dial.ts"
import * as Messages from "./Messages.ts"
import * as X11 from "./X11.ts"

/**
 * How a session asks for X11 forwarding (`SessionOptions.x11`). The first
 * session of a connection that asks fixes the connection's display.
 *
 * @category models
 */
export interface X11Options {
  /** The local display to forward to (default `$DISPLAY`). */
  readonly display?: string | undefined
  /**
   * ForwardX11Trusted (`-Y` rather than `-X`). Both kinds use the display's own cookie from `xauth list`: no
   * untrusted cookie is generated with `xauth generate`, so `-X` is forwarded as `-Y` would be.
   */
  readonly trusted?: boolean | undefined
  /** Forward only the first X11 connection (the request's single-connection flag); later channels are refused. */
  readonly single?: boolean | undefined
}

/**
 * The X11 forwarding of one client connection.
 *
 * @category models
 */
export interface X11Forwarding {
  /**
   * Resolves a session's display and the connection's cookies (before the session channel is opened, so a
   * missing or bad display fails first), and returns what sends `x11-req` on the session channel. A refused
   * request is logged ("X11 forwarding request failed") and the session goes on, as with OpenSSH. The request
   * lets `x11` channels in until the scope it runs in closes.
   */
  readonly prepare: (
    options: true | X11Options
  ) => Effect.Effect<(session: SshChannel) => Effect.Effect<void, SshError.SshError, Scope.Scope>, SshError.SshError>
  /** The connection's handler of `x11` channels the server opens. */
  readonly onChannelOpen: (incoming: IncomingChannel) => Effect.Effect<void, SshError.SshError, Scope.Scope>
}

/**
 * Where `make` finds what it needs from the system.
 *
 * @category models
 */
export interface X11ClientOptions {
  /** `$DISPLAY` when a session names no display (default `process.env.DISPLAY`). */
  readonly defaultDisplay?: string | undefined
  /** XAuthLocation: the xauth program (default `/usr/bin/xauth` when it exists, else `xauth` on `PATH`). */
  readonly xauthLocation?: string | undefined
}

/** The display a connection forwards to, and the cookie pair its setup packets are checked against. */
interface Forwarded {
  readonly name: string
  readonly display: X11.Display
  readonly fake: X11.X11Cookie & { readonly hex: string }
  readonly real: X11.X11Cookie
}

/** A session's leave for the server to open `x11` channels. */
interface Grant {
  readonly single: boolean
  used: boolean
}

const DEFAULT_XAUTH = "/usr/bin/xauth"
const XAUTH_TIMEOUT_MS = 10_000
// what OpenSSH lets through to xauth and the X server: alphanumerics and ":/.-_"
const VALID_DISPLAY = /^[A-Za-z0-9:/._-]+$/

const configError = (message: string) => SshError.make(new SshError.ConfigParseError({ message }))

/**
 * The X11 forwarding of a new client connection: `onChannelOpen` goes into the connection's channel router
 * (for the `x11` type), `prepare` into its sessions (`Session.exec(..., { x11: forwarding.prepare })`).
 *
 * @example
 * ```ts
 * const x11 = X11Client.make()
 * const connection = yield* Connection.make(transport, { onChannelOpen: x11.onChannelOpen })
 * const proc = yield* Session.exec(connection, "xterm", { x11: true }, { x11: x11.prepare })
 * ```
 * @category constructors
 */
export const make = (options: X11ClientOptions = {}): X11Forwarding => {
  let forwarded: Forwarded | undefined
  const grants = new Set<Grant>()
  // two sessions asking at once must agree on one display and look its cookie up once
  const binding = Semaphore.makeUnsafe(1)

  const bind = (name: string): Effect.Effect<Forwarded, SshError.SshError> =>
    Semaphore.withPermits(binding, 1)(Effect.gen(function*() {
      if (forwarded !== undefined) {
        if (forwarded.name === name) return forwarded
        return yield* Effect.fail(configError(
          `X11 forwarding to DISPLAY ${JSON.stringify(name)}: this connection already forwards ${JSON.stringify(forwarded.name)} (one display per connection)`
        ))
      }
      const display = yield* Effect.try({ try: () => X11.parseDisplay(name), catch: SshError.fromUnknown })
      const found = yield* realCookie(options.xauthLocation ?? defaultXauth(), name, display)
      if (found === undefined) yield* Effect.logWarning("No xauth data; using fake authentication data for X11 forwarding.")
      forwarded = { name, display, fake: X11.fakeCookie(), real: found ?? madeUpCookie() }
      return forwarded
    }))

  const prepare: X11Forwarding["prepare"] = (request) =>
    Effect.gen(function*() {
      const name = (request === true ? undefined : request.display) ?? options.defaultDisplay ?? process.env.DISPLAY
      if (name === undefined || name === "") {
        return yield* Effect.fail(configError("X11 forwarding needs a display: DISPLAY is not set"))
      }
      if (!VALID_DISPLAY.test(name)) {
        return yield* Effect.fail(configError(`DISPLAY ${JSON.stringify(name)} is invalid: only letters, digits and ":/.-_" may appear`))
      }
      const { display, fake } = yield* bind(name)
      const single = request !== true && request.single === true
      const data = Messages.encodeX11Request({
        singleConnection: single,
        authProtocol: fake.protocol,
        authCookie: fake.hex,
        screen: display.screen
      })
      return (session: SshChannel) =>
        Effect.gen(function*() {
          const grant: Grant = { single, used: false }
          grants.add(grant)
          yield* Effect.addFinalizer(() => Effect.sync(() => grants.delete(grant)))
          const granted = yield* session.request(Messages.RequestName.x11, data, true)
          if (!granted) {
            grants.delete(grant)
            yield* Effect.logWarning("X11 forwarding request failed")
          }
        })
    })

  /** Any session's leave lets a channel in; a single-connection one only once. */
  const takeGrant = (): boolean => {
    let single: Grant | undefined
    for (const grant of grants) {
      if (!grant.single) return true
      if (!grant.used) single ??= grant
    }
    if (single === undefined) return false
    single.used = true
    return true
  }

  const onChannelOpen: X11Forwarding["onChannelOpen"] = (incoming) =>
    Effect.gen(function*() {
      const origin = yield* Effect.option(Effect.try({
        try: () => Messages.decodeX11Channel(incoming.data),
        catch: SshError.fromUnknown
      }))
      if (origin._tag === "None") {
        return yield* incoming.reject(N.ChannelOpenFailure.CONNECT_FAILED, "malformed x11 channel open")
      }
      // grants exist only once a session has bound the display, so `forwarded` is set whenever one is taken
      const at = forwarded
      if (at === undefined || !takeGrant()) {
        return yield* incoming.reject(N.ChannelOpenFailure.ADMINISTRATIVELY_PROHIBITED, "X11 forwarding was not requested")
      }
      const from = `${origin.value.originatorAddress}:${origin.value.originatorPort}`
      const channel = yield* incoming.accept()
      const check = yield* Effect.scoped(readSetup(channel, at.fake, at.real))
      if (check._tag !== "Accept") {
        // the scope closes the channel
        return yield* Effect.logWarning(`X11 connection from ${from} refused: ${check.reason}`)
      }
      yield* toDisplay(channel, at.display.endpoint, check.bytes).pipe(
        Effect.catch((error) =>
          error._tag === "SshError" && error.reason._tag === "ForwardFailed"
            ? Effect.logWarning(`X11 connection from ${from}: ${error.message}`)
            : Effect.void
        )
      )
    })

  return { prepare, onChannelOpen }
}

/** What goes in the fake cookie's place when there is no real one: random data the X server will not know. */
const madeUpCookie = (): X11.X11Cookie => ({
  protocol: X11.MIT_MAGIC_COOKIE_1,
  data: crypto.getRandomValues(new Uint8Array(16))
})

const defaultXauth = (): string => fs.existsSync(DEFAULT_XAUTH) ? DEFAULT_XAUTH : "xauth"

/**
 * The display's MIT-MAGIC-COOKIE-1 as `xauth list` reports it (a `localhost:n` display under its local name
 * `unix:n`, as OpenSSH asks), or undefined when xauth is missing, fails or knows no cookie for it.
 */
const realCookie = (xauth: string, name: string, display: X11.Display): Effect.Effect<X11.X11Cookie | undefined> =>
  Effect.map(xauthList(xauth, X11.xauthDisplayName(name)), (output) =>
    output === undefined ? undefined : X11.findCookie(X11.parseXauthList(output), display))

const xauthList = (xauth: string, display: string): Effect.Effect<string | undefined> =>
  Effect.callback<string | undefined>((resume) => {
    const child = ChildProcess.execFile(
      xauth,
      ["list", display],
      { timeout: XAUTH_TIMEOUT_MS, maxBuffer: 1024 * 1024, encoding: "utf8" },
      (error, stdout) => resume(Effect.succeed(error === null ? stdout : undefined))
    )
    return Effect.sync(() => child.kill())
  })

/** What the check of a complete setup packet found. */
type Verdict = Exclude<X11.SetupCheck, { readonly _tag: "NeedMore" }>

/**
 * Reads the X client's connection setup from the channel until `rewriteSetup` has a verdict. What is buffered
 * stays bounded: the check rejects as soon as the header's lengths differ from the fake cookie's, so at most the
 * fake cookie's setup packet plus one chunk is ever held.
 */
const readSetup = (
  channel: SshChannel,
  fake: X11.X11Cookie,
  real: X11.X11Cookie
): Effect.Effect<Verdict, SshError.SshError, Scope.Scope> =>
  Effect.gen(function*() {
    const pull = yield* Stream.toPull(channel.stdout)
    let received: Uint8Array = new Uint8Array(0)
    while (true) {
      const check = X11.rewriteSetup(received, fake, real)
      if (check._tag !== "NeedMore") return check
      const chunks = yield* Pull.catchDone(pull, () => Effect.succeed(undefined))
      if (chunks === undefined) return { _tag: "Reject", reason: "the X client left before its connection setup" } as const
      received = concat([received, ...chunks])
    }
  })

/** Connects to the local X server, sends it the rewritten setup, then bridges the rest both ways. */
const toDisplay = (channel: SshChannel, endpoint: X11.X11Endpoint, setup: Uint8Array) =>
  Effect.gen(function*() {
    const conn = yield* Effect.acquireRelease(
      dial(endpoint._tag === "Unix" ? { path: endpoint.path } : { host: endpoint.host, port: endpoint.port }),
      (conn) => Effect.sync(() => conn.destroy())
    )
    conn.write(setup)
    yield* bridge(channel, fromNetSocket(() => conn))
  })
