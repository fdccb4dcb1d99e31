/**
 * The CLI's questions, through a real terminal (tmux) and without one: the
 * host-key prompt of `StrictHostKeyChecking ask` (the default), the password
 * prompt with `NumberOfPasswordPrompts` tries, SSH_ASKPASS and BatchMode.
 */
import * as Effect from "effect/Effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as HostKeyPrompt from "../../src/cli/HostKeyPrompt.ts"
import * as PrivateKey from "../../src/Auth/PrivateKey.ts"
import * as KnownHosts from "../../src/Auth/KnownHosts.ts"
import { runScoped } from "../helpers.ts"
import * as PublicKey from "../../src/Auth/PublicKey.ts"
import {
  type Fixture,
  type Pane,
  PASSWORD,
  clientEnv,
  hostKey,
  runCli,
  startPane,
  startServer,
  tmuxAvailable
} from "./terminalFixtures.ts"

const fingerprint = PublicKey.fingerprint(hostKey.publicKey)
const QUESTION = "Are you sure you want to continue connecting (yes/no/[fingerprint])? "

describe.skipIf(!tmuxAvailable())("host-key prompt", () => {
  let fixture: Fixture
  const panes: Array<Pane> = []
  let n = 0
  beforeAll(async () => {
    fixture = await startServer()
  })
  afterAll(async () => {
    panes.forEach((p) => p.kill())
    await fixture.close()
  })
  /** A fresh known_hosts path for each case. */
  const knownHostsFile = () => Path.join(fixture.dir, `kh-${++n}`)
  const connect = (knownHosts: string) => {
    const pane = startPane(
      ["exec", "-p", String(fixture.port), "-i", fixture.keyFile, "--known-hosts", knownHosts, "alice@127.0.0.1", "echo", "connected"],
      clientEnv(fixture)
    )
    panes.push(pane)
    return pane
  }

  it("unknown host: ssh's question; yes connects and records the key", async () => {
    const kh = knownHostsFile()
    const pane = connect(kh)
    const screen = await pane.waitFor(/\(yes\/no\/\[fingerprint\]\)\? $/m)
    expect(screen).toContain(`The authenticity of host '[127.0.0.1]:${fixture.port} ([127.0.0.1]:${fixture.port})' can't be established.`)
    expect(screen).toContain(`ED25519 key fingerprint is ${fingerprint}.`)
    expect(screen).toContain(QUESTION.trimEnd())
    pane.type("yes")
    pane.send("Enter")
    const result = await pane.result()
    expect(result.screen).toContain(`Warning: Permanently added '[127.0.0.1]:${fixture.port}' (ED25519) to the list of known hosts.`)
    expect(result.screen).toMatch(/^connected$/m)
    expect(result.code).toBe(0)
    expect(Fs.readFileSync(kh, "utf8")).toBe(`[127.0.0.1]:${fixture.port} ${PublicKey.toOpenSsh(hostKey.publicKey)}\n`)
  })

  it("no refuses (255) and records nothing", async () => {
    const kh = knownHostsFile()
    const pane = connect(kh)
    await pane.waitFor(/\(yes\/no\/\[fingerprint\]\)\? $/m)
    pane.type("no")
    pane.send("Enter")
    const result = await pane.result()
    expect(result.code).toBe(255)
    expect(result.screen).toContain("Host key verification failed.")
    expect(result.screen).not.toMatch(/^connected$/m)
    expect(Fs.existsSync(kh)).toBe(false)
  })

  it("anything else asks again; the fingerprint typed is accepted", async () => {
    const kh = knownHostsFile()
    const pane = connect(kh)
    await pane.waitFor(/\(yes\/no\/\[fingerprint\]\)\? $/m)
    pane.type("maybe")
    pane.send("Enter")
    await pane.waitFor(/Please type 'yes', 'no' or the fingerprint: $/m)
    pane.type(fingerprint)
    pane.send("Enter")
    const result = await pane.result()
    expect(result.code).toBe(0)
    expect(result.screen).toMatch(/^connected$/m)
    expect(Fs.readFileSync(kh, "utf8")).toContain(PublicKey.toOpenSsh(hostKey.publicKey))
  })

  it("a changed key is never asked about: ssh's warning, refused", async () => {
    const kh = knownHostsFile()
    const other = PrivateKey.generate("ssh-ed25519")
    Fs.writeFileSync(kh, `[127.0.0.1]:${fixture.port} ${PublicKey.toOpenSsh(other.publicKey)}\n`)
    const pane = connect(kh)
    const result = await pane.result()
    expect(result.code).toBe(255)
    expect(result.screen).toContain("@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @")
    expect(result.screen).toContain(`${fingerprint}.`)
    expect(result.screen).not.toContain("Are you sure")
  })

  it("without a terminal: refused, with the accept-new hint; accept-new then connects", async () => {
    const kh = knownHostsFile()
    const args = ["exec", "-p", String(fixture.port), "-i", fixture.keyFile, "--known-hosts", kh, "alice@127.0.0.1", "echo", "connected"]
    const refused = await runCli(args, clientEnv(fixture), { input: "yes\n" })
    expect(refused.code).toBe(255)
    expect(refused.stderr).toContain("-o StrictHostKeyChecking=accept-new")
    expect(refused.stderr).not.toContain("Are you sure")
    expect(refused.stdout).toBe("")
    const acceptNew = ["exec", "-o", "StrictHostKeyChecking=accept-new", ...args.slice(1)]
    const accepted = await runCli(acceptNew, clientEnv(fixture), { input: "" })
    expect(accepted).toMatchObject({ code: 0, stdout: "connected\n" })
  })
})

