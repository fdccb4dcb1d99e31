/**
 * Server user authentication (RFC 4252): answers the ssh-userauth service,
 * then runs the configured Effect handlers for none, password, publickey
 * (with the pk_ok query and signature verification) and keyboard-interactive
 * (any number of rounds). Method chains work like sshd's
 * `AuthenticationMethods`: a method that completes only part of a chain gets
 * a partial-success failure listing what is still required. `methodsFor`
 * gives each user chains of their own (sshd's `Match User` with
 * AuthenticationMethods), decided once, at the user's first request: every
 * failure then lists what can continue for that user.
 *
 * Public keys may also be OpenSSH user certificates signed by a trusted CA
 * (sshd's `TrustedUserCAKeys`), and FIDO security keys (`sk-ecdsa`,
 * `sk-ed25519`), whose signatures must assert that a user touched the key.
 * Keys may come from authorized_keys lines (`authorizedKeysFile`,
 * `authorizedKeys`) whose options are enforced as sshd enforces them
 * (see `KeyOptions`): `from=` and `expiry-time=` refuse a key, the others
 * restrict the connection, and `cert-authority` lines accept certificates.
 * A handler may also answer a key with restrictions of its own. The
 * connection's restrictions (a certificate's and a key's, combined) come
 * back in `Authenticated.restrictions`. As with sshd's PermitUserEnvironment,
 * `environment=` reaches sessions only when the server's
 * `permitUserEnvironment` allows it (off by default).
 *
 * Against guessing, as sshd: a request that does not end authentication
 * (a failure, a partial success, a public key query) is answered no sooner
 * than `failureDelay` plus a per-user jitter after it arrived (sshd's
 * `ensure_minimum_time_since`), on the connection's own fiber; a connection
 * gets `maxTries` failures (sshd's MaxAuthTries; a repeated "none" counts, the
 * first does not) and 1024 requests in all.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { sha512 } from "@noble/hashes/sha2.js"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as SshError from "../SshError.ts"
import * as N from "../Wire/MessageNumber.ts"
import { build } from "../Wire/Writer.ts"
import type { Transport } from "../Transport/Transport.ts"
import { core, decodeServiceName } from "../Transport/Transport.ts"
import * as SecurityKey from "../internal/securityKey.ts"
import { readUint32, utf8 } from "../internal/bytes.ts"
import { attempt } from "../Wire/Reader.ts"
import * as AuthorizedKeys from "./AuthorizedKeys.ts"
import * as Certificate from "./Certificate.ts"
import * as KeyOptions from "./KeyOptions.ts"
import * as Messages from "./Messages.ts"
import * as PublicKey from "./PublicKey.ts"
import * as Signature from "./Signature.ts"

/** Who is trying to log in. */
export interface AuthContext {
  readonly user: string
  readonly remoteAddress: string
  readonly remotePort: number
}

/**
 * A key or certificate handler's answer: `false` refuses it, `true` accepts it as it is, and restrictions accept
 * it with those (force-command, no pty, permitopen, ...: see `KeyOptions`), combined with a certificate's own.
 */
export type KeyDecision = boolean | KeyOptions.Restrictions

