/**
 * The transport's sequencing as a pure state machine (RFC 4253 §7, strict kex):
 * when KEXINIT goes out, which messages may pass while a key exchange runs,
 * where each direction switches keys, when sequence numbers reset, when to
 * rekey, when EXT_INFO is sent, how many key exchanges an unauthenticated
 * peer may start.
 *
 * It holds no keys, bytes or effects: the shell (`Transport.make`) tells it
 * what happened — a packet arrived, a KEXINIT was negotiated, our key
 * exchange produced its result, NEWKEYS arrived — and it answers with what to
 * do, or throws the `ProtocolError` / `LimitExceeded` reason that ends the
 * connection. Time is an input (`now`, epoch milliseconds from the shell's
 * `Clock`), so rekeying by time is tested without waiting.
 *
 * Strict kex (`kex-strict-c-v00@openssh.com` / `kex-strict-s-v00@openssh.com`,
 * OpenSSH PROTOCOL §1.10): the KEXINIT must be the first packet, nothing but
 * key exchange messages may arrive during the first exchange, and both
 * sequence numbers restart at 0 after every NEWKEYS.
 *
 * @since 0.1.0
 */
import { LimitExceeded, ProtocolError } from "../SshError.ts"
import * as N from "../Wire/MessageNumber.ts"

/**
 * What to do with a received packet, by message type.
 *
 * - `deliver`: hand it to the upper layer (authentication, connection).
 * - `ignore`: drop it (IGNORE, DEBUG, UNIMPLEMENTED after the first exchange, a wrong kex guess).
 * - `unimplemented`: answer UNIMPLEMENTED with its sequence number (RFC 4253 §11.4).
 * - `disconnect`, `kexinit`, `kex`, `newkeys`, `extinfo`: decode it and report it with the matching method.
 *
 * @example
 * ```ts
 * const route: Route = machine.receive(payload[0], now) // "deliver"
 * ```
 */
export type Route = "deliver" | "ignore" | "unimplemented" | "disconnect" | "kexinit" | "kex" | "newkeys" | "extinfo"

/**
 * When to rekey and how many key exchanges a peer may start before it authenticates.
 *
 * @example
 * ```ts
 * const options: MachineOptions = { role: "client", rekeyBytes: 2 ** 30, rekeyPackets: 2 ** 31, rekeyIntervalMs: 3_600_000, preAuthKex: 3 }
 * ```
 */
export interface MachineOptions {
  readonly role: "client" | "server"
  /** Bytes in both directions since the last key exchange that call for a new one. */
  readonly rekeyBytes: number
  /** Packets in both directions since the last key exchange that call for a new one. */
  readonly rekeyPackets: number
  /** Milliseconds since the last key exchange that call for a new one. */
  readonly rekeyIntervalMs: number
  /** Key exchanges the peer may start before authentication, the first one included. */
  readonly preAuthKex: number
}

/**
 * What the negotiation of the two KEXINITs decided, as far as sequencing goes.
 *
 * @example
 * ```ts
 * machine.negotiated({ strict: n.strictKex, extInfo: n.extInfo, ignoreGuess: false })
 * ```
 */
export interface KexAgreement {
  /** Both sides offered strict kex (only the first exchange's answer counts). */
  readonly strict: boolean
  /** The peer asked for EXT_INFO (`ext-info-c` in the client's KEXINIT). */
  readonly extInfo: boolean
  /** The peer sent a first kex packet on a guess that turned out wrong: its next kex message is dropped. */
  readonly ignoreGuess: boolean
}

/**
 * Where our sending side switches keys, once our key exchange has its result.
 *
 * @example
 * ```ts
 * const step = machine.kexFinished()
 * seal(NEWKEYS); switchSealer(); if (step.resetSequence) writer.resetSequence()
 * if (step.sendExtInfo) seal(extInfo)
 * ```
 */
export interface NewKeysOut {
  /** Restart the sending sequence number at 0 after NEWKEYS (strict kex). */
  readonly resetSequence: boolean
  /** Send EXT_INFO right after NEWKEYS, under the new keys (the server, once per connection). */
  readonly sendExtInfo: boolean
}

/**
 * Where our receiving side switches keys, on the peer's NEWKEYS.
 *
 * @example
 * ```ts
 * const step = machine.newKeysReceived(now)
 * switchOpener(); if (step.resetSequence) reader.resetSequence()
 * ```
 */
