/**
 * `effect-ssh serve` for the hostile-peer tests, with one hook: SIGUSR2 runs
 * a full garbage collection (the child runs with --expose-gc) and logs
 * `process.memoryUsage()` as a `memory:` line, so the memory a test reads
 * afterwards is what the server holds, not garbage it has not collected yet.
 */
process.on("SIGUSR2", () => {
  ;(globalThis as { gc?: () => void }).gc?.()
  process.stderr.write(`memory: ${JSON.stringify(process.memoryUsage())}\n`)
})
await import("../../src/cli/main.ts")
