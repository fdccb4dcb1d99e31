/**
 * The SFTP client: a scoped `SftpClient` on an "sftp" subsystem channel
 * (`ssh.sftp()`), with every SFTP v3 operation, the OpenSSH extensions the
 * server offers, scoped files (`open` → `SftpFile`) and pipelined transfers
 * (`get`, `put`, `readStream`, `writeSink`).
 *
 * One reader fiber frames and decodes the server's replies and completes the
 * matching requests, in whatever order they arrive; one writer fiber sends
 * the requests, coalescing small ones into one channel write. A failed
 * request is an `SshError` whose reason is `SftpStatus { code, message, path }`.
 *
 * A malformed reply (bad framing, an unknown packet type, a reply to no
 * request) is a `ProtocolError`: every outstanding and later request fails
 * with it and the SFTP channel is closed; the SSH connection stays usable.
 *
 * @example
 * ```ts
 * const sftp = yield* ssh.sftp()
 * const entries = yield* Stream.runCollect(sftp.readdir("/var/log"))
 * yield* sftp.get("/var/log/syslog", "./syslog")
 * ```
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FileSystem from "effect/FileSystem"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import type * as Sink from "effect/Sink"
import * as Stream from "effect/Stream"
import type * as Session from "../Channel/Session.ts"
import { concat } from "../internal/bytes.ts"
import { isOwned, retain } from "../internal/ownedBuffers.ts"
import { COALESCE_LIMIT, Outbox } from "../internal/sftpOutbox.ts"
import { ReplyReader } from "../internal/sftpReplyReader.ts"
import * as SshError from "../SshError.ts"
import * as Attributes from "./Attributes.ts"
import * as Extensions from "./Extensions.ts"
import { MAX_DATA_LENGTH, PACKET_HEADER_ALLOWANCE } from "./Framer.ts"
import * as Messages from "./Messages.ts"
import { RequestTable } from "./Requests.ts"
import * as SftpFile from "./SftpFile.ts"
import * as Status from "./Status.ts"
import * as Transfer from "./Transfer.ts"

/** Called once with the reply to a request, or with the error that ended the session. */
export type ReplyHandler = (reply: Messages.SftpResponse | SshError.SshError) => void

/** Options of `make`. */
export interface SftpClientOptions {
  /**
   * Most READ/WRITE requests one transfer keeps in flight (default 128). The count adapts below it: it starts at
   * 32 and doubles only while that raises the throughput, which a long round trip does and loopback does not.
   */
  readonly maxInFlight?: number | undefined
  /** Largest READ/WRITE block (default: the server's limits, at most 256 KiB; 32 KiB without limits@openssh.com). */
  readonly blockSize?: number | undefined
}

/** Arguments of `copyData`: copy `length` bytes (0 = to end of file) between two open handles on the server. */
export interface CopyDataArgs {
  readonly from: Uint8Array
  readonly fromOffset?: number | undefined
  readonly length?: number | undefined
  readonly to: Uint8Array
  readonly toOffset?: number | undefined
}

/**
 * An SFTP session.
 *
 * @example
 * ```ts
 * const sftp = yield* ssh.sftp()
 * if (yield* sftp.exists("/tmp/x")) yield* sftp.remove("/tmp/x")
 * ```
 */
export interface SftpClient {
  /** The protocol version the server answered (3). */
  readonly version: number
  /** The extensions the server advertised in VERSION. */
  readonly extensions: ReadonlyArray<Messages.ExtensionPair>
  /** The server's limits (limits@openssh.com), or conservative defaults when it has none. */
  readonly limits: Extensions.ServerLimits
  /** Bytes per READ and per WRITE request used by transfers. */
  readonly blockSize: { readonly read: number; readonly write: number }
  /** Default cap on requests in flight per transfer. */
  readonly maxInFlight: number
  /**
   * Opens another SFTP session on the same connection with the same options, in the caller's scope (what `put`
   * with `channels` uses); absent for a client `make` built on a subsystem of the caller's.
   */
  readonly sibling: Effect.Effect<SftpClient, SshError.SshError, Scope.Scope> | undefined
  /** Whether the server offers an extension (at the version this client speaks). */
  readonly supports: (extension: string) => boolean

