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
import { describeCorpus, generators, hostNames, writeCorpus } from "./corpus.ts"

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

const sshG = (file: string, host: string, extra: ReadonlyArray<string>, home = dir) => {
  const r = ChildProcess.spawnSync(ssh!, ["-F", file, "-G", ...extra, host], { encoding: "utf8", env: { ...environment, HOME: home } })
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

const context = (overrides: { user?: string; port?: number }, home: string) =>
  SshConfig.makeContext({
    localUser: info.username,
    homeDirectory: info.homedir,
    uid: String(info.uid),
    localHostname: Os.hostname(),
    environment: { ...environment, HOME: home },
    algorithms: algorithmLists,
    flavor: debian ? "debian" : "openssh",
    ...overrides
  })

const ours = (file: string, home: string, host: string, overrides: { user?: string; port?: number }) =>
  Effect.runPromise(
    SshConfig.load({ file, homeDirectory: info.homedir, includeHome: home }).pipe(
      Effect.map((loaded) => SshConfig.resolve(loaded.files, host, context(overrides, home), loaded.included).lines()),
      Effect.provide(NodeFileSystem.layer)
    )
  )

const { corpus, userName } = generators({ localUser: info.username, hasTag, algorithms: "openssh" })

describe.skipIf(ssh === undefined)("SshConfig against ssh -G", () => {
  const stats = { compared: 0, rejected: 0 }
  afterAll(() => console.log(`ssh -G comparisons: ${stats.compared} agreeing resolutions, ${stats.rejected} configurations both rejected`))

  it("resolves generated configurations as ssh -G does", { timeout: 120_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(corpus, fc.constantFrom(...hostNames), fc.option(userName, { nil: undefined }), fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined }), async (c, host, user, port) => {
        const { file, home } = writeCorpus(dir, c)
        const extra = [...(user === undefined ? [] : ["-l", user]), ...(port === undefined ? [] : ["-p", String(port)])]
        const theirs = sshG(file, host, extra, home)
        let mine: ReadonlyArray<string> | Error
        try {
          mine = await ours(file, home, host, { ...(user === undefined ? {} : { user }), ...(port === undefined ? {} : { port }) })
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
        expect(mine, describeCorpus(c)).toEqual(expected)
        stats.compared++
      }),
      { seed: 20261207, numRuns: 300 }
    )
  })
})