describe("password prompts", () => {
  let fixture: Fixture
  const panes: Array<Pane> = []
  beforeAll(async () => {
    fixture = await startServer({ passwordOnly: true })
  })
  afterAll(async () => {
    panes.forEach((p) => p.kill())
    await fixture.close()
  })
  const args = (extra: ReadonlyArray<string> = []) => [
    "exec",
    "-p",
    String(fixture.port),
    "--known-hosts",
    fixture.knownHosts,
    ...extra,
    "alice@127.0.0.1",
    "echo",
    "logged-in"
  ]
  const PROMPT = "alice@127.0.0.1's password: "
  const prompts = (screen: string) => screen.split(PROMPT).length - 1

  /** Answers each password prompt in turn, waiting for the n-th before typing. */
  const answer = async (pane: Pane, answers: ReadonlyArray<string>) => {
    for (let i = 0; i < answers.length; i++) {
      await pane.waitFor(new RegExp(`(${PROMPT.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}[^]*){${i + 1}}`))
      pane.type(answers[i]!)
      pane.send("Enter")
    }
  }

  it.skipIf(!tmuxAvailable())("wrong twice then right: logged in after 3 prompts, with ssh's retry line; nothing echoed", async () => {
    const pane = startPane(args(), clientEnv(fixture))
    panes.push(pane)
    await answer(pane, ["nope-1", "nope-2", PASSWORD])
    const result = await pane.result()
    expect(result.code).toBe(0)
    expect(result.screen).toMatch(/^logged-in$/m)
    expect(prompts(result.screen)).toBe(3)
    expect(result.screen.split("Permission denied, please try again.").length - 1).toBe(2)
    expect(result.screen).not.toContain("nope-")
    expect(result.screen).not.toContain(PASSWORD)
  })

  it.skipIf(!tmuxAvailable())("three wrong: exit 255 with ssh's Permission denied line", async () => {
    const pane = startPane(args(), clientEnv(fixture))
    panes.push(pane)
    await answer(pane, ["a", "b", "c"])
    const result = await pane.result()
    expect(result.code).toBe(255)
    expect(prompts(result.screen)).toBe(3)
    expect(result.screen).toMatch(/^alice@127\.0\.0\.1: Permission denied \(password\)\.$/m)
    expect(result.screen).not.toMatch(/^logged-in$/m)
  })

  it.skipIf(!tmuxAvailable())("Ctrl-C at the password prompt: exit 130, quiet, the terminal restored", async () => {
    const pane = startPane(args(), clientEnv(fixture))
    panes.push(pane)
    await pane.waitFor(/password: $/m)
    pane.type("half")
    pane.send("C-c")
    const result = await pane.result()
    expect(result.code).toBe(130)
    expect(result.screen).not.toContain("effect-ssh:")
    const flags = new Set(result.stty.split(/[\s;]+/))
    expect(flags.has("icanon") && flags.has("echo")).toBe(true)
  })

  /** An askpass program that logs its argument and prints `answers` in turn (the last one again when out). */
  const askpass = (name: string, answers: ReadonlyArray<string>) => {
    const log = Path.join(fixture.dir, `${name}.log`)
    const script = Path.join(fixture.dir, `${name}.sh`)
    const count = Path.join(fixture.dir, `${name}.count`)
    Fs.writeFileSync(count, "0")
    const cases = answers.map((a, i) => `  ${i}) echo '${a}' ;;`).join("\n")
    Fs.writeFileSync(
      script,
      `#!/bin/sh\nprintf '%s\\n' "$1" >> '${log}'\nn=$(cat '${count}')\necho $((n + 1)) > '${count}'\n` +
        `case $n in\n${cases}\n  *) echo '${answers.at(-1)}' ;;\nesac\n`,
      { mode: 0o755 }
    )
    return { script, calls: () => Fs.existsSync(log) ? Fs.readFileSync(log, "utf8").split("\n").filter((l) => l.length > 0) : [] }
  }

  it("SSH_ASKPASS with SSH_ASKPASS_REQUIRE=force answers, called with the prompt", async () => {
    const program = askpass("right", [PASSWORD])
    const result = await runCli(args(), clientEnv(fixture, { SSH_ASKPASS: program.script, SSH_ASKPASS_REQUIRE: "force" }), { input: "" })
    expect(result).toMatchObject({ code: 0, stdout: "logged-in\n", stderr: "" })
    expect(program.calls()).toEqual([PROMPT])
  })

  it("askpass wrong then right, and NumberOfPasswordPrompts=2 all wrong: the retry line, then Permission denied", async () => {
    const second = askpass("second", ["bad", PASSWORD])
    const ok = await runCli(args(), clientEnv(fixture, { SSH_ASKPASS: second.script, SSH_ASKPASS_REQUIRE: "force" }), { input: "" })
    expect(ok).toMatchObject({ code: 0, stdout: "logged-in\n", stderr: "Permission denied, please try again.\n" })
    expect(second.calls()).toEqual([PROMPT, PROMPT])

    const wrong = askpass("wrong", ["bad"])
    const denied = await runCli(
      args(["-o", "NumberOfPasswordPrompts=2"]),
      clientEnv(fixture, { SSH_ASKPASS: wrong.script, SSH_ASKPASS_REQUIRE: "force" }),
      { input: "" }
    )
    expect(denied.code).toBe(255)
    expect(denied.stderr).toBe("Permission denied, please try again.\nalice@127.0.0.1: Permission denied (password).\n")
    expect(wrong.calls()).toHaveLength(2)
  })

  it("BatchMode=yes asks nothing, even with askpass forced", async () => {
    const program = askpass("batch", [PASSWORD])
    const result = await runCli(
      args(["-o", "BatchMode=yes"]),
      clientEnv(fixture, { SSH_ASKPASS: program.script, SSH_ASKPASS_REQUIRE: "force" }),
      { input: "" }
    )
    expect(result.code).toBe(255)
    expect(result.stderr).toBe("alice@127.0.0.1: Permission denied (password).\n")
    expect(program.calls()).toEqual([])
  })

  it("no terminal and no askpass: no prompt, Permission denied", async () => {
    const result = await runCli(args(), clientEnv(fixture), { input: "" })
    expect(result.code).toBe(255)
    expect(result.stderr).toBe("alice@127.0.0.1: Permission denied (password).\n")
  })
})

