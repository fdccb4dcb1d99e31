/**
 * The path jail of the SFTP server, pure: client paths in, walks that cannot
 * leave the served root out. It gives the server chroot semantics without
 * chroot(2): the client sees the root as "/", `..` at the root stays at the
 * root, and a symbolic link is followed *inside* the jail (an absolute target
 * "/etc" means the jail's "/etc", a relative one is taken from the link's
 * directory), so no path, however it is spelt, names a file outside.
 *
 * A `Walk` is the state machine the server's file system drives (see
 * `internal/jailedFs.ts`): it holds a directory descriptor per level, opens
 * each component relative to the one above without following it, and feeds
 * the walk what it found (a directory, a link and its target, nothing); the
 * walk says what to open or close next and where the operation acts. So no
 * path is ever checked and then used: a directory swapped for a link between
 * two steps is simply seen as the link. `Resolution` is the same walk over a
 * model that only says which components are links (tests, what-ifs), and
 * `normalize` the purely lexical form. More than `MAX_SYMLINKS` links in one
 * walk is a loop. A relative path is taken from the root (the server's
 * working directory).
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


/**
 * Directories a `Walk` keeps open besides the root: the current one and its
 * nearest ancestors (one more for a moment, between entering a directory and
 * letting the farthest go). A `..` that climbs above them re-opens its target
 * from the root instead.
 *
 * @example
 * ```ts
 * new Walk("/a/b", { window: WALK_WINDOW })
 * ```
 */
export const WALK_WINDOW = 8

/**
 * Components one `Walk` may open before it gives up: a bound on the work a
 * single path can cost (a legitimate path of 4096 bytes has at most 2048).
 *
 * @example
 * ```ts
 * MAX_WALK_OPENS // 8192
 * ```
 */
export const MAX_WALK_OPENS = 8192

/** What a `Walk` asks of the shell that holds its directories, indexed by depth (the root is depth 0). */
export type WalkStep =
  /** Open `name` in the current directory without following it, and answer with `feed`. */
  | { readonly _tag: "Open"; readonly name: string; readonly path: VirtualPath }
  /** Close the directory held at `depth` (it left the window; a later `..` re-opens it from the root). */
  | { readonly _tag: "Close"; readonly depth: number }
  /** Close every directory held deeper than `depth`: the one at `depth` is current again. */
  | { readonly _tag: "Ascend"; readonly depth: number }
  /**
   * The walk reached its target: `name` in the current directory, or the current
   * directory itself when `name` is undefined (a path ending in "/", "." or "..").
   * An operation that follows a final symlink answers with `follow(target)`.
   */
  | { readonly _tag: "Done"; readonly path: VirtualPath; readonly name: string | undefined }
  /** Lexical walks only: a directory on the way does not exist; `path` is the rest applied without it. */
  | { readonly _tag: "Unreached"; readonly path: VirtualPath }

/** What the shell found when it opened a component (without following it). */
export type Found =
  /** A directory, now held by the shell one level deeper. */
  | { readonly _tag: "Directory" }
  /** A symbolic link and its target (from readlink). */
  | { readonly _tag: "Link"; readonly target: string }
  /** Something else: a file where a directory was needed. */
  | { readonly _tag: "NotDirectory" }
  | { readonly _tag: "Missing" }
  /** It changed between the open and the readlink (a concurrent rename): ask again. */
  | { readonly _tag: "Changed" }

/** Options of a `Walk`. */
export interface WalkOptions {
  /** Directories held besides the root (default `WALK_WINDOW`, at least 2: the current one and its parent). */
  readonly window?: number | undefined
  /** A missing directory on the way ends the walk with `Unreached` instead of failing (realpath). */
  readonly lexical?: boolean | undefined
}

const noSuchFile = (message: string, path: string): never => {
  throw new SftpStatus({ code: StatusCode.NoSuchFile, message, path })
}

