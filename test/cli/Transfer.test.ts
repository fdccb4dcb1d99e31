/**
 * `effect-ssh get` / `put`: argument parsing, the progress line, and the real
 * command (a child process) against our SFTP server.
 */
import * as Effect from "effect/Effect"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { describe, expect, it } from "vitest"
import * as PrivateKey from "../../src/Auth/PrivateKey.ts"
import * as PublicKey from "../../src/Auth/PublicKey.ts"
import { UsageError } from "../../src/cli/Args.ts"
import { formatBytes, parseTransfer, progressLine, splitRemote, type TransferArgs } from "../../src/cli/Transfer.ts"
import * as SshServer from "../../src/Server.ts"
import * as SftpServer from "../../src/Sftp/SftpServer.ts"
import { runScoped } from "../helpers.ts"
import { hostKey, randomBytes, serverOptions, sha256, tempDir, userKey } from "../Sftp/fixtures.ts"

const ok = (command: "get" | "put", argv: ReadonlyArray<string>): TransferArgs => {
  const result = parseTransfer(command, argv)
  if (result instanceof UsageError) throw new Error(`unexpected usage error: ${result.message}`)
  return result
}

const usage = (command: "get" | "put", argv: ReadonlyArray<string>): string => {
  const result = parseTransfer(command, argv)
  expect(result).toBeInstanceOf(UsageError)
  return (result as UsageError).message
}

describe("splitRemote", () => {
  it.each([
    ["host:/tmp/x", { target: "host", path: "/tmp/x" }],
    ["me@host:rel/path", { target: "me@host", path: "rel/path" }],
    ["me@host:", { target: "me@host", path: "" }],
    ["a@b@host:/x", { target: "a@b@host", path: "/x" }],
    ["[::1]:/tmp", { target: "::1", path: "/tmp" }],
    ["me@[fe80::1]:/tmp:x", { target: "me@fe80::1", path: "/tmp:x" }]
  ])("%s", (spec, expected) => {
    expect(splitRemote(spec)).toEqual(expected)
  })

  it.each(["/local/path", "relative", ":nohost", "[::1]/x", "me@:x"])("%s is not remote", (spec) => {
    expect(splitRemote(spec)).toBeUndefined()
  })
})

describe("parseTransfer", () => {
  it("parses get with connection flags and transfer flags", () => {
    const args = ok("get", ["-r", "--resume", "--preserve", "-j", "8", "-p", "2222", "-i", "key", "-o", "Ciphers=aes128-ctr", "me@host:/var/log", "./logs"])
    expect(args).toMatchObject({
      _tag: "Get",
      host: "host",
      user: "me",
      port: 2222,
      identities: ["key"],
      options: { ciphers: "aes128-ctr" },
      remote: "/var/log",
      local: "./logs",
      recursive: true,
      resume: true,
      preserve: true,
      concurrency: 8
    })
  })

  it("parses put (local first) and defaults an empty remote path to '.'", () => {
    const args = ok("put", ["file.txt", "host:"])
    expect(args).toMatchObject({ _tag: "Put", host: "host", user: undefined, remote: ".", local: "file.txt", recursive: false, resume: false, preserve: false })
    expect(args.channels).toBeUndefined()
    expect(ok("put", ["--channels", "4", "file.txt", "host:/x"]).channels).toBe(4)
  })

  it("reports usage errors", () => {
    expect(usage("get", ["host:/x"])).toContain("source and a destination")
    expect(usage("get", ["/local", "/other"])).toContain("source must be [user@]host:path")
    expect(usage("put", ["/local", "/other"])).toContain("destination must be")
    expect(usage("get", ["-z", "host:/x", "y"])).toContain("unknown flag -z")
    expect(usage("get", ["-j", "0", "host:/x", "y"])).toContain("-j")
    expect(usage("put", ["--channels", "x", "y", "host:/x"])).toContain("--channels needs a positive number")
    expect(usage("get", ["--channels", "2", "host:/x", "y"])).toContain("uploads only")
    expect(usage("get", ["host:/x", "y", "-p"])).toContain("-p needs a value")
    expect(usage("get", ["-p", "99999", "host:/x", "y"])).toContain("bad port")
    expect(usage("get", ["-o", "Nope=1", "host:/x", "y"])).toContain("unsupported option")
  })
})

