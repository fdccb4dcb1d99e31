/**
 * Pipelined SFTP transfers: `readStream`, `writeSink`, `get` and `put`, with
 * many READ/WRITE requests in flight at once.
 *
 * A transfer keeps up to `limit` requests outstanding, each of one block
 * (the server's limits@openssh.com read/write length, at most 256 KiB). The
 * limit adapts to throughput (`InFlight`): it grows while a larger window
 * still brings more bytes per second and shrinks when throughput drops.
 * Replies may arrive in any order; data is delivered in file order, and a
 * short read is completed by re-requesting its remainder.
 *
 * Memory is bounded by the window, not by the consumer: a READ is only sent
 * when there is room for its reply among the `limit` slots, and a slot is
 * freed only when the consumer has pulled its data. A stalled consumer of
 * `readStream` therefore holds at most `limit × block` bytes.
 *
 * The chunks of `readStream` (and of `SftpFile.stream`) are views of the
 * packets they arrived in, handed over to the consumer: they stay valid
 * whatever it keeps. Only `get` into the file system `NodeSsh.layer`
 * provides writes them zero-copy and frees the packets once written; any
 * other `FileSystem` is handed its buffers for good (see `chunkWriter`).
 *
 * Progress is reported as `{ bytes, total }` through a callback
 * (`onProgress`) or, with `progressStream`, as a Stream.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as FileSystem from "effect/FileSystem"
import type * as PlatformError from "effect/PlatformError"
import * as Option from "effect/Option"
import type * as Pull from "effect/Pull"
import * as Queue from "effect/Queue"
import * as Sink from "effect/Sink"
import * as Stream from "effect/Stream"
import type * as Arr from "effect/Array"
import { concat, uninitialized } from "../internal/bytes.ts"
import { isDataReply } from "../internal/sftpReplyReader.ts"
import { allocate, handOver, handOverAll, release } from "../internal/ownedBuffers.ts"
import { chunkWriter, isNodeFileSystem } from "../internal/chunkWriter.ts"
import * as SshError from "../SshError.ts"
import * as Attributes from "./Attributes.ts"
import type { NameEntry, OpenMode, SftpResponse } from "./Messages.ts"
import type { SftpClient } from "./SftpClient.ts"
import * as Status from "./Status.ts"

/** How far a transfer has come. `total` is undefined when the size is not known in advance. */
export interface Progress {
  readonly bytes: number
  readonly total: number | undefined
}

/** Called as a transfer advances (after each block is written). */
export type ProgressCallback = (progress: Progress) => Effect.Effect<void>

/** Pipelining options shared by every transfer. */
export interface PipelineOptions {
  /** Bytes per READ/WRITE request (default: the server's limit, at most 256 KiB). */
  readonly blockSize?: number | undefined
  /** Most requests in flight (default: the client's, 128). The actual count adapts below this. */
  readonly maxInFlight?: number | undefined
}

/** Options of `readStream`. */
export interface ReadStreamOptions extends PipelineOptions {
  /** Start here (default 0). */
  readonly offset?: number | undefined
  /** Read at most this many bytes (default: to end of file). */
  readonly length?: number | undefined
}

/** Options of `writeSink`. */
export interface WriteSinkOptions extends PipelineOptions {
  /** Open mode (default "w": create or truncate). Use "a"/"r+" with `offset` to resume. */
  readonly mode?: OpenMode | undefined
  /** Write from this offset (default 0). */
  readonly offset?: number | undefined
  /** Permissions for a created file. */
  readonly permissions?: number | undefined
}

/** Options of `get` and `put`. */
export interface TransferOptions extends PipelineOptions {
  /** Called with `{ bytes, total }` as the transfer advances. */
  readonly onProgress?: ProgressCallback | undefined
  /** Continue a partial transfer: skip the bytes the destination already has. */
  readonly resume?: boolean | undefined
  /** Copy a directory tree. */
  readonly recursive?: boolean | undefined
  /** Files transferred at once in a recursive transfer (default 4). */
  readonly concurrency?: number | undefined
  /** Give the copy the source's modification/access times and permission bits. */
  readonly preserve?: boolean | undefined
  /**
   * `put` only: SFTP sessions one file of at least 32 MiB is split over (default 1; each gets 16 MiB or more),
   * opened on the same connection for the upload and closed after it. Each is a channel with its own window, and
   * the server's window is what limits an upload over a long round trip (OpenSSH's sshd grants 2 MiB per
   * channel: at 50 ms, ~34 MB/s whatever the client), so 4 channels carry about 4 times that. On loopback it only
   * costs the server more processes. Sessions the server refuses (sshd's MaxSessions, 10 per connection by
   * default) just mean fewer stretches. Needs a client from `ssh.sftp()` (one made with `SftpClient.make` uploads
   * over its own channel only).
   */
  readonly channels?: number | undefined
}

/** What a `get` or `put` moved. */
export interface TransferResult {
  readonly bytes: number
  readonly files: number
}

// ---------------------------------------------------------------------------------------------------------------
// Adaptive in-flight limit
// ---------------------------------------------------------------------------------------------------------------

