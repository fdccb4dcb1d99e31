/**
 * known_hosts on disk: appending (plain and hashed, modes, concurrent
 * appends), replacing and removing hosts with the other lines kept verbatim,
 * and interop with ssh-keygen (`-F` reads what we write, `-H` hashes what we
 * read).
 */
import * as fc from "fast-check"
import * as Effect from "effect/Effect"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import * as HostKeys from "../../src/Auth/HostKeys.ts"
import * as KnownHosts from "../../src/Auth/KnownHosts.ts"
import * as KnownHostsFile from "../../src/Auth/KnownHostsFile.ts"
import * as PrivateKey from "../../src/Auth/PrivateKey.ts"
import * as PublicKey from "../../src/Auth/PublicKey.ts"
import { opensshPaths } from "../interop/sshd.ts"
import { thrown } from "./fixtures.ts"
import { isSshErrorReason } from "../../src/SshError.ts"

const run = <A, E>(effect: Effect.Effect<A, E, import("effect/FileSystem").FileSystem>): Promise<A> =>
  Effect.runPromise(Effect.provide(effect, NodeFileSystem.layer))

const dirs: Array<string> = []
const tempDir = (): string => {
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-ssh-kh-"))
  dirs.push(dir)
  return dir
}
afterEach(() => {
  for (const dir of dirs.splice(0)) Fs.rmSync(dir, { recursive: true, force: true })
})

const [ed, ed2, ecdsa] = [
  PrivateKey.generate("ssh-ed25519").publicKey,
  PrivateKey.generate("ssh-ed25519").publicKey,
  PrivateKey.generate("ecdsa-sha2-nistp256").publicKey
] as const
const mode = (file: string) => Fs.statSync(file).mode & 0o777
const sshKeygen = opensshPaths().sshKeygen

describe("KnownHostsFile", () => {
  it("addHost creates the directory (0700) and the file (0600), then appends", async () => {
    const file = Path.join(tempDir(), "ssh", "known_hosts")
    await run(KnownHostsFile.addHost(file, "example.com", 22, ed))
    await run(KnownHostsFile.addHost(file, "Example.COM", 2222, ecdsa, { hashed: true }))
    expect(mode(Path.dirname(file))).toBe(0o700)
    expect(mode(file)).toBe(0o600)
    const lines = Fs.readFileSync(file, "utf8").split("\n")
    expect(lines).toHaveLength(3)
    expect(lines[0]).toBe(`example.com ${PublicKey.toOpenSsh(ed, { comment: "" })}`)
    expect(lines[1]).toMatch(/^\|1\|[A-Za-z0-9+/]{27}=\|[A-Za-z0-9+/]{27}= ecdsa-sha2-nistp256 /)
    expect(lines[2]).toBe("")
    const { entries, errors } = await run(KnownHostsFile.read(file))
    expect(errors).toEqual([])
    expect(KnownHosts.lookup(entries, "example.com", 2222).keys.map((k) => k.type)).toEqual(["ecdsa-sha2-nistp256"])
    expect(KnownHosts.lookup(entries, "example.com", 22).keys.map((k) => k.type)).toEqual(["ssh-ed25519"])
  })

  it("a missing file reads as empty; a file without a final newline gets one before the new line", async () => {
    const file = Path.join(tempDir(), "known_hosts")
    expect(await run(KnownHostsFile.read(file))).toEqual({ entries: [], errors: [] })
    Fs.writeFileSync(file, "# no newline at the end", { mode: 0o644 })
    await run(KnownHostsFile.addHost(file, "a", 22, ed))
    expect(Fs.readFileSync(file, "utf8")).toBe(`# no newline at the end\na ${PublicKey.toOpenSsh(ed, { comment: "" })}\n`)
    expect(mode(file)).toBe(0o644)
  })

  it("concurrent appends keep every line", async () => {
    const file = Path.join(tempDir(), "known_hosts")
    await run(Effect.forEach(
      Array.from({ length: 40 }, (_, i) => `host${i}.example`),
      (host) => KnownHostsFile.addHost(file, host, 22, ed),
      { concurrency: "unbounded" }
    ))
    const { entries } = await run(KnownHostsFile.read(file))
    expect(entries).toHaveLength(40)
  })

  it("replaceHost swaps the host's key of that type in place of the old line, keeping comments, markers and other hosts", async () => {
    const file = Path.join(tempDir(), "known_hosts")
    const line = (host: string, key: PublicKey.PublicKey) => `${host} ${PublicKey.toOpenSsh(key, { comment: "" })}`
    const original = [
      "# my hosts",
      line("a.example,b.example", ed),
      line("a.example", ecdsa),
      `@revoked a.example ${PublicKey.toOpenSsh(ed2, { comment: "" })}`,
      KnownHosts.formatLine("a.example", 22, ed, { hashed: true }),
      "garbage line that does not parse",
      line("c.example", ed),
      ""
    ].join("\n")
    Fs.writeFileSync(file, original, { mode: 0o640 })
    await run(KnownHostsFile.replaceHost(file, "a.example", 22, ed2))
    const after = Fs.readFileSync(file, "utf8").split("\n")
    expect(after).toEqual([
      "# my hosts",
      line("b.example", ed),
      line("a.example", ecdsa),
      `@revoked a.example ${PublicKey.toOpenSsh(ed2, { comment: "" })}`,
      "garbage line that does not parse",
      line("c.example", ed),
      line("a.example", ed2),
      ""
    ])
    expect(mode(file)).toBe(0o640)
    expect(Fs.readdirSync(Path.dirname(file))).toEqual(["known_hosts"])
  })

  it("removeHost drops every line of the host (like ssh-keygen -R) and nothing else", async () => {
    const file = Path.join(tempDir(), "known_hosts")
    await run(KnownHostsFile.addHost(file, "a.example", 22, ed))
    await run(KnownHostsFile.addHost(file, "a.example", 22, ecdsa, { hashed: true }))
    await run(KnownHostsFile.addHost(file, "b.example", 22, ed))
    await run(KnownHostsFile.removeHost(file, "a.example", 22))
    const { entries } = await run(KnownHostsFile.read(file))
    expect(entries.map((e) => e.hosts)).toEqual([{ _tag: "Patterns", patterns: [{ pattern: "b.example", negated: false }] }])
  })

  it("withoutHost keeps negations and drops wildcard lines that match, as ssh-keygen -R", () => {
    const key = PublicKey.toOpenSsh(ed, { comment: "" })
    const text = `A.example,!bad.example,c.example ${key}\n*.example ${key}\nother ${key}`
    expect(KnownHostsFile.withoutHost(text, "a.example", 22)).toBe(`!bad.example,c.example ${key}\nother ${key}`)
    expect(KnownHostsFile.withoutHost(`[a.example]:2222,a.example ${key}\n`, "a.example", 2222)).toBe(`a.example ${key}\n`)
  })

  it("withoutHost on text is the identity when the host is absent", () => {
    fc.assert(
      fc.property(fc.array(fc.string(), { maxLength: 8 }), (lines) => {
        const text = lines.join("\n")
        return KnownHostsFile.withoutHost(text, "absent.invalid", 22) === text
      })
    )
  })
})

