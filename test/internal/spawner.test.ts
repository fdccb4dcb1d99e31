/**
 * The spawner: processes started by a helper process, their pipes handed
 * back as sockets, exit statuses, typed failures, and queues that take turns.
 */
import { describe, expect, it } from "vitest"
import * as Effect from "effect/Effect"
import type * as net from "node:net"
import { FairQueue, makeSpawner } from "../../src/internal/spawner.ts"

const readAll = (socket: net.Socket): Promise<string> =>
  new Promise((resolve) => {
    let text = ""
    socket.setEncoding("utf8")
    socket.on("data", (chunk: string) => void (text += chunk))
    socket.once("end", () => resolve(text))
  })

const sh = (script: string, pipes: 3 | 4 = 3) => ({ file: "/bin/sh", args: ["-c", script], cwd: "/", env: { PATH: "/usr/bin:/bin" }, pipes })

describe("FairQueue", () => {
  it("serves keys in turn when their loads are equal", () => {
    const q = new FairQueue<string>()
    for (const item of ["a1", "a2", "a3"]) q.push("a", item)
    q.push("b", "b1")
    q.push("c", "c1")
    q.push("b", "b2")
    expect(q.remove("a", "a3")).toBe(true)
    expect(q.remove("a", "zz")).toBe(false)
    const order: Array<string> = []
    for (let item = q.shift(() => 0); item !== undefined; item = q.shift(() => 0)) order.push(item)
    expect(order).toEqual(["a1", "b1", "c1", "a2", "b2"])
    expect(q.size).toBe(0)
  })

  it("serves the least loaded key first", () => {
    const q = new FairQueue<string>()
    const load = new Map([["storm", 0], ["login", 0]])
    for (let i = 0; i < 5; i++) q.push("storm", `s${i}`)
    const served = [q.shift((k) => load.get(k)!), q.shift((k) => load.get(k)!)]
    load.set("storm", 2)
    q.push("login", "l0")
    served.push(q.shift((k) => load.get(k)!)!, q.shift((k) => load.get(k)!)!)
    expect(served).toEqual(["s0", "s1", "l0", "s2"])
  })
})

describe("makeSpawner", () => {
  const spawner = makeSpawner({ idleTimeout: 500 })

  it("pipes, data both ways, exit codes and signals", async () => {
    const child = await Effect.runPromise(spawner.spawn(sh("read line; echo \"got $line\"; echo err >&2; exit 3"), "k"))
    const [out, err] = [readAll(child.stdio[1]!), readAll(child.stdio[2]!)]
    child.stdio[0]!.end("hello\n")
    expect(await out).toBe("got hello\n")
    expect(await err).toBe("err\n")
    expect(await Effect.runPromise(child.exit)).toEqual({ _tag: "Exited", code: 3 })
    const killed = await Effect.runPromise(spawner.spawn(sh("kill -TERM $$"), "k"))
    expect(await Effect.runPromise(killed.exit)).toEqual({ _tag: "Signaled", signal: "TERM", coreDumped: false, message: "" })
  })

  it("output written before the pipes reach us is not lost, for many processes at once", async () => {
    const children = await Effect.runPromise(Effect.forEach(
      Array.from({ length: 20 }, (_, i) => i),
      (i) => spawner.spawn(sh(`head -c 100000 /dev/zero | tr '\\0' ${String.fromCharCode(97 + i)}`), `k${i % 3}`),
      { concurrency: "unbounded" }
    ))
    const outputs = await Promise.all(children.map((c) => readAll(c.stdio[1]!)))
    expect(outputs.map((o) => o.length)).toEqual(children.map(() => 100000))
    expect(outputs.map((o) => o[0])).toEqual(children.map((_, i) => String.fromCharCode(97 + i)))
  })

  it("a fourth pipe, argv0, the environment and a missing cwd", async () => {
    const child = await Effect.runPromise(spawner.spawn({
      file: "/bin/sh",
      args: ["-c", "echo \"$0 $FOO $(pwd)\" >&3"],
      argv0: "-sh",
      cwd: "/nonexistent/dir",
      env: { FOO: "bar" },
      pipes: 4
    }, "k"))
    expect(await readAll(child.stdio[3]!)).toBe("-sh bar /\n")
    expect(await Effect.runPromise(child.exit)).toEqual({ _tag: "Exited", code: 0 })
  })

  it("what cannot start is a typed failure", async () => {
    const missing = await Effect.runPromise(Effect.flip(spawner.spawn({ ...sh(""), file: "/nonexistent/prog" }, "k")))
    expect(missing.reason._tag).toBe("ChannelRequestFailed")
    expect(missing.message).toContain("/nonexistent/prog")
    const nul = await Effect.runPromise(Effect.flip(spawner.spawn(sh("echo a\u0000b"), "k")))
    expect(nul.reason._tag).toBe("ChannelRequestFailed")
  })
})
