/**
 * Every decoder a peer's bytes reach, fed mutated valid messages: transport
 * (KEXINIT, kex, DISCONNECT, EXT_INFO, ...), authentication (requests,
 * server replies, key, signature and certificate blobs, agent messages),
 * connection (channel messages and request payloads) and SFTP (every request
 * and reply, attributes, extension replies, the framer). Each decoder must
 * return or throw a reason (`ProtocolError`, `KeyParseFailed`, ...): never a
 * TypeError or RangeError, never a hang or a giant allocation.
 */
import { describe, expect, it } from "vitest"
import { randomBytes } from "node:crypto"
import * as Messages from "../../src/Transport/Messages.ts"
import * as AuthMessages from "../../src/Auth/Messages.ts"
import * as PublicKey from "../../src/Auth/PublicKey.ts"
import * as PrivateKey from "../../src/Auth/PrivateKey.ts"
import * as Signature from "../../src/Auth/Signature.ts"
import * as Certificate from "../../src/Auth/Certificate.ts"
import * as Agent from "../../src/Auth/Agent.ts"
import * as ChannelMessages from "../../src/Channel/Messages.ts"
import * as Requests from "../../src/Channel/Requests.ts"
import * as SftpMessages from "../../src/Sftp/Messages.ts"
import * as Attributes from "../../src/Sftp/Attributes.ts"
import * as Extensions from "../../src/Sftp/Extensions.ts"
import { Framer } from "../../src/Sftp/Framer.ts"
import { decodeServiceName } from "../../src/Transport/Transport.ts"
import * as N from "../../src/Wire/MessageNumber.ts"
import { build } from "../../src/Wire/Writer.ts"
import { defaultKexInit } from "./peer.ts"
import { FUZZ_SEED, hex, mutate, Rng, scaled, scaledTimeout, Tally, typedProblem } from "./mutate.ts"

/** Mutated messages per decoder group, at scale 1. */
const PER_GROUP = 100_000

type Decoder = readonly [name: string, decode: (bytes: Uint8Array) => unknown]

/**
 * Feeds `count` mutations of the corpus to the decoders that would see them:
 * those that decode the unmutated message, those of the message number the
 * mutated bytes now carry, and one more at random. A decoder that throws
 * anything but a reason fails the test with the case's bytes.
 */
const fuzzDecoders = (name: string, corpus: ReadonlyArray<Uint8Array>, decoders: ReadonlyArray<Decoder>, count: number, seedOffset: number) => {
  const tally = new Tally(name)
  const rng = new Rng(FUZZ_SEED + seedOffset)
  const decodes = (decode: Decoder[1], bytes: Uint8Array) => {
    try {
      decode(Uint8Array.from(bytes))
      return true
    } catch {
      return false
    }
  }
  // each valid entry decodes in at least one decoder (else the mutations would start from garbage)
  const home = corpus.map((valid) => {
    const own = decoders.filter(([, decode]) => decodes(decode, valid))
    expect(own.length, `valid corpus entry decodes: ${hex(valid)}`).toBeGreaterThan(0)
    return own
  })
  const byNumber = new Map<number, Set<Decoder>>()
  corpus.forEach((valid, i) => {
    const set = byNumber.get(valid[0]!) ?? new Set()
    for (const d of home[i]!) set.add(d)
    byNumber.set(valid[0]!, set)
  })
  for (let i = 0; i < count; i++) {
    const index = i % corpus.length
    const bytes = mutate(rng, corpus[index]!, corpus, tally)
    tally.cases++
    tally.mutated++
    tally.delivered++
    const chosen = new Set([...home[index]!, ...(byNumber.get(bytes[0] ?? -1) ?? []), rng.pick(decoders)])
    for (const [decoderName, decode] of chosen) {
      const started = performance.now()
      let problem: string | undefined
      try {
        decode(bytes)
        tally.outcome("decoded")
      } catch (e) {
        problem = typedProblem(e)
        tally.outcome("typed error")
      }
      // a generous bound: the machine may be loaded, but a decoder that is quadratic in its input shows
      const elapsed = performance.now() - started
      if (problem !== undefined || elapsed > 2000) {
        expect.fail(`${decoderName} on case ${i} (seed ${FUZZ_SEED + seedOffset}): ${problem ?? `took ${elapsed.toFixed(0)} ms`}\ninput ${hex(bytes)}`)
      }
    }
  }
  tally.report()
  return tally
}

