/**
 * Our client fed hostile server bytes at every phase — version exchange,
 * KEXINIT, the kex reply, strict-kex violations, packets after NEWKEYS,
 * authentication and channels — must end every case in a typed `SshError`
 * with the expected reason, in bounded time and memory: never a hang, a
 * defect, an unhandled rejection or a crash. A property test then mutates a
 * valid server stream at random (bit flips, truncations, insertions,
 * length-field overwrites).
 */
import { describe, expect, it } from "vitest"
import * as fc from "fast-check"
import { randomBytes } from "node:crypto"
import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as FileSystem from "effect/FileSystem"
import type * as Scope from "effect/Scope"
import { runScoped } from "../helpers.ts"
import * as SshClient from "../../src/Client.ts"
import * as Auth from "../../src/Auth/ClientAuth.ts"
import * as HostKeys from "../../src/Auth/HostKeys.ts"
import * as PrivateKey from "../../src/Auth/PrivateKey.ts"
import * as AuthMessages from "../../src/Auth/Messages.ts"
import * as ChannelMessages from "../../src/Channel/Messages.ts"
import * as Messages from "../../src/Transport/Messages.ts"
import * as N from "../../src/Wire/MessageNumber.ts"
import { concat } from "../../src/internal/bytes.ts"
import { SshError } from "../../src/SshError.ts"
import {
  collectGarbage,
  defaultKexInit,
  latin1,
  describeMutations,
  fakeServer,
  mutationArbitrary,
  mutator,
  type OutputFilter,
  type SshPeer,
  uint32
} from "./peer.ts"
import { scaled, scaledTimeout } from "./mutate.ts"

const hostKey = PrivateKey.generate("ssh-ed25519")
const otherKey = PrivateKey.generate("ssh-ed25519")

/** Every case must be over (client error surfaced) within this many ms; connectTimeout is shorter. */
const TIME_BOUND = 6000

const clientOptions = (port: number, extra: Partial<SshClient.ConnectOptions> = {}): SshClient.ConnectOptions => ({
  host: "127.0.0.1",
  port,
  username: "fuzz",
  auth: [Auth.password("pw")],
  hostKeys: HostKeys.fixed(hostKey.publicKey),
  connectTimeout: "4 seconds",
  keepaliveInterval: 0,
  ...extra
})

const connectOnly = (port: number, extra?: Partial<SshClient.ConnectOptions>) =>
  Effect.asVoid(SshClient.connect(clientOptions(port, extra)))

const connectAndRun = (port: number, extra?: Partial<SshClient.ConnectOptions>) =>
  Effect.flatMap(SshClient.connect(clientOptions(port, extra)), (ssh) => Effect.map(ssh.run("true"), (r) => r.stdout))

type Program = (port: number) => Effect.Effect<unknown, SshError, Scope.Scope | SshClient.Connector | FileSystem.FileSystem>

const deadline = <A>(promise: Promise<A>, ms: number, what: string): Promise<A> =>
  Promise.race([
    promise,
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms).unref())
  ])

/**
 * Runs `program` against a fake server running `script`; returns the exit of
 * the program (never a defect) and the peer, after the connection ended.
 */
const against = async (
  script: (peer: SshPeer) => Promise<unknown>,
  program: Program = connectAndRun,
  options: { readonly hostKey?: PrivateKey.PrivateKey; readonly filter?: OutputFilter; readonly idleMs?: number } = {}
) => {
  const server = await fakeServer(script, { hostKey: options.hostKey ?? hostKey, idleMs: options.idleMs ?? 1000, filter: options.filter })
  try {
    const started = Date.now()
    const exit = await deadline(
      runScoped(Effect.exit(program(server.port))),
      TIME_BOUND,
      "the client"
    )
    const elapsed = Date.now() - started
    expect(Exit.isFailure(exit) ? Cause.hasDies(exit.cause) : false, Exit.isFailure(exit) ? Cause.pretty(exit.cause) : "").toBe(false)
    const first = server.sessions.at(0)
    const session = first === undefined ? undefined : await deadline(first, TIME_BOUND, "the fake server")
    return { exit, elapsed, peer: session?.peer }
  } finally {
    await server.close()
  }
}

