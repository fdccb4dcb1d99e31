/**
 * The connection protocol's state (RFC 4254), as plain data and pure
 * methods: channel numbers, windows, the open/confirm/eof/close life of each
 * channel, and the order of replies. No fibers, no sockets, no time.
 *
 * Every method returns what the shell must do: payloads to send, in order,
 * and deliveries for the channels' consumers. A protocol violation by the
 * peer is thrown as a `ProtocolError` reason (the shell ends the connection
 * with it).
 *
 * Replies to the peer's requests must go out in the order the requests came
 * (RFC 4254 §4 and §5.4), but the requests are handled concurrently, off the
 * reading fiber: each one that wants a reply takes a slot, and a reply is sent
 * once every earlier slot is answered.
 *
 * @example
 * ```ts
 * const machine = new ConnectionMachine({ maxChannels: 16, windowSize: 2 * 1024 * 1024, maxPacket: 32 * 1024 })
 * const { localId, send } = machine.open("session", 2 * 1024 * 1024, 32 * 1024)!
 * const step = machine.receive(confirmationPayload) // [{ _tag: "Opened", localId }]
 * ```
 * @since 0.1.0
 */
import { ProtocolError } from "../SshError.ts"
import * as N from "../Wire/MessageNumber.ts"
import * as Messages from "./Messages.ts"
import { ReceiveWindow, SendWindow } from "./Window.ts"

/** Largest channel max packet: data plus message, padding and MAC must fit a 256 KiB transport packet. */
export const MAX_CHANNEL_PACKET = 256 * 1024 - 1024

/** Where a channel is in its life. */
export type ChannelPhase =
  /** We sent CHANNEL_OPEN and wait for the answer. */
  | "opening"
  /** We gave up waiting for the answer: a late confirmation is answered with CLOSE. */
  | "abandoned"
  /** The peer asked to open it and we have not answered yet. */
  | "offered"
  | "open"

/** One channel's protocol state. */
export interface ChannelRecord {
  readonly localId: number
  remoteId: number
  readonly channelType: string
  phase: ChannelPhase
  readonly receive: ReceiveWindow
  /** Largest data packet we accept. */
  readonly maxPacket: number
  send: SendWindow
  sentEof: boolean
  sentClose: boolean
  receivedEof: boolean
  /** Our want-reply requests the peer has not answered yet. */
  awaitingReplies: number
  /** The peer's want-reply requests, in order, with our answer once we have it. */
  readonly replies: ReplySlots<boolean>
}

/** What the shell must do after a step, in order. */
export type Action =
  /** Send this payload. */
  | { readonly _tag: "Send"; readonly payload: Uint8Array }
  /** CHANNEL_DATA (`dataType` undefined) or CHANNEL_EXTENDED_DATA for the channel's consumer. */
  | { readonly _tag: "Data"; readonly localId: number; readonly dataType: number | undefined; readonly data: Uint8Array }
  /** The peer sent EOF. */
  | { readonly _tag: "Eof"; readonly localId: number }
  /** The channel is gone (both CLOSEs exchanged, or refused): its number is free again. */
  | { readonly _tag: "Closed"; readonly localId: number }
  /** The peer confirmed our open. */
  | { readonly _tag: "Opened"; readonly localId: number }
  /** The peer refused our open (or answered after we gave up). */
  | { readonly _tag: "OpenFailed"; readonly localId: number; readonly code: number; readonly description: string }
  /** The send window grew: writers waiting for it may go on. */
  | { readonly _tag: "WindowOpened"; readonly localId: number }
  /** The peer's CLOSE arrived (the `Closed` action follows once ours is out). */
  | { readonly _tag: "RemoteClosed"; readonly localId: number }
  /** The peer answered our oldest want-reply request on the channel. */
  | { readonly _tag: "RequestReply"; readonly localId: number; readonly success: boolean }
  /** The peer asks to open a channel; answer with `accept` or `reject`. */
  | {
    readonly _tag: "IncomingOpen"
    readonly localId: number
    readonly channelType: string
    readonly data: Uint8Array
  }
  /** A channel request from the peer; if `slot` is set, answer it with `replyRequest`. */
  | {
    readonly _tag: "IncomingRequest"
    readonly localId: number
    readonly request: string
    readonly data: Uint8Array
    readonly slot: number | undefined
  }
  /** A global request from the peer; if `slot` is set, answer it with `replyGlobal`. */
  | {
    readonly _tag: "IncomingGlobalRequest"
    readonly name: string
    readonly data: Uint8Array
    readonly slot: number | undefined
  }
  /** The peer answered our oldest want-reply global request (`data` undefined: failure). */
  | { readonly _tag: "GlobalReply"; readonly data: Uint8Array | undefined }