/** A doubling is kept only if its round beats the best recent round by this much: it was waiting on round trips. */
const PROBE_GAIN = 1.25
/** Settled rounds judged before a probe: the baseline is the best of them. */
const BASELINE_ROUNDS = 2
/** Settled rounds before the limit is probed again (the path may have changed). */
const REPROBE_ROUNDS = 16

/**
 * The adaptive count of requests in flight, probe-and-hold. Time is cut into rounds of `limit` replies; the round
 * after a change is not judged (it mixes replies to requests sent before and after it), nor is the first (it
 * includes the pipeline filling up). After `BASELINE_ROUNDS` judged rounds, and every `REPROBE_ROUNDS` settled
 * rounds after that, the limit doubles to probe; a probe whose round beats the best recent round by `PROBE_GAIN` is
 * kept and probes again (a long round trip: more requests, more throughput), any other goes back to the limit
 * before (on loopback the server's CPU sets the pace: more requests would only queue there, and single rounds
 * vary by ±40%, hence the best-of baseline). The limit never falls below where it started: a slow consumer holds
 * at most `limit` blocks anyway, and single slow rounds are too noisy to act on.
 *
 * @example
 * ```ts
 * const inFlight = new SftpTransfer.InFlight({ max: 128 })
 * let outstanding = 0
 * const onReply = (blockBytes: number, sendNext: () => void) => {
 *   outstanding--
 *   inFlight.record(blockBytes, performance.now())
 *   while (outstanding < inFlight.limit) { outstanding++; sendNext() }
 * }
 * ```
 */
export class InFlight {
  limit: number
  readonly max: number
  readonly min: number
  private roundStart: number | undefined
  private roundBytes = 0
  private roundReplies = 0
  /** Rates (bytes per ms) of the judged rounds at the current limit, newest last, at most `BASELINE_ROUNDS`. */
  private recent: Array<number> = []
  /** While a doubling is on probation: the limit before it. */
  private probeFrom: number | undefined
  /** Rounds still to pass unjudged. */
  private settling = 1
  private settledRounds = 0
  /** Whether the first probe has been made (after `BASELINE_ROUNDS`; later ones after `REPROBE_ROUNDS`). */
  private probed = false

  constructor(options: { readonly max: number; readonly initial?: number | undefined; readonly min?: number | undefined }) {
    this.max = Math.max(1, Math.floor(options.max))
    this.min = Math.min(this.max, Math.max(1, Math.floor(options.min ?? 4)))
    this.limit = Math.min(this.max, Math.max(this.min, Math.floor(options.initial ?? 32)))
  }

  /** Records one reply of `bytes` at time `now` (milliseconds). */
  record(bytes: number, now: number): void {
    if (this.roundStart === undefined) {
      this.roundStart = now
      return
    }
    this.roundBytes += bytes
    if (++this.roundReplies < this.limit) return
    const rate = this.roundBytes / Math.max(now - this.roundStart, 0.001)
    this.roundStart = now
    this.roundBytes = 0
    this.roundReplies = 0
    this.judge(rate)
  }

  private judge(rate: number): void {
    if (this.settling > 0) {
      this.settling--
      return
    }
    if (this.probeFrom !== undefined) {
      // kept: this round is the new limit's baseline; undone: the old limit's baseline is collected again
      const kept = rate >= Math.max(...this.recent) * PROBE_GAIN
      const from = this.probeFrom
      this.recent = kept ? [rate] : []
      if (kept) this.probe()
      else this.change(from)
      return
    }
    this.recent.push(rate)
    if (this.recent.length > BASELINE_ROUNDS) this.recent.shift()
    if (++this.settledRounds >= (this.probed ? REPROBE_ROUNDS : BASELINE_ROUNDS)) this.probe()
  }

  /** Doubles the limit on probation (nothing to probe at `max`). */
  private probe(): void {
    this.probed = true
    const from = this.limit
    this.change(Math.min(this.max, from * 2))
    if (this.limit !== from) this.probeFrom = from
  }

  private change(limit: number): void {
    this.probeFrom = undefined
    this.settledRounds = 0
    if (limit === this.limit) return
    this.limit = limit
    this.settling = 1
  }
}

const inFlightFor = (client: SftpClient, options: PipelineOptions): InFlight =>
  new InFlight({ max: options.maxInFlight ?? client.maxInFlight })

const blockSizeOf = (client: SftpClient, options: PipelineOptions, direction: "read" | "write"): number => {
  const limit = client.blockSize[direction]
  const asked = options.blockSize
  return asked !== undefined && Number.isSafeInteger(asked) && asked > 0 ? Math.min(asked, limit) : limit
}

const sftpError = (code: number, message: string, path?: string | undefined): SshError.SshError =>
  SshError.make(new SshError.SftpStatus({ code, message, path }))

const protocolError = (message: string): SshError.SshError => SshError.make(new SshError.ProtocolError({ message }))

// ---------------------------------------------------------------------------------------------------------------
// Read pipeline
// ---------------------------------------------------------------------------------------------------------------

/** A read pipeline refills once this fraction (1/n) of its window is free. */
const REFILL_FRACTION = 8

interface ReadSlot {
  readonly offset: number
  readonly length: number
  /** The data as the chunk views it arrived in, "eof", or the failure; undefined while in flight. */
  result: ReadonlyArray<Uint8Array> | "eof" | SshError.SshError | undefined
}

