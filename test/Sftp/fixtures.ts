/**
 * Shared by the SFTP shell tests: an SSH server with an SFTP root in a temp
 * directory, a client session on it, and small file helpers.
 */
import * as Effect from "effect/Effect"
import type * as FileSystem from "effect/FileSystem"
import type * as Scope from "effect/Scope"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Auth from "../../src/Auth/ClientAuth.ts"
import * as HostKeys from "../../src/Auth/HostKeys.ts"
import * as PrivateKey from "../../src/Auth/PrivateKey.ts"
import * as PublicKey from "../../src/Auth/PublicKey.ts"
import * as SshClient from "../../src/Client.ts"
import * as SshServer from "../../src/Server.ts"
import type { SftpClient } from "../../src/Sftp/SftpClient.ts"
import * as SftpServer from "../../src/Sftp/SftpServer.ts"
import type { SshError } from "../../src/SshError.ts"

export const hostKey = PrivateKey.generate("ssh-ed25519")
export const userKey = PrivateKey.generate("ssh-ed25519")

/** A fresh temp directory (real path), removed by the returned function. */
export const tempDir = (prefix: string): { readonly path: string; readonly remove: () => void } => {
  const path = Fs.realpathSync(Fs.mkdtempSync(Path.join(Os.tmpdir(), prefix)))
  return { path, remove: () => Fs.rmSync(path, { recursive: true, force: true }) }
}

/** Random bytes. */
export const randomBytes = (n: number): Uint8Array => new Uint8Array(Crypto.randomBytes(n))

/** SHA-256 of bytes or of a file, hex. */
export const sha256 = (data: Uint8Array | string): string =>
  Crypto.createHash("sha256").update(typeof data === "string" ? Fs.readFileSync(data) : data).digest("hex")

/** Server options for alice with `userKey`. */
export const serverOptions = (extra: Partial<SshServer.ServeOptions> = {}): SshServer.ServeOptions => ({
  port: 0,
  hostKeys: [hostKey],
  auth: { publicKey: ({ user, key }) => Effect.succeed(user === "alice" && PublicKey.equals(key, userKey.publicKey)) },
  ...extra
})

/** Connects alice to a server on `port`. */
export const connect = (port: number) =>
  SshClient.connect({
    host: "127.0.0.1",
    port,
    username: "alice",
    auth: [Auth.privateKey(userKey)],
    hostKeys: HostKeys.fixed(hostKey.publicKey),
    connectTimeout: "20 seconds"
  })

/** Starts a server serving `root` over SFTP and gives an SFTP session on it (and the connection). */
export const withSftp = <A, E, R>(
  root: string,
  f: (sftp: SftpClient, ssh: SshClient.SshConnection, port: number) => Effect.Effect<A, E, R>,
  options: Partial<SftpServer.SftpServerOptions> = {}
): Effect.Effect<A, E | SshError, R | Scope.Scope | SshClient.Connector | FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const server = yield* SshServer.serve(serverOptions({ sftp: SftpServer.fileSystem({ root, ...options }) }))
    const ssh = yield* connect(server.address.port)
    const sftp = yield* ssh.sftp()
    return yield* f(sftp, ssh, server.address.port)
  })
