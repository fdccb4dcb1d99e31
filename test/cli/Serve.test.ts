/**
 * `effect-ssh serve`: flag and password-file parsing (pure), the auth
 * handlers and log lines it builds, its start-up from files (in-process,
 * driven by our client), and the CLI as a child process (usage errors,
 * start-up failures, SIGTERM/SIGINT shutdown). OpenSSH's client against it
 * is in test/interop/ssh-client.test.ts.
 */
import * as fc from "fast-check"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { runFailure, runScoped } from "../helpers.ts"
import * as SshClient from "../../src/Client.ts"
import * as Auth from "../../src/Auth/ClientAuth.ts"
import * as AuthorizedKeys from "../../src/Auth/AuthorizedKeys.ts"
import * as HostKeys from "../../src/Auth/HostKeys.ts"
import * as PrivateKey from "../../src/Auth/PrivateKey.ts"
import * as PublicKey from "../../src/Auth/PublicKey.ts"
import * as ServerAuth from "../../src/Auth/ServerAuth.ts"
import * as SshServer from "../../src/Server.ts"
import * as Admission from "../../src/Server/Admission.ts"
import * as SshError from "../../src/SshError.ts"
import { UsageError } from "../../src/cli/Args.ts"
import * as Serve from "../../src/cli/Serve.ts"
import { defaultPenalties } from "../../src/Server/Penalties.ts"
import {
  DEFAULT_LISTEN,
  DEFAULT_PORT,
  type ServeArgs,
  parseListenAddress,
  parseListenPort,
  parsePasswordFile,
  parseServe,
  serveUsage
} from "../../src/cli/ServeArgs.ts"

const mainScript = new URL("../../src/cli/main.ts", import.meta.url).pathname
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

const ok = (argv: ReadonlyArray<string>): ServeArgs => {
  const result = parseServe(argv)
  if (result instanceof UsageError || result._tag === "Help") throw new Error(`expected ServeArgs, got ${JSON.stringify(result)}`)
  return result
}

const usage = (argv: ReadonlyArray<string>): string => {
  const result = parseServe(argv)
  expect(result).toBeInstanceOf(UsageError)
  return (result as UsageError).message
}

