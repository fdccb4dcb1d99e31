/**
 * Session channel requests (RFC 4254 §6): the type-specific data of
 * pty-req, env, exec, subsystem, window-change, signal, exit-status and
 * exit-signal, as plain values with encoders and decoders shared by the
 * client and the server.
 *
 * @since 0.1.0
 */
import { Reader } from "../Wire/Reader.ts"
import { build } from "../Wire/Writer.ts"
import { ProtocolError } from "../SshError.ts"

/** Terminal size in characters and pixels. */
export interface WindowSize {
  readonly columns: number
  readonly rows: number
  readonly width?: number | undefined
  readonly height?: number | undefined
}

/** A pty request: terminal name, size and encoded modes (RFC 4254 §8). */
export interface PtyRequest extends WindowSize {
  readonly term: string
  readonly modes?: Readonly<Record<number, number>> | undefined
}

/** Encoded terminal modes opcodes we name (RFC 4254 §8); any opcode 1..159 may be used. */
export const TerminalMode = {
  VINTR: 1,
  VQUIT: 2,
  VERASE: 3,
  VKILL: 4,
  VEOF: 5,
  ISIG: 50,
  ICANON: 51,
  ECHO: 53,
  ECHOE: 54,
  ECHOK: 55,
  ECHONL: 56,
  OPOST: 70,
  ONLCR: 72,
  TTY_OP_ISPEED: 128,
  TTY_OP_OSPEED: 129
} as const

/**
 * Encodes terminal modes as `byte opcode, uint32 value ..., TTY_OP_END`.
 *
 * @example
 * ```ts
 * encodeModes({ [TerminalMode.ECHO]: 0 })
 * ```
 */
export const encodeModes = (modes: Readonly<Record<number, number>>): Uint8Array =>
  build((w) => {
    for (const [op, value] of Object.entries(modes)) {
      const opcode = Number(op)
      if (opcode >= 1 && opcode < 160) w.byte(opcode).uint32(value)
    }
    w.byte(0)
  })

/**
 * Decodes terminal modes; stops at TTY_OP_END or at the first opcode ≥ 160 (whose argument size is unknown).
 *
 * @example
 * ```ts
 * decodeModes(encodeModes({ 53: 1 })) // { 53: 1 }
 * ```
 */
export const decodeModes = (bytes: Uint8Array): Record<number, number> => {
  const r = new Reader(bytes)
  const modes: Record<number, number> = {}
  while (r.remaining > 0) {
    const op = r.byte()
    if (op === 0 || op >= 160) break
    modes[op] = r.uint32()
  }
  return modes
}

/** @example `encodePtyRequest({ term: "xterm-256color", columns: 80, rows: 24 })` */
export const encodePtyRequest = (pty: PtyRequest): Uint8Array =>
  build((w) =>
    w.string(pty.term).uint32(pty.columns).uint32(pty.rows).uint32(pty.width ?? 0).uint32(pty.height ?? 0)
      .string(encodeModes(pty.modes ?? {}))
  )

/** @example `decodePtyRequest(data).term` */
export const decodePtyRequest = (data: Uint8Array): PtyRequest => {
  const r = new Reader(data)
  const term = r.utf8("term")
  const columns = r.uint32()
  const rows = r.uint32()
  const width = r.uint32()
  const height = r.uint32()
  const modes = decodeModes(r.string("terminal modes"))
  return { term, columns, rows, width, height, modes }
}

/** @example `encodeWindowChange({ columns: 120, rows: 40 })` */
export const encodeWindowChange = (size: WindowSize): Uint8Array =>
  build((w) => w.uint32(size.columns).uint32(size.rows).uint32(size.width ?? 0).uint32(size.height ?? 0))

/** @example `decodeWindowChange(data).columns` */
export const decodeWindowChange = (data: Uint8Array): WindowSize => {
  const r = new Reader(data)
  const size = { columns: r.uint32(), rows: r.uint32(), width: r.uint32(), height: r.uint32() }
  r.end("window-change")
  return size
}

/**
 * A single `string` argument: exec's command, subsystem's name, signal's name.
 *
 * @example
 * ```ts
 * encodeString("uname -a")
 * ```
 */
export const encodeString = (value: string | Uint8Array): Uint8Array => build((w) => w.string(value))

/** @example `decodeString(data)` */
export const decodeString = (data: Uint8Array, what: string): string => {
  const r = new Reader(data)
  const value = r.utf8(what)
  r.end(what)
  return value
}

/** @example `encodeEnv("LANG", "C.UTF-8")` */
export const encodeEnv = (name: string, value: string): Uint8Array => build((w) => w.string(name).string(value))

/** @example `decodeEnv(data).name` */
export const decodeEnv = (data: Uint8Array): { readonly name: string; readonly value: string } => {
  const r = new Reader(data)
  const name = r.utf8("env name")
  const value = r.utf8("env value")
  r.end("env")
  return { name, value }
}

/** @example `encodeExitStatus(0)` */
export const encodeExitStatus = (code: number): Uint8Array => build((w) => w.uint32(code), 4)

/** @example `decodeExitStatus(data)` */
export const decodeExitStatus = (data: Uint8Array): number => {
  const r = new Reader(data)
  const code = r.uint32()
  r.end("exit-status")
  return code
}

/** How a remote process ended on a signal. */
export interface ExitSignal {
  /** Signal name without the "SIG" prefix, e.g. "TERM". */
  readonly signal: string
  readonly coreDumped: boolean
  readonly message: string
}

/** @example `encodeExitSignal({ signal: "KILL", coreDumped: false, message: "" })` */
export const encodeExitSignal = (s: ExitSignal): Uint8Array =>
  build((w) => w.string(s.signal).boolean(s.coreDumped).string(s.message).string(""))

/** @example `decodeExitSignal(data).signal` */
export const decodeExitSignal = (data: Uint8Array): ExitSignal => {
  const r = new Reader(data)
  const signal = r.name("signal name")
  const coreDumped = r.boolean()
  const message = r.utf8("error message")
  if (r.remaining > 0) r.string("language tag")
  return { signal, coreDumped, message }
}

/** Signal names defined by RFC 4254 §6.10, with their usual POSIX numbers (for 128+n exit codes). */
export const signalNumbers: Readonly<Record<string, number>> = {
  HUP: 1,
  INT: 2,
  QUIT: 3,
  ILL: 4,
  ABRT: 6,
  FPE: 8,
  KILL: 9,
  USR1: 10,
  SEGV: 11,
  USR2: 12,
  PIPE: 13,
  ALRM: 14,
  TERM: 15
}

/**
 * Fails unless a signal name is one of RFC 4254's (or a local "name@domain" extension).
 *
 * @example
 * ```ts
 * checkSignalName("TERM") // "TERM"
 * ```
 */
export const checkSignalName = (name: string): string => {
  const bare = name.startsWith("SIG") ? name.slice(3) : name
  if (Object.hasOwn(signalNumbers, bare) || bare.includes("@")) return bare
  throw new ProtocolError({ message: `unknown signal name ${JSON.stringify(name)}` })
}