const errorOf = (exit: Exit.Exit<unknown, SshError>): SshError => {
  if (Exit.isSuccess(exit)) throw new Error(`expected a failure, got success: ${JSON.stringify(exit.value)}`)
  const failure = exit.cause.reasons.find(Cause.isFailReason)
  if (failure === undefined) throw new Error(`expected a typed failure, got ${Cause.pretty(exit.cause)}`)
  expect(failure.error).toBeInstanceOf(SshError)
  return failure.error
}

/** Runs a case and checks the client failed with `tag` (and, when given, that its message matches). */
const expectReason = async (
  tag: string,
  script: (peer: SshPeer) => Promise<unknown>,
  program: Program = connectAndRun,
  options: { readonly hostKey?: PrivateKey.PrivateKey; readonly message?: RegExp } = {}
) => {
  const result = await against(script, program, options)
  const error = errorOf(result.exit)
  expect(error.reason._tag, error.message).toBe(tag)
  if (options.message) expect(error.reason.message).toMatch(options.message)
  return { ...result, error }
}

/** Handshake done, authentication accepted. */
const upToAuth = async (peer: SshPeer) => {
  await peer.serverHandshake()
  await peer.acceptAuth()
}

/** A KEX_ECDH_REPLY with one field replaced. */
const replaceInReply = (reply: Uint8Array, change: Partial<Messages.KexEcdhReply>): Uint8Array =>
  Messages.encodeKexEcdhReply({ ...Messages.decodeKexEcdhReply(reply), ...change })

describe("client ← hostile server: version exchange", () => {
  it("endless pre-version lines → ProtocolError after 64 KiB", async () => {
    const { error } = await expectReason("ProtocolError", async (peer) => {
      const line = latin1("this is not an ssh server, it just keeps talking\r\n")
      for (let sent = 0; sent < 1024 * 1024 && !peer.pipe.isClosed; sent += line.length * 64) {
        peer.sendRaw(concat(Array.from({ length: 64 }, () => line)))
        await new Promise((r) => setImmediate(r))
      }
    }, connectOnly, { message: /identification line/ })
    expect(error.reason.message).toMatch(/64 KiB|line end/)
  })

  it("garbage without a line end → ProtocolError", async () => {
    await expectReason("ProtocolError", async (peer) => {
      peer.sendRaw(new Uint8Array(70 * 1024).fill(0x41))
    }, connectOnly, { message: /no SSH identification line/ })
  })

  it("an SSH- line of 300 bytes → ProtocolError", async () => {
    await expectReason("ProtocolError", async (peer) => {
      peer.sendRaw(latin1(`SSH-2.0-${"x".repeat(300)}\r\n`))
    }, connectOnly, { message: /longer than 255/ })
  })

  it("an SSH- line with no line end → ProtocolError", async () => {
    await expectReason("ProtocolError", async (peer) => {
      peer.sendRaw(latin1(`SSH-2.0-${"x".repeat(300)}`))
    }, connectOnly, { message: /no SSH identification line/ })
  })

  it("SSH-1.5 → ProtocolError naming the version", async () => {
    await expectReason("ProtocolError", async (peer) => {
      peer.sendRaw(latin1("SSH-1.5-OpenSSH_1.2.3\r\n"))
    }, connectOnly, { message: /unsupported protocol version/ })
  })

  it("control characters in the version line → ProtocolError", async () => {
    await expectReason("ProtocolError", async (peer) => {
      peer.sendRaw(latin1("SSH-2.0-Evil\x00\x1b[2J\r\n"))
    }, connectOnly, { message: /control characters/ })
  })

  it("the server closes before or right after its version line → ConnectionClosed", async () => {
    await expectReason("ConnectionClosed", async (peer) => {
      peer.pipe.destroy()
    }, connectOnly)
    await expectReason("ConnectionClosed", async (peer) => {
      await peer.exchangeVersions()
      peer.pipe.destroy()
    }, connectOnly)
  })

  it("a server that never speaks → Timeout from connectTimeout", async () => {
    const { elapsed } = await expectReason("Timeout", async (peer) => {
      await peer.pipe.waitClosed(3000)
    }, (port) => connectOnly(port, { connectTimeout: "500 millis" }))
    expect(elapsed).toBeLessThan(2500)
  })
})