  /** Sends a request and waits for its reply (low level: the reply is not interpreted). */
  readonly request: (request: Messages.SftpRequest) => Effect.Effect<Messages.SftpResponse, SshError.SshError>
  /**
   * Sends a request without waiting; `onReply` runs (on the reader fiber, so it must not block) with the reply
   * or the error that ended the session. The request's `id` is replaced by a fresh one.
   */
  readonly submit: (request: Messages.SftpRequest, onReply: ReplyHandler) => void

  readonly stat: (path: string) => Effect.Effect<Attributes.Attributes, SshError.SshError>
  readonly lstat: (path: string) => Effect.Effect<Attributes.Attributes, SshError.SshError>
  readonly fstat: (handle: Uint8Array) => Effect.Effect<Attributes.Attributes, SshError.SshError>
  readonly setstat: (path: string, attrs: Attributes.Attributes) => Effect.Effect<void, SshError.SshError>
  readonly fsetstat: (handle: Uint8Array, attrs: Attributes.Attributes) => Effect.Effect<void, SshError.SshError>
  /** lsetstat@openssh.com: setstat without following a final symlink. */
  readonly lsetstat: (path: string, attrs: Attributes.Attributes) => Effect.Effect<void, SshError.SshError>
  readonly chmod: (path: string, mode: number) => Effect.Effect<void, SshError.SshError>
  readonly chown: (path: string, uid: number, gid: number) => Effect.Effect<void, SshError.SshError>
  /** Sets access and modification times (seconds since the epoch, or Dates). */
  readonly utimes: (path: string, atime: number | Date, mtime: number | Date) => Effect.Effect<void, SshError.SshError>
  readonly truncate: (path: string, size: number) => Effect.Effect<void, SshError.SshError>
  /** Whether a path exists (following symlinks); other failures than "no such file" fail. */
  readonly exists: (path: string) => Effect.Effect<boolean, SshError.SshError>

  /** Opens a file as a scoped `SftpFile` (closed when the scope closes). Mode as Node's `fs.open`, or OPEN pflags. */
  readonly open: (path: string, mode?: Messages.OpenMode | number, attrs?: Attributes.Attributes) => Effect.Effect<SftpFile.SftpFile, SshError.SshError, Scope.Scope>
  /** Opens a file and returns its raw handle (the caller closes it). */
  readonly openHandle: (path: string, mode?: Messages.OpenMode | number, attrs?: Attributes.Attributes) => Effect.Effect<Uint8Array, SshError.SshError>
  /** Closes a file or directory handle. */
  readonly close: (handle: Uint8Array) => Effect.Effect<void, SshError.SshError>
  /** Reads up to `length` bytes at `offset` (one request); `undefined` at end of file. */
  readonly read: (handle: Uint8Array, offset: number, length: number) => Effect.Effect<Uint8Array | undefined, SshError.SshError>
  /** Writes `data` at `offset` (in pipelined blocks when it is large). */
  readonly write: (handle: Uint8Array, offset: number, data: Uint8Array) => Effect.Effect<void, SshError.SshError>

  /** Opens a directory handle (see `readdirHandle`; `readdir` does it all). */
  readonly opendir: (path: string) => Effect.Effect<Uint8Array, SshError.SshError>
  /** One READDIR: a batch of entries, or `undefined` at the end. */
  readonly readdirHandle: (handle: Uint8Array) => Effect.Effect<ReadonlyArray<Messages.NameEntry> | undefined, SshError.SshError>
  /** The entries of a directory (without "." and ".."), as a Stream; the handle is opened and closed inside. */
  readonly readdir: (path: string) => Stream.Stream<Messages.NameEntry, SshError.SshError>
  /** The entries of a directory (without "." and ".."), collected. */
  readonly list: (path: string) => Effect.Effect<ReadonlyArray<Messages.NameEntry>, SshError.SshError>
  readonly mkdir: (path: string, attrs?: Attributes.Attributes) => Effect.Effect<void, SshError.SshError>
  readonly rmdir: (path: string) => Effect.Effect<void, SshError.SshError>
  readonly remove: (path: string) => Effect.Effect<void, SshError.SshError>
  /**
   * Renames. With posix-rename@openssh.com (default when offered) an existing `newPath` is replaced;
   * `{ overwrite: false }` forces plain RENAME, which fails if it exists.
   */
  readonly rename: (oldPath: string, newPath: string, options?: { readonly overwrite?: boolean | undefined }) => Effect.Effect<void, SshError.SshError>
  /** Creates `linkPath` pointing at `targetPath` (Node's `fs.symlink` order). */
  readonly symlink: (targetPath: string, linkPath: string) => Effect.Effect<void, SshError.SshError>
  readonly readlink: (path: string) => Effect.Effect<string, SshError.SshError>
  readonly realpath: (path: string) => Effect.Effect<string, SshError.SshError>

