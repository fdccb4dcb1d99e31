/**
 * What a server decides about the requests on a session channel, one shape
 * for all (paramiko's `check_channel_*_request`): a decision gets the
 * request and the session asking for it, and says yes or no as an Effect.
 * A refusal answers the request with CHANNEL_FAILURE (when the client wants
 * a reply) and leaves the session and the connection as they were.
 *
 * Decisions run in the session's own request fiber, one request after
 * another in the order they came, never on the connection's reading fiber:
 * a slow decision delays only its own session.
 *
 * Each decision, when given, replaces the option that was its default
 * (`allowPty`, `acceptEnv`, `agentForwarding`, ...); what the server enforces
 * regardless (a handler for the request, the environment limits, a user
 * certificate's permit-* extensions) still applies on top.
 *
 * @example
 * ```ts
 * const decide: Decisions.SessionDecisions = {
 *   pty: (_pty, session) => Effect.succeed(session.user !== "robot"),
 *   exec: ({ command }) => Effect.succeed(!command.startsWith("rm ")),
 *   env: ({ name, value }) => Effect.succeed(name === "LANG" && value.endsWith("UTF-8"))
 * }
 * SshServer.serve({ ...serverOptions, session: { ...serverOptions.session, decide } })
 * ```
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import type { PtyRequest, WindowSize } from "../Channel/Requests.ts"
import type { SessionPeer } from "../Channel/ServerSession.ts"

/**
 * The session a decision is about: its connection (user, addresses), its channel, and what it was given so far.
 *
 * @category models
 */
export interface SessionContext extends SessionPeer {
  /** Our number of the session's channel. */
  readonly channelId: number
  /** The pty the session holds, if one was granted. */
  readonly pty: PtyRequest | undefined
  /** The environment variables accepted so far. */
  readonly env: Readonly<Record<string, string>>
}

/**
 * A decision about one kind of request: `true` allows it, `false` refuses it.
 *
 * @category models
 */
export type Decision<Request> = (request: Request, session: SessionContext) => Effect.Effect<boolean>

/** An `exec` request: the command as the client sent it (before any force-command replaces it). @category models */
export interface ExecRequest {
  readonly command: string
}

/** A `shell` request. @category models */
export interface ShellRequest {}

/** A `subsystem` request, by name ("sftp"). @category models */
export interface SubsystemRequest {
  readonly name: string
}

/** An `env` request: one variable, name and value. @category models */
export interface EnvRequest {
  readonly name: string
  readonly value: string
}

/** A `signal` request: the signal's name without SIG ("TERM", "INT"). @category models */
export interface SignalRequest {
  readonly signal: string
}

/** An `auth-agent-req@openssh.com` request (`ssh -A`). @category models */
export interface AgentForwardingRequest {}

/** An `x11-req` request (`ssh -X`, `-Y`); the client's cookie stays with the server. @category models */
export interface X11Request {
  /** Forward only the first X11 connection. */
  readonly singleConnection: boolean
  /** e.g. "MIT-MAGIC-COOKIE-1". */
  readonly authProtocol: string
  readonly screen: number
}

/**
 * The decisions of a server's sessions; a decision left out takes its default.
 *
 * @example
 * ```ts
 * const decide: Decisions.SessionDecisions = { subsystem: ({ name }, session) => Effect.succeed(name === "sftp" && session.user === "files") }
 * ```
 * @category models
 */
export interface SessionDecisions {
  /** `pty-req`, seeing the terminal, its size and modes (default `allowPty`, itself true). */
  readonly pty?: Decision<PtyRequest> | undefined
  /** `exec`, seeing the command before anything runs it (default: allowed when there is an exec handler). */
  readonly exec?: Decision<ExecRequest> | undefined
  /** `shell` (default: allowed when there is a shell handler). */
  readonly shell?: Decision<ShellRequest> | undefined
  /** `subsystem`, by name (default: allowed when there is a handler of that name). */
  readonly subsystem?: Decision<SubsystemRequest> | undefined
  /** `env`, seeing name and value (default `acceptEnv` on the name, itself LANG and LC_*). */
  readonly env?: Decision<EnvRequest> | undefined
  /** `signal`: a refused signal is not delivered to the session (default: delivered). */
  readonly signal?: Decision<SignalRequest> | undefined
  /** `window-change`: a refused one is not delivered to the session (default: delivered). */
  readonly windowChange?: Decision<WindowSize> | undefined
  /** Agent forwarding, per session (default the server's `agentForwarding`, itself false). */
  readonly agentForwarding?: Decision<AgentForwardingRequest> | undefined
  /** X11 forwarding, per session; the forwarding policy's `x11`, when there is one, must allow it too. */
  readonly x11?: Decision<X11Request> | undefined
}

/**
 * Runs `decision` when there is one, else answers `fallback`. A decision that dies refuses (and is logged):
 * a bug in one decision costs one request, not the connection.
 *
 * @example
 * ```ts
 * const allowed = (handlers: ServerSession.SessionHandlers, command: string, session: Decisions.SessionContext) =>
 *   Decisions.decide(handlers.decide?.exec, { command }, session, true) // Effect<boolean>: true when no decision is set
 * ```
 * @category combinators
 */
export const decide = <Request>(
  decision: Decision<Request> | undefined,
  request: Request,
  session: SessionContext,
  fallback: boolean
): Effect.Effect<boolean> =>
  decision === undefined
    ? Effect.succeed(fallback)
    : Effect.suspend(() => decision(request, session)).pipe(
      Effect.catchDefect((defect) => Effect.as(Effect.logError("session decision failed; refusing the request", defect), false))
    )

/**
 * A decision allowing only the given users.
 *
 * @example
 * ```ts
 * SshServer.serve({ ...serverOptions, session: { ...serverOptions.session, decide: { pty: Decisions.users(["alice"]) } } })
 * ```
 * @category constructors
 */
export const users = (names: Iterable<string>): Decision<unknown> => {
  const allowed = new Set(names)
  return (_request, session) => Effect.succeed(allowed.has(session.user))
}

/**
 * A decision refusing every request of its kind.
 *
 * @example
 * ```ts
 * SshServer.serve({ ...serverOptions, session: { ...serverOptions.session, decide: { signal: Decisions.refuse } } })
 * ```
 * @category constructors
 */
export const refuse: Decision<unknown> = () => Effect.succeed(false)