describe("client ← hostile server: KEXINIT", () => {
  const junkNames = (count: number) => Array.from({ length: count }, (_, i) => `junk-${i}@fuzz.example`)
  // the name-list cases need packets past the pre-authentication limit, raised here
  const largeKexInit = { transportLimits: { preAuthPacketBytes: 256 * 1024 } }

  it("a KEXINIT over the pre-authentication packet limit (35000 bytes) → LimitExceeded", async () => {
    await expectReason("LimitExceeded", async (peer) => {
      await peer.exchangeVersions()
      peer.send(defaultKexInit("server", { kexAlgorithms: junkNames(2500) }))
    }, connectOnly, { message: /at most 35000 are accepted before authentication/ })
  })

  it("huge name-lists with nothing in common → NegotiationFailed, and DISCONNECT key exchange failed", async () => {
    const { error, peer } = await expectReason("NegotiationFailed", async (peer) => {
      await peer.exchangeVersions()
      peer.send(defaultKexInit("server", { kexAlgorithms: junkNames(2500) }))
    }, (port) => connectOnly(port, largeKexInit))
    const reason = error.reason as unknown as { kind: string; theirs: ReadonlyArray<string> }
    expect(reason.kind).toBe("kex")
    expect(reason.theirs.length).toBe(2500)
    expect(peer!.disconnect?.code).toBe(N.DisconnectReason.KEY_EXCHANGE_FAILED)
  })

  it("a name-list over 64 KiB → ProtocolError", async () => {
    await expectReason("ProtocolError", async (peer) => {
      await peer.exchangeVersions()
      peer.send(defaultKexInit("server", { macsServerToClient: junkNames(9000) }))
    }, (port) => connectOnly(port, largeKexInit), { message: /mac_algorithms_server_to_client too long/ })
  })

  it("a huge name-list that still contains a common algorithm works", async () => {
    const result = await against(async (peer) => {
      await peer.serverHandshake(defaultKexInit("server", { ciphersServerToClient: [...junkNames(2500), "aes128-gcm@openssh.com"] }))
      await peer.acceptAuth()
      await peer.runCommand(await peer.acceptSession(), "ok\n")
    }, (port) => connectAndRun(port, largeKexInit))
    expect(Exit.isSuccess(result.exit) ? result.exit.value : result.exit).toBe("ok\n")
  })

  it("a KEXINIT beyond the 256 KiB packet limit → ProtocolError before it is buffered", async () => {
    await expectReason("ProtocolError", async (peer) => {
      await peer.exchangeVersions()
      const payload = defaultKexInit("server", { kexAlgorithms: junkNames(14000) })
      peer.sendBody(concat([Uint8Array.of(4), payload, new Uint8Array(4)]))
    }, connectOnly, { message: /packet length \d+ out of bounds/ })
  })

  it("a truncated KEXINIT → ProtocolError", async () => {
    await expectReason("ProtocolError", async (peer) => {
      await peer.exchangeVersions()
      const full = defaultKexInit("server")
      peer.send(full.subarray(0, 60))
    }, connectOnly, { message: /truncated/ })
  })

  it("a name-list whose length runs past the packet → ProtocolError", async () => {
    await expectReason("ProtocolError", async (peer) => {
      await peer.exchangeVersions()
      peer.send(concat([Uint8Array.of(N.KEXINIT), new Uint8Array(16), uint32(0xfffffff0), latin1("curve25519-sha256")]))
    }, connectOnly, { message: /truncated/ })
  })

  it("packet length 0xFFFFFFFF, 0, or not a multiple of 8 → ProtocolError without allocating", async () => {
    for (const length of [0xffffffff, 0, 13, 4 + 8 + 1]) {
      await expectReason("ProtocolError", async (peer) => {
        await peer.exchangeVersions()
        peer.sendRaw(concat([uint32(length), new Uint8Array(64)]))
      }, connectOnly, { message: /packet length/ })
    }
  })

  it("a padding length beyond the packet, or under 4 → ProtocolError", async () => {
    for (const padding of [200, 2]) {
      await expectReason("ProtocolError", async (peer) => {
        await peer.exchangeVersions()
        peer.sendBody(concat([Uint8Array.of(padding, N.IGNORE), new Uint8Array(10)]))
      }, connectOnly, { message: /padding length/ })
    }
  })

  it("no common cipher or host key algorithm → NegotiationFailed naming the category", async () => {
    const cipher = await expectReason("NegotiationFailed", (peer) =>
      peer.versionsAndKexInit(defaultKexInit("server", { ciphersServerToClient: ["rot13-cbc"] })), connectOnly)
    expect((cipher.error.reason as unknown as { kind: string }).kind).toBe("cipher server-to-client")
    const hostKeyAlg = await expectReason("NegotiationFailed", (peer) =>
      peer.versionsAndKexInit(defaultKexInit("server", { serverHostKeyAlgorithms: ["ssh-dss"] })), connectOnly)
    expect((hostKeyAlg.error.reason as unknown as { kind: string }).kind).toBe("host key")
  })

  it("a second KEXINIT during the exchange → ProtocolError", async () => {
    await expectReason("ProtocolError", async (peer) => {
      await peer.versionsAndKexInit()
      peer.send(defaultKexInit("server"))
    }, connectOnly, { message: /second KEXINIT/ })
  })
})

