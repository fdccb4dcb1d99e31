/**
 * A real OpenSSH `sshd` for interop tests, confined to a temp directory.
 *
 * `startSshd` generates fresh host and client keys, writes an `sshd_config` that enables every algorithm the
 * installed OpenSSH supports, starts `sshd -D` on 127.0.0.1 with a free port and waits until it answers with an
 * OpenSSH banner. Nothing outside the temp dir is touched except `/run/sshd` (the privilege-separation dir sshd
 * insists on, created when missing, as the Debian package does at boot).
 *
 * Password and keyboard-interactive logins need a real account: `scripts/setup-test-user.sh` creates `effectssh`
 * and stores its password in a root-only file. When that file is readable (tests run as root), `Sshd.user` and
 * `Sshd.password` refer to that account; otherwise `user` is the current user and `password` is `undefined`.
 *
 * `describeInterop` registers a suite when the binaries exist, skips it with a printed reason when they don't, and
 * turns a missing prerequisite into a failing test when `requireOpenssh` is set (CI).
 *
 * Environment: `CI` / `EFFECT_SSH_REQUIRE_INTEROP` (missing binaries fail), `EFFECT_SSH_SSHD` (sshd path),
 * `EFFECT_SSH_TEST_USER` / `EFFECT_SSH_TEST_PASSWORD_FILE` (as in the setup script), `EFFECT_SSH_KEEP_SSHD=1`
 * (leave the temp dir and its log after `stop()`).
 *
 * @since 0.1.0
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as FsPromises from "node:fs/promises"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { promisify } from "node:util"
import { describe, it } from "vitest"

const execFile = promisify(ChildProcess.execFile)

// ---------------------------------------------------------------------------------------------------------------
// Models
// ---------------------------------------------------------------------------------------------------------------

/** A host or client key type the harness generates with `ssh-keygen -t`. */
export type KeyType = "ed25519" | "ecdsa" | "rsa"

/** What a suite needs: the server binaries, the client binaries, sftp-server, or the password test account. */
export type InteropRequirement = "sshd" | "ssh" | "sftpServer" | "password"

/** Options for `startSshd`. */
export interface SshdOptions {
  /**
   * Extra `sshd_config` keywords. A keyword that is also a default (matched case-insensitively) replaces it; an
   * array becomes one line per element (`HostKey`, `Subsystem`, ...). A `Match` value is written verbatim, last.
   */
  readonly config?: Readonly<Record<string, string | ReadonlyArray<string>>> | undefined
  /** Host keys to generate; default all three. */
  readonly hostKeyTypes?: ReadonlyArray<KeyType> | undefined
}

/** One of the server's host keys. */
export interface SshdHostKey {
  /** The `ssh-keygen -t` type. */
  readonly type: KeyType
  /** The key's SSH type name, first field of the public key line: `ssh-ed25519`, `ecdsa-sha2-nistp256`, `ssh-rsa`. */
  readonly algorithm: string
  /** The `.pub` file's line: `<algorithm> <base64> <comment>`. */
  readonly publicKeyLine: string
  /** `SHA256:...` as printed by `ssh-keygen -lf`. */
  readonly fingerprint: string
  /** Private key file. */
  readonly path: string
}

/** A running sshd. */
export interface Sshd {
  readonly host: "127.0.0.1"
  readonly port: number
  /** The temp dir holding config, keys, known_hosts and the log; removed by `stop()`. */
  readonly dir: string
  /** The account tests log in as: `effectssh` when its password is available, else the current user. */
  readonly user: string
  /** `user`'s password, when the password test account is set up and readable. */
  readonly password: string | undefined
  readonly hostKeys: ReadonlyArray<SshdHostKey>
  /** Unencrypted private key files whose `.pub` are in the server's authorized_keys. */
  readonly clientKeys: { readonly ed25519: string; readonly ecdsa: string; readonly rsa: string }
  /** known_hosts with every host key for `[127.0.0.1]:port`. */
  readonly knownHostsFile: string
  /** `SSH_ASKPASS` program printing `$EFFECT_SSH_ASKPASS_PASSWORD` (no secret is stored on disk). */
  readonly askpassFile: string
  readonly configFile: string
  /** sshd's DEBUG1 log (`-E`), plus anything it wrote to stderr. */
  readonly logFile: string
  /** Kills sshd and the connections it forked, then removes `dir`. Idempotent. */
  readonly stop: () => Promise<void>
}