describe("parseServe", () => {
  it("defaults: 127.0.0.1:2222, no host key files", () => {
    expect(ok(["--password-file", "users"])).toEqual({
      _tag: "Serve",
      listen: DEFAULT_LISTEN,
      port: DEFAULT_PORT,
      hostKeys: [],
      passwordFile: "users"
    })
    expect([DEFAULT_LISTEN, DEFAULT_PORT]).toEqual(["127.0.0.1", 2222])
  })

  it("every flag, in both spellings; --host-key repeats in order", () => {
    expect(ok([
      "--listen", "0.0.0.0",
      "--port=22",
      "--host-key", "k1",
      "--host-key=k2",
      "--authorized-keys", "ak",
      "--password-file=pw",
      "--sftp-root", "/srv"
    ])).toEqual({
      _tag: "Serve",
      listen: "0.0.0.0",
      port: 22,
      hostKeys: ["k1", "k2"],
      authorizedKeys: "ak",
      passwordFile: "pw",
      sftpRoot: "/srv"
    })
  })

  it("--permit-user-environment: yes, a pattern list, or no (the default, as absent)", () => {
    const keys = ["--authorized-keys", "ak"]
    expect(ok([...keys, "--permit-user-environment", "yes"]).permitUserEnvironment).toBe("yes")
    expect(ok([...keys, "--permit-user-environment=LANG,LC_*"]).permitUserEnvironment).toBe("LANG,LC_*")
    expect(ok([...keys, "--permit-user-environment", "no"]).permitUserEnvironment).toBeUndefined()
    expect(parseServe([...keys, "--permit-user-environment="])).toBeInstanceOf(UsageError)
  })

  it("the limits, in sshd_config's syntax", () => {
    expect(ok([
      "--password-file", "pw",
      "--sftp-root", "/srv",
      "--read-only",
      "--max-startups", "20:50:60",
      "--per-source-max-startups=none",
      "--per-source-net-block-size", "24:56",
      "--per-source-penalties", "authfail:30s max:1h",
      "--per-source-penalty-exempt-list", "10.0.0.0/8,192.0.2.7",
      "--login-grace-time", "1m30s",
      "--max-auth-tries", "3",
      "--max-connections", "50",
      "--max-sessions", "4",
      "--sftp-max-handles", "500",
      "--sftp-max-handles-per-session", "100"
    ])).toEqual({
      _tag: "Serve",
      listen: DEFAULT_LISTEN,
      port: DEFAULT_PORT,
      hostKeys: [],
      passwordFile: "pw",
      sftpRoot: "/srv",
      readOnly: true,
      maxStartups: { start: 20, rate: 50, full: 60 },
      perSourceMaxStartups: "none",
      perSourceNetBlockSize: { ipv4: 24, ipv6: 56 },
      perSourcePenalties: { ...defaultPenalties, authfail: 30_000, max: 3_600_000 },
      perSourcePenaltyExemptList: "10.0.0.0/8,192.0.2.7",
      loginGraceTime: 90_000,
      maxAuthTries: 3,
      maxConnections: 50,
      maxSessions: 4,
      sftpMaxHandles: 500,
      sftpMaxHandlesPerSession: 100
    })
    expect(ok(["--password-file", "pw", "--per-source-penalties", "off", "--max-startups", "5", "--login-grace-time", "0"]))
      .toMatchObject({ perSourcePenalties: false, maxStartups: { start: 5, rate: 100, full: 5 }, loginGraceTime: 0 })
    expect(ok(["--password-file", "pw", "--per-source-penalties", "on"]).perSourcePenalties).toEqual(defaultPenalties)
  })

  it("bad limits: a usage error naming the flag", () => {
    const p = ["--password-file", "p"]
    expect(usage([...p, "--max-startups", "60:30:10"])).toMatch(/^--max-startups: bad MaxStartups 60:30:10: start above full$/)
    expect(usage([...p, "--max-startups", "10:30"])).toMatch(/^--max-startups: /)
    expect(usage([...p, "--per-source-max-startups", "0"])).toMatch(/^--per-source-max-startups: /)
    expect(usage([...p, "--per-source-net-block-size", "33"])).toMatch(/^--per-source-net-block-size: /)
    expect(usage([...p, "--per-source-penalties", "invaliduser:5s"])).toMatch(/^--per-source-penalties: /)
    expect(usage([...p, "--per-source-penalty-exempt-list", "*.example.com"])).toMatch(/^--per-source-penalty-exempt-list: /)
    expect(usage([...p, "--login-grace-time", "soon"])).toMatch(/^--login-grace-time: bad time "soon"/)
    expect(usage([...p, "--max-auth-tries", "0"])).toMatch(/^--max-auth-tries: /)
    expect(usage([...p, "--max-connections", "-5"])).toMatch(/^--max-connections: /)
    expect(usage([...p, "--max-sessions", "x"])).toMatch(/^--max-sessions: /)
    expect(usage([...p, "--read-only"])).toBe("--read-only applies to SFTP: give --sftp-root DIR")
    expect(usage([...p, "--read-only=yes"])).toBe("unknown flag --read-only")
    expect(usage([...p, "--sftp-max-handles", "10"])).toBe("--sftp-max-handles applies to SFTP: give --sftp-root DIR")
    expect(usage([...p, "--sftp-root", "/srv", "--sftp-max-handles-per-session", "0"])).toMatch(/^--sftp-max-handles-per-session: /)
  })

  it("the usage text states the defaults the server uses", () => {
    const m = Admission.DEFAULT_MAX_STARTUPS
    const p = defaultPenalties
    expect(serveUsage).toContain(`(default ${m.start}:${m.rate}:${m.full})`)
    expect(serveUsage).toContain(`(default ${Admission.DEFAULT_PER_SOURCE_MAX_STARTUPS})`)
    expect(serveUsage).toContain(`(default ${Admission.DEFAULT_NET_BLOCK_SIZE.ipv4}:${Admission.DEFAULT_NET_BLOCK_SIZE.ipv6})`)
    expect(serveUsage).toContain(
      `(default on: authfail:${p.authfail / 1000}s noauth:${p.noauth / 1000}s grace-exceeded:${p.graceExceeded / 1000}s crash:${p.crash / 1000}s min:${p.min / 1000}s max:${p.max / 60_000}m)`
    )
    expect(serveUsage).toContain(`(default ${ServerAuth.DEFAULT_LOGIN_GRACE_TIME_MS / 1000}s)`)
    expect(serveUsage).toContain(`failed attempts per connection (default ${ServerAuth.DEFAULT_MAX_TRIES})`)
    expect(serveUsage).toContain(`authenticated or not (default ${Admission.defaults.maxConnections})`)
    expect(serveUsage).toContain(`channels per connection (default ${SshServer.DEFAULT_MAX_CHANNELS})`)
  })

  it("a value may contain '=' and start with '-'", () => {
    expect(ok(["--authorized-keys=a=b", "--password-file", "-pw"])).toMatchObject({ authorizedKeys: "a=b", passwordFile: "-pw" })
  })

  it("port 0 (any free port) and IPv6 addresses, bracketed or not", () => {
    expect(ok(["--port", "0", "--listen", "[::1]", "--authorized-keys", "k"])).toMatchObject({ port: 0, listen: "::1" })
    expect(ok(["--listen", "::", "--authorized-keys", "k"]).listen).toBe("::")
    expect(ok(["--listen", "localhost", "--authorized-keys", "k"]).listen).toBe("localhost")
  })

  it("--help and -h anywhere", () => {
    expect(parseServe(["--help"])).toEqual({ _tag: "Help" })
    expect(parseServe(["--port", "1", "-h"])).toEqual({ _tag: "Help" })
  })

  it("usage errors", () => {
    expect(usage([])).toContain("no way to log in")
    expect(usage(["--host-key", "k"])).toContain("no way to log in")
    expect(usage(["--bogus", "--password-file", "p"])).toBe("unknown flag --bogus")
    expect(usage(["-p", "22"])).toBe("unknown flag -p")
    expect(usage(["--bogus=1"])).toBe("unknown flag --bogus")
    expect(usage(["extra", "--password-file", "p"])).toBe(`unexpected argument "extra"`)
    expect(usage(["--password-file"])).toBe("--password-file needs a value")
    expect(usage(["--password-file="])).toBe("--password-file needs a value")
    expect(usage(["--port", "22", "--port", "23", "--password-file", "p"])).toBe("--port given twice")
    expect(usage(["--password-file", "a", "--password-file", "b"])).toBe("--password-file given twice")
    expect(usage(["--listen", "a b", "--password-file", "p"])).toBe(`bad listen address "a b"`)
    expect(usage(["--listen", "[]", "--password-file", "p"])).toBe(`bad listen address "[]"`)
  })

  it.each(["-1", "65536", "abc", "1e3", "0x10", " 22", "123456"])("bad port %j", (port) => {
    expect(usage(["--port", port, "--password-file", "p"])).toBe(`bad port "${port}" (0 to 65535)`)
  })

  it("parseListenPort and parseListenAddress", () => {
    expect(parseListenPort("65535")).toBe(65535)
    expect(parseListenPort("00022")).toBe(22)
    expect(parseListenAddress("192.0.2.1")).toBe("192.0.2.1")
    expect(parseListenAddress("fe80::1%eth0")).toBe("fe80::1%eth0")
  })

  it("any argv: ServeArgs, Help or a UsageError, never a throw", () => {
    const token = fc.oneof(
      fc.constantFrom(
        "--listen", "--port", "--host-key", "--authorized-keys", "--password-file", "--sftp-root", "--help", "-h", "--", "-", "=",
        "--read-only", "--max-startups", "--per-source-max-startups", "--per-source-penalties", "--login-grace-time", "--max-sessions"
      ),
      fc.string({ maxLength: 12 }),
      fc.tuple(fc.constantFrom("--port=", "--listen=", "--host-key=", "--x="), fc.string({ maxLength: 8 })).map(([a, b]) => a + b)
    )
    fc.assert(fc.property(fc.array(token, { maxLength: 10 }), (argv) => {
      const result = parseServe(argv)
      if (result instanceof UsageError) return typeof result.message === "string" && result.message.length > 0
      if (result._tag === "Help") return argv.includes("--help") || argv.includes("-h")
      return result.port >= 0 && result.port <= 65535 && (result.authorizedKeys !== undefined || result.passwordFile !== undefined)
    }), { numRuns: 2000 })
  })
})