const NOTHING: ReadonlyArray<Action> = []

/**
 * Answers that must leave in the order their questions came: each question
 * takes a slot; an answer is released once every earlier slot is answered.
 *
 * @example
 * ```ts
 * const slots = new ReplySlots<boolean>()
 * const a = slots.take(), b = slots.take()
 * slots.answer(b, true)  // []: a is still unanswered
 * slots.answer(a, false) // [false, true]
 * ```
 */
export class ReplySlots<A> {
  private readonly answers: Array<{ readonly answered: boolean; readonly value: A | undefined }> = []
  /** Slot number of `answers[0]`. */
  private first = 0

  /** Questions not yet released. */
  get size(): number {
    return this.answers.length
  }

  /** A slot for the next question. */
  take(): number {
    this.answers.push({ answered: false, value: undefined })
    return this.first + this.answers.length - 1
  }

  /** Answers a slot; returns the answers now released, in order (none if an earlier one is pending). */
  answer(slot: number, value: A): ReadonlyArray<A> {
    const index = slot - this.first
    const current = this.answers[index]
    if (current === undefined || current.answered) return []
    this.answers[index] = { answered: true, value }
    const released: Array<A> = []
    while (this.answers.length > 0 && this.answers[0]!.answered) {
      released.push(this.answers.shift()!.value as A)
      this.first++
    }
    return released
  }
}

/** Limits of a connection. */
export interface MachineOptions {
  /** Most channels allocated at once, offered ones included. */
  readonly maxChannels: number
  /** Receive window we grant a channel the peer opens. */
  readonly windowSize: number
  /** Largest data packet we accept on a channel the peer opens. */
  readonly maxPacket: number
  /**
   * Largest a receive window of `windowSize` grows to while its consumer keeps up (see `ReceiveWindow`);
   * absent: windows keep their size. Channels opened with another window size never grow.
   */
  readonly windowLimit?: number | undefined
}

const violation = (message: string): never => {
  throw new ProtocolError({ message })
}

/**
 * The connection protocol's state machine.
 *
 * @example
 * ```ts
 * const machine = new ConnectionMachine({ maxChannels: 1024, windowSize: 2097152, maxPacket: 32768 })
 * for (const action of machine.receive(payload)) apply(action)
 * ```
 */
export class ConnectionMachine {
  readonly options: MachineOptions
  private readonly channels = new Map<number, ChannelRecord>()
  private nextId = 0
  /** Our want-reply global requests not yet answered. */
  private awaitingGlobal = 0
  private readonly globalReplies = new ReplySlots<Uint8Array | undefined>()

  constructor(options: MachineOptions) {
    this.options = options
  }

  /** Channels allocated (opening, offered, open or closing). */
  get channelCount(): number {
    return this.channels.size
  }

  /** The peer's global requests waiting for our answer. */
  get unansweredGlobalRequests(): number {
    return this.globalReplies.size
  }

  /** A channel's state, if it is allocated. */
  channel(localId: number): ChannelRecord | undefined {
    return this.channels.get(localId)
  }

  private allocate(channelType: string, windowSize: number, maxPacket: number, phase: ChannelPhase): ChannelRecord | undefined {
    if (this.channels.size >= this.options.maxChannels) return undefined
    while (this.channels.has(this.nextId)) this.nextId = (this.nextId + 1) >>> 0
    const localId = this.nextId
    this.nextId = (this.nextId + 1) >>> 0
    const record: ChannelRecord = {
      localId,
      remoteId: -1,
      channelType,
      phase,
      receive: new ReceiveWindow(
        windowSize,
        Math.min(maxPacket, MAX_CHANNEL_PACKET),
        windowSize === this.options.windowSize ? this.options.windowLimit : undefined
      ),
      maxPacket: Math.min(maxPacket, MAX_CHANNEL_PACKET),
      send: new SendWindow(0, 0),
      sentEof: false,
      sentClose: false,
      receivedEof: false,
      awaitingReplies: 0,
      replies: new ReplySlots()
    }
    this.channels.set(localId, record)
    return record
  }