const byteLength = (parts: ReadonlyArray<Uint8Array>): number => {
  let n = 0
  for (const part of parts) n += part.length
  return n
}

type Resume = (effect: Pull.Pull<Arr.NonEmptyReadonlyArray<Uint8Array>, SshError.SshError>) => void

/** Where a handle's read pipeline starts and stops. */
interface ReadRange {
  readonly offset: number
  /** Never read at or past this offset. */
  readonly end: number
  /** The file size when known: requests stop there, then one probe checks for EOF (the file may have grown). */
  readonly sizeHint: number
  readonly path: string | undefined
}

/** The reading engine for one handle: slots in file order, at most `inFlight.limit` of them. */
class ReadPipeline {
  private slots: Array<ReadSlot> = []
  private next: number
  private softEnd: number
  private finished = false
  private eofSeen = false
  private error: SshError.SshError | undefined
  private waiter: Resume | undefined
  private readonly client: SftpClient
  private readonly handle: Uint8Array
  private readonly block: number
  private readonly inFlight: InFlight
  private readonly range: ReadRange
  /** Whether the chunks pulled are handed over to the puller, or keep the holder a DATA reply's view carries. */
  private readonly handsOver: boolean

  constructor(client: SftpClient, handle: Uint8Array, range: ReadRange, block: number, inFlight: InFlight, handsOver: boolean) {
    this.client = client
    this.handle = handle
    this.range = range
    this.block = block
    this.inFlight = inFlight
    this.next = range.offset
    this.softEnd = range.sizeHint
    this.handsOver = handsOver
  }

  private submit(slot: ReadSlot): void {
    this.client.submit(
      { _tag: "Read", id: 0, handle: this.handle, offset: slot.offset, length: slot.length },
      (reply) => this.complete(slot, reply)
    )
  }

  private complete(slot: ReadSlot, reply: SftpResponse | SshError.SshError): void {
    if (reply instanceof SshError.SshError) {
      slot.result = reply
    } else if (reply._tag === "Data") {
      const parts = isDataReply(reply) ? reply.parts : [reply.data]
      const length = byteLength(parts)
      slot.result = length > slot.length ? protocolError(`DATA of ${length} bytes for a READ of ${slot.length}`) : parts
      this.inFlight.record(length, performance.now())
    } else if (reply._tag === "Status" && Status.isEof(reply)) {
      slot.result = "eof"
      this.eofSeen = true
    } else if (reply._tag === "Status") {
      slot.result = SshError.make(Status.toReason(reply, this.range.path))
    } else {
      slot.result = protocolError(`unexpected ${reply._tag} reply to READ`)
    }
    if (slot === this.slots[0]) this.wake()
  }

  private wake(): void {
    const waiter = this.waiter
    if (waiter === undefined) return
    const taken = this.take()
    if (taken === undefined) return
    this.waiter = undefined
    waiter(taken)
  }

  /** Sends READs while there is room, stopping at the end, at EOF, or at the size hint (then one probe at a time). */
  private topUp(): void {
    const { end } = this.range
    // Refill in batches (an eighth of the window) so that several READs share one channel write.
    const limit = this.inFlight.limit
    if (this.slots.length > 0 && limit - this.slots.length < Math.ceil(limit / REFILL_FRACTION)) return
    while (!this.finished && !this.eofSeen && this.next < end && this.slots.length < this.inFlight.limit) {
      if (this.next >= this.softEnd && this.slots.length > 0) break
      const slot: ReadSlot = { offset: this.next, length: Math.min(this.block, end - this.next), result: undefined }
      this.next += slot.length
      this.slots.push(slot)
      this.submit(slot)
    }
  }

  /** Takes every completed slot at the head, in order; undefined when the head is still in flight. */
  private take(): Pull.Pull<Arr.NonEmptyReadonlyArray<Uint8Array>, SshError.SshError> | undefined {
    this.topUp()
    const chunks: Array<Uint8Array> = []
    while (this.error === undefined && !this.finished && this.slots.length > 0) {
      const slot = this.slots[0]!
      const result = slot.result
      if (result === undefined) break
      this.slots.shift()
      if (result instanceof SshError.SshError) {
        this.error = result
      } else {
        const length = result === "eof" ? 0 : byteLength(result)
        if (length === 0) {
          this.finished = true
          this.slots = []
          break
        }
        if (slot.offset + length >= this.softEnd) this.softEnd = Number.POSITIVE_INFINITY
        if (length < slot.length) {
          const rest: ReadSlot = { offset: slot.offset + length, length: slot.length - length, result: undefined }
          this.slots.unshift(rest)
          this.submit(rest)
        }
        for (const part of result as ReadonlyArray<Uint8Array>) if (part.length > 0) chunks.push(part)
      }
    }
    this.topUp()
    if (chunks.length > 0) {
      return Effect.succeed((this.handsOver ? handOverAll(chunks) : chunks) as unknown as Arr.NonEmptyReadonlyArray<Uint8Array>)
    }
    if (this.error !== undefined) return Effect.fail(this.error)
    if (this.finished || (this.slots.length === 0 && this.next >= this.range.end)) return Cause.done()
    return undefined
  }