/** Absolute paths of the OpenSSH programs found on this machine. */
export interface OpensshPaths {
  readonly sshd: string | undefined
  readonly ssh: string | undefined
  readonly sshKeygen: string | undefined
  readonly sftp: string | undefined
  readonly sftpServer: string | undefined
}

/** What `opensshAvailable` reports. */
export interface OpensshAvailability {
  /** `sshd` and `ssh-keygen` (openssh-server). */
  readonly sshd: boolean
  /** `ssh` and `sftp` (openssh-client). */
  readonly ssh: boolean
  readonly sftpServer: boolean
  /** What is missing, when something is. */
  readonly reason?: string | undefined
}

/** How `runSsh` authenticates. */
export type SshAuth =
  | { readonly identity: string }
  | { readonly password: string; readonly method?: "password" | "keyboard-interactive" | undefined }

/** What the OpenSSH client printed and how it exited (255 = ssh's own failure). */
export interface SshResult {
  readonly stdout: string
  readonly stderr: string
  readonly code: number | null
}

// ---------------------------------------------------------------------------------------------------------------
// Environment
// ---------------------------------------------------------------------------------------------------------------

const flagSet = (value: string | undefined): boolean =>
  value !== undefined && value !== "" && value !== "0" && value.toLowerCase() !== "false"

/**
 * True under CI (`CI`) or with `EFFECT_SSH_REQUIRE_INTEROP`: missing OpenSSH prerequisites then fail tests.
 *
 * @example
 * ```ts
 * if (!requireOpenssh) console.log("interop tests may be skipped")
 * ```
 */
export const requireOpenssh: boolean = flagSet(process.env.CI) || flagSet(process.env.EFFECT_SSH_REQUIRE_INTEROP)

const isExecutable = (file: string): boolean => {
  try {
    Fs.accessSync(file, Fs.constants.X_OK)
    return Fs.statSync(file).isFile()
  } catch {
    return false
  }
}

const onPath = (name: string): ReadonlyArray<string> =>
  (process.env.PATH ?? "").split(Path.delimiter).filter((dir) => dir !== "").map((dir) => Path.join(dir, name))

const findProgram = (candidates: ReadonlyArray<string | undefined>): string | undefined =>
  candidates.find((candidate): candidate is string => candidate !== undefined && candidate !== "" && isExecutable(candidate))

/**
 * Locates the OpenSSH programs (Debian paths first, then `PATH`); `EFFECT_SSH_SSHD` overrides sshd.
 *
 * @example
 * ```ts
 * const { ssh } = opensshPaths()
 * if (ssh !== undefined) console.log(`client at ${ssh}`)
 * ```
 */
export const opensshPaths = (): OpensshPaths => ({
  sshd: findProgram([process.env.EFFECT_SSH_SSHD, "/usr/sbin/sshd", "/usr/local/sbin/sshd", ...onPath("sshd")]),
  ssh: findProgram(["/usr/bin/ssh", "/usr/local/bin/ssh", ...onPath("ssh")]),
  sshKeygen: findProgram(["/usr/bin/ssh-keygen", "/usr/local/bin/ssh-keygen", ...onPath("ssh-keygen")]),
  sftp: findProgram(["/usr/bin/sftp", "/usr/local/bin/sftp", ...onPath("sftp")]),
  sftpServer: findProgram([
    "/usr/lib/openssh/sftp-server",
    "/usr/libexec/openssh/sftp-server",
    "/usr/libexec/sftp-server",
    "/usr/lib/ssh/sftp-server",
    "/usr/local/libexec/sftp-server"
  ])
})

/**
 * Which OpenSSH pieces exist, with a reason naming the missing ones.
 *
 * @example
 * ```ts
 * const available = opensshAvailable()
 * if (!available.sshd) console.log(available.reason)
 * ```
 */
export const opensshAvailable = (): OpensshAvailability => {
  const paths = opensshPaths()
  const missing = [
    paths.sshd === undefined ? "sshd" : undefined,
    paths.sshKeygen === undefined ? "ssh-keygen" : undefined,
    paths.ssh === undefined ? "ssh" : undefined,
    paths.sftp === undefined ? "sftp" : undefined,
    paths.sftpServer === undefined ? "sftp-server" : undefined
  ].filter((name) => name !== undefined)
  return {
    sshd: paths.sshd !== undefined && paths.sshKeygen !== undefined,
    ssh: paths.ssh !== undefined && paths.sftp !== undefined,
    sftpServer: paths.sftpServer !== undefined,
    ...(missing.length > 0
      ? { reason: `OpenSSH not installed: missing ${missing.join(", ")} (apt-get install openssh-server openssh-client)` }
      : {})
  }
}