describe("client ← hostile server: kex reply", () => {
  it("a low-order curve25519 point → ProtocolError", async () => {
    await expectReason("ProtocolError", async (peer) => {
      await peer.versionsAndKexInit()
      await peer.serverKexReply((reply) => replaceInReply(reply, { serverPublic: new Uint8Array(32) }))
    }, connectOnly, { message: /X25519/ })
  })

  it("a point of the wrong length → ProtocolError", async () => {
    await expectReason("ProtocolError", async (peer) => {
      await peer.versionsAndKexInit()
      await peer.serverKexReply((reply) => replaceInReply(reply, { serverPublic: randomBytes(31) }))
    }, connectOnly, { message: /32 bytes/ })
  })

  it("a signature that does not verify → HostKeySignatureInvalid, DISCONNECT host key not verifiable", async () => {
    const { peer } = await expectReason("HostKeySignatureInvalid", async (peer) => {
      await peer.versionsAndKexInit()
      await peer.serverKexReply((reply) => {
        const signature = Uint8Array.from(Messages.decodeKexEcdhReply(reply).signature)
        signature[signature.length - 1]! ^= 0x01
        return replaceInReply(reply, { signature })
      })
    }, connectOnly)
    expect(peer!.disconnect?.code).toBe(N.DisconnectReason.HOST_KEY_NOT_VERIFIABLE)
  })

  it("a valid signature by another key than the one presented → HostKeySignatureInvalid", async () => {
    await expectReason("HostKeySignatureInvalid", async (peer) => {
      await peer.versionsAndKexInit()
      await peer.serverKexReply((reply) => replaceInReply(reply, { signature: otherKey.sign(randomBytes(32)) }))
    }, connectOnly)
  })

  it("the wrong host key (correctly signed) → HostKeyChanged", async () => {
    await expectReason("HostKeyChanged", async (peer) => {
      await peer.serverHandshake()
    }, connectOnly, { hostKey: otherKey })
  })

  it("an undecodable host key or signature blob → a typed error", async () => {
    for (const change of [{ hostKey: randomBytes(40) }, { signature: randomBytes(40) }]) {
      const result = await against(async (peer) => {
        await peer.versionsAndKexInit()
        await peer.serverKexReply((reply) => replaceInReply(reply, change))
      }, connectOnly)
      expect(["KeyParseFailed", "ProtocolError", "HostKeySignatureInvalid"]).toContain(errorOf(result.exit).reason._tag)
    }
  })

  it("a truncated reply → ProtocolError", async () => {
    await expectReason("ProtocolError", async (peer) => {
      await peer.versionsAndKexInit()
      await peer.serverKexReply((reply) => reply.subarray(0, reply.length - 20))
    }, connectOnly, { message: /truncated/ })
  })

  it("the reply under another message number → ProtocolError", async () => {
    for (const type of [N.KEXDH_INIT, N.KEX_DH_GEX_REPLY, 49]) {
      await expectReason("ProtocolError", async (peer) => {
        await peer.versionsAndKexInit()
        await peer.serverKexReply((reply) => concat([Uint8Array.of(type), reply.subarray(1)]))
      }, connectOnly)
    }
  })

  it("NEWKEYS before the reply → ProtocolError", async () => {
    await expectReason("ProtocolError", async (peer) => {
      await peer.versionsAndKexInit()
      peer.send(Messages.encodeNewKeys())
    }, connectOnly, { message: /NEWKEYS/ })
  })

  it("DISCONNECT during the key exchange → PeerDisconnected with code and description", async () => {
    const { error } = await expectReason("PeerDisconnected", async (peer) => {
      await peer.versionsAndKexInit()
      peer.send(Messages.encodeDisconnect({ code: N.DisconnectReason.KEY_EXCHANGE_FAILED, description: "no thanks" }))
    }, connectOnly)
    expect(error.reason).toMatchObject({ code: N.DisconnectReason.KEY_EXCHANGE_FAILED, description: "no thanks" })
  })
})

