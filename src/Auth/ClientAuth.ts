/**
 * Client user authentication (RFC 4252): asks for the ssh-userauth service,
 * learns the server's methods with a "none" request, then tries the
 * configured methods in order, as OpenSSH does. Partial success (multi-factor,
 * sshd's `AuthenticationMethods publickey,password`) moves on to the methods
 * still required. A password is also offered through keyboard-interactive
 * when the server only allows that (paramiko's fallback).
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as FileSystem from "effect/FileSystem"
import * as Redacted from "effect/Redacted"
import * as SshError from "../SshError.ts"
import * as N from "../Wire/MessageNumber.ts"
import { build } from "../Wire/Writer.ts"
import type { Transport } from "../Transport/Transport.ts"
import { core, decodeServiceName } from "../Transport/Transport.ts"
import * as Messages from "./Messages.ts"
import * as PrivateKey from "./PrivateKey.ts"
import * as PublicKey from "./PublicKey.ts"
import * as os from "node:os"
import * as path from "node:path"

/** Answers one keyboard-interactive round: one response per prompt. */
export type KeyboardInteractiveHandler = (
  request: Messages.InfoRequest
) => Effect.Effect<ReadonlyArray<string>, SshError.SshError>

/**
 * A way to authenticate. Build them with `Auth.password`, `Auth.privateKey`,
 * `Auth.privateKeyFile`, `Auth.keyboardInteractive`, `Auth.none`.
 */
export type AuthMethod =
  | { readonly _tag: "None" }
  | {
    readonly _tag: "Password"
    /** The password, or an effect asking for it (run only if the server accepts passwords). */
    readonly password: Redacted.Redacted<string> | Effect.Effect<Redacted.Redacted<string>, SshError.SshError>
  }
  | { readonly _tag: "PrivateKey"; readonly key: PrivateKey.PrivateKey }
  | {
    readonly _tag: "PrivateKeyFile"
    readonly path: string
    readonly passphrase?: Redacted.Redacted<string> | undefined
  }
  | { readonly _tag: "KeyboardInteractive"; readonly respond: KeyboardInteractiveHandler }

/**
 * Password authentication (falls back to keyboard-interactive prompts when the server only offers that).
 *
 * @example
 * ```ts
 * Auth.password(Redacted.make("hunter2"))
 * ```
 */
export const password = (
  value: Redacted.Redacted<string> | string | Effect.Effect<Redacted.Redacted<string>, SshError.SshError>
): AuthMethod => ({
  _tag: "Password",
  password: typeof value === "string" ? Redacted.make(value) : value
})

/**
 * Public-key authentication with a parsed key, or the text of a private key file.
 *
 * @example
 * ```ts
 * Auth.privateKey(PrivateKey.generate("ssh-ed25519"))
 * ```
 */
export const privateKey = (key: PrivateKey.PrivateKey | string): AuthMethod =>
  typeof key === "string" ? { _tag: "PrivateKey", key: PrivateKey.parse(key) } : { _tag: "PrivateKey", key }

/**
 * Public-key authentication with a key file, read when the connection authenticates (`~` is expanded).
 *
 * @example
 * ```ts
 * Auth.privateKeyFile("~/.ssh/id_ed25519")
 * ```
 */
export const privateKeyFile = (file: string, passphrase?: Redacted.Redacted<string>): AuthMethod => ({
  _tag: "PrivateKeyFile",
  path: file,
  passphrase
})

/**
 * Keyboard-interactive authentication answered by an Effect.
 *
 * @example
 * ```ts
 * Auth.keyboardInteractive((req) => Effect.succeed(req.prompts.map(() => "123456")))
 * ```
 */
export const keyboardInteractive = (respond: KeyboardInteractiveHandler): AuthMethod => ({
  _tag: "KeyboardInteractive",
  respond
})

/**
 * The "none" method: succeeds only on servers that let the user in without credentials.
 *
 * @example
 * ```ts
 * Auth.none()
 * ```
 */
export const none = (): AuthMethod => ({ _tag: "None" })

/** The outcome of a successful authentication. */
export interface AuthOutcome {
  /** Banners the server sent during authentication. */
  readonly banners: ReadonlyArray<string>
  /** Methods that were used (in order), e.g. ["publickey", "password"]. */
  readonly methods: ReadonlyArray<string>
}

