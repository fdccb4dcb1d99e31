/**
 * `effect-ssh config` (a child process, as users run it) against real
 * `ssh -G` over generated configurations (`test/Config/corpus.ts`: Include,
 * Host and Match with wildcards and negation, Match exec, tokens,
 * duplicates), many host names per configuration, and command-line flags
 * (`-l`, `-p`, `-o`, `-J`, `-A`) on both sides. Every keyword we resolve is
 * compared; the algorithm lists only where the configuration sets them (we
 * print our own defaults, ssh prints its own).
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import fc from "fast-check"
import { afterAll, describe, expect, it } from "vitest"
import * as SshConfig from "../../src/Config/SshConfig.ts"
import { type ExecArgs, UsageError, parseExec } from "../../src/cli/Args.ts"
import { parseConfig } from "../../src/cli/Config.ts"
import { configSource } from "../../src/cli/Exec.ts"
import { parseTransfer } from "../../src/cli/Transfer.ts"
import { describeCorpus, generators, hostNames, writeCorpus, type Corpus } from "../Config/corpus.ts"
import { opensshPaths } from "../interop/sshd.ts"

const ssh = opensshPaths().ssh
if (ssh === undefined) console.warn("ssh not installed: skipping the effect-ssh config / ssh -G comparison")

const node = process.execPath
const main = Path.resolve("src/cli/main.ts")
const info = Os.userInfo()
const versionText = ssh === undefined ? "" : ChildProcess.spawnSync(ssh, ["-V"], { encoding: "utf8" }).stderr
const version = /OpenSSH_(\d+)\.(\d+)/.exec(versionText)
const hasTag = version !== null && (Number(version[1]) > 9 || (Number(version[1]) === 9 && Number(version[2]) >= 4))
/** Debian's ssh prints QUIET as SILENT and makes BatchMode imply ServerAliveInterval 300; we are not Debian's ssh. */
const debian = /Debian/.test(versionText)

const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-ssh-cli-config-"))
afterAll(() => Fs.rmSync(dir, { recursive: true, force: true }))

const supported: ReadonlySet<string> = new Set(SshConfig.keywords)
const algorithmKeywords: ReadonlySet<string> = new Set(["ciphers", "macs", "kexalgorithms", "hostkeyalgorithms", "pubkeyacceptedalgorithms"])

interface Run {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** Node's compile cache halves the CPU each of our processes spends loading the CLI's modules. */
const compileCache = Path.join(dir, "compile-cache")

const run = (file: string, args: ReadonlyArray<string>, home: string): Promise<Run> =>
  new Promise((resolve) => {
    const env = { ...process.env, HOME: home, SSHCFG_VAR: "from-env", NODE_COMPILE_CACHE: compileCache }
    ChildProcess.execFile(file, args, { env, timeout: 30_000 }, (error, stdout, stderr) =>
      resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : null, stdout, stderr }))
  })

const sshG = (file: string, home: string, flags: ReadonlyArray<string>, host: string) => run(ssh!, ["-F", file, "-G", ...flags, host], home)
const ours = (file: string, home: string, flags: ReadonlyArray<string>, hosts: ReadonlyArray<string>) =>
  run(node, [main, "config", "-F", file, ...flags, ...hosts], home)

/** ssh's lines for the keywords we resolve, keyed; algorithm lists only when they differ from ssh's defaults. */
const comparable = (text: string, defaults: ReadonlyMap<string, string>): Map<string, Array<string>> => {
  const view = new Map<string, Array<string>>()
  for (const line of text.split("\n")) {
    if (line === "") continue
    const space = line.indexOf(" ")
    const keyword = line.slice(0, space)
    let value = line.slice(space + 1)
    if (!supported.has(keyword)) continue
    if (algorithmKeywords.has(keyword) && defaults.get(keyword) === value) continue
    if (debian && keyword === "loglevel" && value === "SILENT") value = "QUIET"
    view.set(keyword, [...(view.get(keyword) ?? []), value])
  }
  return view
}

