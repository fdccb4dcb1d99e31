/**
 * The pure parts of the interactive CLI: the escape-sequence scanner, the
 * pty/raw/escape plan (ssh's RequestTTY), the host-key answer, and the
 * flags (`-t`, `-tt`, `-T`, `-e`).
 */
import { describe, expect, it } from "vitest"
import { UsageError, parseEscapeChar, parseExec } from "../../src/cli/Args.ts"
import { judgeAnswer } from "../../src/cli/HostKeyPrompt.ts"
import * as SshConfig from "../../src/Config/SshConfig.ts"
import { planSession } from "../../src/cli/Shell.ts"
import { signalExitCode } from "../../src/cli/Signals.ts"
import {
  DEFAULT_ESCAPE_CHAR,
  type EscapeAction,
  type EscapeState,
  escapeCharName,
  escapeHelp,
  initialEscapeState,
  scanEscapes
} from "../../src/cli/Terminal.ts"

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** Actions as readable strings: sent text as is, others as <Tag>. */
const show = (actions: ReadonlyArray<EscapeAction>): Array<string> =>
  actions.map((a) => a._tag === "Send" ? decoder.decode(a.bytes) : `<${a._tag}>`)

/** Feeds the chunks in order, as keystrokes arrive. */
const scanAll = (chunks: ReadonlyArray<string>, escapeChar = DEFAULT_ESCAPE_CHAR) => {
  let state: EscapeState = initialEscapeState
  const actions: Array<EscapeAction> = []
  for (const chunk of chunks) {
    const scanned = scanEscapes(state, encoder.encode(chunk), escapeChar)
    state = scanned.state
    actions.push(...scanned.actions)
  }
  return { state, actions: show(actions) }
}

describe("scanEscapes", () => {
  it("~. at the start of the session or after a newline disconnects, dropping what follows", () => {
    expect(scanAll(["~."]).actions).toEqual(["<Disconnect>"])
    expect(scanAll(["ls\r~.rm -rf /\r"]).actions).toEqual(["ls\r", "<Disconnect>"])
    expect(scanAll(["ls\n", "~", "."]).actions).toEqual(["ls\n", "<Disconnect>"])
  })

  it("an escape character in the middle of a line is plain text", () => {
    expect(scanAll(["echo ~.\r"]).actions).toEqual(["echo ~.\r"])
    expect(scanAll(["a", "~", "."]).actions).toEqual(["a", "~", "."])
  })

  it("~~ sends one ~ and ends the line start; ~x sends both", () => {
    expect(scanAll(["~~."]).actions).toEqual(["~."])
    expect(scanAll(["~x"]).actions).toEqual(["~x"])
    expect(scanAll(["~", "\r~."]).actions).toEqual(["~\r", "<Disconnect>"])
  })

  it("~? asks for help and stays at the start of a line", () => {
    expect(scanAll(["~?~."]).actions).toEqual(["<Help>", "<Disconnect>"])
    expect(scanAll(["~?x"]).actions).toEqual(["<Help>", "x"])
  })

  it("a held-back escape character waits across chunks", () => {
    const { state, actions } = scanAll(["\r~"])
    expect(actions).toEqual(["\r"])
    expect(state).toEqual({ atLineStart: true, pending: true })
  })

  it("another escape character (-e ^]) works the same, and ~ is then plain", () => {
    const ctrlBracket = 29
    expect(scanAll(["~.", "\r\x1d."], ctrlBracket).actions).toEqual(["~.", "\r", "<Disconnect>"])
    expect(escapeCharName(ctrlBracket)).toBe("^]")
    expect(escapeHelp(ctrlBracket)).toContain(" ^].   - terminate connection\r\n")
  })

  it("arbitrary bytes (Ctrl-C, escape sequences, UTF-8) pass unchanged", () => {
    const bytes = Uint8Array.from([3, 0x1b, 0x5b, 0x41, 0xc3, 0xa9, 0, 255])
    const { actions } = scanEscapes(initialEscapeState, bytes, DEFAULT_ESCAPE_CHAR)
    expect(actions).toEqual([{ _tag: "Send", bytes }])
  })
})

