/**
 * What a server takes beyond sessions and forwarding: channel types and
 * global requests of the application's own (paramiko's
 * `check_channel_request` and `check_global_request`), each by name.
 *
 * A channel handler gets the client's CHANNEL_OPEN as a value and accepts it
 * (the channel lives in the handler's scope) or rejects it with a reason; a
 * handler that does neither refuses it. A global-request handler answers
 * success, with or without reply data, or failure. Both run in fibers of
 * their own, never on the connection's reading fiber. Types and names
 * without a handler are refused as sshd refuses them: channels with
 * ADMINISTRATIVELY_PROHIBITED, global requests (`keepalive@openssh.com`
 * among them) with REQUEST_FAILURE.
 *
 * @example
 * ```ts
 * SshServer.serve({
 *   ...serverOptions,
 *   channels: {
 *     "echo@example.com": (incoming) =>
 *       Effect.flatMap(incoming.accept(), (channel) => channel.stdout.pipe(Stream.run(channel.stdin)))
 *   },
 *   globalRequests: { "time@example.com": () => Effect.succeed(new TextEncoder().encode(new Date().toISOString())) }
 * })
 * ```
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { Connection, IncomingChannel } from "../Channel/Connection.ts"
import * as ForwardingMessages from "../Forwarding/Messages.ts"
import type * as SshError from "../SshError.ts"

/**
 * The authenticated connection a handler serves: who, from where, and a way to open channels to the client.
 *
 * @category models
 */
export interface ConnectionPeer {
  readonly user: string
  readonly remoteAddress: string
  readonly remotePort: number
  readonly localAddress?: string | undefined
  readonly localPort?: number | undefined
  /**
   * Opens a channel to the client; closing the scope closes it. Fails with `ChannelOpenFailed` when the
   * client refuses it (OpenSSH's ssh takes only the types it asked for: agent and X11 channels, forwardings).
   */
  readonly openChannel: Connection["openChannel"]
}

/**
 * Serves one channel type: accept (`incoming.accept()`) and use the channel, or reject it.
 *
 * @category models
 */
export type ChannelHandler = (incoming: IncomingChannel, peer: ConnectionPeer) => Effect.Effect<void, SshError.SshError, Scope.Scope>

/**
 * Answers one global request: `true` for success, reply data for success with that data, `false` for failure.
 *
 * @category models
 */
export type GlobalRequestHandler = (data: Uint8Array, peer: ConnectionPeer) => Effect.Effect<boolean | Uint8Array>

/**
 * Channel types the server serves itself: a handler of one of these names is never consulted.
 *
 * @example
 * ```ts
 * Extensions.builtInChannelTypes.has("session") // true
 * ```
 * @category constants
 */
export const builtInChannelTypes: ReadonlySet<string> = new Set([
  "session",
  ForwardingMessages.ChannelType.directTcpip,
  ForwardingMessages.ChannelType.directStreamlocal
])

/**
 * The handler for a channel type, if the application has one and the type is not built in.
 *
 * @example
 * ```ts
 * const handlerOf = (incoming: Connection.IncomingChannel) =>
 *   Extensions.channelHandler(serverOptions.channels, incoming.channelType) // undefined for "session"
 * ```
 * @category combinators
 */
export const channelHandler = (
  handlers: Readonly<Record<string, ChannelHandler>> | undefined,
  channelType: string
): ChannelHandler | undefined =>
  handlers === undefined || builtInChannelTypes.has(channelType) || !Object.hasOwn(handlers, channelType)
    ? undefined
    : handlers[channelType]

/**
 * The handler for a global request name, if the application has one (a server's, or a client's).
 *
 * @example
 * ```ts
 * Extensions.globalRequestHandler(serverOptions.globalRequests, "keepalive@openssh.com") // undefined: it fails, as sshd answers it
 * ```
 * @category combinators
 */
export const globalRequestHandler = <Handler = GlobalRequestHandler>(
  handlers: Readonly<Record<string, Handler>> | undefined,
  name: string
): Handler | undefined =>
  handlers === undefined || !Object.hasOwn(handlers, name) ? undefined : handlers[name]

const EMPTY = new Uint8Array(0)

/**
 * A handler's answer as the connection sends it: the reply data of REQUEST_SUCCESS, or undefined for
 * REQUEST_FAILURE.
 *
 * @example
 * ```ts
 * Extensions.globalReply(true)  // Uint8Array(0)
 * Extensions.globalReply(false) // undefined
 * ```
 * @category combinators
 */
export const globalReply = (answer: boolean | Uint8Array): Uint8Array | undefined =>
  answer === true ? EMPTY : answer === false ? undefined : answer

/**
 * Runs a global-request handler's answer (a server's or a client's), a defect in it answering failure (and
 * logged) rather than ending the connection.
 *
 * @example
 * ```ts
 * const onGlobalRequest = (name: string, data: Uint8Array, peer: Extensions.ConnectionPeer) => {
 *   const handler = Extensions.globalRequestHandler(serverOptions.globalRequests, name)
 *   return handler === undefined ? Effect.succeed(undefined) : Extensions.runGlobalRequest(() => handler(data, peer))
 * }
 * ```
 * @category combinators
 */
export const runGlobalRequest = (answer: () => Effect.Effect<boolean | Uint8Array>): Effect.Effect<Uint8Array | undefined> =>
  Effect.suspend(answer).pipe(
    Effect.map(globalReply),
    Effect.catchDefect((defect) => Effect.as(Effect.logError("global request handler failed; answering failure", defect), undefined))
  )
