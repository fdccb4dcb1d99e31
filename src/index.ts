/**
 * effect-ssh: SSH-2 client and server for Effect.
 *
 * @example
 * ```ts
 * import { Auth, HostKeys, NodeSsh, SshClient } from "effect-ssh"
 * ```
 * @since 0.1.0
 */

/** Connect to a server: `SshClient.connect(options)` → scoped `SshConnection`. */
export * as SshClient from "./Client.ts"
/** Authentication methods: `Auth.password`, `Auth.privateKeyFile`, `Auth.keyboardInteractive`, ... */
export * as Auth from "./Auth/ClientAuth.ts"
/** Host-key policies: `HostKeys.knownHosts()`, `fixed`, `fingerprint`, `callback`. */
export * as HostKeys from "./Auth/HostKeys.ts"
/** Public keys: parse, fingerprint, format. */
export * as PublicKey from "./Auth/PublicKey.ts"
/** Private keys: parse, generate, sign, write. */
export * as PrivateKey from "./Auth/PrivateKey.ts"
/** known_hosts files: parse, look up, format lines. */
export * as KnownHosts from "./Auth/KnownHosts.ts"
/** Remote processes: exec, shell, subsystem, exit status. */
export * as Session from "./Channel/Session.ts"
/** The channel multiplexer. */
export * as Connection from "./Channel/Connection.ts"
/** The one error type and its reasons. */
export * as SshError from "./SshError.ts"
/** Node.js layer: TCP connector and file system. */
export * as NodeSsh from "./NodeSsh.ts"
/** SFTP sessions: `ssh.sftp()` → scoped `SftpClient` (every v3 operation, OpenSSH extensions, get/put). */
export * as SftpClient from "./Sftp/SftpClient.ts"
/** Scoped remote files with a position: read, readAll, write, seek, tell, stat, truncate, sync. */
export * as SftpFile from "./Sftp/SftpFile.ts"
/** Pipelined transfers: readStream, writeSink, get, put, progress. */
export * as SftpTransfer from "./Sftp/Transfer.ts"
/** The SFTP server: `SftpServer.fileSystem({ root, readOnly })`, `memory()` or `make(backend)` for `SshServer.serve({ sftp })`. */
export * as SftpServer from "./Sftp/SftpServer.ts"
/** What an SFTP server serves: the `Backend` interface (open, read, write, stat, ... as Effects) for `SftpServer.make`. */
export * as SftpBackend from "./Sftp/Backend.ts"
/** An in-memory SFTP backend (bounded, seedable, inspectable): `SftpMemoryBackend.make({ maxBytes, files })`. */
export * as SftpMemoryBackend from "./Sftp/MemoryBackend.ts"
/** SFTP file attributes: `isDirectory`, `isFile`, `modeString`, ... */
export * as SftpAttributes from "./Sftp/Attributes.ts"
/** SFTP status codes (`StatusCode.NoSuchFile`, ...), as carried by the `SftpStatus` error reason. */
export * as SftpStatusCode from "./Sftp/Status.ts"
/** The embedded server: `SshServer.serve(options)` → scoped server. */
export * as SshServer from "./Server.ts"
/** Connections kept and shared by destination (RcMap). */
export * as SshPool from "./Pool.ts"
/** One command over many hosts (parallel-ssh). */
export * as SshFleet from "./Fleet.ts"
/** Default server session handlers: real processes over pipes or a pty. */
export * as ProcessSession from "./Server/ProcessSession.ts"
/** What a server decides per session request (pty, exec by command, env by value, signal, ...): `SshServer.serve({ session: { decide } })`. */
export * as ServerDecisions from "./Server/Decisions.ts"
/** Custom channel types and global requests a server answers: `SshServer.serve({ channels, globalRequests })`. */
export * as ServerExtensions from "./Server/Extensions.ts"
/** Server-side authentication handlers and options. */
export * as ServerAuth from "./Auth/ServerAuth.ts"
/** authorized_keys options as typed restrictions (`KeyOptions.parse`), shared with user certificates. */
export * as KeyOptions from "./Auth/KeyOptions.ts"
/** OpenSSH certificates: parse, check, sign. */
export * as Certificate from "./Auth/Certificate.ts"
/** ssh-agent protocol codec. */
export * as Agent from "./Auth/Agent.ts"
/** ssh-agent client over SSH_AUTH_SOCK. */
export * as AgentClient from "./Auth/AgentClient.ts"
/** Agent forwarding (auth-agent@openssh.com channels). */
export * as AgentForwarding from "./Auth/AgentForwarding.ts"
/** PuTTY private key files. */
export * as Ppk from "./Auth/Ppk.ts"
/** Reading and writing known_hosts files. */
export * as KnownHostsFile from "./Auth/KnownHostsFile.ts"
/** Default identities (~/.ssh/id_*), like OpenSSH. */
export * as Identities from "./Auth/Identities.ts"
export * as SshConfig from "./Config/SshConfig.ts"
export * as ConnectConfig from "./Config/ConnectConfig.ts"
export * as Jump from "./Config/Jump.ts"
export * as ProxyCommand from "./Config/ProxyCommand.ts"
/** A channel joined to a socket, or seen as one (forwarding's building blocks). */
export * as Bridge from "./Forwarding/Bridge.ts"
/** What a server forwards for its clients: the policy types of `SshServer.serve({ forwarding })`. */
export * as ServerForwarding from "./Forwarding/ServerForwarding.ts"
/** OpenSSH's -L/-R/-D/-W forward syntax. */
export * as ForwardSpec from "./Forwarding/ForwardSpec.ts"
/** The SOCKS4/4a/5 handshake of dynamic forwarding (pure). */
export * as Socks from "./Forwarding/Socks.ts"
