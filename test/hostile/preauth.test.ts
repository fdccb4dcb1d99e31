/**
 * Pre-authentication exhaustion against `effect-ssh serve` in a child
 * process, with its default limits (MaxStartups 10:30:100,
 * PerSourceMaxStartups 3, penalties on). An attacker on three source
 * addresses (127.0.0.2-4: all of 127.0.0.0/8 is loopback on Linux) tries to
 * hold 1,200 idle connections, half of which send only a version line,
 * reconnecting each refused one a second later. Meanwhile a legitimate
 * client on 127.0.0.1 logs in (password, then an SFTP stat) every 250 ms:
 * every login must succeed, the server's memory must stay put, and the
 * refusals must be logged, rate-limited.
 *
 * Three sources is the most the defaults hold off completely (3 × 3 held
 * connections stay below MaxStartups' start of 10). A distributed attacker
 * with more sources pushes the server into random early drop, which hits
 * every new connection alike, and at `full` refuses them all — as sshd does;
 * the second test shows that, and that logins work again once it lets go.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as net from "node:net"
import { runScoped } from "../helpers.ts"
import * as SshClient from "../../src/Client.ts"
import * as Auth from "../../src/Auth/ClientAuth.ts"
import * as HostKeys from "../../src/Auth/HostKeys.ts"
import { fromNetSocket } from "../../src/internal/netSocket.ts"
import { mib, password, type ServeProcess, startServe, user } from "./serveProcess.ts"

const ATTACK_CONNECTIONS = 1200
const ATTACK_SOURCES = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
const PROBE_EVERY_MS = 250
const PROBE_FOR_MS = 12_000
/** Growth of the server's resident memory we allow under the flood (it holds at most 9 of the attacker's connections). */
const RSS_GROWTH_BOUND = 64 * 1024 * 1024
const NOT_ALLOWED = "Not allowed at this time\r\n"

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** What the attacker saw. */
interface Attack {
  /** Connections the server closed before sending its version line. */
  refused: number
  /** Of those, the ones that got sshd's notice (a client that already sent its version line may get a reset instead). */
  notices: number
  /** Connections open now that got the server's version line. */
  readonly held: Set<net.Socket>
  /** Stops reconnecting, waits for the connections in flight to be held or refused, then closes the held ones. */
  readonly stop: () => Promise<void>
}

/**
 * Opens `total` connections spread over `sources`, odd ones sending a
 * version line and nothing more, even ones nothing at all; reopens each
 * one the server closes after `retryMs`, until stopped.
 */
const attack = (port: number, total: number, sources: ReadonlyArray<string>, retryMs: number): Attack => {
  let stopped = false
  const sockets = new Set<net.Socket>()
  const state: Attack = {
    refused: 0,
    notices: 0,
    held: new Set(),
    stop: async () => {
      stopped = true
      for (const end = Date.now() + 10_000; sockets.size > state.held.size && Date.now() < end;) await sleep(20)
      for (const s of sockets) s.destroy()
    }
  }
  const open = (i: number) => {
    if (stopped) return
    const sock = net.createConnection({ host: "127.0.0.1", port, localAddress: sources[i % sources.length]! })
    sockets.add(sock)
    let received = ""
    sock.setEncoding("latin1")
    sock.on("error", () => {})
    sock.on("connect", () => {
      if (i % 2 === 1) sock.write("SSH-2.0-Idle_1.0\r\n")
    })
    sock.on("data", (text: string) => {
      received += text
      if (received.startsWith("SSH-")) state.held.add(sock)
    })
    sock.on("close", () => {
      sockets.delete(sock)
      if (state.held.delete(sock)) return
      state.refused++
      if (received === NOT_ALLOWED) state.notices++
      setTimeout(() => open(i), retryMs)
    })
  }
  for (let i = 0; i < total; i++) open(i)
  return state
}

