/**
 * The SFTP server's path jail: normalisation, chroot-style symlink
 * resolution, loops, and properties — no path, however spelt and whatever the
 * links, resolves outside the root.
 */
import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import * as Jail from "../../src/Sftp/Jail.ts"
import { SftpStatus } from "../../src/SshError.ts"
import { StatusCode } from "../../src/Sftp/Status.ts"

const thrown = (f: () => unknown): unknown => {
  try {
    f()
  } catch (e) {
    return e
  }
  throw new Error("did not throw")
}

describe("normalize", () => {
  it.each([
    ["/", "/"],
    ["", "/"],
    [".", "/"],
    ["..", "/"],
    ["../../..", "/"],
    ["/../etc/passwd", "/etc/passwd"],
    ["a//b/./c/", "/a/b/c"],
    ["/a/b/../../../c", "/c"],
    ["a/../../b", "/b"]
  ])("%j → %j", (input, expected) => {
    expect(Jail.normalize(input)).toBe(expected)
  })

  it("takes relative paths from cwd", () => {
    expect(Jail.normalize("b/../c", "/a")).toBe("/a/c")
    expect(Jail.normalize("/x", "/a")).toBe("/x")
    expect(Jail.normalize("../../..", "/a/b")).toBe("/")
  })

  it("rejects a NUL byte with a BadMessage SftpStatus", () => {
    const e = thrown(() => Jail.normalize("/a\0b"))
    expect(e).toBeInstanceOf(SftpStatus)
    expect((e as SftpStatus).code).toBe(StatusCode.BadMessage)
  })
})

describe("path helpers", () => {
  it("splits, joins and places paths under the root", () => {
    expect(Jail.segments("/")).toEqual([])
    expect(Jail.segments("/a/b")).toEqual(["a", "b"])
    expect(Jail.parent("/a/b")).toBe("/a")
    expect(Jail.parent("/a")).toBe("/")
    expect(Jail.parent("/")).toBe("/")
    expect(Jail.basename("/a/b")).toBe("b")
    expect(Jail.basename("/")).toBe("")
    expect(Jail.toReal("/srv/sftp", "/a/b")).toBe("/srv/sftp/a/b")
    expect(Jail.toReal("/srv/sftp", "/")).toBe("/srv/sftp")
    expect(Jail.toReal("", "/")).toBe("/")
    expect(Jail.toReal("", "/etc")).toBe("/etc")
  })

  it("normalises a root and refuses a relative one", () => {
    expect(Jail.rootOf("/srv//sftp/")).toBe("/srv/sftp")
    expect(Jail.rootOf("/")).toBe("")
    expect(thrown(() => Jail.rootOf("srv"))).toBeInstanceOf(SftpStatus)
  })
})

describe("Resolution", () => {
  const links = (map: Record<string, string>) => (path: string) => map[path]

  it("follows relative links from the link's directory", () => {
    const readLink = links({ "/a/link": "../real" })
    expect(Jail.resolveWith("/a/link/file", readLink, true)).toBe("/real/file")
  })

  it("treats absolute targets as jail-absolute (chroot semantics)", () => {
    const readLink = links({ "/home/out": "/etc" })
    expect(Jail.resolveWith("/home/out/passwd", readLink, true)).toBe("/etc/passwd")
  })

  it("cannot climb above the root through links", () => {
    const readLink = links({ "/up": "../../../../..", "/deep/a": "../../../../../etc" })
    expect(Jail.resolveWith("/up/etc/passwd", readLink, true)).toBe("/etc/passwd")
    expect(Jail.resolveWith("/deep/a/shadow", readLink, true)).toBe("/etc/shadow")
  })

  it("applies '..' after a link to the link's target, as POSIX does", () => {
    const readLink = links({ "/l": "/x/y" })
    expect(Jail.resolveWith("/l/../z", readLink, true)).toBe("/x/z")
  })

  it("leaves the final link alone unless following", () => {
    const readLink = links({ "/dir/link": "/target" })
    expect(Jail.resolveWith("/dir/link", readLink, false)).toBe("/dir/link")
    expect(Jail.resolveWith("/dir/link", readLink, true)).toBe("/target")
  })

  it("follows chains of links", () => {
    const readLink = links({ "/a": "b", "/b": "c", "/c": "/d" })
    expect(Jail.resolveWith("/a/x", readLink, true)).toBe("/d/x")
  })

  it("reports a loop as NoSuchFile after MAX_SYMLINKS links", () => {
    const readLink = links({ "/a": "b", "/b": "a" })
    const e = thrown(() => Jail.resolveWith("/a/x", readLink, true))
    expect(e).toBeInstanceOf(SftpStatus)
    expect((e as SftpStatus).code).toBe(StatusCode.NoSuchFile)
    expect((e as SftpStatus).path).toBe("/a/x")
  })

  it("asks only about components it has to follow", () => {
    const asked: Array<string> = []
    Jail.resolveWith("/a/b/c", (p) => {
      asked.push(p)
      return undefined
    }, false)
    expect(asked).toEqual(["/a", "/a/b"])
  })

  it("refuses feed without a pending step, and a NUL in a target", () => {
    const r = new Jail.Resolution("/a", { followFinal: true })
    expect(() => r.feed(undefined)).toThrow()
    expect(r.next()).toEqual({ _tag: "Inspect", path: "/a" })
    expect(thrown(() => r.feed("x\0y"))).toBeInstanceOf(SftpStatus)
  })
})