describe("HostKeyPrompt.ask with injected answers", () => {
  const key = PrivateKey.generate("ssh-ed25519").publicKey
  const check = { host: "example.com", port: 2222, key, algorithm: "ssh-ed25519" }
  const setup = (answers: ReadonlyArray<string | undefined>, options: { readonly known?: string; readonly batchMode?: boolean } = {}) => {
    const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-ssh-hkp-"))
    const file = Path.join(dir, "known_hosts")
    if (options.known !== undefined) Fs.writeFileSync(file, options.known)
    const asked: Array<string> = []
    const written: Array<string> = []
    const policy = HostKeyPrompt.ask({
      files: [file],
      batchMode: options.batchMode,
      write: (text) => void written.push(text),
      confirm: (question) => Effect.sync(() => {
        asked.push(question)
        return answers[asked.length - 1]
      })
    })
    const verify = () => runScoped(Effect.result(policy.verify(check)))
    return { file, asked, written, verify, cleanup: () => Fs.rmSync(dir, { recursive: true, force: true }) }
  }

  it("unknown: asks again until yes, records, then trusts without asking", async () => {
    const t = setup(["perhaps", "YES"])
    const first = await t.verify()
    expect(first._tag).toBe("Success")
    expect(t.asked).toEqual([HostKeyPrompt.unknownHostQuestion("example.com", 2222, key), HostKeyPrompt.AGAIN])
    expect(t.asked[0]).toContain("The authenticity of host '[example.com]:2222' can't be established.")
    expect(t.written).toEqual(["Warning: Permanently added '[example.com]:2222' (ED25519) to the list of known hosts.\n"])
    expect(Fs.readFileSync(t.file, "utf8")).toBe(`${KnownHosts.formatLine("example.com", 2222, key)}\n`)
    expect((await t.verify())._tag).toBe("Success")
    expect(t.asked).toHaveLength(2)
    t.cleanup()
  })

  it("no, or no way to ask, or BatchMode: refused without recording", async () => {
    for (const [answers, batchMode, message] of [
      [["no"], false, "Host key verification failed."],
      [[undefined], false, "StrictHostKeyChecking=accept-new"],
      [["yes"], true, "StrictHostKeyChecking=accept-new"]
    ] as const) {
      const t = setup(answers, { batchMode })
      const result = await t.verify()
      expect(result._tag).toBe("Failure")
      if (result._tag === "Failure") {
        expect(result.failure.reason._tag).toBe("HostKeyRejected")
        expect(result.failure.reason.message).toContain(message)
      }
      expect(t.asked).toHaveLength(batchMode ? 0 : 1)
      expect(Fs.existsSync(t.file)).toBe(false)
      t.cleanup()
    }
  })

  it("known, changed and revoked keys are never asked about", async () => {
    const other = PrivateKey.generate("ssh-ed25519").publicKey
    const trusted = setup(["no"], { known: `${KnownHosts.formatLine("example.com", 2222, key)}\n` })
    expect((await trusted.verify())._tag).toBe("Success")
    const changed = setup(["yes"], { known: `${KnownHosts.formatLine("example.com", 2222, other)}\n` })
    const c = await changed.verify()
    expect(c._tag === "Failure" && c.failure.reason._tag).toBe("HostKeyChanged")
    expect(changed.written.join("")).toContain("REMOTE HOST IDENTIFICATION HAS CHANGED")
    const revoked = setup(["yes"], { known: `@revoked * ${PublicKey.toOpenSsh(key)}\n` })
    const r = await revoked.verify()
    expect(r._tag === "Failure" && r.failure.reason._tag).toBe("HostKeyRejected")
    for (const t of [trusted, changed, revoked]) {
      expect(t.asked).toEqual([])
      t.cleanup()
    }
  })
})