/** Authentication handlers of a server; a method without a handler is not offered. */
export interface ServerAuthOptions {
  readonly none?: ((ctx: AuthContext) => Effect.Effect<boolean>) | undefined
  readonly password?: ((ctx: AuthContext & { readonly password: Redacted.Redacted<string> }) => Effect.Effect<boolean>) | undefined
  /** Is this key allowed for the user, and with what restrictions? (The signature is verified by us.) */
  readonly publicKey?: ((ctx: AuthContext & { readonly key: PublicKey.PublicKey }) => Effect.Effect<KeyDecision>) | undefined
  /**
   * The user's authorized_keys lines (see `authorizedKeys`, `authorizedKeysFile`), asked at each publickey
   * request: a key on a line is accepted with the line's options enforced (`from=` and `expiry-time=` refuse it,
   * `command=`, `no-pty`, `permitopen=`, `environment=`, ... restrict the connection), and a `cert-authority`
   * line accepts user certificates its key signed (for the user, or for one of its `principals=`). A line whose
   * options this library does not know or enforce is never used. Tried before `publicKey`.
   */
  readonly authorizedKeys?: ((ctx: AuthContext) => Effect.Effect<ReadonlyArray<AuthorizedKeys.AuthorizedKey>>) | undefined
  /**
   * CA keys trusted to sign user certificates (sshd's `TrustedUserCAKeys`;
   * OpenSSH one-line form or parsed). A certificate is accepted when one of
   * them signed it, it is valid now, lists the user as a principal, and its
   * critical options (source-address) allow the connection.
   */
  readonly certificateAuthorities?: ReadonlyArray<PublicKey.PublicKey | string> | undefined
  /** A further say on a certificate that passed those checks (default: accept); restrictions add to the certificate's. */
  readonly certificate?: ((ctx: AuthContext & { readonly certificate: Certificate.Certificate }) => Effect.Effect<KeyDecision>) | undefined
  /** Is this FIDO security key allowed for the user, and with what restrictions? (The signature and its flags are verified by us.) */
  readonly securityKey?: ((ctx: AuthContext & { readonly key: SecurityKey.SecurityKey }) => Effect.Effect<KeyDecision>) | undefined
  /** Security key signatures must assert user presence (default true, as sshd; a certificate's no-touch-required waives it). */
  readonly securityKeyTouchRequired?: boolean | undefined
  /** Security key signatures must assert user verification, PIN or biometrics (default false; a certificate's verify-required demands it). */
  readonly securityKeyVerifyRequired?: boolean | undefined
  /** Runs any number of prompt rounds through `prompt`; returns whether the user passed. */
  readonly keyboardInteractive?: ((ctx: AuthContext & {
    readonly submethods: string
    readonly prompt: (request: Messages.InfoRequest) => Effect.Effect<ReadonlyArray<string>, SshError.SshError>
  }) => Effect.Effect<boolean, SshError.SshError>) | undefined
  /** Sent before authentication (USERAUTH_BANNER). */
  readonly banner?: string | undefined
  /** Required method chains, like sshd's AuthenticationMethods ("publickey,password" = [["publickey","password"]]). Default: any one method. */
  readonly methods?: ReadonlyArray<ReadonlyArray<string>> | undefined
  /**
   * The method chains of one user, as `methods` (sshd's `Match User` blocks setting AuthenticationMethods):
   * `[["publickey"]]` allows only publickey, `[["publickey", "password"]]` requires both, `[]` lets no method
   * succeed; undefined leaves the user to `methods`. Asked once per connection, at its first request, with
   * the user name it gives (which cannot change afterwards). A method whose handler is missing never succeeds.
   *
   * @example
   * ```ts
   * const twoFactor: ServerAuth.ServerAuthOptions = {
   *   ...serverAuth,
   *   methodsFor: ({ user }) => Effect.succeed(user === "deploy" ? [["publickey"]] : user === "ops" ? [["publickey", "password"]] : undefined)
   * }
   * ```
   */
  readonly methodsFor?: ((ctx: AuthContext) => Effect.Effect<ReadonlyArray<ReadonlyArray<string>> | undefined>) | undefined
  /** Failed attempts before disconnecting (default 6, as sshd's MaxAuthTries). */
  readonly maxTries?: number | undefined
  /** Time allowed to authenticate (default 120 s, as sshd's LoginGraceTime); 0 for no limit. */
  readonly loginGraceTime?: Duration.Input | undefined
  /**
   * The least time a request that does not end authentication takes from
   * its arrival to the answer (default 5 ms, as sshd); a jitter of up to
   * 4.3 ms derived from the user name and the server's secret is added, and
   * a check that took longer is rounded up to this time doubled until it
   * fits (sshd: hides how long a check took). 0 turns the delay off.
   */
  readonly failureDelay?: Duration.Input | undefined
}

/** What the server running `authenticate` wants to know or give. */
export interface AuthenticateHooks {
  /**
   * Called on each request other than "none": the connection attempted to
   * authenticate (sshd's `auth_attempted`; the server penalises such a
   * connection's source as authfail, not noauth, if it never succeeds).
   */
  readonly onAttempt?: ((method: string) => void) | undefined
  /** The server's secret for the per-user failure delay jitter (fresh random bytes when absent). */
  readonly timingSecret?: Uint8Array | undefined
}

