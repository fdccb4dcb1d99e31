/**
 * The one public error of effect-ssh: `SshError`, whose `reason` says what
 * went wrong. Every reason is a tagged value carrying the facts a caller
 * needs (the algorithm lists of a failed negotiation, the code of a refused
 * channel, the methods left after a failed authentication, ...).
 *
 * Reasons and `SshError` are Schema tagged errors: they encode to plain,
 * JSON-able objects and decode back (`Schema.encodeSync(SshError)`).
 *
 * The pure core signals failure by throwing a reason (see `Wire.attempt`);
 * the Effect shell turns it into `SshError` at the boundary. Anything else
 * thrown is a bug of ours, never blamed on the peer: it stays a defect.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { SshClient } from "effect-ssh"
 *
 * const program = SshClient.connect({ host: "example.com", username: "me", auth: [], hostKeys })
 *   .pipe(Effect.catchReason("SshError", "AuthFailed", (r) => Effect.logError(r.methodsLeft)))
 * ```
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"

/** The peer sent something that breaks the protocol: a malformed packet, an absurd length, a message out of order. */
export class ProtocolError extends Schema.TaggedError<ProtocolError>()("ProtocolError", {
  message: Schema.String
}) {}

/** A packet failed its integrity check (MAC or AEAD tag). */
export class MacMismatch extends Schema.TaggedError<MacMismatch>()("MacMismatch", {
  message: Schema.String
}) {}

/** No algorithm of a category is acceptable to both sides. */
export class NegotiationFailed extends Schema.TaggedError<NegotiationFailed>()("NegotiationFailed", {
  kind: Schema.String,
  ours: Schema.Array(Schema.String),
  theirs: Schema.Array(Schema.String)
}) {
  override get message() {
    return `no common ${this.kind} algorithm; ours: ${this.ours.join(",")}; theirs: ${this.theirs.join(",")}`
  }
}

/** An algorithm name we do not know was requested in configuration. */
export class UnknownAlgorithm extends Schema.TaggedError<UnknownAlgorithm>()("UnknownAlgorithm", {
  kind: Schema.String,
  name: Schema.String,
  known: Schema.Array(Schema.String)
}) {
  override get message() {
    return `unknown ${this.kind} algorithm "${this.name}"; known: ${this.known.join(",")}`
  }
}

/**
 * The TCP connection could not be established: `host` and `port` say where
 * to (when known), `code` is the system's reason (`ECONNREFUSED`,
 * `ENOTFOUND`, `ETIMEDOUT`, `EHOSTUNREACH`, ...).
 */
export class ConnectFailed extends Schema.TaggedError<ConnectFailed>()("ConnectFailed", {
  message: Schema.String,
  host: Schema.optional(Schema.String),
  port: Schema.optional(Schema.Number),
  code: Schema.optional(Schema.String),
  cause: Schema.optional(Schema.Defect())
}) {}

const connectCodes: Readonly<Record<string, string>> = {
  ECONNREFUSED: "connection refused",
  ENOTFOUND: "host not found",
  EAI_AGAIN: "temporary failure in name resolution",
  ETIMEDOUT: "connection timed out",
  EHOSTUNREACH: "no route to host",
  ENETUNREACH: "network is unreachable",
  ECONNRESET: "connection reset by peer",
  EADDRNOTAVAIL: "address not available"
}

/**
 * A `ConnectFailed` for an error of the system's socket layer (a Node error
 * with `code`), naming where it was connecting to.
 *
 * @example
 * ```ts
 * SshError.connectFailed({ host: "example.com", port: 22 }, Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }))
 * // message: "cannot connect to example.com:22: connection refused (ECONNREFUSED)"
 * ```
 */
export const connectFailed = (
  target: { readonly host?: string | undefined; readonly port?: number | undefined },
  cause: unknown
): ConnectFailed => {
  const code = typeof cause === "object" && cause !== null && typeof (cause as { code?: unknown }).code === "string"
    ? (cause as { code: string }).code
    : undefined
  const where = target.host === undefined ? "" : ` to ${target.host.includes(":") ? `[${target.host}]` : target.host}${target.port === undefined ? "" : `:${target.port}`}`
  const why = code === undefined ? describeThrown(cause) : connectCodes[code] === undefined ? code : `${connectCodes[code]} (${code})`
  return new ConnectFailed({ message: `cannot connect${where}: ${why}`, host: target.host, port: target.port, code, cause })
}

/** An operation did not finish in time (connect timeout, keepalive, login grace time). */
export class Timeout extends Schema.TaggedError<Timeout>()("Timeout", {
  message: Schema.String
}) {}