export interface NewKeysIn {
  /** Restart the receiving sequence number at 0 after NEWKEYS (strict kex). */
  readonly resetSequence: boolean
  /** This NEWKEYS finished the connection's first key exchange. */
  readonly first: boolean
}

/**
 * The running key exchange: "exchanging" from our KEXINIT until we sent NEWKEYS, then "awaiting" their NEWKEYS.
 */
interface Exchange {
  phase: "exchanging" | "awaiting"
  theirKexInit: boolean
  negotiated: boolean
  ignoreGuess: boolean
  extInfo: boolean
}

/** Packets a strict first exchange may see before its sequence number would wrap. */
const SEQUENCE_SPAN = 2 ** 32

/** The shortest wait of the rekey timer while it cannot rekey (an exchange runs). */
const IDLE_RECHECK_MS = 1000

const protocolError = (message: string) => new ProtocolError({ message })

/**
 * Whether a message of this type may be sent while a key exchange runs: the
 * transport's own messages (1..49) but the service requests (RFC 4253 §7.1).
 *
 * @example
 * ```ts
 * passesDuringKex(N.IGNORE)         // true
 * passesDuringKex(N.CHANNEL_DATA)   // false: waits for NEWKEYS
 * ```
 */
export const passesDuringKex = (type: number): boolean =>
  type >= 1 && type <= 49 && type !== N.SERVICE_REQUEST && type !== N.SERVICE_ACCEPT

/** Transport message numbers with no meaning (RFC 4250 §4.1.2), each answered with UNIMPLEMENTED. */
const isUnassigned = (type: number): boolean =>
  type !== N.DISCONNECT && type !== N.IGNORE && type !== N.UNIMPLEMENTED && type !== N.DEBUG &&
  type !== N.SERVICE_REQUEST && type !== N.SERVICE_ACCEPT && type !== N.EXT_INFO && type !== N.KEXINIT &&
  type !== N.NEWKEYS && !(type >= N.KEX_FIRST && type <= N.KEX_LAST) && type >= 1 && type <= 49

/**
 * One connection's transport sequencing. Every method is synchronous; a
 * method that finds the peer out of order throws a `ProtocolError` (or
 * `LimitExceeded`) reason, after which the machine must not be used.
 *
 * @example
 * ```ts
 * const machine = new TransportMachine({ role: "client", rekeyBytes, rekeyPackets, rekeyIntervalMs, preAuthKex: 3 }, now)
 * if (machine.requestKex()) seal(buildKexInit({ markers: !machine.firstKexDone }))
 * switch (machine.receive(payload[0], now)) {
 *   case "deliver": queue(payload); break
 *   case "kexinit": if (machine.kexInitReceived()) seal(ourKexInit); machine.negotiated(agreement); break
 *   case "newkeys": machine.newKeysReceived(now); break
 * }
 * ```
 */
export class TransportMachine {
  readonly role: "client" | "server"
  private readonly options: MachineOptions
  private exchange: Exchange | undefined = undefined
  private _strict = false
  private _firstKexDone = false
  private authenticatedPeer = false
  private sentExtInfo = false
  private peerKexCount = 0
  private firstPacket = true
  /** Whether the peer's first packet was its KEXINIT (strict kex requires it). */
  private kexInitFirst = false
  private _kexCount = 0
  private _lastKexAt: number
  private _lastReceivedAt: number
  /**
   * Traffic under the current keys, each direction counted from its own switch: sending from our NEWKEYS,
   * receiving from the peer's. What we send between the two is under the new keys and counts toward the next
   * rekey, which would otherwise come late by all a fast sender pushed while the peer's NEWKEYS was on its way.
   */
  private bytesInSinceKeys = 0
  private bytesOutSinceKeys = 0
  private packetsInSinceKeys = 0
  private packetsOutSinceKeys = 0
  private _bytesIn = 0
  private _bytesOut = 0
  private _packetsIn = 0
  private _packetsOut = 0

  constructor(options: MachineOptions, now: number) {
    this.role = options.role
    this.options = options
    this._lastKexAt = now
    this._lastReceivedAt = now
  }

  /** Strict kex is in force (decided by the first exchange). */
  get strict(): boolean {
    return this._strict
  }

  /** The first key exchange completed (both NEWKEYS): upper-layer messages may flow. */
  get firstKexDone(): boolean {
    return this._firstKexDone
  }

  /** A key exchange runs: from our KEXINIT until the peer's NEWKEYS. */
  get kexRunning(): boolean {
    return this.exchange !== undefined
  }