const isRoot = (): boolean => process.getuid?.() === 0

const testUser = (): string => process.env.EFFECT_SSH_TEST_USER ?? "effectssh"

const passwordFile = (): string => process.env.EFFECT_SSH_TEST_PASSWORD_FILE ?? "/var/lib/effect-ssh-test/password"

const readPassword = (): string | undefined => {
  try {
    const line = Fs.readFileSync(passwordFile(), "utf8").split("\n")[0]?.trim() ?? ""
    return line === "" ? undefined : line
  } catch {
    return undefined
  }
}

/**
 * The password test account from `scripts/setup-test-user.sh`, when it exists and sshd can check passwords
 * (i.e. we run as root and can read the password file).
 *
 * @example
 * ```ts
 * const account = passwordAccount()
 * if (account !== undefined) console.log(`password logins as ${account.user}`)
 * ```
 */
export const passwordAccount = (): { readonly user: string; readonly password: string } | undefined => {
  if (!isRoot()) return undefined
  const password = readPassword()
  return password === undefined ? undefined : { user: testUser(), password }
}

/**
 * Why the given prerequisites are not met, or `undefined` when they all are.
 *
 * @example
 * ```ts
 * const reason = interopUnavailableReason(["sshd", "ssh", "password"])
 * if (reason !== undefined) console.log(`cannot run: ${reason}`)
 * ```
 */
export const interopUnavailableReason = (requires: ReadonlyArray<InteropRequirement>): string | undefined => {
  const available = opensshAvailable()
  const paths = opensshPaths()
  const reasons = requires.flatMap((requirement): ReadonlyArray<string> => {
    switch (requirement) {
      case "sshd":
        return available.sshd ? [] : [`sshd/ssh-keygen not found (${paths.sshd ?? "no sshd"}, ${paths.sshKeygen ?? "no ssh-keygen"})`]
      case "ssh":
        return available.ssh ? [] : ["ssh/sftp client not found"]
      case "sftpServer":
        return available.sftpServer ? [] : ["sftp-server not found"]
      case "password":
        if (!isRoot()) return ["password logins need sshd running as root"]
        return readPassword() === undefined ? [`no password test account (run scripts/setup-test-user.sh as root; ${passwordFile()} unreadable)`] : []
    }
  })
  return reasons.length === 0 ? undefined : reasons.join("; ")
}

/**
 * `describe` for suites that drive real OpenSSH. Missing prerequisites skip the suite with a printed reason, or,
 * when `requireOpenssh` is set, register a failing test naming what is missing.
 *
 * @example
 * ```ts
 * describeInterop("exec against OpenSSH", () => {
 *   it("runs echo", async () => {
 *     const sshd = await startSshd()
 *     try { expect((await runSsh(sshd, "echo ok", { identity: sshd.clientKeys.ed25519 })).stdout).toBe("ok\n") }
 *     finally { await sshd.stop() }
 *   })
 * }, { requires: ["sshd", "ssh", "password"] })
 * ```
 */
export const describeInterop = (
  name: string,
  body: () => void,
  options?: { readonly requires?: ReadonlyArray<InteropRequirement> | undefined }
): void => {
  const reason = interopUnavailableReason(options?.requires ?? ["sshd", "ssh"])
  if (reason === undefined) {
    describe(name, body)
  } else if (requireOpenssh) {
    describe(name, () => {
      it("has its OpenSSH interop prerequisites", () => {
        throw new Error(`${reason} — required because CI or EFFECT_SSH_REQUIRE_INTEROP is set`)
      })
    })
  } else {
    console.warn(`[effect-ssh interop] skipping "${name}": ${reason}`)
    describe.skip(name, body)
  }
}

// ---------------------------------------------------------------------------------------------------------------
// sshd configuration
// ---------------------------------------------------------------------------------------------------------------

type ConfigValue = string | ReadonlyArray<string>

interface Algorithms {
  readonly kex: string
  readonly cipher: string
  readonly mac: string
  readonly hostKey: string
  readonly pubkey: string
}

const query = async (ssh: string, what: string): Promise<string> => {
  const { stdout } = await execFile(ssh, ["-Q", what])
  return stdout.split("\n").map((line) => line.trim()).filter((line) => line !== "").join(",")
}

let algorithmsOnce: Promise<Algorithms> | undefined

