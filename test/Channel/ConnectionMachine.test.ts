/**
 * The connection protocol's state machine, event by event, with no sockets:
 * open/confirm/failure/close/eof ordering, late replies, window arithmetic,
 * reply order of concurrently handled requests.
 */
import { describe, expect, it } from "vitest"
import { type Action, ConnectionMachine, ReplySlots } from "../../src/Channel/ConnectionMachine.ts"
import * as Messages from "../../src/Channel/Messages.ts"
import { ProtocolError } from "../../src/SshError.ts"
import * as N from "../../src/Wire/MessageNumber.ts"

const WINDOW = 64 * 1024
const PACKET = 16 * 1024
const machine = (maxChannels = 8) => new ConnectionMachine({ maxChannels, windowSize: WINDOW, maxPacket: PACKET })

/** The payloads a step sends, decoded. */
const sent = (actions: ReadonlyArray<Action>) =>
  actions.flatMap((a) => a._tag === "Send" ? [Messages.decode(a.payload)] : [])
const tags = (actions: ReadonlyArray<Action>) => actions.map((a) => a._tag)
const bytes = (n: number) => new Uint8Array(n)

/** A machine with one channel we opened and the peer (its id 100) confirmed. */
const withOpenChannel = (peerWindow = 1000, peerPacket = 400) => {
  const m = machine()
  const { localId } = m.open("session", WINDOW, PACKET)!
  m.receive(Messages.channelOpenConfirmation(localId, 100, peerWindow, peerPacket))
  return { m, localId }
}

const violation = (f: () => unknown, message: RegExp) => {
  try {
    f()
  } catch (e) {
    expect(e).toBeInstanceOf(ProtocolError)
    expect((e as ProtocolError).message).toMatch(message)
    return
  }
  expect.fail("no ProtocolError")
}

describe("opening channels", () => {
  it("open sends CHANNEL_OPEN with our window and max packet; the confirmation opens it", () => {
    const m = machine()
    const opening = m.open("session", WINDOW, PACKET, Uint8Array.of(1, 2))!
    expect(Messages.decode(opening.send)).toEqual({
      _tag: "ChannelOpen", channelType: "session", sender: opening.localId, window: WINDOW, maxPacket: PACKET, data: Uint8Array.of(1, 2)
    })
    expect(m.channel(opening.localId)!.phase).toBe("opening")
    const step = m.receive(Messages.channelOpenConfirmation(opening.localId, 7, 5000, 1000))
    expect(step).toEqual([{ _tag: "Opened", localId: opening.localId }])
    expect(m.channel(opening.localId)!.remoteId).toBe(7)
  })

  it("an open failure frees the channel number", () => {
    const m = machine(1)
    const { localId } = m.open("session", WINDOW, PACKET)!
    expect(m.open("session", WINDOW, PACKET)).toBeUndefined()
    const step = m.receive(Messages.channelOpenFailure(localId, 2, "no"))
    expect(step).toEqual([
      { _tag: "OpenFailed", localId, code: 2, description: "no" },
      { _tag: "Closed", localId }
    ])
    expect(m.channelCount).toBe(0)
    expect(m.open("session", WINDOW, PACKET)).toBeDefined()
  })

  it("nothing may be said of a channel before its open is answered", () => {
    const m = machine()
    const { localId } = m.open("session", WINDOW, PACKET)!
    violation(() => m.receive(Messages.channelClose(localId)), /unknown channel/)
    violation(() => m.receive(Messages.channelData(localId, bytes(1))), /unknown channel/)
    violation(() => m.receive(Messages.windowAdjust(localId, 10)), /unknown channel/)
  })

  it("a second confirmation, or one for a channel never opened, is a violation", () => {
    const { m, localId } = withOpenChannel()
    violation(() => m.receive(Messages.channelOpenConfirmation(localId, 5, 1, 1)), /unexpected open confirmation/)
    violation(() => m.receive(Messages.channelOpenConfirmation(99, 5, 1, 1)), /unexpected open confirmation/)
    violation(() => m.receive(Messages.channelOpenFailure(99, 1, "x")), /unexpected open failure/)
  })

  it("an abandoned open answered late with a confirmation is closed at once, and released by the peer's CLOSE", () => {
    const m = machine()
    const { localId } = m.open("session", WINDOW, PACKET)!
    expect(m.close(localId)).toEqual([])
    expect(m.channel(localId)!.phase).toBe("abandoned")
    const late = m.receive(Messages.channelOpenConfirmation(localId, 42, 1000, 100))
    expect(sent(late)).toEqual([{ _tag: "Close", recipient: 42 }])
    expect(tags(late)).not.toContain("Opened")
    expect(m.takeWindow(localId, 10)).toBeUndefined()
    const release = m.receive(Messages.channelClose(localId))
    expect(tags(release)).toEqual(["Eof", "RemoteClosed", "Closed"])
    expect(m.channelCount).toBe(0)
  })

  it("an abandoned open answered late with a failure is released", () => {
    const m = machine()
    const { localId } = m.open("session", WINDOW, PACKET)!
    m.close(localId)
    expect(tags(m.receive(Messages.channelOpenFailure(localId, 1, "late")))).toEqual(["OpenFailed", "Closed"])
    expect(m.channelCount).toBe(0)
  })
})

