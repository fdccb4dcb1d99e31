import { describe, expect, it } from "vitest"
import * as fc from "fast-check"
import * as Effect from "effect/Effect"
import { spawn } from "node:child_process"
import * as os from "node:os"
import { findExecutable, groupAlive, isDirectory, signalNameOf, signalNumber, statusOf, watchExit } from "../../src/internal/osProcess.ts"
import { signalNumbers } from "../../src/Channel/Requests.ts"

describe("osProcess", () => {
  it("signal names and numbers round-trip for every RFC 4254 signal", () => {
    fc.assert(fc.property(fc.constantFrom(...Object.keys(signalNumbers)), (name) => {
      expect(signalNumber(name)).toBe(signalNumbers[name])
      expect(signalNameOf(signalNumber(name)!)).toBe(name)
    }))
    expect(signalNumber("tea@example.com")).toBeUndefined()
    expect(signalNumber("constructor")).toBeUndefined()
    expect(signalNameOf(99_999)).toBe("99999")
  })

  it("maps Node's exit pair onto an ExitStatus", () => {
    expect(statusOf(3, null)).toEqual({ _tag: "Exited", code: 3 })
    expect(statusOf(null, "SIGKILL")).toEqual({ _tag: "Signaled", signal: "KILL", coreDumped: false, message: "" })
  })

  it("finds executables on a PATH", () => {
    expect(findExecutable("sh", "/nonexistent:/bin:/usr/bin")).toMatch(/\/sh$/)
    expect(findExecutable("sh", "")).toBeUndefined()
    expect(findExecutable("/bin/sh")).toBe("/bin/sh")
    expect(findExecutable("/etc/hostname-not-executable")).toBeUndefined()
    expect(isDirectory(os.tmpdir())).toBe(true)
    expect(isDirectory("/bin/sh")).toBe(false)
  })

  it("watches a child's exit and its process group", async () => {
    const child = spawn("/bin/sh", ["-c", "sleep 0.2 & exit 4"], { detached: true, stdio: "ignore" })
    expect(groupAlive(child.pid)).toBe(true)
    expect(await Effect.runPromise(watchExit(child, "sh", "exit"))).toEqual({ _tag: "Exited", code: 4 })
    const deadline = Date.now() + 5000
    while (groupAlive(child.pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
    expect(groupAlive(child.pid)).toBe(false)
    expect(groupAlive(undefined)).toBe(false)
  })

  it("a child that cannot start is a typed failure", async () => {
    const error = await Effect.runPromise(Effect.flip(watchExit(spawn("/nonexistent/x"), "/nonexistent/x", "close")))
    expect(error.reason._tag).toBe("ChannelRequestFailed")
  })
})
