/**
 * Session channels from the server side (RFC 4254 §6): collects pty-req and
 * env, starts the exec, shell or subsystem handler once, forwards
 * window-change and signal to it, and when the handler ends sends
 * exit-status (or exit-signal), EOF and CLOSE.
 *
 * Handlers are Effect functions that get a `ServerSession`: the client's data
 * as a Stream (its pull grants the client more window) and `write` for our
 * output (which waits for the client's window).
 *
 * What a client can make a channel hold is bounded, as in sshd: env is
 * accepted only before the session starts, for at most `maxEnvVariables`
 * names and `maxEnvBytes` bytes in all; one pty-req, before the start;
 * one exec, shell or subsystem. Anything over is refused (CHANNEL_FAILURE
 * when the client wants a reply) and the channel stays usable.
 * window-change and signal store nothing.
 *
 * Every request passes its decision first (`SessionHandlers.decide`, see
 * `Server/Decisions`): pty, exec, shell, subsystem, env, signal,
 * window-change, agent and X11 forwarding can each be refused per user, per
 * session and per request, in the session's request fiber.
 *
 * A user certificate's `force-command` replaces whatever the client asked to
 * run; agent forwarding (`auth-agent-req@openssh.com`), when the server
 * allows it, gives the session an `SSH_AUTH_SOCK`, and X11 forwarding
 * (`x11-req`) a `DISPLAY`.
 *
 * @since 0.1.0
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import type * as Sink from "effect/Sink"
import * as Messages from "../Forwarding/Messages.ts"
import * as Decisions from "../Server/Decisions.ts"
import * as SshError from "../SshError.ts"
import * as N from "../Wire/MessageNumber.ts"
import type { ChannelOptions, ChannelRequestHandler, Connection, SshChannel } from "./Connection.ts"
import * as Requests from "./Requests.ts"
import type { ExitStatus } from "./Session.ts"

/** The connection a session belongs to. */
export interface SessionPeer {
  readonly user: string
  readonly remoteAddress: string
  readonly remotePort: number
  /** Our end of the connection (for SSH_CONNECTION). */
  readonly localAddress?: string | undefined
  readonly localPort?: number | undefined
  /** A user certificate's force-command: every exec, shell or subsystem runs it instead (with SSH_ORIGINAL_COMMAND). */
  readonly forceCommand?: string | undefined
  /** Set when the server allows agent forwarding: starts a session's agent socket (in the session's scope), giving its path. */
  readonly agentForwarding?: Effect.Effect<string, SshError.SshError, Scope.Scope> | undefined
  /**
   * Set when the server may forward X11: starts a session's X11 proxy for its `x11-req` (in the session's
   * scope), giving its `DISPLAY`, or undefined when refused.
   */
  readonly x11Forwarding?: ((request: Messages.X11Request) => Effect.Effect<string | undefined, never, Scope.Scope>) | undefined
  /**
   * Opens a channel to the client (the connection's `openChannel`), living in the scope (a session handler's:
   * the session's). The client decides: OpenSSH's ssh accepts `auth-agent@openssh.com` only with `-A`, `x11`
   * only with `-X`. Always set for the sessions `SshServer.serve` runs; `openChannel(session, ...)` is the same
   * with a typed failure when it is absent.
   */
  readonly openChannel?: Connection["openChannel"] | undefined
}

/**
 * A session as a handler sees it.
 *
 * @example
 * ```ts
 * const exec = (session: ServerSession, command: string) =>
 *   Effect.as(session.write(`you ran ${command}\n`), 0)
 * ```
 */
export interface ServerSession extends SessionPeer {
  readonly channel: SshChannel
  /** The pty the client asked for, if any. */
  readonly pty: Requests.PtyRequest | undefined
  /**
   * Environment the client sent (only names the server accepted), plus
   * `SSH_AUTH_SOCK` with agent forwarding, `DISPLAY` with X11 forwarding and `SSH_ORIGINAL_COMMAND` under a
   * force-command.
   */
  readonly env: Readonly<Record<string, string>>
  /** The forwarded agent's socket, when the client asked for agent forwarding and the server allows it. */
  readonly agentSocket?: string | undefined
  /** The proxy display (`localhost:10.0`), when the client asked for X11 forwarding and the server allows it. */
  readonly x11Display?: string | undefined
  /** Data from the client (the process's stdin). Ends at the client's EOF. */
  readonly stdin: Stream.Stream<Uint8Array, SshError.SshError>
  /**
   * Drains `stdin`, handing each batch to `f`, whose chunks they are to keep (see `SshChannel.consumeStdout`;
   * `channel.borrowStdout` lends them instead, zero-copy, valid only while `f`'s effect runs).
   */
  readonly consumeStdin: SshChannel["consumeStdout"]
  /**
   * Writes to the client's stdout (or stderr), waiting for window. Completes once every byte is sealed into a
   * packet: `data` may be reused or freed at once (`ProcessSession` frees what it read from the program).
   */
  readonly write: (data: Uint8Array | string, stream?: "stdout" | "stderr") => Effect.Effect<void, SshError.SshError>
  /** A sink writing to the client's stdout. */
  readonly stdout: Sink.Sink<void, Uint8Array, never, SshError.SshError>
  /** Called on window-change. */
  readonly onResize: (f: (size: Requests.WindowSize) => void) => void
  /** Called on signal (name without SIG). */
  readonly onSignal: (f: (signal: string) => void) => void
}