describe("mutated known_hosts lines", () => {
  const good = [
    `example.com,192.0.2.1 ${PublicKey.toOpenSsh(ed)}`,
    KnownHosts.formatLine("example.com", 2222, ecdsa, { hashed: true }),
    `@revoked * ${PublicKey.toOpenSsh(ed2)}`,
    `@cert-authority *.example.com ${PublicKey.toOpenSsh(ecdsa)}`
  ].join("\n")

  it("parse, classify and withoutHost never throw; unusable lines become errors", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 127 })), { minLength: 1, maxLength: 6 }),
        (edits) => {
          const chars = [...good]
          for (const [at, code] of edits) chars[at % chars.length] = String.fromCharCode(code)
          const text = chars.join("")
          const error = thrown(() => {
            const { entries, errors } = KnownHosts.parse(text)
            for (const e of errors) if (typeof e.message !== "string" || e.line < 1) throw new Error("bad error record")
            HostKeys.classify(entries, { host: "example.com", port: 2222, key: ed, algorithm: "ssh-ed25519" })
            KnownHostsFile.withoutHost(text, "example.com", 22)
          })
          return error === undefined || isSshErrorReason(error)
        }
      ),
      { numRuns: 500 }
    )
  })
})

describe.skipIf(sshKeygen === undefined)("known_hosts interop with ssh-keygen", () => {
  const keygen = (args: ReadonlyArray<string>) =>
    ChildProcess.spawnSync(sshKeygen!, args, { encoding: "utf8" })

  it("ssh-keygen -F finds hosts we wrote, plain and hashed", async () => {
    const file = Path.join(tempDir(), "known_hosts")
    await run(KnownHostsFile.addHost(file, "plain.example", 22, ed))
    await run(KnownHostsFile.addHost(file, "hashed.example", 2222, ecdsa, { hashed: true }))
    const plain = keygen(["-F", "plain.example", "-f", file])
    expect(plain.status).toBe(0)
    expect(plain.stdout).toContain(PublicKey.toOpenSsh(ed, { comment: "" }))
    const hashed = keygen(["-F", "[hashed.example]:2222", "-f", file])
    expect(hashed.status).toBe(0)
    expect(hashed.stdout).toContain(PublicKey.toOpenSsh(ecdsa, { comment: "" }).split(" ")[1])
    expect(keygen(["-F", "other.example", "-f", file]).status).not.toBe(0)
  })

  it("files hashed by ssh-keygen -H are read by us", async () => {
    const file = Path.join(tempDir(), "known_hosts")
    Fs.writeFileSync(file, [
      `alpha.example ${PublicKey.toOpenSsh(ed)}`,
      `[beta.example]:2200,192.0.2.7 ${PublicKey.toOpenSsh(ecdsa)}`,
      ""
    ].join("\n"))
    expect(keygen(["-H", "-f", file]).status).toBe(0)
    const { entries, errors } = await run(KnownHostsFile.read(file))
    expect(errors).toEqual([])
    expect(entries.every((e) => e.hosts._tag === "Hashed")).toBe(true)
    expect(KnownHosts.lookup(entries, "alpha.example", 22).keys).toHaveLength(1)
    expect(KnownHosts.lookup(entries, "beta.example", 2200).keys.map((k) => k.type)).toEqual(["ecdsa-sha2-nistp256"])
    expect(KnownHosts.lookup(entries, "192.0.2.7", 22).keys).toHaveLength(1)
    expect(KnownHosts.lookup(entries, "gamma.example", 22).keys).toHaveLength(0)
  })

  it("ssh-keygen -R accepts our file and we read what it leaves", async () => {
    const file = Path.join(tempDir(), "known_hosts")
    await run(KnownHostsFile.addHost(file, "a.example", 22, ed, { hashed: true }))
    await run(KnownHostsFile.addHost(file, "b.example", 22, ecdsa))
    expect(keygen(["-R", "a.example", "-f", file]).status).toBe(0)
    const { entries } = await run(KnownHostsFile.read(file))
    expect(entries.map((e) => e.key.type)).toEqual(["ecdsa-sha2-nistp256"])
  })
})
