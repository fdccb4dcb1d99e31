/**
 * SFTP file handles: opaque byte strings of at most 256 bytes
 * (draft-ietf-secsh-filexfer-02 §6), checked when read and when written.
 *
 * @internal
 * @since 0.1.0
 */
import { ProtocolError } from "../SshError.ts"
import type { Reader } from "../Wire/Reader.ts"

/**
 * The longest handle the protocol allows, in bytes.
 *
 * @example
 * ```ts
 * handle.length <= MAX_HANDLE_LENGTH
 * ```
 */
export const MAX_HANDLE_LENGTH = 256

/**
 * Returns the handle, or throws `ProtocolError` when it is longer than 256 bytes.
 *
 * @example
 * ```ts
 * fields.string(checkHandle(handle))
 * ```
 */
export const checkHandle = (handle: Uint8Array): Uint8Array => {
  if (handle.length > MAX_HANDLE_LENGTH) {
    throw new ProtocolError({ message: `handle is ${handle.length} bytes, more than ${MAX_HANDLE_LENGTH}` })
  }
  return handle
}

/**
 * Reads a handle `string` (a view into the packet).
 *
 * @example
 * ```ts
 * const handle = readHandle(new Reader(body, 5))
 * ```
 */
export const readHandle = (r: Reader): Uint8Array => checkHandle(r.string("handle"))