/** The connection ended: socket closed, or closed locally. */
export class ConnectionClosed extends Schema.TaggedError<ConnectionClosed>()("ConnectionClosed", {
  message: Schema.String
}) {}

/** The peer sent SSH_MSG_DISCONNECT. */
export class PeerDisconnected extends Schema.TaggedError<PeerDisconnected>()("PeerDisconnected", {
  code: Schema.Number,
  description: Schema.String
}) {
  override get message() {
    return `peer disconnected (code ${this.code}): ${this.description}`
  }
}

/** The host key policy rejected the server's key. */
export class HostKeyRejected extends Schema.TaggedError<HostKeyRejected>()("HostKeyRejected", {
  host: Schema.String,
  keyType: Schema.String,
  fingerprint: Schema.String,
  message: Schema.String
}) {}

/** The server presented a key that differs from the one we know for it. */
export class HostKeyChanged extends Schema.TaggedError<HostKeyChanged>()("HostKeyChanged", {
  host: Schema.String,
  expected: Schema.Array(Schema.String),
  received: Schema.String
}) {
  override get message() {
    return `host key for ${this.host} changed: expected ${this.expected.join(" or ")}, received ${this.received}`
  }
}

/** The host key's signature over the exchange hash did not verify. */
export class HostKeySignatureInvalid extends Schema.TaggedError<HostKeySignatureInvalid>()("HostKeySignatureInvalid", {
  message: Schema.String
}) {}

/** Every authentication method was tried and none succeeded. */
export class AuthFailed extends Schema.TaggedError<AuthFailed>()("AuthFailed", {
  methodsLeft: Schema.Array(Schema.String),
  partial: Schema.Boolean,
  tried: Schema.Array(Schema.String)
}) {
  override get message() {
    return `authentication failed (tried ${this.tried.join(", ") || "nothing"}; server allows ${
      this.methodsLeft.join(",") || "nothing"
    }${this.partial ? "; partial success" : ""})`
  }
}

/** A key file or key blob could not be parsed. */
export class KeyParseFailed extends Schema.TaggedError<KeyParseFailed>()("KeyParseFailed", {
  message: Schema.String
}) {}

/** The key is encrypted and no passphrase was given. */
export class PassphraseRequired extends Schema.TaggedError<PassphraseRequired>()("PassphraseRequired", {
  message: Schema.String
}) {}

/** The passphrase did not decrypt the key. */
export class WrongPassphrase extends Schema.TaggedError<WrongPassphrase>()("WrongPassphrase", {
  message: Schema.String
}) {}

/** The peer refused to open a channel. */
export class ChannelOpenFailed extends Schema.TaggedError<ChannelOpenFailed>()("ChannelOpenFailed", {
  code: Schema.Number,
  description: Schema.String
}) {
  override get message() {
    return `channel open failed (code ${this.code}): ${this.description}`
  }
}

/** The peer answered a channel or global request with failure. */
export class ChannelRequestFailed extends Schema.TaggedError<ChannelRequestFailed>()("ChannelRequestFailed", {
  request: Schema.String,
  message: Schema.String
}) {}

/** An SFTP request ended with a status other than OK. */
export class SftpStatus extends Schema.TaggedError<SftpStatus>()("SftpStatus", {
  code: Schema.Number,
  message: Schema.String,
  path: Schema.optional(Schema.String)
}) {}

/** The ssh-agent failed or refused. */
export class AgentFailed extends Schema.TaggedError<AgentFailed>()("AgentFailed", {
  message: Schema.String
}) {}

/** An ssh_config or known_hosts file could not be parsed, or an option is invalid. */
export class ConfigParseError extends Schema.TaggedError<ConfigParseError>()("ConfigParseError", {
  message: Schema.String
}) {}

/**
 * The peer made us reach one of our resource limits (bytes queued for it or
 * from it, packet size or key exchanges before authentication, ...): `limit`
 * names it, the message says by how much.
 */
export class LimitExceeded extends Schema.TaggedError<LimitExceeded>()("LimitExceeded", {
  limit: Schema.String,
  message: Schema.String
}) {}

/**
 * A forwarding could not be set up, or a forwarded connection could not be made: `kind` says which
 * (`refused` by the peer's policy, `bind` failed to listen, `connect` failed to reach the target) and `address`
 * names where (`host:port` or a socket path).
 */
