/**
 * `effect-ssh keygen`: argument parsing, the files it writes (modes,
 * formats, encryption), refusing to overwrite, the command's exit codes,
 * and `ssh-keygen -y` reading every key type we write, encrypted ones too.
 */
import * as Effect from "effect/Effect"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import * as PrivateKey from "../../src/Auth/PrivateKey.ts"
import * as PublicKey from "../../src/Auth/PublicKey.ts"
import { UsageError } from "../../src/cli/Args.ts"
import * as Keygen from "../../src/cli/Keygen.ts"
import { opensshPaths } from "../interop/sshd.ts"

const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-ssh-keygen-"))
afterAll(() => Fs.rmSync(dir, { recursive: true, force: true }))
let counter = 0
const target = (name: string) => Path.join(dir, `${name}-${counter++}`)

const run = (args: Keygen.KeygenArgs) => Effect.runPromise(Effect.provide(Keygen.runKeygen(args), NodeFileSystem.layer))
const parsed = (argv: ReadonlyArray<string>): Keygen.KeygenArgs => {
  const args = Keygen.parseKeygen(argv)
  if (args instanceof UsageError) throw new Error(args.message)
  return args
}
const mode = (file: string) => Fs.statSync(file).mode & 0o777

const mainScript = Path.resolve("src/cli/main.ts")
const cli = (args: ReadonlyArray<string>) =>
  ChildProcess.spawnSync(process.execPath, [mainScript, "keygen", ...args], { encoding: "utf8", timeout: 60_000 })

describe("parseKeygen", () => {
  it.each([
    [["-f", "k"], "ssh-ed25519", undefined],
    [["-t", "ed25519", "-f", "k"], "ssh-ed25519", undefined],
    [["-t", "ecdsa", "-f", "k"], "ecdsa-sha2-nistp256", undefined],
    [["-t", "ecdsa", "-b", "384", "-f", "k"], "ecdsa-sha2-nistp384", 384],
    [["-t", "ECDSA", "-b", "521", "-f", "k"], "ecdsa-sha2-nistp521", 521],
    [["-t", "rsa", "-f", "k"], "ssh-rsa", undefined],
    [["-t", "rsa", "-b", "4096", "-f", "k"], "ssh-rsa", 4096],
    [["-t", "ssh-ed25519", "-f", "k"], "ssh-ed25519", undefined]
  ] as const)("%j → %s", (argv, type, bits) => {
    expect(parsed(argv)).toMatchObject({ type, bits, file: "k", passphrase: "" })
  })

  it("takes -N and -C", () => {
    expect(parsed(["-t", "ed25519", "-N", "pw", "-C", "me@here", "-f", "k"])).toMatchObject({ passphrase: "pw", comment: "me@here" })
  })

  it.each([
    [[], /-f FILE is required/],
    [["-t", "dsa", "-f", "k"], /unknown key type/],
    [["-t", "rsa", "-b", "1024", "-f", "k"], /2048 to 16384/],
    [["-t", "ecdsa", "-b", "255", "-f", "k"], /256, 384 or 521/],
    [["-t", "ed25519", "-b", "256", "-f", "k"], /fixed size/],
    [["-b", "x", "-f", "k"], /bad -b/],
    [["-f"], /needs a value/],
    [["-f", "a", "-f", "b"], /twice/],
    [["-y", "-f", "k"], /unknown argument/]
  ] as const)("%j is a usage error", (argv, message) => {
    const result = Keygen.parseKeygen(argv)
    expect(result).toBeInstanceOf(UsageError)
    expect((result as UsageError).message).toMatch(message)
  })
})

