/**
 * Preloaded (`--import`) into the `effect-ssh serve` child of hostile tests
 * that run session processes:
 *
 * - the server owner's login shell reads as /bin/sh. Sessions run the
 *   owner's shell from the password database; for root on this kind of
 *   machine that is bash, which sources ~/.bashrc for SSH sessions (its
 *   SSH_SOURCE_BASHRC build option, triggered by SSH_CLIENT), and that rc
 *   file may do anything — here it runs `pyenv init`, whose rehash lock
 *   makes 200 concurrent shells poll for up to a minute. The tests measure
 *   the server, so their sessions get a shell that starts nothing.
 * - the event loop's delay is logged every half second
 *   (`event-loop-delay max=<ms>`: the most a 20 ms timer fired late), for
 *   the test to report.
 */
import { createRequire, syncBuiltinESMExports } from "node:module"

const os = createRequire(import.meta.url)("node:os") as typeof import("node:os")
const userInfo = os.userInfo
os.userInfo = ((options?: { encoding: BufferEncoding }) => ({ ...userInfo(options), shell: "/bin/sh" })) as typeof os.userInfo
syncBuiltinESMExports()

const tick = 20
let last = performance.now()
let worst = 0
let reported = last
setInterval(() => {
  const now = performance.now()
  worst = Math.max(worst, now - last - tick)
  last = now
  if (now - reported >= 500) {
    process.stderr.write(`event-loop-delay max=${Math.round(worst)}\n`)
    worst = 0
    reported = now
  }
}, tick).unref()