  // ---- what we do

  /** Opens a channel: its number and the CHANNEL_OPEN to send, or undefined when too many are open. */
  open(
    channelType: string,
    windowSize: number,
    maxPacket: number,
    data?: Uint8Array
  ): { readonly localId: number; readonly send: Uint8Array } | undefined {
    const record = this.allocate(channelType, windowSize, maxPacket, "opening")
    if (record === undefined) return undefined
    return {
      localId: record.localId,
      send: Messages.channelOpen(channelType, record.localId, record.receive.size, record.maxPacket, data)
    }
  }

  /** Accepts a channel the peer offered, granting it `windowSize` and `maxPacket`. */
  accept(localId: number, windowSize?: number, maxPacket?: number): ReadonlyArray<Action> {
    const record = this.channels.get(localId)
    if (record === undefined || record.phase !== "offered") return NOTHING
    record.phase = "open"
    if (windowSize !== undefined && windowSize !== record.receive.size) record.receive.grow(windowSize - record.receive.size)
    const packet = maxPacket === undefined ? record.maxPacket : Math.min(maxPacket, record.maxPacket)
    return [{ _tag: "Send", payload: Messages.channelOpenConfirmation(record.remoteId, localId, record.receive.size, packet) }]
  }

  /** Refuses a channel the peer offered. */
  reject(localId: number, code: number, description: string): ReadonlyArray<Action> {
    const record = this.channels.get(localId)
    if (record === undefined || record.phase !== "offered") return NOTHING
    this.channels.delete(localId)
    return [
      { _tag: "Send", payload: Messages.channelOpenFailure(record.remoteId, code, description) },
      { _tag: "Closed", localId }
    ]
  }

  /**
   * Bytes of data we may send now on the channel (at most `wanted`; 0 = wait for window), or undefined when
   * the channel no longer takes data (EOF or CLOSE sent, CLOSE received, or not open).
   */
  takeWindow(localId: number, wanted: number): number | undefined {
    const record = this.channels.get(localId)
    if (record === undefined || !this.isWritable(record)) return undefined
    return record.send.take(wanted)
  }

  private isWritable(record: ChannelRecord): boolean {
    return record.phase === "open" && !record.sentEof && !record.sentClose
  }

  /** Whether the channel is open and we may still send requests and control messages on it. */
  isOpen(localId: number): boolean {
    const record = this.channels.get(localId)
    return record !== undefined && record.phase === "open" && !record.sentClose
  }

  /** The consumer took `n` bytes at `now` (ms; see `ReceiveWindow.consume`): a WINDOW_ADJUST to send now, if one is due. */
  consumed(localId: number, n: number, now?: number): Uint8Array | undefined {
    const record = this.channels.get(localId)
    if (record === undefined) return undefined
    const grant = record.receive.consume(n, now)
    return grant > 0 && record.phase === "open" && !record.sentClose
      ? Messages.windowAdjust(record.remoteId, grant)
      : undefined
  }

  /** Enlarges the receive window to `size` for good: the WINDOW_ADJUST to send, if any. */
  growWindow(localId: number, size: number): Uint8Array | undefined {
    const record = this.channels.get(localId)
    if (record === undefined || record.phase !== "open" || record.sentClose) return undefined
    const grant = record.receive.grow(size - record.receive.size)
    return grant > 0 ? Messages.windowAdjust(record.remoteId, grant) : undefined
  }

  /** Our EOF: the payload to send, or undefined when EOF or CLOSE went out already. */
  eof(localId: number): Uint8Array | undefined {
    const record = this.channels.get(localId)
    if (record === undefined || !this.isWritable(record)) return undefined
    record.sentEof = true
    return Messages.channelEof(record.remoteId)
  }

  /**
   * Closes the channel from our side. An open channel sends CLOSE (it is released when the peer's CLOSE comes);
   * one still opening is abandoned (a late confirmation is answered with CLOSE); an offered one is refused.
   */
  close(localId: number): ReadonlyArray<Action> {
    const record = this.channels.get(localId)
    if (record === undefined) return NOTHING
    switch (record.phase) {
      case "opening":
        record.phase = "abandoned"
        return NOTHING
      case "offered":
        return this.reject(localId, N.ChannelOpenFailure.CONNECT_FAILED, "channel closed before it was accepted")
      case "abandoned":
        return NOTHING
      case "open": {
        if (record.sentClose) return NOTHING
        record.sentClose = true
        return [{ _tag: "Send", payload: Messages.channelClose(record.remoteId) }]
      }
    }
  }