export class ForwardFailed extends Schema.TaggedError<ForwardFailed>()("ForwardFailed", {
  kind: Schema.Literals(["refused", "bind", "connect"]),
  address: Schema.String,
  message: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {}

/** A feature that exists in the API but is not available in this build. */
export class NotImplemented extends Schema.TaggedError<NotImplemented>()("NotImplemented", {
  message: Schema.String
}) {}

/**
 * Every reason an `SshError` can carry, as a schema: each reason encodes to a
 * plain object tagged with its `_tag` (a `ConnectFailed`'s OS error as a JSON
 * error), and decodes back to its class.
 *
 * @example
 * ```ts
 * Schema.encodeSync(SshError.SshErrorReason)(new SshError.Timeout({ message: "no answer" }))
 * // { _tag: "Timeout", message: "no answer" }
 * ```
 */
export const SshErrorReason = Schema.Union([
  ProtocolError,
  MacMismatch,
  NegotiationFailed,
  UnknownAlgorithm,
  ConnectFailed,
  Timeout,
  ConnectionClosed,
  PeerDisconnected,
  HostKeyRejected,
  HostKeyChanged,
  HostKeySignatureInvalid,
  AuthFailed,
  KeyParseFailed,
  PassphraseRequired,
  WrongPassphrase,
  ChannelOpenFailed,
  ChannelRequestFailed,
  SftpStatus,
  AgentFailed,
  ConfigParseError,
  LimitExceeded,
  ForwardFailed,
  NotImplemented
])

/** Every reason an `SshError` can carry. */
export type SshErrorReason = typeof SshErrorReason.Type

/**
 * Tells whether a value is one of the reasons above (an instance of its
 * class: a plain object with a reason's `_tag` is not one).
 *
 * @example
 * ```ts
 * SshError.isSshErrorReason(new SshError.ProtocolError({ message: "bad" })) // true
 * SshError.isSshErrorReason({ _tag: "ProtocolError", message: "bad" }) // false
 * ```
 */
export const isSshErrorReason: (u: unknown) => u is SshErrorReason = Schema.is(SshErrorReason)

/**
 * The error of every effect-ssh operation. Its `cause` is its reason's (the
 * system's error of a `ConnectFailed`), so that `Cause.pretty` shows it.
 *
 * @example
 * ```ts
 * const error = new SshError.SshError({ reason: new SshError.Timeout({ message: "connect timed out after 10s" }) })
 * error.message // "Timeout: connect timed out after 10s"
 * new SshError.SshError({ reason: new SshError.SftpStatus({ code: 2, message: "No such file", path: "/nope" }) }).message
 * // "SftpStatus: No such file (/nope)"
 * ```
 */
export class SshError extends Schema.TaggedError<SshError>()("SshError", {
  reason: SshErrorReason,
  /** Where it happened, `user@host:port`, for errors of a connection (see `withDestination`). */
  destination: Schema.optional(Schema.String)
}) {
  constructor(
    props: { readonly reason: SshErrorReason; readonly destination?: string | undefined },
    options?: Schema.MakeOptions
  ) {
    super(props, options)
    const cause = (this.reason as { readonly cause?: unknown }).cause
    // as `new Error(message, { cause })` would: an own, non-enumerable property
    if (cause !== undefined) Object.defineProperty(this, "cause", { value: cause, writable: true, configurable: true })
  }

  override get message(): string {
    const reason = this.reason
    // an SFTP status names the path it was about (servers' messages rarely do)
    const path = reason._tag === "SftpStatus" && reason.path !== undefined && !reason.message.includes(reason.path)
      ? ` (${reason.path})`
      : ""
    const where = this.destination === undefined ? "" : `${this.destination}: `
    return `${where}${reason._tag}: ${reason.message}${path}`
  }
}

/**
 * How a connection's destination is named in its errors: `user@host:port`,
 * an IPv6 address in brackets (`me@[::1]:22`).
 *
 * @example
 * ```ts
 * SshError.formatDestination({ host: "example.com", port: 22, username: "me" }) // "me@example.com:22"
 * SshError.formatDestination({ host: "::1", port: 2222 }) // "[::1]:2222"
 * ```
 */
export const formatDestination = (target: {
  readonly host: string
  readonly port?: number | undefined
  readonly username?: string | undefined
}): string => {
  const host = target.host.includes(":") ? `[${target.host}]` : target.host
  const user = target.username === undefined || target.username === "" ? "" : `${target.username}@`
  return `${user}${host}:${target.port ?? 22}`
}

/**
 * The error with its destination: a connection's errors name where they
 * happened, in `destination` and first in their message. An error that
 * already names one keeps it (a jump host's error stays that host's).
 *
 * @example
 * ```ts
 * const error = SshError.withDestination(SshError.make(new SshError.Timeout({ message: "late" })), "me@example.com:22")
 * error.message // "me@example.com:22: Timeout: late"
 * ```
 */
export const withDestination = (error: SshError, destination: string): SshError =>
  error.destination !== undefined ? error : new SshError({ reason: error.reason, destination })

/**
 * Tells whether a value is an `SshError`.
 *
 * @example
 * ```ts
 * SshError.isSshError(SshError.make(new SshError.Timeout({ message: "late" }))) // true
 * ```
 */
export const isSshError: (u: unknown) => u is SshError = Schema.is(SshError)

/**
 * A message for anything thrown: an Error's message, else its string form —
 * never itself a throw (`String({ toString: false })` throws).
 *
 * @example
 * ```ts
 * SshError.describeThrown(new RangeError("x")) // "x"
 * SshError.describeThrown({ toString: false }) // "[object Object]"
 * ```
 */
export const describeThrown = (u: unknown): string => {
  if (u instanceof Error) return u.message
  try {
    return String(u)
  } catch {
    return Object.prototype.toString.call(u)
  }
}

/**
 * Turns a thrown or failed reason into an `SshError` (an `SshError` is kept
 * as is). Anything else is a bug, not the peer's doing, and is thrown again:
 * in `Effect.try`'s `catch`, in `Effect.sync` or in a handler, it becomes a
 * defect rather than a `ProtocolError` blaming the peer.
 *
 * @example
 * ```ts
 * SshError.fromUnknown(new SshError.MacMismatch({ message: "bad tag" })).reason._tag // "MacMismatch"
 * Effect.try({ try: () => PublicKey.fromBlob(new Uint8Array(3)), catch: SshError.fromUnknown }) // a thrown TypeError would be a defect
 * ```
 */
export const fromUnknown = (u: unknown): SshError => {
  if (isSshError(u)) return u
  if (isSshErrorReason(u)) return new SshError({ reason: u })
  throw u
}

/**
 * The outcome of something thrown by the pure core: a reason (or an
 * `SshError`) is the typed failure, anything else a bug, so a defect.
 *
 * @example
 * ```ts
 * const decoded = Effect.suspend(() => {
 *   try {
 *     return Effect.succeed(PublicKey.fromBlob(new Uint8Array(3)))
 *   } catch (u) {
 *     return SshError.failOrDie(u)
 *   }
 * })
 * ```
 */
export const failOrDie = (u: unknown): Effect.Effect<never, SshError> =>
  isSshError(u) ? Effect.fail(u) : isSshErrorReason(u) ? Effect.fail(new SshError({ reason: u })) : Effect.die(u)

/**
 * The `SshError` a cause failed with (a failure with a bare reason is wrapped),
 * provided the cause holds no defect other than a thrown reason (the pure core throws them). A cause with any
 * other defect (a bug) gives
 * `undefined`, as does one of interruptions only or of other failures: the
 * caller propagates such a cause as it is rather than blame the peer for it.
 *
 * @example
 * ```ts
 * Effect.catchCause(ssh.run("true"), (cause) => {
 *   const error = SshError.fromCause(cause)
 *   return error === undefined ? Effect.failCause(cause) : Effect.logWarning(`giving up: ${error.message}`)
 * })
 * ```
 */
export const fromCause = (cause: Cause.Cause<unknown>): SshError | undefined => {
  // the pure core throws reasons: one that escaped as a defect is still that typed error
  const errorOf = (u: unknown) => isSshError(u) ? u : isSshErrorReason(u) ? new SshError({ reason: u }) : undefined
  let found: SshError | undefined
  for (const reason of cause.reasons) {
    if (Cause.isDieReason(reason)) {
      const error = errorOf(reason.defect)
      if (error === undefined) return undefined
      found ??= error
    } else if (Cause.isFailReason(reason)) {
      found ??= errorOf(reason.error)
    }
  }
  return found
}

/**
 * The error of a cause for those who wait on a background fiber that ended: its `SshError` (`fromCause`), or for
 * a bug a `ConnectionClosed` saying so — the bug itself is the caller's to log (`Cause.pretty`), not the peer's
 * fault, and waiters must not hang on it.
 *
 * @example
 * ```ts
 * Effect.catchCause(ssh.run("true"), (cause) => Effect.fail(SshError.fromCauseOrInternal(cause))) // waiters get an SshError, even for a bug
 * ```
 */
export const fromCauseOrInternal = (cause: Cause.Cause<unknown>): SshError =>
  fromCause(cause) ??
    new SshError({
      reason: new ConnectionClosed({ message: `internal error: ${Cause.pretty(cause).split("\n").find((l) => l.trim() !== "") ?? "unknown"}` })
    })

/**
 * Builds an `SshError` from a reason.
 *
 * @example
 * ```ts
 * const e = SshError.make(new SshError.ProtocolError({ message: "unexpected message 99" }))
 * ```
 */
export const make = (reason: SshErrorReason): SshError => new SshError({ reason })