  /** posix-rename@openssh.com. */
  readonly posixRename: (oldPath: string, newPath: string) => Effect.Effect<void, SshError.SshError>
  /** statvfs@openssh.com (`df`). */
  readonly statvfs: (path: string) => Effect.Effect<Extensions.VfsStats, SshError.SshError>
  /** fstatvfs@openssh.com. */
  readonly fstatvfs: (handle: Uint8Array) => Effect.Effect<Extensions.VfsStats, SshError.SshError>
  /** hardlink@openssh.com: `newPath` becomes another name of `oldPath`. */
  readonly hardlink: (oldPath: string, newPath: string) => Effect.Effect<void, SshError.SshError>
  /** fsync@openssh.com. */
  readonly fsync: (handle: Uint8Array) => Effect.Effect<void, SshError.SshError>
  /** expand-path@openssh.com: realpath with "~" expansion. */
  readonly expandPath: (path: string) => Effect.Effect<string, SshError.SshError>
  /** copy-data: server-side copy between two open handles. */
  readonly copyData: (args: CopyDataArgs) => Effect.Effect<void, SshError.SshError>
  /** home-directory: a user's home ("" or omitted: ours). */
  readonly homeDirectory: (username?: string) => Effect.Effect<string, SshError.SshError>
  /** users-groups-by-id@openssh.com: names for uids and gids ("" when unknown). */
  readonly usersGroupsById: (uids: ReadonlyArray<number>, gids: ReadonlyArray<number>) => Effect.Effect<Extensions.UserGroupNames, SshError.SshError>

  /** A remote file as a Stream, pipelined (memory bounded by in-flight × block size); each chunk is the consumer's to keep. */
  readonly readStream: (path: string, options?: Transfer.ReadStreamOptions) => Stream.Stream<Uint8Array, SshError.SshError>
  /** A Sink writing a remote file, pipelined; yields the bytes written. */
  readonly writeSink: (path: string, options?: Transfer.WriteSinkOptions) => Sink.Sink<number, Uint8Array, never, SshError.SshError>
  /** A whole remote file. */
  readonly readFile: (path: string) => Effect.Effect<Uint8Array, SshError.SshError>
  /** Creates or replaces a remote file. */
  readonly writeFile: (path: string, data: Uint8Array, options?: Transfer.WriteSinkOptions) => Effect.Effect<void, SshError.SshError>
  /**
   * Downloads a file (or tree, with `recursive`) to a local path. Into the file system `NodeSsh.layer` provides,
   * blocks are written zero-copy and their packets freed once written; any other `FileSystem` may keep the
   * buffers it is given.
   */
  readonly get: (remote: string, local: string, options?: Transfer.TransferOptions) => Effect.Effect<Transfer.TransferResult, SshError.SshError>
  /** Uploads a local file (or tree, with `recursive`) to a remote path. */
  readonly put: (local: string, remote: string, options?: Transfer.TransferOptions) => Effect.Effect<Transfer.TransferResult, SshError.SshError>

  /** Fails with the error that ended the session (completes only when it ends). */
  readonly closed: Deferred.Deferred<never, SshError.SshError>
}

const DEFAULT_MAX_IN_FLIGHT = 128
/** Read/write length every SFTP server supports (what OpenSSH assumes without limits@openssh.com). */
const DEFAULT_BLOCK = 32768

/**
 * WRITE data at least this large goes out without a copy when the library owns it (see `submit`); the outbox
 * writes it on its own, never coalesced, so it is released once sealed.
 */
const ZERO_COPY_WRITE = COALESCE_LIMIT
/** How much of the server's stderr is kept to explain why the session ended. */
const STDERR_KEEP = 2048