  readonly pull: Pull.Pull<Arr.NonEmptyReadonlyArray<Uint8Array>, SshError.SshError> = Effect.callback((resume) => {
    const taken = this.take()
    if (taken !== undefined) return resume(taken)
    this.waiter = resume
    return Effect.sync(() => {
      if (this.waiter === resume) this.waiter = undefined
    })
  })
}

type ReadHandleOptions = ReadStreamOptions & { readonly sizeHint?: number | undefined; readonly path?: string | undefined }

/** `readHandle`; with `handsOver` false the chunks keep their holders (`ownedBuffers`), for a taker to release. */
const readPipeline = (
  client: SftpClient,
  handle: Uint8Array,
  options: ReadHandleOptions,
  handsOver: boolean
): Stream.Stream<Uint8Array, SshError.SshError> =>
  Stream.fromPull(Effect.sync(() => {
    const offset = options.offset ?? 0
    const end = options.length === undefined ? Number.MAX_SAFE_INTEGER : offset + options.length
    const pipeline = new ReadPipeline(
      client,
      handle,
      { offset, end, sizeHint: options.sizeHint ?? Number.POSITIVE_INFINITY, path: options.path },
      blockSizeOf(client, options, "read"),
      inFlightFor(client, options),
      handsOver
    )
    return pipeline.pull
  }))

/**
 * Reads an open handle as a Stream of chunks in file order, pipelined. The
 * handle stays open (its owner closes it). The chunks are the consumer's to
 * keep.
 *
 * @example
 * ```ts
 * const handle = yield* sftp.openHandle("/var/log/syslog")
 * const bytes = yield* Stream.runFold(SftpTransfer.readHandle(sftp, handle, { offset: 0 }), () => 0, (n, c) => n + c.length)
 * ```
 */
export const readHandle = (
  client: SftpClient,
  handle: Uint8Array,
  options: ReadHandleOptions = {}
): Stream.Stream<Uint8Array, SshError.SshError> => readPipeline(client, handle, options, true)

/**
 * Opens a remote file and reads it as a Stream, pipelined; the handle is
 * closed when the stream ends or is interrupted.
 *
 * @example
 * ```ts
 * yield* SftpTransfer.readStream(sftp, "/var/log/big.log").pipe(Stream.decodeText(), Stream.splitLines, Stream.run(Sink.count))
 * ```
 */
export const readStream = (
  client: SftpClient,
  path: string,
  options: ReadStreamOptions = {}
): Stream.Stream<Uint8Array, SshError.SshError> =>
  Stream.unwrap(Effect.gen(function*() {
    const handle = yield* openScoped(client, path, "r")
    const attrs = yield* Effect.orElseSucceed(client.fstat(handle), () => Attributes.empty)
    return readHandle(client, handle, { ...options, sizeHint: attrs.size, path })
  }))

const openScoped = (client: SftpClient, path: string, mode: OpenMode, attrs: Attributes.Attributes = Attributes.empty) =>
  Effect.acquireRelease(client.openHandle(path, mode, attrs), (handle) => Effect.ignore(client.close(handle)))

// ---------------------------------------------------------------------------------------------------------------
// Write pipeline
// ---------------------------------------------------------------------------------------------------------------

/**
 * Pipelined WRITEs to one handle: `write` sends blocks while fewer than the
 * in-flight limit are outstanding and waits otherwise; `flush` waits for every
 * acknowledgement. The first failure fails every later call.
 *
 * @example
 * ```ts
 * const handle = yield* sftp.openHandle("/upload/file", "w")
 * const writer = new SftpTransfer.HandleWriter(sftp, handle, 0)
 * yield* writer.write(data)
 * yield* writer.flush
 * ```
 */
export class HandleWriter {
  /** Offset of the next byte written. */
  position: number
  private outstanding = 0
  private error: SshError.SshError | undefined
  private waiter: ((effect: Effect.Effect<void, SshError.SshError>) => void) | undefined
  private readonly client: SftpClient
  private readonly handle: Uint8Array
  private readonly block: number
  private readonly inFlight: InFlight
  private readonly path: string | undefined

  constructor(client: SftpClient, handle: Uint8Array, offset: number, options: PipelineOptions & { readonly path?: string | undefined } = {}) {
    this.client = client
    this.handle = handle
    this.position = offset
    this.block = blockSizeOf(client, options, "write")
    this.inFlight = inFlightFor(client, options)
    this.path = options.path
  }

  private readonly acknowledge = (reply: SftpResponse | SshError.SshError, bytes: number): void => {
    this.outstanding--
    if (this.error === undefined) {
      if (reply instanceof SshError.SshError) this.error = reply
      else if (reply._tag !== "Status") this.error = protocolError(`unexpected ${reply._tag} reply to WRITE`)
      else if (reply.code !== Status.StatusCode.Ok) this.error = SshError.make(Status.toReason(reply, this.path))
      else this.inFlight.record(bytes, performance.now())
    }
    const waiter = this.waiter
    if (waiter !== undefined) {
      this.waiter = undefined
      waiter(this.error === undefined ? Effect.void : Effect.fail(this.error))
    }
  }

