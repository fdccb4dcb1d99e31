import { readFileSync } from "node:fs"
import { describe, expect, it } from "vitest"
import { bcryptPbkdf } from "../../src/internal/bcryptPbkdf.ts"

interface Vector {
  readonly password_hex: string
  readonly salt_hex: string
  readonly rounds: number
  readonly out_hex: string
}

const { vectors } = JSON.parse(
  readFileSync(new URL("../../../shared/specs/testdata/vectors/bcrypt_pbkdf.json", import.meta.url), "utf8")
) as { vectors: ReadonlyArray<Vector> }

const hex = (s: string) => new Uint8Array(Buffer.from(s, "hex"))

describe("bcrypt_pbkdf (OpenBSD regress vectors)", () => {
  it.each(vectors.map((v, i) => [i, v] as const))("vector %i", (_, v) => {
    const out = bcryptPbkdf(hex(v.password_hex), hex(v.salt_hex), v.rounds, v.out_hex.length / 2)
    expect(Buffer.from(out).toString("hex")).toBe(v.out_hex)
  })

  it("refuses zero rounds, an empty salt, or an absurd length", () => {
    expect(() => bcryptPbkdf(hex("00"), hex(""), 1, 16)).toThrow(RangeError)
    expect(() => bcryptPbkdf(hex("00"), hex("00"), 0, 16)).toThrow(RangeError)
    expect(() => bcryptPbkdf(hex("00"), hex("00"), 1, 1025)).toThrow(RangeError)
  })
})