describe("client ← hostile server: strict key exchange", () => {
  const violation = async (before: "kexinit" | "reply" | "newkeys", payload: Uint8Array) =>
    expectReason("ProtocolError", async (peer) => {
      await peer.exchangeVersions()
      if (before === "kexinit") peer.send(payload)
      await peer.exchangeKexInit()
      if (before === "reply") peer.send(payload)
      const kex = await peer.serverKexReply()
      if (before === "newkeys") peer.send(payload)
      peer.sendNewKeys(kex)
    }, connectOnly)

  it("first packet not KEXINIT (IGNORE first) → ProtocolError", async () => {
    await violation("kexinit", Messages.encodeIgnore(new Uint8Array(8)))
  })

  it("IGNORE or DEBUG before NEWKEYS → ProtocolError", async () => {
    await violation("reply", Messages.encodeIgnore(new Uint8Array(8)))
    await violation("newkeys", Messages.encodeDebug({ alwaysDisplay: false, message: "hi", language: "" }))
  })

  it("any non-kex message before NEWKEYS → ProtocolError", async () => {
    await violation("reply", Messages.encodeServiceAccept("ssh-userauth"))
    await violation("newkeys", ChannelMessages.channelData(0, new Uint8Array(4)))
    await violation("newkeys", Uint8Array.of(N.UNIMPLEMENTED, 0, 0, 0, 1))
    await violation("reply", AuthMessages.encodeSuccess())
  })

  it("without strict kex, IGNORE before KEXINIT is allowed (control)", async () => {
    const result = await against(async (peer) => {
      await peer.exchangeVersions()
      peer.send(Messages.encodeIgnore(new Uint8Array(8)))
      await peer.exchangeKexInit(defaultKexInit("server", { kexAlgorithms: ["curve25519-sha256"] }))
      await peer.finishServerKex()
      await peer.acceptAuth()
      await peer.runCommand(await peer.acceptSession(), "loose\n")
    })
    expect(Exit.isSuccess(result.exit) ? result.exit.value : result.exit).toBe("loose\n")
  })
})