/** What a handler returns: an exit code, a full status, or nothing (exit code 0). */
export type SessionResult = number | ExitStatus | void

/** A session handler. It runs in a scope that closes with the channel. */
export type SessionHandler<A> = (session: ServerSession, arg: A) => Effect.Effect<SessionResult, SshError.SshError, Scope.Scope>

/** The session handlers of a server; a request without a handler is refused. */
export interface SessionHandlers {
  readonly exec?: SessionHandler<string> | undefined
  readonly shell?: SessionHandler<void> | undefined
  readonly subsystems?: Readonly<Record<string, SessionHandler<void>>> | undefined
  /** Which environment variables to accept (sshd's AcceptEnv); default LANG and LC_* (`decide.env` replaces it). */
  readonly acceptEnv?: ((name: string) => boolean) | undefined
  /** Whether to grant pty requests (default true; `decide.pty` replaces it). */
  readonly allowPty?: boolean | undefined
  /**
   * The decisions on each request, per user and per session (see `Server/Decisions`): each replaces the option
   * that was its default.
   */
  readonly decide?: Decisions.SessionDecisions | undefined
  /** Most environment variables a session accepts (default `DEFAULT_MAX_ENV_VARIABLES`). */
  readonly maxEnvVariables?: number | undefined
  /** Most bytes of environment (names and values, UTF-8) a session accepts (default `DEFAULT_MAX_ENV_BYTES`). */
  readonly maxEnvBytes?: number | undefined
}

/** Environment variables per session: sshd's limit (it refuses env once a session holds more than 128). */
export const DEFAULT_MAX_ENV_VARIABLES = 128

/**
 * Bytes of environment per session, names and values: 128 KiB, Linux's
 * limit on one environment string (MAX_ARG_STRLEN), so any variable a
 * program could be started with fits. sshd has no total, only its 256 KiB
 * packet limit per variable (129 × 256 KiB = 32 MiB per session).
 */
export const DEFAULT_MAX_ENV_BYTES = 128 * 1024

type Start =
  | { readonly _tag: "exec"; readonly command: string; readonly original?: string | undefined }
  | { readonly _tag: "shell" }
  | { readonly _tag: "subsystem"; readonly name: string }

const textEncoder = new TextEncoder()

/** `openChannel` for a session served without a connection to open channels on. */
const noChannels: Connection["openChannel"] = (channelType) =>
  Effect.fail(SshError.make(new SshError.ChannelOpenFailed({
    code: N.ChannelOpenFailure.ADMINISTRATIVELY_PROHIBITED,
    description: `this session cannot open ${channelType} channels`
  })))

/**
 * Opens a channel of `channelType` to the client of a session (or of any `SessionPeer`); closing the scope
 * closes it. Fails with `ChannelOpenFailed` when the client refuses it, or when the peer has no connection to
 * open it on.
 *
 * @example
 * ```ts
 * const exec = (session: ServerSession, _command: string) =>
 *   Effect.gen(function*() {
 *     const agent = yield* ServerSession.openChannel(session, "auth-agent@openssh.com")
 *     yield* agent.write(requestIdentities)
 *   })
 * ```
 */
export const openChannel = (
  peer: SessionPeer,
  channelType: string,
  data?: Uint8Array,
  options?: ChannelOptions
): Effect.Effect<SshChannel, SshError.SshError, Scope.Scope> => (peer.openChannel ?? noChannels)(channelType, data, options)

const defaultAcceptEnv = (name: string) => name === "LANG" || name.startsWith("LC_")

/**
 * Serves one session channel with the given handlers; returns when the channel is done.
 *
 * @example
 * ```ts
 * onChannelOpen: ({ channelType }) => Effect.succeed((channel) => ServerSession.serve(channel, peer, handlers))
 * ```
 */
