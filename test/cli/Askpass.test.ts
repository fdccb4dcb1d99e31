/**
 * Passphrase prompting: OpenSSH's decision table (terminal, display,
 * SSH_ASKPASS_REQUIRE), and a real askpass script run with the prompt.
 */
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import * as Askpass from "../../src/cli/Askpass.ts"

const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-ssh-askpass-"))
afterAll(() => Fs.rmSync(dir, { recursive: true, force: true }))

const script = (name: string, body: string): string => {
  const file = Path.join(dir, name)
  Fs.writeFileSync(file, `#!/bin/sh\n${body}\n`, { mode: 0o755 })
  return file
}

/** Prints the passphrase and records the prompt it was given. */
const promptLog = Path.join(dir, "prompt.log")
const good = script("good", `printf '%s' "$1" > '${promptLog}'\nprintf 'hunter2\\n'`)
const cancel = script("cancel", "exit 1")
const empty = script("empty", "printf '\\n'")

describe("promptMethod (readpass.c)", () => {
  it.each([
    [{}, true, "terminal"],
    [{}, false, "unavailable"],
    [{ DISPLAY: ":0" }, true, "terminal"],
    [{ DISPLAY: ":0" }, false, "askpass"],
    [{ WAYLAND_DISPLAY: "wayland-0" }, false, "askpass"],
    [{ DISPLAY: "" }, false, "unavailable"],
    [{ SSH_ASKPASS_REQUIRE: "force" }, true, "askpass"],
    [{ SSH_ASKPASS_REQUIRE: "FORCE" }, false, "askpass"],
    [{ SSH_ASKPASS_REQUIRE: "prefer" }, true, "terminal"],
    [{ SSH_ASKPASS_REQUIRE: "prefer", DISPLAY: ":0" }, true, "askpass"],
    [{ SSH_ASKPASS_REQUIRE: "never", DISPLAY: ":0" }, false, "unavailable"],
    [{ SSH_ASKPASS_REQUIRE: "never", DISPLAY: ":0" }, true, "terminal"],
    [{ SSH_ASKPASS_REQUIRE: "bogus", DISPLAY: ":0" }, false, "askpass"]
  ] as const)("%o with terminal=%s → %s", (env, hasTerminal, expected) => {
    expect(Askpass.promptMethod(env, hasTerminal)).toBe(expected)
  })

  it("askpassProgram is SSH_ASKPASS or OpenSSH's default", () => {
    expect(Askpass.askpassProgram({ SSH_ASKPASS: "/opt/pw" })).toBe("/opt/pw")
    expect(Askpass.askpassProgram({})).toBe("/usr/bin/ssh-askpass")
  })
})

describe("the askpass program", () => {
  it("SSH_ASKPASS_REQUIRE=force runs the script with the prompt and returns its first line", async () => {
    const env = { SSH_ASKPASS_REQUIRE: "force", SSH_ASKPASS: good, PATH: process.env.PATH }
    const answer = await Effect.runPromise(Askpass.keyPassphrase("/home/me/.ssh/id_ed25519", 1, { env, hasTerminal: true }))
    expect(answer === undefined ? undefined : Redacted.value(answer)).toBe("hunter2")
    expect(Fs.readFileSync(promptLog, "utf8")).toBe("Enter passphrase for key '/home/me/.ssh/id_ed25519': ")
    await Effect.runPromise(Askpass.keyPassphrase("k", 2, { env, hasTerminal: true }))
    expect(Fs.readFileSync(promptLog, "utf8")).toBe("Bad passphrase, try again for k: ")
  })

  it("a cancelled program (non-zero exit) or an empty answer is no passphrase", async () => {
    for (const program of [cancel, empty]) {
      const env = { SSH_ASKPASS_REQUIRE: "force", SSH_ASKPASS: program }
      expect(await Effect.runPromise(Askpass.readPassphrase("? ", { env, hasTerminal: false }))).toBeUndefined()
    }
  })

  it("no terminal and no askpass allowed is no passphrase, without running anything", async () => {
    const env = { SSH_ASKPASS: good, SSH_ASKPASS_REQUIRE: "never" }
    Fs.rmSync(promptLog, { force: true })
    expect(await Effect.runPromise(Askpass.readPassphrase("? ", { env, hasTerminal: false }))).toBeUndefined()
    expect(Fs.existsSync(promptLog)).toBe(false)
  })

  it("a program that cannot be started is a typed failure", async () => {
    const env = { SSH_ASKPASS_REQUIRE: "force", SSH_ASKPASS: Path.join(dir, "does-not-exist") }
    const error = await Effect.runPromise(Effect.flip(Askpass.readPassphrase("? ", { env })))
    expect(error.reason._tag).toBe("AuthFailed")
  })
})
