import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import { toHex } from "../../src/internal/bytes.ts"
import { ProtocolError } from "../../src/SshError.ts"
import {
  MAX_PREAMBLE,
  MAX_VERSION_LINE,
  ourVersion,
  type VersionExchange,
  VersionReader,
  versionLine
} from "../../src/Transport/Version.ts"
import { protocolError } from "../Wire/throws.ts"

const ascii = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0))

/** Feeds the chunks one by one, calling `next` after each, as the transport does. */
const feed = (chunks: ReadonlyArray<Uint8Array>, options?: { readonly allowPreamble?: boolean }): VersionExchange | undefined => {
  const reader = new VersionReader(options)
  for (const chunk of chunks) {
    reader.push(chunk)
    const done = reader.next()
    if (done !== undefined) return done
  }
  return undefined
}

const plain = (e: VersionExchange | undefined) =>
  e === undefined ? undefined : { version: e.version, preamble: [...e.preamble], rest: toHex(e.rest) }

describe("VersionReader", () => {
  it("reads a CRLF-terminated line and keeps what follows as the packet stream", () => {
    const done = feed([ascii("SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13\r\n\x00\x00\x01\x0c")])
    expect(plain(done)).toEqual({ version: "SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13", preamble: [], rest: "0000010c" })
  })

  it("accepts a bare LF line end (RFC 4253 §4.2 compatibility)", () => {
    expect(plain(feed([ascii("SSH-2.0-dropbear_2022.83\n")]))).toEqual({
      version: "SSH-2.0-dropbear_2022.83",
      preamble: [],
      rest: ""
    })
  })

  it("keeps lines sent before the version line, CRLF or LF", () => {
    const done = feed([ascii("Welcome\r\n\r\nno CR here\nSSH-2.0-x\r\n")])
    expect(plain(done)).toEqual({ version: "SSH-2.0-x", preamble: ["Welcome", "", "no CR here"], rest: "" })
  })

  it("accepts SSH-1.99 (a server that also speaks SSH-2)", () => {
    expect(feed([ascii("SSH-1.99-OpenSSH_3.9\r\n")])?.version).toBe("SSH-1.99-OpenSSH_3.9")
  })

  it("rejects SSH-1.x and other protocol versions", () => {
    for (const line of ["SSH-1.5-OpenSSH_1.2\r\n", "SSH-3.0-x\r\n", "SSH-2.0\r\n", "SSH-\r\n"]) {
      expect(protocolError(() => feed([ascii(line)])).message).toMatch(/^unsupported protocol version/)
    }
  })

  it("rejects control characters inside the version line", () => {
    for (const line of ["SSH-2.0-a\tb\r\n", "SSH-2.0-a\x00\r\n", "SSH-2.0-x\r\r\n", "SSH-2.0-x\x7f\n"]) {
      expect(protocolError(() => feed([ascii(line)])).message).toBe("identification line contains control characters")
    }
  })

  it(`accepts a ${MAX_VERSION_LINE}-byte line (CR LF included) and rejects a longer one`, () => {
    const head = "SSH-2.0-"
    const exact = head + "a".repeat(MAX_VERSION_LINE - head.length - 2)
    expect(feed([ascii(exact + "\r\n")])?.version).toBe(exact)
    expect(feed([ascii(exact + "a\n")])?.version).toBe(exact + "a")
    expect(protocolError(() => feed([ascii(exact + "a\r\n")])).message).toBe(
      `identification line longer than ${MAX_VERSION_LINE} bytes`
    )
  })

  it("fails early on an over-long version line that has no line end yet", () => {
    const reader = new VersionReader()
    reader.push(ascii("SSH-2.0-" + "a".repeat(MAX_VERSION_LINE - 8)))
    expect(reader.next()).toBeUndefined()
    reader.push(ascii("a"))
    expect(protocolError(() => reader.next()).message).toMatch(/too much data without a line end/)
  })

  it("fails when no version line arrives within 64 KiB of other lines", () => {
    const line = "x".repeat(1023) + "\n"
    const lines = line.repeat(MAX_PREAMBLE / line.length)
    const reader = new VersionReader()
    reader.push(ascii(lines))
    expect(reader.next()).toBeUndefined()
    reader.push(ascii("y\n"))
    expect(protocolError(() => reader.next()).message).toBe("peer sent no SSH identification line within 64 KiB")
  })

  it("accepts a version line right after exactly 64 KiB of other lines", () => {
    const line = "x".repeat(1023) + "\n"
    const done = feed([ascii(line.repeat(MAX_PREAMBLE / line.length) + "SSH-2.0-late\r\n")])
    expect(done?.version).toBe("SSH-2.0-late")
    expect(done?.preamble.length).toBe(64)
  })

  it("fails when 64 KiB arrive without any line end", () => {
    const reader = new VersionReader()
    reader.push(new Uint8Array(MAX_PREAMBLE).fill(0x78))
    expect(reader.next()).toBeUndefined()
    reader.push(ascii("x"))
    expect(protocolError(() => reader.next()).message).toMatch(/no SSH identification line/)
  })

  it("without allowPreamble (server side) the first line must be the version", () => {
    expect(protocolError(() => feed([ascii("hello\r\nSSH-2.0-x\r\n")], { allowPreamble: false })).message).toBe(
      'expected an SSH identification line, got "hello"'
    )
    expect(feed([ascii("SSH-2.0-x\r\n")], { allowPreamble: false })?.version).toBe("SSH-2.0-x")
  })

  it("returns undefined until the line is complete", () => {
    const reader = new VersionReader()
    expect(reader.next()).toBeUndefined()
    reader.push(ascii("SSH-2.0-x\r"))
    expect(reader.next()).toBeUndefined()
    reader.push(ascii("\n"))
    expect(reader.next()?.version).toBe("SSH-2.0-x")
  })

  it("gives the same result wherever the data is split (two chunks at every boundary, or byte by byte)", () => {
    const stream = ascii("banner line\r\nsecond\nSSH-2.0-OpenSSH_9.6 comment\r\n\x00\x00\x00\x1c\x0a\x14")
    const whole = plain(feed([stream]))
    expect(whole).toEqual({
      version: "SSH-2.0-OpenSSH_9.6 comment",
      preamble: ["banner line", "second"],
      rest: "0000001c0a14"
    })
    const versionEnd = stream.indexOf(0x0a, stream.indexOf(0x53)) + 1
    for (let i = 0; i <= stream.length; i++) {
      const done = plain(feed([stream.subarray(0, i), stream.subarray(i)]))
      // a split after the version line makes the reader finish before the second chunk arrives
      expect(done).toEqual(i >= versionEnd ? { ...whole, rest: toHex(stream.subarray(versionEnd, i)) } : whole)
    }
    const bytes = Array.from(stream, (b) => Uint8Array.of(b))
    expect(plain(feed(bytes))).toEqual({ ...whole, rest: "" })
  })

  it("random chunkings of random preambles give the same exchange", () => {
    const preambleLine = fc.string({ unit: fc.constantFrom(..."abc XYZ-_.:"), maxLength: 40 })
      .filter((l) => !l.startsWith("SSH-"))
    fc.assert(
      fc.property(
        fc.array(preambleLine, { maxLength: 5 }),
        fc.string({ unit: fc.constantFrom(..."abcdef0123456789_. "), maxLength: 50 }),
        fc.boolean(),
        fc.uint8Array({ maxLength: 20 }),
        fc.array(fc.nat(), { maxLength: 8 }),
        (preamble, software, crlf, tail, cuts) => {
          const eol = crlf ? "\r\n" : "\n"
          const stream = new Uint8Array([
            ...ascii(preamble.map((l) => l + eol).join("") + "SSH-2.0-x" + software + eol),
            ...tail
          ])
          const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b)
          const chunks: Array<Uint8Array> = []
          let last = 0
          for (const p of points) {
            chunks.push(stream.subarray(last, p))
            last = p
          }
          chunks.push(stream.subarray(last))
          const reader = new VersionReader()
          for (const chunk of chunks) reader.push(chunk)
          const done = reader.next()
          expect(done?.version).toBe("SSH-2.0-x" + software)
          expect(done?.preamble).toEqual(preamble)
          expect(toHex(done!.rest)).toBe(toHex(tail))
        }
      )
    )
  })

  it("random bytes: undefined or a ProtocolError, never another exception", () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 80 }), { maxLength: 6 }), fc.boolean(), (chunks, allowPreamble) => {
        const reader = new VersionReader({ allowPreamble })
        try {
          for (const chunk of chunks) {
            reader.push(chunk)
            if (reader.next() !== undefined) return
          }
        } catch (e) {
          expect(e).toBeInstanceOf(ProtocolError)
        }
      })
    )
  })
})

describe("versionLine", () => {
  it("appends CR LF to our identification string", () => {
    expect(ourVersion).toMatch(/^SSH-2\.0-[\x21-\x7e]+$/)
    expect(toHex(versionLine("SSH-2.0-a b"))).toBe("5353482d322e302d6120620d0a")
    expect(feed([versionLine(ourVersion)])?.version).toBe(ourVersion)
  })
})
