/**
 * The one public error of effect-ssh: `SshError`, whose `reason` says what
 * went wrong. Every reason is a tagged value carrying the facts a caller
 * needs (the algorithm lists of a failed negotiation, the code of a refused
 * channel, the methods left after a failed authentication, ...).
 *
 * The pure core signals failure by throwing a reason (see `Wire.attempt`);
 * the Effect shell turns it into `SshError` at the boundary, so no exception
 * ever escapes to a user.
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
import * as Data from "effect/Data"

/** The peer sent something that breaks the protocol: a malformed packet, an absurd length, a message out of order. */
export class ProtocolError extends Data.TaggedError("ProtocolError")<{
  readonly message: string
}> {}

/** A packet failed its integrity check (MAC or AEAD tag). */
export class MacMismatch extends Data.TaggedError("MacMismatch")<{
  readonly message: string
}> {}

/** No algorithm of a category is acceptable to both sides. */
export class NegotiationFailed extends Data.TaggedError("NegotiationFailed")<{
  readonly kind: string
  readonly ours: ReadonlyArray<string>
  readonly theirs: ReadonlyArray<string>
}> {
  override get message() {
    return `no common ${this.kind} algorithm; ours: ${this.ours.join(",")}; theirs: ${this.theirs.join(",")}`
  }
}

/** An algorithm name we do not know was requested in configuration. */
export class UnknownAlgorithm extends Data.TaggedError("UnknownAlgorithm")<{
  readonly kind: string
  readonly name: string
  readonly known: ReadonlyArray<string>
}> {
  override get message() {
    return `unknown ${this.kind} algorithm "${this.name}"; known: ${this.known.join(",")}`
  }
}

/**
 * The TCP connection could not be established: `host` and `port` say where
 * to (when known), `code` is the system's reason (`ECONNREFUSED`,
 * `ENOTFOUND`, `ETIMEDOUT`, `EHOSTUNREACH`, ...).
 */
export class ConnectFailed extends Data.TaggedError("ConnectFailed")<{
  readonly message: string
  readonly host?: string | undefined
  readonly port?: number | undefined
  readonly code?: string | undefined
  readonly cause?: unknown
}> {}

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
 * connectFailed({ host: "example.com", port: 22 }, Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }))
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
export class Timeout extends Data.TaggedError("Timeout")<{
  readonly message: string
}> {}

/** The connection ended: socket closed, or closed locally. */
export class ConnectionClosed extends Data.TaggedError("ConnectionClosed")<{
  readonly message: string
}> {}

/** The peer sent SSH_MSG_DISCONNECT. */
export class PeerDisconnected extends Data.TaggedError("PeerDisconnected")<{
  readonly code: number
  readonly description: string
}> {
  override get message() {
    return `peer disconnected (code ${this.code}): ${this.description}`
  }
}

/** The host key policy rejected the server's key. */
export class HostKeyRejected extends Data.TaggedError("HostKeyRejected")<{
  readonly host: string
  readonly keyType: string
  readonly fingerprint: string
  readonly message: string
}> {}

/** The server presented a key that differs from the one we know for it. */
export class HostKeyChanged extends Data.TaggedError("HostKeyChanged")<{
  readonly host: string
  readonly expected: ReadonlyArray<string>
  readonly received: string
}> {
  override get message() {
    return `host key for ${this.host} changed: expected ${this.expected.join(" or ")}, received ${this.received}`
  }
}

/** The host key's signature over the exchange hash did not verify. */
export class HostKeySignatureInvalid extends Data.TaggedError("HostKeySignatureInvalid")<{
  readonly message: string
}> {}

/** Every authentication method was tried and none succeeded. */
export class AuthFailed extends Data.TaggedError("AuthFailed")<{
  readonly methodsLeft: ReadonlyArray<string>
  readonly partial: boolean
  readonly tried: ReadonlyArray<string>
}> {
  override get message() {
    return `authentication failed (tried ${this.tried.join(", ") || "nothing"}; server allows ${
      this.methodsLeft.join(",") || "nothing"
    }${this.partial ? "; partial success" : ""})`
  }
}

/** A key file or key blob could not be parsed. */
export class KeyParseFailed extends Data.TaggedError("KeyParseFailed")<{
  readonly message: string
}> {}

/** The key is encrypted and no passphrase was given. */
export class PassphraseRequired extends Data.TaggedError("PassphraseRequired")<{
  readonly message: string
}> {}

/** The passphrase did not decrypt the key. */
export class WrongPassphrase extends Data.TaggedError("WrongPassphrase")<{
  readonly message: string
}> {}

/** The peer refused to open a channel. */
export class ChannelOpenFailed extends Data.TaggedError("ChannelOpenFailed")<{
  readonly code: number
  readonly description: string
}> {
  override get message() {
    return `channel open failed (code ${this.code}): ${this.description}`
  }
}

/** The peer answered a channel or global request with failure. */
export class ChannelRequestFailed extends Data.TaggedError("ChannelRequestFailed")<{
  readonly request: string
  readonly message: string
}> {}

/** An SFTP request ended with a status other than OK. */
export class SftpStatus extends Data.TaggedError("SftpStatus")<{
  readonly code: number
  readonly message: string
  readonly path?: string | undefined
}> {}