describe("parsePasswordFile", () => {
  it("user:password lines; the first ':' separates; comments, blanks and CRLF skipped", () => {
    expect(parsePasswordFile("# users\n\nalice:wonder:land\r\n  bob:pw#1  \n")).toEqual([
      { user: "alice", password: "wonder:land" },
      { user: "bob", password: "pw#1" }
    ])
  })

  it("errors name the line, never the password", () => {
    const message = (text: string) => {
      try {
        parsePasswordFile(text)
      } catch (e) {
        expect(e).toBeInstanceOf(SshError.ConfigParseError)
        return (e as SshError.ConfigParseError).message
      }
      throw new Error("expected a ConfigParseError")
    }
    expect(message("alice:a\nsecret-without-colon\n")).toBe("password file line 2: expected user:password")
    expect(message(":hunter2\n")).toBe("password file line 1: empty user name")
    expect(message("alice:\n")).toBe("password file line 1: empty password for alice (not allowed)")
    expect(message("alice:x\n# c\nalice:hunter2\n")).toBe("password file line 3: user alice listed twice")
    expect(message("# nothing\n\n")).toBe("password file has no user:password line")
    expect(message("alice:x\nhunter2\n")).not.toContain("hunter2")
  })

  it("parse ∘ format = id", () => {
    const user = fc.stringMatching(/^[A-Za-z0-9_.@-]{1,16}$/)
    const password = fc.stringMatching(/^[\x21-\x7e][\x20-\x7e]{0,30}$/).filter((p) => p.trim() === p)
    const entries = fc.uniqueArray(fc.record({ user, password }), { minLength: 1, maxLength: 6, selector: (e) => e.user })
    fc.assert(fc.property(entries, (list) => {
      expect(parsePasswordFile(list.map((e) => `${e.user}:${e.password}\n`).join(""))).toEqual(list)
    }))
  })

  it("garbage in → entries or a ConfigParseError, nothing else", () => {
    fc.assert(fc.property(fc.string({ maxLength: 200 }), (text) => {
      try {
        const entries = parsePasswordFile(text)
        return entries.length > 0 && entries.every((e) => e.user.length > 0 && e.password.length > 0)
      } catch (e) {
        return SshError.isSshErrorReason(e) && e._tag === "ConfigParseError"
      }
    }), { numRuns: 2000 })
  })
})