  /** The peer has sent its KEXINIT and not yet its NEWKEYS: it may send nothing but transport messages. */
  get peerInKex(): boolean {
    return this.exchange !== undefined && this.exchange.theirKexInit
  }

  /** Completed key exchanges. */
  get kexCount(): number {
    return this._kexCount
  }

  /** `now` of the last packet received (or of the machine's creation). */
  get lastReceivedAt(): number {
    return this._lastReceivedAt
  }

  /** Counters for `Transport.stats`. */
  get bytesIn(): number {
    return this._bytesIn
  }
  get bytesOut(): number {
    return this._bytesOut
  }
  get packetsIn(): number {
    return this._packetsIn
  }
  get packetsOut(): number {
    return this._packetsOut
  }

  /**
   * Whether a payload of this type must wait before it is sealed: while we
   * run a key exchange and have not sent NEWKEYS, only the transport's own
   * messages go out.
   */
  holdsSend(type: number): boolean {
    return this.exchange !== undefined && this.exchange.phase === "exchanging" && !passesDuringKex(type)
  }

  /**
   * We want a key exchange (the first one, a rekey, or an answer to the
   * peer's KEXINIT). True when our KEXINIT must be sent now; false when one
   * already runs. From here until `kexFinished`, `holdsSend` holds the upper
   * layer's payloads.
   */
  requestKex(): boolean {
    if (this.exchange !== undefined) return false
    this.exchange = { phase: "exchanging", theirKexInit: false, negotiated: false, ignoreGuess: false, extInfo: false }
    return true
  }

  /** Bytes read from the socket. */
  read(bytes: number): void {
    this._bytesIn += bytes
    this.bytesInSinceKeys += bytes
  }

  /** A packet of `bytes` bytes was sealed and queued for the socket. */
  sealed(bytes: number): void {
    this._bytesOut += bytes
    this.bytesOutSinceKeys += bytes
    this._packetsOut++
    this.packetsOutSinceKeys++
  }

  /**
   * A packet arrived (`type`: its first payload byte, -1 for an empty
   * payload): what to do with it. Throws for a message that may not come now.
   */
  receive(type: number, now: number): Route {
    this._lastReceivedAt = now
    this._packetsIn++
    this.packetsInSinceKeys++
    // the data path first: upper-layer messages once the first exchange is done
    if (type > 49 && this._firstKexDone) {
      if (this.exchange !== undefined && this.exchange.theirKexInit) {
        throw protocolError(`message ${type} during a key exchange`)
      }
      return "deliver"
    }
    if (type < 0) throw protocolError("empty packet")
    if (this.firstPacket) {
      this.firstPacket = false
      this.kexInitFirst = type === N.KEXINIT
      // a server always gets the client's KEXINIT first; a client may see others before it unless strict
      if (type !== N.KEXINIT && this.role === "server") throw protocolError(`first packet was ${type}, not KEXINIT`)
    }
    if (!this._firstKexDone && this._strict && this._packetsIn >= SEQUENCE_SPAN) {
      throw protocolError("sequence number wrapped during the initial key exchange")
    }
    if (!passesDuringKex(type)) {
      if (!this._firstKexDone) throw protocolError(`message ${type} before the first key exchange completed`)
      if (this.exchange !== undefined && this.exchange.theirKexInit) {
        throw protocolError(`message ${type} during a key exchange`)
      }
      return "deliver"
    }
    const initialStrict = !this._firstKexDone && this._strict
    if (isUnassigned(type)) {
      if (initialStrict) throw protocolError(`message ${type} during the initial strict key exchange`)
      return "unimplemented"
    }
    switch (type) {
      case N.DISCONNECT:
        return "disconnect"
      case N.IGNORE:
      case N.DEBUG:
        if (initialStrict) throw protocolError(`message ${type} during the initial strict key exchange`)
        return "ignore"
      case N.UNIMPLEMENTED:
        if (!this._firstKexDone) throw protocolError("UNIMPLEMENTED during the initial key exchange")
        return "ignore"
      case N.EXT_INFO:
        if (initialStrict) throw protocolError(`message ${type} during the initial strict key exchange`)
        return "extinfo"
      case N.KEXINIT:
        return "kexinit"
      case N.NEWKEYS:
        return "newkeys"
      default:
        return "kex"
    }
  }

