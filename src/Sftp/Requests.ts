/**
 * The client's table of outstanding SFTP requests: it hands out request ids,
 * matches replies that arrive in any order to their requests, and checks that
 * each reply is of a type its request can receive (draft-ietf-secsh-filexfer-02
 * §7: "exactly one response will be returned for each request").
 *
 * A reply with an id that is not outstanding, or of a type its request never
 * gets (ATTRS to a WRITE), is a `ProtocolError`. Each entry carries a value of
 * the caller's choosing (`meta`: typically whatever completes the waiting
 * operation), so the table stays free of any runtime.
 *
 * An interrupted operation should leave its entry in place: its reply still
 * arrives and must be recognised (and, for a late HANDLE, closed).
 *
 * @since 0.1.0
 */
import { ProtocolError } from "../SshError.ts"
import type { SftpRequest, SftpResponse } from "./Messages.ts"

/** The kind of a request: its packet tag. */
export type RequestKind = SftpRequest["_tag"]

/** The kind of a reply: its packet tag. */
export type ReplyKind = SftpResponse["_tag"]

const status: ReadonlyArray<ReplyKind> = ["Status"]
const handle: ReadonlyArray<ReplyKind> = ["Handle", "Status"]
const attrs: ReadonlyArray<ReplyKind> = ["Attrs", "Status"]
const name: ReadonlyArray<ReplyKind> = ["Name", "Status"]
const extendedReply: ReadonlyArray<ReplyKind> = ["ExtendedReply", "Status"]

/**
 * The replies each kind of request may receive. A STATUS is always possible
 * (it reports failure, or success where nothing else is returned); a generic
 * EXTENDED request may receive any reply.
 *
 * @example
 * ```ts
 * expectedReplies.Read // ["Data", "Status"]
 * ```
 */
export const expectedReplies: { readonly [K in RequestKind]: ReadonlyArray<ReplyKind> } = {
  Open: handle,
  Close: status,
  Read: ["Data", "Status"],
  Write: status,
  Lstat: attrs,
  Fstat: attrs,
  Setstat: status,
  Fsetstat: status,
  Opendir: handle,
  Readdir: name,
  Remove: status,
  Mkdir: status,
  Rmdir: status,
  Realpath: name,
  Stat: attrs,
  Rename: status,
  Readlink: name,
  Symlink: status,
  Extended: ["Status", "Handle", "Data", "Name", "Attrs", "ExtendedReply"],
  PosixRename: status,
  StatVfs: extendedReply,
  FstatVfs: extendedReply,
  Hardlink: status,
  Fsync: status,
  Lsetstat: status,
  Limits: extendedReply,
  ExpandPath: name,
  CopyData: status,
  HomeDirectory: name,
  UsersGroupsById: extendedReply
}

/**
 * Whether a request of `kind` may be answered by a reply of `reply`.
 *
 * @example
 * ```ts
 * isExpectedReply("Write", "Attrs") // false
 * ```
 */
export const isExpectedReply = (kind: RequestKind, reply: ReplyKind): boolean =>
  expectedReplies[kind].includes(reply)

/** An outstanding request. */
export interface Pending<A> {
  readonly id: number
  readonly kind: RequestKind
  readonly meta: A
}

const ID_SPACE = 0x1_0000_0000

/**
 * Outstanding requests by id. Ids count up from `firstId` modulo 2^32,
 * skipping any still outstanding after a wrap.
 *
 * @example
 * ```ts
 * const table = new RequestTable<(reply: SftpResponse) => void>()
 * const packet = table.submit((id) => ({ _tag: "Stat", id, path: "/etc" }), resolve)
 * // later, for each decoded reply:
 * const { meta } = table.settle(reply)
 * meta(reply)
 * ```
 */
export class RequestTable<A> {
  private readonly pending = new Map<number, Pending<A>>()
  private nextId: number

  constructor(firstId = 0) {
    this.nextId = firstId >>> 0
  }

  /** Number of outstanding requests. */
  get size(): number {
    return this.pending.size
  }

  /** Whether a request id is outstanding. */
  has(id: number): boolean {
    return this.pending.has(id)
  }

  private allocateId(): number {
    if (this.pending.size >= ID_SPACE) throw new ProtocolError({ message: "no free SFTP request id" })
    let id = this.nextId
    while (this.pending.has(id)) id = (id + 1) % ID_SPACE
    this.nextId = (id + 1) % ID_SPACE
    return id
  }

  /**
   * Builds a request with a fresh id and records it as outstanding, with its
   * kind taken from the packet. Returns the packet, ready to encode.
   */
  submit<R extends SftpRequest>(build: (id: number) => R, meta: A): R {
    const id = this.allocateId()
    const request = build(id)
    if (request.id !== id) throw new ProtocolError({ message: `request built with id ${request.id}, not ${id}` })
    this.pending.set(id, { id, kind: request._tag, meta })
    return request
  }

  /**
   * Matches a reply to its outstanding request and removes it. Throws
   * `ProtocolError` when the id is not outstanding or the reply type does not
   * fit the request (the entry is removed in that case too).
   */
  settle(reply: SftpResponse): Pending<A> {
    const entry = this.pending.get(reply.id)
    if (entry === undefined) {
      throw new ProtocolError({ message: `SFTP ${reply._tag} reply to unknown request id ${reply.id}` })
    }
    this.pending.delete(reply.id)
    if (!isExpectedReply(entry.kind, reply._tag)) {
      throw new ProtocolError({ message: `unexpected SFTP ${reply._tag} reply to ${entry.kind} request ${reply.id}` })
    }
    return entry
  }

  /** Removes and returns every outstanding request (to fail them when the session ends). */
  drain(): Array<Pending<A>> {
    const all = [...this.pending.values()]
    this.pending.clear()
    return all
  }
}