/** Every algorithm of the installed OpenSSH (`ssh -Q`), asked once per process. */
const allAlgorithms = (ssh: string): Promise<Algorithms> => {
  algorithmsOnce ??= Promise.all(
    ["kex", "cipher", "mac", "HostKeyAlgorithms", "PubkeyAcceptedAlgorithms"].map((what) => query(ssh, what))
  ).then(([kex = "", cipher = "", mac = "", hostKey = "", pubkey = ""]) => ({ kex, cipher, mac, hostKey, pubkey }))
  algorithmsOnce.catch(() => {
    algorithmsOnce = undefined
  })
  return algorithmsOnce
}

let versionOnce: Promise<readonly [number, number]> | undefined

/** sshd's OpenSSH major.minor (`sshd -V` prints it; older sshd print it in their usage text). */
const sshdVersion = (sshd: string): Promise<readonly [number, number]> => {
  versionOnce ??= new Promise((resolve) => {
    ChildProcess.execFile(sshd, ["-V"], (_error, stdout, stderr) => {
      const match = /OpenSSH_(\d+)\.(\d+)/.exec(`${stdout}${stderr}`)
      resolve(match === null ? [0, 0] : [Number(match[1]), Number(match[2])])
    })
  })
  return versionOnce
}

const atLeast = (version: readonly [number, number], major: number, minor: number): boolean =>
  version[0] > major || (version[0] === major && version[1] >= minor)

/**
 * Renders `sshd_config` text: overrides replace defaults of the same keyword (case-insensitive), an array value
 * gives one line per element, and `Match` blocks go last (sshd applies the first value of a keyword it reads).
 *
 * @example
 * ```ts
 * renderSshdConfig([["Ciphers", "aes128-ctr"], ["HostKey", ["/k1", "/k2"]]], { ciphers: "aes256-ctr" })
 * // "ciphers aes256-ctr\nHostKey /k1\nHostKey /k2\n"
 * ```
 */
export const renderSshdConfig = (
  defaults: ReadonlyArray<readonly [string, ConfigValue]>,
  overrides: Readonly<Record<string, ConfigValue>>
): string => {
  const entries = new Map<string, readonly [string, ConfigValue]>()
  for (const [keyword, value] of defaults) entries.set(keyword.toLowerCase(), [keyword, value])
  for (const [keyword, value] of Object.entries(overrides)) {
    if (!/^[A-Za-z][A-Za-z0-9]*$/.test(keyword)) throw new Error(`invalid sshd_config keyword: ${JSON.stringify(keyword)}`)
    entries.set(keyword.toLowerCase(), [keyword, value])
  }
  const lines = (keyword: string, value: ConfigValue): ReadonlyArray<string> =>
    (typeof value === "string" ? [value] : value).map((item) => {
      if (keyword.toLowerCase() !== "match" && /[\r\n]/.test(item)) {
        throw new Error(`sshd_config value for ${keyword} contains a newline`)
      }
      return `${keyword} ${item}`
    })
  const all = [...entries.values()]
  const ordered = [...all.filter(([k]) => k.toLowerCase() !== "match"), ...all.filter(([k]) => k.toLowerCase() === "match")]
  return `${ordered.flatMap(([keyword, value]) => lines(keyword, value)).join("\n")}\n`
}

// ---------------------------------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------------------------------

const generateKey = async (sshKeygen: string, type: KeyType, file: string, comment: string): Promise<void> => {
  await execFile(sshKeygen, ["-q", "-t", type, "-N", "", "-C", comment, "-f", file])
}

const fingerprintOf = async (sshKeygen: string, publicKeyFile: string): Promise<string> => {
  const { stdout } = await execFile(sshKeygen, ["-l", "-E", "sha256", "-f", publicKeyFile])
  const match = /SHA256:[A-Za-z0-9+/]+/.exec(stdout)
  if (match === null) throw new Error(`ssh-keygen -lf printed no SHA256 fingerprint: ${stdout}`)
  return match[0]
}

const hostKey = async (sshKeygen: string, dir: string, type: KeyType): Promise<SshdHostKey> => {
  const path = Path.join(dir, `ssh_host_${type}_key`)
  await generateKey(sshKeygen, type, path, `effect-ssh-test-host-${type}`)
  const publicKeyLine = (await FsPromises.readFile(`${path}.pub`, "utf8")).trim()
  const fingerprint = await fingerprintOf(sshKeygen, `${path}.pub`)
  return { type, algorithm: publicKeyLine.split(" ")[0] ?? "", publicKeyLine, fingerprint, path }
}