describe("client ← hostile server: after NEWKEYS", () => {
  /** Handshake done; `tamper` sends the first encrypted packet. */
  const afterNewKeys = (tamper: (peer: SshPeer) => void) => async (peer: SshPeer) => {
    await peer.serverHandshake()
    await peer.expect(N.SERVICE_REQUEST)
    tamper(peer)
  }

  /** SERVICE_ACCEPT sealed correctly, then changed by `f`. */
  const sealedAccept = (peer: SshPeer, f: (packet: Uint8Array) => Uint8Array) => {
    const packet = Uint8Array.from(peer.writer.seal(Messages.encodeServiceAccept("ssh-userauth")))
    peer.sendRaw(f(packet), true)
  }

  it("a bad tag → MacMismatch, DISCONNECT MAC error", async () => {
    const { peer } = await expectReason("MacMismatch", afterNewKeys((peer) =>
      sealedAccept(peer, (p) => {
        p[p.length - 1]! ^= 0x80
        return p
      })), connectOnly)
    expect(peer!.disconnect?.code).toBe(N.DisconnectReason.MAC_ERROR)
  })

  it("flipped bits in the ciphertext or the clear length → MacMismatch or ProtocolError", async () => {
    await expectReason("MacMismatch", afterNewKeys((peer) =>
      sealedAccept(peer, (p) => {
        p[6]! ^= 0x04
        return p
      })), connectOnly)
    // the length travels in clear under AES-GCM: a flipped length bit is caught by bounds, alignment or the tag
    const result = await against(afterNewKeys((peer) =>
      sealedAccept(peer, (p) => {
        p[3]! ^= 0x10
        return p
      })), connectOnly)
    expect(["MacMismatch", "ProtocolError", "ConnectionClosed"]).toContain(errorOf(result.exit).reason._tag)
  })

  it("bad padding under a valid tag → ProtocolError", async () => {
    for (const padding of [200, 3]) {
      await expectReason("ProtocolError", afterNewKeys((peer) => {
        const payload = Messages.encodeServiceAccept("ssh-userauth")
        const body = new Uint8Array(48)
        body[0] = padding
        body.set(payload, 1)
        peer.sendBody(body)
      }), connectOnly, { message: /padding length/ })
    }
  })

  it("an empty payload under a valid tag → ProtocolError", async () => {
    await expectReason("ProtocolError", afterNewKeys((peer) => {
      const body = new Uint8Array(16)
      body[0] = 15
      peer.sendBody(body)
    }), connectOnly, { message: /empty packet/ })
  })

  it("length 0xFFFFFFFF, 0, or not block-aligned → ProtocolError", async () => {
    for (const length of [0xffffffff, 0, 20, 256 * 1024 + 16]) {
      await expectReason("ProtocolError", afterNewKeys((peer) => {
        peer.sendRaw(concat([uint32(length), randomBytes(64)]), true)
      }), connectOnly, { message: /packet length/ })
    }
  })

  it("a packet cut short, then the socket closes → ConnectionClosed", async () => {
    await expectReason("ConnectionClosed", afterNewKeys((peer) => {
      sealedAccept(peer, (p) => p.subarray(0, p.length - 5))
      peer.pipe.socket.end()
    }), connectOnly)
  })
})