/** One legitimate login from 127.0.0.1: password, then a look at the SFTP root. */
const probe = (server: ServeProcess) =>
  runScoped(Effect.gen(function*() {
    const ssh = yield* SshClient.connect({
      host: "127.0.0.1",
      port: server.port,
      username: user,
      auth: [Auth.password(password)],
      hostKeys: HostKeys.fixed(server.hostKey.publicKey),
      connectTimeout: "15 seconds"
    })
    const sftp = yield* ssh.sftp()
    return yield* sftp.stat("/")
  })).then(() => undefined, (e: unknown) => String(e))

/** Probes every `everyMs` for `forMs`; the failures, and how many probes ran. */
const probeFor = async (server: ServeProcess, everyMs: number, forMs: number) => {
  const failures: Array<string> = []
  let probes = 0
  for (const end = Date.now() + forMs; Date.now() < end;) {
    const started = Date.now()
    const failure = await probe(server)
    probes++
    if (failure !== undefined) failures.push(failure)
    await sleep(Math.max(0, everyMs - (Date.now() - started)))
  }
  return { probes, failures }
}

const refusedLines = (log: string) => log.split("\n").filter((l) => / Refused /.test(l))
/** The refusals the log accounts for: each line is one, plus the ones it says were left out. */
const refusalsLogged = (lines: ReadonlyArray<string>) =>
  lines.reduce((n, l) => n + 1 + Number(/; (\d+) more refused/.exec(l)?.[1] ?? 0), 0)

describe("pre-auth exhaustion (effect-ssh serve in a child process)", () => {
  let server: ServeProcess
  beforeAll(async () => {
    server = await startServe({ args: ["--max-startups", "10:30:100", "--login-grace-time", "120"] })
  })
  afterAll(async () => {
    await server?.stop()
  })

  it(`${ATTACK_CONNECTIONS} idle connections from ${ATTACK_SOURCES.length} sources: every login from another address succeeds, memory stays bounded, refusals are logged rate-limited`, async () => {
    // warm up: the first logins pay for JIT and key setup, and grow the heap to its working size
    const warmUp = await probeFor(server, 0, 2_000)
    expect(warmUp.failures).toEqual([])
    const baseline = server.rssBytes()
    const flood = attack(server.port, ATTACK_CONNECTIONS, ATTACK_SOURCES, 1_000)
    let peak = baseline
    const sampler = setInterval(() => {
      peak = Math.max(peak, server.rssBytes())
    }, 100)
    let result: Awaited<ReturnType<typeof probeFor>>
    let heldDuring: number
    try {
      // let the first wave land before probing
      for (const end = Date.now() + 10_000; flood.refused < ATTACK_CONNECTIONS - 9 && Date.now() < end;) await sleep(50)
      result = await probeFor(server, PROBE_EVERY_MS, PROBE_FOR_MS)
      heldDuring = flood.held.size
    } finally {
      clearInterval(sampler)
      await flood.stop()
    }
    const refusedByAttack = flood.refused
    const linesDuring = refusedLines(server.log())
    await server.stop()
    // at shutdown the server logs what its rate limit still held back
    const lines = refusedLines(server.log())

    console.log(
      `preauth: ${result.probes} logins, ${result.failures.length} failed; attacker held ${heldDuring}, ` +
        `refused ${refusedByAttack} (${flood.notices} with sshd's notice); RSS ${mib(baseline)} -> peak ${mib(peak)} ` +
        `(+${mib(peak - baseline)}); ${linesDuring.length} Refused log lines during the flood, ${lines.length} in all`
    )
    expect(result.failures).toEqual([])
    expect(result.probes).toBeGreaterThanOrEqual(20)
    // PerSourceMaxStartups 3: three held per source, the rest refused, over and over
    expect(heldDuring).toBe(3 * ATTACK_SOURCES.length)
    expect(refusedByAttack).toBeGreaterThan(2 * ATTACK_CONNECTIONS)
    expect(peak - baseline).toBeLessThan(RSS_GROWTH_BOUND)
    // one line per reason per 10 s: a handful, not thousands
    expect(linesDuring.length).toBeGreaterThan(0)
    expect(linesDuring.length).toBeLessThanOrEqual(12)
    // ... and together they count every refusal the attacker saw
    expect(refusalsLogged(lines)).toBe(refusedByAttack)
    expect(lines.every((l) => /Refused 127\.0\.0\.[234]:\d+ \((PerSourceMaxStartups|MaxStartups)\): /.test(l))).toBe(true)
  }, 60_000)
})