interface KeyFiles {
  readonly privateKey: string
  readonly publicKey: string
}

let clientKeysOnce: Promise<Readonly<Record<KeyType, KeyFiles>>> | undefined

/** Client keys are generated once per process (RSA generation is slow) and copied into each sshd's dir. */
const clientKeyMaterial = (sshKeygen: string): Promise<Readonly<Record<KeyType, KeyFiles>>> => {
  clientKeysOnce ??= (async () => {
    const dir = await FsPromises.mkdtemp(Path.join(Os.tmpdir(), "effect-ssh-client-keys-"))
    try {
      const generate = async (type: KeyType): Promise<KeyFiles> => {
        const file = Path.join(dir, `id_${type}`)
        await generateKey(sshKeygen, type, file, `effect-ssh-test-client-${type}`)
        const [privateKey, publicKey] = await Promise.all([
          FsPromises.readFile(file, "utf8"),
          FsPromises.readFile(`${file}.pub`, "utf8")
        ])
        return { privateKey, publicKey }
      }
      const [ed25519, ecdsa, rsa] = await Promise.all([generate("ed25519"), generate("ecdsa"), generate("rsa")])
      return { ed25519, ecdsa, rsa }
    } finally {
      await FsPromises.rm(dir, { recursive: true, force: true })
    }
  })()
  clientKeysOnce.catch(() => {
    clientKeysOnce = undefined
  })
  return clientKeysOnce
}

const writeClientKey = async (dir: string, type: KeyType, files: KeyFiles): Promise<string> => {
  const path = Path.join(dir, `id_${type}`)
  await FsPromises.writeFile(path, files.privateKey, { mode: 0o600 })
  await FsPromises.writeFile(`${path}.pub`, files.publicKey, { mode: 0o644 })
  return path
}

// ---------------------------------------------------------------------------------------------------------------
// Process handling
// ---------------------------------------------------------------------------------------------------------------

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = Net.createServer()
    server.unref()
    server.on("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => (port > 0 ? resolve(port) : reject(new Error("no free port"))))
    })
  })

/** Connects and reads the identification line; true only for an OpenSSH banner (not some other listener). */
const answersWithOpensshBanner = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = Net.connect({ host: "127.0.0.1", port })
    let received = ""
    const finish = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(1_000, () => finish(false))
    socket.on("error", () => finish(false))
    socket.on("close", () => finish(false))
    socket.on("data", (chunk: Buffer) => {
      received += chunk.toString("latin1")
      if (received.includes("\n")) finish(received.startsWith("SSH-2.0-OpenSSH"))
      else if (received.length > 255) finish(false)
    })
  })

const logTail = (logFile: string, lines = 30): string => {
  try {
    return Fs.readFileSync(logFile, "utf8").trimEnd().split("\n").slice(-lines).join("\n")
  } catch {
    return "(no log)"
  }
}

/** Parent of every process (Linux /proc), read in one pass. */
const parentsByPid = (): ReadonlyMap<number, number> => {
  const parents = new Map<number, number>()
  try {
    for (const name of Fs.readdirSync("/proc")) {
      if (!/^\d+$/.test(name)) continue
      try {
        const stat = Fs.readFileSync(`/proc/${name}/stat`, "utf8")
        parents.set(Number(name), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]))
      } catch {
        // exited while we looked
      }
    }
  } catch {
    // no /proc: only sshd itself gets signalled
  }
  return parents
}

/** Every process below `pid`: sshd forks a monitor per connection, which forks the session and its commands. */
const descendantPids = (pid: number): ReadonlyArray<number> => {
  const parents = parentsByPid()
  const found: Array<number> = []
  let frontier = [pid]
  while (frontier.length > 0) {
    const next = [...parents].filter(([, parent]) => frontier.includes(parent)).map(([child]) => child)
    found.push(...next)
    frontier = next
  }
  return found
}

/** Signals one process; never a process group (pid 0 or negative would hit the test runner itself). */
const signal = (pid: number | undefined, name: NodeJS.Signals): void => {
  if (pid === undefined || pid <= 0) return
  try {
    process.kill(pid, name)
  } catch {
    // already gone
  }
}

/** Gone or a zombie (orphans are reparented to a PID 1 that may never reap them). */
const processGone = (pid: number): boolean => {
  try {
    const stat = Fs.readFileSync(`/proc/${pid}/stat`, "utf8")
    return stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z")
  } catch {
    return true
  }
}

