/**
 * The identification-string exchange (RFC 4253 §4.2): each side sends
 * `SSH-2.0-softwareversion SP comments CR LF`. A server may send other lines
 * first; we keep them (they are shown to users as a pre-auth banner) but
 * bound how much we read, so a peer that never sends a version line ends in a
 * typed error instead of a hang or unbounded memory.
 *
 * @since 0.1.0
 */
import { ProtocolError } from "../SshError.ts"

/** Longest identification line, CR LF included (RFC 4253 §4.2). */
export const MAX_VERSION_LINE = 255
/** Most bytes of pre-version lines we accept before giving up (OpenSSH reads up to 1024 lines). */
export const MAX_PREAMBLE = 64 * 1024

/** Our identification string, without CR LF. */
export const ourVersion = "SSH-2.0-effect_ssh_0.1"

/**
 * The result of a completed exchange.
 *
 * @example
 * ```ts
 * const r = new VersionReader()
 * r.push(bytes)
 * const done = r.next() // { version: "SSH-2.0-OpenSSH_9.2", preamble: [], rest }
 * ```
 */
export interface VersionExchange {
  /** The peer's identification line without CR LF; it goes into the exchange hash. */
  readonly version: string
  /** Lines the peer sent before its version line (servers only). */
  readonly preamble: ReadonlyArray<string>
  /** Bytes after the version line: the start of the binary packet stream. */
  readonly rest: Uint8Array
}

/**
 * Incremental reader of the peer's identification line.
 *
 * @example
 * ```ts
 * const reader = new VersionReader({ allowPreamble: true })
 * reader.push(chunk)
 * const exchange = reader.next()   // undefined until a full version line has arrived
 * ```
 */
export class VersionReader {
  private buffer = new Uint8Array(0)
  private readonly preamble: Array<string> = []
  private consumed = 0
  private readonly allowPreamble: boolean

  constructor(options?: { readonly allowPreamble?: boolean | undefined }) {
    this.allowPreamble = options?.allowPreamble ?? true
  }

  push(chunk: Uint8Array): void {
    const next = new Uint8Array(this.buffer.length + chunk.length)
    next.set(this.buffer)
    next.set(chunk, this.buffer.length)
    this.buffer = next
  }

  /** The exchange once a version line is complete; throws `ProtocolError` on a bad or missing line. */
  next(): VersionExchange | undefined {
    for (;;) {
      const lf = this.buffer.indexOf(0x0a)
      if (lf < 0) {
        const limit = this.startsLikeVersion() ? MAX_VERSION_LINE : MAX_PREAMBLE - this.consumed
        if (this.buffer.length > limit) {
          throw new ProtocolError({ message: "peer sent no SSH identification line (too much data without a line end)" })
        }
        return undefined
      }
      const lineBytes = this.buffer.subarray(0, lf + 1)
      const end = lf > 0 && this.buffer[lf - 1] === 0x0d ? lf - 1 : lf
      const line = latin1(this.buffer.subarray(0, end))
      this.buffer = this.buffer.subarray(lf + 1)
      if (line.startsWith("SSH-")) {
        if (lineBytes.length > MAX_VERSION_LINE) {
          throw new ProtocolError({ message: `identification line longer than ${MAX_VERSION_LINE} bytes` })
        }
        if (!line.startsWith("SSH-2.0-") && !line.startsWith("SSH-1.99-")) {
          throw new ProtocolError({ message: `unsupported protocol version: ${JSON.stringify(line.slice(0, 64))}` })
        }
        if (/[\x00-\x1f\x7f]/.test(line)) {
          throw new ProtocolError({ message: "identification line contains control characters" })
        }
        return { version: line, preamble: this.preamble, rest: this.buffer }
      }
      if (!this.allowPreamble) {
        throw new ProtocolError({ message: `expected an SSH identification line, got ${JSON.stringify(line.slice(0, 64))}` })
      }
      this.consumed += lineBytes.length
      if (this.consumed > MAX_PREAMBLE) {
        throw new ProtocolError({ message: "peer sent no SSH identification line within 64 KiB" })
      }
      this.preamble.push(line)
    }
  }

  private startsLikeVersion(): boolean {
    const b = this.buffer
    return b.length >= 4 && b[0] === 0x53 && b[1] === 0x53 && b[2] === 0x48 && b[3] === 0x2d
  }
}

const latin1 = (bytes: Uint8Array): string => {
  let s = ""
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]!)
  return s
}

/**
 * Our identification line as bytes, CR LF included.
 *
 * @example
 * ```ts
 * socket.write(versionLine(ourVersion))
 * ```
 */
export const versionLine = (version: string): Uint8Array => {
  const s = version + "\r\n"
  const out = new Uint8Array(s.length)
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i) & 0xff
  return out
}