  /**
   * The peer's KEXINIT arrived. True when ours must be sent first (the peer
   * started this exchange). Throws `LimitExceeded` past the pre-authentication
   * count, `ProtocolError` for a second KEXINIT in one exchange.
   */
  kexInitReceived(): boolean {
    this.peerKexCount++
    if (!this.authenticatedPeer && this.peerKexCount > this.options.preAuthKex) {
      throw new LimitExceeded({
        limit: "key exchanges before authentication",
        message:
          `peer started key exchange ${this.peerKexCount} before authenticating; at most ${this.options.preAuthKex} are allowed`
      })
    }
    const sendOurs = this.requestKex()
    const exchange = this.exchange!
    if (exchange.theirKexInit) throw protocolError("second KEXINIT during a key exchange")
    exchange.theirKexInit = true
    return sendOurs
  }

  /**
   * Both KEXINITs were negotiated. The first exchange decides strict kex,
   * under which the peer's KEXINIT must have been its very first packet.
   */
  negotiated(agreement: KexAgreement): void {
    const exchange = this.exchange
    if (exchange === undefined || !exchange.theirKexInit || exchange.negotiated) {
      throw protocolError("key exchange negotiated out of order")
    }
    if (!this._firstKexDone) {
      this._strict = agreement.strict
      if (this._strict && !this.kexInitFirst) throw protocolError("strict key exchange: KEXINIT was not the first packet")
    }
    exchange.negotiated = true
    exchange.ignoreGuess = agreement.ignoreGuess
    exchange.extInfo = agreement.extInfo
  }

  /**
   * A key exchange method message (30..49) arrived: true when it goes to the
   * kex method, false when it is the peer's wrong guess, to be dropped.
   */
  kexMessage(type: number): boolean {
    const exchange = this.exchange
    if (exchange === undefined || !exchange.negotiated || exchange.phase !== "exchanging") {
      throw protocolError(`unexpected key exchange message ${type}`)
    }
    if (exchange.ignoreGuess) {
      exchange.ignoreGuess = false
      return false
    }
    return true
  }

  /**
   * Our key exchange method has its result: we send NEWKEYS under the old
   * keys and switch our sending keys after it. From here the upper layer's
   * held payloads may go, under the new keys.
   */
  kexFinished(): NewKeysOut {
    const exchange = this.exchange
    if (exchange === undefined || !exchange.negotiated || exchange.phase !== "exchanging") {
      throw protocolError("key exchange finished out of order")
    }
    exchange.phase = "awaiting"
    this.bytesOutSinceKeys = 0
    this.packetsOutSinceKeys = 0
    const sendExtInfo = this.role === "server" && exchange.extInfo && !this.sentExtInfo
    if (sendExtInfo) this.sentExtInfo = true
    return { resetSequence: this._strict, sendExtInfo }
  }

  /**
   * The peer's NEWKEYS arrived: we switch our receiving keys, and the key
   * exchange is complete.
   */
  newKeysReceived(now: number): NewKeysIn {
    const exchange = this.exchange
    if (exchange === undefined || exchange.phase !== "awaiting") {
      throw protocolError("NEWKEYS before the key exchange finished")
    }
    const first = !this._firstKexDone
    this.exchange = undefined
    this._firstKexDone = true
    this._kexCount++
    this.bytesInSinceKeys = 0
    this.packetsInSinceKeys = 0
    this._lastKexAt = now
    return { resetSequence: this._strict, first }
  }

  /** The peer authenticated: the pre-authentication key exchange count no longer applies. */
  authenticated(): void {
    this.authenticatedPeer = true
  }

  /** Whether it is time for a new key exchange (by bytes, packets or time), none running. */
  rekeyDue(now: number): boolean {
    return this._firstKexDone && this.exchange === undefined &&
      (this.bytesInSinceKeys + this.bytesOutSinceKeys >= this.options.rekeyBytes ||
        this.packetsInSinceKeys + this.packetsOutSinceKeys >= this.options.rekeyPackets ||
        now - this._lastKexAt >= this.options.rekeyIntervalMs)
  }

  /**
   * Milliseconds until the time trigger should be looked at again: until the
   * interval since the last exchange ends, or a whole interval (at least a
   * second, so a tiny interval does not spin) while one runs.
   */
  rekeyDelay(now: number): number {
    if (this.exchange !== undefined || !this._firstKexDone) return Math.max(this.options.rekeyIntervalMs, IDLE_RECHECK_MS)
    return Math.max(0, this._lastKexAt + this.options.rekeyIntervalMs - now)
  }
}
