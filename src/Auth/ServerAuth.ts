/**
 * Server user authentication (RFC 4252): answers the ssh-userauth service,
 * then runs the configured Effect handlers for none, password, publickey
 * (with the pk_ok query and signature verification) and keyboard-interactive
 * (any number of rounds). Method chains work like sshd's
 * `AuthenticationMethods`: a method that completes only part of a chain gets
 * a partial-success failure listing what is still required.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as SshError from "../SshError.ts"
import * as N from "../Wire/MessageNumber.ts"
import { build } from "../Wire/Writer.ts"
import type { Transport } from "../Transport/Transport.ts"
import { core, decodeServiceName } from "../Transport/Transport.ts"
import * as Messages from "./Messages.ts"
import * as PublicKey from "./PublicKey.ts"
import * as Signature from "./Signature.ts"

/** Who is trying to log in. */
export interface AuthContext {
  readonly user: string
  readonly remoteAddress: string
  readonly remotePort: number
}

/** Authentication handlers of a server; a method without a handler is not offered. */
export interface ServerAuthOptions {
  readonly none?: ((ctx: AuthContext) => Effect.Effect<boolean>) | undefined
  readonly password?: ((ctx: AuthContext & { readonly password: Redacted.Redacted<string> }) => Effect.Effect<boolean>) | undefined
  /** Is this key allowed for the user? (The signature is verified by us.) */
  readonly publicKey?: ((ctx: AuthContext & { readonly key: PublicKey.PublicKey }) => Effect.Effect<boolean>) | undefined
  /** Runs any number of prompt rounds through `prompt`; returns whether the user passed. */
  readonly keyboardInteractive?: ((ctx: AuthContext & {
    readonly submethods: string
    readonly prompt: (request: Messages.InfoRequest) => Effect.Effect<ReadonlyArray<string>, SshError.SshError>
  }) => Effect.Effect<boolean, SshError.SshError>) | undefined
  /** Sent before authentication (USERAUTH_BANNER). */
  readonly banner?: string | undefined
  /** Required method chains, like sshd's AuthenticationMethods ("publickey,password" = [["publickey","password"]]). Default: any one method. */
  readonly methods?: ReadonlyArray<ReadonlyArray<string>> | undefined
  /** Failed attempts before disconnecting (default 6, as sshd's MaxAuthTries). */
  readonly maxTries?: number | undefined
X
  readonly loginGraceTime?: Duration.Input | undefined
}

/** A successful authentication. */
export interface Authenticated {
  readonly user: string
  readonly methods: ReadonlyArray<string>
}

const protocolError = (message: string) => Effect.fail(SshError.make(new SshError.ProtocolError({ message })))

/** Methods still needed: for each chain whose completed prefix matches, its next method. */
const nextMethods = (
  chains: ReadonlyArray<ReadonlyArray<string>>,
  done: ReadonlyArray<string>
): ReadonlyArray<string> => {
  const next = new Set<string>()
  for (const chain of chains) {
    if (done.every((m) => chain.includes(m))) {
      const remaining = chain.filter((m) => !done.includes(m))
      if (remaining.length > 0) next.add(remaining[0]!)
    }
  }
  return [...next]
}

const chainComplete = (chains: ReadonlyArray<ReadonlyArray<string>>, done: ReadonlyArray<string>): boolean =>
  chains.some((chain) => chain.every((m) => done.includes(m)))

/**
 * Runs the server side of authentication on a transport that finished its
 * first key exchange. Fails (after sending DISCONNECT) when the client runs
 * out of tries or time.
 *
 * @example
 * ```ts
 * const { user } = yield* ServerAuth.authenticate(transport, { password: ({ password }) => Effect.succeed(Redacted.value(password) === "pw") }, peer)
 * ```
 */
