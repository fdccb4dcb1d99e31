/**
 * What a failed connect says: where it was connecting to and why, and a
 * wrong key passphrase as such.
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Cause from "effect/Cause"
import * as Redacted from "effect/Redacted"
import * as Fs from "node:fs"
import * as net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import * as Auth from "../src/Auth/ClientAuth.ts"
import * as HostKeys from "../src/Auth/HostKeys.ts"
import * as PrivateKey from "../src/Auth/PrivateKey.ts"
import * as PublicKey from "../src/Auth/PublicKey.ts"
import * as SshClient from "../src/Client.ts"
import * as NodeSsh from "../src/NodeSsh.ts"
import * as SshServer from "../src/Server.ts"
import * as SshError from "../src/SshError.ts"

const failureOf = (exit: Exit.Exit<unknown, SshError.SshError>): SshError.SshError => {
  if (Exit.isSuccess(exit)) throw new Error("expected a failure")
  const reason = exit.cause.reasons.find(Cause.isFailReason)
  if (reason === undefined) throw new Error(Cause.pretty(exit.cause))
  return reason.error
}

const closedPort = async (): Promise<number> => {
  const server = net.createServer()
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const port = (server.address() as net.AddressInfo).port
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

const hostKey = PrivateKey.generate("ssh-ed25519")
const userKey = PrivateKey.generate("ssh-ed25519")
const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-ssh-client-errors-"))
const keyFile = Path.join(dir, "id_ed25519")
Fs.writeFileSync(keyFile, PrivateKey.toOpenSsh(userKey, { passphrase: "right", rounds: 2 }), { mode: 0o600 })
afterAll(() => Fs.rmSync(dir, { recursive: true, force: true }))

const connectWith = (port: number, auth: ReadonlyArray<Auth.AuthMethod>, host = "127.0.0.1") =>
  Effect.runPromise(Effect.exit(Effect.scoped(SshClient.connect({
    host,
    port,
    username: "me",
    auth,
    hostKeys: HostKeys.fixed(hostKey.publicKey),
    connectTimeout: "10 seconds"
  }))).pipe(Effect.provide(NodeSsh.layer)))

describe("ConnectFailed", () => {
  it("names the host, the port and the system's reason", async () => {
    const port = await closedPort()
    const error = failureOf(await connectWith(port, [Auth.password("x")]))
    expect(error.reason._tag).toBe("ConnectFailed")
    const reason = error.reason as SshError.ConnectFailed
    expect(reason.host).toBe("127.0.0.1")
    expect(reason.port).toBe(port)
    expect(reason.code).toBe("ECONNREFUSED")
    expect(reason.message).toBe(`cannot connect to 127.0.0.1:${port}: connection refused (ECONNREFUSED)`)
  })

  it.each([
    ["ENOTFOUND", "host not found (ENOTFOUND)"],
    ["ETIMEDOUT", "connection timed out (ETIMEDOUT)"],
    ["EHOSTUNREACH", "no route to host (EHOSTUNREACH)"],
    ["EWHATEVER", "EWHATEVER"]
  ])("%s reads as %s", (code, text) => {
    const reason = SshError.connectFailed({ host: "example.com", port: 22 }, Object.assign(new Error(`connect ${code}`), { code }))
    expect(reason.message).toBe(`cannot connect to example.com:22: ${text}`)
    expect(reason.code).toBe(code)
  })

  it("an IPv6 address is bracketed, and an error without a code keeps its message", () => {
    expect(SshError.connectFailed({ host: "::1", port: 2222 }, new Error("boom")).message).toBe("cannot connect to [::1]:2222: boom")
  })
})

describe("encrypted key files", () => {
  const withServer = async (run: (port: number) => Promise<void>) => {
    await Effect.runPromise(Effect.gen(function*() {
      const server = yield* SshServer.serve({
        port: 0,
        hostKeys: [hostKey],
        auth: { publicKey: ({ key }) => Effect.succeed(PublicKey.fingerprint(key) === PublicKey.fingerprint(userKey.publicKey)) },
        session: { exec: (session) => Effect.as(session.write("ok\n"), 0) }
      })
      yield* Effect.promise(() => run(server.address.port))
    }).pipe(Effect.scoped, Effect.provide(NodeSsh.layer)))
  }

  it("a wrong fixed passphrase is WrongPassphrase naming the file", async () => {
    await withServer(async (port) => {
      const error = failureOf(await connectWith(port, [Auth.privateKeyFile(keyFile, Redacted.make("wrong"))]))
      expect(error.reason._tag).toBe("WrongPassphrase")
      expect(error.reason.message).toContain(keyFile)
    })
  })

  it("three wrong answers to the prompt: the attempt says so", async () => {
    await withServer(async (port) => {
      const error = failureOf(await connectWith(port, [Auth.privateKeyFile(keyFile, () => Effect.succeed(Redacted.make("wrong")))]))
      expect(error.reason._tag).toBe("AuthFailed")
      expect(error.reason.message).toContain(`publickey ${keyFile} (wrong passphrase, 3 tries)`)
    })
  })

  it("the right passphrase logs in", async () => {
    await withServer(async (port) => {
      expect(Exit.isSuccess(await connectWith(port, [Auth.privateKeyFile(keyFile, Redacted.make("right"))]))).toBe(true)
    })
  })
})

describe("SshError.message", () => {
  it("names the path of an SFTP status unless its message already does", () => {
    const status = (message: string) => SshError.make(new SshError.SftpStatus({ code: 2, message, path: "/srv/nope" }))
    expect(status("No such file").message).toBe("SftpStatus: No such file (/srv/nope)")
    expect(status("/srv/nope: no such file").message).toBe("SftpStatus: /srv/nope: no such file")
  })
})

describe("connect options", () => {
  it.each([
    [{ connectTimeout: "soon" }, `expected a duration (a Duration, milliseconds, or a string such as "10 seconds"), got "soon" at ["connectTimeout"]`],
    [{ port: 0 }, `expected a port from 1 to 65535, got 0 at ["port"]`],
    [{ port: 22.5 }, `at ["port"]`],
    [{ keepaliveInterval: "often" }, `at ["keepaliveInterval"]`],
    [{ windowSize: -1 }, `expected an integer from 1 to 4294967295, got -1 at ["windowSize"]`],
    [{ host: "" }, `expected a host name or address at ["host"]`]
  ])("%j is a ConfigParseError naming the field", async (bad, text) => {
    const exit = await Effect.runPromise(Effect.exit(Effect.scoped(SshClient.connect({
      host: "127.0.0.1",
      username: "me",
      auth: [],
      hostKeys: HostKeys.fixed(hostKey.publicKey),
      ...(bad as Partial<SshClient.ConnectOptions>)
    }))).pipe(Effect.provide(NodeSsh.layer)))
    const error = failureOf(exit)
    expect(error.reason._tag).toBe("ConfigParseError")
    expect(error.reason.message).toContain(text)
  })
})