export const serve = (
  channel: SshChannel,
  peer: SessionPeer,
  handlers: SessionHandlers
): Effect.Effect<void, SshError.SshError, Scope.Scope> =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const started = yield* Deferred.make<Start>()
    let agentSocket: string | undefined
    let x11Display: string | undefined
    let pty: Requests.PtyRequest | undefined
    const env: Record<string, string> = Object.create(null)
    /** Bytes of each accepted variable (name and value). */
    const envSizes = new Map<string, number>()
    let envBytes = 0
    const maxEnvVariables = handlers.maxEnvVariables ?? DEFAULT_MAX_ENV_VARIABLES
    const maxEnvBytes = handlers.maxEnvBytes ?? DEFAULT_MAX_ENV_BYTES
    const resizeListeners: Array<(size: Requests.WindowSize) => void> = []
    const signalListeners: Array<(signal: string) => void> = []
    const acceptEnv = handlers.acceptEnv ?? defaultAcceptEnv
    const decisions = handlers.decide ?? {}
    /** What a decision sees of this session, as it is now. */
    const context = (): Decisions.SessionContext => ({ ...peer, channelId: channel.localId, pty, env: { ...env } })
    const decide = <R>(decision: Decisions.Decision<R> | undefined, request: R, fallback: boolean) =>
      Decisions.decide(decision, request, context(), fallback)

    /** Under a force-command every start is an exec of it (what the client asked for is kept as SSH_ORIGINAL_COMMAND). */
    const forced = (start: Start): Start =>
      peer.forceCommand === undefined
        ? start
        : { _tag: "exec", command: peer.forceCommand, original: start._tag === "exec" ? start.command : undefined }

    const handlerFor = (start: Start): boolean =>
      start._tag === "exec"
        ? handlers.exec !== undefined
        : start._tag === "shell"
        ? handlers.shell !== undefined
        : handlers.subsystems?.[start.name] !== undefined

    /** The decision on what the client asked to start (before a force-command replaces it). */
    const decideStart = (asked: Start): Effect.Effect<boolean> =>
      asked._tag === "exec"
        ? decide(decisions.exec, { command: asked.command }, true)
        : asked._tag === "shell"
        ? decide(decisions.shell, {}, true)
        : decide(decisions.subsystem, { name: asked.name }, true)

    /** Agent forwarding, once per session and before it starts: the socket lives as long as the session. */
    const forwardAgent = Effect.suspend(() => {
      const agentForwarding = peer.agentForwarding
      if (agentForwarding === undefined || agentSocket !== undefined || Deferred.isDoneUnsafe(started)) {
        return Effect.succeed(false)
      }
      return Effect.flatMap(decide(decisions.agentForwarding, {}, true), (ok) =>
        !ok ? Effect.succeed(false) : Scope.provide(agentForwarding, scope).pipe(
          Effect.map((socketPath) => {
            agentSocket = socketPath
            return true
          }),
          Effect.orElseSucceed(() => false)
        ))
    })

    /** X11 forwarding, once per session and before it starts (sshd refuses a second x11-req): the proxy lives as long as the session. */
    const forwardX11 = (request: Messages.X11Request) =>
      Effect.suspend(() => {
        const x11Forwarding = peer.x11Forwarding
        if (x11Forwarding === undefined || x11Display !== undefined || Deferred.isDoneUnsafe(started)) {
          return Effect.succeed(false)
        }
        const asked = { singleConnection: request.singleConnection, authProtocol: request.authProtocol, screen: request.screen }
        return Effect.flatMap(decide(decisions.x11, asked, true), (ok) =>
          !ok ? Effect.succeed(false) : Effect.map(Scope.provide(x11Forwarding(request), scope), (display) => {
            x11Display = display
            return display !== undefined
          }))
      })

    const accepted = (ok: boolean, then: () => void): boolean => {
      if (ok) then()
      return ok
    }

    /**
     * One request, decoded at once (malformed data refuses it) and decided in the session's request fiber;
     * the state it changes is changed only once it is allowed. Requests come one after another, so nothing
     * changes between a check and its decision.
     */
    const onRequest = (request: string, data: Uint8Array): ReturnType<ChannelRequestHandler> => {
      switch (request) {
        case "auth-agent-req@openssh.com":
          return forwardAgent
        case Messages.RequestName.x11:
          return forwardX11(Messages.decodeX11Request(data))
        case "pty-req": {
          // one terminal per session, as sshd (which disconnects on a second one)
          if (pty !== undefined || Deferred.isDoneUnsafe(started)) return Effect.succeed(false)
          const asked = Requests.decodePtyRequest(data)
          return Effect.map(
            decide(decisions.pty, asked, handlers.allowPty !== false),
            (ok) => accepted(ok, () => pty = asked)
          )
        }
        case "env": {
          // the payload is name and value with their 4-byte lengths
          const size = data.length - 8
          // refused before decoding: a flood of oversized values costs no strings
          if (Deferred.isDoneUnsafe(started) || size > maxEnvBytes) return Effect.succeed(false)
          const { name, value } = Requests.decodeEnv(data)
          const previous = envSizes.get(name)
          const count = envSizes.size + (previous === undefined ? 1 : 0)
          const bytes = envBytes - (previous ?? 0) + size
          if (count > maxEnvVariables || bytes > maxEnvBytes) return Effect.succeed(false)
          const fallback = decisions.env === undefined && acceptEnv(name)
          return Effect.map(decide(decisions.env, { name, value }, fallback), (ok) =>
            accepted(ok, () => {
              env[name] = value
              envSizes.set(name, size)
              envBytes = bytes
            }))
        }
        case "exec":
        case "shell":
        case "subsystem": {
          if (Deferred.isDoneUnsafe(started)) return Effect.succeed(false)
          const asked: Start = request === "exec"
            ? { _tag: "exec", command: Requests.decodeString(data, "command") }
            : request === "shell"
            ? { _tag: "shell" }
            : { _tag: "subsystem", name: Requests.decodeString(data, "subsystem name") }
          const start = forced(asked)
          if (!handlerFor(start)) return Effect.succeed(false)
          return Effect.map(decideStart(asked), (ok) =>
            // start only once the success reply is sent, so no output can overtake it
            ok ? { success: true, afterReply: Effect.sync(() => Deferred.doneUnsafe(started, Effect.succeed(start))) } : false)
        }
        case "window-change": {
          const size = Requests.decodeWindowChange(data)
          return Effect.map(decide(decisions.windowChange, size, true), (ok) =>
            accepted(ok, () => {
              for (const f of resizeListeners) f(size)
            }))
        }
        case "signal": {
          const signal = Requests.checkSignalName(Requests.decodeString(data, "signal name"))
          return Effect.map(decide(decisions.signal, { signal }, true), (ok) =>
            accepted(ok, () => {
              for (const f of signalListeners) f(signal)
            }))
        }
        default:
          return Effect.succeed(false)
      }
    }

    channel.onRequest((request, data) =>
      Effect.suspend(() => {
        try {
          return onRequest(request, data)
        } catch {
          return Effect.succeed(false)
        }
      })
    )

    const start = yield* Deferred.await(started)
    const session: ServerSession = {
      ...peer,
      channel,
      openChannel: peer.openChannel ?? noChannels,
      pty,
      env: {
        ...env,
        ...(agentSocket === undefined ? {} : { SSH_AUTH_SOCK: agentSocket }),
        ...(x11Display === undefined ? {} : { DISPLAY: x11Display }),
        ...(start._tag === "exec" && start.original !== undefined ? { SSH_ORIGINAL_COMMAND: start.original } : {})
      },
      agentSocket,
      x11Display,
      stdin: channel.stdout,
      consumeStdin: channel.consumeStdout,
      write: (data, stream) =>
        channel.write(typeof data === "string" ? textEncoder.encode(data) : data, stream === "stderr" ? 1 : undefined),
      stdout: channel.stdin,
      onResize: (f) => void resizeListeners.push(f),
      onSignal: (f) => void signalListeners.push(f)
    }
    const result = yield* (start._tag === "exec"
      ? handlers.exec!(session, start.command)
      : start._tag === "shell"
      ? handlers.shell!(session, undefined)
      : handlers.subsystems![start.name]!(session, undefined)).pipe(
        Effect.catch((error: SshError.SshError) =>
          Effect.as(
            Effect.ignore(channel.write(textEncoder.encode(`effect-ssh: ${error.message}\n`), 1)),
            1 as SessionResult
          )
        )
      )
    yield* Effect.ignore(sendExit(channel, result))
  })

/**
 * Sends exit-status or exit-signal, then EOF (CLOSE follows when the channel's scope closes).
 *
 * @example
 * ```ts
 * yield* sendExit(channel, { _tag: "Exited", code: 0 })
 * ```
 */
export const sendExit = (channel: SshChannel, result: SessionResult): Effect.Effect<void, SshError.SshError> => {
  const status: ExitStatus = result === undefined
    ? { _tag: "Exited", code: 0 }
    : typeof result === "number"
    ? { _tag: "Exited", code: result }
    : result
  const request = status._tag === "Exited"
    ? channel.request("exit-status", Requests.encodeExitStatus(status.code), false)
    : status._tag === "Signaled"
    ? channel.request("exit-signal", Requests.encodeExitSignal(status), false)
    : Effect.succeed(true)
  return Effect.andThen(Effect.ignore(channel.eof), Effect.asVoid(request))
}
