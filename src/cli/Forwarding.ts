/**
 * The forwardings of `effect-ssh exec`, as ssh sets them up: `-L` and `-D`
 * listeners here, `-R` listeners on the server (with ssh's "Allocated port"
 * line for port 0), and `-W`, which makes our stdin and stdout one
 * connection through the server. A forwarding that cannot be set up is a
 * warning, or fatal with `ExitOnForwardFailure=yes`.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Socket from "effect/socket/Socket"
import * as Stream from "effect/Stream"
import type * as SshClient from "../Client.ts"
import type * as SshConfig from "../Config/SshConfig.ts"
import type { ListenAt } from "../Forwarding/Listener.ts"
import * as ForwardSpec from "../Forwarding/ForwardSpec.ts"
import { utf8 } from "../internal/bytes.ts"
import * as SshError from "../SshError.ts"
import type { ForwardingArgs } from "./Args.ts"

/**
 * Where a listener of ours binds, as ssh decides: no bind address means
 * loopback, or every interface with `GatewayPorts=yes`.
 *
 * @example
 * ```ts
 * localListenAt({ port: 8080 }, false)           // { host: "localhost", port: 8080 }
 * localListenAt({ port: 8080 }, true)            // { host: "*", port: 8080 }
 * localListenAt({ host: "::1", port: 8080 }, true) // { host: "::1", port: 8080 }
 * ```
 */
export const localListenAt = (listen: ForwardSpec.Listen, gatewayPorts: boolean): ListenAt => {
  if (ForwardSpec.isUnixSocket(listen)) return listen
  const at = ForwardSpec.localBindAddress(listen.host, gatewayPorts)
  const host = at._tag === "AllInterfaces" ? "*" : at._tag === "Loopback" ? "localhost" : at.address
  return { host, port: listen.port }
}

/**
 * What a remote listener asks the server for: the bind address ssh sends
 * (none → "localhost", "*" → every interface).
 *
 * @example
 * ```ts
 * remoteListenAt({ port: 0 })              // { host: "localhost", port: 0 }
 * remoteListenAt({ host: "*", port: 8080 }) // { host: "", port: 8080 }
 * ```
 */
export const remoteListenAt = (listen: ForwardSpec.Listen): ListenAt =>
  ForwardSpec.isUnixSocket(listen) ? listen : { host: ForwardSpec.remoteBindAddress(listen.host), port: listen.port }

/**
 * The line ssh prints when the server chose the port of a remote forwarding.
 *
 * @example
 * ```ts
 * allocatedPortLine(40123, { host: "localhost", port: 80 })
 * // "Allocated port 40123 for remote forward to localhost:80\n"
 * ```
 */
export const allocatedPortLine = (port: number, target: ForwardSpec.Target): string =>
  `Allocated port ${port} for remote forward to ${ForwardSpec.isUnixSocket(target) ? target.path : `${target.host}:${target.port}`}\n`

/**
 * Sets up every `-L`, `-R` and `-D` in order; they last until the scope closes. A failure is passed to `warn`
 * and the rest go on, unless `ExitOnForwardFailure=yes`, when it is the result.
 *
 * @example
 * ```ts
 * yield* startForwardings(ssh, args.forwarding, (error) => Effect.sync(() => process.stderr.write(errorLine(error))))
 * ```
 */
export const startForwardings = (
  ssh: SshClient.SshConnection,
  forwarding: ForwardingArgs,
  warn: (error: SshError.SshError) => Effect.Effect<void>,
  write: (text: string) => void = (text) => void process.stderr.write(text)
): Effect.Effect<void, SshError.SshError, Scope.Scope> => {
  const attempt = (setup: Effect.Effect<unknown, SshError.SshError, Scope.Scope>) =>
    forwarding.exitOnForwardFailure ? Effect.asVoid(setup) : Effect.catch(Effect.asVoid(setup), warn)
  const local = forwarding.local.map(({ listen, connect }) =>
    ssh.forwardLocal({ listen: localListenAt(listen, forwarding.gatewayPorts), to: connect })
  )
  const dynamic = forwarding.dynamic.map(({ listen }) => ssh.socks({ listen: localListenAt(listen, forwarding.gatewayPorts) }))
  const remote = forwarding.remote.map(({ listen, connect }) =>
    Effect.tap(ssh.forwardRemote({ bind: remoteListenAt(listen), to: connect }), ({ address }) =>
      Effect.sync(() => {
        if (!ForwardSpec.isUnixSocket(listen) && listen.port === 0 && "port" in address) write(allocatedPortLine(address.port, connect))
      }))
  )
  return Effect.forEach([...local, ...remote, ...dynamic], attempt, { discard: true })
}

const isEnd = (error: Socket.SocketError): boolean =>
  error.reason._tag === "SocketCloseError" && error.reason.code === 1000

