/**
 * A scoped listening socket, TCP or Unix, whose every accepted connection is
 * handled in a fiber of its own: the local end of `-L`, `-D`, and of the
 * server's `tcpip-forward`. Closing the scope stops listening, ends the
 * connections' fibers and, for a Unix socket, removes the path it created.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import type * as Scope from "effect/Scope"
import * as fs from "node:fs"
import * as net from "node:net"
import * as SshError from "../SshError.ts"

/** Where to listen: a TCP address (`host` omitted or `"localhost"`: loopback; `""` or `"*"`: every interface) or a Unix socket. */
export type ListenAt = { readonly host?: string | undefined; readonly port: number } | { readonly path: string }

/** Where a listener is bound: the port is the one the system chose when 0 was asked. */
export type BoundAt = { readonly host: string; readonly port: number } | { readonly path: string }

/** `host:port` (IPv6 in brackets) or the path, for messages. */
export const describeAddress = (at: ListenAt | BoundAt | { readonly host: string; readonly port: number }): string =>
  "path" in at ? at.path : `${at.host === undefined ? "localhost" : at.host.includes(":") ? `[${at.host}]` : at.host}:${at.port}`

/** The host Node should bind for a requested one (undefined: every interface). */
export const bindHost = (host: string | undefined): string | undefined =>
  host === undefined || host === "localhost" ? "127.0.0.1" : host === "" || host === "*" ? undefined : host

const bindFailed = (at: ListenAt, cause: unknown) => {
  const address = describeAddress("path" in at ? at : { host: bindHost(at.host) ?? "*", port: at.port })
  return SshError.make(new SshError.ForwardFailed({
    kind: "bind",
    address,
    message: `cannot listen on ${address}: ${(cause as NodeJS.ErrnoException)?.code ?? ""} ${(cause as Error)?.message ?? String(cause)}`.replace(/\s+/g, " ").trim(),
    cause
  }))
}

/**
 * Listens at `at`; `onConnection` runs for each accepted connection (which starts paused, half-open allowed)
 * until its effect ends, when the connection is destroyed.
 *
 * @example
 * ```ts
 * const bound = yield* Listener.listen({ port: 0 }, (conn) => Effect.scoped(Bridge.bridge(channel, fromNetSocket(() => conn))))
 * bound // { host: "127.0.0.1", port: 40123 }
 * ```
 */
export const listen = (
  at: ListenAt,
  onConnection: (conn: net.Socket) => Effect.Effect<void>
): Effect.Effect<BoundAt, SshError.SshError, Scope.Scope> =>
  Effect.gen(function*() {
    const context = yield* Effect.context<never>()
    const fibers = new Set<Fiber.Fiber<void>>()
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true })
    server.on("connection", (conn) => {
      const fiber = Effect.runForkWith(context)(
        onConnection(conn).pipe(Effect.ensuring(Effect.sync(() => conn.destroy())))
      )
      fibers.add(fiber)
      fiber.addObserver(() => fibers.delete(fiber))
    })
    yield* Effect.acquireRelease(
      Effect.callback<void, SshError.SshError>((resume) => {
        server.once("error", (cause) => resume(Effect.fail(bindFailed(at, cause))))
        if ("path" in at) server.listen(at.path, () => resume(Effect.void))
        else server.listen({ host: bindHost(at.host), port: at.port, exclusive: true }, () => resume(Effect.void))
      }),
      () =>
        // stop accepting now; the connections still open end with their fibers
        Effect.sync(() => server.close()).pipe(
          Effect.andThen(Effect.suspend(() => Fiber.interruptAll([...fibers]))),
          Effect.andThen(Effect.sync(() => {
            if ("path" in at) fs.rmSync(at.path, { force: true })
          }))
        )
    )
    const address = server.address()
    if (address === null || typeof address === "string") return { path: "path" in at ? at.path : String(address) }
    return { host: address.address, port: address.port }
  })