describe("runKeygen", () => {
  it("writes FILE (0600, openssh-key-v1) and FILE.pub (0644) for the same key", async () => {
    const file = target("id_ed25519")
    const result = await run(parsed(["-t", "ed25519", "-C", "deploy@ci", "-f", file]))
    expect(result._tag).toBe("Written")
    expect(mode(file)).toBe(0o600)
    expect(mode(`${file}.pub`)).toBe(0o644)
    const text = Fs.readFileSync(file, "utf8")
    expect(text.startsWith("-----BEGIN OPENSSH PRIVATE KEY-----\n")).toBe(true)
    const key = PrivateKey.parse(text)
    expect(key.comment).toBe("deploy@ci")
    const pub = Fs.readFileSync(`${file}.pub`, "utf8")
    expect(pub).toBe(`${PublicKey.toOpenSsh(key.publicKey, { comment: "deploy@ci" })}\n`)
    expect(Keygen.report(result as Extract<Keygen.KeygenResult, { _tag: "Written" }>)).toContain(PublicKey.fingerprint(key.publicKey))
  })

  it("-N encrypts (the passphrase is needed to read the key)", async () => {
    const file = target("id_ecdsa")
    await run(parsed(["-t", "ecdsa", "-b", "384", "-N", "open sesame", "-f", file]))
    const text = Fs.readFileSync(file, "utf8")
    expect(() => PrivateKey.parse(text)).toThrow()
    expect(PrivateKey.parse(text, "open sesame").type).toBe("ecdsa-sha2-nistp384")
  })

  it("refuses to overwrite FILE or FILE.pub", async () => {
    const file = target("exists")
    Fs.writeFileSync(file, "precious")
    expect(await run(parsed(["-f", file]))).toEqual({ _tag: "Exists", file })
    expect(Fs.readFileSync(file, "utf8")).toBe("precious")
    const onlyPub = target("pub-exists")
    Fs.writeFileSync(`${onlyPub}.pub`, "precious")
    expect(await run(parsed(["-f", onlyPub]))).toEqual({ _tag: "Exists", file: `${onlyPub}.pub` })
    expect(Fs.existsSync(onlyPub)).toBe(false)
  })
})

describe("effect-ssh keygen (the command)", () => {
  it("exit 0 and ssh-keygen's messages; 2 with \"exists\" the second time; 2 on usage errors", () => {
    const file = target("cli")
    const first = cli(["-t", "ed25519", "-C", "c", "-f", file])
    expect(first.status).toBe(0)
    expect(first.stdout).toMatch(new RegExp(`Your identification has been saved in ${file}\n`))
    expect(first.stdout).toMatch(/The key fingerprint is:\nSHA256:\S+ c\n/)
    const again = cli(["-t", "ed25519", "-f", file])
    expect(again.status).toBe(2)
    expect(again.stderr).toBe(`effect-ssh: ${file} exists\n`)
    const usage = cli(["-t", "dsa", "-f", target("x")])
    expect(usage.status).toBe(2)
    expect(usage.stderr).toMatch(/usage: effect-ssh keygen/)
  })
})

const sshKeygen = opensshPaths().sshKeygen

describe.skipIf(sshKeygen === undefined)("ssh-keygen -y reads the keys we write", () => {
  const cases: ReadonlyArray<readonly [string, ReadonlyArray<string>]> = [
    ["ed25519", ["-t", "ed25519"]],
    ["ecdsa 256", ["-t", "ecdsa", "-b", "256"]],
    ["ecdsa 384", ["-t", "ecdsa", "-b", "384"]],
    ["ecdsa 521", ["-t", "ecdsa", "-b", "521"]],
    ["rsa 2048", ["-t", "rsa", "-b", "2048"]]
  ]
  for (const [name, flags] of cases) {
    for (const passphrase of ["", "pass phrase"]) {
      it(`${name}${passphrase === "" ? "" : " encrypted"}`, async () => {
        const file = target(name.replace(" ", ""))
        await run(parsed([...flags, "-N", passphrase, "-C", "ours", "-f", file]))
        const y = ChildProcess.spawnSync(sshKeygen!, ["-y", "-P", passphrase, "-f", file], { encoding: "utf8" })
        expect(y.stderr).toBe("")
        expect(y.status).toBe(0)
        const fields = (line: string) => line.trim().split(" ").slice(0, 2).join(" ")
        expect(fields(y.stdout)).toBe(fields(Fs.readFileSync(`${file}.pub`, "utf8")))
        if (passphrase !== "") {
          const wrong = ChildProcess.spawnSync(sshKeygen!, ["-y", "-P", "not it", "-f", file], { encoding: "utf8" })
          expect(wrong.status).not.toBe(0)
        }
      })
    }
  }
})