/**
 * The jail's path walk as a pure state machine, for a shell that holds a
 * directory descriptor per level and opens every component relative to the
 * one above it, never following a link itself: `next()` says what to open
 * or close, `feed` tells what an open found. Links are resolved here with
 * chroot semantics (absolute targets start again at the root, `..` stops at
 * the root), so whatever the file system does between two steps, the shell
 * only ever opens names inside directories it already holds, all reached
 * from the root. `..` returns to the directory held one level up rather than
 * asking the file system for a parent, so a directory moved meanwhile cannot
 * lead out. More than `MAX_SYMLINKS` links (or changes) is a loop;
 * more than `MAX_WALK_OPENS` opens is refused.
 *
 * Failures are thrown as `SftpStatus` (NoSuchFile), like `Resolution`.
 *
 * @example
 * ```ts
 * const walk = new Walk("/link/file")
 * walk.next()                                      // { _tag: "Open", name: "link", path: "/link" }
 * walk.feed({ _tag: "Link", target: "/real" })
 * walk.next()                                      // { _tag: "Open", name: "real", path: "/real" }
 * walk.feed({ _tag: "Directory" })
 * walk.next()                                      // { _tag: "Done", path: "/real/file", name: "file" }
 * ```
 */
export class Walk {
  /** The current directory's segments: its depth is their count. */
  private resolved: Array<string> = []
  /** The shallowest depth above the root still held (every depth from it to the current one is held). */
  private lowest = 1
  private pending: Array<string>
  /** Steps owed to the shell before anything else. */
  private readonly owed: Array<WalkStep> = []
  /** Segments to re-open from the root, after a `..` climbed above the window. */
  private rewalk: Array<string> = []
  private opening: { readonly name: string; readonly rewalk: boolean } | undefined
  private done: WalkStep | undefined
  private links = 0
  private opens = 0
  private readonly window: number
  private readonly lexical: boolean
  private readonly original: string

  constructor(path: string, options: WalkOptions = {}) {
    rejectNul(path)
    this.original = path
    // Not normalised first: ".." after a link applies to the link's target, as in POSIX.
    this.pending = path.split("/")
    this.window = Math.max(2, options.window ?? WALK_WINDOW)
    this.lexical = options.lexical ?? false
  }

  /** How deep the current directory is (0: the root). */
  get depth(): number {
    return this.resolved.length
  }

  /** The next step; asking again before answering repeats it. */
  next(): WalkStep {
    const owed = this.owed.shift()
    if (owed !== undefined) return owed
    if (this.opening !== undefined) return this.openStep(this.opening.name)
    if (this.done !== undefined) return this.done
    const again = this.rewalk.shift()
    if (again !== undefined) return this.open(again, true)
    while (this.pending.length > 0) {
      const segment = this.pending.shift()!
      if (segment === "" || segment === ".") continue
      if (segment === "..") {
        this.ascend()
        const step = this.owed.shift()
        if (step !== undefined) return step
        continue
      }
      if (this.pending.length === 0) {
        this.done = { _tag: "Done", path: fromSegments([...this.resolved, segment]), name: segment }
        return this.done
      }
      return this.open(segment, false)
    }
    this.done = { _tag: "Done", path: fromSegments(this.resolved), name: undefined }
    return this.done
  }

  /** Answers the pending `Open`. Throws `SftpStatus` when the walk cannot go on. */
  feed(found: Found): void {
    const opening = this.opening
    if (opening === undefined) throw new Error("Walk.feed called without a pending Open step")
    this.opening = undefined
    const path = fromSegments([...this.resolved, opening.name])
    if (opening.rewalk && found._tag !== "Directory") noSuchFile("the path changed while it was being resolved", this.original)
    switch (found._tag) {
      case "Directory":
        this.resolved.push(opening.name)
        if (this.depth - this.lowest + 1 > this.window) this.owed.push({ _tag: "Close", depth: this.lowest++ })
        return
      case "Link":
        return this.link(found.target)
      case "NotDirectory":
        return noSuchFile(`${path} is not a directory`, this.original)
      case "Missing":
        if (!this.lexical) return noSuchFile("no such file or directory", this.original)
        this.done = { _tag: "Unreached", path: fromSegments(applySegments([...this.resolved, opening.name], this.pending)) }
        return
      case "Changed":
        this.countLink()
        this.opens++
        this.opening = opening
        return
    }
  }

  /**
   * After `Done` with a name: that name is a symbolic link to `target`, which
   * the operation follows; the walk goes on from the link's directory.
   */
  follow(target: string): void {
    if (this.done?._tag !== "Done" || this.done.name === undefined) throw new Error("Walk.follow called without a final name")
    this.done = undefined
    this.link(target)
  }