/** Our block, with the algorithm lists kept only where ssh's are (configured ones). */
const ourView = (block: string, theirs: ReadonlyMap<string, ReadonlyArray<string>>) => {
  const view = comparable(block, new Map())
  for (const k of algorithmKeywords) if (!theirs.has(k)) view.delete(k)
  return view
}

/** Debian's BatchMode default of ServerAliveInterval 300 (no generated line sets 300). */
const undoDebianKeepalive = (view: Map<string, Array<string>>) => {
  if (debian && view.get("batchmode")?.[0] === "yes" && view.get("serveraliveinterval")?.[0] === "300") view.set("serveraliveinterval", ["0"])
  return view
}

const flagsArbitrary = (userName: fc.Arbitrary<string>) =>
  fc.record({
    user: fc.option(userName, { nil: undefined }),
    port: fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined }),
    options: fc.uniqueArray(
      fc.constantFrom(
        "User=cli-user",
        "Port=2200",
        "HostName=cli.example.com",
        "IdentityFile=~/.ssh/cli_key",
        "SetEnv=CLI=1",
        "SendEnv=CLI_*",
        "ForwardAgent=no",
        "StrictHostKeyChecking=accept-new",
        "UserKnownHostsFile=/tmp/kh_%h",
        "ConnectTimeout=7",
        "Ciphers=aes256-ctr",
        "ServerAliveInterval=5"
      ),
      { maxLength: 3, selector: (o) => o.slice(0, o.indexOf("=")) }
    ),
    jump: fc.option(fc.constantFrom("j1", "me@j2:2201,j3", "none"), { nil: undefined }),
    agent: fc.boolean()
  }).map((f) => [
    ...(f.user === undefined ? [] : ["-l", f.user]),
    ...(f.port === undefined ? [] : ["-p", String(f.port)]),
    ...f.options.flatMap((o) => ["-o", o]),
    ...(f.jump === undefined ? [] : ["-J", f.jump]),
    ...(f.agent ? ["-A"] : [])
  ])

describe.skipIf(ssh === undefined)("effect-ssh config against ssh -G", () => {
  it("prints what ssh -G prints, for generated configurations, host names and flags", { timeout: 120_000 }, async () => {
    const empty = Path.join(dir, "empty")
    Fs.writeFileSync(empty, "")
    const defaults = new Map(
      (await sshG(empty, dir, [], "x")).stdout.split("\n").filter((l) => l !== "").map((l) => [l.slice(0, l.indexOf(" ")), l.slice(l.indexOf(" ") + 1)])
    )
    const { corpus, userName } = generators({ localUser: info.username, hasTag, exec: true, invalid: true, algorithms: "absolute" })
    const hostsArbitrary = fc.shuffledSubarray([...hostNames, "deploy@web", "root@db.example.com", "alice@x"], { minLength: 7 })
    const cases = fc.sample(fc.tuple(corpus, hostsArbitrary, flagsArbitrary(userName)), { seed: 20261207, numRuns: 30 })
    const stats = { blocks: 0, lines: 0, rejected: 0 }

    const check = async ([c, hosts, flags]: [Corpus, Array<string>, Array<string>]) => {
      const { file, home } = writeCorpus(dir, c)
      const context = `${describeCorpus(c)}\nflags: ${flags.join(" ")}`
      const theirs = await Promise.all(hosts.map((host) => sshG(file, home, flags, host)))
      const accepted = hosts.filter((_, i) => theirs[i]!.code === 0)
      if (accepted.length < hosts.length) {
        const all = await ours(file, home, flags, hosts)
        expect(all.code, `ssh rejected ${hosts.filter((h) => !accepted.includes(h)).join(", ")} but we printed:\n${all.stdout}\n${context}`).toBe(255)
        stats.rejected++
      }
      if (accepted.length === 0) return
      const mine = await ours(file, home, flags, accepted)
      expect(mine.code, `we rejected what ssh accepts: ${mine.stderr}\n${context}`).toBe(0)
      const blocks = mine.stdout.split("\n\n")
      expect(blocks).toHaveLength(accepted.length)
      accepted.forEach((host, i) => {
        const expected = undoDebianKeepalive(comparable(theirs[hosts.indexOf(host)]!.stdout, defaults))
        const actual = ourView(blocks[i]!, expected)
        expect(Object.fromEntries(actual), `host ${host}\n${context}`).toEqual(Object.fromEntries(expected))
        stats.blocks++
        stats.lines += [...expected.values()].reduce((n, v) => n + v.length, 0)
      })
    }

    // a few at a time: each of ours is a node process (~1 s of CPU to start)
    const queue = [...cases]
    await Promise.all(Array.from({ length: 3 }, async () => {
      for (let next = queue.shift(); next !== undefined; next = queue.shift()) await check(next)
    }))
    console.log(`effect-ssh config vs ssh -G: ${cases.length} configurations, ${stats.blocks} host blocks, ${stats.lines} lines agreeing; ${stats.rejected} configurations rejected by both`)
    expect(stats.blocks).toBeGreaterThan(cases.length)
  })

  it("fails as ssh does on an unreadable -F file and a bad line, and warns about unsupported keywords with file:line", async () => {
    const missing = await ours(Path.join(dir, "nope"), dir, [], ["web"])
    expect(missing.code).toBe(255)
    expect(missing.stderr).toContain("Can't open user config file")
    const bad = Path.join(dir, "bad")
    Fs.writeFileSync(bad, "Host web\n  Port banana\n")
    const rejected = await ours(bad, dir, [], ["web"])
    expect(rejected.code).toBe(255)
    expect(rejected.stderr).toContain(`${bad} line 2`)
    const unsupported = Path.join(dir, "unsupported")
    Fs.writeFileSync(unsupported, "Host web\n  ControlMaster auto\n  GSSAPIAuthentication yes\n")
    const warned = await ours(unsupported, dir, [], ["web", "db"])
    expect(warned.code).toBe(0)
    expect(warned.stderr.match(/ControlMaster/gi)).toHaveLength(1)
    expect(warned.stderr).toContain(`${unsupported}:2: controlmaster is not supported`)
    // GSSAPI (Debian's default ssh_config sets it) cannot change what we do: not worth a warning
    expect(warned.stderr).not.toMatch(/gssapi/i)
  })
})

