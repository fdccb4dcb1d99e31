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