/** Waits until every pid is gone, then SIGKILLs the survivors. */
const reap = async (pids: ReadonlyArray<number>, ms: number): Promise<void> => {
  const deadline = Date.now() + ms
  while (pids.some((pid) => !processGone(pid)) && Date.now() < deadline) await sleep(20)
  for (const pid of pids) if (!processGone(pid)) signal(pid, "SIGKILL")
}

const exited = (child: ChildProcess.ChildProcess): boolean => child.exitCode !== null || child.signalCode !== null

const waitForExit = (child: ChildProcess.ChildProcess, ms: number): Promise<boolean> =>
  exited(child)
    ? Promise.resolve(true)
    : new Promise((resolve) => {
        const timer = setTimeout(() => resolve(false), ms)
        child.once("exit", () => {
          clearTimeout(timer)
          resolve(true)
        })
      })

interface Running {
  readonly child: ChildProcess.ChildProcess
  readonly dir: string
}

/** sshds still running, killed synchronously if the test process exits without stopping them. */
const running = new Set<Running>()
let exitHookInstalled = false

const keepDir = (): boolean => flagSet(process.env.EFFECT_SSH_KEEP_SSHD)

const installExitHook = (): void => {
  if (exitHookInstalled) return
  exitHookInstalled = true
  process.once("exit", () => {
    for (const { child, dir } of running) {
      if (child.pid !== undefined) {
        for (const pid of descendantPids(child.pid)) signal(pid, "SIGKILL")
        signal(child.pid, "SIGKILL")
      }
      if (!keepDir()) Fs.rmSync(dir, { recursive: true, force: true })
    }
  })
}

type Launch = { readonly _tag: "Ready"; readonly child: ChildProcess.ChildProcess } | { readonly _tag: "PortTaken" }

const READY_TIMEOUT_MS = 10_000

const launch = async (sshd: string, configFile: string, logFile: string, port: number): Promise<Launch> => {
  // Truncated per attempt, so a previous attempt's "Address already in use" cannot be mistaken for this one's.
  const logFd = Fs.openSync(logFile, "w")
  const child = ChildProcess.spawn(sshd, ["-D", "-e", "-f", configFile, "-p", String(port), "-E", logFile], {
    stdio: ["ignore", logFd, logFd]
  })
  Fs.closeSync(logFd)
  let spawnFailure: Error | undefined
  child.once("error", (error) => {
    spawnFailure = error
  })
  const deadline = Date.now() + READY_TIMEOUT_MS
  for (;;) {
    await sleep(20)
    if (spawnFailure !== undefined) throw new Error(`cannot start ${sshd}: ${spawnFailure.message}`)
    if (exited(child)) {
      const tail = logTail(logFile)
      if (/Address already in use|Cannot bind any address/.test(tail)) return { _tag: "PortTaken" }
      throw new Error(`sshd exited with ${child.exitCode ?? child.signalCode} before listening:\n${tail}`)
    }
    if ((await answersWithOpensshBanner(port)) && !exited(child)) return { _tag: "Ready", child }
    if (Date.now() > deadline) {
      signal(child.pid, "SIGKILL")
      throw new Error(`sshd did not accept connections on port ${port} within ${READY_TIMEOUT_MS} ms:\n${logTail(logFile)}`)
    }
    await sleep(30)
  }
}

const ensurePrivilegeSeparationDir = (): void => {
  if (!isRoot()) return
  try {
    Fs.mkdirSync("/run/sshd", { recursive: true, mode: 0o755 })
  } catch {
    // sshd reports the problem in its log
  }
}

const ASKPASS_SCRIPT = `#!/bin/sh\nprintf '%s\\n' "$EFFECT_SSH_ASKPASS_PASSWORD"\n`

const PORT_ATTEMPTS = 8

// ---------------------------------------------------------------------------------------------------------------
// startSshd
// ---------------------------------------------------------------------------------------------------------------

/**
 * Starts `sshd -D` on 127.0.0.1 with fresh keys in a temp dir; call `stop()` when done.
 *
 * @example
 * ```ts
 * const sshd = await startSshd({ hostKeyTypes: ["ed25519"], config: { Ciphers: "aes128-ctr" } })
 * try {
 *   console.log(sshd.port, sshd.hostKeys[0]?.fingerprint)
 * } finally {
 *   await sshd.stop()
 * }
 * ```
 */
