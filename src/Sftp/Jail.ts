/**
 * The path jail of the SFTP server, pure: client paths in, paths that cannot
 * leave the served root out. It gives the server chroot semantics without
 * chroot(2): the client sees the root as "/", `..` at the root stays at the
 * root, and a symbolic link is followed *inside* the jail (an absolute target
 * "/etc" means the jail's "/etc", a relative one is taken from the link's
 * directory), so no path, however it is spelt, names a file outside.
 *
 * A path is first normalised into a `VirtualPath` ("/" or "/a/b": absolute,
 * no empty, "." or ".." segments). Symbolic links are then resolved one
 * component at a time by a `Resolution`, a small state machine the server
 * drives: it asks for each component ("is /a a symlink?"), the server answers
 * with `lstat`/`readlink` on the real file, and it ends with a virtual path
 * whose every component up to the last (or including the last, when
 * following) is a real directory or file. `toReal` then places it under the
 * root. More than `MAX_SYMLINKS` links in one resolution is a loop. A
 * relative path is taken from the root (the server's working directory).
 *
 * Failures are thrown as `SftpStatus` reasons: a path with a NUL byte is
 * `BadMessage`, a symlink loop `NoSuchFile` (OpenSSH's mapping of ELOOP).
 *
 * @since 0.1.0
 */
import { SftpStatus } from "../SshError.ts"
import { StatusCode } from "./Status.ts"

/** A normalised absolute path inside the jail: "/" or "/a/b" (no trailing slash, no "." or ".."). */
export type VirtualPath = string

/**
 * Links followed in one resolution before it is declared a loop (Linux's limit).
 *
 * @example
 * ```ts
 * MAX_SYMLINKS // 40
 * ```
 */
export const MAX_SYMLINKS = 40

/**
 * The jail's root as the client sees it.
 *
 * @example
 * ```ts
 * normalize("..") === ROOT // true
 * ```
 */
export const ROOT: VirtualPath = "/"

const rejectNul = (path: string): void => {
  if (path.includes("\0")) {
    throw new SftpStatus({ code: StatusCode.BadMessage, message: "path contains a NUL byte", path })
  }
}

/**
 * Applies path segments to a stack of resolved segments: "" and "." are
 * skipped, ".." pops (never above the root), anything else is pushed.
 */
const applySegments = (stack: Array<string>, segments: ReadonlyArray<string>): Array<string> => {
  for (const segment of segments) {
    if (segment === "" || segment === ".") continue
    if (segment === "..") stack.pop()
    else stack.push(segment)
  }
  return stack
}

const fromSegments = (segments: ReadonlyArray<string>): VirtualPath => "/" + segments.join("/")

/**
 * The segments of a virtual path ("/" has none).
 *
 * @example
 * ```ts
 * segments("/a/b") // ["a", "b"]
 * ```
 */
export const segments = (path: VirtualPath): Array<string> => path === ROOT ? [] : path.slice(1).split("/")

/**
 * Normalises a client path: a relative path is taken from `cwd` (the jail
 * root unless given), "." and empty segments vanish, ".." goes up but never
 * above the root. Throws `SftpStatus` (BadMessage) for a NUL byte.
 *
 * @example
 * ```ts
 * normalize("/../etc//passwd") // "/etc/passwd"
 * normalize("b/../c", "/a")    // "/a/c"
 * ```
 */
export const normalize = (path: string, cwd: VirtualPath = ROOT): VirtualPath => {
  rejectNul(path)
  const start = path.startsWith("/") ? [] : segments(normalize(cwd))
  return fromSegments(applySegments(start, path.split("/")))
}

/**
 * The directory containing a virtual path (the root is its own parent).
 *
 * @example
 * ```ts
 * parent("/a/b") // "/a"
 * ```
 */
export const parent = (path: VirtualPath): VirtualPath => fromSegments(segments(path).slice(0, -1))

/**
 * The last segment of a virtual path ("" for the root).
 *
 * @example
 * ```ts
 * basename("/a/b") // "b"
 * ```
 */
export const basename = (path: VirtualPath): string => segments(path).at(-1) ?? ""

/**
 * A virtual path's real location under `root` (an absolute host path without
 * a trailing slash, "" for the host's "/").
 *
 * @example
 * ```ts
 * toReal("/srv/sftp", "/a/b") // "/srv/sftp/a/b"
 * toReal("/srv/sftp", "/")    // "/srv/sftp"
 * ```
 */
export const toReal = (root: string, path: VirtualPath): string => path === ROOT ? (root === "" ? "/" : root) : root + path