describe("channels the peer opens", () => {
  it("are offered, then confirmed by accept with our window", () => {
    const m = machine()
    const [offer] = m.receive(Messages.channelOpen("direct-tcpip", 9, 3000, 500, Uint8Array.of(5)))
    expect(offer).toMatchObject({ _tag: "IncomingOpen", channelType: "direct-tcpip", data: Uint8Array.of(5) })
    const localId = (offer as Extract<Action, { _tag: "IncomingOpen" }>).localId
    // nothing about it may come before we answer
    violation(() => m.receive(Messages.channelData(localId, bytes(1))), /unknown channel/)
    expect(sent(m.accept(localId, 2 * WINDOW))).toEqual([{
      _tag: "ChannelOpenConfirmation", recipient: 9, sender: localId, window: 2 * WINDOW, maxPacket: PACKET, data: new Uint8Array(0)
    }])
    expect(m.takeWindow(localId, 10_000)).toBe(500)
    expect(m.accept(localId)).toEqual([])
  })

  it("are refused by reject, or by close before an answer, which frees the number", () => {
    const m = machine()
    const [offer] = m.receive(Messages.channelOpen("x11", 9, 3000, 500))
    const localId = (offer as Extract<Action, { _tag: "IncomingOpen" }>).localId
    const step = m.reject(localId, N.ChannelOpenFailure.ADMINISTRATIVELY_PROHIBITED, "no")
    expect(sent(step)).toEqual([{ _tag: "ChannelOpenFailure", recipient: 9, code: 1, description: "no" }])
    expect(tags(step)).toEqual(["Send", "Closed"])
    const [again] = m.receive(Messages.channelOpen("x11", 10, 3000, 500))
    const second = (again as Extract<Action, { _tag: "IncomingOpen" }>).localId
    expect(sent(m.close(second))[0]).toMatchObject({ _tag: "ChannelOpenFailure", recipient: 10 })
    expect(m.channelCount).toBe(0)
  })

  it("beyond the channel limit are refused for resource shortage without being offered", () => {
    const m = machine(1)
    m.receive(Messages.channelOpen("session", 1, 100, 100))
    const step = m.receive(Messages.channelOpen("session", 2, 100, 100))
    expect(sent(step)).toEqual([{ _tag: "ChannelOpenFailure", recipient: 2, code: N.ChannelOpenFailure.RESOURCE_SHORTAGE, description: "too many open channels" }])
  })
})

