/**
 * SFTP interop with OpenSSH, both ways, files compared by hash:
 *   - our client against OpenSSH's sshd + sftp-server: every operation and every extension it offers;
 *   - OpenSSH's `sftp -b` batch client against our server: put, get, ls, mkdir, rename, rm, symlink, chmod, df;
 *   - memory: a large download through `readStream` into a slow sink keeps RSS growth under 128 MiB
 *     (EFFECT_SSH_SFTP_MEMORY_BYTES, default 2 GiB).
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { afterAll, beforeAll, expect, it } from "vitest"
import * as Auth from "../../src/Auth/ClientAuth.ts"
import * as PrivateKey from "../../src/Auth/PrivateKey.ts"
import * as PublicKey from "../../src/Auth/PublicKey.ts"
import * as SshClient from "../../src/Client.ts"
import * as SshServer from "../../src/Server.ts"
import * as Attributes from "../../src/Sftp/Attributes.ts"
import * as Extensions from "../../src/Sftp/Extensions.ts"
import type { SftpClient } from "../../src/Sftp/SftpClient.ts"
import * as SftpServer from "../../src/Sftp/SftpServer.ts"
import { StatusCode } from "../../src/Sftp/Status.ts"
import * as Transfer from "../../src/Sftp/Transfer.ts"
import type { SshError } from "../../src/SshError.ts"
import { runScoped, sshdOptions } from "../helpers.ts"
import { hostKey, randomBytes, serverOptions, sha256, tempDir } from "../Sftp/fixtures.ts"
import { describeInterop, opensshPaths, type Sshd, startSshd } from "./sshd.ts"

const sftpStatus = (error: SshError) => {
  expect(error.reason._tag).toBe("SftpStatus")
  return error.reason as Extract<SshError["reason"], { _tag: "SftpStatus" }>
}

describeInterop("our SFTP client against OpenSSH sftp-server", () => {
  let sshd: Sshd
  let dir = ""
  let local = { path: "", remove: () => {} }

  beforeAll(async () => {
    sshd = await startSshd({ hostKeyTypes: ["ed25519"] })
    // The login user may not be us (root runs the tests as the password account): a world-writable work dir.
    dir = Path.join(sshd.dir, "sftp")
    Fs.mkdirSync(dir, { mode: 0o777 })
    Fs.chmodSync(dir, 0o777)
    local = tempDir("effect-ssh-sftp-interop-")
  })
  afterAll(async () => {
    local.remove()
    await sshd?.stop()
  })

  const withSftp = <A, E>(f: (sftp: SftpClient) => Effect.Effect<A, E>) =>
    runScoped(Effect.gen(function*() {
      const ssh = yield* SshClient.connect(sshdOptions(sshd, [Auth.privateKeyFile(sshd.clientKeys.ed25519)]))
      return yield* f(yield* ssh.sftp())
    }))

  const at = (p: string) => `${dir}/${p}`

  it("negotiates v3, the OpenSSH extensions and its limits", async () => {
    const sftp = await withSftp(Effect.succeed)
    expect(sftp.version).toBe(3)
    for (const e of Extensions.OPENSSH_EXTENSIONS) expect(sftp.supports(e.name), e.name).toBe(true)
    expect(sftp.limits.maxReadLength).toBeGreaterThanOrEqual(32768)
    expect(sftp.blockSize.read).toBe(Math.min(sftp.limits.maxReadLength, 256 * 1024))
  })

  it("puts and gets files (hash-identical), resumes, streams", async () => {
    const data = randomBytes(6 * 1024 * 1024 + 333)
    const up = Path.join(local.path, "up.bin")
    Fs.writeFileSync(up, data)
    Fs.writeFileSync(Path.join(local.path, "partial.bin"), data.subarray(0, 1_234_567))
    await withSftp((sftp) =>
      Effect.gen(function*() {
        expect(yield* sftp.put(up, at("up.bin"))).toEqual({ bytes: data.length, files: 1 })
        expect(yield* sftp.get(at("up.bin"), Path.join(local.path, "down.bin"))).toEqual({ bytes: data.length, files: 1 })
        yield* sftp.get(at("up.bin"), Path.join(local.path, "partial.bin"), { resume: true })
        Fs.truncateSync(at("up.bin"), 2_000_000)
        yield* sftp.put(up, at("up.bin"), { resume: true })
        const part = yield* Stream.runCollect(sftp.readStream(at("up.bin"), { offset: 5, length: 1_000_000 }))
        expect(sha256(new Uint8Array(Buffer.concat(part)))).toBe(sha256(data.subarray(5, 1_000_005)))
        const written = yield* Stream.run(Stream.make(data.subarray(0, 100), data.subarray(100, 70_000)), sftp.writeSink(at("sink.bin")))
        expect(written).toBe(70_000)
      }))
    expect(sha256(at("up.bin"))).toBe(sha256(data))
    expect(sha256(Path.join(local.path, "down.bin"))).toBe(sha256(data))
    expect(sha256(Path.join(local.path, "partial.bin"))).toBe(sha256(data))
    expect(sha256(at("sink.bin"))).toBe(sha256(data.subarray(0, 70_000)))
  })

  it("splits a large upload over several channels (one sftp-server each), hash-identical, resumable", async () => {
    const data = randomBytes(48 * 1024 * 1024 + 4321)
    const up = Path.join(local.path, "split.bin")
    Fs.writeFileSync(up, data)
    let siblings = 0
    const seen: Array<number> = []
    await withSftp((sftp) =>
      Effect.gen(function*() {
        // counts the extra sessions the upload opens
        const counting: SftpClient = { ...sftp, sibling: Effect.tap(sftp.sibling!, () => Effect.sync(() => void siblings++)) }
        const put = (from: string, to: string, options: Transfer.TransferOptions) =>
          Effect.provide(Transfer.put(counting, from, to, options), NodeFileSystem.layer)
        const result = yield* put(up, at("split.bin"), { channels: 3, onProgress: (p) => Effect.sync(() => void seen.push(p.bytes)) })
        expect(result).toEqual({ bytes: data.length, files: 1 })
        expect(siblings).toBe(2)
        // resumed from 5 MB: 43 MiB left make two stretches of at least 16 MiB
        Fs.truncateSync(at("split.bin"), 5_000_000)
        siblings = 0
        yield* put(up, at("split.bin"), { channels: 3, resume: true })
        expect(siblings).toBe(1)
        // a small file is not split
        siblings = 0
        const small = Path.join(local.path, "small.bin")
        Fs.writeFileSync(small, data.subarray(0, 20 * 1024 * 1024))
        yield* put(small, at("small.bin"), { channels: 3 })
        expect(siblings).toBe(0)
      }))
    expect(sha256(at("split.bin"))).toBe(sha256(data))
    expect(seen.at(-1)).toBe(data.length)
  })

  it("splits over the sessions the server allows (4 asked, MaxSessions 2: one sibling), still hash-identical", async () => {
    const limited = await startSshd({ hostKeyTypes: ["ed25519"], config: { MaxSessions: "2" } })
    try {
      const target = Path.join(limited.dir, "sftp")
      Fs.mkdirSync(target, { mode: 0o777 })
      Fs.chmodSync(target, 0o777)
      const data = randomBytes(64 * 1024 * 1024 + 7)
      const up = Path.join(local.path, "limited.bin")
      Fs.writeFileSync(up, data)
      await runScoped(Effect.gen(function*() {
        const ssh = yield* SshClient.connect(sshdOptions(limited, [Auth.privateKeyFile(limited.clientKeys.ed25519)]))
        const sftp = yield* ssh.sftp()
        expect(yield* sftp.put(up, `${target}/limited.bin`, { channels: 4 })).toEqual({ bytes: data.length, files: 1 })
        // the connection is still usable, the refused sessions left nothing behind
        expect((yield* sftp.stat(`${target}/limited.bin`)).size).toBe(data.length)
      }))
      expect(sha256(`${target}/limited.bin`)).toBe(sha256(data))
    } finally {
      await limited.stop()
    }
  })

  it("runs every v3 operation", async () => {
    await withSftp((sftp) =>
      Effect.gen(function*() {
        yield* sftp.mkdir(at("d"), { permissions: 0o755 })
        yield* sftp.writeFile(at("d/f"), new TextEncoder().encode("hello"))
        expect((yield* sftp.stat(at("d/f"))).size).toBe(5)
        expect(Attributes.isDirectory(yield* sftp.lstat(at("d")))).toBe(true)
        yield* sftp.setstat(at("d/f"), { permissions: 0o640 })
        yield* sftp.utimes(at("d/f"), 1_000, 2_000)
        expect(Fs.statSync(at("d/f")).mode & 0o777).toBe(0o640)
        expect(Fs.statSync(at("d/f")).mtimeMs).toBe(2_000_000)
        expect(yield* sftp.exists(at("d/f"))).toBe(true)
        expect(yield* sftp.exists(at("d/none"))).toBe(false)

        yield* sftp.symlink("f", at("d/link"))
        expect(yield* sftp.readlink(at("d/link"))).toBe("f")
        expect(Attributes.isSymbolicLink(yield* sftp.lstat(at("d/link")))).toBe(true)
        expect(yield* sftp.realpath(at("d/../d/link"))).toBe(at("d/f"))

        const handle = yield* sftp.openHandle(at("d/f"), "r+")
        expect((yield* sftp.fstat(handle)).size).toBe(5)
        yield* sftp.write(handle, 5, new TextEncoder().encode(" world"))
        expect(new TextDecoder().decode(yield* sftp.read(handle, 0, 100))).toBe("hello world")
        expect(yield* sftp.read(handle, 11, 100)).toBeUndefined()
        yield* sftp.fsetstat(handle, { size: 5 })
        yield* sftp.close(handle)
        expect(Fs.readFileSync(at("d/f"), "utf8")).toBe("hello")

        const names = (yield* sftp.list(at("d"))).map((e) => e.filename).sort()
        expect(names).toEqual(["f", "link"])

        yield* sftp.writeFile(at("d/g"), new Uint8Array(1))
        const clash = yield* Effect.flip(sftp.rename(at("d/f"), at("d/g"), { overwrite: false }))
        expect(sftpStatus(clash).code).toBe(StatusCode.Failure)
        yield* sftp.rename(at("d/f"), at("d/g"))
        expect(Fs.readFileSync(at("d/g"), "utf8")).toBe("hello")

        const missing = yield* Effect.flip(sftp.stat(at("d/none")))
        expect(sftpStatus(missing)).toMatchObject({ code: StatusCode.NoSuchFile, path: at("d/none") })

        yield* sftp.remove(at("d/g"))
        yield* sftp.remove(at("d/link"))
        yield* sftp.rmdir(at("d"))
        expect(Fs.existsSync(at("d"))).toBe(false)
      }))
  })

  it("runs every extension sftp-server offers", async () => {
    const data = randomBytes(200_000)
    Fs.writeFileSync(at("x.bin"), data)
    Fs.chmodSync(at("x.bin"), 0o666)
    await withSftp((sftp) =>
      Effect.gen(function*() {
        yield* sftp.posixRename(at("x.bin"), at("y.bin"))
        yield* sftp.hardlink(at("y.bin"), at("z.bin"))
        expect(Fs.statSync(at("z.bin")).ino).toBe(Fs.statSync(at("y.bin")).ino)
        const vfs = yield* sftp.statvfs(dir)
        expect(vfs.blocks).toBe(Fs.statfsSync(dir, { bigint: true }).blocks)
        const from = yield* sftp.openHandle(at("y.bin"), "r")
        const to = yield* sftp.openHandle(at("c.bin"), "w")
        expect((yield* sftp.fstatvfs(from)).blocks).toBe(vfs.blocks)
        yield* sftp.copyData({ from, fromOffset: 10, length: 50_000, to })
        yield* sftp.fsync(to)
        yield* sftp.close(from)
        yield* sftp.close(to)
        expect(sha256(at("c.bin"))).toBe(sha256(data.subarray(10, 50_010)))
        yield* sftp.symlink("y.bin", at("l"))
        yield* sftp.lsetstat(at("l"), { atime: 100, mtime: 200 })
        expect(Fs.lstatSync(at("l")).mtimeMs).toBe(200_000)
        // OpenSSH answers home-directory only for a named user (not "" for the current one)
        const home = yield* sftp.homeDirectory(sshd.user)
        expect(home.startsWith("/")).toBe(true)
        expect(yield* sftp.expandPath("~")).toBe(home)
        expect(yield* sftp.expandPath("~/x")).toBe(`${home}/x`)
        const uid = Fs.statSync(at("c.bin")).uid
        const names = yield* sftp.usersGroupsById([uid], [])
        expect(names.usernames).toEqual([sshd.user])
      }))
  })

  it("copies trees recursively with preserved times and modes, and works through SftpFile", async () => {
    const src = Path.join(local.path, "tree")
    Fs.mkdirSync(Path.join(src, "a/b"), { recursive: true })
    const files = { "one": randomBytes(300_000), "a/two": randomBytes(5), "a/b/three": randomBytes(1_000_000) }
    for (const [p, d] of Object.entries(files)) Fs.writeFileSync(Path.join(src, p), d)
    Fs.chmodSync(Path.join(src, "a/two"), 0o604)
    Fs.utimesSync(Path.join(src, "one"), 1_400_000_000, 1_500_000_000)
    const back = Path.join(local.path, "back")
    await withSftp((sftp) =>
      Effect.gen(function*() {
        expect((yield* sftp.put(src, at("tree"), { recursive: true, preserve: true })).files).toBe(3)
        expect((yield* sftp.get(at("tree"), back, { recursive: true, preserve: true })).files).toBe(3)
        const file = yield* sftp.open(at("tree/one"), "r")
        yield* file.seek(1000)
        expect(sha256(yield* file.read(5000))).toBe(sha256(files.one.subarray(1000, 6000)))
        expect(yield* file.tell).toBe(6000)
      }).pipe(Effect.scoped))
    for (const [p, d] of Object.entries(files)) {
      expect(sha256(at(`tree/${p}`))).toBe(sha256(d))
      expect(sha256(Path.join(back, p))).toBe(sha256(d))
    }
    expect(Fs.statSync(at("tree/a/two")).mode & 0o777).toBe(0o604)
    expect(Fs.statSync(Path.join(back, "one")).mtimeMs).toBe(1_500_000_000_000)
  })
}, { requires: ["sshd", "ssh", "sftpServer"] })

/** Runs OpenSSH's `sftp -b -` with `batch` against a server of ours on `port`; resolves with its output and exit code. */
const runSftpBatch = (port: number, keyFile: string, knownHosts: string, batch: string) =>
  new Promise<{ readonly output: string; readonly code: number | null }>((resolve, reject) => {
    const child = ChildProcess.spawn(opensshPaths().sftp!, [
      "-F", "/dev/null",
      "-P", String(port),
      "-o", `UserKnownHostsFile=${knownHosts}`,
      "-o", "GlobalKnownHostsFile=/dev/null",
      "-o", "StrictHostKeyChecking=yes",
      "-o", "IdentityAgent=none",
      "-o", "IdentitiesOnly=yes",
      "-o", "BatchMode=yes",
      "-i", keyFile,
      "-b", "-",
      "alice@127.0.0.1"
    ])
    let output = ""
    child.stdout.on("data", (d) => output += d)
    child.stderr.on("data", (d) => output += d)
    child.on("error", reject)
    child.on("close", (code) => resolve({ output, code }))
    child.stdin.end(batch)
  })

