/**
 * Line-oriented OpenSSH text files (known_hosts, authorized_keys): the
 * meaningful lines with their 1-based numbers, and the per-line error record.
 * @internal
 */

/** A line that could not be used, with why. */
export interface LineError {
  readonly line: number
  readonly message: string
}

/**
 * The non-blank, non-comment lines of a file, trimmed, with their 1-based
 * line numbers. Accepts LF and CRLF line ends.
 *
 * @example
 * ```ts
 * contentLines("# c\n\nhost ssh-ed25519 AAAA\n") // [{ line: 3, text: "host ssh-ed25519 AAAA" }]
 * ```
 */
export const contentLines = (text: string): Array<{ readonly line: number; readonly text: string }> => {
  const out: Array<{ line: number; text: string }> = []
  const lines = text.split(/\r?\n/)
  for (let i = 0; i < lines.length; i++) {
    const trimmed = lines[i]!.trim()
    if (trimmed.length > 0 && !trimmed.startsWith("#")) out.push({ line: i + 1, text: trimmed })
  }
  return out
}

/**
 * Splits off the first whitespace-delimited field.
 *
 * @example
 * ```ts
 * firstField("a b  c") // ["a", "b  c"]
 * ```
 */
export const firstField = (text: string): readonly [string, string] => {
  const match = /^(\S+)\s*([\s\S]*)$/.exec(text)
  return match === null ? ["", ""] : [match[1]!, match[2]!]
}

/**
 * Parses each meaningful line with `parseLine`, which returns an entry or an
 * error message; collects both.
 *
 * @example
 * ```ts
 * const { entries, errors } = parseLines(text, (content, line) => content.includes(" ") ? { content, line } : "no key")
 * ```
 */
export const parseLines = <A>(
  text: string,
  parseLine: (content: string, line: number) => A | string
): { readonly entries: Array<A>; readonly errors: Array<LineError> } => {
  const entries: Array<A> = []
  const errors: Array<LineError> = []
  for (const { line, text: content } of contentLines(text)) {
    const parsed = parseLine(content, line)
    if (typeof parsed === "string") errors.push({ line, message: parsed })
    else entries.push(parsed)
  }
  return { entries, errors }
}