/** Options of `authenticate`. */
export interface AuthenticateOptions {
  readonly username: string
  readonly methods: ReadonlyArray<AuthMethod>
  readonly onBanner?: ((message: string) => Effect.Effect<void>) | undefined
}

const SERVICE = "ssh-connection"
const authFailed = (methodsLeft: ReadonlyArray<string>, partial: boolean, tried: ReadonlyArray<string>) =>
  Effect.fail(SshError.make(new SshError.AuthFailed({ methodsLeft, partial, tried })))

const expandHome = (file: string): string => file.startsWith("~/") ? path.join(os.homedir(), file.slice(2)) : file

/** The algorithm to sign with: for RSA the best rsa-sha2 the server lists in server-sig-algs. */
const signatureAlgorithm = (key: PrivateKey.PrivateKey, serverSigAlgs: ReadonlyArray<string> | undefined): string => {
  if (key.type !== "ssh-rsa") return key.type
  if (serverSigAlgs === undefined) return "rsa-sha2-512"
  return ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"].find((a) => serverSigAlgs.includes(a)) ?? "rsa-sha2-512"
}

/**
 * Authenticates over a transport that just finished its first key exchange.
 *
 * @example
 * ```ts
 * const outcome = yield* ClientAuth.authenticate(transport, { username: "me", methods: [Auth.password("pw")] })
 * ```
 */