  private readonly awaitAck: Effect.Effect<void, SshError.SshError> = Effect.callback((resume) => {
    this.waiter = resume
    return Effect.sync(() => {
      if (this.waiter === resume) this.waiter = undefined
    })
  })

  /** Sends `data` from the current position (in blocks), waiting whenever the window is full. */
  write(data: Uint8Array): Effect.Effect<void, SshError.SshError> {
    let sent = 0
    const loop: Effect.Effect<void, SshError.SshError> = Effect.suspend(() => {
      while (this.error === undefined && sent < data.length && this.outstanding < this.inFlight.limit) {
        const chunk = data.subarray(sent, sent + this.block)
        const offset = this.position
        sent += chunk.length
        this.position += chunk.length
        this.outstanding++
        this.client.submit(
          { _tag: "Write", id: 0, handle: this.handle, offset, data: chunk },
          (reply) => this.acknowledge(reply, chunk.length)
        )
      }
      if (this.error !== undefined) return Effect.fail(this.error)
      if (sent >= data.length) return Effect.void
      return Effect.andThen(this.awaitAck, loop)
    })
    return loop
  }

  /** Waits until every WRITE sent so far is acknowledged. */
  readonly flush: Effect.Effect<void, SshError.SshError> = Effect.suspend(() => {
    if (this.error !== undefined) return Effect.fail(this.error)
    if (this.outstanding === 0) return Effect.void
    return Effect.andThen(this.awaitAck, this.flush)
  })
}

/**
 * Opens (by default creates or truncates) a remote file and writes a stream
 * into it, pipelined; small chunks are gathered into full blocks. Succeeds
 * with the number of bytes written once every WRITE is acknowledged and the
 * handle is closed.
 *
 * @example
 * ```ts
 * const localBytes = Stream.make(new TextEncoder().encode("hello\n"))
 * const written = yield* Stream.run(localBytes, SftpTransfer.writeSink(sftp, "/upload/file"))
 * ```
 */
export const writeSink = (
  client: SftpClient,
  path: string,
  options: WriteSinkOptions = {}
): Sink.Sink<number, Uint8Array, never, SshError.SshError> =>
  Sink.unwrap(Effect.gen(function*() {
    const attrs = options.permissions === undefined ? Attributes.empty : { permissions: options.permissions }
    const handle = yield* openScoped(client, path, options.mode ?? "w", attrs)
    const start = options.offset ?? 0
    const writer = new HandleWriter(client, handle, start, { ...options, path })
    const block = blockSizeOf(client, options, "write")
    const gather = new BlockGatherer(block)
    return Sink.forEachArray((chunks: Arr.NonEmptyReadonlyArray<Uint8Array>) =>
      Effect.forEach(gather.add(chunks), (b) => writer.write(b), { discard: true })
    ).pipe(
      Sink.mapEffect(() =>
        Effect.gen(function*() {
          const rest = gather.rest()
          if (rest !== undefined) yield* writer.write(rest)
          yield* writer.flush
          yield* client.close(handle)
          return writer.position - start
        })
      )
    )
  }))

/** Gathers small chunks into blocks of `size` bytes (big chunks pass through whole). */
class BlockGatherer {
  private parts: Array<Uint8Array> = []
  private bytes = 0
  private readonly size: number

  constructor(size: number) {
    this.size = size
  }

  add(chunks: ReadonlyArray<Uint8Array>): Array<Uint8Array> {
    const out: Array<Uint8Array> = []
    for (const chunk of chunks) {
      if (this.bytes === 0 && chunk.length >= this.size) {
        out.push(chunk)
        continue
      }
      this.parts.push(chunk)
      this.bytes += chunk.length
      if (this.bytes >= this.size) out.push(this.rest()!)
    }
    return out
  }

  rest(): Uint8Array | undefined {
    if (this.bytes === 0) return undefined
    const joined = this.parts.length === 1 ? this.parts[0]! : concat(this.parts)
    this.parts = []
    this.bytes = 0
    return joined
  }
}

// ---------------------------------------------------------------------------------------------------------------
// get / put
// ---------------------------------------------------------------------------------------------------------------

const localCodes: Readonly<Record<string, number>> = {
  NotFound: Status.StatusCode.NoSuchFile,
  PermissionDenied: Status.StatusCode.PermissionDenied,
  AlreadyExists: Status.StatusCode.Failure
}

/**
 * A local file-system failure as an `SshError` (an `SftpStatus` reason whose
 * message starts with "local", carrying the local path).
 *
 * @example
 * ```ts
 * const fs = yield* FileSystem.FileSystem
 * const local = "./build.tar.gz"
 * yield* fs.stat(local).pipe(Effect.mapError(SftpTransfer.localError(local)))
 * ```
 */
export const localError = (path: string) => (error: PlatformError.PlatformError): SshError.SshError =>
  sftpError(
    error.reason._tag === "BadArgument" ? Status.StatusCode.BadMessage : localCodes[error.reason._tag] ?? Status.StatusCode.Failure,
    `local: ${error.message}`,
    path
  )

/** Shared progress of one `get`/`put` call, over all its files. */
class ProgressTracker {
  bytes = 0
  total: number | undefined
  private readonly onProgress: ProgressCallback | undefined

  constructor(total: number | undefined, onProgress: ProgressCallback | undefined) {
    this.total = total
    this.onProgress = onProgress
  }