describe("progress", () => {
  it("formats bytes, rate and ETA", () => {
    expect(formatBytes(0)).toBe("0 B")
    expect(formatBytes(1536)).toBe("1.5 KiB")
    expect(formatBytes(3 * 1024 ** 3)).toBe("3.0 GiB")
    expect(progressLine("f", { bytes: 512, total: 1024 }, 2)).toBe("f   50%  512 B / 1.0 KiB  256 B/s  ETA 00:02")
    expect(progressLine("f", { bytes: 100, total: undefined }, 1)).toBe("f  100 B  100 B/s")
    expect(progressLine("f", { bytes: 0, total: 10 }, 0)).toBe("f    0%  0 B / 10 B  0 B/s  ETA --:--")
    expect(progressLine("f", { bytes: 1, total: 7201 }, 1)).toContain("ETA 2:00:00")
  })
})

/** Runs the CLI as a child process (asynchronously: our server lives in this process). */
const cli = (args: ReadonlyArray<string>) =>
  new Promise<{ readonly code: number | null; readonly stderr: string }>((resolve) => {
    const main = new URL("../../src/cli/main.ts", import.meta.url).pathname
    const child = ChildProcess.spawn(process.execPath, [main, ...args], { stdio: ["ignore", "ignore", "pipe"] })
    let stderr = ""
    child.stderr.on("data", (d) => stderr += d)
    child.on("close", (code) => resolve({ code, stderr }))
  })

describe("effect-ssh get/put against our server", () => {
  it("uploads and downloads files and trees silently, and fails with a message", async () => {
    const root = tempDir("effect-ssh-cli-root-")
    const work = tempDir("effect-ssh-cli-work-")
    try {
      const keyFile = Path.join(work.path, "id")
      Fs.writeFileSync(keyFile, PrivateKey.toOpenSsh(userKey), { mode: 0o600 })
      const data = randomBytes(2 * 1024 * 1024 + 1)
      Fs.writeFileSync(Path.join(work.path, "up.bin"), data)
      Fs.mkdirSync(Path.join(work.path, "tree/sub"), { recursive: true })
      Fs.writeFileSync(Path.join(work.path, "tree/sub/x"), "x")
      const results = await runScoped(Effect.gen(function*() {
        const server = yield* SshServer.serve(serverOptions({ sftp: SftpServer.fileSystem({ root: root.path }) }))
        const knownHosts = Path.join(work.path, "known_hosts")
        Fs.writeFileSync(knownHosts, `[127.0.0.1]:${server.address.port} ${PublicKey.toOpenSsh(hostKey.publicKey)}\n`)
        const common = ["-p", String(server.address.port), "-i", keyFile, "--known-hosts", knownHosts]
        const run = (args: ReadonlyArray<string>) => Effect.promise(() => cli(args))
        return [
          yield* run(["put", ...common, Path.join(work.path, "up.bin"), "alice@127.0.0.1:/"]),
          yield* run(["get", ...common, "alice@127.0.0.1:/up.bin", Path.join(work.path, "down.bin")]),
          yield* run(["put", "-r", ...common, Path.join(work.path, "tree"), "alice@127.0.0.1:/tree"]),
          yield* run(["get", ...common, "alice@127.0.0.1:/missing", Path.join(work.path, "m")])
        ]
      }))
      const [put, get, tree, missing] = results
      expect(put).toEqual({ code: 0, stderr: "" })
      expect(get).toEqual({ code: 0, stderr: "" })
      expect(tree).toEqual({ code: 0, stderr: "" })
      expect(sha256(Path.join(root.path, "up.bin"))).toBe(sha256(data))
      expect(sha256(Path.join(work.path, "down.bin"))).toBe(sha256(data))
      expect(Fs.readFileSync(Path.join(root.path, "tree/sub/x"), "utf8")).toBe("x")
      expect(missing!.code).toBe(1)
      expect(missing!.stderr).toBe("effect-ssh: SftpStatus: No such file (/missing)\n")
    } finally {
      root.remove()
      work.remove()
    }
  })
})
