/**
 * User-authentication messages (RFC 4252, RFC 4256 keyboard-interactive).
 * Message 60 means PK_OK, PASSWD_CHANGEREQ or INFO_REQUEST depending on the
 * method in progress, so the decoder takes that method.
 *
 * @since 0.1.0
 */
import * as N from "../Wire/MessageNumber.ts"
import { Reader } from "../Wire/Reader.ts"
import { build } from "../Wire/Writer.ts"
import { ProtocolError } from "../SshError.ts"

/** A USERAUTH_REQUEST's method-specific part. */
export type AuthMethodRequest =
  | { readonly method: "none" }
  | { readonly method: "password"; readonly password: string; readonly newPassword?: string | undefined }
  | {
    readonly method: "publickey"
    readonly algorithm: string
    readonly publicKey: Uint8Array
    readonly signature?: Uint8Array | undefined
  }
  | { readonly method: "keyboard-interactive"; readonly submethods: string }
  | { readonly method: string & {}; readonly data: Uint8Array }

/** A decoded USERAUTH_REQUEST. */
export interface AuthRequest {
  readonly user: string
  readonly service: string
  readonly request: AuthMethodRequest
}

/** One keyboard-interactive prompt. */
export interface Prompt {
  readonly prompt: string
  readonly echo: boolean
}

/** A keyboard-interactive round (RFC 4256 §3.2). */
export interface InfoRequest {
  readonly name: string
  readonly instruction: string
  readonly prompts: ReadonlyArray<Prompt>
}

/** What a server answers to a USERAUTH_REQUEST (as seen by the client). */
export type ServerAuthMessage =
  | { readonly _tag: "Failure"; readonly methods: ReadonlyArray<string>; readonly partial: boolean }
  | { readonly _tag: "Success" }
  | { readonly _tag: "Banner"; readonly message: string }
  | { readonly _tag: "PkOk"; readonly algorithm: string; readonly publicKey: Uint8Array }
  | { readonly _tag: "PasswordChangeRequest"; readonly prompt: string }
  | ({ readonly _tag: "InfoRequest" } & InfoRequest)

/** Most prompts we accept in one keyboard-interactive round. */
export const MAX_PROMPTS = 64

/**
 * Encodes a USERAUTH_REQUEST.
 *
 * @example
 * ```ts
 * encodeRequest({ user: "me", service: "ssh-connection", request: { method: "none" } })
 * ```
 */
export const encodeRequest = (req: AuthRequest): Uint8Array =>
  build((w) => {
    w.byte(N.USERAUTH_REQUEST).string(req.user).string(req.service).string(req.request.method)
    const m = req.request
    switch (m.method) {
      case "none":
        return
      case "password": {
        const p = m as Extract<AuthMethodRequest, { method: "password" }>
        w.boolean(p.newPassword !== undefined).string(p.password)
        if (p.newPassword !== undefined) w.string(p.newPassword)
        return
      }
      case "publickey": {
        const p = m as Extract<AuthMethodRequest, { method: "publickey" }>
        w.boolean(p.signature !== undefined).string(p.algorithm).string(p.publicKey)
        if (p.signature !== undefined) w.string(p.signature)
        return
      }
      case "keyboard-interactive": {
        const p = m as Extract<AuthMethodRequest, { method: "keyboard-interactive" }>
        w.string("").string(p.submethods)
        return
      }
      default:
        w.raw((m as { data: Uint8Array }).data)
    }
  })

/**
 * Decodes a USERAUTH_REQUEST (server side).
 *
 * @example
 * ```ts
 * const { user, request } = decodeRequest(payload)
 * ```
 */
export const decodeRequest = (payload: Uint8Array): AuthRequest => {
  const r = new Reader(payload)
  if (r.byte() !== N.USERAUTH_REQUEST) throw new ProtocolError({ message: "expected USERAUTH_REQUEST" })
  const user = r.utf8("user name")
  const service = r.name("service name")
  const method = r.name("method name")
  switch (method) {
    case "none":
      return { user, service, request: { method } }
    case "password": {
      const change = r.boolean()
      const password = r.utf8("password")
      const newPassword = change ? r.utf8("new password") : undefined
      return { user, service, request: { method, password, newPassword } }
    }
    case "publickey": {
      const hasSignature = r.boolean()
      const algorithm = r.name("public key algorithm")
      const publicKey = r.string("public key blob")
      const signature = hasSignature ? r.string("signature") : undefined
      r.end("publickey request")
      return { user, service, request: { method, algorithm, publicKey, signature } }
    }
    case "keyboard-interactive": {
      r.string("language tag")
      const submethods = r.utf8("submethods")
      return { user, service, request: { method, submethods } }
    }
    default:
      return { user, service, request: { method, data: r.rest() } }
  }
}