  advance(bytes: number): Effect.Effect<void> {
    this.bytes += bytes
    return this.onProgress === undefined ? Effect.void : this.onProgress({ bytes: this.bytes, total: this.total })
  }
}

const joinPath = (dir: string, name: string): string => dir.endsWith("/") ? dir + name : `${dir}/${name}`

const toSeconds = (date: Option.Option<Date>): number | undefined =>
  Option.isSome(date) ? Math.floor(date.value.getTime() / 1000) : undefined

interface TreeEntry {
  readonly source: string
  readonly destination: string
  /** The source's attributes (a local source's are converted): size, permissions, times. */
  readonly attrs: Attributes.Attributes
}

interface Tree {
  readonly directories: Array<TreeEntry>
  readonly files: Array<TreeEntry>
}

/** How `copyTree` creates, copies and finishes on one side. */
interface CopyOps {
  readonly makeDirectory: (directory: TreeEntry) => Effect.Effect<void, SshError.SshError>
  readonly copyFile: (file: TreeEntry, progress: ProgressTracker) => Effect.Effect<void, SshError.SshError>
  readonly preserve: (directory: TreeEntry) => Effect.Effect<void, SshError.SshError>
}

/** Creates the directories, copies the files (`concurrency` at a time), then gives directories their times. */
const copyTree = (tree: Tree, options: TransferOptions, ops: CopyOps): Effect.Effect<TransferResult, SshError.SshError> =>
  Effect.gen(function*() {
    for (const directory of tree.directories) yield* ops.makeDirectory(directory)
    const progress = new ProgressTracker(tree.files.reduce((n, f) => n + (f.attrs.size ?? 0), 0), options.onProgress)
    yield* Effect.forEach(tree.files, (file) => ops.copyFile(file, progress), { concurrency: options.concurrency ?? 4, discard: true })
    // Directory times last: creating the files changed them.
    if (options.preserve) yield* Effect.forEach([...tree.directories].reverse(), ops.preserve, { discard: true })
    return { bytes: progress.bytes, files: tree.files.length }
  })

/** A tree of one file; a directory source needs `recursive`. */
const singleFile = (entry: TreeEntry, isDirectory: boolean, options: TransferOptions): Effect.Effect<Tree, SshError.SshError> =>
  isDirectory && !options.recursive
    ? Effect.fail(sftpError(Status.StatusCode.Failure, "is a directory (use recursive)", entry.source))
    : Effect.succeed({ directories: [], files: [entry] })

/** Downloads one remote file to a local path. */
const getFile = (client: SftpClient, file: TreeEntry, options: TransferOptions, progress: ProgressTracker) =>
  Effect.scoped(Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const { source: remote, destination: local, attrs } = file
    const toLocal = localError(local)
    const existing = options.resume
      ? yield* fs.stat(local).pipe(Effect.map((info) => Number(info.size)), Effect.orElseSucceed(() => 0))
      : 0
    const offset = attrs.size !== undefined ? Math.min(existing, attrs.size) : existing
    const handle = yield* openScoped(client, remote, "r")
    const out = yield* fs.open(local, { flag: offset > 0 ? "r+" : "w" }).pipe(Effect.mapError(toLocal))
    if (offset > 0) {
      yield* out.truncate(offset).pipe(Effect.mapError(toLocal))
      yield* out.seek(BigInt(offset), "start").pipe(Effect.mapError(toLocal))
      yield* progress.advance(offset)
    }
    // Chunks are views of the packets they arrived in, still held by the library (not handed over): one local
    // write per batch, not per chunk, and no join; the writer takes the holders — into Node's own file system it
    // frees the packets once written, any other is handed them for good (chunkWriter).
    const write = chunkWriter(fs, out, offset)
    yield* readPipeline(client, handle, { ...options, offset, sizeHint: attrs.size, path: remote }, false).pipe(
      Stream.runForEachArray((chunks) => {
        let size = 0
        for (const chunk of chunks) size += chunk.length
        return Effect.mapError(write(chunks), toLocal).pipe(Effect.andThen(progress.advance(size)))
      })
    )
    yield* Effect.ignore(client.close(handle))
    if (options.preserve) yield* preserveLocal(file)
  }))

const preserveLocal = ({ destination: local, attrs }: TreeEntry) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const toLocal = localError(local)
    if (attrs.permissions !== undefined) yield* fs.chmod(local, Attributes.permissionBits(attrs.permissions)).pipe(Effect.mapError(toLocal))
    if (attrs.atime !== undefined && attrs.mtime !== undefined) {
      yield* fs.utimes(local, new Date(attrs.atime * 1000), new Date(attrs.mtime * 1000)).pipe(Effect.mapError(toLocal))
    }
  })