export const authenticate = Effect.fnUntraced(function*(transport: Transport, options: AuthenticateOptions) {
  const banners: Array<string> = []
  const used: Array<string> = []
  const tried: Array<string> = []

  yield* transport.send(build((w) => w.byte(N.SERVICE_REQUEST).string("ssh-userauth")))

  /** Next auth reply, with banners collected on the way. */
  const receive = (method: string): Effect.Effect<Messages.ServerAuthMessage, SshError.SshError> =>
    Effect.flatMap(transport.receive, (payload) => {
      if (payload[0] === N.SERVICE_ACCEPT) return receive(method)
      return Effect.flatMap(core(() => Messages.decodeServerMessage(payload, method)), (msg) => {
        if (msg._tag !== "Banner") return Effect.succeed(msg)
        banners.push(msg.message)
        return Effect.andThen(options.onBanner ? options.onBanner(msg.message) : Effect.void, receive(method))
      })
    })

  const accept = yield* transport.receive
  if (accept[0] !== N.SERVICE_ACCEPT) {
    return yield* Effect.fail(SshError.make(new SshError.ProtocolError({ message: `expected SERVICE_ACCEPT, got message ${accept[0]}` })))
  }
  const service = yield* core(() => decodeServiceName(accept))
  if (service !== "ssh-userauth") {
    return yield* Effect.fail(SshError.make(new SshError.ProtocolError({ message: `server accepted service ${service}` })))
  }

  const request = (req: Messages.AuthMethodRequest) =>
    transport.send(Messages.encodeRequest({ user: options.username, service: SERVICE, request: req }))

  // "none" tells us which methods the server allows.
  yield* request({ method: "none" })
  let reply = yield* receive("none")
  if (reply._tag === "Success") return { banners, methods: ["none"] } satisfies AuthOutcome
  if (reply._tag !== "Failure") {
    return yield* Effect.fail(SshError.make(new SshError.ProtocolError({ message: `unexpected ${reply._tag} to a none request` })))
  }
  let allowed: ReadonlyArray<string> = reply.methods
  let partial = reply.partial

  /** Runs keyboard-interactive rounds until the server decides. */
  const keyboardRounds = (respond: KeyboardInteractiveHandler) =>
    Effect.gen(function*() {
      yield* request({ method: "keyboard-interactive", submethods: "" })
      for (let round = 0; round < 32; round++) {
        const msg = yield* receive("keyboard-interactive")
        if (msg._tag !== "InfoRequest") return msg
        const answers = yield* respond(msg)
        if (answers.length !== msg.prompts.length) {
          return yield* Effect.fail(SshError.make(new SshError.ProtocolError({ message: `keyboard-interactive handler answered ${answers.length} of ${msg.prompts.length} prompts` })))
        }
        yield* transport.send(Messages.encodeInfoResponse(answers))
      }
      return yield* Effect.fail(SshError.make(new SshError.ProtocolError({ message: "too many keyboard-interactive rounds" })))
    })

  const tryPublicKey = (key: PrivateKey.PrivateKey) =>
    Effect.gen(function*() {
      const ext = transport.extensions().get("server-sig-algs")
      const serverSigAlgs = ext ? new TextDecoder().decode(ext).split(",") : undefined
      const algorithm = signatureAlgorithm(key, serverSigAlgs)
      const blob = key.publicKey.blob
      const signed = Messages.publicKeySignedData(transport.sessionId, options.username, SERVICE, algorithm, blob)
      const signature = yield* core(() => key.sign(signed, algorithm))
      yield* request({ method: "publickey", algorithm, publicKey: blob, signature })
      return yield* receive("publickey")
    })

  const loadKey = (method: Extract<AuthMethod, { _tag: "PrivateKeyFile" }>) =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const text = yield* fs.readFileString(expandHome(method.path)).pipe(
        Effect.mapError((e) => SshError.make(new SshError.KeyParseFailed({ message: `cannot read ${method.path}: ${e.message}` })))
      )
      return yield* core(() => PrivateKey.parse(text, method.passphrase ? Redacted.value(method.passphrase) : undefined))
    })

  const applicable = (method: AuthMethod): boolean => {
    switch (method._tag) {
      case "None":
        return false
      case "Password":
        return allowed.includes("password") || allowed.includes("keyboard-interactive")
      case "KeyboardInteractive":
        return allowed.includes("keyboard-interactive")
      case "PrivateKey":
      case "PrivateKeyFile":
        return allowed.includes("publickey")
    }
  }

  // Like OpenSSH, after every reply pick the first untried method the server still allows:
  // a chain such as "publickey,password" works whatever order the methods were given in.
  const pending = [...options.methods]
  for (;;) {
    const index = pending.findIndex(applicable)
    if (index < 0) break
    const method = pending.splice(index, 1)[0]!
    let outcome: Messages.ServerAuthMessage | undefined
    let name: string
    switch (method._tag) {
      case "None":
        continue
      case "Password": {
        const secret = Redacted.value(
          Redacted.isRedacted(method.password) ? method.password : yield* method.password
        )
        if (allowed.includes("password")) {
          name = "password"
          yield* request({ method: "password", password: secret })
          outcome = yield* receive("password")
          if (outcome._tag === "PasswordChangeRequest") {
            return yield* authFailed(allowed, partial, [...tried, "password (server demands a password change)"])
          }
        } else if (allowed.includes("keyboard-interactive")) {
          name = "keyboard-interactive"
          outcome = yield* keyboardRounds((req) => Effect.succeed(req.prompts.map(() => secret)))
        } else continue
        break
      }
      case "KeyboardInteractive":
        if (!allowed.includes("keyboard-interactive")) continue
        name = "keyboard-interactive"
        outcome = yield* keyboardRounds(method.respond)
        break
      case "PrivateKey":
      case "PrivateKeyFile": {
        if (!allowed.includes("publickey")) continue
        name = "publickey"
        const key = method._tag === "PrivateKey" ? method.key : yield* loadKey(method)
        outcome = yield* tryPublicKey(key)
        break
      }
    }
    tried.push(name)
    if (outcome._tag === "Success") {
      used.push(name)
      return { banners, methods: used } satisfies AuthOutcome
    }
    if (outcome._tag !== "Failure") {
      return yield* Effect.fail(SshError.make(new SshError.ProtocolError({ message: `unexpected ${outcome._tag} during ${name} authentication` })))
    }
    if (outcome.partial) used.push(name)
    allowed = outcome.methods
    partial = outcome.partial
  }
  return yield* authFailed(allowed, partial, tried)
})

/**
 * A public key in the form authorized_keys needs, from a private key.
 *
 * @example
 * ```ts
 * publicKeyLine(key) // "ssh-ed25519 AAAA... comment"
 * ```
 */
export const publicKeyLine = (key: PrivateKey.PrivateKey): string => PublicKey.toOpenSsh(key.publicKey)
