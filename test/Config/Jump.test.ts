/**
 * `Jump.connectTo` failures that need no server: a refused first hop is
 * named, a ProxyJump loop is stopped, a ProxyCommand that exits is named
 * with its exit status, and `none` turns either off. (The hops themselves,
 * against real sshd, are in test/interop/jump.test.ts.)
 */
import * as Effect from "effect/Effect"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import * as Jump from "../../src/Config/Jump.ts"
import type * as SshError from "../../src/SshError.ts"
import { runFailure } from "../helpers.ts"

const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-ssh-jump-unit-"))
afterAll(() => Fs.rmSync(dir, { recursive: true, force: true }))

/** A loopback port nothing listens on. */
const closedPort = (): Promise<number> =>
  new Promise((resolve) => {
    const server = Net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as Net.AddressInfo
      server.close(() => resolve(port))
    })
  })

const configFile = (text: string) => {
  const file = Path.join(dir, `config-${Math.random().toString(36).slice(2)}`)
  Fs.writeFileSync(file, `${text}\nHost *\n  UserKnownHostsFile /dev/null\n  GlobalKnownHostsFile /dev/null\n  IdentityAgent none\n`)
  return file
}

const fails = (destination: string, text: string, options: Jump.ConnectToOptions = {}): Promise<SshError.SshError> =>
  runFailure(Jump.connectTo(destination, { configFile: configFile(text), ...options }))

describe("Jump.connectTo", () => {
  it("names the jump host that cannot be reached", async () => {
    const port = await closedPort()
    const error = await fails("target", `Host target\n  ProxyJump me@bastion:${port}\nHost bastion\n  HostName 127.0.0.1\n`)
    expect(error.reason._tag).toBe("ConnectFailed")
    expect(error.message).toMatch(new RegExp(`^ConnectFailed: jump host me@bastion:${port}: ConnectFailed: cannot connect to 127\\.0\\.0\\.1:${port}: connection refused`))
  })

  it("stops a ProxyJump loop", async () => {
    const error = await fails("a", "Host a\n  ProxyJump a\n")
    expect(error.message).toContain("nests more than 8 jump hosts deep")
  })

  it("-J none (command-line ProxyJump none) wins over the file's, as ssh's", async () => {
    const port = await closedPort()
    const error = await fails("target", `Host target\n  HostName 127.0.0.1\n  Port ${port}\n  ProxyJump unreachable-bastion\n`, { config: ["ProxyJump none"] })
    // dialed directly: the target's own refusal, no jump host in the way
    expect(error.message).toMatch(new RegExp(`^\\w+@127\\.0\\.0\\.1:${port}: ConnectFailed: cannot connect to 127\\.0\\.0\\.1:${port}: connection refused \\(ECONNREFUSED\\)$`))
  })

  it("names a ProxyCommand that exits, with its status; ProxyCommand none dials directly", async () => {
    const error = await fails("target", "Host target\n  ProxyCommand sh -c 'echo gone >&2; exit 3'\n")
    expect(error.message).toContain(`ProxyCommand "sh -c 'echo gone >&2; exit 3'" ended (exit 3)`)
    const port = await closedPort()
    const direct = await fails("target", `Host target\n  HostName 127.0.0.1\n  Port ${port}\n  ProxyCommand none\n`)
    expect(direct.message).toContain(`cannot connect to 127.0.0.1:${port}`)
  })

  it("expands the ProxyCommand's tokens for the destination", async () => {
    const out = Path.join(dir, "tokens")
    await fails("web", `Host web\n  HostName 10.0.0.7\n  Port 2200\n  User deploy\n  ProxyCommand sh -c 'echo %h %p %r %n > ${out}'\n`)
    expect(Fs.readFileSync(out, "utf8")).toBe("10.0.0.7 2200 deploy web\n")
  })

  it("loadConfig: command-line lines and the given user and port win for the destination, not for jump hosts", async () => {
    const file = configFile("Host *\n  User fromfile\n  Port 2000\n")
    const config = await Effect.runPromise(Jump.loadConfig({ configFile: file, config: ["User fromcli"], port: 3000 }).pipe(
      Effect.provide((await import("@effect/platform-node/NodeFileSystem")).layer)
    ))
    expect(config.resolve("web")).toMatchObject({ user: "fromcli", port: 3000 })
    expect(config.resolveJumpHost({ user: undefined, host: "b", port: undefined })).toMatchObject({ user: "fromfile", port: 2000 })
    expect(config.resolveJumpHost({ user: "me", host: "b", port: 22 })).toMatchObject({ user: "me", port: 22 })
  })
})
