/**
 * Client user authentication (RFC 4252): asks for the ssh-userauth service,
 * learns the server's methods with a "none" request (or, when a key comes
 * first, from that key's attempt: one round trip less), then tries the
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
import { equal } from "../internal/bytes.ts"
import * as SshError from "../SshError.ts"
import * as AlgorithmList from "../Transport/AlgorithmList.ts"
import * as N from "../Wire/MessageNumber.ts"
import { build } from "../Wire/Writer.ts"
import type { Transport } from "../Transport/Transport.ts"
import { core, decodeServiceName } from "../Transport/Transport.ts"
import * as AgentClient from "./AgentClient.ts"
import * as Certificate from "./Certificate.ts"
import * as Messages from "./Messages.ts"
import * as PrivateKey from "./PrivateKey.ts"
import * as PublicKey from "./PublicKey.ts"
import * as os from "node:os"
import * as path from "node:path"

/** Asks for a key file's passphrase; attempt counts from 1; undefined gives up on the key. */
export type PassphrasePrompt = (
  file: string,
  attempt: number
) => Effect.Effect<Redacted.Redacted<string> | undefined, SshError.SshError>

/** Answers one keyboard-interactive round: one response per prompt. */
export type KeyboardInteractiveHandler = (
  request: Messages.InfoRequest
) => Effect.Effect<ReadonlyArray<string>, SshError.SshError>

/**
 * A way to authenticate. Build them with `Auth.password`, `Auth.privateKey`,
 * `Auth.privateKeyFile`, `Auth.certificate`, `Auth.certificateFile`,
 * `Auth.agent`, `Auth.keyboardInteractive`, `Auth.none`.
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
    /**
     * The passphrase, or a function asking for it (attempt 1, 2, ...; undefined gives up). A function is only
     * called once the server said it would accept the key (OpenSSH's behaviour: no prompt for keys it refuses).
     */
    readonly passphrase?: Redacted.Redacted<string> | PassphrasePrompt | undefined
  }
  | { readonly _tag: "KeyboardInteractive"; readonly respond: KeyboardInteractiveHandler }
  | {
    readonly _tag: "Certificate"
    readonly key: PrivateKey.PrivateKey
    /** The certificate, or its OpenSSH line (parsed when the connection authenticates). */
    readonly certificate: Certificate.Certificate | string
  }
  | {
    readonly _tag: "CertificateFile"
    readonly path: string
    readonly certificatePath: string
    readonly passphrase?: Redacted.Redacted<string> | undefined
  }
  | {
    readonly _tag: "Agent"
    /** The agent's socket; `SSH_AUTH_SOCK` when absent. */
    readonly socketPath?: string | undefined
    /** Only the agent's keys (or certificates) with these blobs, in the agent's order (ssh's IdentitiesOnly); all when absent. */
    readonly only?: ReadonlyArray<Uint8Array> | undefined
  }

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
 * For an encrypted key, give the passphrase or a function that asks for it:
 * the function runs only if the server accepts the key. A key that stays
 * encrypted is skipped (and named in `AuthFailed.tried`), not fatal.
 *
 * @example
 * ```ts
 * Auth.privateKeyFile("~/.ssh/id_ed25519")
 * Auth.privateKeyFile("~/.ssh/id_ed25519", (file) => promptPassphrase(file))
 * ```
 */