/**
 * sshd's MaxAuthTries default: failures before the server disconnects.
 *
 * @example
 * ```ts
 * ServerAuth.authenticate(transport, { ...serverAuth, maxTries: ServerAuth.DEFAULT_MAX_TRIES * 2 }, { remoteAddress: "203.0.113.5", remotePort: 50022 })
 * ```
 */
export const DEFAULT_MAX_TRIES = 6

/**
 * sshd's LoginGraceTime default, in milliseconds.
 *
 * @example
 * ```ts
 * ServerAuth.authenticate(transport, { ...serverAuth, loginGraceTime: ServerAuth.DEFAULT_LOGIN_GRACE_TIME_MS / 4 }, { remoteAddress: "203.0.113.5", remotePort: 50022 })
 * ```
 */
export const DEFAULT_LOGIN_GRACE_TIME_MS = 120_000

/**
 * sshd's minimum failure delay (MIN_FAIL_DELAY_SECONDS), in milliseconds.
 *
 * @example
 * ```ts
 * const secret = crypto.getRandomValues(new Uint8Array(32)) // the server's, for its lifetime
 * ServerAuth.userDelayMillis(secret, "alice", ServerAuth.DEFAULT_FAILURE_DELAY_MS) // 5 to 9.3
 * ```
 */
export const DEFAULT_FAILURE_DELAY_MS = 5

/** sshd's MAX_FAIL_DELAY_SECONDS: a request that took longer than this gets no delay. */
const MAX_FAILURE_DELAY_MS = 5000

/** sshd's cap on userauth requests per connection, whatever their outcome. */
const MAX_REQUESTS = 1024

/**
 * The failure delay for `user`, in milliseconds: `minimum` plus sshd's
 * per-user jitter, the first 32 bits of SHA-512(secret ‖ user) taken as
 * picoseconds (0 to 4.29 ms). One server always gives a user the same
 * delay, so averaging many timings does not wash the jitter out.
 *
 * @example
 * ```ts
 * ServerAuth.userDelayMillis(new Uint8Array(32), "alice", 5) // 5.xxx
 * ```
 */
export const userDelayMillis = (secret: Uint8Array, user: string, minimum: number): number => {
  const name = utf8(user)
  const input = new Uint8Array(secret.length + name.length)
  input.set(secret)
  input.set(name, secret.length)
  return minimum + readUint32(sha512(input), 0) / 1e9
}

/**
 * How much longer to wait before answering a request that took `elapsed`
 * ms so far, for a delay of `required` ms (sshd's
 * `ensure_minimum_time_since`): the rest of `required`, or of `required`
 * doubled until it exceeds `elapsed`; nothing past 5 s or for no delay.
 *
 * @example
 * ```ts
 * ServerAuth.remainingDelayMillis(2, 5)  // 3
 * ServerAuth.remainingDelayMillis(7, 5)  // 3 (rounded up to 10)
 * ServerAuth.remainingDelayMillis(6000, 5) // 0
 * ```
 */
export const remainingDelayMillis = (elapsed: number, required: number): number => {
  if (!(required > 0) || elapsed > MAX_FAILURE_DELAY_MS) return 0
  let target = required
  while (target < elapsed) target *= 2
  return target - elapsed
}

/** A successful authentication. */
export interface Authenticated {
  readonly user: string
  readonly methods: ReadonlyArray<string>
  /** The user certificate the publickey method succeeded with. */
  readonly certificate?: Certificate.Certificate | undefined
  /**
   * What the connection may do, when the publickey method succeeded with restrictions: a certificate's
   * force-command and permit-* extensions, a key's authorized_keys options, or both combined. Absent: no
   * restrictions.
   */
  readonly restrictions?: KeyOptions.Restrictions | undefined
}

/** Checks a signature made with an acceptable key (or certificate). */
interface KeyVerifier {
  readonly verify: (signature: Uint8Array, data: Uint8Array) => boolean
  readonly certificate?: Certificate.Certificate | undefined
  readonly restrictions?: KeyOptions.Restrictions | undefined
}

const securityKeyVerifier = (
  key: SecurityKey.SecurityKey,
  options: ServerAuthOptions,
  restrictions: KeyOptions.Restrictions | undefined
): KeyVerifier["verify"] => {
  const touch = (options.securityKeyTouchRequired ?? true) && !(restrictions?.noTouchRequired ?? false)
  const verification = options.securityKeyVerifyRequired === true || (restrictions?.verifyRequired ?? false)
  return (signature, data) => {
    const assertion = SecurityKey.verify(key, signature, data)
    return assertion !== undefined && (!touch || assertion.userPresent) && (!verification || assertion.userVerified)
  }
}