describe("properties", () => {
  const segment = fc.constantFrom("a", "b", "..", ".", "", "c d", "\u00e9")
  const path = fc.array(segment, { maxLength: 8 }).chain((parts) =>
    fc.boolean().map((absolute) => (absolute ? "/" : "") + parts.join("/"))
  )
  const target = fc.oneof(path, fc.constantFrom("/", "..", "../..", "/../../etc"))
  const linkMap = fc.dictionary(path.map((p) => Jail.normalize(p)), target, { maxKeys: 6 })

  const isVirtual = (p: string) =>
    p.startsWith("/") && (p === "/" || !p.endsWith("/")) && Jail.segments(p).every((s) => s !== "" && s !== "." && s !== "..")

  it("normalize yields a virtual path and is idempotent", () => {
    fc.assert(fc.property(path, (p) => {
      const n = Jail.normalize(p)
      expect(isVirtual(n)).toBe(true)
      expect(Jail.normalize(n)).toBe(n)
    }))
  })

  it("resolution always ends inside the jail, or fails with an SftpStatus", () => {
    fc.assert(fc.property(path, linkMap, fc.boolean(), (p, map, followFinal) => {
      try {
        const resolved = Jail.resolveWith(p, (v) => map[v], followFinal)
        expect(isVirtual(resolved)).toBe(true)
        expect(Jail.toReal("/jail", resolved).startsWith("/jail")).toBe(true)
      } catch (e) {
        expect(e).toBeInstanceOf(SftpStatus)
      }
    }))
  })

  it("without links, resolution is normalisation", () => {
    fc.assert(fc.property(path, fc.boolean(), (p, followFinal) => {
      expect(Jail.resolveWith(p, () => undefined, followFinal)).toBe(Jail.normalize(p))
    }))
  })

  it("garbage in → a resolved path or an SftpStatus, never another exception", () => {
    fc.assert(fc.property(fc.string({ unit: "binary", maxLength: 40 }), fc.string({ unit: "binary", maxLength: 20 }), (p, t) => {
      try {
        Jail.resolveWith(p, (v) => v.length % 2 === 0 ? t : undefined, true)
      } catch (e) {
        expect(e).toBeInstanceOf(SftpStatus)
      }
    }))
  })
})

/**
 * A model file system and a shell that drives a `Walk` over it the way the
 * server's does: it holds the directory node of each depth (as a descriptor
 * holds an inode), opens names only in the held current directory, never
 * follows a link itself, and checks the walk's descriptor discipline at
 * every step.
 */
type ModelNode =
  | { readonly kind: "dir"; readonly children: Map<string, ModelNode> }
  | { readonly kind: "file"; readonly content: string }
  | { readonly kind: "link"; readonly target: string }

const dir = (entries: Record<string, ModelNode> = {}): ModelNode => ({ kind: "dir", children: new Map(Object.entries(entries)) })
const file = (content: string): ModelNode => ({ kind: "file", content })
const link = (target: string): ModelNode => ({ kind: "link", target })
const childrenOf = (node: ModelNode | undefined) => {
  if (node?.kind !== "dir") throw new Error("the shell holds a non-directory")
  return node.children
}

interface Driven {
  readonly done: Extract<Jail.WalkStep, { _tag: "Done" | "Unreached" }>
  /** What the walk ended on: the node named by `done.name` in the held directory, or the held directory. */
  readonly target: ModelNode | undefined
  readonly steps: Array<Jail.WalkStep>
  readonly maxHeld: number
}

