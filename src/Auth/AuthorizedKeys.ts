/**
 * OpenSSH `authorized_keys` files: one public key per line, optionally
 * preceded by comma-separated options (`from="10.0.0.0/8",command="ls",no-pty`),
 * as sshd(8) "AUTHORIZED_KEYS FILE FORMAT" describes. Options are kept as
 * their text (quotes and escapes included); `KeyOptions.parse` reads them
 * into the restrictions the server enforces.
 *
 * Parsing never throws: unusable lines are returned as errors.
 *
 * @example
 * ```ts
 * const { entries } = AuthorizedKeys.parse(readFileSync(`${home}/.ssh/authorized_keys`, "utf8"))
 * const entry = AuthorizedKeys.find(entries, offeredKey)
 * ```
 * @since 0.1.0
 */
import { type LineError, parseLines } from "../internal/lines.ts"
import { isSshErrorReason } from "../SshError.ts"
import * as PublicKey from "./PublicKey.ts"

/** A usable authorized_keys line. */
export interface AuthorizedKey {
  /** The options in order, each as written (`no-pty`, `command="echo \"hi\""`). */
  readonly options: ReadonlyArray<string>
  readonly key: PublicKey.PublicKey
  /** 1-based line number in the parsed text. */
  readonly line: number
}

/** A line that could not be used. */
export type AuthorizedKeysError = LineError

/**
 * Splits an options field at the commas outside double quotes; inside
 * quotes `\"` is an escaped quote. `undefined` when a quote is left open.
 *
 * @example
 * ```ts
 * splitOptions('from="a,b",no-pty') // ['from="a,b"', "no-pty"]
 * ```
 */
export const splitOptions = (field: string): Array<string> | undefined => {
  const options: Array<string> = []
  let quoted = false
  let start = 0
  for (let i = 0; i < field.length; i++) {
    const c = field[i]
    if (quoted && c === "\\" && field[i + 1] === "\"") i++
    else if (c === "\"") quoted = !quoted
    else if (c === "," && !quoted) {
      options.push(field.slice(start, i))
      start = i + 1
    }
  }
  if (quoted) return undefined
  options.push(field.slice(start))
  return options
}

/** Where the options field ends: the first whitespace outside double quotes. */
const optionsEnd = (text: string): number => {
  let quoted = false
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!
    if (quoted && c === "\\" && text[i + 1] === "\"") i++
    else if (c === "\"") quoted = !quoted
    else if (!quoted && (c === " " || c === "\t")) return i
  }
  return text.length
}

/** A line starting like a key type is a key line (maybe of a type we do not support), not options. */
const KEY_TYPE_LIKE = /^(?:ssh-|ecdsa-|sk-)[^\s=",]*\s/

const parseKey = (text: string): PublicKey.PublicKey | string => {
  try {
    return PublicKey.parseOpenSsh(text)
  } catch (u) {
    if (!isSshErrorReason(u)) throw u
    return u.message
  }
}

const parseLine = (text: string, line: number): AuthorizedKey | string => {
  const bare = parseKey(text)
  if (typeof bare !== "string") return { options: [], key: bare, line }
  if (KEY_TYPE_LIKE.test(text)) return bare
  const end = optionsEnd(text)
  const options = splitOptions(text.slice(0, end))
  if (options === undefined) return "unterminated quote in options"
  if (options.some((o) => o.length === 0)) return "empty option"
  const rest = text.slice(end).trim()
  if (rest.length === 0) return bare
  const key = parseKey(rest)
  return typeof key === "string" ? key : { options, key, line }
}

/**
 * Parses an authorized_keys file. A line is first read as a bare key; if that
 * fails, its first field is taken as options and the rest as the key.
 *
 * @example
 * ```ts
 * const { entries } = parse('no-pty,command="uptime" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFOG6kY7Rf4UtCFvPwKgo/BztXck2xC4a2WyA34XtIwZ ops\n')
 * entries[0].options // ["no-pty", 'command="uptime"']
 * ```
 */
export const parse = (
  text: string
): { readonly entries: Array<AuthorizedKey>; readonly errors: Array<AuthorizedKeysError> } => parseLines(text, parseLine)

/**
 * The first entry for a key, if it is authorized.
 *
 * @example
 * ```ts
 * const entry = find(entries, offeredKey)
 * if (entry !== undefined && KeyOptions.parse(entry.options, entry.line).restrictions.pty) allowPty()
 * ```
 */
export const find = (entries: ReadonlyArray<AuthorizedKey>, key: PublicKey.PublicKey): AuthorizedKey | undefined =>
  entries.find((entry) => PublicKey.equals(entry.key, key))

/**
 * An authorized_keys line for a key with options. No trailing newline.
 *
 * @example
 * ```ts
 * formatLine(key, ["no-pty"]) // "no-pty ssh-ed25519 AAAAC3Nza... me@host"
 * ```
 */
export const formatLine = (key: PublicKey.PublicKey, options: ReadonlyArray<string> = []): string =>
  options.length === 0 ? PublicKey.toOpenSsh(key) : `${options.join(",")} ${PublicKey.toOpenSsh(key)}`