/**
 * Normalises a host directory for use as a jail root: absolute, without "."
 * or "..", without a trailing slash ("" for "/"). Throws `SftpStatus`
 * (BadMessage) for a relative path or a NUL byte.
 *
 * @example
 * ```ts
 * rootOf("/srv//sftp/") // "/srv/sftp"
 * ```
 */
export const rootOf = (hostPath: string): string => {
  if (!hostPath.startsWith("/")) {
    throw new SftpStatus({ code: StatusCode.BadMessage, message: "the jail root must be an absolute path", path: hostPath })
  }
  const normal = normalize(hostPath)
  return normal === ROOT ? "" : normal
}

/** What a `Resolution` needs next. */
export type ResolutionStep =
  /** Is `path` a symbolic link? Answer with `feed(target)` or `feed(undefined)`. */
  | { readonly _tag: "Inspect"; readonly path: VirtualPath }
  /** Resolved: `path` has no symbolic link in its directories (nor as itself, when following). */
  | { readonly _tag: "Done"; readonly path: VirtualPath }

/**
 * Resolves the symbolic links of a path inside the jail, one component at a
 * time, with chroot semantics. The server answers each `Inspect` step with
 * the link's target (from `readlink`) or `undefined` when the component is
 * not a link or does not exist (a missing component is left for the file
 * operation to report).
 *
 * @example
 * ```ts
 * const resolution = new Resolution("/link/file", { followFinal: true })
 * for (let step = resolution.next(); step._tag === "Inspect"; step = resolution.next()) {
 *   resolution.feed(step.path === "/link" ? "../real" : undefined)
 * }
 * resolution.next() // { _tag: "Done", path: "/real/file" }
 * ```
 */
export class Resolution {
  private resolved: Array<string> = []
  private pending: Array<string>
  private links = 0
  private inspecting: string | undefined
  private readonly followFinal: boolean
  private readonly original: string

  constructor(path: string, options: { readonly followFinal: boolean }) {
    rejectNul(path)
    this.original = path
    // Not normalised first: ".." after a link applies to the link's target, as in POSIX.
    this.pending = path.split("/")
    this.followFinal = options.followFinal
  }

  /** The next step: a component to inspect, or the resolved path. */
  next(): ResolutionStep {
    if (this.inspecting !== undefined) return { _tag: "Inspect", path: fromSegments([...this.resolved, this.inspecting]) }
    while (this.pending.length > 0) {
      const segment = this.pending.shift()!
      if (segment === "" || segment === ".") continue
      if (segment === "..") {
        this.resolved.pop()
        continue
      }
      if (this.pending.length === 0 && !this.followFinal) {
        this.resolved.push(segment)
        break
      }
      this.inspecting = segment
      return { _tag: "Inspect", path: fromSegments([...this.resolved, segment]) }
    }
    return { _tag: "Done", path: fromSegments(this.resolved) }
  }

  /**
   * Answers the pending `Inspect`: the component's symlink target, or
   * `undefined` when it is not a link. Throws `SftpStatus` (NoSuchFile) after
   * `MAX_SYMLINKS` links, and (BadMessage) for a target with a NUL byte.
   */
  feed(target: string | undefined): void {
    const segment = this.inspecting
    if (segment === undefined) throw new Error("Resolution.feed called without a pending Inspect step")
    this.inspecting = undefined
    if (target === undefined) {
      this.resolved.push(segment)
      return
    }
    rejectNul(target)
    if (++this.links > MAX_SYMLINKS) {
      throw new SftpStatus({ code: StatusCode.NoSuchFile, message: "too many levels of symbolic links", path: this.original })
    }
    if (target.startsWith("/")) this.resolved = []
    this.pending = [...target.split("/"), ...this.pending]
  }
}

/**
 * Resolves a path against a synchronous view of the jail's links (a test
 * model, or a cache): `readLink(path)` gives the target of a link, or
 * `undefined` for anything else.
 *
 * @example
 * ```ts
 * const links = new Map([["/up", "../.."]])
 * resolveWith("/up/etc/passwd", (p) => links.get(p), true) // "/etc/passwd" (inside the jail)
 * ```
 */
export const resolveWith = (
  path: string,
  readLink: (path: VirtualPath) => string | undefined,
  followFinal: boolean
): VirtualPath => {
  const resolution = new Resolution(path, { followFinal })
  for (let step = resolution.next(); ; step = resolution.next()) {
    if (step._tag === "Done") return step.path
    resolution.feed(readLink(step.path))
  }
}