describeInterop("OpenSSH sftp client against our SFTP server", () => {
  it("puts, gets, lists, makes directories, renames, removes, links, chmods and reports df", async () => {
    const root = tempDir("effect-ssh-sftp-served-")
    const work = tempDir("effect-ssh-sftp-batch-")
    try {
      const key = PrivateKey.generate("ssh-ed25519")
      const keyFile = Path.join(work.path, "id")
      Fs.writeFileSync(keyFile, PrivateKey.toOpenSsh(key), { mode: 0o600 })
      const data = randomBytes(3 * 1024 * 1024 + 17)
      Fs.writeFileSync(Path.join(work.path, "up.bin"), data)
      const result = await runScoped(Effect.gen(function*() {
        const server = yield* SshServer.serve(serverOptions({
          auth: { publicKey: ({ key: offered }) => Effect.succeed(PublicKey.equals(offered, key.publicKey)) },
          sftp: SftpServer.fileSystem({ root: root.path })
        }))
        const knownHosts = Path.join(work.path, "known_hosts")
        Fs.writeFileSync(knownHosts, `[127.0.0.1]:${server.address.port} ${PublicKey.toOpenSsh(hostKey.publicKey)}\n`)
        const batch = [
          "pwd",
          "mkdir dir",
          `put ${work.path}/up.bin dir/up.bin`,
          "ls -l dir",
          `get dir/up.bin ${work.path}/down.bin`,
          "rename dir/up.bin dir/moved.bin",
          "symlink moved.bin dir/link",
          "chmod 600 dir/moved.bin",
          "ls dir",
          "df /",
          "put /etc/hostname ../../../escape",
          "rm dir/link",
          "mkdir gone",
          "rmdir gone"
        ].join("\n") + "\n"
        return yield* Effect.promise(() => runSftpBatch(server.address.port, keyFile, knownHosts, batch))
      }))
      expect(result.code, result.output).toBe(0)
      expect(result.output).toContain("Remote working directory: /")
      expect(result.output).toMatch(/-rw-r--r--.* dir\/up\.bin/)
      expect(result.output).toMatch(/dir\/link\s+dir\/moved\.bin|dir\/moved\.bin\s+dir\/link/)
      expect(result.output).toMatch(/Size\s+Used\s+Avail/)
      expect(sha256(Path.join(work.path, "down.bin"))).toBe(sha256(data))
      expect(sha256(Path.join(root.path, "dir/moved.bin"))).toBe(sha256(data))
      expect(Fs.statSync(Path.join(root.path, "dir/moved.bin")).mode & 0o777).toBe(0o600)
      expect(Fs.existsSync(Path.join(root.path, "dir/link"))).toBe(false)
      expect(Fs.existsSync(Path.join(root.path, "gone"))).toBe(false)
      // "../../../escape" landed inside the root
      expect(Fs.existsSync(Path.join(root.path, "escape"))).toBe(true)
      expect(Fs.readdirSync(root.path).sort()).toEqual(["dir", "escape"])
    } finally {
      root.remove()
      work.remove()
    }
  })
}, { requires: ["ssh"] })

