/**
 * From a resolved ssh_config to connect options: the pure mapping
 * (settings, session environment, preference order, host-key policy with
 * HostKeyAlias and CheckHostIP, warnings), the credentials (agent,
 * identity files, certificates paired by key) and the ProxyCommand socket.
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import * as Auth from "../../src/Auth/ClientAuth.ts"
import * as PrivateKey from "../../src/Auth/PrivateKey.ts"
import * as PublicKey from "../../src/Auth/PublicKey.ts"
import * as ConnectConfig from "../../src/Config/ConnectConfig.ts"
import * as ProxyCommand from "../../src/Config/ProxyCommand.ts"
import * as SshConfig from "../../src/Config/SshConfig.ts"
import { opensshPaths } from "../interop/sshd.ts"

const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-ssh-connect-config-"))
afterAll(() => Fs.rmSync(dir, { recursive: true, force: true }))

const context = SshConfig.makeContext({ localUser: "me", homeDirectory: dir })
const resolve = (text: string, host: string) => SshConfig.resolve([SshConfig.parse(text, "config")], host, context)
const run = <A, E>(effect: Effect.Effect<A, E, import("effect/FileSystem").FileSystem>) =>
  Effect.runPromise(effect.pipe(Effect.provide(NodeFileSystem.layer)))

const key = PrivateKey.generate("ssh-ed25519")
const check = (host: string, port = 22) => ({ host, port, key: key.publicKey, algorithm: "ssh-ed25519" })

describe("settings", () => {
  it("maps the destination, timers, algorithms, ForwardAgent, environment and Compression", () => {
    const resolved = resolve(
      [
        "Host web",
        "  HostName 10.0.0.7",
        "  Port 2222",
        "  User deploy",
        "  ConnectTimeout 1m",
        "  ServerAliveInterval 20",
        "  ServerAliveCountMax 5",
        "  RekeyLimit 500M 1h",
        "  Ciphers ^aes256-gcm@openssh.com",
        "  KexAlgorithms -ecdh-*",
        "  ForwardAgent /run/agent.sock",
        "  SendEnv LANG LC_*",
        "  SetEnv FOO=1 LANG=C",
        "  Compression yes"
      ].join("\n"),
      "web"
    )
    const s = ConnectConfig.settings(resolved, { LANG: "fr_FR.UTF-8", LC_TIME: "C", HOME: "/home/me" })
    expect(s).toMatchObject({
      host: "10.0.0.7",
      port: 2222,
      username: "deploy",
      keepaliveCountMax: 5,
      rekeyBytes: 500 * 1024 * 1024,
      algorithms: { cipher: "^aes256-gcm@openssh.com", kex: "-ecdh-*", mac: undefined, hostKey: undefined },
      forwardAgent: "/run/agent.sock",
      // SetEnv wins over what SendEnv picks
      env: { LANG: "C", LC_TIME: "C", FOO: "1" },
      compression: true
    })
    expect(Duration.toMillis(Duration.fromInputUnsafe(s.connectTimeout!))).toBe(60_000)
    expect(Duration.toMillis(Duration.fromInputUnsafe(s.keepaliveInterval!))).toBe(20_000)
    expect(Duration.toMillis(Duration.fromInputUnsafe(s.rekeyInterval!))).toBe(3_600_000)
  })

  it("leaves the library defaults where ssh's defaults mean none", () => {
    const s = ConnectConfig.settings(resolve("", "x"), {})
    expect(s).toMatchObject({ host: "x", port: 22, username: "me", connectTimeout: undefined, keepaliveInterval: undefined, rekeyBytes: undefined, forwardAgent: undefined, env: undefined })
  })
})

describe("byPreference", () => {
  it("orders by PreferredAuthentications and drops unlisted kinds", () => {
    const agent = Auth.agent()
    const password = Auth.password("x")
    const kbd = Auth.keyboardInteractive(() => Effect.succeed([]))
    expect(ConnectConfig.byPreference([password, agent, kbd], ["keyboard-interactive", "publickey"])).toEqual([kbd, agent])
    expect(ConnectConfig.byPreference([password, agent], undefined)).toEqual([password, agent])
  })
})

describe("hostKeyPolicy", () => {
  const knownHosts = Path.join(dir, "known_hosts")
  Fs.writeFileSync(knownHosts, `alias1 ${PublicKey.toOpenSsh(key.publicKey)}\n[10.0.0.7]:2222 ${PublicKey.toOpenSsh(PrivateKey.generate("ssh-ed25519").publicKey)}\n`)

  it("checks under HostKeyAlias, without the port", async () => {
    const resolved = resolve(`Host *\n  UserKnownHostsFile ${knownHosts}\n  HostKeyAlias alias1\n`, "web")
    await run(ConnectConfig.hostKeyPolicy(resolved).verify(check("web", 2222)))
    const without = resolve(`Host *\n  UserKnownHostsFile ${knownHosts}\n`, "web")
    const refused = await run(Effect.flip(ConnectConfig.hostKeyPolicy(without).verify(check("web", 2222))))
    expect(refused.reason._tag).toBe("HostKeyRejected")
  })

  it("reads GlobalKnownHostsFile after the user files", async () => {
    const resolved = resolve(`Host *\n  UserKnownHostsFile ${Path.join(dir, "empty_kh")}\n  GlobalKnownHostsFile ${knownHosts}\n`, "alias1")
    expect(ConnectConfig.knownHostsFiles(resolved)).toEqual([Path.join(dir, "empty_kh"), knownHosts])
    await run(ConnectConfig.hostKeyPolicy(resolved).verify(check("alias1")))
  })

  it("CheckHostIP: another key recorded for the address is refused under strict checking, a warning otherwise", async () => {
    const hostLine = `web.example ${PublicKey.toOpenSsh(key.publicKey)}\n10.9.9.9 ${PublicKey.toOpenSsh(PrivateKey.generate("ssh-ed25519").publicKey)}\n`
    const file = Path.join(dir, "kh_ip")
    Fs.writeFileSync(file, hostLine)
    const lookup = () => Effect.succeed("10.9.9.9")
    const strict = resolve(`Host *\n  UserKnownHostsFile ${file}\n  CheckHostIP yes\n  StrictHostKeyChecking yes\n`, "web.example")
    const refused = await run(Effect.flip(ConnectConfig.hostKeyPolicy(strict, { lookup }).verify(check("web.example"))))
    expect(refused.reason._tag).toBe("HostKeyChanged")
    expect(refused.message).toContain("10.9.9.9")
    const relaxed = resolve(`Host *\n  UserKnownHostsFile ${file}\n  CheckHostIP yes\n  StrictHostKeyChecking accept-new\n`, "web.example")
    await run(ConnectConfig.hostKeyPolicy(relaxed, { lookup }).verify(check("web.example")))
    const off = resolve(`Host *\n  UserKnownHostsFile ${file}\n  CheckHostIP no\n`, "web.example")
    await run(ConnectConfig.hostKeyPolicy(off, { lookup }).verify(check("web.example")))
  })
})

describe("warnings", () => {
  it("names each unsupported keyword with file:line, harmless ones apart, and what a connection does not act on", () => {
    const resolved = resolve("Host *\n  ControlMaster auto\n  GSSAPIAuthentication yes\n  LocalForward 8080 localhost:80\n  PubkeyAcceptedAlgorithms ssh-ed25519\n", "web")
    expect(ConnectConfig.unsupportedWarnings(resolved)).toEqual({
      warnings: ["config:2: controlmaster is not supported (ignored)"],
      harmless: ["config:3: gssapiauthentication is not supported (ignored)"]
    })
    // PubkeyAcceptedAlgorithms is applied: it reaches the connect options
    expect(ConnectConfig.settings(resolved, {}).publicKeyAlgorithms).toBe("ssh-ed25519")
    const [forward, ...rest] = ConnectConfig.notApplied(resolved)
    expect(forward).toMatch(/^LocalForward .*8080 .*80 is not set up from ssh_config \(give it as -L or forwardLocal\)$/)
    expect(rest).toEqual([])
  })
})

describe("credentials", () => {
  const keygen = opensshPaths().sshKeygen

  it.skipIf(keygen === undefined)("the agent, then each identity with its certificates; IdentitiesOnly restricts the agent to their keys", async () => {
    const id = Path.join(dir, "id_a")
    const other = Path.join(dir, "id_b")
    const ca = Path.join(dir, "ca")
    for (const f of [id, other, ca]) ChildProcess.execFileSync(keygen!, ["-q", "-t", "ed25519", "-N", "", "-f", f])
    ChildProcess.execFileSync(keygen!, ["-q", "-s", ca, "-I", "i", "-n", "me", `${id}.pub`]) // id_a-cert.pub beside
    Fs.copyFileSync(`${id}-cert.pub`, Path.join(dir, "elsewhere-cert.pub"))
    const config = `Host *\n  IdentityAgent ${dir}/agent.sock\n  IdentityFile ${id}\n  IdentityFile ${other}\n  CertificateFile ${dir}/elsewhere-cert.pub\n`
    const methods = await run(ConnectConfig.credentials(resolve(config, "web")))
    expect(methods.map((m) => m._tag === "CertificateFile" ? `cert ${Path.basename(m.path)} ${Path.basename(m.certificatePath)}` : m._tag)).toEqual([
      "Agent",
      "cert id_a id_a-cert.pub",
      "cert id_a elsewhere-cert.pub",
      "PrivateKey",
      "PrivateKey"
    ])
    expect(methods[0]).toEqual({ _tag: "Agent", socketPath: `${dir}/agent.sock` })
    const only = await run(ConnectConfig.credentials(resolve(`${config}  IdentitiesOnly yes\n`, "web")))
    const blobOf = (file: string) => PublicKey.parseOpenSsh(Fs.readFileSync(file, "utf8").trim()).blob
    const certificateBlob = (file: string) => Buffer.from(Fs.readFileSync(file, "utf8").trim().split(" ")[1]!, "base64")
    expect(only[0]!._tag).toBe("Agent")
    const blobs = only[0]!._tag === "Agent" ? only[0]!.only!.map((b) => Buffer.from(b).toString("base64")) : []
    expect(blobs.sort()).toEqual(
      [blobOf(`${id}.pub`), blobOf(`${other}.pub`), certificateBlob(`${id}-cert.pub`), certificateBlob(Path.join(dir, "elsewhere-cert.pub"))]
        .map((b) => Buffer.from(b).toString("base64")).sort()
    )
    const shape = (m: Auth.AuthMethod) => m._tag === "CertificateFile" ? `cert ${m.certificatePath}` : m._tag === "PrivateKey" ? `key ${m.key.comment}` : m._tag
    expect(only.slice(1).map(shape)).toEqual(methods.slice(1).map(shape))
  })

  it("fails on an identity file that cannot be expanded, as ssh fails when it loads it", async () => {
    const error = await run(Effect.flip(ConnectConfig.credentials(resolve("IdentityFile ${EFFECT_SSH_UNSET_VAR}/k\n", "web"))))
    expect(error.reason._tag).toBe("ConfigParseError")
    expect(error.message).toContain("EFFECT_SSH_UNSET_VAR")
  })
})

describe("ProxyCommand", () => {
  it("expands its tokens", () => {
    const resolved = resolve("Host web\n  HostName 10.0.0.7\n  Port 2200\n  User deploy\n", "web")
    expect(ProxyCommand.expand("nc %h %p # %r %n 100%%", ProxyCommand.tokens(resolved, context))).toBe("nc 10.0.0.7 2200 # deploy web 100%")
    expect(() => ProxyCommand.expand("nc %q", {})).toThrow(/%q/)
  })

  it("is the child's stdin and stdout; the child is killed when the scope closes", async () => {
    const program = Effect.gen(function*() {
      const scope = yield* Scope.make()
      const proxy = yield* Scope.provide(ProxyCommand.spawn("cat"), scope)
      const echoed = yield* Scope.provide(
        Effect.gen(function*() {
          const writer = yield* proxy.socket.writer
          const reader = yield* proxy.socket.reader
          yield* writer.write(new TextEncoder().encode("ping"))
          const chunks = yield* reader.pull
          return new TextDecoder().decode(chunks[0] as Uint8Array)
        }),
        scope
      )
      const running = proxy.exited()
      yield* Scope.close(scope, Exit.void)
      for (let i = 0; i < 100 && proxy.exited() === undefined; i++) yield* Effect.sleep("10 millis")
      return { echoed, running, exited: proxy.exited() }
    })
    const result = await Effect.runPromise(program)
    expect(result).toEqual({ echoed: "ping", running: undefined, exited: "signal SIGTERM" })
  })
})