const rsaKey = PrivateKey.generate("ssh-rsa")
const edKey = PrivateKey.generate("ssh-ed25519")
const ecKey = PrivateKey.generate("ecdsa-sha2-nistp256")

describe("decoders ← mutated messages", () => {
  it("transport messages", () => {
    const corpus = [
      defaultKexInit("client"),
      defaultKexInit("server", { firstKexPacketFollows: true, languagesClientToServer: ["en"] }),
      Messages.encodeDisconnect({ code: 2, description: "bye", language: "en" }),
      Messages.encodeIgnore(randomBytes(12)),
      Messages.encodeUnimplemented(7),
      Messages.encodeDebug({ alwaysDisplay: true, message: "debug me", language: "" }),
      Messages.encodeServiceRequest("ssh-userauth"),
      Messages.encodeServiceAccept("ssh-connection"),
      Messages.encodeExtInfo([["server-sig-algs", new TextEncoder().encode("ssh-ed25519,rsa-sha2-512")], ["ping@openssh.com", Uint8Array.of(48)]]),
      Messages.encodeKexEcdhInit({ clientPublic: randomBytes(32) }),
      Messages.encodeKexEcdhReply({ hostKey: edKey.publicKey.blob, serverPublic: randomBytes(32), signature: edKey.sign(randomBytes(32)) }),
      Messages.encodeKexDhInit({ e: randomBytes(256) }),
      Messages.encodeKexDhReply({ hostKey: rsaKey.publicKey.blob, f: randomBytes(256), signature: rsaKey.sign(randomBytes(32), "rsa-sha2-256") }),
      Messages.encodeKexDhGexRequest({ min: 2048, preferred: 3072, max: 8192 }),
      Messages.encodeKexDhGexGroup({ p: Uint8Array.from([0xff, ...randomBytes(255)]), g: Uint8Array.of(2) }),
      Messages.encodeKexDhGexInit({ e: Uint8Array.of(5) }),
      Messages.encodeKexDhGexReply({ hostKey: ecKey.publicKey.blob, f: Uint8Array.of(77), signature: ecKey.sign(randomBytes(32)) }),
      Messages.encodeNewKeys()
    ]
    const tally = fuzzDecoders("decoders/transport", corpus, [
      ["decodeKexInit", Messages.decodeKexInit],
      ["decodeNewKeys", Messages.decodeNewKeys],
      ["decodeDisconnect", Messages.decodeDisconnect],
      ["decodeIgnore", Messages.decodeIgnore],
      ["decodeUnimplemented", Messages.decodeUnimplemented],
      ["decodeDebug", Messages.decodeDebug],
      ["decodeServiceRequest", Messages.decodeServiceRequest],
      ["decodeServiceAccept", Messages.decodeServiceAccept],
      ["decodeServiceName", decodeServiceName],
      ["decodeExtInfo", (b) => Messages.serverSigAlgs(Messages.decodeExtInfo(b))],
      ["decodeKexEcdhInit", Messages.decodeKexEcdhInit],
      ["decodeKexEcdhReply", Messages.decodeKexEcdhReply],
      ["decodeKexDhInit", Messages.decodeKexDhInit],
      ["decodeKexDhReply", Messages.decodeKexDhReply],
      ["decodeKexDhGexRequest", Messages.decodeKexDhGexRequest],
      ["decodeKexDhGexGroup", Messages.decodeKexDhGexGroup],
      ["decodeKexDhGexInit", Messages.decodeKexDhGexInit],
      ["decodeKexDhGexReply", Messages.decodeKexDhGexReply]
    ], scaled(PER_GROUP), 1)
    expect(tally.mutated).toBeGreaterThanOrEqual(scaled(PER_GROUP))
    expect(tally.outcomes.get("typed error")).toBeGreaterThan(0)
    expect(tally.outcomes.get("decoded")).toBeGreaterThan(0)
  }, scaledTimeout(60_000))

  it("authentication messages, key, signature and certificate blobs, agent messages", () => {
    const userCert = Certificate.sign({
      key: edKey.publicKey,
      role: "user",
      keyId: "fuzz",
      principals: ["alice"],
      criticalOptions: [Certificate.stringValue("source-address", "127.0.0.1/32")]
    }, ecKey)
    const signature = edKey.sign(randomBytes(20))
    const corpus = [
      AuthMessages.encodeRequest({ user: "alice", service: "ssh-connection", request: { method: "none" } }),
      AuthMessages.encodeRequest({ user: "alice", service: "ssh-connection", request: { method: "password", password: "pw" } }),
      AuthMessages.encodeRequest({ user: "alice", service: "ssh-connection", request: { method: "password", password: "pw", newPassword: "new" } }),
      AuthMessages.encodeRequest({ user: "alice", service: "ssh-connection", request: { method: "publickey", algorithm: "ssh-ed25519", publicKey: edKey.publicKey.blob } }),
      AuthMessages.encodeRequest({ user: "alice", service: "ssh-connection", request: { method: "publickey", algorithm: "ssh-ed25519", publicKey: edKey.publicKey.blob, signature } }),
      AuthMessages.encodeRequest({ user: "alice", service: "ssh-connection", request: { method: "keyboard-interactive", submethods: "pam" } }),
      AuthMessages.encodeFailure(["publickey", "password"], true),
      AuthMessages.encodeSuccess(),
      AuthMessages.encodeBanner("Welcome\r\n"),
      AuthMessages.encodePkOk("ssh-ed25519", edKey.publicKey.blob),
      AuthMessages.encodeInfoRequest({ name: "n", instruction: "i", prompts: [{ prompt: "Password: ", echo: false }, { prompt: "OTP: ", echo: true }] }),
      AuthMessages.encodeInfoResponse(["a", "b"]),
      rsaKey.publicKey.blob,
      edKey.publicKey.blob,
      ecKey.publicKey.blob,
      signature,
      rsaKey.sign(randomBytes(20), "rsa-sha2-512"),
      ecKey.sign(randomBytes(20)),
      userCert.blob,
      Agent.encodeRequest({ _tag: "Sign", key: edKey.publicKey.blob, data: randomBytes(40), flags: 0 }),
      Agent.encodeRequest({ _tag: "RequestIdentities" }),
      Agent.encodeResponse({ _tag: "Identities", identities: [{ blob: edKey.publicKey.blob, comment: "me" }, { blob: userCert.blob, comment: "cert" }] }),
      Agent.encodeResponse({ _tag: "SignResponse", signature })
    ]
    const methods = ["none", "password", "publickey", "keyboard-interactive"]
    const tally = fuzzDecoders("decoders/auth", corpus, [
      ["decodeRequest", AuthMessages.decodeRequest],
      ...methods.map((m): Decoder => [`decodeServerMessage(${m})`, (b) => AuthMessages.decodeServerMessage(b, m)]),
      ["decodeInfoResponse", AuthMessages.decodeInfoResponse],
      ["PublicKey.fromBlob", PublicKey.fromBlob],
      ["Signature.decodeSignature", Signature.decodeSignature],
      ["Signature.verify", (b) => Signature.verify(edKey.publicKey, b, Uint8Array.of(1), ["ssh-ed25519"])],
      ["Certificate.fromBlob", Certificate.fromBlob],
      ["Certificate.signer", (b) => Certificate.signer(b, "ssh-ed25519-cert-v01@openssh.com")],
      ["Certificate.verifyKeySignature", (b) => Certificate.verifyKeySignature(b, "ssh-ed25519", signature, Uint8Array.of(1))],
      ["Agent.decodeRequest", Agent.decodeRequest],
      ["Agent.decodeResponse", Agent.decodeResponse]
    ], scaled(PER_GROUP), 2)
    expect(tally.mutated).toBeGreaterThanOrEqual(scaled(PER_GROUP))
  }, scaledTimeout(90_000))

  it("connection messages and channel request payloads", () => {
    const corpus = [
      ChannelMessages.globalRequest("tcpip-forward", true, build((w) => w.string("0.0.0.0").uint32(8080))),
      ChannelMessages.requestSuccess(build((w) => w.uint32(8080))),
      ChannelMessages.requestFailure(),
      ChannelMessages.channelOpen("session", 3, 2 * 1024 * 1024, 32768),
      ChannelMessages.channelOpen("direct-tcpip", 4, 1024, 1024, build((w) => w.string("localhost").uint32(80).string("1.2.3.4").uint32(5555))),
      ChannelMessages.channelOpenConfirmation(3, 9, 65536, 32768),
      ChannelMessages.channelOpenFailure(3, 1, "prohibited"),
      ChannelMessages.windowAdjust(9, 1 << 20),
      ChannelMessages.channelData(9, randomBytes(40)),
      ChannelMessages.channelData(9, randomBytes(10), 1),
      ChannelMessages.channelEof(9),
      ChannelMessages.channelClose(9),
      ChannelMessages.channelRequest(9, "exec", true, Requests.encodeString("ls -l")),
      ChannelMessages.channelRequest(9, "pty-req", true, Requests.encodePtyRequest({ term: "xterm", columns: 80, rows: 24, width: 640, height: 480, modes: { 53: 1, 128: 38400 } })),
      ChannelMessages.channelRequest(9, "env", false, Requests.encodeEnv("LANG", "C.UTF-8")),
      ChannelMessages.channelRequest(9, "window-change", false, Requests.encodeWindowChange({ columns: 100, rows: 40 })),
      ChannelMessages.channelRequest(9, "exit-status", false, Requests.encodeExitStatus(3)),
      ChannelMessages.channelRequest(9, "exit-signal", false, Requests.encodeExitSignal({ signal: "TERM", coreDumped: true, message: "killed" })),
      ChannelMessages.channelSuccess(9),
      ChannelMessages.channelFailure(9)
    ]
    /** The request payload inside a CHANNEL_REQUEST, or the bytes themselves. */
    const requestData = (b: Uint8Array): Uint8Array => {
      try {
        const m = ChannelMessages.decode(b)
        return m._tag === "ChannelRequest" ? m.data : b
      } catch {
        return b
      }
    }
    const tally = fuzzDecoders("decoders/connection", corpus, [
      ["Channel.decode", ChannelMessages.decode],
      ["recipientOf", ChannelMessages.recipientOf],
      ["decodePtyRequest", (b) => Requests.decodePtyRequest(requestData(b))],
      ["decodeWindowChange", (b) => Requests.decodeWindowChange(requestData(b))],
      ["decodeString", (b) => Requests.decodeString(requestData(b), "command")],
      ["decodeEnv", (b) => Requests.decodeEnv(requestData(b))],
      ["decodeExitStatus", (b) => Requests.decodeExitStatus(requestData(b))],
      ["decodeExitSignal", (b) => Requests.decodeExitSignal(requestData(b))],
      ["decodeModes", Requests.decodeModes]
    ], scaled(PER_GROUP), 3)
    expect(tally.mutated).toBeGreaterThanOrEqual(scaled(PER_GROUP))
  }, scaledTimeout(60_000))

  it("SFTP packets, attributes, extension replies and the framer", () => {
    const h = Uint8Array.of(0, 0, 0, 1)
    const attrs: Attributes.Attributes = { size: 1234, uid: 1000, gid: 1000, permissions: 0o100644, atime: 1, mtime: 2, extended: [{ type: "x@y", data: Uint8Array.of(122) }] }
    const packets: ReadonlyArray<SftpMessages.SftpPacket> = [
      { _tag: "Init", version: 3, extensions: [] },
      { _tag: "Version", version: 3, extensions: Extensions.OPENSSH_EXTENSIONS },
      { _tag: "Open", id: 1, path: "/a/b", pflags: 0x1a, attrs },
      { _tag: "Close", id: 2, handle: h },
      { _tag: "Read", id: 3, handle: h, offset: 2 ** 40, length: 32768 },
      { _tag: "Write", id: 4, handle: h, offset: 0, data: randomBytes(30) },
      { _tag: "Lstat", id: 5, path: "x" },
      { _tag: "Fstat", id: 6, handle: h },
      { _tag: "Setstat", id: 7, path: "x", attrs: { permissions: 0o644 } },
      { _tag: "Fsetstat", id: 8, handle: h, attrs: { atime: 5, mtime: 6 } },
      { _tag: "Opendir", id: 9, path: "/" },
      { _tag: "Readdir", id: 10, handle: h },
      { _tag: "Remove", id: 11, path: "f" },
      { _tag: "Mkdir", id: 12, path: "d", attrs: {} },
      { _tag: "Rmdir", id: 13, path: "d" },
      { _tag: "Realpath", id: 14, path: "." },
      { _tag: "Stat", id: 15, path: "f" },
      { _tag: "Rename", id: 16, oldPath: "a", newPath: "b" },
      { _tag: "Readlink", id: 17, path: "l" },
      { _tag: "Symlink", id: 18, linkPath: "l", targetPath: "t" },
      { _tag: "Extended", id: 19, request: "vendor@example.com", data: randomBytes(5) },
      { _tag: "PosixRename", id: 20, oldPath: "a", newPath: "b" },
      { _tag: "StatVfs", id: 21, path: "/" },
      { _tag: "FstatVfs", id: 22, handle: h },
      { _tag: "Hardlink", id: 23, oldPath: "a", newPath: "b" },
      { _tag: "Fsync", id: 24, handle: h },
      { _tag: "Lsetstat", id: 25, path: "l", attrs: { uid: 1, gid: 2 } },
      { _tag: "Limits", id: 26 },
      { _tag: "ExpandPath", id: 27, path: "~/x" },
      { _tag: "CopyData", id: 28, readHandle: h, readOffset: 0, readLength: 0, writeHandle: h, writeOffset: 9 },
      { _tag: "HomeDirectory", id: 29, username: "alice" },
      { _tag: "UsersGroupsById", id: 30, uids: [0, 1000], gids: [0] },
      { _tag: "Status", id: 31, code: 2, message: "No such file", language: "en" },
      { _tag: "Handle", id: 32, handle: h },
      { _tag: "Data", id: 33, data: randomBytes(64) },
      { _tag: "Name", id: 34, entries: [{ filename: "a", longname: "-rw-r--r-- 1 a a 0 Jan 1 00:00 a", attrs }, { filename: "b", longname: "b", attrs: {} }] },
      { _tag: "Attrs", id: 35, attrs },
      { _tag: "ExtendedReply", id: 36, data: Extensions.encodeLimits({ maxPacketLength: 1, maxReadLength: 2, maxWriteLength: 3, maxOpenHandles: 4 }) }
    ]
    const framed = packets.map(SftpMessages.encode)
    const bodies = framed.map((b) => b.subarray(4))
    const extra = [
      Attributes.encode(attrs),
      Extensions.encodeVfsStats({ bsize: 4096n, frsize: 4096n, blocks: 10n, bfree: 5n, bavail: 5n, files: 100n, ffree: 50n, favail: 50n, fsid: 1n, flag: 1n, namemax: 255n }),
      Extensions.encodeUserGroupNames({ usernames: ["root", ""], groupnames: ["wheel"] })
    ]
    const tally = fuzzDecoders("decoders/sftp", [...bodies, ...extra], [
      ["Sftp.decode", SftpMessages.decode],
      ["Attributes.decode", Attributes.decode],
      ["decodeVfsStats", Extensions.decodeVfsStats],
      ["decodeLimits", Extensions.decodeLimits],
      ["decodeUserGroupNames", Extensions.decodeUserGroupNames]
    ], scaled(PER_GROUP), 4)
    expect(tally.mutated).toBeGreaterThanOrEqual(scaled(PER_GROUP))

    // the framer over mutated streams of framed packets (length prefixes included), in random chunks
    const framerTally = new Tally("decoders/sftp-framer")
    const rng = new Rng(FUZZ_SEED + 5)
    for (let c = 0; c < scaled(10_000); c++) {
      const framer = new Framer({ maxPacketLength: 34000 })
      const stream = framed.filter(() => rng.chance(0.3)).map((p) => {
        if (!rng.chance(0.3)) return p
        framerTally.mutated++
        return mutate(rng, p, framed, framerTally)
      })
      framerTally.cases++
      try {
        for (const packet of stream) {
          for (let at = 0; at < packet.length;) {
            const n = 1 + rng.int(packet.length)
            for (const body of framer.push(packet.subarray(at, at + n))) {
              framerTally.delivered++
              try {
                SftpMessages.decode(body)
              } catch (e) {
                const problem = typedProblem(e)
                if (problem) expect.fail(`decode after the framer, case ${c}: ${problem}\n${hex(body)}`)
              }
            }
            at += n
          }
        }
        framerTally.outcome("framed")
      } catch (e) {
        const problem = typedProblem(e)
        if (problem) expect.fail(`framer, case ${c}: ${problem}`)
        framerTally.outcome("typed error")
      }
    }
    framerTally.report()
    expect(framerTally.delivered).toBeGreaterThan(scaled(10_000))
    expect(framerTally.mutated).toBeGreaterThan(scaled(10_000))
  }, scaledTimeout(60_000))
})
