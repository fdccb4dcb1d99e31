import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import { fromHex, toHex } from "../../src/internal/bytes.ts"
import * as R from "../../src/Channel/Requests.ts"
import { ProtocolError } from "../../src/SshError.ts"
import { build } from "../../src/Wire/Writer.ts"
import { name, text, uint32 } from "../Wire/arbitraries.ts"
import { protocolError, returnsOrProtocolError } from "../Wire/throws.ts"

/** Terminal modes as the encoder keeps them: opcodes 1..159 with uint32 values. */
const modes = fc.dictionary(
  fc.integer({ min: 1, max: 159 }).map(String),
  uint32,
  { maxKeys: 10 }
).map((record) => Object.fromEntries(Object.entries(record).map(([k, v]) => [Number(k), v])) as Record<number, number>)

describe("terminal modes (RFC 4254 §8)", () => {
  it("encodes opcode, uint32 value pairs in opcode order, then TTY_OP_END", () => {
    expect(toHex(R.encodeModes({ [R.TerminalMode.ECHO]: 0, [R.TerminalMode.VINTR]: 3 }))).toBe(
      "01" + "00000003" + "35" + "00000000" + "00"
    )
    expect(toHex(R.encodeModes({}))).toBe("00")
    expect(toHex(R.encodeModes({ [R.TerminalMode.TTY_OP_OSPEED]: 38400 }))).toBe("81" + "00009600" + "00")
  })

  it("drops opcodes outside 1..159, whose argument size the receiver could not know", () => {
    expect(toHex(R.encodeModes({ 0: 1, 160: 2, 255: 3, 53: 1 }))).toBe("35" + "00000001" + "00")
  })

  it("decodeModes ∘ encodeModes = id", () => {
    fc.assert(fc.property(modes, (m) => {
      expect(R.decodeModes(R.encodeModes(m))).toEqual(m)
    }))
  })

  it("decoding stops at TTY_OP_END or at an opcode ≥ 160, and tolerates a missing end", () => {
    expect(R.decodeModes(fromHex("35" + "00000001" + "00" + "36" + "00000001"))).toEqual({ 53: 1 })
    expect(R.decodeModes(fromHex("35" + "00000001" + "a0" + "ffffffff"))).toEqual({ 53: 1 })
    expect(R.decodeModes(fromHex("35" + "00000001"))).toEqual({ 53: 1 })
    expect(R.decodeModes(new Uint8Array(0))).toEqual({})
  })

  it("a truncated mode value is a ProtocolError", () => {
    expect(protocolError(() => R.decodeModes(fromHex("35" + "0000")))).toBeInstanceOf(ProtocolError)
  })
})

describe("pty-req", () => {
  it("has the RFC 4254 §6.2 layout", () => {
    const data = R.encodePtyRequest({ term: "vt100", columns: 80, rows: 24, modes: { [R.TerminalMode.ECHO]: 1 } })
    expect(toHex(data)).toBe(
      "000000057674313030" + "00000050" + "00000018" + "00000000" + "00000000" + "00000006" + "350000000100"
    )
  })

  it("decode ∘ encode = id (pixel sizes default to 0, modes to none)", () => {
    fc.assert(
      fc.property(
        fc.record(
          { term: text, columns: uint32, rows: uint32, width: uint32, height: uint32, modes },
          { requiredKeys: ["term", "columns", "rows"] }
        ),
        (pty) => {
          expect(R.decodePtyRequest(R.encodePtyRequest(pty))).toEqual({
            term: pty.term,
            columns: pty.columns,
            rows: pty.rows,
            width: pty.width ?? 0,
            height: pty.height ?? 0,
            modes: pty.modes ?? {}
          })
        }
      )
    )
  })
})

describe("window-change", () => {
  it("decode ∘ encode = id", () => {
    fc.assert(fc.property(uint32, uint32, uint32, uint32, (columns, rows, width, height) => {
      expect(R.decodeWindowChange(R.encodeWindowChange({ columns, rows, width, height }))).toEqual({
        columns,
        rows,
        width,
        height
      })
    }))
    expect(R.decodeWindowChange(R.encodeWindowChange({ columns: 120, rows: 40 }))).toEqual({
      columns: 120,
      rows: 40,
      width: 0,
      height: 0
    })
  })

  it("rejects trailing bytes", () => {
    const data = fromHex(toHex(R.encodeWindowChange({ columns: 1, rows: 1 })) + "00")
    expect(protocolError(() => R.decodeWindowChange(data)).message).toBe("1 trailing bytes after window-change")
  })
})

