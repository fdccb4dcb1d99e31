/**
 * `npm start`: effect-ssh end to end on one machine, no OpenSSH needed.
 *
 * Starts the embedded SSH server on 127.0.0.1 (random port, fresh in-memory
 * host key, real processes behind exec and shell), connects our client to it,
 * runs commands, streams 1 GiB through a pipeline whose only buffer is the
 * SSH window (showing throughput and memory as it goes), drives a shell on a
 * pseudo-terminal, and prints a summary.
 *
 * Set DEMO_BYTES to stream another amount.
 */
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import * as crypto from "node:crypto"
import { Auth, HostKeys, NodeSsh, PrivateKey, PublicKey, SshClient } from "effect-ssh"
import * as SshServer from "effect-ssh/Server"
import * as ProcessSession from "effect-ssh/Server/ProcessSession"

const MiB = 1024 * 1024
const total = Number(process.env.DEMO_BYTES ?? 1024 * MiB)
const password = crypto.randomBytes(12).toString("base64url")
const mib = (n: number) => (n / MiB).toFixed(1)

const program = Effect.gen(function*() {
  const started = Date.now()
  const hostKey = PrivateKey.generate("ssh-ed25519")
  const server = yield* SshServer.serve({
    host: "127.0.0.1",
    port: 0,
    hostKeys: [hostKey],
    auth: {
      password: ({ password: given }) =>
        Effect.succeed(crypto.timingSafeEqual(Buffer.from(Redacted.value(given).padEnd(64)), Buffer.from(password.padEnd(64))))
    },
    session: ProcessSession.handlers()
  })
  yield* Console.log(`server   listening on ${server.address.host}:${server.address.port}`)
  yield* Console.log(`         host key ${PublicKey.fingerprint(hostKey.publicKey)} (ed25519, in memory)`)

  const connectStart = performance.now()
  const ssh = yield* SshClient.connect({
    host: server.address.host,
    port: server.address.port,
    username: "demo",
    auth: [Auth.password(password)],
    hostKeys: HostKeys.fixed(hostKey.publicKey)
  })
  const connectMs = performance.now() - connectStart
  const a = ssh.info.algorithms
  yield* Console.log(`client   connected and authenticated in ${connectMs.toFixed(1)} ms`)
  yield* Console.log(`         ${a.kex}, ${a.hostKey}, ${a.cipherClientToServer}`)

  // 1. commands
  const uname = yield* ssh.run("uname -sr")
  yield* Console.log(`\n$ uname -sr\n${uname.stdout.trimEnd()}`)
  const failing = yield* ssh.run("echo 'to stderr' >&2; exit 3")
  yield* Console.log(`$ echo 'to stderr' >&2; exit 3\n[stderr] ${failing.stderr.trimEnd()}  (exit code ${failing.exitCode})`)
  const parallel = yield* Effect.forEach([1, 2, 3, 4, 5, 6, 7, 8], (i) => Effect.map(ssh.run(`echo $((${i} * ${i}))`), (r) => r.stdout.trim()), {
    concurrency: "unbounded"
  })
  yield* Console.log(`8 commands on 8 channels at once: ${parallel.join(" ")}`)

  // 2. a 1 GiB stream: the consumer's pull is what lets the server send more; each batch of packets is lent
  //    to the consumer (borrowStdout) and freed as soon as it is hashed
  yield* Console.log(`\nstreaming ${mib(total)} MiB: head -c ${total} /dev/zero | sha256 (in our process)`)
  const proc = yield* ssh.exec(`head -c ${total} /dev/zero`)
  const hash = crypto.createHash("sha256")
  let received = 0
  let peakRss = process.memoryUsage().rss
  const rssAtStart = peakRss
  const streamStart = performance.now()
  let lastReport = streamStart
  yield* proc.borrowStdout((chunks) =>
    Effect.sync(() => {
      for (const chunk of chunks) {
        hash.update(chunk)
        received += chunk.length
      }
      const now = performance.now()
      if (now - lastReport > 500) {
        lastReport = now
        const rss = process.memoryUsage().rss
        peakRss = Math.max(peakRss, rss)
        const rate = received / MiB / ((now - streamStart) / 1000)
        process.stdout.write(`  ${mib(received).padStart(7)} MiB  ${rate.toFixed(0).padStart(5)} MiB/s  RSS ${mib(rss)} MiB\n`)
      }
    })
  )
  const streamSeconds = (performance.now() - streamStart) / 1000
  const exit = yield* proc.exit
  const digest = hash.digest("hex")
  yield* Console.log(
    `  done: ${mib(received)} MiB in ${streamSeconds.toFixed(2)} s = ${(received / MiB / streamSeconds).toFixed(0)} MiB/s, ` +
      `exit ${exit._tag === "Exited" ? exit.code : exit._tag}, sha256 ${digest.slice(0, 16)}…, peak RSS ${mib(peakRss)} MiB (start ${mib(rssAtStart)})`
  )

  // 3. a shell on a pseudo-terminal
  yield* Console.log("\nshell on a pty (80x24), typing: tty; stty size; exit")
  const shell = yield* ssh.shell({ pty: { term: "xterm", columns: 80, rows: 24 } }).pipe(Effect.result)
  let ptyLine = "no pseudo-terminal on this machine (needs python3 or util-linux script)"
  if (shell._tag === "Success") {
    const sh = shell.success
    yield* sh.write("PS1='$ '; tty; stty size; exit\n")
    const output = yield* Stream.runFold(sh.stdout, () => "", (acc, chunk) => acc + new TextDecoder().decode(chunk))
    const shellExit = yield* sh.exit
    const clean = output.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, "").split(/\r?\n/).map((l) => l.trim()).filter((l) => l.length > 0)
    for (const line of clean.slice(-4)) yield* Console.log(`  | ${line}`)
    const tty = clean.find((l) => l.startsWith("/dev/pts/"))
    ptyLine = `${tty ?? "?"}, size ${clean.find((l) => /^\d+ \d+$/.test(l)) ?? "?"}, exit ${shellExit._tag === "Exited" ? shellExit.code : shellExit._tag}`
  }

  const stats = ssh.stats()
  yield* Console.log(`
summary
  connect + auth      ${connectMs.toFixed(1)} ms
  stream              ${mib(received)} MiB at ${(received / MiB / streamSeconds).toFixed(0)} MiB/s, peak RSS ${mib(peakRss)} MiB
  pty shell           ${ptyLine}
  transport           ${mib(stats.bytesIn)} MiB in, ${mib(stats.bytesOut)} MiB out, ${stats.packetsIn} packets in, ${stats.kexCount} key exchange(s)
  total               ${((Date.now() - started) / 1000).toFixed(1)} s`)
  if (received !== total || exit._tag !== "Exited" || exit.code !== 0) {
    return yield* Effect.fail(new Error(`stream incomplete: ${received} of ${total} bytes, ${JSON.stringify(exit)}`))
  }
})

program.pipe(Effect.scoped, Effect.provide(NodeSsh.layer), Effect.runPromise).then(
  () => process.exit(0),
  (error) => {
    console.error(`demo failed: ${error}`)
    process.exit(1)
  }
)
