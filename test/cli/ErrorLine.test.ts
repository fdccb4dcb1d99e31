/**
 * The CLI's error line for what is not an SshError (an interruption squashed
 * by Ctrl-C, a defect): described as is, not passed off as a reason, and
 * never a throw while reporting.
 */
import { describe, expect, it } from "vitest"
import { errorLine } from "../../src/cli/Exec.ts"
import * as SshError from "../../src/SshError.ts"

describe("errorLine", () => {
  it("names the reason of an SshError or a bare reason", () => {
    expect(errorLine(SshError.make(new SshError.Timeout({ message: "late" })))).toBe("effect-ssh: Timeout: late\n")
    expect(errorLine(new SshError.Timeout({ message: "late" }))).toBe("effect-ssh: Timeout: late\n")
  })

  it("describes an interruption or a defect without calling it a reason", () => {
    expect(errorLine(new Error("All fibers interrupted without error"))).toBe("effect-ssh: All fibers interrupted without error\n")
    expect(errorLine(new TypeError("x is undefined"))).toBe("effect-ssh: x is undefined\n")
    expect(errorLine({ toString: false })).toBe("effect-ssh: [object Object]\n")
  })
})