/** A failure of the tunnel's socket as the `SshError` under it, when there is one. */
const tunnelError = (error: Socket.SocketError): SshError.SshError => {
  const cause = "cause" in error.reason ? error.reason.cause : undefined
  return cause instanceof SshError.SshError
    ? cause
    : SshError.make(new SshError.ConnectionClosed({ message: `the -W connection failed: ${error.message}` }))
}

/**
 * `-W`: a connection to `target` made by the server, fed from `input` (its end sends EOF) and copied to
 * `output` until the other side ends it. Succeeds with 0, ssh's exit status for it.
 *
 * @example
 * ```ts
 * const code = yield* stdioForward(ssh, { host: "inner", port: 22 }, stdinStream, writeTo(process.stdout))
 * ```
 */
export const stdioForward = <E>(
  ssh: SshClient.SshConnection,
  target: ForwardSpec.Target,
  input: Stream.Stream<Uint8Array, E>,
  output: (chunk: Uint8Array) => Effect.Effect<void>
): Effect.Effect<number, SshError.SshError, Scope.Scope> =>
  Effect.gen(function*() {
    const socket = yield* ssh.forwardOut(target)
    const reader = yield* Effect.mapError(socket.reader, tunnelError)
    // releasing the writer sends EOF; the copy out goes on until the other end closes
    yield* Effect.forkScoped(Effect.ignore(Effect.scoped(Effect.flatMap(socket.writer, (writer) =>
      Stream.runForEachArray(input, (chunks) => writer.writeAll(chunks))))))
    const copyOut = Effect.forever(
      Effect.flatMap(reader.pull, (chunks) =>
        Effect.forEach(chunks, (chunk) => output(typeof chunk === "string" ? utf8(chunk) : chunk), { discard: true })),
      { disableYield: true }
    )
    yield* Effect.catch(copyOut, (error) => isEnd(error) ? Effect.void : Effect.fail(tunnelError(error)))
    return 0
  })

/**
 * The error `-X` gets: there is no X11 forwarding in the client yet.
 *
 * @example
 * ```ts
 * if (args.x11) return yield* Effect.fail(x11Unavailable)
 * ```
 */
export const x11Unavailable: SshError.SshError = SshError.make(new SshError.NotImplemented({
  message: "X11 forwarding (-X, -Y) is not available yet"
}))

const listenOf = (end: SshConfig.ForwardEnd): ForwardSpec.Listen =>
  end._tag === "Path" ? { path: end.path } : { host: end.host, port: end.port }

const targetOf = (end: SshConfig.ForwardEnd): ForwardSpec.Target =>
  end._tag === "Path" ? { path: end.path } : { host: end.host ?? "localhost", port: end.port }

/** One forwarding's ends as text, to tell a configured one from the same given on the command line. */
const describeForward = (forward: { readonly listen: ForwardSpec.Listen; readonly connect?: ForwardSpec.Target | undefined }): string => {
  const end = (e: ForwardSpec.Listen | ForwardSpec.Target) => "path" in e ? e.path : `${e.host ?? ""}:${e.port}`
  return forward.connect === undefined ? end(forward.listen) : `${end(forward.listen)} ${end(forward.connect)}`
}

const union = <F extends { readonly listen: ForwardSpec.Listen; readonly connect?: ForwardSpec.Target | undefined }>(
  given: ReadonlyArray<F>,
  configured: ReadonlyArray<F>
): ReadonlyArray<F> => {
  const seen = new Set(given.map(describeForward))
  return [...given, ...configured.filter((f) => !seen.has(describeForward(f)) && seen.add(describeForward(f)) !== undefined)]
}

/**
 * The forwardings of the command line (`-L`, `-R`, `-D`, `-o LocalForward=...`) and of the host's ssh_config
 * (LocalForward, RemoteForward, DynamicForward, ExitOnForwardFailure, GatewayPorts), as ssh sets up both; one
 * given both ways is set up once.
 *
 * @example
 * ```ts
 * yield* startForwardings(ssh, configuredForwarding(args.forwarding, resolved), warn)
 * ```
 */
export const configuredForwarding = (flags: ForwardingArgs, resolved: SshConfig.ResolvedConfig): ForwardingArgs => ({
  ...flags,
  local: union(flags.local, resolved.localForwards.flatMap((f) =>
    f.connect === undefined ? [] : [{ listen: listenOf(f.listen), connect: targetOf(f.connect) }])),
  // a RemoteForward without a target (remote SOCKS) is not one -R sets up here either
  remote: union(flags.remote, resolved.remoteForwards.flatMap((f) =>
    f.connect === undefined ? [] : [{ listen: listenOf(f.listen), connect: targetOf(f.connect) }])),
  dynamic: union(flags.dynamic, resolved.dynamicForwards.map((f) => ({ listen: listenOf(f.listen) }))),
  exitOnForwardFailure: flags.exitOnForwardFailure || resolved.exitOnForwardFailure,
  gatewayPorts: flags.gatewayPorts || resolved.gatewayPorts
})