/** Lists a remote tree (regular files and directories; links and special files are skipped). */
const remoteTree = (client: SftpClient, root: TreeEntry): Effect.Effect<Tree, SshError.SshError> =>
  Effect.gen(function*() {
    const tree: Tree = { directories: [root], files: [] }
    const walk = (dir: string, localDir: string): Effect.Effect<void, SshError.SshError> =>
      Effect.flatMap(Stream.runCollect(client.readdir(dir)), (entries: ReadonlyArray<NameEntry>) =>
        Effect.forEach(entries, (entry) => {
          const source = joinPath(dir, entry.filename)
          const destination = joinPath(localDir, entry.filename)
          if (Attributes.isDirectory(entry.attrs)) {
            tree.directories.push({ source, destination, attrs: entry.attrs })
            return walk(source, destination)
          }
          if (Attributes.isFile(entry.attrs)) tree.files.push({ source, destination, attrs: entry.attrs })
          return Effect.void
        }, { discard: true }))
    yield* walk(root.source, root.destination)
    return tree
  })

/**
 * Downloads a remote file (or, with `recursive`, a directory tree) to a local
 * path, pipelined. With `resume`, a local file's existing bytes are kept and
 * only the rest is fetched; with `preserve`, times and permissions are copied.
 *
 * @example
 * ```ts
 * yield* SftpTransfer.get(sftp, "/var/log/syslog", "./syslog", { onProgress: (p) => Console.log(p.bytes) })
 * ```
 */
export const get = (
  client: SftpClient,
  remote: string,
  local: string,
  options: TransferOptions = {}
): Effect.Effect<TransferResult, SshError.SshError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const root: TreeEntry = { source: remote, destination: local, attrs: yield* client.stat(remote) }
    const isDirectory = Attributes.isDirectory(root.attrs)
    const tree = yield* (isDirectory && options.recursive ? remoteTree(client, root) : singleFile(root, isDirectory, options))
    return yield* copyTree(tree, options, {
      makeDirectory: (dir) => fs.makeDirectory(dir.destination, { recursive: true }).pipe(Effect.mapError(localError(dir.destination))),
      copyFile: (file, progress) => Effect.provideService(getFile(client, file, options, progress), FileSystem.FileSystem, fs),
      preserve: (dir) => Effect.provideService(preserveLocal(dir), FileSystem.FileSystem, fs)
    })
  })

/** A local file's attributes as SFTP carries them (size, permission bits, times). */
const localAttributes = (info: FileSystem.File.Info): Attributes.Attributes => {
  const atime = toSeconds(info.atime)
  const mtime = toSeconds(info.mtime)
  return {
    size: Number(info.size),
    permissions: Attributes.permissionBits(info.mode),
    ...(atime !== undefined && mtime !== undefined ? { atime, mtime } : {})
  }
}

/** Local read buffer: several blocks per read(2). */
const LOCAL_READ_SIZE = 1024 * 1024

/** Each channel of a split upload gets at least this much of the file. */
const MIN_PART = 16 * 1024 * 1024

/** How many channels an upload of `bytes` is split over (see `TransferOptions.channels`). */
const partsFor = (client: SftpClient, options: TransferOptions, bytes: number): number => {
  const asked = Math.floor(options.channels ?? 1)
  if (!(asked > 1) || client.sibling === undefined) return 1
  return Math.max(1, Math.min(asked, Math.floor(bytes / MIN_PART)))
}

/**
 * Uploads the local bytes from `from` up to `to` (or to the end of the file, however long it has grown, when `to`
 * is infinite) to the same offsets of an open remote handle, pipelined; done when every WRITE is acknowledged.
 */
const uploadRange = (
  client: SftpClient,
  handle: Uint8Array,
  fileSystem: FileSystem.FileSystem,
  input: FileSystem.File,
  range: { readonly from: number; readonly to: number },
  options: TransferOptions & { readonly path: string },
  progress: ProgressTracker,
  toLocal: (error: PlatformError.PlatformError) => SshError.SshError
) =>
  Effect.gen(function*() {
    const writer = new HandleWriter(client, handle, range.from, options)
    // Each read gets a buffer of its own. Read by Node's own file system, it stays the library's (ownedBuffers):
    // its WRITEs are sent from it without a copy, and it is freed once the last of them is sealed (each holds it,
    // as does this loop until it has sent them all). Any other file system is handed it for good (its `read` may
    // keep it), and the WRITEs copy from it.
    const readSize = Math.max(LOCAL_READ_SIZE, blockSizeOf(client, options, "write"))
    const owned = isNodeFileSystem(fileSystem)
    let position = range.from
    while (position < range.to) {
      const buffer = owned ? allocate(readSize) : handOver(uninitialized(readSize))
      const want = Math.min(readSize, range.to - position)
      const n = yield* input.read(buffer.subarray(0, want), { position: BigInt(position) }).pipe(Effect.mapError(toLocal))
      if (n === 0) {
        release(buffer)
        break
      }
      yield* writer.write(buffer.subarray(0, n))
      release(buffer)
      position += n
      yield* progress.advance(n)
    }
    yield* writer.flush
  })