  /** The connection is gone: every channel is forgotten. */
  forgetAll(): void {
    this.channels.clear()
  }

  /** Forgets a channel whose CLOSE the peer never answered. */
  forget(localId: number): ReadonlyArray<Action> {
    if (!this.channels.delete(localId)) return NOTHING
    return [{ _tag: "Closed", localId }]
  }

  /** A channel request from us: the payload, or undefined when the channel is not open. */
  request(localId: number, name: string, wantReply: boolean, data?: Uint8Array): Uint8Array | undefined {
    const record = this.channels.get(localId)
    if (record === undefined || record.phase !== "open" || record.sentClose) return undefined
    if (wantReply) record.awaitingReplies++
    return Messages.channelRequest(record.remoteId, name, wantReply, data)
  }

  /** Answers the peer's channel request in `slot`: the replies now due, in order. */
  replyRequest(localId: number, slot: number, success: boolean): ReadonlyArray<Action> {
    const record = this.channels.get(localId)
    if (record === undefined) return NOTHING
    const released = record.replies.answer(slot, success)
    if (released.length === 0 || record.sentClose || record.phase !== "open") return NOTHING
    return released.map((ok): Action => ({
      _tag: "Send",
      payload: ok ? Messages.channelSuccess(record.remoteId) : Messages.channelFailure(record.remoteId)
    }))
  }

  /** A global request from us. */
  globalRequest(name: string, wantReply: boolean, data?: Uint8Array): Uint8Array {
    if (wantReply) this.awaitingGlobal++
    return Messages.globalRequest(name, wantReply, data)
  }

  /** Answers the peer's global request in `slot` (`data` undefined: failure): the replies now due, in order. */
  replyGlobal(slot: number, data: Uint8Array | undefined): ReadonlyArray<Action> {
    const released = this.globalReplies.answer(slot, data)
    return released.map((reply): Action => ({
      _tag: "Send",
      payload: reply === undefined ? Messages.requestFailure() : Messages.requestSuccess(reply)
    }))
  }

  // ---- what the peer does

  /**
   * One message from the peer, at `now` (ms; it times the receive windows, see `ReceiveWindow`); throws a
   * `ProtocolError` when it breaks the protocol.
   */
  receive(payload: Uint8Array, now?: number): ReadonlyArray<Action> {
    const message = Messages.decode(payload)
    switch (message._tag) {
      case "Data":
        return this.receiveData(message.recipient, undefined, message.data, now)
      case "ExtendedData":
        return this.receiveData(message.recipient, message.dataType, message.data, now)
      case "WindowAdjust": {
        const record = this.openChannel(message.recipient)
        record.send.adjust(message.bytes)
        return [{ _tag: "WindowOpened", localId: record.localId }]
      }
      case "Eof": {
        const record = this.openChannel(message.recipient)
        if (record.receivedEof) return NOTHING
        record.receivedEof = true
        return [{ _tag: "Eof", localId: record.localId }]
      }
      case "Close":
        return this.receiveClose(this.openChannel(message.recipient))
      case "ChannelRequest": {
        const record = this.openChannel(message.recipient)
        return [{
          _tag: "IncomingRequest",
          localId: record.localId,
          request: message.request,
          data: message.data,
          slot: message.wantReply ? record.replies.take() : undefined
        }]
      }
      case "ChannelSuccess":
      case "ChannelFailure": {
        const record = this.openChannel(message.recipient)
        if (record.awaitingReplies === 0) violation(`unexpected channel reply on channel ${message.recipient}`)
        record.awaitingReplies--
        return [{ _tag: "RequestReply", localId: record.localId, success: message._tag === "ChannelSuccess" }]
      }
      case "ChannelOpenConfirmation":
        return this.receiveConfirmation(message)
      case "ChannelOpenFailure": {
        const record = this.channels.get(message.recipient)
        if (record === undefined || (record.phase !== "opening" && record.phase !== "abandoned")) {
          return violation(`unexpected open failure for channel ${message.recipient}`)
        }
        this.channels.delete(record.localId)
        return [
          { _tag: "OpenFailed", localId: record.localId, code: message.code, description: message.description },
          { _tag: "Closed", localId: record.localId }
        ]
      }
      case "ChannelOpen":
        return this.receiveOpen(message)
      case "GlobalRequest":
        return [{
          _tag: "IncomingGlobalRequest",
          name: message.name,
          data: message.data,
          slot: message.wantReply ? this.globalReplies.take() : undefined
        }]
      case "RequestSuccess":
      case "RequestFailure": {
        if (this.awaitingGlobal === 0) violation("unexpected global request reply")
        this.awaitingGlobal--
        return [{ _tag: "GlobalReply", data: message._tag === "RequestSuccess" ? message.data : undefined }]
      }
    }
  }