describe("passwordVerifier", () => {
  const check = Serve.passwordVerifier([{ user: "alice", password: "wonderland" }, { user: "bob", password: "builder" }])

  it("accepts exactly the user's own password", () => {
    expect(check("alice", "wonderland")).toBe(true)
    expect(check("bob", "builder")).toBe(true)
    expect(check("alice", "builder")).toBe(false)
    expect(check("alice", "wonderland ")).toBe(false)
    expect(check("alice", "wonder")).toBe(false)
    expect(check("alice", "")).toBe(false)
    expect(check("carol", "wonderland")).toBe(false)
    expect(check("", "")).toBe(false)
  })
})

describe("usableAuthorizedKeys", () => {
  const a = PrivateKey.generate("ssh-ed25519").publicKey
  const b = PrivateKey.generate("ecdsa-sha2-nistp256").publicKey
  const c = PrivateKey.generate("ssh-ed25519").publicKey

  it("keeps every line whose options are enforced; skips bad lines and unsupported options with a warning naming them", () => {
    const text = [
      AuthorizedKeys.formatLine(a),
      AuthorizedKeys.formatLine(b, ["no-port-forwarding", "No-Agent-Forwarding"]),
      AuthorizedKeys.formatLine(c, ['command="uptime"']),
      "ssh-ed25519 not-base64",
      AuthorizedKeys.formatLine(c, ["restrict"]),
      AuthorizedKeys.formatLine(c, ['tunnel="1"']),
      AuthorizedKeys.formatLine(c, ["no-such-thing"])
    ].join("\n")
    const { entries, warnings } = Serve.usableAuthorizedKeys(text)
    expect(entries.map((e) => e.line)).toEqual([1, 2, 3, 5])
    expect(entries.map((e) => PublicKey.fingerprint(e.key))).toEqual([a, b, c, c].map((k) => PublicKey.fingerprint(k)))
    expect(warnings).toHaveLength(3)
    expect(warnings[0]).toMatch(/^line 4: .*; skipped$/)
    expect(warnings[1]).toBe("line 6: key option tunnel is not supported; key skipped")
    expect(warnings[2]).toBe("line 7: unknown key option no-such-thing; key skipped")
  })
})

describe("authHandlers", () => {
  const key = PrivateKey.generate("ssh-ed25519").publicKey
  const other = PrivateKey.generate("ssh-ed25519").publicKey
  const ctx = { user: "alice", remoteAddress: "192.0.2.1", remotePort: 40000 }
  const run = <A>(effect: Effect.Effect<A, SshError.SshError>) => Effect.runPromise(effect)

  it("publickey only: the listed keys, for any user name", async () => {
    const auth = Serve.authHandlers({ keys: [key] })
    expect(auth.password).toBeUndefined()
    expect(auth.keyboardInteractive).toBeUndefined()
    expect(await run(auth.publicKey!({ ...ctx, key }))).toBe(true)
    expect(await run(auth.publicKey!({ ...ctx, user: "root", key }))).toBe(true)
    expect(await run(auth.publicKey!({ ...ctx, key: other }))).toBe(false)
  })

  it("passwords: password and keyboard-interactive (one hidden Password: prompt)", async () => {
    const auth = Serve.authHandlers({ checkPassword: Serve.passwordVerifier([{ user: "alice", password: "pw" }]) })
    expect(auth.publicKey).toBeUndefined()
    expect(await run(auth.password!({ ...ctx, password: Redacted.make("pw") }))).toBe(true)
    expect(await run(auth.password!({ ...ctx, password: Redacted.make("nope") }))).toBe(false)
    const asked: Array<unknown> = []
    const kbd = (answers: ReadonlyArray<string>, user = "alice") =>
      run(auth.keyboardInteractive!({
        ...ctx,
        user,
        submethods: "",
        prompt: (request) => Effect.sync(() => (asked.push(request), answers))
      } satisfies Parameters<NonNullable<ServerAuth.ServerAuthOptions["keyboardInteractive"]>>[0]))
    expect(await kbd(["pw"])).toBe(true)
    expect(await kbd(["pw"], "bob")).toBe(false)
    expect(await kbd(["wrong"])).toBe(false)
    expect(await kbd([])).toBe(false)
    expect(asked[0]).toEqual({ name: "", instruction: "", prompts: [{ prompt: "Password: ", echo: false }] })
  })
})

