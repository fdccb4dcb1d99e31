import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import { ProtocolError } from "../../src/SshError.ts"
import type { SftpResponse } from "../../src/Sftp/Messages.ts"
import { expectedReplies, isExpectedReply, RequestTable } from "../../src/Sftp/Requests.ts"

const status = (id: number): SftpResponse => ({ _tag: "Status", id, code: 0, message: "", language: "" })

describe("RequestTable", () => {
  it("matches replies that arrive in any order", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 40 }).chain((n) =>
          fc.tuple(fc.constant(n), fc.shuffledSubarray([...Array(n).keys()], { minLength: n, maxLength: n }))
        ),
        ([n, order]) => {
          const table = new RequestTable<number>()
          const ids = Array.from({ length: n }, (_, i) => table.submit((id) => ({ _tag: "Close", id, handle: new Uint8Array(1) }), i).id)
          expect(new Set(ids).size).toBe(n)
          for (const i of order) {
            const entry = table.settle(status(ids[i]!))
            expect(entry).toEqual({ id: ids[i], kind: "Close", meta: i })
          }
          expect(table.size).toBe(0)
        }
      )
    )
  })

  it("rejects a reply with an unknown id, and a second reply to the same id", () => {
    const table = new RequestTable<string>()
    const { id } = table.submit((id) => ({ _tag: "Stat", id, path: "/" }), "stat")
    expect(() => table.settle(status(id + 1))).toThrow(ProtocolError)
    expect(() => table.settle(status(id + 1))).toThrow(/unknown request id/)
    expect(table.settle({ _tag: "Attrs", id, attrs: {} }).meta).toBe("stat")
    expect(() => table.settle({ _tag: "Attrs", id, attrs: {} })).toThrow(/unknown request id/)
  })

  it("rejects a reply of a type its request never gets", () => {
    const table = new RequestTable<undefined>()
    const write = table.submit((id) => ({ _tag: "Write", id, handle: new Uint8Array(1), offset: 0, data: new Uint8Array() }), undefined)
    expect(() => table.settle({ _tag: "Attrs", id: write.id, attrs: {} })).toThrow(/unexpected SFTP Attrs reply to Write request/)
    expect(table.has(write.id)).toBe(false)
  })

  it("knows the reply types of every request kind", () => {
    expect(expectedReplies.Open).toEqual(["Handle", "Status"])
    expect(expectedReplies.Read).toEqual(["Data", "Status"])
    expect(isExpectedReply("Readdir", "Name")).toBe(true)
    expect(isExpectedReply("Stat", "Attrs")).toBe(true)
    expect(isExpectedReply("Stat", "Name")).toBe(false)
    expect(isExpectedReply("Realpath", "Name")).toBe(true)
    expect(isExpectedReply("Limits", "ExtendedReply")).toBe(true)
    expect(isExpectedReply("ExpandPath", "Name")).toBe(true)
    expect(isExpectedReply("Fsync", "ExtendedReply")).toBe(false)
    expect(isExpectedReply("Extended", "Data")).toBe(true)
    for (const kind of Object.keys(expectedReplies) as Array<keyof typeof expectedReplies>) {
      expect(isExpectedReply(kind, "Status")).toBe(true)
    }
  })

  it("wraps ids modulo 2^32", () => {
    const table = new RequestTable<number>(0xffff_fffe)
    const a = table.submit((id) => ({ _tag: "Limits", id }), 1).id
    const b = table.submit((id) => ({ _tag: "Limits", id }), 2).id
    const c = table.submit((id) => ({ _tag: "Limits", id }), 3).id
    expect([a, b, c]).toEqual([0xffff_fffe, 0xffff_ffff, 0])
  })

  it("refuses a request built with another id", () => {
    const table = new RequestTable<undefined>()
    expect(() => table.submit(() => ({ _tag: "Limits", id: 99 }), undefined)).toThrow(ProtocolError)
    expect(table.size).toBe(0)
  })

  it("drains every outstanding request", () => {
    const table = new RequestTable<string>()
    table.submit((id) => ({ _tag: "Opendir", id, path: "/" }), "a")
    table.submit((id) => ({ _tag: "Readlink", id, path: "/l" }), "b")
    expect(table.drain().map((p) => [p.kind, p.meta])).toEqual([["Opendir", "a"], ["Readlink", "b"]])
    expect(table.size).toBe(0)
  })
})