describe("exec, subsystem, signal: a single string", () => {
  it("decode ∘ encode = id", () => {
    fc.assert(fc.property(text, (s) => {
      expect(R.decodeString(R.encodeString(s), "command")).toBe(s)
    }))
    expect(toHex(R.encodeString("ls"))).toBe("000000026c73")
    expect(toHex(R.encodeString(fromHex("ff")))).toBe("00000001ff")
  })

  it("rejects invalid UTF-8 and trailing bytes, naming the field", () => {
    expect(protocolError(() => R.decodeString(fromHex("00000001ff"), "command")).message).toBe("command is not valid UTF-8")
    expect(protocolError(() => R.decodeString(fromHex("000000016c00"), "subsystem")).message).toBe(
      "1 trailing bytes after subsystem"
    )
  })
})

describe("env", () => {
  it("decode ∘ encode = id", () => {
    fc.assert(fc.property(text, text, (n, value) => {
      expect(R.decodeEnv(R.encodeEnv(n, value))).toEqual({ name: n, value })
    }))
    expect(toHex(R.encodeEnv("A", "b"))).toBe("0000000141" + "0000000162")
  })
})

describe("exit-status", () => {
  it("decode ∘ encode = id", () => {
    fc.assert(fc.property(uint32, (code) => {
      expect(R.decodeExitStatus(R.encodeExitStatus(code))).toBe(code)
    }))
    expect(toHex(R.encodeExitStatus(255))).toBe("000000ff")
  })

  it("rejects a short or long payload", () => {
    expect(protocolError(() => R.decodeExitStatus(fromHex("000000")))).toBeInstanceOf(ProtocolError)
    expect(protocolError(() => R.decodeExitStatus(fromHex("0000000000"))).message).toBe("1 trailing bytes after exit-status")
  })
})

describe("exit-signal", () => {
  it("has the RFC 4254 §6.10 layout, with an empty language tag", () => {
    expect(toHex(R.encodeExitSignal({ signal: "KILL", coreDumped: true, message: "x" }))).toBe(
      "000000044b494c4c" + "01" + "0000000178" + "00000000"
    )
  })

  it("decode ∘ encode = id", () => {
    fc.assert(fc.property(name, fc.boolean(), text, (signal, coreDumped, message) => {
      expect(R.decodeExitSignal(R.encodeExitSignal({ signal, coreDumped, message }))).toEqual({
        signal,
        coreDumped,
        message
      })
    }))
  })

  it("accepts a peer that omits the language tag", () => {
    expect(R.decodeExitSignal(fromHex("000000045345475600" + "00000000"))).toEqual({
      signal: "SEGV",
      coreDumped: false,
      message: ""
    })
  })
})

describe("checkSignalName", () => {
  it("accepts RFC 4254 names, with or without SIG, and local name@domain extensions", () => {
    for (const [input, expected] of [
      ["TERM", "TERM"],
      ["SIGTERM", "TERM"],
      ["KILL", "KILL"],
      ["SIGUSR2", "USR2"],
      ["INFO@openssh.com", "INFO@openssh.com"]
    ] as const) {
      expect(R.checkSignalName(input)).toBe(expected)
    }
    for (const n of Object.keys(R.signalNumbers)) expect(R.checkSignalName(n)).toBe(n)
  })

  it("rejects unknown names, including Object.prototype members", () => {
    for (const n of ["FOO", "term", "", "SIG", "constructor", "toString", "__proto__", "SIGhasOwnProperty", "valueOf"]) {
      expect(protocolError(() => R.checkSignalName(n)).message).toBe(`unknown signal name ${JSON.stringify(n)}`)
    }
  })

  it("knows the POSIX numbers used for 128+n exit codes", () => {
    expect(R.signalNumbers).toMatchObject({ HUP: 1, INT: 2, KILL: 9, SEGV: 11, PIPE: 13, TERM: 15 })
  })
})

describe("garbage in → a value or a ProtocolError", () => {
  const decoders: ReadonlyArray<readonly [string, (data: Uint8Array) => unknown]> = [
    ["modes", R.decodeModes],
    ["pty-req", R.decodePtyRequest],
    ["window-change", R.decodeWindowChange],
    ["string", (d) => R.decodeString(d, "command")],
    ["env", R.decodeEnv],
    ["exit-status", R.decodeExitStatus],
    ["exit-signal", R.decodeExitSignal]
  ]

  it.each(decoders)("%s", (_, decode) => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 48 }), (data) => {
      returnsOrProtocolError(() => decode(data))
    }))
    // plausibly framed input reaches the deeper fields
    fc.assert(fc.property(fc.uint8Array({ maxLength: 8 }), fc.uint8Array({ maxLength: 40 }), (head, tail) => {
      returnsOrProtocolError(() => decode(build((w) => w.string(head).raw(tail))))
    }))
  })
})