const MEMORY_BYTES = Number(process.env.EFFECT_SSH_SFTP_MEMORY_BYTES ?? 2 * 1024 ** 3)
const RSS_LIMIT = 128 * 1024 * 1024
const SLOW_SINK_STEP = 256 * 1024

describeInterop("SFTP memory", () => {
  let sshd: Sshd
  let file = ""
  beforeAll(async () => {
    sshd = await startSshd({ hostKeyTypes: ["ed25519"], config: { LogLevel: "ERROR" } })
    file = Path.join(sshd.dir, "sparse.bin")
    Fs.writeFileSync(file, "")
    Fs.truncateSync(file, MEMORY_BYTES)
    Fs.chmodSync(file, 0o644)
  })
  afterAll(async () => {
    await sshd?.stop()
  })

  it(`readStream of ${MEMORY_BYTES} bytes into a slow sink grows RSS by less than 128 MiB`, async () => {
    const result = await runScoped(Effect.gen(function*() {
      const ssh = yield* SshClient.connect(sshdOptions(sshd, [Auth.privateKeyFile(sshd.clientKeys.ed25519)]))
      const sftp = yield* ssh.sftp()
      // warm up (connection, buffers, JIT) before the baseline
      yield* Stream.runDrain(sftp.readStream(file, { length: 8 * 1024 * 1024 }))
      const baseline = process.memoryUsage().rss
      let peak = baseline
      let bytes = 0
      let owed = 0
      const started = performance.now()
      yield* Stream.runForEach(sftp.readStream(file), (chunk) => {
        bytes += chunk.length
        owed += chunk.length
        if (owed < SLOW_SINK_STEP) return Effect.void
        owed -= SLOW_SINK_STEP
        peak = Math.max(peak, process.memoryUsage().rss)
        // a slow consumer: 2 ms per 256 KiB (at most 128 MB/s), slower than the network delivers
        return Effect.sleep(2)
      })
      return { bytes, growth: peak - baseline, seconds: (performance.now() - started) / 1000 }
    }))
    console.log(`[sftp memory] ${result.bytes} bytes in ${result.seconds.toFixed(1)} s, RSS growth ${(result.growth / 1024 / 1024).toFixed(1)} MiB`)
    expect(result.bytes).toBe(MEMORY_BYTES)
    expect(result.growth).toBeLessThan(RSS_LIMIT)
  }, 600_000)
}, { requires: ["sshd", "ssh", "sftpServer"] })