export const startSshd = async (options?: SshdOptions): Promise<Sshd> => {
  const paths = opensshPaths()
  const { sshd, ssh, sshKeygen, sftpServer } = paths
  if (sshd === undefined || sshKeygen === undefined || ssh === undefined) {
    throw new Error(opensshAvailable().reason ?? "OpenSSH not installed")
  }
  const hostKeyTypes = options?.hostKeyTypes ?? (["ed25519", "ecdsa", "rsa"] as const)
  if (hostKeyTypes.length === 0) throw new Error("startSshd: hostKeyTypes must not be empty")

  const dir = await FsPromises.mkdtemp(Path.join(Os.tmpdir(), "effect-ssh-sshd-"))
  try {
    // The password account must read authorized_keys; private keys stay 0600 (ssh-keygen's default).
    await FsPromises.chmod(dir, 0o755)
    const [algorithms, version, hostKeys, clientMaterial] = await Promise.all([
      allAlgorithms(ssh),
      sshdVersion(sshd),
      Promise.all(hostKeyTypes.map((type) => hostKey(sshKeygen, dir, type))),
      clientKeyMaterial(sshKeygen)
    ])
    const clientKeys = {
      ed25519: await writeClientKey(dir, "ed25519", clientMaterial.ed25519),
      ecdsa: await writeClientKey(dir, "ecdsa", clientMaterial.ecdsa),
      rsa: await writeClientKey(dir, "rsa", clientMaterial.rsa)
    }

    const authorizedKeysFile = Path.join(dir, "authorized_keys")
    const authorizedKeys = Object.values(clientMaterial).map((files) => `${files.publicKey.trim()}\n`).join("")
    await FsPromises.writeFile(authorizedKeysFile, authorizedKeys, { mode: 0o644 })

    const askpassFile = Path.join(dir, "askpass")
    await FsPromises.writeFile(askpassFile, ASKPASS_SCRIPT, { mode: 0o755 })

    const root = isRoot()
    const account = passwordAccount()
    const user = account?.user ?? Os.userInfo().username
    const configFile = Path.join(dir, "sshd_config")
    const logFile = Path.join(dir, "sshd.log")
    const knownHostsFile = Path.join(dir, "known_hosts")

    const defaults: ReadonlyArray<readonly [string, ConfigValue]> = [
      ["ListenAddress", "127.0.0.1"],
      ["HostKey", hostKeys.map((key) => key.path)],
      ["PidFile", Path.join(dir, "sshd.pid")],
      ["AuthorizedKeysFile", authorizedKeysFile],
      ["StrictModes", "no"],
      // PAM (Debian's /etc/pam.d/sshd) checks real passwords and drives keyboard-interactive; it needs root.
      ["UsePAM", root ? "yes" : "no"],
      ["PermitRootLogin", root ? "yes" : "prohibit-password"],
      ["PasswordAuthentication", "yes"],
      ["KbdInteractiveAuthentication", "yes"],
      ["PubkeyAuthentication", "yes"],
      ["LogLevel", "DEBUG1"],
      ["MaxStartups", "500"],
      ["MaxSessions", "200"],
      ["KexAlgorithms", algorithms.kex],
      ["Ciphers", algorithms.cipher],
      ["MACs", algorithms.mac],
      ["HostKeyAlgorithms", algorithms.hostKey],
      ["PubkeyAcceptedAlgorithms", algorithms.pubkey],
      ["AcceptEnv", "LANG LC_* EFFECT_SSH_*"],
      ["PrintMotd", "no"],
      ["PrintLastLog", "no"],
      ["UseDNS", "no"],
      ...(sftpServer !== undefined ? [["Subsystem", `sftp ${sftpServer}`] as const] : []),
      // OpenSSH ≥ 9.8 penalises addresses with failed logins; tests fail logins from 127.0.0.1 on purpose.
      ...(atLeast(version, 9, 8) ? [["PerSourcePenalties", "no"] as const] : [])
    ]
    await FsPromises.writeFile(configFile, renderSshdConfig(defaults, options?.config ?? {}), { mode: 0o644 })
    ensurePrivilegeSeparationDir()

    for (let attempt = 1; ; attempt++) {
      const port = await freePort()
      await FsPromises.writeFile(
        knownHostsFile,
        hostKeys.map((key) => `[127.0.0.1]:${port} ${key.publicKeyLine.split(" ").slice(0, 2).join(" ")}\n`).join(""),
        { mode: 0o644 }
      )
      const launched = await launch(sshd, configFile, logFile, port)
      if (launched._tag === "PortTaken") {
        if (attempt >= PORT_ATTEMPTS) throw new Error(`sshd: no free port after ${attempt} attempts:\n${logTail(logFile)}`)
        continue
      }
      const { child } = launched
      const entry: Running = { child, dir }
      running.add(entry)
      installExitHook()
      let stopped: Promise<void> | undefined
      const stop = (): Promise<void> => {
        stopped ??= (async () => {
          const descendants = child.pid === undefined ? [] : descendantPids(child.pid)
          for (const pid of descendants) signal(pid, "SIGTERM")
          signal(child.pid, "SIGTERM")
          if (!(await waitForExit(child, 3_000))) {
            signal(child.pid, "SIGKILL")
            await waitForExit(child, 3_000)
          }
          await reap(descendants, 3_000)
          running.delete(entry)
          if (!keepDir()) await FsPromises.rm(dir, { recursive: true, force: true })
        })()
        return stopped
      }
      return {
        host: "127.0.0.1",
        port,
        dir,
        user,
        password: account?.password,
        hostKeys,
        clientKeys,
        knownHostsFile,
        askpassFile,
        configFile,
        logFile,
        stop
      }
    }
  } catch (error) {
    if (!keepDir()) await FsPromises.rm(dir, { recursive: true, force: true })
    throw error
  }
}