const drive = (
  path: string,
  root: ModelNode,
  options: Jail.WalkOptions & { readonly followFinal?: boolean; readonly beforeEach?: (step: number) => void } = {}
): Driven => {
  const walk = new Jail.Walk(path, options)
  const held: Array<ModelNode | undefined> = [root]
  const steps: Array<Jail.WalkStep> = []
  let maxHeld = 0
  for (let i = 0; ; i++) {
    options.beforeEach?.(i)
    const step = walk.next()
    steps.push(step)
    if (step._tag === "Open" || step._tag === "Done") {
      // by now the shell's stack is the walk's: the current directory is held, and at most the window above the root
      expect(held.length - 1).toBe(walk.depth)
      expect(held[walk.depth]).toBeDefined()
      maxHeld = Math.max(maxHeld, held.slice(1).filter((n) => n !== undefined).length)
    }
    switch (step._tag) {
      case "Open": {
        const child = childrenOf(held[walk.depth]).get(step.name)
        if (child?.kind === "dir") held.push(child)
        walk.feed(
          child === undefined
            ? { _tag: "Missing" }
            : child.kind === "dir"
            ? { _tag: "Directory" }
            : child.kind === "link"
            ? { _tag: "Link", target: child.target }
            : { _tag: "NotDirectory" }
        )
        break
      }
      case "Close":
        expect(step.depth).toBeGreaterThan(0)
        expect(held[step.depth]).toBeDefined()
        held[step.depth] = undefined
        break
      case "Ascend":
        expect(held[step.depth]).toBeDefined()
        held.length = step.depth + 1
        break
      case "Unreached":
        return { done: step, target: undefined, steps, maxHeld }
      case "Done": {
        const current = held[walk.depth]
        const target = step.name === undefined ? current : childrenOf(current).get(step.name)
        if (options.followFinal && target?.kind === "link") {
          walk.follow(target.target)
          break
        }
        return { done: step, target, steps, maxHeld }
      }
    }
  }
}

const noSuchFile = (f: () => unknown) => {
  const e = thrown(f)
  expect(e).toBeInstanceOf(SftpStatus)
  expect((e as SftpStatus).code).toBe(StatusCode.NoSuchFile)
  return e as SftpStatus
}

