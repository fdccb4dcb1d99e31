import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import * as AuthorizedKeys from "../../src/Auth/AuthorizedKeys.ts"
import * as PublicKey from "../../src/Auth/PublicKey.ts"
import { readText } from "./fixtures.ts"

const ed = PublicKey.parseOpenSsh(readText("openssh/sshkey/ed25519_1.pub"))
const rsa = PublicKey.parseOpenSsh(readText("openssh/sshkey/rsa_1.pub"))
const ecdsa = PublicKey.parseOpenSsh(readText("openssh/sshkey/ecdsa_1.pub"))

describe("AuthorizedKeys.parse", () => {
  it("reads bare keys, keys with options, comments and blank lines", () => {
    const text = [
      "# my keys",
      PublicKey.toOpenSsh(ed),
      "",
      `no-pty,command="echo \\"hi, there\\"",from="10.0.0.0/8,192.168.*" ${PublicKey.toOpenSsh(rsa)}`,
      `  restrict,port-forwarding\t${PublicKey.toOpenSsh(ecdsa, { comment: "ops team" })}  `
    ].join("\n")
    const { entries, errors } = AuthorizedKeys.parse(text)
    expect(errors).toEqual([])
    expect(entries.map((e) => [e.line, e.options, e.key.comment])).toEqual([
      [2, [], "ED25519 test key #1"],
      [4, ["no-pty", 'command="echo \\"hi, there\\""', 'from="10.0.0.0/8,192.168.*"'], "RSA test key #1"],
      [5, ["restrict", "port-forwarding"], "ops team"]
    ])
    expect(PublicKey.equals(entries[1]!.key, rsa)).toBe(true)
  })

  it("reports unusable lines", () => {
    const { entries, errors } = AuthorizedKeys.parse(
      [
        'command="unterminated ssh-ed25519 AAAA',
        "no-pty",
        "ssh-dss AAAAB3NzaC1kc3MAAACBAP== old",
        `no-pty,,x ${PublicKey.toOpenSsh(ed)}`,
        `no-pty ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFOG6kY7Rf4UtCFvPwKgo/BztXck2xC4a2WyA34Xt`
      ].join("\n")
    )
    expect(entries).toEqual([])
    expect(errors.map((e) => e.line)).toEqual([1, 2, 3, 4, 5])
    expect(errors[0]!.message).toMatch(/unterminated quote/)
  })

  it("find returns the entry for an offered key", () => {
    const { entries } = AuthorizedKeys.parse(`${AuthorizedKeys.formatLine(rsa, ["no-pty"])}\n${AuthorizedKeys.formatLine(ed)}\n`)
    expect(AuthorizedKeys.find(entries, ed)?.line).toBe(2)
    expect(AuthorizedKeys.find(entries, rsa)?.options).toEqual(["no-pty"])
    expect(AuthorizedKeys.find(entries, ecdsa)).toBeUndefined()
  })

  it("formatLine → parse round trip", () => {
    const option = fc.oneof(
      fc.stringMatching(/^[a-z-]{1,12}$/),
      fc.tuple(fc.stringMatching(/^[a-z-]{1,8}$/), fc.stringMatching(/^[a-z0-9 ,.*/]{0,16}$/)).map(([n, v]) => `${n}="${v}"`)
    )
    fc.assert(
      fc.property(fc.constantFrom(ed, rsa, ecdsa), fc.array(option, { maxLength: 4 }), (key, options) => {
        const { entries, errors } = AuthorizedKeys.parse(AuthorizedKeys.formatLine(key, options))
        expect(errors).toEqual([])
        expect(entries[0]!.options).toEqual(options)
        expect(PublicKey.equals(entries[0]!.key, key)).toBe(true)
      })
    )
  })

  it("splitOptions respects quotes and escaped quotes", () => {
    expect(AuthorizedKeys.splitOptions('a,b="1,2",c="x\\"y,z"')).toEqual(["a", 'b="1,2"', 'c="x\\"y,z"'])
    expect(AuthorizedKeys.splitOptions('a="open')).toBeUndefined()
  })

  it("never throws on arbitrary text", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), (text) => {
        AuthorizedKeys.parse(text)
        AuthorizedKeys.parse(`${text} ${PublicKey.toOpenSsh(ed)}`)
      }),
      { numRuns: 1000 }
    )
  })
})