describe("window arithmetic", () => {
  it("sending takes the peer's window and max packet; WINDOW_ADJUST refills it", () => {
    const { m, localId } = withOpenChannel(1000, 400)
    expect(m.takeWindow(localId, 10_000)).toBe(400)
    expect(m.takeWindow(localId, 10_000)).toBe(400)
    expect(m.takeWindow(localId, 10_000)).toBe(200)
    expect(m.takeWindow(localId, 10_000)).toBe(0)
    expect(m.receive(Messages.windowAdjust(localId, 300))).toEqual([{ _tag: "WindowOpened", localId }])
    expect(m.takeWindow(localId, 10_000)).toBe(300)
  })

  it("the peer's window never exceeds 2^32 - 1", () => {
    const { m, localId } = withOpenChannel(0xfffffff0, 400)
    m.receive(Messages.windowAdjust(localId, 0xffffffff))
    expect(m.channel(localId)!.send.available).toBe(0xffffffff)
  })

  it("received data is delivered and granted back only as the consumer takes it, once credit is below half the window", () => {
    const { m, localId } = withOpenChannel()
    const step = m.receive(Messages.channelData(localId, bytes(PACKET)))
    expect(step).toEqual([{ _tag: "Data", localId, dataType: undefined, data: bytes(PACKET) }])
    expect(m.consumed(localId, PACKET)).toBeUndefined()
    m.receive(Messages.channelData(localId, bytes(PACKET)))
    expect(m.consumed(localId, PACKET)).toBeUndefined() // credit at exactly half
    m.receive(Messages.channelData(localId, bytes(PACKET)))
    m.receive(Messages.channelData(localId, bytes(PACKET)))
    // unread data holds its share of the window: only the consumed packets are granted back
    const adjust = m.consumed(localId, PACKET)!
    expect(Messages.decode(adjust)).toEqual({ _tag: "WindowAdjust", recipient: 100, bytes: 3 * PACKET })
  })

  it("data beyond the window or beyond our max packet is a violation", () => {
    const { m, localId } = withOpenChannel()
    violation(() => m.receive(Messages.channelData(localId, bytes(PACKET + 1))), /exceeds our max packet/)
    for (let i = 0; i < WINDOW / PACKET; i++) m.receive(Messages.channelData(localId, bytes(PACKET)))
    violation(() => m.receive(Messages.channelData(localId, bytes(1))), /window left/)
  })

  it("extended data keeps its type; data after the peer's EOF is dropped and credited", () => {
    const { m, localId } = withOpenChannel()
    expect(m.receive(Messages.channelData(localId, bytes(3), 1))).toEqual([{ _tag: "Data", localId, dataType: 1, data: bytes(3) }])
    expect(m.receive(Messages.channelEof(localId))).toEqual([{ _tag: "Eof", localId }])
    expect(m.receive(Messages.channelEof(localId))).toEqual([])
    expect(tags(m.receive(Messages.channelData(localId, bytes(PACKET))))).toEqual([])
    expect(sent(m.receive(Messages.channelData(localId, bytes(PACKET))))).toEqual([{ _tag: "WindowAdjust", recipient: 100, bytes: 2 * PACKET }])
  })

  it("growWindow grants the difference once", () => {
    const { m, localId } = withOpenChannel()
    expect(Messages.decode(m.growWindow(localId, 4 * WINDOW)!)).toEqual({ _tag: "WindowAdjust", recipient: 100, bytes: 3 * WINDOW })
    expect(m.growWindow(localId, 4 * WINDOW)).toBeUndefined()
  })
})

describe("eof and close", () => {
  it("our EOF goes out once and stops our data; the channel still receives", () => {
    const { m, localId } = withOpenChannel()
    expect(Messages.decode(m.eof(localId)!)).toEqual({ _tag: "Eof", recipient: 100 })
    expect(m.eof(localId)).toBeUndefined()
    expect(m.takeWindow(localId, 10)).toBeUndefined()
    expect(tags(m.receive(Messages.channelData(localId, bytes(1))))).toEqual(["Data"])
  })

  it("our CLOSE first: the channel lives until the peer's CLOSE, which is not answered again", () => {
    const { m, localId } = withOpenChannel()
    expect(sent(m.close(localId))).toEqual([{ _tag: "Close", recipient: 100 }])
    expect(m.close(localId)).toEqual([])
    expect(m.eof(localId)).toBeUndefined()
    expect(m.request(localId, "exec", true)).toBeUndefined()
    expect(m.channelCount).toBe(1)
    expect(m.receive(Messages.channelClose(localId))).toEqual([
      { _tag: "Eof", localId },
      { _tag: "RemoteClosed", localId },
      { _tag: "Closed", localId }
    ])
    expect(m.channelCount).toBe(0)
    violation(() => m.receive(Messages.channelClose(localId)), /unknown channel/)
  })

  it("the peer's CLOSE first is answered with ours; its EOF before it is not repeated", () => {
    const { m, localId } = withOpenChannel()
    m.receive(Messages.channelEof(localId))
    const step = m.receive(Messages.channelClose(localId))
    expect(tags(step)).toEqual(["RemoteClosed", "Send", "Closed"])
    expect(sent(step)).toEqual([{ _tag: "Close", recipient: 100 }])
  })

  it("a channel whose CLOSE is never answered can be forgotten", () => {
    const { m, localId } = withOpenChannel()
    m.close(localId)
    expect(m.forget(localId)).toEqual([{ _tag: "Closed", localId }])
    expect(m.channelCount).toBe(0)
  })
})