/** Uploads one local file to a remote path, over `channels` SFTP sessions when asked and large enough. */
const putFile = (client: SftpClient, file: TreeEntry, options: TransferOptions, progress: ProgressTracker) =>
  Effect.scoped(Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const { source: local, destination: remote, attrs } = file
    const toLocal = localError(local)
    const existing = options.resume
      ? yield* client.stat(remote).pipe(Effect.map((a) => a.size ?? 0), Effect.orElseSucceed(() => 0))
      : 0
    const offset = Math.min(existing, attrs.size ?? 0)
    const input = yield* fs.open(local, { flag: "r" }).pipe(Effect.mapError(toLocal))
    const handle = yield* openScoped(client, remote, offset > 0 ? "r+" : "w", { permissions: attrs.permissions })
    if (offset > 0) {
      yield* client.fsetstat(handle, { size: offset })
      yield* progress.advance(offset)
    }
    // With `channels`, more sessions (each a channel with its own window) write their own stretch of the file the
    // first one created (no create, no truncate: "r+"); the last stretch runs to the end, however long the file has
    // grown. A session the server refuses (sshd's MaxSessions is 10 per connection) just means fewer stretches.
    const siblings = partsFor(client, options, (attrs.size ?? 0) - offset) - 1
    const opened = yield* Effect.forEach(Array.from({ length: siblings }), () =>
      Effect.flatMap(client.sibling!, (sibling) =>
        Effect.map(openScoped(sibling, remote, "r+"), (siblingHandle) => ({ client: sibling, handle: siblingHandle }))).pipe(
          Effect.option
        ), { concurrency: "unbounded" })
    const writers = [{ client, handle }, ...opened.filter(Option.isSome).map((o) => o.value)]
    const stretch = Math.ceil(((attrs.size ?? 0) - offset) / writers.length)
    const rangeOptions = { ...options, path: remote }
    yield* Effect.forEach(writers, (w, i) => {
      const from = offset + i * stretch
      const to = i === writers.length - 1 ? Number.POSITIVE_INFINITY : from + stretch
      return uploadRange(w.client, w.handle, fs, input, { from, to }, rangeOptions, progress, toLocal)
    }, { concurrency: "unbounded", discard: true })
    if (options.preserve) yield* client.fsetstat(handle, { permissions: attrs.permissions, atime: attrs.atime, mtime: attrs.mtime })
    yield* client.close(handle)
  }))

/** Lists a local tree (regular files and directories). */
const localTree = (root: TreeEntry): Effect.Effect<Tree, SshError.SshError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const tree: Tree = { directories: [root], files: [] }
    const walk = (dir: string, remoteDir: string): Effect.Effect<void, SshError.SshError> =>
      Effect.flatMap(fs.readDirectory(dir).pipe(Effect.mapError(localError(dir))), (names) =>
        Effect.forEach(names.sort(), (name) => {
          const source = joinPath(dir, name)
          const destination = joinPath(remoteDir, name)
          return Effect.flatMap(fs.lstat(source).pipe(Effect.mapError(localError(source))), (info) => {
            const entry = { source, destination, attrs: localAttributes(info) }
            if (info.type === "Directory") {
              tree.directories.push(entry)
              return walk(source, destination)
            }
            if (info.type === "File") tree.files.push(entry)
            return Effect.void
          })
        }, { discard: true }))
    yield* walk(root.source, root.destination)
    return tree
  })

/**
 * Uploads a local file (or, with `recursive`, a directory tree) to a remote
 * path, pipelined. With `resume`, the bytes the remote file already has are
 * skipped; with `preserve`, times and permissions are copied.
 *
 * @example
 * ```ts
 * yield* SftpTransfer.put(sftp, "./build.tar.gz", "/srv/releases/build.tar.gz", { preserve: true })
 * ```
 */
export const put = (
  client: SftpClient,
  local: string,
  remote: string,
  options: TransferOptions = {}
): Effect.Effect<TransferResult, SshError.SshError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const info = yield* fs.stat(local).pipe(Effect.mapError(localError(local)))
    const root: TreeEntry = { source: local, destination: remote, attrs: localAttributes(info) }
    const isDirectory = info.type === "Directory"
    const tree = yield* (isDirectory && options.recursive ? localTree(root) : singleFile(root, isDirectory, options))
    return yield* copyTree(tree, options, {
      makeDirectory: (dir) =>
        Effect.flatMap(Effect.result(client.stat(dir.destination)), (found) =>
          found._tag === "Success" && Attributes.isDirectory(found.success) ? Effect.void : client.mkdir(dir.destination)),
      copyFile: (file, progress) => Effect.provideService(putFile(client, file, options, progress), FileSystem.FileSystem, fs),
      preserve: (dir) => client.setstat(dir.destination, { permissions: dir.attrs.permissions, atime: dir.attrs.atime, mtime: dir.attrs.mtime })
    })
  })

/**
 * Runs a transfer and streams its progress; the stream ends when the transfer
 * succeeds and fails with its error. Updates a slow consumer has not taken
 * are replaced by newer ones (only the latest matters).
 *
 * @example
 * ```ts
 * yield* SftpTransfer.progressStream((onProgress) => sftp.get("/big", "./big", { onProgress })).pipe(
 *   Stream.runForEach((p) => Console.log(`${p.bytes}/${p.total}`))
 * )
 * ```
 */
export const progressStream = <A, E, R>(
  start: (onProgress: ProgressCallback) => Effect.Effect<A, E, R>
): Stream.Stream<Progress, E, R> =>
  Stream.callback<Progress, E, R>(
    (queue) =>
      Effect.andThen(
        start((progress) => Effect.asVoid(Queue.offer(queue, progress))),
        Queue.end(queue)
      ),
    { bufferSize: 1, strategy: "sliding" }
  )