describe("password guessing (effect-ssh serve in a child process, default limits)", () => {
  let server: ServeProcess
  beforeAll(async () => {
    server = await startServe()
  })
  afterAll(async () => {
    await server?.stop()
  })

  it("one source guessing as fast as it can gets a few dozen guesses, then its penalty refuses it; others log in", async () => {
    let guesses = 0
    let refusedConnections = 0
    const wrong = Auth.password(Effect.sync(() => {
      guesses++
      return Redacted.make(`guess ${guesses}`)
    }))
    const guessOnce = () => runScoped(SshClient.connect({
      host: "127.0.0.1",
      port: server.port,
      username: user,
      auth: [wrong, wrong, wrong, wrong, wrong, wrong, wrong, wrong],
      hostKeys: HostKeys.fixed(server.hostKey.publicKey),
      connectTimeout: "10 seconds",
      socket: fromNetSocket(() => net.connect({ host: "127.0.0.1", port: server.port, localAddress: "127.0.0.2" }))
    })).then(() => "in", (e: unknown) => String(e))
    const GUESS_FOR_MS = 8_000
    const started = Date.now()
    // three at once: as many unauthenticated connections as one source may hold
    await Promise.all([1, 2, 3].map(async () => {
      while (Date.now() - started < GUESS_FOR_MS) {
        const before = guesses
        const outcome = await guessOnce()
        if (outcome === "in") throw new Error("a wrong password logged in")
        if (guesses === before) refusedConnections++
        await sleep(20)
      }
    }))
    const seconds = (Date.now() - started) / 1000
    const legitimate = await probe(server)
    console.log(`guessing: ${guesses} guesses in ${seconds.toFixed(1)} s (${(guesses / seconds).toFixed(1)}/s), ${refusedConnections} connections refused`)
    // MaxAuthTries 6 per connection; authfail 5 s a connection, active past 15 s: about six connections' worth
    expect(guesses).toBeGreaterThanOrEqual(6)
    expect(guesses).toBeLessThanOrEqual(60)
    expect(refusedConnections).toBeGreaterThan(10)
    expect(server.log()).toMatch(/Penalty: refusing 127\.0\.0\.2\/32 for \d+\.\d s \(penalty: failed authentication\)/)
    expect(legitimate).toBeUndefined()
  }, 60_000)
})

describe("a distributed attacker (as with sshd)", () => {
  let server: ServeProcess
  beforeAll(async () => {
    // full lowered from 100 to 40: fewer attacker connections fill it, the same semantics
    server = await startServe({ args: ["--max-startups", "10:30:40"] })
  })
  afterAll(async () => {
    await server?.stop()
  })

  it("with enough sources to fill MaxStartups, every new connection is refused until they let go", async () => {
    expect(await probe(server)).toBeUndefined()
    // 20 sources × 3 = 60 connections, more than full (40): random early drop, then 100%
    const sources = Array.from({ length: 20 }, (_, i) => `127.0.1.${i + 1}`)
    const flood = attack(server.port, 60, sources, 100)
    let during: string | undefined
    let held = 0
    try {
      for (const end = Date.now() + 20_000; flood.held.size < 40 && Date.now() < end;) await sleep(50)
      held = flood.held.size
      during = await probe(server)
    } finally {
      await flood.stop()
    }
    await sleep(500)
    const after = await probe(server)
    expect(held).toBe(40)
    expect(during).toMatch(/ConnectionClosed/)
    expect(after).toBeUndefined()
    console.log(`distributed: held ${held}; a login meanwhile: ${during}`)
    expect(server.log()).toMatch(/ Refused 127\.0\.1\.\d+:\d+ \(MaxStartups\): \d+ unauthenticated connections \(MaxStartups 10:30:40: \d+% refused\)/)
  }, 60_000)
})
