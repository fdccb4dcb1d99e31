/**
 * OpenSSH's `sftp -b` batch client against our server, over either backend:
 * put, get, ls -l, mkdir, rename, rm, rmdir, symlink, chmod, df and a get
 * through the symlink. Files are compared by hash, and what the batch left
 * behind is read from the backend itself (the memory backend's tree, the
 * disk root), not from sftp's output.
 */
import * as Effect from "effect/Effect"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { expect, it } from "vitest"
import type { SessionHandler } from "../../src/Channel/ServerSession.ts"
import * as PrivateKey from "../../src/Auth/PrivateKey.ts"
import * as PublicKey from "../../src/Auth/PublicKey.ts"
import * as SshServer from "../../src/Server.ts"
import * as MemoryBackend from "../../src/Sftp/MemoryBackend.ts"
import * as SftpServer from "../../src/Sftp/SftpServer.ts"
import { runScoped } from "../helpers.ts"
import { hostKey, randomBytes, serverOptions, sha256, tempDir } from "../Sftp/fixtures.ts"
import { describeInterop, opensshPaths } from "./sshd.ts"

/** Runs OpenSSH's `sftp -b -` with `batch` against our server on `port`. */
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

const UPLOAD_BYTES = 3 * 1024 * 1024 + 17

/**
 * Serves `sftp`, runs the batch, checks what sftp printed and the files it downloaded; gives the uploaded data
 * for the caller to find in its backend.
 */
const runBatch = async (sftp: SessionHandler<void>): Promise<Uint8Array> => {
  const work = tempDir("effect-ssh-sftp-batch-")
  try {
    const key = PrivateKey.generate("ssh-ed25519")
    const keyFile = Path.join(work.path, "id")
    Fs.writeFileSync(keyFile, PrivateKey.toOpenSsh(key), { mode: 0o600 })
    const data = randomBytes(UPLOAD_BYTES)
    Fs.writeFileSync(Path.join(work.path, "up.bin"), data, { mode: 0o644 })
    Fs.writeFileSync(Path.join(work.path, "small.txt"), "to be removed\n")
    const result = await runScoped(Effect.gen(function*() {
      const server = yield* SshServer.serve(serverOptions({
        auth: { publicKey: ({ key: offered }) => Effect.succeed(PublicKey.equals(offered, key.publicKey)) },
        sftp
      }))
      const knownHosts = Path.join(work.path, "known_hosts")
      Fs.writeFileSync(knownHosts, `[127.0.0.1]:${server.address.port} ${PublicKey.toOpenSsh(hostKey.publicKey)}\n`)
      const batch = [
        "pwd",
        "mkdir dir",
        `put ${work.path}/up.bin dir/up.bin`,
        `put ${work.path}/small.txt dir/small.txt`,
        "ls -l dir",
        `get dir/up.bin ${work.path}/down.bin`,
        "rename dir/up.bin dir/moved.bin",
        "symlink moved.bin dir/link",
        `get dir/link ${work.path}/via-link.bin`,
        "chmod 600 dir/moved.bin",
        "rm dir/small.txt",
        "ls -l dir",
        "df /",
        "mkdir gone",
        "rmdir gone"
      ].join("\n") + "\n"
      return yield* Effect.promise(() => runSftpBatch(server.address.port, keyFile, knownHosts, batch))
    }))
    expect(result.code, result.output).toBe(0)
    expect(result.output).toContain("Remote working directory: /")
    expect(result.output).toMatch(/-rw-r--r--.* dir\/up\.bin/)
    expect(result.output).toMatch(/lrwxrwxrwx.* dir\/link/)
    expect(result.output).toMatch(/-rw-------.* dir\/moved\.bin/)
    expect(result.output).toMatch(/Size\s+Used\s+Avail/)
    expect(sha256(Path.join(work.path, "down.bin"))).toBe(sha256(data))
    expect(sha256(Path.join(work.path, "via-link.bin"))).toBe(sha256(data))
    return data
  } finally {
    work.remove()
  }
}

describeInterop("OpenSSH sftp -b against our server", () => {
  it("on the memory backend: every command works, and the tree afterwards is what the batch made", async () => {
    const memory = MemoryBackend.make({ maxBytes: 16 * 1024 * 1024 })
    const data = await runBatch(SftpServer.make(memory))
    const tree = memory.snapshot().map(({ path, type, permissions, size, target }) => ({ path, type, permissions, size, target }))
    expect(tree).toEqual([
      { path: "/dir", type: "Directory", permissions: 0o755, size: 0, target: undefined },
      { path: "/dir/moved.bin", type: "File", permissions: 0o600, size: UPLOAD_BYTES, target: undefined },
      { path: "/dir/link", type: "Link", permissions: 0o777, size: 9, target: "moved.bin" }
    ])
    expect(sha256(Effect.runSync(memory.readFile("/dir/moved.bin")))).toBe(sha256(data))
    expect(sha256(Effect.runSync(memory.readFile("/dir/link")))).toBe(sha256(data))
  })

  it("on fileSystem({ root }): the same batch, the same result on disk", async () => {
    const root = tempDir("effect-ssh-sftp-served-")
    try {
      const data = await runBatch(SftpServer.fileSystem({ root: root.path }))
      expect(Fs.readdirSync(root.path)).toEqual(["dir"])
      expect(Fs.readdirSync(Path.join(root.path, "dir")).sort()).toEqual(["link", "moved.bin"])
      expect(sha256(Path.join(root.path, "dir/moved.bin"))).toBe(sha256(data))
      expect(Fs.statSync(Path.join(root.path, "dir/moved.bin")).mode & 0o777).toBe(0o600)
      expect(Fs.readlinkSync(Path.join(root.path, "dir/link"))).toBe("moved.bin")
    } finally {
      root.remove()
    }
  })
}, { requires: ["ssh"] })