  /** After `Done`: the final component changed under the operation; `next()` gives `Done` again (counted as a link). */
  retry(): void {
    if (this.done?._tag !== "Done") throw new Error("Walk.retry called before Done")
    this.countLink()
  }

  private openStep(name: string): WalkStep {
    return { _tag: "Open", name, path: fromSegments([...this.resolved, name]) }
  }

  private open(name: string, rewalk: boolean): WalkStep {
    if (++this.opens > MAX_WALK_OPENS) noSuchFile("too many path components to resolve", this.original)
    this.opening = { name, rewalk }
    return this.openStep(name)
  }

  private countLink(): void {
    if (++this.links > MAX_SYMLINKS) noSuchFile("too many levels of symbolic links", this.original)
  }

  private link(target: string): void {
    rejectNul(target)
    this.countLink()
    if (target.startsWith("/")) this.toRoot()
    this.pending = [...target.split("/"), ...this.pending]
  }

  private toRoot(): void {
    if (this.depth > 0) this.owed.push({ _tag: "Ascend", depth: 0 })
    this.resolved = []
    this.lowest = 1
  }

  /** `..`: back to the parent, held unless the window dropped it (then re-opened from the root). */
  private ascend(): void {
    if (this.depth === 0) return
    const parent = this.depth - 1
    if (parent === 0 || parent >= this.lowest) {
      this.resolved.pop()
      this.owed.push({ _tag: "Ascend", depth: parent })
      return
    }
    // re-open only the directory the run of ".." ends in: the ones between are known directories
    let target = parent
    while (this.pending.length > 0 && (this.pending[0] === ".." || this.pending[0] === "." || this.pending[0] === "")) {
      if (this.pending.shift() === ".." && target > 0) target--
    }
    const path = this.resolved.slice(0, target)
    this.toRoot()
    this.rewalk = path
  }
}

/** What a `Resolution` needs next. */
export type ResolutionStep =
  /** Is `path` a symbolic link? Answer with `feed(target)` or `feed(undefined)`. */
  | { readonly _tag: "Inspect"; readonly path: VirtualPath }
  /** Resolved: `path` has no symbolic link in its directories (nor as itself, when following). */
  | { readonly _tag: "Done"; readonly path: VirtualPath }

/**
 * The jail's path resolution without descriptors: a `Walk` over a model of
 * the links (a test model, or a what-if) that only says which components are
 * links. A component that is not a link is taken as a directory, and a
 * missing one is left for the file operation to report.
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
  private readonly walk: Walk
  private readonly followFinal: boolean
  private inspecting: { readonly path: VirtualPath; readonly final: boolean } | undefined
  private resolved: VirtualPath | undefined

  constructor(path: string, options: { readonly followFinal: boolean }) {
    this.walk = new Walk(path, { window: Number.MAX_SAFE_INTEGER })
    this.followFinal = options.followFinal
  }

  /** The next step: a component to inspect, or the resolved path. */
  next(): ResolutionStep {
    if (this.inspecting !== undefined) return { _tag: "Inspect", path: this.inspecting.path }
    if (this.resolved !== undefined) return { _tag: "Done", path: this.resolved }
    for (;;) {
      const step = this.walk.next()
      switch (step._tag) {
        case "Close":
        case "Ascend":
          continue
        case "Open":
          this.inspecting = { path: step.path, final: false }
          return { _tag: "Inspect", path: step.path }
        case "Done":
          if (this.followFinal && step.name !== undefined) {
            this.inspecting = { path: step.path, final: true }
            return { _tag: "Inspect", path: step.path }
          }
          this.resolved = step.path
          return { _tag: "Done", path: step.path }
        case "Unreached":
          this.resolved = step.path
          return { _tag: "Done", path: step.path }
      }
    }
  }

  /**
   * Answers the pending `Inspect`: the component's symlink target, or
   * `undefined` when it is not a link. Throws `SftpStatus` (NoSuchFile) after
   * `MAX_SYMLINKS` links, and (BadMessage) for a target with a NUL byte.
   */
  feed(target: string | undefined): void {
    const inspecting = this.inspecting
    if (inspecting === undefined) throw new Error("Resolution.feed called without a pending Inspect step")
    this.inspecting = undefined
    if (!inspecting.final) this.walk.feed(target === undefined ? { _tag: "Directory" } : { _tag: "Link", target })
    else if (target === undefined) this.resolved = inspecting.path
    else this.walk.follow(target)
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
