/**
 * Test helpers for the agent and certificate tests: an in-process ssh-agent
 * built on our own codec (so agent tests run without OpenSSH), and signers
 * for the FIDO test keys of the OpenSSH regress suite, which were made with
 * the sk-dummy middleware: their key handle *is* the private key.
 */
import { p256 } from "@noble/curves/nist.js"
import { ed25519 } from "@noble/curves/ed25519.js"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import * as Agent from "../../src/Auth/Agent.ts"
import type * as PrivateKey from "../../src/Auth/PrivateKey.ts"
import * as Signature from "../../src/Auth/Signature.ts"
import * as SecurityKey from "../../src/internal/securityKey.ts"
import { Reader } from "../../src/Wire/Reader.ts"
import { build } from "../../src/Wire/Writer.ts"
import { readText } from "./fixtures.ts"

/** A key an agent can sign with: its blob (key or certificate) and a signer honouring the request flags. */
export interface AgentKey {
  readonly blob: Uint8Array
  readonly comment: string
  readonly sign: (data: Uint8Array, flags: number) => Uint8Array
}

/** A running in-process agent. */
export interface TestAgent {
  readonly path: string
  /** Every request received, decoded. */
  readonly requests: Array<Agent.AgentRequest>
  readonly keys: Array<AgentKey>
  readonly stop: () => Promise<void>
}

const rsaAlgorithm = (flags: number): string =>
  (flags & Agent.SignFlags.RSA_SHA2_512) !== 0 ? "rsa-sha2-512" : (flags & Agent.SignFlags.RSA_SHA2_256) !== 0 ? "rsa-sha2-256" : "ssh-rsa"

/**
 * An agent key from a private key (optionally presented as a certificate blob).
 */
export const agentKey = (key: PrivateKey.PrivateKey, certificateBlob?: Uint8Array): AgentKey => ({
  blob: certificateBlob ?? key.publicKey.blob,
  comment: key.comment,
  sign: (data, flags) => key.sign(data, key.type === "ssh-rsa" ? rsaAlgorithm(flags) : undefined)
})

const answer = (keys: Array<AgentKey>, state: { locked: Uint8Array | undefined }, request: Agent.AgentRequest): Agent.AgentResponse => {
  const same = (a: Uint8Array, b: Uint8Array) => Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0
  switch (request._tag) {
    case "RequestIdentities":
      return { _tag: "Identities", identities: state.locked ? [] : keys.map(({ blob, comment }) => ({ blob, comment })) }
    case "Sign": {
      const key = keys.find((k) => same(k.blob, request.key))
      return key === undefined || state.locked ? { _tag: "Failure" } : { _tag: "SignResponse", signature: key.sign(request.data, request.flags) }
    }
    case "AddIdentity":
      keys.push({ ...agentKey(request.key, request.certificate?.blob), comment: request.comment })
      return { _tag: "Success" }
    case "RemoveIdentity": {
      const index = keys.findIndex((k) => same(k.blob, request.key))
      if (index < 0) return { _tag: "Failure" }
      keys.splice(index, 1)
      return { _tag: "Success" }
    }
    case "RemoveAllIdentities":
      keys.splice(0)
      return { _tag: "Success" }
    case "Lock":
      if (state.locked) return { _tag: "Failure" }
      state.locked = request.passphrase
      return { _tag: "Success" }
    case "Unlock":
      if (!state.locked || !same(state.locked, request.passphrase)) return { _tag: "Failure" }
      state.locked = undefined
      return { _tag: "Success" }
    default:
      return { _tag: "Failure" }
  }
}

/**
 * Starts an agent on a Unix socket in a fresh temp dir, holding `keys`.
 */