const defaultLimits: Extensions.ServerLimits = {
  maxPacketLength: DEFAULT_BLOCK + PACKET_HEADER_ALLOWANCE,
  maxReadLength: DEFAULT_BLOCK,
  maxWriteLength: DEFAULT_BLOCK,
  maxOpenHandles: 0
}

const extensionVersions: ReadonlyMap<string, string> = new Map(Extensions.OPENSSH_EXTENSIONS.map((e) => [e.name, e.data]))

const fail = (reason: SshError.SshErrorReason) => Effect.fail(SshError.make(reason))

const protocolError = (message: string) => SshError.make(new SshError.ProtocolError({ message }))

const unexpected = (reply: Messages.SftpResponse, what: string) =>
  Effect.fail(protocolError(`unexpected SFTP ${reply._tag} reply to ${what}`))

const statusFailure = (reply: Messages.Status, what: string, path: string | undefined) =>
  reply.code === Status.StatusCode.Ok ? unexpected(reply, what) : fail(Status.toReason(reply, path))

/** Interprets a reply that should be STATUS OK. */
const expectOk = (reply: Messages.SftpResponse, what: string, path?: string | undefined): Effect.Effect<void, SshError.SshError> =>
  reply._tag !== "Status"
    ? unexpected(reply, what)
    : reply.code === Status.StatusCode.Ok
    ? Effect.void
    : fail(Status.toReason(reply, path))

/** Interprets a reply that should be of `tag` (a STATUS is the failure). */
const expectReply = <T extends Messages.SftpResponse["_tag"]>(tag: T, what: string, path?: string | undefined) =>
(reply: Messages.SftpResponse): Effect.Effect<Extract<Messages.SftpResponse, { _tag: T }>, SshError.SshError> =>
  reply._tag === tag
    ? Effect.succeed(reply as Extract<Messages.SftpResponse, { _tag: T }>)
    : reply._tag === "Status"
    ? statusFailure(reply, what, path)
    : unexpected(reply, what)

const singleName = (what: string, path?: string | undefined) => (reply: Messages.SftpResponse) =>
  Effect.flatMap(expectReply("Name", what, path)(reply), (name) =>
    name.entries.length === 1
      ? Effect.succeed(name.entries[0]!.filename)
      : Effect.fail(protocolError(`${what} answered with ${name.entries.length} names instead of one`)))

const decodeWith = <A>(decode: (data: Uint8Array) => A, what: string, path?: string | undefined) => (reply: Messages.SftpResponse) =>
  Effect.flatMap(expectReply("ExtendedReply", what, path)(reply), (r) =>
    Effect.try({ try: () => decode(r.data), catch: SshError.fromUnknown }))

/**
 * A request that cannot be encoded (an offset that is not a whole number, a field out of range) is the caller's
 * mistake, not the peer's: a BAD_MESSAGE status naming the request, sent nowhere.
 */
const invalidRequest = (request: Messages.SftpRequest, cause: unknown): SshError.SshError => {
  const reason = SshError.fromUnknown(cause).reason
  const detail = "message" in reason && typeof reason.message === "string" ? reason.message : String(reason)
  const path = "path" in request && typeof request.path === "string" ? request.path : undefined
  return SshError.make(new SshError.SftpStatus({ code: Status.StatusCode.BadMessage, message: `invalid ${request._tag} request: ${detail}`, path }))
}

const toSeconds = (t: number | Date): number => typeof t === "number" ? Math.floor(t) : Math.floor(t.getTime() / 1000)

const pflagsOf = (mode: Messages.OpenMode | number) => typeof mode === "number" ? mode : Messages.openFlags(mode)

const writeRequestId = (packet: Uint8Array, id: number): void => {
  // Every request is uint32 length, byte type, uint32 id, ...
  new DataView(packet.buffer, packet.byteOffset, packet.byteLength).setUint32(5, id)
}

const blockFor = (limit: number, packetLimit: number, cap: number | undefined): number => {
  const fromPacket = packetLimit > PACKET_HEADER_ALLOWANCE ? packetLimit - PACKET_HEADER_ALLOWANCE : MAX_DATA_LENGTH
  const block = Math.min(limit > 0 ? limit : MAX_DATA_LENGTH, fromPacket, MAX_DATA_LENGTH)
  return Math.max(1, cap !== undefined && cap > 0 ? Math.min(block, Math.floor(cap)) : block)
}