describe("Walk", () => {
  const passwd = file("inside")
  const tree = () =>
    dir({
      race: dir({ passwd }),
      etc: dir({ hosts: file("jail hosts") }),
      abs: link("/etc"),
      up: link("../../../../etc"),
      loop: link("loop"),
      a: link("b"),
      b: link("a"),
      plain: file("plain")
    })

  it("opens each directory on the way and ends at the last name, unopened", () => {
    const { done, steps, target } = drive("/race/passwd", tree())
    expect(steps).toEqual([
      { _tag: "Open", name: "race", path: "/race" },
      { _tag: "Done", path: "/race/passwd", name: "passwd" }
    ])
    expect(done).toEqual({ _tag: "Done", path: "/race/passwd", name: "passwd" })
    expect(target).toBe(passwd)
  })

  it("keeps '..' at the root without opening anything above it", () => {
    const { steps } = drive("/../../../race/../../etc/hosts", tree())
    expect(steps.filter((s) => s._tag === "Open").map((s) => s._tag === "Open" && s.name)).toEqual(["race", "etc"])
    expect(steps.at(-1)).toEqual({ _tag: "Done", path: "/etc/hosts", name: "hosts" })
    expect(drive("/..", tree()).done).toEqual({ _tag: "Done", path: "/", name: undefined })
  })

  it("starts an absolute target again at the root, and never climbs above it through a relative one", () => {
    const abs = drive("/race/../abs/hosts", tree())
    expect(abs.done).toEqual({ _tag: "Done", path: "/etc/hosts", name: "hosts" })
    expect(abs.steps).toContainEqual({ _tag: "Ascend", depth: 0 })
    expect(drive("/up/hosts", tree()).done).toEqual({ _tag: "Done", path: "/etc/hosts", name: "hosts" })
  })

  it("follows a final link only when the operation says so", () => {
    expect(drive("/abs", tree()).done).toEqual({ _tag: "Done", path: "/abs", name: "abs" })
    expect(drive("/abs", tree(), { followFinal: true }).done).toEqual({ _tag: "Done", path: "/etc", name: "etc" })
  })

  it("reports a link loop as NoSuchFile after MAX_SYMLINKS links", () => {
    expect(noSuchFile(() => drive("/loop/x", tree())).path).toBe("/loop/x")
    noSuchFile(() => drive("/a/x", tree()))
    noSuchFile(() => drive("/a", tree(), { followFinal: true }))
  })

  it("refuses a file where a directory is needed, and a missing directory", () => {
    expect(noSuchFile(() => drive("/plain/x", tree())).message).toContain("not a directory")
    noSuchFile(() => drive("/nope/x", tree()))
  })

  it("ends a lexical walk at the first missing directory with the rest applied as spelt", () => {
    expect(drive("/nope/x/../y", tree(), { lexical: true }).done).toEqual({ _tag: "Unreached", path: "/nope/y" })
  })

  it("asks again after a change between open and readlink, counting it against the loop limit", () => {
    const walk = new Jail.Walk("/race/passwd")
    const open = walk.next()
    for (let i = 0; i < Jail.MAX_SYMLINKS; i++) {
      walk.feed({ _tag: "Changed" })
      expect(walk.next()).toEqual(open)
    }
    noSuchFile(() => walk.feed({ _tag: "Changed" }))
  })

  it("holds at most its window, and re-opens an ancestor it let go from the root", () => {
    const deep = dir({ a: dir({ b: dir({ c: dir({ d: dir({ e: dir({ f: file("f") }) }) }) }) }) })
    const { done, steps, maxHeld } = drive("/a/b/c/d/e/../../../../f", deep, { window: 2 })
    expect(maxHeld).toBe(2)
    expect(steps.filter((s) => s._tag === "Close")).toHaveLength(3)
    // "/a/b/c/d/e" then four ".." → "/a": the window held only d and e, so after one ".." back to d the rest of the
    // run climbs above it and "/a" is re-opened from the root
    expect(done).toEqual({ _tag: "Done", path: "/a/f", name: "f" })
    const opens = steps.filter((s) => s._tag === "Open").map((s) => s._tag === "Open" && s.path)
    expect(opens).toEqual(["/a", "/a/b", "/a/b/c", "/a/b/c/d", "/a/b/c/d/e", "/a"])
  })

  it("refuses a re-opened ancestor that became a link meanwhile", () => {
    const root = dir({ a: dir({ b: dir({ c: dir({ x: file("x") }) }) }) })
    const refused = noSuchFile(() =>
      drive("/a/b/c/../../x", root, {
        window: 2,
        beforeEach: (i) => {
          // once the walk has let "/a" go, "/a" becomes a link out
          if (i === 4) childrenOf(root).set("a", link("/etc"))
        }
      })
    )
    expect(refused.message).toContain("changed")
  })

  it("bounds the opens one path can cost", () => {
    const root = dir({ a: dir() })
    expect(noSuchFile(() => drive("a/../".repeat(Jail.MAX_WALK_OPENS + 1) + "x", root)).message).toContain("too many")
  })

  it("a directory swapped for a link mid-walk: the held directory, or a refusal, never the link's target", () => {
    // the swap happens before step k, for every k: the walk either holds the original directory or sees the link
    const outside = dir({ passwd: file("SENTINEL") })
    for (let k = 0; k < 6; k++) {
      const root = dir({ race: dir({ passwd }) })
      const host = dir({ jail: root, outside })
      let raceDir: ModelNode | undefined
      const swap = (i: number) => {
        if (i !== k) return
        raceDir = childrenOf(root).get("race")
        childrenOf(root).set("race_dir", raceDir!)
        childrenOf(root).set("race", link("/outside"))
      }
      try {
        const { target } = drive("/race/passwd", root, { followFinal: true, beforeEach: swap })
        expect(target).toBe(passwd)
      } catch (e) {
        expect(e).toBeInstanceOf(SftpStatus)
      }
      expect(childrenOf(host).get("outside")).toBe(outside)
    }
  })

  it("in a fixed tree, what the shell holds is what the walk's path names, with no link on the way", () => {
    const name = fc.constantFrom("a", "b", "l", "m", "f")
    const node: fc.Arbitrary<ModelNode> = fc.letrec<{ node: ModelNode }>((tie) => ({
      node: fc.oneof(
        { depthSize: "small", withCrossShrink: true },
        fc.constant(file("f")),
        fc.constantFrom("/", "..", "a", "../b", "/a/l", "m/..").map(link),
        fc.dictionary(name, tie("node"), { maxKeys: 4 }).map((entries) => dir(entries))
      )
    })).node
    const segment = fc.constantFrom("a", "b", "l", "m", "f", "..", ".", "")
    const path = fc.array(segment, { maxLength: 8 }).map((parts) => "/" + parts.join("/"))
    fc.assert(fc.property(fc.dictionary(name, node, { maxKeys: 5 }), path, fc.boolean(), fc.integer({ min: 2, max: 4 }), (entries, p, followFinal, window) => {
      const root = dir(entries)
      let driven: Driven
      try {
        driven = drive(p, root, { followFinal, window })
      } catch (e) {
        expect(e).toBeInstanceOf(SftpStatus)
        return
      }
      const { done, target } = driven
      if (done._tag !== "Done") return
      // the path's directories, walked in the model without links, are real directories and lead to the target
      let current: ModelNode = root
      const segments = Jail.segments(done.path)
      const last = done.name === undefined ? segments.length : segments.length - 1
      for (const s of segments.slice(0, last)) {
        const next = childrenOf(current).get(s)
        expect(next?.kind).toBe("dir")
        current = next!
      }
      expect(done.name === undefined ? current : childrenOf(current).get(done.name)).toBe(target)
      if (followFinal) expect(target?.kind).not.toBe("link")
    }), { numRuns: 1000 })
  })
})
