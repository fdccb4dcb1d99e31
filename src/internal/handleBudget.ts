/**
 * How many SFTP handles a server may hold open, shared by all its sessions,
 * and the defaults derived from the process's file-descriptor limit: every
 * open handle is one descriptor (a directory handle two), and one process
 * serves every login, so handles must leave descriptors for new connections.
 *
 * @internal
 * @since 0.1.0
 */
import * as Fs from "node:fs"

/** Descriptors a directory handle holds (a file handle holds one). */
export const DESCRIPTORS_PER_HANDLE = 2

/** The soft limit assumed when /proc/self/limits cannot be read. */
const ASSUMED_FILE_LIMIT = 1024

/** Descriptors kept back for logins, listeners and walks: a quarter of the limit, at least this many. */
const MIN_RESERVE = 256

/** Handles a server holds at most by default, whatever the descriptor limit (each costs some memory too). */
const MAX_DEFAULT_HANDLES = 16384

/**
 * Directory handles a session may hold by default. An open directory keeps the C library's 32 KiB getdents
 * buffer and Node's entry buffer: about 75 KiB of memory once read, whatever the directory's size.
 */
export const DEFAULT_DIRECTORY_HANDLES_PER_SESSION = 64

/** Directory handles a server may hold by default (~75 KiB each once read: about 20 MiB). */
export const DEFAULT_DIRECTORY_HANDLES = 256

/** Handles a session may hold by default (OpenSSH's sftp-server, one process per session, allows its limit - 5: 1019 at 1024). */
export const DEFAULT_HANDLES_PER_SESSION = 1024

/**
 * The soft RLIMIT_NOFILE of this process, from /proc/self/limits, or
 * undefined when it cannot be read or is unlimited.
 *
 * @example
 * ```ts
 * softFileLimit() // 20000
 * ```
 */
export const softFileLimit = (): number | undefined => {
  try {
    const limits = Fs.readFileSync("/proc/self/limits", "utf8")
    const match = /^Max open files\s+(\d+)\s/m.exec(limits)
    return match === null ? undefined : Number(match[1])
  } catch {
    return undefined
  }
}

/**
 * The default server-wide handle cap for a descriptor limit: what is left
 * after a reserve of a quarter (at least 256 descriptors), counting two
 * descriptors per handle, between 16 and 16384.
 *
 * @example
 * ```ts
 * defaultServerHandles(20000) // 7500
 * defaultServerHandles(1024)  // 384
 * ```
 */
export const defaultServerHandles = (fileLimit: number = softFileLimit() ?? ASSUMED_FILE_LIMIT): number => {
  const reserve = Math.max(MIN_RESERVE, Math.floor(fileLimit / 4))
  const handles = Math.floor((fileLimit - reserve) / DESCRIPTORS_PER_HANDLE)
  return Math.max(16, Math.min(MAX_DEFAULT_HANDLES, handles))
}

/**
 * A count of handles against a limit, shared by the sessions of one server.
 *
 * @example
 * ```ts
 * const budget = new HandleBudget(7500)
 * if (!budget.take()) refuse("too many open handles")
 * budget.give()
 * ```
 */
export class HandleBudget {
  readonly limit: number
  private used = 0

  constructor(limit: number) {
    this.limit = limit
  }

  /** Handles held now. */
  get inUse(): number {
    return this.used
  }

  /** Takes one handle if the limit allows it. */
  take(): boolean {
    if (this.used >= this.limit) return false
    this.used++
    return true
  }

  /** Gives one back. */
  give(): void {
    if (this.used > 0) this.used--
  }
}
