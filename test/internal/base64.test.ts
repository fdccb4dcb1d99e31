import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import * as Base64 from "../../src/internal/base64.ts"

describe("base64", () => {
  it("agrees with Buffer and round-trips", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100_000 }), (bytes) => {
        const text = Base64.encode(bytes)
        expect(text).toBe(Buffer.from(bytes).toString("base64"))
        expect([...Base64.decode(text)!]).toEqual([...bytes])
        const url = Base64.encodeUrl(bytes)
        expect(url).toBe(Buffer.from(bytes).toString("base64url"))
        expect([...Base64.decodeUrl(url)!]).toEqual([...bytes])
      }),
      { numRuns: 200 }
    )
  })

  it("rejects what is not base64", () => {
    for (const bad of ["A", "AB", "ABC", "AB=C", "A===", "AB*D", "ABCD ", "=ABC"]) expect(Base64.decode(bad)).toBeUndefined()
    for (const bad of ["A", "AB+", "AB/", "AB=="]) expect(Base64.decodeUrl(bad)).toBeUndefined()
  })
})