// ---------------------------------------------------------------------------------------------------------------
// OpenSSH client
// ---------------------------------------------------------------------------------------------------------------

/**
 * `ssh` arguments (before the destination) that trust exactly the sshd's known_hosts, ignore the user's
 * `~/.ssh/config` and agent, and authenticate only the way `auth` says.
 *
 * @example
 * ```ts
 * const args = [...sshClientArgs(sshd, { identity: sshd.clientKeys.rsa }), `${sshd.user}@${sshd.host}`, "true"]
 * ```
 */
export const sshClientArgs = (sshd: Sshd, auth: SshAuth): ReadonlyArray<string> => {
  const common = [
    "-F", "/dev/null",
    "-p", String(sshd.port),
    "-o", `UserKnownHostsFile=${sshd.knownHostsFile}`,
    "-o", "GlobalKnownHostsFile=/dev/null",
    "-o", "StrictHostKeyChecking=yes",
    "-o", "IdentityAgent=none",
    "-o", "ConnectTimeout=10",
    "-o", "LogLevel=INFO"
  ]
  if ("identity" in auth) {
    return [
      ...common,
      "-o", "BatchMode=yes",
      "-o", "IdentitiesOnly=yes",
      "-o", "PreferredAuthentications=publickey",
      "-i", auth.identity
    ]
  }
  const method = auth.method ?? "password"
  return [
    ...common,
    "-o", `PreferredAuthentications=${method}`,
    "-o", "PubkeyAuthentication=no",
    "-o", "NumberOfPasswordPrompts=1"
  ]
}

/**
 * Runs the OpenSSH client against `sshd` as `sshd.user`; passwords go through `SSH_ASKPASS` (no tty needed).
 *
 * @example
 * ```ts
 * const result = await runSsh(sshd, "echo ok", { identity: sshd.clientKeys.ed25519 })
 * // result.stdout === "ok\n", result.code === 0
 * ```
 */
export const runSsh = (
  sshd: Sshd,
  command: string,
  auth: SshAuth,
  options?: { readonly extraArgs?: ReadonlyArray<string> | undefined; readonly timeoutMs?: number | undefined }
): Promise<SshResult> => {
  const ssh = opensshPaths().ssh
  if (ssh === undefined) return Promise.reject(new Error("ssh client not installed"))
  const env: NodeJS.ProcessEnv =
    "password" in auth
      ? {
          ...process.env,
          SSH_ASKPASS: sshd.askpassFile,
          SSH_ASKPASS_REQUIRE: "force",
          EFFECT_SSH_ASKPASS_PASSWORD: auth.password
        }
      : process.env
  // ssh keeps the first value of an option, so extra arguments go first to override the defaults.
  const args = [...(options?.extraArgs ?? []), ...sshClientArgs(sshd, auth), `${sshd.user}@${sshd.host}`, command]
  const timeoutMs = options?.timeoutMs ?? 30_000
  return new Promise((resolve, reject) => {
    ChildProcess.execFile(ssh, args, { env, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error === null) resolve({ stdout, stderr, code: 0 })
      else if (error.killed === true) reject(new Error(`ssh timed out after ${timeoutMs} ms: ${stderr}`))
      else if (typeof error.code === "number") resolve({ stdout, stderr, code: error.code })
      else if (typeof error.code === "string") reject(error)
      else resolve({ stdout, stderr, code: null })
    }).stdin?.end()
  })
}
