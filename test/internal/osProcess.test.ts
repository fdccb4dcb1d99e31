import { describe, expect, it } from "vitest"
import * as fc from "fast-check"
import * as Effect from "effect/Effect"
import { spawn } from "node:child_process"
import { findExecutable, makeGroupWatch, signalGroup, signalNameOf, signalNumber, statusOf } from "../../src/internal/osProcess.ts"
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
  })

  it("a group watch waits until a process group has ended, zombies counting as gone", async () => {
    const watch = makeGroupWatch()
    // the shell exits at once; its background sleep keeps the group alive for 0.3 s, then is an orphan (maybe a zombie)
    const child = spawn("/bin/sh", ["-c", "sleep 0.3 & exit 4"], { detached: true, stdio: "ignore" })
    const pgid = child.pid!
    expect(await Effect.runPromise(watch.awaitGone([pgid], 100))).toBe(false)
    const started = Date.now()
    expect(await Effect.runPromise(watch.awaitGone([pgid], 5000))).toBe(true)
    expect(Date.now() - started).toBeLessThan(3000)
    expect(await Effect.runPromise(watch.awaitGone([], 0))).toBe(true)
  })

  it("many waiters share the watch's scans", async () => {
    const watch = makeGroupWatch({ scanInterval: 100 })
    const children = Array.from({ length: 20 }, () => spawn("/bin/sh", ["-c", "sleep 30"], { detached: true, stdio: "ignore" }))
    try {
      const waits = Promise.all(children.map((c) => Effect.runPromise(watch.awaitGone([c.pid!], 10_000))))
      await new Promise((r) => setTimeout(r, 200))
      for (const c of children) signalGroup(c.pid, "SIGKILL")
      expect(await waits).toEqual(children.map(() => true))
    } finally {
      for (const c of children) signalGroup(c.pid, "SIGKILL")
    }
  })
})