export const privateKeyFile = (file: string, passphrase?: Redacted.Redacted<string> | PassphrasePrompt): AuthMethod => ({
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
 * Public-key authentication with an OpenSSH certificate (`ssh-keygen -s`)
 * for a private key: the certificate is sent in place of the key and the
 * key signs.
 *
 * @example
 * ```ts
 * Auth.certificate(key, readFileSync("id_ed25519-cert.pub", "utf8"))
 * ```
 */
export const certificate = (key: PrivateKey.PrivateKey, cert: Certificate.Certificate | string): AuthMethod => ({
  _tag: "Certificate",
  key,
  certificate: cert
})

/**
 * Certificate authentication from files, read when the connection
 * authenticates: the private key, and its certificate (by default
 * `<key file>-cert.pub`, where `ssh-keygen -s` writes it).
 *
 * @example
 * ```ts
 * Auth.certificateFile("~/.ssh/id_ed25519")                       // with ~/.ssh/id_ed25519-cert.pub
 * Auth.certificateFile("deploy_key", { certificate: "deploy_key.cert" })
 * ```
 */
export const certificateFile = (
  file: string,
  options?: {
    readonly certificate?: string | undefined
    readonly passphrase?: Redacted.Redacted<string> | undefined
  }
): AuthMethod => ({
  _tag: "CertificateFile",
  path: file,
  certificatePath: options?.certificate ?? `${file}-cert.pub`,
  passphrase: options?.passphrase
})

/**
 * Public-key authentication with the keys of an ssh-agent (`SSH_AUTH_SOCK`
 * unless a socket is given): each key the server may accept is offered in
 * the agent's order and the agent signs. Certificates and FIDO security
 * keys held by the agent work too. Without a reachable agent the method is
 * skipped (and reported in `AuthFailed.tried`).
 *
 * @example
 * ```ts
 * Auth.agent()
 * Auth.agent({ socketPath: "/run/user/1000/gnupg/S.gpg-agent.ssh" })
 * Auth.agent({ only: [deployKey.blob] }) // the agent holds more keys: offer only this one
 * ```
 */
export const agent = (
  options?: { readonly socketPath?: string | undefined; readonly only?: ReadonlyArray<Uint8Array> | undefined }
): AuthMethod => ({
  _tag: "Agent",
  socketPath: options?.socketPath,
  ...(options?.only === undefined ? {} : { only: options.only })
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
  /**
   * The algorithms keys may be offered with (PubkeyAcceptedAlgorithms, resolved: see `resolvePublicKeyAlgorithms`);
   * a key or certificate none of whose algorithms is listed is not offered (and is named in `AuthFailed.tried`).
   * Every key is offered when absent.
   *
   * @example
   * ```ts
   * ClientAuth.authenticate(transport, { username: "me", methods, publicKeyAlgorithms: ["ssh-ed25519", "rsa-sha2-256"] })
   * ```
   */
  readonly publicKeyAlgorithms?: ReadonlyArray<string> | undefined
}

const SERVICE = "ssh-connection"
/** A key that was not offered (it stayed locked, or no algorithm of its type is accepted): nothing was asked of the server. */
const skipped = (why: string) => ({ _tag: "Skipped" as const, why })
const isSkipped = (u: unknown): u is ReturnType<typeof skipped> =>
  typeof u === "object" && u !== null && (u as { _tag?: unknown })._tag === "Skipped"
const notAccepted = (type: string) => skipped(`${type} is not in PubkeyAcceptedAlgorithms`)

const authFailed = (methodsLeft: ReadonlyArray<string>, partial: boolean, tried: ReadonlyArray<string>) =>
  Effect.fail(SshError.make(new SshError.AuthFailed({ methodsLeft, partial, tried })))

const expandHome = (file: string): string => file.startsWith("~/") ? path.join(os.homedir(), file.slice(2)) : file

/**
 * OpenSSH 9's default PubkeyAcceptedAlgorithms (ssh_config(5)): the
 * algorithms a client uses for user authentication when none are configured.
 *
 * @example
 * ```ts
 * ClientAuth.publicKeyAlgorithmDefaults.includes("ssh-rsa") // false: plain ssh-rsa (SHA-1) is off by default
 * ```
 */
export const publicKeyAlgorithmDefaults: ReadonlyArray<string> = [
  "ssh-ed25519-cert-v01@openssh.com",
  "ecdsa-sha2-nistp256-cert-v01@openssh.com",
  "ecdsa-sha2-nistp384-cert-v01@openssh.com",
  "ecdsa-sha2-nistp521-cert-v01@openssh.com",
  "sk-ssh-ed25519-cert-v01@openssh.com",
  "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com",
  "rsa-sha2-512-cert-v01@openssh.com",
  "rsa-sha2-256-cert-v01@openssh.com",
  "ssh-ed25519",
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521",
  "sk-ssh-ed25519@openssh.com",
  "sk-ecdsa-sha2-nistp256@openssh.com",
  "rsa-sha2-512",
  "rsa-sha2-256"
]

/**
 * Every user-authentication algorithm we can sign with: the defaults and
 * plain `ssh-rsa` (SHA-1, for old servers: `PubkeyAcceptedAlgorithms +ssh-rsa`).
 *
 * @example
 * ```ts
 * ClientAuth.publicKeyAlgorithmSupported.includes("ssh-rsa-cert-v01@openssh.com") // true
 * ```
 */
export const publicKeyAlgorithmSupported: ReadonlyArray<string> = [
  ...publicKeyAlgorithmDefaults,
  "ssh-rsa-cert-v01@openssh.com",
  "ssh-rsa"
]

/**
 * Resolves a PubkeyAcceptedAlgorithms specification in OpenSSH's syntax
 * (a list replaces the defaults, `+` appends, `-` removes with wildcards,
 * `^` puts first) against `publicKeyAlgorithmDefaults`. Throws
 * `UnknownAlgorithm` for a name we cannot sign with (run it under
 * `Transport.core` for a typed error).
 *
 * @example
 * ```ts
 * ClientAuth.resolvePublicKeyAlgorithms("-ssh-ed25519*") // the defaults without ssh-ed25519 and its certificate
 * ClientAuth.resolvePublicKeyAlgorithms("+ssh-rsa")      // the defaults, then ssh-rsa
 * ```
 */
export const resolvePublicKeyAlgorithms = (spec: string | ReadonlyArray<string>): Array<string> =>
  AlgorithmList.resolve("public key", spec, publicKeyAlgorithmDefaults, publicKeyAlgorithmSupported)

const rsaSignatureAlgorithms = ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]

/**
 * The public key algorithm for a key or certificate type: for RSA the best
 * rsa-sha2 the server lists in server-sig-algs (which names plain
 * algorithms, also for certificates); otherwise the type itself. With
 * `accepted` (PubkeyAcceptedAlgorithms) only an accepted algorithm (for a
 * certificate, its certificate algorithm) is picked, RSA's in the order
 * rsa-sha2-512, rsa-sha2-256, ssh-rsa; `undefined`: none is accepted, the
 * key is not offered.
 */
const publicKeyAlgorithm = (
  type: string,
  serverSigAlgs: ReadonlyArray<string> | undefined,
  accepted?: ReadonlyArray<string> | undefined
): string | undefined => {
  const certificateType = Certificate.isCertificateType(type) ? type : undefined
  const plain = certificateType === undefined ? type : Certificate.signatureAlgorithmOf(certificateType)
  const named = (signature: string) =>
    certificateType === undefined ? signature : Certificate.certificateAlgorithm(certificateType, signature)
  if (plain !== "ssh-rsa") return accepted === undefined || accepted.includes(type) ? type : undefined
  const candidates = accepted === undefined ? rsaSignatureAlgorithms : rsaSignatureAlgorithms.filter((a) => accepted.includes(named(a)))
  const fallback = accepted === undefined ? "rsa-sha2-512" : candidates[0]
  const rsa = serverSigAlgs === undefined ? fallback : candidates.find((a) => serverSigAlgs.includes(a)) ?? fallback
  return rsa === undefined ? undefined : named(rsa)
}

/** Signs the userauth data; `algorithm` is the public key algorithm (a certificate's signs as its key). */
type UserAuthSigner = (data: Uint8Array, algorithm: string) => Effect.Effect<Uint8Array, SshError.SshError>

const keySigner = (key: PrivateKey.PrivateKey): UserAuthSigner => (data, algorithm) =>
  core(() => key.sign(data, Certificate.signatureAlgorithmOf(algorithm) ?? algorithm))

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

  // "none" tells us which methods the server allows. When the first method is a key, that attempt's answer
  // tells us just as well, so we skip the round trip (connect latency) — every server allows publickey to be tried.
  const first = options.methods[0]?._tag
  const keyFirst = first === "PrivateKey" || first === "PrivateKeyFile" || first === "Certificate" || first === "CertificateFile"
  let allowed: ReadonlyArray<string> = ["publickey"]
  let partial = false
  if (!keyFirst) {
    yield* request({ method: "none" })
    const reply = yield* receive("none")
    if (reply._tag === "Success") return { banners, methods: ["none"] } satisfies AuthOutcome
    if (reply._tag !== "Failure") {
      return yield* Effect.fail(SshError.make(new SshError.ProtocolError({ message: `unexpected ${reply._tag} to a none request` })))
    }
    allowed = reply.methods
    partial = reply.partial
  }

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

  /** The algorithm a key or certificate of `type` is offered with now (server-sig-algs arrive after the first kex). */
  const algorithmFor = (type: string): string | undefined => {
    const ext = transport.extensions().get("server-sig-algs")
    const serverSigAlgs = ext ? new TextDecoder().decode(ext).split(",") : undefined
    return publicKeyAlgorithm(type, serverSigAlgs, options.publicKeyAlgorithms)
  }

  /**
   * Offers a key or certificate blob of `type`, signed by `sign`. With
   * `query`, first asks whether the server would accept it (no signature),
   * so an agent is asked to sign (a FIDO key touched, a confirm prompt
   * shown) only for a key the server wants.
   */
  const tryPublicKey = (blob: Uint8Array, type: string, sign: UserAuthSigner, query = false) =>
    Effect.gen(function*() {
      const algorithm = algorithmFor(type)
      if (algorithm === undefined) return notAccepted(type)
      if (query) {
        yield* request({ method: "publickey", algorithm, publicKey: blob })
        const answer = yield* receive("publickey")
        if (answer._tag !== "PkOk") return answer
      }
      const signed = Messages.publicKeySignedData(transport.sessionId, options.username, SERVICE, algorithm, blob)
      const signature = yield* sign(signed, algorithm)
      yield* request({ method: "publickey", algorithm, publicKey: blob, signature })
      return yield* receive("publickey")
    })

  const tryCertificate = (key: PrivateKey.PrivateKey, cert: Certificate.Certificate) =>
    Effect.gen(function*() {
      if (!equal(cert.key.blob, key.publicKey.blob)) {
        return yield* Effect.fail(SshError.make(new SshError.KeyParseFailed({ message: `certificate "${cert.keyId}" does not certify the ${key.type} key ${PublicKey.fingerprint(key.publicKey)}` })))
      }
      return yield* tryPublicKey(cert.blob, cert.type, keySigner(key))
    })

  /** Tries the agent's keys in turn; `undefined` when none could be offered. */
  const tryAgent = (method: Extract<AuthMethod, { _tag: "Agent" }>) =>
    Effect.scoped(Effect.gen(function*() {
      const connected = yield* Effect.result(Effect.flatMap(AgentClient.connect(method.socketPath), (a) =>
        Effect.map(a.identities, (identities) => ({ agent: a, identities }))))
      if (connected._tag === "Failure") {
        tried.push(`publickey (agent: ${connected.failure.reason.message})`)
        return undefined
      }
      const { agent: client, identities } = connected.success
      let last: Messages.ServerAuthMessage | undefined
      const only = method.only
      for (const identity of identities) {
        // a key type we cannot name an algorithm for (ssh-dss, post-quantum...) is not offered
        if (identity.key === undefined || !allowed.includes("publickey")) continue
        if (only !== undefined && !only.some((blob) => equal(blob, identity.blob))) continue
        const outcome = yield* tryPublicKey(
          identity.blob,
          identity.type,
          (data, algorithm) => client.sign(identity, data, { algorithm }),
          true
        )
        if (isSkipped(outcome)) {
          tried.push(`publickey (agent ${identity.type}: ${outcome.why})`)
          continue
        }
        last = outcome
        if (outcome._tag !== "Failure" || outcome.partial) return outcome
        allowed = outcome.methods
      }
      if (last === undefined) tried.push("publickey (agent: no usable keys)")
      return last
    }))

  const readKeyText = (file: string) =>
    Effect.flatMap(FileSystem.FileSystem, (fs) =>
      fs.readFileString(expandHome(file)).pipe(
        Effect.mapError((e) => SshError.make(new SshError.KeyParseFailed({ message: `cannot read ${file}: ${e.message}` })))
      ))

  const loadKey = (method: { readonly path: string; readonly passphrase?: Redacted.Redacted<string> | undefined }) =>
    Effect.flatMap(readKeyText(method.path), (text) =>
      core(() => PrivateKey.parse(text, method.passphrase ? Redacted.value(method.passphrase) : undefined)))

  /**
   * A key file's attempt. An encrypted key with a passphrase prompt is first
   * offered by its public key (in clear in openssh-key-v1, or the `.pub` file
   * beside it); the prompt runs only if the server answers PK_OK. A wrong
   * fixed passphrase is `WrongPassphrase`; `StillLocked`: the key stayed locked
   * (no passphrase, or three wrong answers to the prompt), nothing was decided.
   */
  const tryKeyFile = (method: Extract<AuthMethod, { _tag: "PrivateKeyFile" }>) =>
    Effect.gen(function*() {
      const text = yield* readKeyText(method.path)
      const given = method.passphrase
      const fixed = given !== undefined && Redacted.isRedacted(given) ? Redacted.value(given) : undefined
      const parsed = yield* Effect.result(core(() => PrivateKey.parse(text, fixed)))
      if (parsed._tag === "Success") {
        const key = parsed.success
        return yield* tryPublicKey(key.publicKey.blob, key.type, keySigner(key))
      }
      const reason = parsed.failure.reason
      if (reason._tag === "WrongPassphrase" && fixed !== undefined) {
        return yield* Effect.fail(SshError.make(new SshError.WrongPassphrase({ message: `${method.path}: ${reason.message}` })))
      }
      const locked = reason._tag === "PassphraseRequired" || reason._tag === "WrongPassphrase"
      if (!locked || typeof given !== "function") {
        if (locked) return skipped("encrypted, no passphrase")
        return yield* Effect.fail(parsed.failure)
      }
      const publicKey = PrivateKey.publicKeyOfFile(text) ?? (yield* readKeyText(`${method.path}.pub`).pipe(
        Effect.flatMap((line) => core(() => PublicKey.parseOpenSsh(line.trim()))),
        Effect.orElseSucceed(() => undefined)
      ))
      if (publicKey !== undefined) {
        const algorithm = algorithmFor(publicKey.type)
        if (algorithm === undefined) return notAccepted(publicKey.type)
        yield* request({ method: "publickey", algorithm, publicKey: publicKey.blob })
        const answer = yield* receive("publickey")
        if (answer._tag !== "PkOk") return answer
      }
      for (let attempt = 1; attempt <= 3; attempt++) {
        const passphrase = yield* given(method.path, attempt)
        if (passphrase === undefined) return skipped(attempt === 1 ? "encrypted, no passphrase" : `wrong passphrase, ${attempt - 1} tries`)
        const opened = yield* Effect.result(core(() => PrivateKey.parse(text, Redacted.value(passphrase))))
        if (opened._tag === "Success") {
          const key = opened.success
          return yield* tryPublicKey(key.publicKey.blob, key.type, keySigner(key))
        }
        if (opened.failure.reason._tag !== "WrongPassphrase") return yield* Effect.fail(opened.failure)
      }
      return skipped("wrong passphrase, 3 tries")
    })

  const loadCertificate = (method: Extract<AuthMethod, { _tag: "CertificateFile" }>) =>
    Effect.gen(function*() {
      const key = yield* loadKey(method)
      const fs = yield* FileSystem.FileSystem
      const text = yield* fs.readFileString(expandHome(method.certificatePath)).pipe(
        Effect.mapError((e) => SshError.make(new SshError.KeyParseFailed({ message: `cannot read ${method.certificatePath}: ${e.message}` })))
      )
      return { key, certificate: yield* core(() => Certificate.parseOpenSsh(text)) }
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
      case "Certificate":
      case "CertificateFile":
      case "Agent":
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
      case "PrivateKey": {
        if (!allowed.includes("publickey")) continue
        name = "publickey"
        const attempted = yield* tryPublicKey(method.key.publicKey.blob, method.key.type, keySigner(method.key))
        if (isSkipped(attempted)) {
          tried.push(`publickey ${PublicKey.fingerprint(method.key.publicKey)} (${attempted.why})`)
          continue
        }
        outcome = attempted
        break
      }
      case "PrivateKeyFile": {
        if (!allowed.includes("publickey")) continue
        name = "publickey"
        const tried_ = yield* tryKeyFile(method)
        if (isSkipped(tried_)) {
          tried.push(`publickey ${method.path} (${tried_.why})`)
          continue
        }
        outcome = tried_
        break
      }
      case "Certificate":
      case "CertificateFile": {
        if (!allowed.includes("publickey")) continue
        name = "publickey"
        const { key, certificate: cert } = method._tag === "CertificateFile"
          ? yield* loadCertificate(method)
          : {
            key: method.key,
            certificate: typeof method.certificate === "string"
              ? yield* core(() => Certificate.parseOpenSsh(method.certificate as string))
              : method.certificate
          }
        const attempted = yield* tryCertificate(key, cert)
        if (isSkipped(attempted)) {
          tried.push(`publickey certificate "${cert.keyId}" (${attempted.why})`)
          continue
        }
        outcome = attempted
        break
      }
      case "Agent": {
        name = "publickey"
        const agentOutcome = yield* tryAgent(method)
        if (agentOutcome === undefined) continue
        outcome = agentOutcome
        break
      }
    }
    tried.push(name)
    yield* Effect.logDebug(`auth: ${name} → ${outcome._tag === "Failure" ? `failure (${outcome.partial ? "partial; " : ""}can continue: ${outcome.methods.join(",")})` : outcome._tag}`)
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
