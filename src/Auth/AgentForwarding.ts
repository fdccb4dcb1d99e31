/**
 * Agent forwarding (RFC 9987 §7, OpenSSH's `auth-agent-req@openssh.com`
 * and `auth-agent@openssh.com`): programs on the server use the client's
 * ssh-agent through the SSH connection.
 *
 * Client side: a session asks for forwarding with `auth-agent-req@openssh.com`;
 * the server then opens one `auth-agent@openssh.com` channel per program
 * that connects to its agent socket, and the client pipes each to its local
 * agent. Server side: on that request the server listens on a fresh Unix
 * socket in a private directory, exports it to the session as
 * `SSH_AUTH_SOCK`, and turns each connection into such a channel. The bytes
 * are passed through untouched: the agent protocol is the agent's business.
 *
 * @example
 * ```ts
 * // client: forward $SSH_AUTH_SOCK to sessions of this connection
 * const ssh = yield* SshClient.connect({ ...options, forwardAgent: true })
 * const r = yield* ssh.run("ssh-add -l")   // lists the local agent's keys
 * ```
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Scope from "effect/Scope"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import type { Connection, ConnectionOptions, SshChannel } from "../Channel/Connection.ts"
import { bridge } from "../Forwarding/Bridge.ts"
import * as Listener from "../Forwarding/Listener.ts"
import { fromNetSocket } from "../internal/netSocket.ts"
import * as SshError from "../SshError.ts"
import * as N from "../Wire/MessageNumber.ts"
import * as AgentClient from "./AgentClient.ts"

/**
 * The channel request a client sends on a session to ask for agent forwarding.
 *
 * @example
 * ```ts
 * const channel = yield* ssh.openChannel("session")
 * yield* channel.request(AgentForwarding.REQUEST, new Uint8Array(0), false)
 * ```
 */
export const REQUEST = "auth-agent-req@openssh.com"

/**
 * The channel type a server opens for each connection to the forwarded agent.
 *
 * @example
 * ```ts
 * const channel = yield* ssh.connection.openChannel(AgentForwarding.CHANNEL_TYPE)
 * ```
 */
export const CHANNEL_TYPE = "auth-agent@openssh.com"

const agentFailed = (message: string) => SshError.make(new SshError.AgentFailed({ message }))

/**
 * Client side: the `onChannelOpen` handler of a connection that forwards
 * the agent at `socketPath`: accepts `auth-agent@openssh.com` channels and
 * pipes each to a new connection to the agent; refuses every other type.
 *
 * @example
 * ```ts
 * Connection.make(transport, { onChannelOpen: AgentForwarding.acceptChannels("/tmp/ssh-XXXX/agent.1") })
 * ```
 */
export const acceptChannels = (socketPath: string): NonNullable<ConnectionOptions["onChannelOpen"]> => (incoming) =>
  incoming.channelType === CHANNEL_TYPE
    ? Effect.flatMap(incoming.accept(), (channel) => Effect.ignore(bridge(channel, fromNetSocket(() => net.connect({ path: socketPath, allowHalfOpen: true })))))
    : incoming.reject(N.ChannelOpenFailure.ADMINISTRATIVELY_PROHIBITED, `${incoming.channelType} channels are not accepted`)

/**
 * Client side: the same connection, whose new session channels ask the
 * server for agent forwarding before anything else is requested on them.
 * (OpenSSH sends the request without wanting a reply; so do we.)
 *
 * @example
 * ```ts
 * const forwarding = AgentForwarding.requestingSessions(ssh.connection)
 * yield* Session.exec(forwarding, "ssh-add -l")
 * ```
 */
export const requestingSessions = (connection: Connection): Connection => ({
  ...connection,
  openChannel: (channelType, data) =>
    Effect.tap(connection.openChannel(channelType, data), (channel) =>
      channelType === "session" ? channel.request(REQUEST, new Uint8Array(0), false) : Effect.void)
})

/**
 * Server side: listens on a Unix socket in a new private (0700) directory;
 * each connection to it becomes an `auth-agent@openssh.com` channel opened
 * with `openChannel` (to the client, which pipes it to its agent). Returns
 * the socket path, for the session's `SSH_AUTH_SOCK`. Closing the scope
 * stops listening, ends the connections and removes the directory.
 *
 * @example
 * ```ts
 * const socketPath = yield* AgentForwarding.listen(ssh.connection.openChannel)
 * ```
 */
export const listen = (
  openChannel: (channelType: string) => Effect.Effect<SshChannel, SshError.SshError, Scope.Scope>
): Effect.Effect<string, SshError.SshError, Scope.Scope> =>
  Effect.gen(function*() {
    const dir = yield* Effect.acquireRelease(
      Effect.try({
        try: () => fs.mkdtempSync(path.join(os.tmpdir(), "effect-ssh-agent-")),
        catch: (cause) => agentFailed(`cannot create the agent socket directory: ${String(cause)}`)
      }),
      (created) => Effect.sync(() => fs.rmSync(created, { recursive: true, force: true }))
    )
    const socketPath = path.join(dir, `agent.${process.pid}`)
    yield* Effect.mapError(
      Listener.listen({ path: socketPath }, (conn) =>
        Effect.scoped(Effect.gen(function*() {
          const channel = yield* openChannel(CHANNEL_TYPE)
          yield* bridge(channel, fromNetSocket(() => conn))
        })).pipe(Effect.ignore)),
      (error) => agentFailed(`cannot listen on ${socketPath}: ${error.reason.message}`)
    )
    return socketPath
  })

/**
 * The local agent socket to forward: the given path, or `SSH_AUTH_SOCK` for
 * `true`; fails with `AgentFailed` when there is none.
 *
 * @example
 * ```ts
 * AgentForwarding.localSocket(true) // Effect<"/tmp/ssh-XXXX/agent.1234">
 * ```
 */
export const localSocket = (forward: true | string): Effect.Effect<string, SshError.SshError> => {
  const socketPath = AgentClient.socketPath(forward === true ? undefined : forward)
  return socketPath === undefined
    ? Effect.fail(agentFailed("agent forwarding needs an agent: SSH_AUTH_SOCK is not set"))
    : Effect.succeed(socketPath)
}
