/**
 * Peer-controlled text made safe to print on a terminal, as OpenSSH's
 * `fmprintf`/`snmprintf` (utf8.c) do: a valid, printable UTF-8 character is
 * kept as it is; anything else — C0 controls (ESC included), DEL, C1
 * controls, invalid UTF-8 — is written byte by byte in vis(3) octal form
 * (`ESC` becomes `\033`, U+009B becomes `\302\233`). A banner or an error
 * message from a server can then neither move the cursor, clear the screen,
 * set the window title, write the clipboard (OSC 52), nor forge a prompt.
 *
 * Stricter than OpenSSH in two ways: the Unicode bidirectional overrides and
 * isolates (U+202A–U+202E, U+2066–U+2069) and the line and paragraph
 * separators (U+2028, U+2029) are escaped too, since they reorder or break
 * what the user reads; and a carriage return is kept only as part of CR LF
 * (a bare CR returns to the start of the line, over what was printed).
 *
 * Two contexts: a *line* (a file name, a disconnect reason, a user name in
 * a log line) escapes line feeds and tabs as well; a *block* (a banner, a
 * keyboard-interactive instruction or prompt) keeps LF, CR LF and tab, as
 * OpenSSH does for banners.
 *
 * @internal
 */

/** How peer text is printed. */
export interface TerminalTextOptions {
  /** Keep line feeds, CR LF and tabs (a block of text); default false (one line). */
  readonly multiline?: boolean | undefined
  /** Keep at most this many characters of the output, then say how many more there were. */
  readonly maxLength?: number | undefined
}

const octal = (byte: number): string => "\\" + byte.toString(8).padStart(3, "0")

/** Code points escaped although UTF-8 calls them valid: controls and the characters that reorder or break lines. */
const isUnprintable = (cp: number): boolean =>
  cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) ||
  (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069) ||
  cp === 0x2028 || cp === 0x2029

/** The octal escapes of a code point's UTF-8 bytes (a lone surrogate as the three bytes WTF-8 gives it). */
const escapeCodePoint = (cp: number): string => {
  if (cp < 0x80) return octal(cp)
  if (cp < 0x800) return octal(0xc0 | (cp >> 6)) + octal(0x80 | (cp & 0x3f))
  if (cp < 0x10000) return octal(0xe0 | (cp >> 12)) + octal(0x80 | ((cp >> 6) & 0x3f)) + octal(0x80 | (cp & 0x3f))
  return octal(0xf0 | (cp >> 18)) + octal(0x80 | ((cp >> 12) & 0x3f)) + octal(0x80 | ((cp >> 6) & 0x3f)) + octal(0x80 | (cp & 0x3f))
}

/**
 * Decodes UTF-8 leniently: each maximal valid sequence becomes its code
 * point, each byte of an invalid one is reported as a negative number
 * (`-1 - byte`), so the caller can escape exactly the bytes that were bad.
 */
const codePointsOfBytes = function*(bytes: Uint8Array): Generator<number> {
  for (let i = 0; i < bytes.length;) {
    const b = bytes[i]!
    const need = b < 0x80 ? 0 : b >= 0xc2 && b <= 0xdf ? 1 : b >= 0xe0 && b <= 0xef ? 2 : b >= 0xf0 && b <= 0xf4 ? 3 : -1
    if (need === 0) {
      yield b
      i++
      continue
    }
    let cp = need === 1 ? b & 0x1f : need === 2 ? b & 0x0f : b & 0x07
    let ok = need > 0
    for (let k = 1; ok && k <= need; k++) {
      const c = bytes[i + k]
      if (c === undefined || (c & 0xc0) !== 0x80) ok = false
      else cp = (cp << 6) | (c & 0x3f)
    }
    // overlong forms, surrogates and values past U+10FFFF are not UTF-8
    if (ok && ((need === 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (need === 3 && (cp < 0x10000 || cp > 0x10ffff)))) ok = false
    if (ok) {
      yield cp
      i += need + 1
    } else {
      yield -1 - b
      i++
    }
  }
}

const codePointsOfString = function*(text: string): Generator<number> {
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i)
    if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < text.length) {
      const low = text.charCodeAt(i + 1)
      if (low >= 0xdc00 && low <= 0xdfff) {
        yield ((unit - 0xd800) << 10) + (low - 0xdc00) + 0x10000
        i++
        continue
      }
    }
    // a lone surrogate comes out as a code point in the surrogate range: escaped below
    yield unit
  }
}

/**
 * Makes peer text safe to print: printable characters kept, everything else
 * escaped in vis(3) octal (`\033`). Accepts a string or raw bytes (invalid
 * UTF-8 is escaped byte by byte).
 *
 * @example
 * ```ts
 * forTerminal("Welcome\x1b[2J\x1b]52;c;ZXZpbA==\x07")      // "Welcome\\033[2J\\033]52;c;ZXZpbA==\\007"
 * forTerminal("line one\r\nline two\n", { multiline: true }) // "line one\r\nline two\n"
 * forTerminal("a\nb")                                          // "a\\012b"
 * forTerminal(Uint8Array.of(0x66, 0xff))                        // "f\\377"
 * ```
 */
export const forTerminal = (text: string | Uint8Array, options: TerminalTextOptions = {}): string => {
  const multiline = options.multiline === true
  const max = options.maxLength
  const points = typeof text === "string" ? [...codePointsOfString(text)] : [...codePointsOfBytes(text)]
  let out = ""
  let shown = 0
  for (let i = 0; i < points.length; i++) {
    const cp = points[i]!
    let piece: string
    if (cp < 0) piece = octal(-1 - cp)
    else if (multiline && (cp === 0x0a || cp === 0x09)) piece = String.fromCharCode(cp)
    else if (multiline && cp === 0x0d && points[i + 1] === 0x0a) piece = "\r"
    else if (isUnprintable(cp) || (cp >= 0xd800 && cp <= 0xdfff)) piece = escapeCodePoint(cp)
    else piece = String.fromCodePoint(cp)
    if (max !== undefined && out.length + piece.length > max) {
      return `${out}...(${points.length - shown} more characters)`
    }
    out += piece
    shown++
  }
  return out
}

/**
 * One line of peer text (a file name, a reason, a user name): `forTerminal`
 * with line feeds and tabs escaped too.
 *
 * @example
 * ```ts
 * terminalLine("evil\n[fake] Password: ") // "evil\\012[fake] Password: "
 * ```
 */
export const terminalLine = (text: string | Uint8Array): string => forTerminal(text)

/**
 * A block of peer text (a banner, an instruction, a prompt): `forTerminal`
 * keeping line feeds, CR LF and tabs.
 *
 * @example
 * ```ts
 * terminalBlock("Authorized use only.\r\n\x1b[5mblink") // "Authorized use only.\r\n\\033[5mblink"
 * ```
 */
export const terminalBlock = (text: string | Uint8Array): string => forTerminal(text, { multiline: true })

/** Longest peer-controlled field in a server log line before it is cut. */
const LOG_FIELD_MAX = 256

/**
 * A peer-controlled field of a server log line (a user name, a client
 * version string): one line, escaped, and cut after 256 characters so that a
 * client cannot flood the log with one field.
 *
 * @example
 * ```ts
 * logField("root\x1b[2K\rAccepted password for admin") // "root\\033[2K\\015Accepted password for admin"
 * ```
 */
export const logField = (text: string | Uint8Array): string => forTerminal(text, { maxLength: LOG_FIELD_MAX })
