/**
 * A client of an ssh-agent: lists the keys it holds, asks it to sign
 * (RSA keys with the rsa-sha2 flags), adds keys (with lifetime, confirm or
 * other constraints, and as certificates), removes them, locks and unlocks
 * it. It talks over `SSH_AUTH_SOCK` (a Unix socket), or over any byte
 * stream, e.g. a forwarded agent channel.
 *
 * Requests are sent one at a time; an agent's refusal is `AgentFailed`.
 *
 * @example
 * ```ts
 * const agent = yield* AgentClient.connect()            // $SSH_AUTH_SOCK
 * const identities = yield* agent.identities
 * const signature = yield* agent.sign(identities[0]!, data, { algorithm: "rsa-sha2-512" })
 * ```
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import type * as Socket from "effect/socket/Socket"
import * as net from "node:net"
import { utf8 } from "../internal/bytes.ts"
import { fromNetSocket } from "../internal/netSocket.ts"
import * as SshError from "../SshError.ts"
import { core } from "../Transport/Transport.ts"
import { Reader } from "../Wire/Reader.ts"
import * as Agent from "./Agent.ts"
import type * as Certificate from "./Certificate.ts"
import type * as PrivateKey from "./PrivateKey.ts"
import type * as PublicKey from "./PublicKey.ts"

/** How to add a key. */
export interface AddOptions {
  /** The comment the agent shows (default: the key's own). */
  readonly comment?: string | undefined
  /** Delete the key after this long (`ssh-add -t`). */
  readonly lifetime?: Duration.Input | undefined
  /** Ask the user to confirm each use (`ssh-add -c`). */
  readonly confirm?: boolean | undefined
  /** Add the key as this certificate (which must certify it). */
  readonly certificate?: Certificate.Certificate | undefined
  /** Further constraints, appended as given. */
  readonly constraints?: ReadonlyArray<Agent.Constraint> | undefined
}

/** How to sign. */
export interface SignOptions {
  /** The signature algorithm wanted: for RSA keys `rsa-sha2-512` (the default), `rsa-sha2-256` or `ssh-rsa`. */
  readonly algorithm?: string | undefined
}

/** Something that names a key the agent holds. */
export type KeyRef = Uint8Array | Agent.IdentityEntry | PublicKey.PublicKey

/**
 * A connected agent.
 *
 * @example
 * ```ts
 * const agent = yield* AgentClient.connect("/run/user/1000/ssh-agent.sock")
 * yield* agent.add(userKey, { lifetime: "1 hour" })
 * ```
 */
export interface AgentClient {
  /** The keys the agent holds, parsed where we know their type. */
  readonly identities: Effect.Effect<ReadonlyArray<Agent.Identity>, SshError.SshError>
  /** Signs `data` with a held key; returns the signature blob. */
  readonly sign: (key: KeyRef, data: Uint8Array, options?: SignOptions) => Effect.Effect<Uint8Array, SshError.SshError>
  /** Adds a private key. */
  readonly add: (key: PrivateKey.PrivateKey, options?: AddOptions) => Effect.Effect<void, SshError.SshError>
  /** Removes one key. */
  readonly remove: (key: KeyRef) => Effect.Effect<void, SshError.SshError>
  /** Removes every key. */
  readonly removeAll: Effect.Effect<void, SshError.SshError>
  /** Locks the agent with a passphrase: it refuses to sign until unlocked. */
  readonly lock: (passphrase: Redacted.Redacted<string>) => Effect.Effect<void, SshError.SshError>
  /** Unlocks the agent. */
  readonly unlock: (passphrase: Redacted.Redacted<string>) => Effect.Effect<void, SshError.SshError>
  /** Sends any request and returns the agent's reply as is. */
  readonly request: (request: Agent.AgentRequest) => Effect.Effect<Agent.AgentResponse, SshError.SshError>
}

const agentFailed = (message: string) => SshError.make(new SshError.AgentFailed({ message }))

const blobOf = (key: KeyRef): Uint8Array => key instanceof Uint8Array ? key : key.blob

const expectSuccess = (what: string) => (response: Agent.AgentResponse) =>
  response._tag === "Success" ? Effect.void : Effect.fail(agentFailed(`the agent refused to ${what}`))

/**
 * An agent client over a byte stream (a Unix socket, a forwarded channel,
 * an in-memory pair). The stream is read for the lifetime of the scope.
 *
 * @example
 * ```ts
 * const agent = yield* AgentClient.make(yield* NodeSocket.makeNet({ path: "/run/user/1000/ssh-agent.sock" }))
 * ```
 */