/**
 * The data a publickey signature covers (RFC 4252 §7).
 *
 * @example
 * ```ts
 * const data = publicKeySignedData(sessionId, "me", "ssh-connection", "ssh-ed25519", blob)
 * ```
 */
export const publicKeySignedData = (
  sessionId: Uint8Array,
  user: string,
  service: string,
  algorithm: string,
  publicKey: Uint8Array
): Uint8Array =>
  build((w) =>
    w.string(sessionId).byte(N.USERAUTH_REQUEST).string(user).string(service).string("publickey").boolean(true)
      .string(algorithm).string(publicKey)
  )

/**
 * Decodes a server's answer during authentication; `method` disambiguates message 60.
 *
 * @example
 * ```ts
 * const msg = decodeServerMessage(payload, "publickey")
 * ```
 */
export const decodeServerMessage = (payload: Uint8Array, method: string): ServerAuthMessage => {
  const r = new Reader(payload)
  const type = r.byte()
  switch (type) {
    case N.USERAUTH_FAILURE: {
      const methods = r.nameList("authentications that can continue")
      const partial = r.boolean()
      return { _tag: "Failure", methods, partial }
    }
    case N.USERAUTH_SUCCESS:
      return { _tag: "Success" }
    case N.USERAUTH_BANNER: {
      const message = r.utf8("banner")
      return { _tag: "Banner", message }
    }
    case 60:
      if (method === "publickey") {
        const algorithm = r.name("public key algorithm")
        const publicKey = r.string("public key blob")
        return { _tag: "PkOk", algorithm, publicKey }
      }
      if (method === "password") return { _tag: "PasswordChangeRequest", prompt: r.utf8("prompt") }
      if (method === "keyboard-interactive") return { _tag: "InfoRequest", ...decodeInfoRequestBody(r) }
      throw new ProtocolError({ message: `unexpected message 60 during ${method} authentication` })
    default:
      throw new ProtocolError({ message: `unexpected message ${type} during authentication` })
  }
}

const decodeInfoRequestBody = (r: Reader): InfoRequest => {
  const name = r.utf8("name")
  const instruction = r.utf8("instruction")
  r.string("language tag")
  const count = r.uint32()
  if (count > MAX_PROMPTS) throw new ProtocolError({ message: `too many prompts (${count})` })
  const prompts: Array<Prompt> = []
  for (let i = 0; i < count; i++) prompts.push({ prompt: r.utf8("prompt"), echo: r.boolean() })
  return { name, instruction, prompts }
}

/** @example `encodeFailure(["publickey", "password"], false)` */
export const encodeFailure = (methods: ReadonlyArray<string>, partial: boolean): Uint8Array =>
  build((w) => w.byte(N.USERAUTH_FAILURE).nameList(methods).boolean(partial))

/** @example `encodeSuccess()` */
export const encodeSuccess = (): Uint8Array => Uint8Array.of(N.USERAUTH_SUCCESS)

/** @example `encodeBanner("Authorized use only\n")` */
export const encodeBanner = (message: string): Uint8Array =>
  build((w) => w.byte(N.USERAUTH_BANNER).string(message).string(""))

/** @example `encodePkOk("ssh-ed25519", blob)` */
export const encodePkOk = (algorithm: string, publicKey: Uint8Array): Uint8Array =>
  build((w) => w.byte(N.USERAUTH_PK_OK).string(algorithm).string(publicKey))

/** @example `encodeInfoRequest({ name: "", instruction: "", prompts: [{ prompt: "Password: ", echo: false }] })` */
export const encodeInfoRequest = (req: InfoRequest): Uint8Array =>
  build((w) => {
    w.byte(N.USERAUTH_INFO_REQUEST).string(req.name).string(req.instruction).string("").uint32(req.prompts.length)
    for (const p of req.prompts) w.string(p.prompt).boolean(p.echo)
  })

/** @example `encodeInfoResponse(["hunter2"])` */
export const encodeInfoResponse = (responses: ReadonlyArray<string>): Uint8Array =>
  build((w) => {
    w.byte(N.USERAUTH_INFO_RESPONSE).uint32(responses.length)
    for (const s of responses) w.string(s)
  })

/** @example `decodeInfoResponse(payload)` */
export const decodeInfoResponse = (payload: Uint8Array): ReadonlyArray<string> => {
  const r = new Reader(payload)
  if (r.byte() !== N.USERAUTH_INFO_RESPONSE) throw new ProtocolError({ message: "expected USERAUTH_INFO_RESPONSE" })
  const count = r.uint32()
  if (count > MAX_PROMPTS) throw new ProtocolError({ message: `too many responses (${count})` })
  const out: Array<string> = []
  for (let i = 0; i < count; i++) out.push(r.utf8("response"))
  r.end("USERAUTH_INFO_RESPONSE")
  return out
}