describe("formatEvent", () => {
  it("escapes the peer's text: a user name or an error message cannot move the terminal or split the line", () => {
    const line = Serve.formatEvent({ _tag: "Authenticated", remoteAddress: "192.0.2.1", user: "eve\u001b[2J\nroot", methods: ["password"] })
    expect(line).toBe("Authenticated eve\\033[2J\\012root from 192.0.2.1 (password)")
  })

  it("one line per event", () => {
    expect(Serve.formatEvent({ _tag: "Connected", remoteAddress: "192.0.2.1", remotePort: 5000 })).toBe("Connected 192.0.2.1:5000")
    expect(Serve.formatEvent({ _tag: "Authenticated", remoteAddress: "192.0.2.1", user: "alice", methods: ["publickey", "password"] }))
      .toBe("Authenticated alice from 192.0.2.1 (publickey,password)")
    expect(Serve.formatEvent({ _tag: "Closed", remoteAddress: "192.0.2.1", remotePort: 5000 })).toBe("Closed 192.0.2.1:5000")
    const error = SshError.make(new SshError.ProtocolError({ message: "bad packet" }))
    expect(Serve.formatEvent({ _tag: "Closed", remoteAddress: "192.0.2.1", remotePort: 5000, error }))
      .toBe("Closed 192.0.2.1:5000 with error ProtocolError: bad packet")
    const refused = { _tag: "Refused", remoteAddress: "2001:db8::7", remotePort: 5000, reason: "MaxStartups", detail: "12 unauthenticated connections" } as const
    expect(Serve.formatEvent({ ...refused, suppressed: 0 })).toBe("Refused [2001:db8::7]:5000 (MaxStartups): 12 unauthenticated connections")
    expect(Serve.formatEvent({ ...refused, suppressed: 41 }))
      .toBe("Refused [2001:db8::7]:5000 (MaxStartups): 12 unauthenticated connections; 41 more refused for MaxStartups since the last such line")
    expect(Serve.formatEvent({
      _tag: "PenaltyActivated",
      addressBlock: "192.0.2.0/24",
      penalty: "authfail",
      reason: "penalty: failed authentication",
      duration: Duration.millis(20_000)
    })).toBe("Penalty: refusing 192.0.2.0/24 for 20.0 s (penalty: failed authentication)")
  })
})

// ---------------------------------------------------------------------------------------------------------------
// Start-up from files, in-process, with our client
// ---------------------------------------------------------------------------------------------------------------

const hostKey = PrivateKey.generate("ecdsa-sha2-nistp256")
const userKey = PrivateKey.generate("ssh-ed25519")
let dir: string
let files: {
  readonly hostKey: string
  readonly encryptedKey: string
  readonly authorizedKeys: string
  readonly passwordFile: string
  readonly badPasswordFile: string
  readonly sftpRoot: string
}

beforeAll(() => {
  dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-ssh-serve-test-"))
  const file = (name: string, text: string, mode = 0o600) => {
    const path = Path.join(dir, name)
    Fs.writeFileSync(path, text, { mode })
    return path
  }
  const sftpRoot = Path.join(dir, "sftp-root")
  Fs.mkdirSync(sftpRoot)
  Fs.writeFileSync(Path.join(sftpRoot, "hello.txt"), "hello\n")
  files = {
    hostKey: file("host_key", PrivateKey.toOpenSsh(hostKey)),
    encryptedKey: file("encrypted_key", PrivateKey.toOpenSsh(PrivateKey.generate("ssh-ed25519"), { passphrase: "x", rounds: 2 })),
    authorizedKeys: file("authorized_keys", `${AuthorizedKeys.formatLine(userKey.publicKey)}\ntunnel="0" ${PublicKey.toOpenSsh(hostKey.publicKey)}\n`),
    passwordFile: file("passwords", "alice:wonder:land\n"),
    badPasswordFile: file("bad_passwords", "alice:x\nhunter2\n", 0o644),
    sftpRoot
  }
})

afterAll(() => {
  if (dir !== undefined) Fs.rmSync(dir, { recursive: true, force: true })
})

const args = (extra: Partial<ServeArgs> = {}): ServeArgs => ({
  _tag: "Serve",
  listen: "127.0.0.1",
  port: 0,
  hostKeys: [files.hostKey],
  authorizedKeys: files.authorizedKeys,
  passwordFile: files.passwordFile,
  ...extra
})

const collectLog = () => {
  const lines: Array<string> = []
  return { lines, log: (line: string) => Effect.sync(() => void lines.push(line)) }
}

const client = (port: number, auth: ReadonlyArray<Auth.AuthMethod>, username = "alice"): SshClient.ConnectOptions => ({
  host: "127.0.0.1",
  port,
  username,
  auth,
  hostKeys: HostKeys.fixed(hostKey.publicKey),
  connectTimeout: "20 seconds"
})

