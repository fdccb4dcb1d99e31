/**
 * Streams a huge command output through a slow consumer: the SSH window is
 * the backpressure, so memory stays flat however much the server sends.
 *
 * Usage: node examples/stream-output.ts HOST PORT USER KEYFILE KNOWN_HOSTS [BYTES] [stream|lend]
 *
 * `stream` (the default) reads `proc.stdout` as a Stream: each chunk is the
 * consumer's to keep, so V8 frees the consumed ones in batches (a full
 * collection per 64 MiB of them). `lend` reads with `proc.borrowStdout`: the
 * chunks are borrowed and freed as soon as the consumer is done with them.
 *
 * Prints one JSON line: bytes received, exit status, and RSS at the start of
 * the stream, after its first 64 MiB, and at its peak.
 */
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { Auth, HostKeys, NodeSsh, SshClient } from "effect-ssh"

const [host = "127.0.0.1", port = "22", username = "root", keyFile = "~/.ssh/id_ed25519", knownHosts, bytes = String(1024 ** 3), mode = "stream"] =
  process.argv.slice(2)

const program = Effect.gen(function*() {
  const ssh = yield* SshClient.connect({
    host,
    port: Number(port),
    username,
    auth: [Auth.privateKeyFile(keyFile)],
    ...(process.env.C ? { algorithms: { cipher: [process.env.C] } } : {}),
    hostKeys: knownHosts ? HostKeys.knownHosts({ files: [knownHosts] }) : HostKeys.knownHosts()
  })
  const proc = yield* ssh.exec(`head -c ${bytes} /dev/zero`)
  // RSS when the stream starts, after its first 64 MiB (Node's own socket and GC warm-up), and at its peak
  const baseline = process.memoryUsage().rss
  let warmedUp: number | undefined
  let peak = baseline
  const sample = () => {
    const rss = process.memoryUsage().rss
    peak = Math.max(peak, rss)
    if (warmedUp === undefined && received >= 64 * 1024 * 1024) warmedUp = rss
  }
  let received = 0
  let pulls = 0
  // a deliberately slow consumer: it pauses after every few pulls
  const consume = (chunks: ReadonlyArray<Uint8Array>) =>
    Effect.gen(function*() {
      for (const chunk of chunks) received += chunk.length
      if (++pulls % 4 === 0) {
        sample()
        yield* Effect.sleep("1 millis")
      }
    })
  yield* mode === "lend" ? proc.borrowStdout(consume) : Stream.runForEachArray(proc.stdout, consume)
  const exit = yield* proc.exit
  sample()
  return { received, exit, baselineRss: baseline, warmedUpRss: warmedUp ?? peak, peakRss: peak }
})

program.pipe(
  Effect.scoped,
  Effect.provide(NodeSsh.layer),
  Effect.runPromise
).then(
  (result) => console.log(JSON.stringify(result)),
  (error) => {
    console.error(String(error))
    process.exitCode = 1
  }
)