describe("client ← hostile server: authentication and channels", () => {
  it("DISCONNECT during authentication → PeerDisconnected carrying code and description", async () => {
    const { error } = await expectReason("PeerDisconnected", async (peer) => {
      await peer.serverHandshake()
      await peer.expect(N.SERVICE_REQUEST)
      peer.send(Messages.encodeDisconnect({ code: N.DisconnectReason.NO_MORE_AUTH_METHODS_AVAILABLE, description: "go away" }))
    }, connectOnly)
    expect(error.reason).toMatchObject({ code: N.DisconnectReason.NO_MORE_AUTH_METHODS_AVAILABLE, description: "go away" })
  })

  it("a malformed or unexpected auth reply → ProtocolError", async () => {
    await expectReason("ProtocolError", async (peer) => {
      await peer.serverHandshake()
      await peer.expect(N.SERVICE_REQUEST)
      peer.send(Messages.encodeServiceAccept("ssh-userauth"))
      await peer.expect(N.USERAUTH_REQUEST)
      peer.send(concat([Uint8Array.of(N.USERAUTH_FAILURE), uint32(0x7fffffff)]))
    }, connectOnly)
    await expectReason("ProtocolError", async (peer) => {
      await peer.serverHandshake()
      await peer.expect(N.SERVICE_REQUEST)
      peer.send(Messages.encodeServiceAccept("ssh-connection"))
    }, connectOnly)
    await expectReason("ProtocolError", async (peer) => {
      await peer.serverHandshake()
      await peer.expect(N.SERVICE_REQUEST)
      peer.send(ChannelMessages.channelData(0, new Uint8Array(3)))
    }, connectOnly)
  })

  it("an open confirmation for an unknown channel → ProtocolError, DISCONNECT protocol error", async () => {
    const { peer } = await expectReason("ProtocolError", async (peer) => {
      await upToAuth(peer)
      await peer.expect(N.CHANNEL_OPEN)
      peer.send(ChannelMessages.channelOpenConfirmation(99, 1, 1024, 1024))
    }, connectAndRun, { message: /unknown channel|unexpected open confirmation/ })
    expect(peer!.disconnect?.code).toBe(N.DisconnectReason.PROTOCOL_ERROR)
  })

  it("data, EOF, requests or replies for an unknown channel → ProtocolError", async () => {
    const messages = [
      ChannelMessages.channelData(5, new Uint8Array(10)),
      ChannelMessages.channelEof(0xffffffff),
      ChannelMessages.channelRequest(42, "exit-status", false, uint32(0)),
      ChannelMessages.channelSuccess(3),
      ChannelMessages.windowAdjust(8, 100)
    ]
    for (const message of messages) {
      await expectReason("ProtocolError", async (peer) => {
        await upToAuth(peer)
        await peer.acceptSession()
        peer.send(message)
      }, connectAndRun, { message: /unknown channel/ })
    }
  })

  it("data beyond the window we granted → ProtocolError", async () => {
    // in one packet
    await expectReason("ProtocolError", async (peer) => {
      await upToAuth(peer)
      const id = await peer.acceptSession()
      await peer.expect(N.CHANNEL_REQUEST)
      peer.send(ChannelMessages.channelSuccess(id))
      peer.send(ChannelMessages.channelData(id, new Uint8Array(5000)))
    }, (port) => connectAndRun(port, { windowSize: 4096 }), { message: /window/ })
    // over several packets, while nobody reads the channel (so no window is granted back)
    await expectReason("ProtocolError", async (peer) => {
      await upToAuth(peer)
      const id = await peer.acceptSession()
      await peer.expect(N.CHANNEL_REQUEST)
      peer.send(ChannelMessages.channelSuccess(id))
      for (let i = 0; i < 4; i++) peer.send(ChannelMessages.channelData(id, new Uint8Array(1500)))
    }, (port) =>
      Effect.gen(function*() {
        const ssh = yield* SshClient.connect(clientOptions(port, { windowSize: 4096 }))
        yield* ssh.exec("sleep")
        return yield* Deferred.await(ssh.closed)
      }), { message: /window/ })
  })

  it("a data packet larger than our max packet → ProtocolError", async () => {
    await expectReason("ProtocolError", async (peer) => {
      await upToAuth(peer)
      const id = await peer.acceptSession()
      peer.send(ChannelMessages.channelData(id, new Uint8Array(2048)))
    }, (port) => connectAndRun(port, { maxPacket: 1024 }), { message: /max packet/ })
  })

  it("malformed channel messages → ProtocolError", async () => {
    const malformed = (id: number) => [
      concat([Uint8Array.of(N.CHANNEL_DATA), uint32(id), uint32(1000), new Uint8Array(10)]),
      concat([Uint8Array.of(N.CHANNEL_WINDOW_ADJUST), uint32(id), uint32(1), Uint8Array.of(0)]),
      concat([Uint8Array.of(N.CHANNEL_REQUEST), uint32(id), uint32(0xffffff00)]),
      Uint8Array.of(N.CHANNEL_EOF, 0, 0),
      Uint8Array.of(127, 1, 2, 3)
    ]
    for (let i = 0; i < malformed(0).length; i++) {
      await expectReason("ProtocolError", async (peer) => {
        await upToAuth(peer)
        const id = await peer.acceptSession()
        peer.send(malformed(id)[i]!)
      }, connectAndRun)
    }
  })

  it("a malformed open confirmation → ProtocolError", async () => {
    await expectReason("ProtocolError", async (peer) => {
      await upToAuth(peer)
      const open = ChannelMessages.decode(await peer.expect(N.CHANNEL_OPEN))
      if (open._tag !== "ChannelOpen") throw new Error("not an open")
      peer.send(concat([Uint8Array.of(N.CHANNEL_OPEN_CONFIRMATION), uint32(open.sender), uint32(1)]))
    }, connectAndRun, { message: /truncated/ })
  })

  it("DISCONNECT on an open channel → PeerDisconnected carrying code and description", async () => {
    const { error } = await expectReason("PeerDisconnected", async (peer) => {
      await upToAuth(peer)
      const id = await peer.acceptSession()
      await peer.expect(N.CHANNEL_REQUEST)
      peer.send(ChannelMessages.channelSuccess(id))
      peer.send(ChannelMessages.channelData(id, new Uint8Array(100)))
      peer.send(Messages.encodeDisconnect({ code: N.DisconnectReason.BY_APPLICATION, description: "shutting down" }))
    })
    expect(error.reason).toMatchObject({ code: N.DisconnectReason.BY_APPLICATION, description: "shutting down" })
  })

  it("the happy path works against the fake server (control)", async () => {
    const result = await against(async (peer) => {
      await upToAuth(peer)
      await peer.runCommand(await peer.acceptSession(), "hi\n")
    })
    expect(Exit.isSuccess(result.exit) ? result.exit.value : result.exit).toBe("hi\n")
  })
})