export const make = (socket: Socket.Socket): Effect.Effect<AgentClient, SshError.SshError, Scope.Scope> =>
  Effect.gen(function*() {
    const socketFailure = (e: { readonly message: string }) => agentFailed(`agent connection: ${e.message}`)
    const reader = yield* Effect.mapError(socket.reader, socketFailure)
    const writer = yield* socket.writer
    const frames = new Agent.FrameDecoder()
    const lock = Semaphore.makeUnsafe(1)

    const readFrame: Effect.Effect<Uint8Array, SshError.SshError> = Effect.flatMap(
      core(() => frames.next()),
      (message) =>
        message !== undefined
          ? Effect.succeed(message)
          : Effect.flatMap(Effect.mapError(reader.pull, socketFailure), (chunks) => {
            for (const chunk of chunks) frames.push(typeof chunk === "string" ? utf8(chunk) : chunk)
            return readFrame
          })
    )

    const request = (req: Agent.AgentRequest) =>
      lock.withPermit(
        Effect.gen(function*() {
          const payload = yield* core(() => Agent.frame(Agent.encodeRequest(req)))
          yield* Effect.mapError(writer.write(payload), socketFailure)
          const reply = yield* readFrame
          return yield* core(() => Agent.decodeResponse(reply))
        })
      )

    const identities = Effect.flatMap(request({ _tag: "RequestIdentities" }), (response) =>
      response._tag === "Identities"
        ? Effect.succeed(response.identities.map(Agent.identityOf))
        : Effect.fail(agentFailed(`the agent answered ${response._tag} to a list of identities`)))

    const sign = (key: KeyRef, data: Uint8Array, options?: SignOptions) =>
      Effect.gen(function*() {
        const algorithm = options?.algorithm
        const flags = algorithm === undefined ? 0 : Agent.signFlags(algorithm)
        const response = yield* request({ _tag: "Sign", key: blobOf(key), data, flags })
        if (response._tag !== "SignResponse") return yield* Effect.fail(agentFailed("the agent refused to sign"))
        // only the algorithm is read: a security key's signature carries its flags and counter after the rest
        const signedWith = yield* core(() => new Reader(response.signature).name("signature algorithm"))
        // an old agent may ignore the rsa-sha2 flags and sign with SHA-1: the server would refuse it
        if (flags !== 0 && Agent.signFlags(signedWith) !== flags) {
          return yield* Effect.fail(agentFailed(`asked the agent for ${algorithm}, it signed with ${signedWith}`))
        }
        return response.signature
      })

    const add = (key: PrivateKey.PrivateKey, options?: AddOptions) => {
      const constraints: Array<Agent.Constraint> = []
      if (options?.lifetime !== undefined) {
        const seconds = Math.ceil(Duration.toSeconds(Duration.fromInputUnsafe(options.lifetime)))
        constraints.push({ _tag: "Lifetime", seconds: Math.min(Math.max(seconds, 1), 0xffffffff) })
      }
      if (options?.confirm === true) constraints.push({ _tag: "Confirm" })
      constraints.push(...(options?.constraints ?? []))
      return Effect.flatMap(
        request({
          _tag: "AddIdentity",
          key,
          certificate: options?.certificate,
          comment: options?.comment ?? key.comment,
          constraints
        }),
        expectSuccess("add the key")
      )
    }

    const client: AgentClient = {
      identities,
      sign,
      add,
      remove: (key) => Effect.flatMap(request({ _tag: "RemoveIdentity", key: blobOf(key) }), expectSuccess("remove the key")),
      removeAll: Effect.flatMap(request({ _tag: "RemoveAllIdentities" }), expectSuccess("remove all keys")),
      lock: (passphrase) =>
        Effect.flatMap(request({ _tag: "Lock", passphrase: utf8(Redacted.value(passphrase)) }), expectSuccess("lock")),
      unlock: (passphrase) =>
        Effect.flatMap(request({ _tag: "Unlock", passphrase: utf8(Redacted.value(passphrase)) }), expectSuccess("unlock")),
      request
    }
    return client
  })

/**
 * The agent socket path: the one given, else `SSH_AUTH_SOCK`; `undefined` when neither is set.
 *
 * @example
 * ```ts
 * AgentClient.socketPath() // "/tmp/ssh-XXXX/agent.1234"
 * ```
 */
export const socketPath = (path?: string): string | undefined => {
  const chosen = path ?? process.env.SSH_AUTH_SOCK
  return chosen === undefined || chosen === "" ? undefined : chosen
}

/**
 * Opens a Unix socket to the agent at `path` (default `SSH_AUTH_SOCK`); the
 * connection closes with the scope.
 *
 * @example
 * ```ts
 * const agent = yield* AgentClient.connect()
 * const keys = yield* agent.identities
 * ```
 */
export const connect = (path?: string): Effect.Effect<AgentClient, SshError.SshError, Scope.Scope> => {
  const target = socketPath(path)
  if (target === undefined) return Effect.fail(agentFailed("no agent: SSH_AUTH_SOCK is not set"))
  return make(fromNetSocket(() => net.connect({ path: target })))
}