/** An accepted key's restrictions (undefined: none), or `false` when it is refused. */
type Acceptance = KeyOptions.Restrictions | undefined | false

const fromDecision = (decision: KeyDecision): Acceptance => decision === true ? undefined : decision

/** The restrictions of a certificate, with those given for it (undefined when they cannot be combined). */
const withCertificate = (given: KeyOptions.Restrictions | undefined, certificate: Certificate.Certificate): Acceptance =>
  given === undefined ? KeyOptions.fromCertificate(certificate) : KeyOptions.merge(given, KeyOptions.fromCertificate(certificate)) ?? false

/** An entry's options, or undefined (with a warning) when the line cannot be used. */
const entryOptions = (entry: AuthorizedKeys.AuthorizedKey): Effect.Effect<KeyOptions.KeyOptions | undefined> => {
  const parsed = attempt(() => KeyOptions.parse(entry.options, entry.line))
  return parsed._tag === "Success"
    ? Effect.succeed(parsed.success)
    : Effect.as(Effect.logWarning(`authorized_keys ${parsed.failure.message}; line not used`), undefined)
}

/** The first authorized_keys line accepting a plain key for this connection: its restrictions. */
const keyFromEntries = (
  entries: ReadonlyArray<AuthorizedKeys.AuthorizedKey>,
  key: PublicKey.PublicKey,
  ctx: AuthContext
): Effect.Effect<Acceptance> =>
  Effect.gen(function*() {
    for (const entry of entries) {
      if (!PublicKey.equals(entry.key, key)) continue
      const options = yield* entryOptions(entry)
      if (options === undefined || options.certAuthority || KeyOptions.refusal(options, ctx) !== undefined) continue
      return options.restrictions
    }
    return false
  })

/** The first cert-authority line accepting a certificate for this connection: the combined restrictions. */
const certificateFromEntries = (
  entries: ReadonlyArray<AuthorizedKeys.AuthorizedKey>,
  certificate: Certificate.Certificate,
  ctx: AuthContext
): Effect.Effect<Acceptance> =>
  Effect.gen(function*() {
    for (const entry of entries) {
      if (!PublicKey.equals(entry.key, certificate.signatureKey)) continue
      const options = yield* entryOptions(entry)
      if (options === undefined || !options.certAuthority || KeyOptions.refusal(options, ctx) !== undefined) continue
      const principals = options.principals
      const problem = Certificate.check(certificate, {
        role: "user",
        principal: principals === undefined ? ctx.user : undefined,
        authorities: [entry.key],
        remoteAddress: ctx.remoteAddress
      })
      if (problem !== undefined) continue
      if (principals !== undefined && !certificate.principals.some((p) => principals.includes(p))) continue
      const merged = KeyOptions.merge(options.restrictions, KeyOptions.fromCertificate(certificate))
      if (merged !== undefined) return merged
    }
    return false
  })

/** `first`'s acceptance, or when it refuses, `second`'s. */
const orElse = (first: Effect.Effect<Acceptance>, second: () => Effect.Effect<Acceptance>): Effect.Effect<Acceptance> =>
  Effect.flatMap(first, (acceptance) => acceptance === false ? second() : Effect.succeed(acceptance))

const refused: Effect.Effect<Acceptance> = Effect.succeed(false)

/**
 * Decides whether a publickey request names a usable key for the user, and
 * how to check its signature; `undefined` when the key is not acceptable.
 */