describe("start (in-process)", () => {
  it("serves exec through the shell to publickey and password users, and logs each connection", async () => {
    const { lines, log } = collectLog()
    const results = await runScoped(Effect.gen(function*() {
      const server = yield* Serve.start(args(), log)
      const port = server.address.port
      const viaKey = yield* Effect.scoped(Effect.flatMap(SshClient.connect(client(port, [Auth.privateKey(userKey)])), (ssh) =>
        ssh.run("echo hi; echo err >&2; exit 7")))
      const viaPassword = yield* Effect.scoped(Effect.flatMap(
        SshClient.connect(client(port, [Auth.password("wonder:land")])),
        (ssh) => ssh.run("printf %s \"$SSH_CONNECTION\" | wc -w")
      ))
      return { port, viaKey, viaPassword }
    }))
    expect(results.viaKey.stdout).toBe("hi\n")
    expect(results.viaKey.stderr).toBe("err\n")
    expect(results.viaKey.exitCode).toBe(7)
    expect(results.viaPassword.stdout.trim()).toBe("4")
    expect(lines[0]).toBe(`Host key ecdsa-sha2-nistp256 ${PublicKey.fingerprint(hostKey.publicKey)} (${files.hostKey})`)
    expect(lines).toContain(`Warning: ${files.authorizedKeys} line 2: key option tunnel is not supported; key skipped`)
    expect(lines).toContain(`Authorized keys: 1 from ${files.authorizedKeys}`)
    expect(lines).toContain(`Password logins: 1 user(s) from ${files.passwordFile}`)
    expect(lines).toContain(`Listening on 127.0.0.1:${results.port}`)
    expect(lines.filter((l) => l.startsWith("Connected 127.0.0.1:"))).toHaveLength(2)
    expect(lines).toContain("Authenticated alice from 127.0.0.1 (publickey)")
    expect(lines).toContain("Authenticated alice from 127.0.0.1 (password)")
    expect(lines.filter((l) => /^Closed 127\.0\.0\.1:\d+$/.test(l))).toHaveLength(2)
  })

  it("refuses a wrong password and a key that is not authorized", async () => {
    const { log } = collectLog()
    const failures = await runScoped(Effect.gen(function*() {
      const server = yield* Serve.start(args(), log)
      const port = server.address.port
      const attempt = (auth: Auth.AuthMethod, username?: string) =>
        Effect.flip(Effect.scoped(Effect.flatMap(SshClient.connect(client(port, [auth], username)), (ssh) => ssh.run("true"))))
      return yield* Effect.all([
        attempt(Auth.password("wonder")),
        attempt(Auth.password("wonder:land"), "bob"),
        attempt(Auth.privateKey(PrivateKey.generate("ssh-ed25519")))
      ])
    }))
    expect(failures.map((e) => e.reason._tag)).toEqual(["AuthFailed", "AuthFailed", "AuthFailed"])
  })

  it("without --host-key: a generated ed25519 key whose fingerprint is logged", async () => {
    const { lines, log } = collectLog()
    const fingerprint = await runScoped(Effect.gen(function*() {
      const server = yield* Serve.start(args({ hostKeys: [] }), log)
      let seen: PublicKey.PublicKey | undefined
      yield* Effect.scoped(Effect.flatMap(
        SshClient.connect({
          ...client(server.address.port, [Auth.privateKey(userKey)]),
          hostKeys: HostKeys.callback((check) => Effect.sync(() => (seen = check.key, true)))
        }),
        (ssh) => ssh.run("true")
      ))
      return PublicKey.fingerprint(seen!)
    }))
    expect(lines[0]).toBe(`Host key ssh-ed25519 ${fingerprint} (generated, in memory only)`)
  })

  it("--sftp-root serves that directory as /", async () => {
    const { lines, log } = collectLog()
    const attrs = await runScoped(Effect.gen(function*() {
      const server = yield* Serve.start(args({ sftpRoot: files.sftpRoot }), log)
      const ssh = yield* SshClient.connect(client(server.address.port, [Auth.privateKey(userKey)]))
      const sftp = yield* ssh.sftp()
      return yield* sftp.stat("/hello.txt")
    }))
    expect(attrs.size).toBe(6)
    expect(lines).toContain(`SFTP: serving ${files.sftpRoot} as /`)
  })

  it("--sftp-max-handles-per-session: an open past it is refused, the session goes on", async () => {
    const { log } = collectLog()
    const r = await runScoped(Effect.gen(function*() {
      const server = yield* Serve.start(args({ sftpRoot: files.sftpRoot, sftpMaxHandlesPerSession: 2 }), log)
      const ssh = yield* SshClient.connect(client(server.address.port, [Auth.privateKey(userKey)]))
      const sftp = yield* ssh.sftp()
      yield* sftp.open("/hello.txt", "r")
      yield* sftp.open("/hello.txt", "r")
      const third = yield* Effect.flip(sftp.open("/hello.txt", "r"))
      const after = yield* sftp.stat("/hello.txt")
      return { third: third.reason, size: after.size }
    }))
    expect(r.third._tag).toBe("SftpStatus")
    expect(r.third.message).toMatch(/handles/)
    expect(r.size).toBe(6)
  })

  it("--read-only: SFTP reads work, every change is refused", async () => {
    const { lines, log } = collectLog()
    const r = await runScoped(Effect.gen(function*() {
      const server = yield* Serve.start(args({ sftpRoot: files.sftpRoot, readOnly: true }), log)
      const ssh = yield* SshClient.connect(client(server.address.port, [Auth.privateKey(userKey)]))
      const sftp = yield* ssh.sftp()
      const read = yield* sftp.stat("/hello.txt")
      const write = yield* Effect.flip(sftp.writeFile("/new.txt", new Uint8Array(3)))
      const mkdir = yield* Effect.flip(sftp.mkdir("/dir"))
      return { size: read.size, write: write.reason, mkdir: mkdir.reason._tag }
    }))
    expect(r.size).toBe(6)
    expect(r.write).toMatchObject({ _tag: "SftpStatus", message: "read-only file system" })
    expect(r.mkdir).toBe("SftpStatus")
    expect(Fs.existsSync(Path.join(files.sftpRoot, "new.txt"))).toBe(false)
    expect(lines).toContain(`SFTP: serving ${files.sftpRoot} as / (read-only)`)
  })

  it("the limits reach the server: per-source limit, login grace time, max auth tries, max sessions; refusals are logged", async () => {
    const { lines, log } = collectLog()
    const r = await runScoped(Effect.gen(function*() {
      const server = yield* Serve.start(args({ perSourceMaxStartups: 1, loginGraceTime: 300, maxAuthTries: 2, maxSessions: 1, perSourcePenalties: false }), log)
      const port = server.address.port
      const raw = () =>
        Effect.callback<{ received: () => string; closed: () => boolean }>((resume) => {
          let received = ""
          let closed = false
          const sock = Net.createConnection({ host: "127.0.0.1", port, localAddress: "127.0.0.2" })
          sock.on("data", (d: Buffer) => void (received += d.toString("latin1")))
          sock.on("error", () => {})
          sock.on("close", () => void (closed = true))
          sock.once("connect", () => resume(Effect.succeed({ received: () => received, closed: () => closed })))
        })
      const held = yield* raw()
      yield* Effect.sleep(100)
      const refused = yield* raw()
      // the held one ends at the login grace time
      for (let i = 0; i < 100 && !(held.closed() && refused.closed()); i++) yield* Effect.sleep(20)
      const tries = yield* Effect.flip(Effect.scoped(SshClient.connect(client(port, [Auth.password("a"), Auth.password("b"), Auth.password("c")]))))
      const sessions = yield* Effect.scoped(Effect.gen(function*() {
        const ssh = yield* SshClient.connect(client(port, [Auth.privateKey(userKey)]))
        yield* ssh.openChannel("session")
        return yield* Effect.flip(ssh.openChannel("session"))
      }))
      return { held: held.received(), refused: refused.received(), tries: tries.reason, sessions: sessions.reason._tag }
    }))
    expect(r.held).toMatch(/^SSH-2\.0-/)
    expect(r.refused).toBe("Not allowed at this time\r\n")
    expect(lines.find((l) => l.startsWith("Refused 127.0.0.2:"))).toMatch(/\(PerSourceMaxStartups\): 1 unauthenticated connections from 127\.0\.0\.2\/32 \(PerSourceMaxStartups 1\)$/)
    expect(lines.find((l) => l.startsWith("Closed 127.0.0.2:"))).toMatch(/with error Timeout: login grace time exceeded/)
    // two wrong passwords, and the server hangs up: the third is never tried
    expect(r.tries).toMatchObject({ _tag: "PeerDisconnected", description: "too many authentication failures" })
    expect(lines.some((l) => / with error AuthFailed/.test(l))).toBe(true)
    expect(r.sessions).toBe("ChannelOpenFailed")
    expect(lines).toContain(
      "Limits: MaxStartups 10:30:100, PerSourceMaxStartups 1, PerSourceNetBlockSize 32:64, PerSourcePenalties no, " +
        "LoginGraceTime 0.3s, MaxAuthTries 2, MaxSessions 1, max connections 1000"
    )
  })

  it("start-up failures name the file", async () => {
    const fail = (extra: Partial<ServeArgs>) => runFailure(Serve.start(args(extra), collectLog().log))
    const missing = await fail({ hostKeys: [Path.join(dir, "nope")] })
    expect(missing.reason._tag).toBe("ConfigParseError")
    expect(missing.reason.message).toMatch(new RegExp(`^cannot read host key ${Path.join(dir, "nope")}: ENOENT`))
    const encrypted = await fail({ hostKeys: [files.hostKey, files.encryptedKey] })
    expect(encrypted.reason.message).toMatch(new RegExp(`^host key ${files.encryptedKey}: PassphraseRequired: `))
    const notAKey = await fail({ hostKeys: [files.passwordFile] })
    expect(notAKey.reason.message).toMatch(new RegExp(`^host key ${files.passwordFile}: KeyParseFailed: `))
    const badPasswords = await fail({ passwordFile: files.badPasswordFile })
    expect(badPasswords.reason.message).toBe(
      `password file ${files.badPasswordFile}: ConfigParseError: password file line 2: expected user:password`
    )
    const noAuthorizedKeys = await fail({ authorizedKeys: Path.join(dir, "none") })
    expect(noAuthorizedKeys.reason.message).toMatch(/^cannot read authorized keys .*none: ENOENT/)
    const notADirectory = await fail({ sftpRoot: files.passwordFile })
    expect(notADirectory.reason.message).toBe(`--sftp-root ${files.passwordFile}: not a directory`)
  })

  it("warns about a password file other users can read", async () => {
    const { lines, log } = collectLog()
    const loose = Path.join(dir, "loose_passwords")
    Fs.writeFileSync(loose, "alice:pw\n", { mode: 0o644 })
    Fs.chmodSync(loose, 0o644)
    await runScoped(Effect.asVoid(Serve.start(args({ passwordFile: loose }), log)))
    expect(lines).toContain(`Warning: ${loose} is readable by other users (chmod 600 it)`)
    expect(lines.some((l) => l.includes("readable by other users") && l.includes(files.passwordFile))).toBe(false)
  })
})

