/**
 * A payload sealed in parts (channel-data header + the caller's bytes, as the
 * connection sends data) is the same wire packet as the payload sealed whole.
 */
import { describe, expect, it } from "vitest"
import * as fc from "fast-check"
import * as Cipher from "../../src/Transport/Cipher.ts"
import { keysFor, seededRandom } from "./cipher/helpers.ts"

const pairs: ReadonlyArray<readonly [string, string]> = [...Cipher.cipherNames, "none"].flatMap((c) =>
  Cipher.cipherSpec(c)!.aead ? [[c, "none"] as const] : Cipher.macNames.map((m) => [c, m] as const)
)

describe("sealing a payload in parts", () => {
  it.each(pairs)("%s + %s: parts seal to the same bytes as the whole", (cipher, mac) => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 3000 }), { minLength: 1, maxLength: 4 }),
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.integer(),
        (parts, seqno, seed) => {
          const keys = keysFor(cipher, mac, seededRandom(seed ^ 0x5eed))
          const whole = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
          let o = 0
          for (const p of parts) {
            whole.set(p, o)
            o += p.length
          }
          const a = Cipher.makeSealer(keys, seededRandom(seed)).seal(whole, seqno)
          const b = Cipher.makeSealer(keys, seededRandom(seed)).seal(parts, seqno)
          expect(Buffer.from(b).equals(Buffer.from(a))).toBe(true)
        }
      ),
      { numRuns: 40 }
    )
  })
})
