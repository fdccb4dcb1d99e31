/**
 * How the CLI ends on a signal: a command interrupted by SIGINT exits 130,
 * by SIGTERM 143 and by SIGHUP 129, saying nothing; `get` interrupted keeps its partial
 * file, and `--resume` completes it.
 */
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { sha256 } from "../Sftp/fixtures.ts"
import { type Fixture, clientEnv, runCli, startServer } from "./terminalFixtures.ts"

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

describe("signals", () => {
  let fixture: Fixture
  let root: string
  beforeAll(async () => {
    root = Fs.mkdtempSync(Path.join(Fs.realpathSync(process.env.TMPDIR ?? "/tmp"), "effect-ssh-signals-root-"))
    fixture = await startServer({ sftpRoot: root })
  })
  afterAll(async () => {
    await fixture.close()
    Fs.rmSync(root, { recursive: true, force: true })
  })
  const common = () => ["-p", String(fixture.port), "-i", fixture.keyFile, "--known-hosts", fixture.knownHosts]

  it.each([["SIGINT", 130], ["SIGTERM", 143], ["SIGHUP", 129]] as const)("%s during a long command: exit %d, nothing on stderr", async (signal, code) => {
    const result = await runCli(["exec", ...common(), "alice@127.0.0.1", "echo started; exec sleep 30"], clientEnv(fixture), {
      onSpawn: (child) => {
        child.stdout!.on("data", (d: Buffer) => {
          if (d.toString().includes("started")) child.kill(signal)
        })
      }
    })
    expect(result).toEqual({ code, signal: null, stdout: "started\n", stderr: "" })
  })

  it("get interrupted keeps the partial file (exit 130, quiet); --resume completes it", async () => {
    const size = 96 * 1024 * 1024
    const remote = Path.join(root, "big.bin")
    const local = Path.join(fixture.dir, "big.bin")
    Fs.writeFileSync(remote, Crypto.randomBytes(size))
    const args = ["get", ...common(), "alice@127.0.0.1:/big.bin", local]
    let partialAtSignal = -1
    const interrupted = await runCli(args, clientEnv(fixture), {
      onSpawn: (child) => {
        const poll = async () => {
          for (;;) {
            const have = Fs.existsSync(local) ? Fs.statSync(local).size : 0
            if (have > 0) {
              partialAtSignal = have
              child.kill("SIGINT")
              return
            }
            await sleep(2)
          }
        }
        void poll()
      }
    })
    expect(interrupted).toMatchObject({ code: 130, stderr: "" })
    const kept = Fs.statSync(local).size
    expect(partialAtSignal).toBeGreaterThan(0)
    expect(kept).toBeGreaterThanOrEqual(partialAtSignal)
    expect(kept).toBeLessThan(size)
    const resumed = await runCli(["get", "--resume", ...args.slice(1)], clientEnv(fixture))
    expect(resumed).toMatchObject({ code: 0, stderr: "" })
    expect(Fs.statSync(local).size).toBe(size)
    expect(sha256(local)).toBe(sha256(remote))
  })
})