// ---------------------------------------------------------------------------------------------------------------
// The CLI as a child process (no OpenSSH needed)
// ---------------------------------------------------------------------------------------------------------------

const runCli = (argv: ReadonlyArray<string>) =>
  new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    ChildProcess.execFile(process.execPath, [mainScript, ...argv], { timeout: 20_000 }, (error, stdout, stderr) =>
      resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : null, stdout, stderr }))
  })

const startCli = async (argv: ReadonlyArray<string>) => {
  const child = ChildProcess.spawn(process.execPath, [mainScript, "serve", "--port", "0", ...argv], { stdio: ["ignore", "pipe", "pipe"] })
  let stderr = ""
  child.stderr.on("data", (b: Buffer) => void (stderr += b.toString()))
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)))
  for (const deadline = Date.now() + 20_000; ;) {
    const port = /Listening on 127\.0\.0\.1:(\d+)/.exec(stderr)?.[1]
    if (port !== undefined) return { child, port: Number(port), stderr: () => stderr, exited }
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill("SIGKILL")
      throw new Error(`serve did not start:\n${stderr}`)
    }
    await sleep(25)
  }
}

describe("effect-ssh serve (child process)", () => {
  it("bad flags: the message and the usage, exit 2", async () => {
    const r = await runCli(["serve", "--port", "99999", "--password-file", "p"])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain(`effect-ssh: bad port "99999" (0 to 65535)`)
    expect(r.stderr).toContain("usage: effect-ssh serve [--listen ADDR] [--port N]")
    const none = await runCli(["serve"])
    expect(none.code).toBe(2)
    expect(none.stderr).toContain("no way to log in")
  })

  it("--help: usage on stdout, exit 0; the top-level usage lists serve", async () => {
    const r = await runCli(["serve", "--help"])
    expect(r.code).toBe(0)
    expect(r.stdout).toContain("--sftp-root DIR")
    const top = await runCli(["--help"])
    expect(top.stdout).toMatch(/serve\s+run an SSH server/)
  })

  it("a start-up failure: the message, exit 1", async () => {
    const r = await runCli(["serve", "--port", "0", "--host-key", Path.join(dir, "missing"), "--password-file", files.passwordFile])
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/effect-ssh: cannot read host key .*missing: ENOENT/)
  })

  it("a port in use: exit 1", async () => {
    const server = await startCli(["--host-key", files.hostKey, "--authorized-keys", files.authorizedKeys])
    try {
      const r = await runCli(["serve", "--port", String(server.port), "--host-key", files.hostKey, "--authorized-keys", files.authorizedKeys])
      expect(r.code).toBe(1)
      expect(r.stderr).toMatch(/effect-ssh: cannot listen: .*EADDRINUSE/)
    } finally {
      server.child.kill("SIGTERM")
      await server.exited
    }
  })

  it.each(["SIGTERM", "SIGINT"] as const)("%s: connected clients get DISCONNECT, the server exits 0", async (signal) => {
    const server = await startCli(["--host-key", files.hostKey, "--authorized-keys", files.authorizedKeys])
    try {
      const error = await runFailure(Effect.gen(function*() {
        const ssh = yield* SshClient.connect(client(server.port, [Auth.privateKey(userKey)]))
        yield* ssh.exec("echo started; exec sleep 30")
        yield* Effect.sleep(300)
        server.child.kill(signal)
        return yield* Deferred.await(ssh.closed)
      }))
      expect(error.reason).toMatchObject({ _tag: "PeerDisconnected", code: 11, description: "server shutting down" })
      expect(await server.exited).toBe(0)
      const log = server.stderr()
      expect(log).toMatch(/ Connected 127\.0\.0\.1:\d+\n.* Authenticated alice from 127\.0\.0\.1 \(publickey\)\n/)
      expect(log).toMatch(/ Shutting down \(signal again to exit at once\)\n.* Closed 127\.0\.0\.1:\d+\n.* Stopped\n$/)
    } finally {
      server.child.kill("SIGKILL")
    }
  })
})
