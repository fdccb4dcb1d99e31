/**
 * The example programs run as users would run them (`npm start` is the demo).
 */
import { expect, it } from "vitest"
import * as child from "node:child_process"
import * as fs from "node:fs"
import * as http from "node:http"
import * as os from "node:os"
import * as path from "node:path"

const node = path.resolve("node_modules/.bin/node")
/** The examples import "effect-ssh": in this checkout that resolves to src/ under this condition (package.json exports). */
const source = "--conditions=effect-ssh-source"

/** A PATH with every program of the current PATH except OpenSSH's: the demo must not need them. */
const pathWithoutOpenssh = (): string => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "effect-ssh-no-openssh-"))
  const hidden = /^(ssh|sshd|scp|sftp|ssh-.*|sftp-server)$/
  for (const entry of (process.env.PATH ?? "").split(":")) {
    let names: Array<string> = []
    try {
      names = fs.readdirSync(entry)
    } catch {
      continue
    }
    for (const name of names) {
      const link = path.join(dir, name)
      if (!hidden.test(name) && !fs.existsSync(link)) fs.symlinkSync(path.join(entry, name), link)
    }
  }
  return dir
}

it("npm start: the demo runs on the embedded server, with OpenSSH hidden, and streams through the window", () => {
  const bin = pathWithoutOpenssh()
  const r = child.spawnSync(node, [source, path.resolve("examples/demo.ts")], {
    encoding: "utf8",
    timeout: 120_000,
    env: { ...process.env, PATH: bin, DEMO_BYTES: String(64 * 1024 * 1024) }
  })
  const found = child.spawnSync("/bin/sh", ["-c", "command -v ssh sshd sftp ssh-keygen"], { encoding: "utf8", env: { PATH: bin } })
  fs.rmSync(bin, { recursive: true, force: true })
  expect(found.stdout).toBe("")
  expect(r.stderr).toBe("")
  expect(r.status).toBe(0)
  expect(r.stdout).toMatch(/client {3}connected and authenticated in [\d.]+ ms/)
  expect(r.stdout).toMatch(/\[stderr\] to stderr {2}\(exit code 3\)/)
  expect(r.stdout).toMatch(/8 commands on 8 channels at once: 1 4 9 16 25 36 49 64/)
  expect(r.stdout).toMatch(/done: 64\.0 MiB in [\d.]+ s = \d+ MiB\/s, exit 0, sha256 3b6a07d0d404fab4/)
  expect(r.stdout).toMatch(/pty shell {11}(\/dev\/pts\/\d+, size 24 80, exit 0|no pseudo-terminal)/)
}, 150_000)

it("examples/sftp.ts: put, ls and get through the embedded SFTP server, hashes identical", () => {
  const r = child.spawnSync(node, [source, path.resolve("examples/sftp.ts"), "8"], { encoding: "utf8", timeout: 120_000 })
  expect(r.stderr).toBe("")
  expect(r.status).toBe(0)
  expect(r.stdout).toMatch(/put 8388608 \/ 8388608 bytes/)
  expect(r.stdout).toMatch(/ls \/ → upload\.bin/)
  expect(r.stdout).toMatch(/put 8388608 bytes, got 8388608 bytes back, sha256 identical/)
}, 150_000)

it("examples/sftp-memory.ts: ls, put and get against an in-memory SFTP backend, hashes identical, upload read from the backend", () => {
  const r = child.spawnSync(node, [path.resolve("examples/sftp-memory.ts"), "4"], { encoding: "utf8", timeout: 120_000 })
  expect(r.stderr).toBe("")
  expect(r.status).toBe(0)
  expect(r.stdout).toMatch(/ls \/ → README\n/)
  expect(r.stdout).toMatch(/cat \/README → an in-memory file system/)
  expect(r.stdout).toMatch(/put 4194304 bytes; ls \/uploads → data\.bin/)
  expect(r.stdout).toMatch(/got 4194304 bytes back, sha256 identical \(client copy and backend\)/)
  expect(r.stdout).toMatch(/backend holds 3 names, \d+ of 9437184 bytes/)
}, 150_000)