export const authenticate = (
  transport: Transport,
  options: ServerAuthOptions,
  peer: { readonly remoteAddress: string; readonly remotePort: number }
): Effect.Effect<Authenticated, SshError.SshError> => {
  const offered = [
    ...(options.publicKey ? ["publickey"] : []),
    ...(options.password ? ["password"] : []),
    ...(options.keyboardInteractive ? ["keyboard-interactive"] : [])
  ]
  const chains = options.methods ?? offered.map((m) => [m])
  const maxTries = options.maxTries ?? 6
  const grace = options.loginGraceTime ?? Duration.seconds(120)

  const run = Effect.gen(function*() {
    const request = yield* transport.receive
    if (request[0] !== N.SERVICE_REQUEST) return yield* protocolError(`expected SERVICE_REQUEST, got message ${request[0]}`)
    const service = yield* core(() => decodeServiceName(request))
    if (service !== "ssh-userauth") {
      yield* transport.disconnect(N.DisconnectReason.SERVICE_NOT_AVAILABLE, `service ${service} not available`)
      return yield* Effect.fail(SshError.make(new SshError.ProtocolError({ message: `client asked for service ${service}` })))
    }
    yield* transport.send(build((w) => w.byte(N.SERVICE_ACCEPT).string("ssh-userauth")))
    if (options.banner) yield* transport.send(Messages.encodeBanner(options.banner))

    const done: Array<string> = []
    let failures = 0
    let user: string | undefined

    const fail = (partial: boolean) => transport.send(Messages.encodeFailure(done.length > 0 ? nextMethods(chains, done) : chains.map((c) => c[0]!).filter((m, i, a) => a.indexOf(m) === i), partial))

    for (;;) {
      const payload = yield* transport.receive
      if (payload[0] !== N.USERAUTH_REQUEST) return yield* protocolError(`expected USERAUTH_REQUEST, got message ${payload[0]}`)
      const req = yield* core(() => Messages.decodeRequest(payload))
      if (req.service !== "ssh-connection") {
        yield* transport.disconnect(N.DisconnectReason.SERVICE_NOT_AVAILABLE, `service ${req.service} not available`)
        return yield* protocolError(`client asked for service ${req.service}`)
      }
      if (user !== undefined && user !== req.user) {
        yield* transport.disconnect(N.DisconnectReason.PROTOCOL_ERROR, "change of username is not allowed")
        return yield* protocolError("client changed the user name during authentication")
      }
      user = req.user
      const ctx: AuthContext = { user: req.user, ...peer }
      const method = req.request.method
      const allowedNow = done.length > 0 ? nextMethods(chains, done) : chains.map((c) => c[0]!)
      let ok = false
      if (method === "none") {
        ok = options.none !== undefined && (yield* options.none(ctx))
        if (!ok) {
          yield* fail(false)
          continue
        }
      } else if (!allowedNow.includes(method)) {
        ok = false
      } else if (method === "password" && options.password) {
        const r = req.request as Extract<Messages.AuthMethodRequest, { method: "password" }>
        ok = r.newPassword === undefined && (yield* options.password({ ...ctx, password: Redacted.make(r.password) }))
      } else if (method === "publickey" && options.publicKey) {
        const r = req.request as Extract<Messages.AuthMethodRequest, { method: "publickey" }>
        const parsed = yield* Effect.result(core(() => PublicKey.fromBlob(r.publicKey)))
        const key = parsed._tag === "Success" ? parsed.success : undefined
        const algorithmFits = key !== undefined && PublicKey.signatureAlgorithms(key).includes(r.algorithm)
        const acceptable = algorithmFits && (yield* options.publicKey({ ...ctx, key: key! }))
        if (acceptable && r.signature === undefined) {
          yield* transport.send(Messages.encodePkOk(r.algorithm, r.publicKey))
          continue
        }
        if (acceptable && r.signature !== undefined) {
          const signed = Messages.publicKeySignedData(transport.sessionId, req.user, req.service, r.algorithm, r.publicKey)
          ok = yield* core(() => Signature.verify(key!, r.signature!, signed, [r.algorithm]))
        }
        if (!ok && r.signature === undefined) {
          // a query for an unacceptable key is not an attempt (as sshd)
          yield* fail(false)
          continue
        }
      } else if (method === "keyboard-interactive" && options.keyboardInteractive) {
        const r = req.request as Extract<Messages.AuthMethodRequest, { method: "keyboard-interactive" }>
        const prompt = (info: Messages.InfoRequest) =>
          Effect.gen(function*() {
            yield* transport.send(Messages.encodeInfoRequest(info))
            const reply = yield* transport.receive
            const answers = yield* core(() => Messages.decodeInfoResponse(reply))
            if (answers.length !== info.prompts.length) {
              return yield* protocolError(`client answered ${answers.length} of ${info.prompts.length} prompts`)
            }
            return answers
          })
        ok = yield* options.keyboardInteractive({ ...ctx, submethods: r.submethods, prompt })
      }
      if (ok) {
        done.push(method)
        if (chainComplete(chains, done)) {
          yield* transport.send(Messages.encodeSuccess())
          return { user: req.user, methods: done } satisfies Authenticated
        }
        yield* fail(true)
        continue
      }
      failures++
      if (failures >= maxTries) {
        yield* transport.disconnect(N.DisconnectReason.NO_MORE_AUTH_METHODS_AVAILABLE, "too many authentication failures")
        return yield* Effect.fail(SshError.make(new SshError.AuthFailed({ methodsLeft: [], partial: done.length > 0, tried: [method] })))
      }
      yield* fail(false)
    }
  })

  return run.pipe(
    Effect.timeoutOrElse({
      duration: grace,
      orElse: () =>
        Effect.andThen(
          transport.disconnect(N.DisconnectReason.NO_MORE_AUTH_METHODS_AVAILABLE, "login grace time exceeded"),
          Effect.fail(SshError.make(new SshError.Timeout({ message: "login grace time exceeded" })))
        )
    })
  )
}
