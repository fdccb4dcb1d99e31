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
import * as Fiber from "effect/Fiber"
import * as Scope from "effect/Scope"
import type * as Socket from "effect/socket/Socket"
import * as Stream from "effect/Stream"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import type { Connection, ConnectionOptions, SshChannel } from "../Channel/Connection.ts"
import { utf8 } from "../internal/bytes.ts"
import { fromNetSocket } from "../internal/netSocket.ts"
import * as SshError from "../SshError.ts"
import * as N from "../Wire/MessageNumber.ts"
import * as AgentClient from "./AgentClient.ts"

/**
 * The channel request a client sends on a session to ask for agent forwarding.
 *
 * @example
 * ```ts
 * yield* channel.request(AgentForwarding.REQUEST, new Uint8Array(0), false)
 * ```
 */
export const REQUEST = "auth-agent-req@openssh.com"

/**
 * The channel type a server opens for each connection to the forwarded agent.
 *
 * @example
 * ```ts
 * const channel = yield* connection.openChannel(AgentForwarding.CHANNEL_TYPE)
 * ```
 */
export const CHANNEL_TYPE = "auth-agent@openssh.com"

const agentFailed = (message: string) => SshError.make(new SshError.AgentFailed({ message }))

/**
 * Copies bytes both ways between a channel and a socket until the socket's
 * side ends: the channel's EOF half-closes the socket, the socket's end
 * sends EOF on the channel. The socket is closed with the scope.
 *
 * @example
 * ```ts
 * yield* bridge(channel, fromNetSocket(() => net.connect({ path })))
 * ```
 */
export const bridge = (channel: SshChannel, socket: Socket.Socket): Effect.Effect<void, never, Scope.Scope> =>
  Effect.gen(function*() {
    const reader = yield* Effect.orElseSucceed(socket.reader, () => undefined)
    if (reader === undefined) return
    const toSocket = Effect.scoped(Effect.gen(function*() {
      // releasing the writer half-closes the socket: the program sees the end of its peer's input
      const writer = yield* socket.writer
      yield* Stream.runForEach(channel.stdout, (chunk) => writer.write(chunk))
    }))
    yield* Effect.forkScoped(Effect.ignore(toSocket))
    yield* Effect.ignore(Effect.forever(
      Effect.flatMap(reader.pull, (chunks) =>
        Effect.forEach(chunks, (chunk) => channel.write(typeof chunk === "string" ? utf8(chunk) : chunk), {
          discard: true
        }))
    ))
    yield* Effect.ignore(channel.eof)
  })

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
    ? Effect.flatMap(incoming.accept(), (channel) => bridge(channel, fromNetSocket(() => net.connect({ path: socketPath }))))
    : incoming.reject(N.ChannelOpenFailure.ADMINISTRATIVELY_PROHIBITED, `${incoming.channelType} channels are not accepted`)

/**
 * Client side: the same connection, whose new session channels ask the
 * server for agent forwarding before anything else is requested on them.
 * (OpenSSH sends the request without wanting a reply; so do we.)
 *
 * @example
 * ```ts
 * const forwarding = AgentForwarding.requestingSessions(connection)
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
 * const socketPath = yield* AgentForwarding.listen(connection.openChannel)
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
    const context = yield* Effect.context<never>()
    const fibers = new Set<Fiber.Fiber<void>>()
    const forward = (conn: net.Socket) =>
      Effect.scoped(Effect.gen(function*() {
        const channel = yield* openChannel(CHANNEL_TYPE)
        yield* bridge(channel, fromNetSocket(() => conn))
      })).pipe(Effect.ensuring(Effect.sync(() => conn.destroy())), Effect.ignore)
    const server = net.createServer((conn) => {
      const fiber = Effect.runForkWith(context)(forward(conn))
      fibers.add(fiber)
      fiber.addObserver(() => fibers.delete(fiber))
    })
    yield* Effect.acquireRelease(
      Effect.callback<void, SshError.SshError>((resume) => {
        server.once("error", (cause) => resume(Effect.fail(agentFailed(`cannot listen on ${socketPath}: ${cause.message}`))))
        server.listen(socketPath, () => resume(Effect.void))
      }),
      () =>
        Effect.andThen(
          Effect.sync(() => server.close()),
          Fiber.interruptAll([...fibers])
        )
    )
    return socketPath
  })

/**
 * The local agent socket to forward: the given path, or `SSH_AUTH_SOCK` for
 * `true`; fails with `AgentFailed` when there is none.
 *
 * @example
 * ```ts
 * localSocket(true) // Effect<"/tmp/ssh-XXXX/agent.1234">
 * ```
 */
export const localSocket = (forward: true | string): Effect.Effect<string, SshError.SshError> => {
  const socketPath = AgentClient.socketPath(forward === true ? undefined : forward)
  return socketPath === undefined
    ? Effect.fail(agentFailed("agent forwarding needs an agent: SSH_AUTH_SOCK is not set"))
    : Effect.succeed(socketPath)
}