export const startTestAgent = async (keys: ReadonlyArray<AgentKey> = []): Promise<TestAgent> => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "effect-ssh-test-agent-"))
  const socketPath = path.join(dir, "agent.sock")
  const requests: Array<Agent.AgentRequest> = []
  const held = [...keys]
  const state = { locked: undefined as Uint8Array | undefined }
  const sockets = new Set<net.Socket>()
  const server = net.createServer((socket) => {
    sockets.add(socket)
    socket.on("close", () => sockets.delete(socket))
    const frames = new Agent.FrameDecoder()
    socket.on("data", (chunk) => {
      frames.push(new Uint8Array(chunk))
      try {
        for (let payload = frames.next(); payload !== undefined; payload = frames.next()) {
          let response: Agent.AgentResponse
          try {
            const request = Agent.decodeRequest(payload)
            requests.push(request)
            response = answer(held, state, request)
          } catch {
            response = { _tag: "Failure" }
          }
          socket.write(Agent.frame(Agent.encodeResponse(response)))
        }
      } catch {
        socket.destroy()
      }
    })
    socket.on("error", () => socket.destroy())
  })
  await new Promise<void>((resolve) => server.listen(socketPath, resolve))
  return {
    path: socketPath,
    requests,
    keys: held,
    stop: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy()
        server.close(() => {
          fs.rmSync(dir, { recursive: true, force: true })
          resolve()
        })
      })
  }
}

/** A FIDO test key of the OpenSSH regress suite, with a signer standing in for the authenticator. */
export interface DummySecurityKey {
  readonly key: SecurityKey.SecurityKey
  readonly comment: string
  /** Signs like an authenticator: `flags` (default: user present) and an increasing counter. */
  readonly sign: (data: Uint8Array, flags?: number) => Uint8Array
}

/**
 * Loads `specs/testdata/openssh/sshkey/<name>` (an unencrypted sk-dummy key).
 */
export const dummySecurityKey = (name: string): DummySecurityKey => {
  const text = readText(`openssh/sshkey/${name}`)
  const file = new Uint8Array(Buffer.from(text.replace(/-----[^-]+-----/g, "").replace(/\s+/g, ""), "base64"))
  const r = new Reader(file, "openssh-key-v1\0".length)
  r.name() // cipher none
  r.name() // kdf none
  r.string()
  r.uint32()
  const key = SecurityKey.fromBlob(r.string())
  const section = new Reader(r.string())
  section.uint32()
  section.uint32()
  section.name()
  if (key.type === "sk-ecdsa-sha2-nistp256@openssh.com") section.name()
  section.string()
  section.utf8()
  section.byte()
  const handle = section.string().slice()
  section.string()
  const comment = section.utf8()
  let counter = 0
  const secret = key.type === "sk-ssh-ed25519@openssh.com"
    ? handle.subarray(0, 32)
    : new Uint8Array(Buffer.from(
      // sk-dummy keeps the ECDSA key as PEM text in the handle
      (crypto.createPrivateKey(Buffer.from(handle).toString("utf8")).export({ format: "jwk" }) as { d: string }).d,
      "base64url"
    ))
  return {
    key,
    comment,
    sign: (data, flags = SecurityKey.FLAG_USER_PRESENT) => {
      counter++
      const message = SecurityKey.signedMessage(key.application, flags, counter, data)
      const raw = key.type === "sk-ssh-ed25519@openssh.com"
        ? ed25519.sign(message, secret)
        : Signature.ecdsaRawFromCompact(p256.sign(message, secret))
      return SecurityKey.encodeSignature(key.type, raw, flags, counter)
    }
  }
}

/** The agent key of a dummy security key (the agent passes flags it cannot honour; the key decides). */
export const securityAgentKey = (sk: DummySecurityKey, flags?: number): AgentKey => ({
  blob: sk.key.blob,
  comment: sk.comment,
  sign: (data) => sk.sign(data, flags)
})

/** Builds a blob of an unknown key type (for identities we cannot parse). */
export const unknownKeyBlob = (type = "ssh-dss"): Uint8Array => build((w) => w.string(type).string(new Uint8Array(8)))