describe("config flags", () => {
  const exec = (argv: ReadonlyArray<string>): ExecArgs => {
    const r = parseExec(argv)
    if (r instanceof UsageError) throw new Error(r.message)
    return r
  }

  it("-F, -J and -A on exec, get and put become the configuration's source and first lines", () => {
    const args = exec(["-A", "-F", "./cfg", "-J", "me@b1:2200,b2", "-i", "~/k", "--known-hosts", "/kh", "-o", "SetEnv=A=1", "-o", "ProxyJump=ignored", "db", "--", "true"])
    expect(configSource(args)).toEqual({
      configFile: "./cfg",
      // -J before -o ProxyJump: the first value wins, as in ssh
      config: ["IdentityFile \"~/k\"", "UserKnownHostsFile \"/kh\"", "ProxyJump me@b1:2200,b2", "ForwardAgent yes", "setenv A=1", "proxyjump ignored"],
      username: undefined,
      port: undefined
    })
    for (const command of ["get", "put"] as const) {
      const argv = command === "get" ? ["-A", "-F", "none", "-J", "b1", "db:/x", "y"] : ["-A", "-F", "none", "-J", "b1", "y", "db:/x"]
      const t = parseTransfer(command, argv)
      if (t instanceof UsageError) throw new Error(t.message)
      expect(configSource(t)).toMatchObject({ configFile: "none", config: ["ProxyJump b1", "ForwardAgent yes"] })
    }
  })

  it("rejects a bad -J and an unknown keyword, and config needs a host", () => {
    expect((parseExec(["-J", "a,,b", "h", "x"]) as UsageError).message).toMatch(/^-J a,,b: /)
    expect((parseExec(["-o", "ForwardX11=yes", "h", "x"]) as UsageError).message).toMatch(/unsupported option "ForwardX11"/)
    expect(parseConfig(["-F", "x"])).toEqual(new UsageError("missing host"))
    expect(parseConfig(["-F", "x", "-l", "u", "-p", "2", "a", "b@c"])).toMatchObject({ hosts: ["a", "b@c"], source: { configFile: "x", username: "u", port: 2 } })
  })
})