const acceptableKey = (
  options: ServerAuthOptions,
  authorities: ReadonlyArray<PublicKey.PublicKey>,
  ctx: AuthContext,
  algorithm: string,
  blob: Uint8Array
): Effect.Effect<KeyVerifier | undefined> => {
  const parsed = attempt(() => Certificate.signer(blob, algorithm))
  if (parsed._tag === "Failure") return Effect.succeed(undefined)
  const { key, algorithm: plain, certificate } = parsed.success
  const verifier = (restrictions: KeyOptions.Restrictions | undefined): KeyVerifier => ({
    certificate,
    restrictions,
    verify: SecurityKey.isSecurityKeyType(key.type)
      ? securityKeyVerifier(key as SecurityKey.SecurityKey, options, restrictions)
      : (signature, data) => Signature.verify(key as PublicKey.PublicKey, signature, data, [plain])
  })
  const entries = options.authorizedKeys === undefined ? Effect.succeed([]) : options.authorizedKeys(ctx)
  const decide = (acceptance: Effect.Effect<Acceptance>) =>
    Effect.map(acceptance, (accepted) => accepted === false ? undefined : verifier(accepted))
  if (certificate !== undefined) {
    const configured = (): Effect.Effect<Acceptance> => {
      if (authorities.length === 0) return refused
      const problem = Certificate.check(certificate, {
        role: "user",
        principal: ctx.user,
        authorities,
        remoteAddress: ctx.remoteAddress
      })
      if (problem !== undefined) return refused
      const given = options.certificate ? options.certificate({ ...ctx, certificate }) : Effect.succeed(true)
      return Effect.map(given, (decision) => {
        const acceptance = fromDecision(decision)
        return acceptance === false ? false : withCertificate(acceptance, certificate)
      })
    }
    return decide(orElse(Effect.flatMap(entries, (list) => certificateFromEntries(list, certificate, ctx)), configured))
  }
  const fromEntries = Effect.flatMap(entries, (list) => keyFromEntries(list, key as PublicKey.PublicKey, ctx))
  if (SecurityKey.isSecurityKeyType(key.type)) {
    const sk = key as SecurityKey.SecurityKey
    if (sk.type !== algorithm) return Effect.succeed(undefined)
    return decide(orElse(fromEntries, () => options.securityKey ? Effect.map(options.securityKey({ ...ctx, key: sk }), fromDecision) : refused))
  }
  const plainKey = key as PublicKey.PublicKey
  if (!PublicKey.signatureAlgorithms(plainKey).includes(algorithm)) return Effect.succeed(undefined)
  return decide(orElse(fromEntries, () => options.publicKey ? Effect.map(options.publicKey({ ...ctx, key: plainKey }), fromDecision) : refused))
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

/**
 * The methods that can continue (USERAUTH_FAILURE's list): the first of each chain before any succeeded, then
 * the next of each chain the successful ones are a prefix of.
 *
 * @example
 * ```ts
 * ServerAuth.canContinue([["publickey", "password"], ["keyboard-interactive"]], [])            // ["publickey", "keyboard-interactive"]
 * ServerAuth.canContinue([["publickey", "password"], ["keyboard-interactive"]], ["publickey"]) // ["password"]
 * ```
 */
export const canContinue = (
  chains: ReadonlyArray<ReadonlyArray<string>>,
  done: ReadonlyArray<string>
): ReadonlyArray<string> =>
  done.length > 0 ? nextMethods(chains, done) : [...new Set(chains.flatMap((chain) => chain.length > 0 ? [chain[0]!] : []))]

const chainComplete = (chains: ReadonlyArray<ReadonlyArray<string>>, done: ReadonlyArray<string>): boolean =>
  chains.some((chain) => chain.every((m) => done.includes(m)))

/**
 * Runs the server side of authentication on a transport that finished its
 * first key exchange. Fails (after sending DISCONNECT) when the client runs
 * out of tries or time.
 *
 * @example
 * ```ts
 * const { user } = yield* ServerAuth.authenticate(transport, { password: ({ password }) => Effect.succeed(Redacted.value(password) === "pw") }, { remoteAddress: "203.0.113.5", remotePort: 50022 })
 * ```
 */
export const authenticate = (
  transport: Transport,
  options: ServerAuthOptions,
  peer: { readonly remoteAddress: string; readonly remotePort: number },
  hooks: AuthenticateHooks = {}
): Effect.Effect<Authenticated, SshError.SshError> => {
  const offersPublicKey = options.publicKey !== undefined || options.securityKey !== undefined || options.authorizedKeys !== undefined ||
    (options.certificateAuthorities?.length ?? 0) > 0
  const offered = [
    ...(offersPublicKey ? ["publickey"] : []),
    ...(options.password ? ["password"] : []),
    ...(options.keyboardInteractive ? ["keyboard-interactive"] : [])
  ]
  const defaultChains = options.methods ?? offered.map((m) => [m])
  /** The chains of the connection's user, known from its first request on. */
  let chains = defaultChains
  const maxTries = options.maxTries ?? DEFAULT_MAX_TRIES
  const grace = Duration.fromInputUnsafe(options.loginGraceTime ?? DEFAULT_LOGIN_GRACE_TIME_MS)
  const minimumDelay = Duration.toMillis(Duration.fromInputUnsafe(options.failureDelay ?? Duration.millis(DEFAULT_FAILURE_DELAY_MS)))
  const timingSecret = hooks.timingSecret ?? globalThis.crypto.getRandomValues(new Uint8Array(32))

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

    const authorities = yield* core(() =>
      (options.certificateAuthorities ?? []).map((ca) => typeof ca === "string" ? PublicKey.parseOpenSsh(ca) : ca)
    )
    const done: Array<string> = []
    let failures = 0
    let requests = 0
    let user: string | undefined
    let certificate: Certificate.Certificate | undefined
    let restrictions: KeyOptions.Restrictions | undefined
    let userDelay = 0

    const sendFailure = (partial: boolean) => transport.send(Messages.encodeFailure(canContinue(chains, done), partial))
    let arrived = 0
    /** Waits out the failure delay of the request that arrived at `arrived`. */
    const delay = Effect.flatMap(Clock.currentTimeMillis, (now) => {
      const remaining = remainingDelayMillis(now - arrived, userDelay)
      return remaining > 0 ? Effect.sleep(Duration.millis(remaining)) : Effect.void
    })
    const fail = (partial: boolean) => Effect.andThen(delay, sendFailure(partial))
    const tooMany = (method: string) =>
      Effect.andThen(
        transport.disconnect(N.DisconnectReason.NO_MORE_AUTH_METHODS_AVAILABLE, "too many authentication failures"),
        Effect.fail(SshError.make(new SshError.AuthFailed({ methodsLeft: [], partial: done.length > 0, tried: [method] })))
      )

    for (;;) {
      const payload = yield* transport.receive
      arrived = yield* Clock.currentTimeMillis
      if (payload[0] !== N.USERAUTH_REQUEST) return yield* protocolError(`expected USERAUTH_REQUEST, got message ${payload[0]}`)
      const req = yield* core(() => Messages.decodeRequest(payload))
      if (++requests > MAX_REQUESTS) return yield* tooMany(req.request.method)
      if (req.service !== "ssh-connection") {
        yield* transport.disconnect(N.DisconnectReason.SERVICE_NOT_AVAILABLE, `service ${req.service} not available`)
        return yield* protocolError(`client asked for service ${req.service}`)
      }
      if (user !== undefined && user !== req.user) {
        yield* transport.disconnect(N.DisconnectReason.PROTOCOL_ERROR, "change of username is not allowed")
        return yield* protocolError("client changed the user name during authentication")
      }
      const ctx: AuthContext = { user: req.user, ...peer }
      if (user === undefined) {
        userDelay = minimumDelay > 0 ? userDelayMillis(timingSecret, req.user, minimumDelay) : 0
        // an empty chain would be complete before any method succeeded
        if (options.methodsFor !== undefined) chains = ((yield* options.methodsFor(ctx)) ?? defaultChains).filter((c) => c.length > 0)
      }
      user = req.user
      const method = req.request.method
      if (method !== "none") hooks.onAttempt?.(method)
      const allowedNow = canContinue(chains, done)
      let ok = false
      if (method === "none") {
        ok = options.none !== undefined && (yield* options.none(ctx))
        if (!ok) {
          // the first "none" asks which methods there are; another is a failed attempt (as sshd), with no delay
          if (requests > 1 && ++failures >= maxTries) return yield* tooMany(method)
          yield* sendFailure(false)
          continue
        }
      } else if (!allowedNow.includes(method)) {
        ok = false
      } else if (method === "password" && options.password) {
        const r = req.request as Extract<Messages.AuthMethodRequest, { method: "password" }>
        ok = r.newPassword === undefined && (yield* options.password({ ...ctx, password: Redacted.make(r.password) }))
      } else if (method === "publickey" && offersPublicKey) {
        const r = req.request as Extract<Messages.AuthMethodRequest, { method: "publickey" }>
        const acceptable = yield* acceptableKey(options, authorities, ctx, r.algorithm, r.publicKey)
        if (acceptable !== undefined && r.signature === undefined) {
          // delayed as a failure is, so the answer's timing does not tell which keys are acceptable
          yield* delay
          yield* transport.send(Messages.encodePkOk(r.algorithm, r.publicKey))
          continue
        }
        if (acceptable !== undefined && r.signature !== undefined) {
          const signed = Messages.publicKeySignedData(transport.sessionId, req.user, req.service, r.algorithm, r.publicKey)
          ok = acceptable.verify(r.signature, signed)
          if (ok) {
            certificate = acceptable.certificate
            restrictions = acceptable.restrictions
          }
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
          // the limits for unauthenticated peers end here, before the client can send anything more
          yield* transport.authenticated
          yield* transport.send(Messages.encodeSuccess())
          return { user: req.user, methods: done, certificate, restrictions } satisfies Authenticated
        }
        yield* fail(true)
        continue
      }
      failures++
      if (failures >= maxTries) return yield* Effect.andThen(delay, tooMany(method))
      yield* fail(false)
    }
  })

  const checked = run.pipe(
    // a malformed or out-of-order message: tell the client why (a no-op when the transport already did)
    Effect.tapError((e) =>
      e.reason._tag === "ProtocolError"
        ? transport.disconnect(N.DisconnectReason.PROTOCOL_ERROR, e.reason.message.slice(0, 256))
        : Effect.void
    )
  )
  if (Duration.isZero(grace)) return checked
  return checked.pipe(
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

/**
 * Publickey authentication against fixed authorized_keys lines, for every user: their text (parsed once; lines
 * that do not parse are left out) or parsed entries. Each line's options are enforced (see
 * `ServerAuthOptions.authorizedKeys`).
 *
 * @example
 * ```ts
 * SshServer.serve({ ...serverOptions, auth: ServerAuth.authorizedKeys('restrict,pty,command="uptime" ssh-ed25519 AAAA... ops\n') })
 * ```
 */
export const authorizedKeys = (
  lines: string | ReadonlyArray<AuthorizedKeys.AuthorizedKey>
): Pick<ServerAuthOptions, "authorizedKeys"> => {
  const entries = typeof lines === "string" ? AuthorizedKeys.parse(lines).entries : lines
  return { authorizedKeys: () => Effect.succeed(entries) }
}

/**
 * An authorized_keys path as sshd's AuthorizedKeysFile writes it: `~` and `%h` are the home directory (sessions
 * run as the server's user, so its home), `%u` the user name, `%%` a percent sign.
 *
 * @example
 * ```ts
 * ServerAuth.expandAuthorizedKeysPath("%h/.ssh/keys_%u", "alice", "/home/srv") // "/home/srv/.ssh/keys_alice"
 * ```
 */
export const expandAuthorizedKeysPath = (path: string, user: string, home: string): string => {
  const tilde = path === "~" ? home : path.startsWith("~/") ? `${home}${path.slice(1)}` : path
  return tilde.replace(/%([%hu])/g, (_, c: string) => c === "%" ? "%" : c === "h" ? home : user)
}

/**
 * Publickey authentication against an authorized_keys file, read at each request as sshd does (edits apply to
 * the next login; a missing file authorizes nothing), every line's options enforced (see
 * `ServerAuthOptions.authorizedKeys`). The path takes `~`, `%h` and `%u` (see `expandAuthorizedKeysPath`).
 *
 * @example
 * ```ts
 * SshServer.serve({ ...serverOptions, auth: ServerAuth.authorizedKeysFile("~/.ssh/authorized_keys") })
 * ```
 */
export const authorizedKeysFile = (path: string): Pick<ServerAuthOptions, "authorizedKeys"> => ({
  authorizedKeys: ({ user }) => {
    const file = expandAuthorizedKeysPath(path, user, os.homedir())
    return Effect.tryPromise(() => fs.readFile(file, "utf8")).pipe(
      Effect.map((text) => AuthorizedKeys.parse(text).entries),
      Effect.catch((e) =>
        (e.cause as NodeJS.ErrnoException | undefined)?.code === "ENOENT"
          ? Effect.succeed([])
          : Effect.as(Effect.logWarning(`cannot read authorized keys ${file}: ${String(e.cause)}`), [])
      )
    )
  }
})
