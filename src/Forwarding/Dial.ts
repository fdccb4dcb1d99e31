/**
 * Connecting to a forwarding's target, TCP or Unix socket, with the failure
 * as a `ForwardFailed` that names the address and the system's reason.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as net from "node:net"
import * as SshError from "../SshError.ts"
import { describeAddress } from "./Listener.ts"

/** A TCP target or a Unix socket. */
export type DialTarget = { readonly host: string; readonly port: number } | { readonly path: string }

/**
 * Connects (half-open allowed, Nagle off); the connection is the caller's to destroy. Interrupting the wait
 * destroys it.
 *
 * @example
 * ```ts
 * const conn = yield* Dial.dial({ host: "127.0.0.1", port: 8080 })
 * ```
 */
export const dial = (target: DialTarget): Effect.Effect<net.Socket, SshError.SshError> =>
  Effect.callback<net.Socket, SshError.SshError>((resume) => {
    const conn = "path" in target
      ? net.connect({ path: target.path, allowHalfOpen: true })
      : net.connect({ host: target.host, port: target.port, allowHalfOpen: true, noDelay: true })
    const onError = (cause: NodeJS.ErrnoException) => {
      conn.destroy()
      const address = describeAddress(target)
      resume(Effect.fail(SshError.make(new SshError.ForwardFailed({
        kind: "connect",
        address,
        message: `cannot connect to ${address}: ${cause.code ?? cause.message}`,
        cause
      }))))
    }
    conn.once("error", onError)
    conn.once("connect", () => {
      conn.off("error", onError)
      conn.pause()
      resume(Effect.succeed(conn))
    })
    return Effect.sync(() => conn.destroy())
  })