it("examples/forwarding.ts: -L, -R (server-picked port) and SOCKS through the embedded server, pages intact", () => {
  const r = child.spawnSync(node, [source, path.resolve("examples/forwarding.ts")], { encoding: "utf8", timeout: 120_000 })
  expect(r.stderr).toBe("")
  expect(r.status).toBe(0)
  expect(r.stdout).toMatch(/-L 127\.0\.0\.1:\d+ → 127\.0\.0\.1:\d+: page intact/)
  expect(r.stdout).toMatch(/-R port \d+ \(picked by the server\) → 127\.0\.0\.1:\d+: page intact/)
  expect(r.stdout).toMatch(/-D SOCKS5 on port \d+ → localhost:\d+: page intact/)
}, 150_000)

it("examples/otlp.ts: the spans of connect, exec and sftp get reach an OTLP/HTTP collector, each naming the host", async () => {
  // a collector stub: keeps every JSON body posted to /v1/traces and /v1/metrics
  const received = new Map<string, Array<unknown>>()
  const collector = http.createServer((req, res) => {
    const chunks: Array<Buffer> = []
    req.on("data", (chunk: Buffer) => chunks.push(chunk))
    req.on("end", () => {
      const bodies = received.get(req.url ?? "") ?? []
      bodies.push(JSON.parse(Buffer.concat(chunks).toString("utf8")))
      received.set(req.url ?? "", bodies)
      res.writeHead(200, { "content-type": "application/json" }).end("{}")
    })
  })
  await new Promise<void>((resolve) => collector.listen(0, "127.0.0.1", resolve))
  const url = `http://127.0.0.1:${(collector.address() as { port: number }).port}`
  try {
    // asynchronously: the collector answers from this process
    const r = await new Promise<{ stdout: string; stderr: string; code: number | null }>((resolve) =>
      child.execFile(node, [source, path.resolve("examples/otlp.ts"), url], { timeout: 60_000 }, (error, stdout, stderr) =>
        resolve({ stdout, stderr, code: error === null ? 0 : typeof error.code === "number" ? error.code : null })))
    expect(r.stderr).toBe("")
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/exec: you ran: uptime \(exit 0\)/)
    expect(r.stdout).toMatch(/sftp get: 31 bytes/)
    type Attribute = { readonly key: string; readonly value: { readonly stringValue?: string; readonly intValue?: string | number } }
    type Span = { readonly name: string; readonly attributes: ReadonlyArray<Attribute> }
    const spans = (received.get("/v1/traces") ?? []).flatMap((body) =>
      (body as { resourceSpans: Array<{ scopeSpans: Array<{ spans: Array<Span> }> }> }).resourceSpans.flatMap((rs) => rs.scopeSpans.flatMap((ss) => ss.spans))
    )
    const attribute = (span: Span | undefined, key: string) => {
      const value = span?.attributes.find((a) => a.key === key)?.value
      return value?.stringValue ?? value?.intValue
    }
    for (const name of ["ssh.connect", "ssh.exec", "sftp.get"]) {
      const span = spans.find((s) => s.name === name)
      expect(span, `span ${name}`).toBeDefined()
      expect(attribute(span, "ssh.host")).toBe("127.0.0.1")
      expect(attribute(span, "ssh.user")).toBe("demo")
    }
    expect(attribute(spans.find((s) => s.name === "ssh.exec"), "ssh.command")).toBe("uptime")
    expect(spans.map((s) => s.name)).toEqual(expect.arrayContaining(["ssh.kex", "ssh.auth", "ssh.channel.open", "example.otlp"]))
    // and the metrics, as OTLP metrics
    const metrics = (received.get("/v1/metrics") ?? []).flatMap((body) =>
      (body as { resourceMetrics: Array<{ scopeMetrics: Array<{ metrics: Array<{ name: string }> }> }> }).resourceMetrics.flatMap((rm) =>
        rm.scopeMetrics.flatMap((sm) => sm.metrics.map((m) => m.name))
      )
    )
    expect(metrics).toEqual(expect.arrayContaining(["ssh_kex_duration", "ssh_channels_opened"]))
  } finally {
    collector.close()
  }
}, 90_000)