describe("planSession (RequestTTY)", () => {
  const plan = (input: Partial<Parameters<typeof planSession>[0]>) =>
    planSession({ command: undefined, noStdin: false, stdinIsTerminal: true, ...input })

  it("a shell on a terminal gets a pty, raw mode and ~ escapes", () => {
    expect(plan({})).toEqual({ pty: true, raw: true, forwardStdin: true, escapeChar: 0x7e, warning: undefined })
  })

  it("a command gets no pty unless -t; -T never", () => {
    expect(plan({ command: "ls" })).toMatchObject({ pty: false, raw: false, escapeChar: undefined })
    expect(plan({ command: "ls", requestTty: "yes" })).toMatchObject({ pty: true, raw: true, escapeChar: 0x7e })
    expect(plan({ requestTty: "no" })).toMatchObject({ pty: false, raw: false, escapeChar: undefined })
  })

  it("no terminal: no pty (with ssh's notice when one was asked for), unless -tt", () => {
    expect(plan({ stdinIsTerminal: false })).toMatchObject({ pty: false, warning: undefined })
    expect(plan({ stdinIsTerminal: false, requestTty: "yes" })).toMatchObject({
      pty: false,
      warning: "Pseudo-terminal will not be allocated because stdin is not a terminal."
    })
    expect(plan({ stdinIsTerminal: false, requestTty: "force" })).toMatchObject({ pty: true, raw: false, escapeChar: 0x7e })
    expect(plan({ noStdin: true })).toMatchObject({ pty: false, forwardStdin: false })
  })

  it("-e none turns escapes off, -e X picks another", () => {
    expect(plan({ escapeChar: "none" }).escapeChar).toBeUndefined()
    expect(plan({ escapeChar: 29 }).escapeChar).toBe(29)
  })
})

describe("flags", () => {
  const ok = (argv: ReadonlyArray<string>) => {
    const args = parseExec(argv)
    if (args instanceof UsageError) throw new Error(args.message)
    return args
  }

  it("-t, -tt, -T and RequestTTY", () => {
    expect(ok(["h"]).requestTty).toBeUndefined()
    expect(ok(["h"]).command).toBeUndefined()
    expect(ok(["-t", "h"]).requestTty).toBe("yes")
    expect(ok(["-tt", "h"]).requestTty).toBe("force")
    expect(ok(["-t", "-t", "h"]).requestTty).toBe("force")
    expect(ok(["-T", "h"]).requestTty).toBe("no")
    expect(ok(["-o", "RequestTTY=force", "h"]).requestTty).toBe("force")
    expect(ok(["-o", "RequestTTY=auto", "h"]).requestTty).toBeUndefined()
    expect(parseExec(["-o", "RequestTTY=maybe", "h"])).toBeInstanceOf(UsageError)
  })

  it("-e and EscapeChar", () => {
    expect(ok(["-e", "none", "h"]).escapeChar).toBe("none")
    expect(ok(["-e^]", "h"]).escapeChar).toBe(29)
    expect(ok(["-o", "EscapeChar=%", "h"]).escapeChar).toBe(37)
    expect(parseEscapeChar("ab")).toBeInstanceOf(UsageError)
  })

  it("NumberOfPasswordPrompts", () => {
    // the CLI's -o options are configuration lines: the resolution parses NumberOfPasswordPrompts, default 3
    const tries = (text: string) => SshConfig.resolve([SshConfig.parse(text, "-o")], "h", SshConfig.makeContext({ localUser: "me", homeDirectory: "/home/me" })).numberOfPasswordPrompts
    expect(tries("")).toBe(3)
    expect(tries("NumberOfPasswordPrompts 1")).toBe(1)
    expect(parseExec(["-o", "NumberOfPasswordPrompts=x", "h"])).toBeInstanceOf(UsageError)
  })
})

describe("the host-key answer", () => {
  const fp = "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s"
  it.each([
    ["yes", "yes"],
    ["  YES \t", "yes"],
    [fp, "yes"],
    [fp.toLowerCase(), "again"],
    ["no", "no"],
    ["", "no"],
    ["  ", "no"],
    ["y", "again"],
    ["yes please", "yes"]
  ] as const)("%j → %s", (answer, verdict) => {
    expect(judgeAnswer(answer, fp)).toBe(verdict)
  })
})

describe("signal exit codes", () => {
  it("128 + the signal number", () => {
    expect(signalExitCode("SIGINT")).toBe(130)
    expect(signalExitCode("SIGTERM")).toBe(143)
  })
})