describe("requests and replies", () => {
  it("our want-reply requests are answered in order; a reply nobody asked for is a violation", () => {
    const { m, localId } = withOpenChannel()
    expect(Messages.decode(m.request(localId, "exec", true, Uint8Array.of(0, 0, 0, 1, 65))!)).toMatchObject({
      _tag: "ChannelRequest", recipient: 100, request: "exec", wantReply: true
    })
    m.request(localId, "env", false)
    expect(m.receive(Messages.channelSuccess(localId))).toEqual([{ _tag: "RequestReply", localId, success: true }])
    violation(() => m.receive(Messages.channelFailure(localId)), /unexpected channel reply/)
  })

  it("the peer's channel requests are answered in their order, whatever order the handlers finish in", () => {
    const { m, localId } = withOpenChannel()
    const slotOf = (a: ReadonlyArray<Action>) => (a[0] as Extract<Action, { _tag: "IncomingRequest" }>).slot!
    const first = slotOf(m.receive(Messages.channelRequest(localId, "pty-req", true)))
    const noReply = m.receive(Messages.channelRequest(localId, "env", false))
    expect((noReply[0] as Extract<Action, { _tag: "IncomingRequest" }>).slot).toBeUndefined()
    const second = slotOf(m.receive(Messages.channelRequest(localId, "shell", true)))
    expect(m.replyRequest(localId, second, true)).toEqual([])
    expect(sent(m.replyRequest(localId, first, false))).toEqual([
      { _tag: "ChannelFailure", recipient: 100 },
      { _tag: "ChannelSuccess", recipient: 100 }
    ])
  })

  it("replies to a channel that sent CLOSE are not sent", () => {
    const { m, localId } = withOpenChannel()
    const [incoming] = m.receive(Messages.channelRequest(localId, "exec", true))
    m.close(localId)
    expect(m.replyRequest(localId, (incoming as Extract<Action, { _tag: "IncomingRequest" }>).slot!, true)).toEqual([])
  })

  it("global requests: ours answered in order, the peer's replied in order of arrival", () => {
    const m = machine()
    m.globalRequest("keepalive@openssh.com", true)
    m.globalRequest("no-more-sessions@openssh.com", false)
    expect(m.receive(Messages.requestSuccess(Uint8Array.of(1)))).toEqual([{ _tag: "GlobalReply", data: Uint8Array.of(1) }])
    violation(() => m.receive(Messages.requestFailure()), /unexpected global request reply/)
    const a = m.receive(Messages.globalRequest("tcpip-forward", true))[0] as Extract<Action, { _tag: "IncomingGlobalRequest" }>
    const b = m.receive(Messages.globalRequest("keepalive@openssh.com", true))[0] as Extract<Action, { _tag: "IncomingGlobalRequest" }>
    expect(m.unansweredGlobalRequests).toBe(2)
    expect(m.replyGlobal(b.slot!, undefined)).toEqual([])
    expect(sent(m.replyGlobal(a.slot!, Uint8Array.of(0, 0, 8, 0)))).toEqual([
      { _tag: "RequestSuccess", data: Uint8Array.of(0, 0, 8, 0) },
      { _tag: "RequestFailure" }
    ])
    expect(m.unansweredGlobalRequests).toBe(0)
    // a slot answered twice releases nothing
    expect(m.replyGlobal(a.slot!, undefined)).toEqual([])
  })
})

describe("ReplySlots", () => {
  it("releases answers in slot order, each once", () => {
    const slots = new ReplySlots<number>()
    const s = [slots.take(), slots.take(), slots.take()]
    expect(slots.answer(s[2]!, 3)).toEqual([])
    expect(slots.answer(s[1]!, 2)).toEqual([])
    expect(slots.answer(s[0]!, 1)).toEqual([1, 2, 3])
    expect(slots.size).toBe(0)
    const next = slots.take()
    expect(next).toBe(3)
    expect(slots.answer(s[0]!, 9)).toEqual([])
    expect(slots.answer(next, 4)).toEqual([4])
  })
})

it("garbage is a ProtocolError, never another exception", () => {
  const { m } = withOpenChannel()
  for (const payload of [Uint8Array.of(N.CHANNEL_DATA), Uint8Array.of(N.CHANNEL_WINDOW_ADJUST, 0, 0, 0, 0), Uint8Array.of(200)]) {
    expect(() => m.receive(payload)).toThrow(ProtocolError)
  }
})
