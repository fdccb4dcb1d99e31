/**
 * Our resolution against real `ssh -G`, keyword by keyword, over seeded
 * generated configurations: Include of temp files, Host patterns with
 * wildcards and negation, Match host/originalhost/user/localuser/all/final
 * (and tagged when the installed ssh knows it), tokens, duplicates,
 * quoting and `=` separators, with and without `-l` and `-p`.
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as Effect from "effect/Effect"
import fc from "fast-check"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import * as SshConfig from "../../src/Config/SshConfig.ts"
import { opensshPaths } from "../interop/sshd.ts"

const ssh = opensshPaths().ssh
if (ssh === undefined) console.warn("ssh not installed: skipping the ssh -G comparison")

const version = ssh === undefined ? [0, 0] : (() => {
  const text = ChildProcess.spawnSync(ssh, ["-V"], { encoding: "utf8" }).stderr
  const m = /OpenSSH_(\d+)\.(\d+)/.exec(text)
  return m === null ? [0, 0] : [Number(m[1]), Number(m[2])]
})()
const debian = ssh !== undefined && /Debian/.test(ChildProcess.spawnSync(ssh, ["-V"], { encoding: "utf8" }).stderr)
const hasTag = version[0]! > 9 || (version[0] === 9 && version[1]! >= 4)

const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-ssh-config-"))
afterAll(() => Fs.rmSync(dir, { recursive: true, force: true }))
const info = Os.userInfo()
const environment = { ...process.env, HOME: dir, SSHCFG_VAR: "from-env" }

const sshG = (file: string, host: string, extra: ReadonlyArray<string>) => {
  const r = ChildProcess.spawnSync(ssh!, ["-F", file, "-G", ...extra, host], { encoding: "utf8", env: environment })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

const lines = (text: string) => text.split("\n").filter((l) => l !== "")
const supported: ReadonlySet<string> = new Set(SshConfig.keywords)

const algorithmLists = (() => {
  if (ssh === undefined) return undefined
  const empty = Path.join(dir, "empty")
  Fs.writeFileSync(empty, "")
  const defaults = new Map(lines(sshG(empty, "x", []).stdout).map((l) => [l.slice(0, l.indexOf(" ")), l.slice(l.indexOf(" ") + 1)]))
  const query = (what: string) => lines(ChildProcess.spawnSync(ssh, ["-Q", what], { encoding: "utf8" }).stdout)
  const entry = (k: string, q: string) => ({ defaults: defaults.get(k)!.split(","), supported: query(q) })
  return {
    ciphers: entry("ciphers", "cipher"),
    macs: entry("macs", "mac"),
    kexalgorithms: entry("kexalgorithms", "kex"),
    hostkeyalgorithms: entry("hostkeyalgorithms", "HostKeyAlgorithms"),
    pubkeyacceptedalgorithms: entry("pubkeyacceptedalgorithms", "PubkeyAcceptedAlgorithms")
  }
})()

const context = (overrides: { user?: string; port?: number }) =>
  SshConfig.makeContext({
    localUser: info.username,
    homeDirectory: info.homedir,
    uid: String(info.uid),
    localHostname: Os.hostname(),
    environment,
    algorithms: algorithmLists,
    flavor: debian ? "debian" : "openssh",
    ...overrides
  })

const ours = (file: string, host: string, overrides: { user?: string; port?: number }) =>
  Effect.runPromise(
    SshConfig.load({ file, homeDirectory: info.homedir, includeHome: dir }).pipe(
      Effect.map((loaded) => SshConfig.resolve(loaded.files, host, context(overrides), loaded.included).lines()),
      Effect.provide(NodeFileSystem.layer)
    )
  )

// ---------------------------------------------------------------------------
// The generator
// ---------------------------------------------------------------------------

const hostNames = ["web", "web1", "db", "db.example.com", "Web2.Example.COM", "bastion", "10.0.0.7", "x"]
const hostPattern = fc.constantFrom("*", "web*", "db*", "*.example.com", "web?", "!db", "!web1", "bastion", "x", "*.EXAMPLE.com", "10.0.0.*")
const userName = fc.constantFrom("root", "deploy", "alice", info.username)
const word = fc.constantFrom("a", "b", "c")

const optionLine: fc.Arbitrary<string> = fc.oneof(
  fc.tuple(fc.constantFrom("HostName", "hostname", "HOSTNAME"), fc.constantFrom("%h.internal", "real-%h", "db.example.com", "Upper.Case", "10.0.0.9", "%%h")).map(([k, v]) => `${k} ${v}`),
  fc.tuple(fc.constantFrom("Port", "port"), fc.integer({ min: 1, max: 65535 })).map(([k, v]) => `${k} ${v}`),
  userName.map((u) => `User ${u}`),
  fc.constantFrom("~/.ssh/id_ed25519", "/keys/%h_%r", "\"/path with space/key\"", "~/.ssh/%n", "${SSHCFG_VAR}/k").map((v) => `IdentityFile ${v}`),
  fc.constantFrom("~/.ssh/cert.pub", "/certs/%h-cert.pub").map((v) => `CertificateFile ${v}`),
  fc.tuple(fc.constantFrom("IdentitiesOnly", "BatchMode", "CheckHostIP", "ExitOnForwardFailure", "GatewayPorts", "Compression"), fc.constantFrom("yes", "no", "YES", "No"))
    .map(([k, v]) => `${k} ${v}`),
  fc.constantFrom("yes", "no", "ask", "accept-new", "off", "true").map((v) => `StrictHostKeyChecking ${v}`),
  fc.constantFrom("yes", "no", "force", "auto").map((v) => `RequestTTY ${v}`),
  fc.constantFrom("none", "SSH_AUTH_SOCK", "~/agent.sock", "/run/%u/agent", "${SSHCFG_VAR}/agent").map((v) => `IdentityAgent ${v}`),
  fc.constantFrom("yes", "no", "/tmp/agent-%r").map((v) => `ForwardAgent ${v}`),
  fc.constantFrom("10", "1m", "none", "1h30m").map((v) => `ConnectTimeout ${v}`),
  fc.constantFrom("0", "15", "2m").map((v) => `ServerAliveInterval ${v}`),
  fc.integer({ min: 0, max: 9 }).map((v) => `ServerAliveCountMax ${v}`),
  fc.integer({ min: 0, max: 9 }).map((v) => `NumberOfPasswordPrompts ${v}`),
  fc.constantFrom("~/.ssh/kh_%h", "/etc/kh1 /etc/kh2", "none", "~/.ssh/known_hosts").map((v) => `UserKnownHostsFile ${v}`),
  fc.constantFrom("/etc/ssh/g1", "/etc/ssh/g1 /etc/ssh/g2", "none").map((v) => `GlobalKnownHostsFile ${v}`),
  fc.constantFrom("Alias1", "alias-%h", "web").map((v) => `HostKeyAlias ${v}`),
  fc.constantFrom("+aes128-cbc", "-*-ctr", "^aes256-gcm@openssh.com", "aes128-ctr,aes256-ctr").map((v) => `Ciphers ${v}`),
  fc.constantFrom("+hmac-md5", "-umac*", "hmac-sha2-256").map((v) => `MACs ${v}`),
  fc.constantFrom("+diffie-hellman-group14-sha1", "-sntrup*", "^curve25519-sha256", "curve25519-sha256").map((v) => `KexAlgorithms ${v}`),
  fc.constantFrom("+ssh-rsa", "-ssh-ed25519*", "ssh-ed25519,rsa-sha2-512").map((v) => `HostKeyAlgorithms ${v}`),
  fc.constantFrom("+ssh-rsa", "^ssh-ed25519", "-rsa-sha2-*").map((v) => `PubkeyAcceptedAlgorithms ${v}`),
  fc.constantFrom("8080 localhost:80", "127.0.0.1:9000 db:5432", "[::1]:7000 [::1]:22", "/tmp/l.sock /tmp/r.sock", "9001 /tmp/%h.sock").map((v) => `LocalForward ${v}`),
  fc.constantFrom("8080 localhost:80", "0 localhost:22", "9090", "*:2222 web:22").map((v) => `RemoteForward ${v}`),
  fc.constantFrom("1080", "127.0.0.1:1081", "[::1]:1082").map((v) => `DynamicForward ${v}`),
  fc.constantFrom("1G", "500M 1h", "default none", "100K 30m").map((v) => `RekeyLimit ${v}`),
  fc.constantFrom("LANG LC_*", "FOO", "-LC_*", "-*", "BAR BAZ").map((v) => `SendEnv ${v}`),
  fc.constantFrom("FOO=1", "FOO=2 BAR=x", "\"A=b c\"", "FOO=1 FOO=3").map((v) => `SetEnv ${v}`),
  fc.constantFrom("publickey,password", "keyboard-interactive").map((v) => `PreferredAuthentications ${v}`),
  fc.constantFrom("QUIET", "error", "debug", "DEBUG2", "Verbose").map((v) => `LogLevel ${v}`),
  fc.constantFrom("jump1", "me@jump2:2200", "a,b@c:23", "none", "[10.0.0.1]:22", "ssh://u@j3").map((v) => `ProxyJump ${v}`),
  fc.constantFrom("ssh -W %h:%p gateway", "none", "nc %h %p").map((v) => `ProxyCommand ${v}`),
  fc.constantFrom("ForwardX11 no", "ServerAliveCountMax=4", "Port = 2200", "  user   =  spaced", "ForwardX11Trusted yes")
)

const matchLine = fc.oneof(
  fc.tuple(fc.boolean(), hostPattern).map(([neg, p]) => `Match ${neg ? "!" : ""}host ${p}`),
  fc.tuple(fc.boolean(), fc.constantFrom("web*", "db,x", "!web1,*", "*")).map(([neg, p]) => `Match ${neg ? "!" : ""}originalhost ${p}`),
  fc.tuple(fc.boolean(), fc.constantFrom("root", "deploy,alice", "!root,*", info.username)).map(([neg, p]) => `Match ${neg ? "!" : ""}user ${p}`),
  fc.constantFrom(`Match localuser ${info.username}`, "Match localuser nobody-here", "Match all", "Match !all"),
  fc.constantFrom("Match final host *.internal", "Match canonical", "Match final", "Match !final user root", "Match host=web*", "Match host \"db*\""),
  ...(hasTag ? [fc.constantFrom("Match tagged t1", "Match !tagged t2", "Tag t1", "Tag t2")] : [])
)

const hostLine = fc.array(hostPattern, { minLength: 1, maxLength: 3 }).map((ps) => `Host ${ps.join(" ")}`)

interface Corpus {
  readonly main: ReadonlyArray<string>
  readonly includes: ReadonlyArray<ReadonlyArray<string>>
}

const block = fc.array(fc.oneof({ weight: 5, arbitrary: optionLine }, { weight: 1, arbitrary: hostLine }, { weight: 1, arbitrary: matchLine }), { maxLength: 8 })

const corpus: fc.Arbitrary<Corpus> = fc.record({
  main: fc.array(fc.oneof({ weight: 3, arbitrary: block }, { weight: 1, arbitrary: fc.constantFrom([`Include inc-*.conf`], [`Include ${dir}/inc-0.conf`], ["Include missing-*.conf"]) }), { maxLength: 6 }).map((bs) => bs.flat()),
  includes: fc.array(block, { maxLength: 2 })
})

let counter = 0
const writeCorpus = (c: Corpus): string => {
  const id = counter++
  const sub = Path.join(dir, `c${id}`)
  Fs.mkdirSync(Path.join(sub, ".ssh"), { recursive: true })
  const main = Path.join(sub, "config")
  // Relative includes are relative to ~/.ssh; both ssh (through $HOME) and we look in <dir>/.ssh.
  Fs.mkdirSync(Path.join(dir, ".ssh"), { recursive: true })
  for (const f of Fs.readdirSync(Path.join(dir, ".ssh"))) Fs.rmSync(Path.join(dir, ".ssh", f))
  c.includes.forEach((lines, i) => {
    Fs.writeFileSync(Path.join(dir, ".ssh", `inc-${i}.conf`), lines.join("\n") + "\n", { mode: 0o644 })
  })
  Fs.writeFileSync(Path.join(dir, "inc-0.conf"), (c.includes[0] ?? []).join("\n") + "\n", { mode: 0o644 })
  Fs.writeFileSync(main, c.main.join("\n") + "\n", { mode: 0o644 })
  return main
}

describe.skipIf(ssh === undefined)("SshConfig against ssh -G", () => {
  const stats = { compared: 0, rejected: 0 }
  afterAll(() => console.log(`ssh -G comparisons: ${stats.compared} agreeing resolutions, ${stats.rejected} configurations both rejected`))

  it("resolves generated configurations as ssh -G does", { timeout: 120_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(corpus, fc.constantFrom(...hostNames), fc.option(userName, { nil: undefined }), fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined }), async (c, host, user, port) => {
        const file = writeCorpus(c)
        const extra = [...(user === undefined ? [] : ["-l", user]), ...(port === undefined ? [] : ["-p", String(port)])]
        const theirs = sshG(file, host, extra)
        let mine: ReadonlyArray<string> | Error
        try {
          mine = await ours(file, host, { ...(user === undefined ? {} : { user }), ...(port === undefined ? {} : { port }) })
        } catch (e) {
          mine = e as Error
        }
        if (theirs.status !== 0) {
          expect(mine, `ssh rejected it (${theirs.stderr.trim()}) but we resolved:\n${c.main.join("\n")}`).toBeInstanceOf(Error)
          stats.rejected++
          return
        }
        if (mine instanceof Error) throw new Error(`we rejected what ssh accepts: ${mine.message}\n${c.main.join("\n")}`)
        const expected = lines(theirs.stdout).filter((l) => supported.has(l.slice(0, l.indexOf(" "))))
        expect(mine, `config:\n${c.main.join("\n")}\nincludes:\n${c.includes.map((i) => i.join("\n")).join("\n--\n")}`).toEqual(expected)
        stats.compared++
      }),
      { seed: 20261207, numRuns: 300 }
    )
  })
})
