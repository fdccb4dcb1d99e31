/**
 * Run on a terminal by shell.test.ts: reports the terminal's `icanon` and
 * `echo` flags (from `stty -a`, while this process still runs) before
 * `Terminal.rawMode`, inside its scope, and after the scope ends by success,
 * failure and interruption.
 */
import * as Effect from "effect/Effect"
import * as ChildProcess from "node:child_process"
import * as Terminal from "../../src/cli/Terminal.ts"

const flags = (): string => {
  const stty = ChildProcess.spawnSync("stty", ["-a"], { stdio: ["inherit", "pipe", "inherit"], encoding: "utf8" }).stdout
  return stty.split(/[\s;]+/).filter((f) => /^-?(icanon|echo)$/.test(f)).join(" ")
}

const report = (phase: string) => Effect.sync(() => process.stdout.write(`${phase}: ${flags()}\n`))

const inside = Effect.andThen(Terminal.rawMode(), report("inside"))

const program = Effect.gen(function*() {
  yield* report("before")
  yield* Effect.scoped(inside)
  yield* report("after-success")
  yield* Effect.ignore(Effect.scoped(Effect.andThen(inside, Effect.fail("boom"))))
  yield* report("after-failure")
  yield* Effect.exit(Effect.scoped(Effect.andThen(inside, Effect.interrupt)))
  yield* report("after-interrupt")
})

Effect.runPromise(program).then(() => process.stdout.write("probe-done\n"))
