import { describe, expect, it } from "vitest"
import * as fc from "fast-check"
import { forTerminal, logField, terminalBlock, terminalLine } from "../../src/internal/terminalText.ts"

/** C0 controls, DEL, C1 controls (as UTF-16 code units of a decoded string). */
const controls = /[\u0000-\u001f\u007f-\u009f]/
const bidiAndSeparators = /[\u202a-\u202e\u2066-\u2069\u2028\u2029]/
const loneSurrogate = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/

const anyText = fc.oneof(
  fc.string({ unit: "binary", maxLength: 64 }),
  fc.string({ unit: fc.integer({ min: 0, max: 0x2100 }).map((n) => String.fromCharCode(n)), maxLength: 64 }),
  fc.array(fc.constantFrom("\x1b[2J", "\x1b]52;c;ZXZpbA==\x07", "\x9b31m", "\r", "\n", "\r\n", "\t", "\x00", "\u202e", "é", "😀", "\\", "\ud800"), { maxLength: 12 })
    .map((parts) => parts.join(""))
)

describe("forTerminal", () => {
  it("escapes the attacks of a hostile banner in vis(3) octal", () => {
    expect(forTerminal("\x1b[2J\x1b[H")).toBe("\\033[2J\\033[H")
    expect(forTerminal("\x1b]52;c;ZXZpbA==\x07")).toBe("\\033]52;c;ZXZpbA==\\007")
    expect(forTerminal("\x1b]0;title\x1b\\")).toBe("\\033]0;title\\033\\")
    // C1 CSI (U+009B) is two UTF-8 bytes: both escaped, as OpenSSH does
    expect(forTerminal("\u009b2J")).toBe("\\302\\2332J")
    expect(forTerminal("\x7f\x00")).toBe("\\177\\000")
    expect(forTerminal("abc\u202edef")).toBe("abc\\342\\200\\256def")
  })

  it("keeps printable UTF-8, escapes invalid UTF-8 byte by byte", () => {
    expect(forTerminal("grüße 😀 日本")).toBe("grüße 😀 日本")
    expect(forTerminal(new TextEncoder().encode("grüße 😀"))).toBe("grüße 😀")
    expect(forTerminal(Uint8Array.of(0x66, 0xff, 0xc3))).toBe("f\\377\\303")
    // overlong "/" and an encoded surrogate are not UTF-8
    expect(forTerminal(Uint8Array.of(0xc0, 0xaf))).toBe("\\300\\257")
    expect(forTerminal(Uint8Array.of(0xed, 0xa0, 0x80))).toBe("\\355\\240\\200")
    expect(forTerminal(Uint8Array.of(0xe2, 0x82))).toBe("\\342\\202")
    expect(forTerminal("\ud800x")).toBe("\\355\\240\\200x")
  })

  it("lines escape line ends and tabs; blocks keep LF, CR LF and tab, never a bare CR", () => {
    expect(terminalLine("a\nb\tc\r\nd")).toBe("a\\012b\\011c\\015\\012d")
    expect(terminalBlock("a\nb\tc\r\nd")).toBe("a\nb\tc\r\nd")
    expect(terminalBlock("Password: \rroot# ")).toBe("Password: \\015root# ")
  })

  it("cuts a log field after 256 characters and says so", () => {
    expect(logField("x".repeat(300))).toBe(`${"x".repeat(256)}...(44 more characters)`)
    expect(logField("root\x1b[2K\rAccepted")).toBe("root\\033[2K\\015Accepted")
  })

  it("property: no control character, ESC, bidi override or lone surrogate survives (line and block)", () => {
    fc.assert(fc.property(anyText, (text) => {
      const line = terminalLine(text)
      expect(line).not.toMatch(controls)
      expect(line).not.toMatch(bidiAndSeparators)
      expect(line).not.toMatch(loneSurrogate)
      const block = terminalBlock(text)
      // only LF, tab, and CR directly before LF
      expect(block.replace(/\r\n/g, "\n").replace(/[\n\t]/g, "")).not.toMatch(controls)
      expect(block).not.toMatch(bidiAndSeparators)
    }), { numRuns: 2000 })
  })

  it("property: raw bytes never yield a control character", () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
      expect(terminalLine(bytes)).not.toMatch(controls)
      expect(terminalLine(bytes)).not.toMatch(loneSurrogate)
    }), { numRuns: 2000 })
  })

  it("property: printable ASCII and printable Unicode are unchanged", () => {
    const printable = fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((n) => String.fromCharCode(n)) })
    fc.assert(fc.property(printable, (text) => {
      expect(terminalLine(text)).toBe(text)
      expect(terminalBlock(text)).toBe(text)
      expect(terminalLine(new TextEncoder().encode(text))).toBe(text)
    }))
    const unicode = fc.string({ unit: "grapheme" }).filter((s) => !controls.test(s) && !bidiAndSeparators.test(s))
    fc.assert(fc.property(unicode, (text) => {
      expect(terminalLine(text)).toBe(text)
      expect(terminalLine(new TextEncoder().encode(text))).toBe(text)
    }))
  })

  it("property: sanitizing twice changes nothing more (the output is printable)", () => {
    fc.assert(fc.property(anyText, (text) => {
      const once = terminalLine(text)
      expect(terminalLine(once)).toBe(once)
      const block = terminalBlock(text)
      expect(terminalBlock(block)).toBe(block)
    }), { numRuns: 2000 })
  })

  it("property: strings and their UTF-8 bytes print the same", () => {
    fc.assert(fc.property(fc.string({ unit: "grapheme-composite" }), (text) => {
      expect(terminalLine(new TextEncoder().encode(text))).toBe(terminalLine(text))
    }))
  })
})