  /** The channel a message is for, which must be open: a peer may say nothing of a channel before answering its open. */
  private openChannel(recipient: number): ChannelRecord {
    const record = this.channels.get(recipient)
    if (record === undefined || record.phase !== "open") return violation(`message for unknown channel ${recipient}`)
    return record
  }

  private receiveData(recipient: number, dataType: number | undefined, data: Uint8Array, now: number | undefined): ReadonlyArray<Action> {
    const record = this.openChannel(recipient)
    if (data.length > record.maxPacket) {
      violation(`channel packet of ${data.length} bytes exceeds our max packet ${record.maxPacket}`)
    }
    record.receive.receive(data.length, now)
    // data after the peer's EOF breaks RFC 4254 §5.3; it is accounted for and dropped, as OpenSSH does
    if (record.receivedEof) return this.dropped(record, data.length)
    return [{ _tag: "Data", localId: record.localId, dataType, data }]
  }

  private dropped(record: ChannelRecord, n: number): ReadonlyArray<Action> {
    const adjust = this.consumed(record.localId, n)
    return adjust === undefined ? NOTHING : [{ _tag: "Send", payload: adjust }]
  }

  private receiveClose(record: ChannelRecord): ReadonlyArray<Action> {
    this.channels.delete(record.localId)
    const actions: Array<Action> = []
    if (!record.receivedEof) {
      record.receivedEof = true
      actions.push({ _tag: "Eof", localId: record.localId })
    }
    actions.push({ _tag: "RemoteClosed", localId: record.localId })
    if (!record.sentClose) {
      record.sentClose = true
      actions.push({ _tag: "Send", payload: Messages.channelClose(record.remoteId) })
    }
    actions.push({ _tag: "Closed", localId: record.localId })
    return actions
  }

  private receiveConfirmation(message: Extract<Messages.ConnectionMessage, { _tag: "ChannelOpenConfirmation" }>): ReadonlyArray<Action> {
    const record = this.channels.get(message.recipient)
    if (record === undefined || (record.phase !== "opening" && record.phase !== "abandoned")) {
      return violation(`unexpected open confirmation for channel ${message.recipient}`)
    }
    record.remoteId = message.sender
    record.send = new SendWindow(message.window, Math.max(1, Math.min(message.maxPacket, MAX_CHANNEL_PACKET)))
    if (record.phase === "abandoned") {
      // we gave up waiting: close it at once; the peer's CLOSE releases it
      record.phase = "open"
      record.sentClose = true
      return [{ _tag: "Send", payload: Messages.channelClose(record.remoteId) }]
    }
    record.phase = "open"
    return [{ _tag: "Opened", localId: record.localId }]
  }

  private receiveOpen(message: Extract<Messages.ConnectionMessage, { _tag: "ChannelOpen" }>): ReadonlyArray<Action> {
    const record = this.allocate(message.channelType, this.options.windowSize, this.options.maxPacket, "offered")
    if (record === undefined) {
      return [{
        _tag: "Send",
        payload: Messages.channelOpenFailure(message.sender, N.ChannelOpenFailure.RESOURCE_SHORTAGE, "too many open channels")
      }]
    }
    record.remoteId = message.sender
    record.send = new SendWindow(message.window, Math.max(1, Math.min(message.maxPacket, MAX_CHANNEL_PACKET)))
    return [{ _tag: "IncomingOpen", localId: record.localId, channelType: message.channelType, data: message.data }]
  }
}