/** The ssh-agent failed or refused. */
export class AgentFailed extends Data.TaggedError("AgentFailed")<{
  readonly message: string
}> {}

/** An ssh_config or known_hosts file could not be parsed, or an option is invalid. */
export class ConfigParseError extends Data.TaggedError("ConfigParseError")<{
  readonly message: string
}> {}

/**
 * The peer made us reach one of our resource limits (bytes queued for it or
 * from it, packet size or key exchanges before authentication, ...): `limit`
 * names it, the message says by how much.
 */
export class LimitExceeded extends Data.TaggedError("LimitExceeded")<{
  readonly limit: string
  readonly message: string
}> {}

/**
 * A forwarding could not be set up, or a forwarded connection could not be made: `kind` says which
 * (`refused` by the peer's policy, `bind` failed to listen, `connect` failed to reach the target) and `address`
 * names where (`host:port` or a socket path).
 */
export class ForwardFailed extends Data.TaggedError("ForwardFailed")<{
  readonly kind: "refused" | "bind" | "connect"
  readonly address: string
  readonly message: string
  readonly cause?: unknown
}> {}

/** A feature that exists in the API but is not available in this build. */
export class NotImplemented extends Data.TaggedError("NotImplemented")<{
  readonly message: string
}> {}

/** Every reason an `SshError` can carry. */
export type SshErrorReason =
  | ProtocolError
  | MacMismatch
  | NegotiationFailed
  | UnknownAlgorithm
  | ConnectFailed
  | Timeout
  | ConnectionClosed
  | PeerDisconnected
  | HostKeyRejected
  | HostKeyChanged
  | HostKeySignatureInvalid
  | AuthFailed
  | KeyParseFailed
  | PassphraseRequired
  | WrongPassphrase
  | ChannelOpenFailed
  | ChannelRequestFailed
  | SftpStatus
  | AgentFailed
  | ConfigParseError
  | LimitExceeded
  | ForwardFailed
  | NotImplemented

const reasonTags: ReadonlySet<string> = new Set([
  "ProtocolError",
  "MacMismatch",
  "NegotiationFailed",
  "UnknownAlgorithm",
  "ConnectFailed",
  "Timeout",
  "ConnectionClosed",
  "PeerDisconnected",
  "HostKeyRejected",
  "HostKeyChanged",
  "HostKeySignatureInvalid",
  "AuthFailed",
  "KeyParseFailed",
  "PassphraseRequired",
  "WrongPassphrase",
  "ChannelOpenFailed",
  "ChannelRequestFailed",
  "SftpStatus",
  "AgentFailed",
  "ConfigParseError",
  "LimitExceeded",
  "ForwardFailed",
  "NotImplemented"
])

/**
 * Tells whether a value is one of the reasons above.
 *
 * @example
 * ```ts
 * isSshErrorReason(new ProtocolError({ message: "bad" })) // true
 * ```
 */
export const isSshErrorReason = (u: unknown): u is SshErrorReason =>
  typeof u === "object" && u !== null && "_tag" in u && reasonTags.has((u as { _tag: string })._tag)

/**
 * The error of every effect-ssh operation.
 *
 * @example
 * ```ts
 * const error = new SshError({ reason: new Timeout({ message: "connect timed out after 10s" }) })
 * error.message // "Timeout: connect timed out after 10s"
 * new SshError({ reason: new SftpStatus({ code: 2, message: "No such file", path: "/nope" }) }).message
 * // "SftpStatus: No such file (/nope)"
 * ```
 */
export class SshError extends Data.TaggedError("SshError")<{
  readonly reason: SshErrorReason
}> {
  override get message(): string {
    const reason = this.reason
    // an SFTP status names the path it was about (servers' messages rarely do)
    const path = reason._tag === "SftpStatus" && reason.path !== undefined && !reason.message.includes(reason.path)
      ? ` (${reason.path})`
      : ""
    return `${reason._tag}: ${reason.message}${path}`
  }
}

/**
 * A message for anything thrown: an Error's message, else its string form —
 * never itself a throw (`String({ toString: false })` throws).
 *
 * @example
 * ```ts
 * describeThrown(new RangeError("x")) // "x"
 * describeThrown({ toString: false }) // "[object Object]"
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
 * Turns anything thrown or failed by lower layers into an `SshError`. A reason
 * is wrapped as is; anything else is a bug or a malformed input that escaped
 * a codec, reported as a protocol error rather than a crash.
 *
 * @example
 * ```ts
 * fromUnknown(new MacMismatch({ message: "bad tag" })).reason._tag // "MacMismatch"
 * ```
 */
export const fromUnknown = (u: unknown): SshError => {
  if (u instanceof SshError) return u
  if (isSshErrorReason(u)) return new SshError({ reason: u })
  const message = describeThrown(u)
  return new SshError({ reason: new ProtocolError({ message: `unexpected failure: ${message}` }) })
}

/**
 * Builds an `SshError` from a reason.
 *
 * @example
 * ```ts
 * const e = make(new ProtocolError({ message: "unexpected message 99" }))
 * ```
 */
export const make = (reason: SshErrorReason): SshError => new SshError({ reason })