// ---------------------------------------------------------------------------
// Property: random mutations of a valid server stream
// ---------------------------------------------------------------------------

/** The whole valid conversation: handshake, auth, one command. */
const happyScript = async (peer: SshPeer) => {
  await upToAuth(peer)
  await peer.runCommand(await peer.acceptSession(), "hi\n")
}

const reasonTags = [
  "ProtocolError",
  "LimitExceeded",
  "MacMismatch",
  "NegotiationFailed",
  "ConnectionClosed",
  "PeerDisconnected",
  "HostKeyRejected",
  "HostKeyChanged",
  "HostKeySignatureInvalid",
  "KeyParseFailed",
  "Timeout",
  "AuthFailed",
  "ChannelOpenFailed",
  "ChannelRequestFailed"
]

describe("client ← mutated server stream (property)", () => {
  it("random bit flips, truncations, insertions and length overwrites → a typed error or success, in bounded time and memory", async () => {
    // record the valid stream: its length and packet count
    let recorded = { bytes: 0, packets: 0 }
    const control = await against(async (peer) => {
      await happyScript(peer)
      recorded = { bytes: peer.pipe.offset, packets: peer.pipe.packets }
    })
    expect(Exit.isSuccess(control.exit) ? control.exit.value : control.exit).toBe("hi\n")
    expect(recorded.packets).toBeGreaterThan(8)

    const mutation = mutationArbitrary(recorded)

    const outcomes = new Map<string, number>()
    collectGarbage()
    const memoryBefore = process.memoryUsage()
    // peak RSS is measured per window of 150 runs (what a burst of cases costs); a leak shows in the retained heap
    let windowRss = memoryBefore.rss
    let peakRssGrowth = 0
    let runs = 0
    await fc.assert(
      fc.asyncProperty(fc.array(mutation, { minLength: 1, maxLength: 3 }), async (mutations) => {
        const result = await against(happyScript, connectAndRun, { filter: mutator(mutations), idleMs: 500 })
        let tag: string
        if (Exit.isSuccess(result.exit)) {
          expect(result.exit.value).toBe("hi\n")
          tag = "success"
        } else {
          tag = errorOf(result.exit).reason._tag
          expect(reasonTags, describeMutations(mutations)).toContain(tag)
        }
        outcomes.set(tag, (outcomes.get(tag) ?? 0) + 1)
        // garbage is collected now and then so that the growth measured is what a case allocated, not litter
        if (++runs % 10 === 0) collectGarbage()
        peakRssGrowth = Math.max(peakRssGrowth, process.memoryUsage().rss - windowRss)
        if (runs % 150 === 0) windowRss = process.memoryUsage().rss
      }),
      { numRuns: scaled(150) }
    )
    collectGarbage()
    const retainedHeapGrowth = process.memoryUsage().heapUsed - memoryBefore.heapUsed
    expect(peakRssGrowth).toBeLessThan(64 * 1024 * 1024)
    expect(retainedHeapGrowth).toBeLessThan(16 * 1024 * 1024)
    // the mutations reach more than one phase
    expect(outcomes.size).toBeGreaterThanOrEqual(3)
    expect(runs, "every run was a real connection").toBe(scaled(150))
    console.log(`fuzz client/tcp-property: ${runs} mutated server streams (one connection each), peak RSS growth per 150 ${(peakRssGrowth / 2 ** 20).toFixed(1)} MiB, retained heap ${(retainedHeapGrowth / 2 ** 20).toFixed(1)} MiB, outcomes ${JSON.stringify([...outcomes])}`)
  }, scaledTimeout(120_000))
})