/**
 * Starts an SFTP session on a running "sftp" subsystem: sends INIT, reads
 * VERSION, asks for the server's limits, and returns the client. Everything
 * lives in the current scope (the caller's subsystem channel included).
 * `get`/`put` use the FileSystem service of the context they are made in.
 *
 * @example
 * ```ts
 * const proc = yield* ssh.subsystem("sftp")
 * const sftp = yield* SftpClient.make(proc)
 * ```
 */
export const make = (
  proc: Session.SshProcess,
  options: SftpClientOptions = {},
  sibling?: Effect.Effect<SftpClient, SshError.SshError, Scope.Scope>
): Effect.Effect<SftpClient, SshError.SshError, Scope.Scope | FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const fileSystem = yield* FileSystem.FileSystem
    const replies = new ReplyReader()
    const table = new RequestTable<ReplyHandler>()
    const outbox = new Outbox((bytes) => proc.channel.write(bytes), { freeWritten: true })
    const versionReply = Deferred.makeUnsafe<Messages.Version, SshError.SshError>()
    const closed = Deferred.makeUnsafe<never, SshError.SshError>()
    /** Handlers by request id, kept apart from the table so that a request whose reply was malformed still hears of it. */
    const outstanding = new Map<number, ReplyHandler>()
    let failure: SshError.SshError | undefined
    let stderrTail = ""

    const die = (error: SshError.SshError) => {
      if (failure !== undefined) return
      failure = error
      outbox.fail(error)
      Deferred.doneUnsafe(versionReply, Exit.fail(error))
      Deferred.doneUnsafe(closed, Exit.fail(error))
      table.drain()
      const waiting = [...outstanding.values()]
      outstanding.clear()
      for (const handler of waiting) handler(error)
    }

    const submit = (request: Messages.SftpRequest, onReply: ReplyHandler): void => {
      if (failure !== undefined) return onReply(failure)
      // A large WRITE whose data the library owns (a block `put` read from the file) is sent as its header then
      // the data itself, held until the channel has sealed it: no copy. Anyone else's data is copied at once,
      // since its owner may reuse it as soon as the call returns.
      const zeroCopy = request._tag === "Write" && request.data.length >= ZERO_COPY_WRITE && isOwned(request.data)
      let packet: Uint8Array
      try {
        packet = zeroCopy ? Messages.encodeWriteHeader(request as Messages.Write) : Messages.encode(request)
      } catch (e) {
        return onReply(invalidRequest(request, e))
      }
      const sent = table.submit((id) => ({ ...request, id }), onReply)
      outstanding.set(sent.id, onReply)
      writeRequestId(packet, sent.id)
      outbox.enqueue(packet)
      if (zeroCopy) outbox.enqueue(retain((request as Messages.Write).data))
    }

    const orphan = (reply: Messages.SftpResponse | SshError.SshError) => {
      // The requester was interrupted; a handle it would have owned must still be closed.
      if (!(reply instanceof SshError.SshError) && reply._tag === "Handle") {
        submit({ _tag: "Close", id: 0, handle: reply.handle }, () => undefined)
      }
    }

    const request = (req: Messages.SftpRequest): Effect.Effect<Messages.SftpResponse, SshError.SshError> =>
      Effect.andThen(
        outbox.awaitRoom,
        Effect.callback<Messages.SftpResponse, SshError.SshError>((resume) => {
          let settled = false
          submit(req, (reply) => {
            if (settled) return orphan(reply)
            settled = true
            resume(reply instanceof SshError.SshError ? Effect.fail(reply) : Effect.succeed(reply))
          })
          return Effect.sync(() => {
            settled = true
          })
        })
      )

    const onPacket = (packet: Messages.SftpPacket): void => {
      if (packet._tag === "Version") {
        if (Deferred.isDoneUnsafe(versionReply)) throw new SshError.ProtocolError({ message: "second SFTP VERSION packet" })
        Deferred.doneUnsafe(versionReply, Exit.succeed(packet))
        return
      }
      if (!Messages.isResponse(packet)) throw new SshError.ProtocolError({ message: `the SFTP server sent a ${packet._tag} packet` })
      if (!Deferred.isDoneUnsafe(versionReply)) throw new SshError.ProtocolError({ message: `SFTP ${packet._tag} before VERSION` })
      const handler = table.settle(packet).meta
      outstanding.delete(packet.id)
      handler(packet)
    }

    const onChunks = (chunks: ReadonlyArray<Uint8Array>): Effect.Effect<void, SshError.SshError> => {
      try {
        for (const chunk of chunks) for (const packet of replies.push(chunk)) onPacket(packet)
        return Effect.void
      } catch (e) {
        return Effect.fail(SshError.fromUnknown(e))
      }
    }

    const ended = () =>
      SshError.make(new SshError.ConnectionClosed({
        message: `the SFTP server closed the channel${stderrTail.trim() === "" ? "" : `: ${stderrTail.trim()}`}`
      }))

    // The replies' bytes are borrowed: the reply reader takes its own holder of what it keeps (a DATA reply's
    // views, a partial packet), and every batch's packets are freed once it is through with them.
    const reader = proc.borrowStdout(onChunks).pipe(
      Effect.matchCauseEffect({
        onSuccess: () => Effect.sync(() => die(ended())),
        onFailure: (cause) =>
          Cause.hasInterruptsOnly(cause)
            ? Effect.void
            : Effect.andThen(Effect.sync(() => die(SshError.fromCauseOrInternal(cause))), proc.channel.close)
      })
    )
    const decoder = new TextDecoder()
    const stderr = Stream.runForEach(proc.stderr, (chunk) =>
      Effect.sync(() => {
        stderrTail = (stderrTail + decoder.decode(chunk, { stream: true })).slice(-STDERR_KEEP)
      }))

    yield* Effect.forkScoped(Effect.ignore(stderr))
    yield* Effect.forkScoped(reader)
    yield* Effect.forkScoped(Effect.catch(outbox.run, (error) => Effect.sync(() => die(error))))
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => die(SshError.make(new SshError.ConnectionClosed({ message: "the SFTP session was closed" }))))
    )

    yield* outbox.send(Messages.encode({ _tag: "Init", version: Messages.SFTP_VERSION, extensions: [] }))
    const version = yield* Deferred.await(versionReply)
    if (version.version < Messages.SFTP_VERSION) {
      const error = protocolError(`the server speaks SFTP version ${version.version}; version 3 is required`)
      die(error)
      return yield* Effect.fail(error)
    }
    const supports = (name: string) => Extensions.supports(version.extensions, name, extensionVersions.get(name))
    const unsupported = (name: string, path?: string | undefined) =>
      fail(new SshError.SftpStatus({ code: Status.StatusCode.OpUnsupported, message: `the server does not support ${name}`, path }))
    const extension = <A>(name: string, path: string | undefined, run: () => Effect.Effect<A, SshError.SshError>) =>
      supports(name) ? run() : unsupported(name, path)

    const limits = supports(Extensions.ExtensionName.Limits)
      ? yield* Effect.flatMap(request({ _tag: "Limits", id: 0 }), decodeWith(Extensions.decodeLimits, "limits@openssh.com"))
      : defaultLimits

    const ok = (req: Messages.SftpRequest, path?: string | undefined) =>
      Effect.flatMap(request(req), (reply) => expectOk(reply, req._tag, path))
    const attrsOf = (req: Messages.SftpRequest, path?: string | undefined) =>
      Effect.map(Effect.flatMap(request(req), expectReply("Attrs", req._tag, path)), (r) => r.attrs)
    const handleOf = (req: Messages.SftpRequest, path: string) =>
      Effect.map(Effect.flatMap(request(req), expectReply("Handle", req._tag, path)), (r) => r.handle)

    const stat = (path: string) => attrsOf({ _tag: "Stat", id: 0, path }, path)
    const setstat = (path: string, attrs: Attributes.Attributes) => ok({ _tag: "Setstat", id: 0, path, attrs }, path)
    const close = (handle: Uint8Array) => ok({ _tag: "Close", id: 0, handle })
    const openHandle = (path: string, mode: Messages.OpenMode | number = "r", attrs: Attributes.Attributes = Attributes.empty) =>
      Effect.flatMap(
        Effect.try({ try: () => pflagsOf(mode), catch: SshError.fromUnknown }),
        (pflags) => handleOf({ _tag: "Open", id: 0, path, pflags, attrs }, path)
      )
    const opendir = (path: string) => handleOf({ _tag: "Opendir", id: 0, path }, path)
    const readdirHandle = (handle: Uint8Array, path?: string | undefined) =>
      Effect.flatMap(request({ _tag: "Readdir", id: 0, handle }), (reply) =>
        reply._tag === "Status" && Status.isEof(reply)
          ? Effect.succeed(undefined)
          : Effect.map(expectReply("Name", "Readdir", path)(reply), (name) => name.entries))
    const readdir = (path: string): Stream.Stream<Messages.NameEntry, SshError.SshError> =>
      Stream.unwrap(Effect.map(
        Effect.acquireRelease(opendir(path), (handle) => Effect.ignore(close(handle))),
        (handle) =>
          Stream.paginate(undefined, () =>
            Effect.map(readdirHandle(handle, path), (entries) =>
              entries === undefined
                ? [[], Option.none()] as const
                : [entries.filter((e) => e.filename !== "." && e.filename !== ".."), Option.some(undefined)] as const)
          )
      ))
    const posixRename = (oldPath: string, newPath: string) =>
      extension(Extensions.ExtensionName.PosixRename, oldPath, () => ok({ _tag: "PosixRename", id: 0, oldPath, newPath }, oldPath))

    const client: SftpClient = {
      version: version.version,
      extensions: version.extensions,
      limits,
      blockSize: {
        read: blockFor(limits.maxReadLength, limits.maxPacketLength, options.blockSize),
        write: blockFor(limits.maxWriteLength, limits.maxPacketLength, options.blockSize)
      },
      maxInFlight: Math.max(1, Math.floor(options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT)),
      sibling,
      supports,
      request,
      submit,
      stat,
      lstat: (path) => attrsOf({ _tag: "Lstat", id: 0, path }, path),
      fstat: (handle) => attrsOf({ _tag: "Fstat", id: 0, handle }),
      setstat,
      fsetstat: (handle, attrs) => ok({ _tag: "Fsetstat", id: 0, handle, attrs }),
      lsetstat: (path, attrs) =>
        extension(Extensions.ExtensionName.Lsetstat, path, () => ok({ _tag: "Lsetstat", id: 0, path, attrs }, path)),
      chmod: (path, mode) => setstat(path, { permissions: mode }),
      chown: (path, uid, gid) => setstat(path, { uid, gid }),
      utimes: (path, atime, mtime) => setstat(path, { atime: toSeconds(atime), mtime: toSeconds(mtime) }),
      truncate: (path, size) => setstat(path, { size }),
      exists: (path) =>
        Effect.catchReason(Effect.as(stat(path), true), "SshError", "SftpStatus", (reason) =>
          reason.code === Status.StatusCode.NoSuchFile ? Effect.succeed(false) : Effect.fail(SshError.make(reason))),
      open: (path, mode = "r", attrs) =>
        Effect.acquireRelease(
          Effect.map(openHandle(path, mode, attrs), (handle) => SftpFile.make(client, handle, path)),
          (file) => Effect.ignore(file.close)
        ),
      openHandle,
      close,
      read: (handle, offset, length) =>
        Effect.flatMap(request({ _tag: "Read", id: 0, handle, offset, length }), (reply) =>
          reply._tag === "Status" && Status.isEof(reply)
            ? Effect.succeed(undefined)
            : Effect.map(expectReply("Data", "Read")(reply), (d) => d.data)),
      write: (handle, offset, data) =>
        Effect.suspend(() => {
          const writer = new Transfer.HandleWriter(client, handle, offset)
          return Effect.andThen(writer.write(data), writer.flush)
        }),
      opendir,
      readdirHandle: (handle) => readdirHandle(handle),
      readdir,
      list: (path) => Stream.runCollect(readdir(path)),
      mkdir: (path, attrs = Attributes.empty) => ok({ _tag: "Mkdir", id: 0, path, attrs }, path),
      rmdir: (path) => ok({ _tag: "Rmdir", id: 0, path }, path),
      remove: (path) => ok({ _tag: "Remove", id: 0, path }, path),
      rename: (oldPath, newPath, renameOptions) =>
        renameOptions?.overwrite !== false && supports(Extensions.ExtensionName.PosixRename)
          ? posixRename(oldPath, newPath)
          : ok({ _tag: "Rename", id: 0, oldPath, newPath }, oldPath),
      symlink: (targetPath, linkPath) => ok({ _tag: "Symlink", id: 0, linkPath, targetPath }, linkPath),
      readlink: (path) => Effect.flatMap(request({ _tag: "Readlink", id: 0, path }), singleName("Readlink", path)),
      realpath: (path) => Effect.flatMap(request({ _tag: "Realpath", id: 0, path }), singleName("Realpath", path)),
      posixRename,
      statvfs: (path) =>
        extension(Extensions.ExtensionName.StatVfs, path, () =>
          Effect.flatMap(request({ _tag: "StatVfs", id: 0, path }), decodeWith(Extensions.decodeVfsStats, "statvfs@openssh.com", path))),
      fstatvfs: (handle) =>
        extension(Extensions.ExtensionName.FstatVfs, undefined, () =>
          Effect.flatMap(request({ _tag: "FstatVfs", id: 0, handle }), decodeWith(Extensions.decodeVfsStats, "fstatvfs@openssh.com"))),
      hardlink: (oldPath, newPath) =>
        extension(Extensions.ExtensionName.Hardlink, oldPath, () => ok({ _tag: "Hardlink", id: 0, oldPath, newPath }, newPath)),
      fsync: (handle) => extension(Extensions.ExtensionName.Fsync, undefined, () => ok({ _tag: "Fsync", id: 0, handle })),
      expandPath: (path) =>
        extension(Extensions.ExtensionName.ExpandPath, path, () =>
          Effect.flatMap(request({ _tag: "ExpandPath", id: 0, path }), singleName("expand-path@openssh.com", path))),
      copyData: (args) =>
        extension(Extensions.ExtensionName.CopyData, undefined, () =>
          ok({
            _tag: "CopyData",
            id: 0,
            readHandle: args.from,
            readOffset: args.fromOffset ?? 0,
            readLength: args.length ?? 0,
            writeHandle: args.to,
            writeOffset: args.toOffset ?? 0
          })),
      homeDirectory: (username = "") =>
        extension(Extensions.ExtensionName.HomeDirectory, undefined, () =>
          Effect.flatMap(request({ _tag: "HomeDirectory", id: 0, username }), singleName("home-directory"))),
      usersGroupsById: (uids, gids) =>
        extension(Extensions.ExtensionName.UsersGroupsById, undefined, () =>
          Effect.flatMap(
            request({ _tag: "UsersGroupsById", id: 0, uids, gids }),
            decodeWith(Extensions.decodeUserGroupNames, "users-groups-by-id@openssh.com")
          )),
      readStream: (path, readOptions) => Transfer.readStream(client, path, readOptions),
      writeSink: (path, sinkOptions) => Transfer.writeSink(client, path, sinkOptions),
      readFile: (path) => Effect.map(Stream.runCollect(Transfer.readStream(client, path)), concat),
      writeFile: (path, data, sinkOptions) => Effect.asVoid(Stream.run(Stream.succeed(data), Transfer.writeSink(client, path, sinkOptions))),
      get: (remote, local, transferOptions) =>
        Effect.provideService(Transfer.get(client, remote, local, transferOptions), FileSystem.FileSystem, fileSystem).pipe(
          Effect.tap((result) => Effect.annotateCurrentSpan("sftp.bytes", result.bytes)),
          Effect.withSpan("sftp.get", { attributes: { "sftp.remote": remote, "sftp.local": local } })
        ),
      put: (local, remote, transferOptions) =>
        Effect.provideService(Transfer.put(client, local, remote, transferOptions), FileSystem.FileSystem, fileSystem).pipe(
          Effect.tap((result) => Effect.annotateCurrentSpan("sftp.bytes", result.bytes)),
          Effect.withSpan("sftp.put", { attributes: { "sftp.remote": remote, "sftp.local": local } })
        ),
      closed
    }
    return client
  })

