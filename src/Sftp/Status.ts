/**
 * SFTP status codes (SSH_FX_*), their names and messages, and the mapping of a
 * failed STATUS reply onto the `SftpStatus` reason of `SshError`.
 *
 * SFTP v3 defines codes 0..8. Codes 9..31 come from later filexfer drafts;
 * some v3 servers send them anyway (e.g. INVALID_PARAMETER for copy-data), so
 * they are named here for messages but never produced by `fromErrno`.
 *
 * @since 0.1.0
 */
import { SftpStatus } from "../SshError.ts"
import type { Status } from "./Messages.ts"

/**
 * SFTP status codes.
 *
 * @example
 * ```ts
 * SftpStatusCode.StatusCode.Eof // 1
 * ```
 */
export const StatusCode = {
  Ok: 0,
  Eof: 1,
  NoSuchFile: 2,
  PermissionDenied: 3,
  Failure: 4,
  BadMessage: 5,
  NoConnection: 6,
  ConnectionLost: 7,
  OpUnsupported: 8,
  InvalidHandle: 9,
  NoSuchPath: 10,
  FileAlreadyExists: 11,
  WriteProtect: 12,
  NoMedia: 13,
  NoSpaceOnFilesystem: 14,
  QuotaExceeded: 15,
  UnknownPrincipal: 16,
  LockConflict: 17,
  DirNotEmpty: 18,
  NotADirectory: 19,
  InvalidFilename: 20,
  LinkLoop: 21,
  CannotDelete: 22,
  InvalidParameter: 23,
  FileIsADirectory: 24,
  ByteRangeLockConflict: 25,
  ByteRangeLockRefused: 26,
  DeletePending: 27,
  FileCorrupt: 28,
  OwnerInvalid: 29,
  GroupInvalid: 30,
  NoMatchingByteRangeLock: 31
} as const

/** The name of a known status code, e.g. "NoSuchFile". */
export type StatusName = keyof typeof StatusCode

const names: ReadonlyArray<StatusName> = Object.keys(StatusCode) as Array<StatusName>

// OpenSSH's sftp-server wording for the v3 codes (status_to_message).
const messages: ReadonlyArray<string> = [
  "Success",
  "End of file",
  "No such file",
  "Permission denied",
  "Failure",
  "Bad message",
  "No connection",
  "Connection lost",
  "Operation unsupported",
  "Invalid handle",
  "No such path",
  "File already exists",
  "Write protected",
  "No media",
  "No space on file system",
  "Quota exceeded",
  "Unknown principal",
  "Lock conflict",
  "Directory not empty",
  "Not a directory",
  "Invalid file name",
  "Too many symbolic links",
  "Cannot delete",
  "Invalid parameter",
  "File is a directory",
  "Byte range lock conflict",
  "Byte range lock refused",
  "Delete pending",
  "File corrupt",
  "Owner invalid",
  "Group invalid",
  "No matching byte range lock"
]

/**
 * The name of a status code, or `undefined` for a code no draft defines.
 *
 * @example
 * ```ts
 * SftpStatusCode.name(3) // "PermissionDenied"
 * ```
 */
export const name = (code: number): StatusName | undefined => names[code]

/**
 * A human-readable message for a status code (used when the server sent an
 * empty message, and by servers that have nothing better to say).
 *
 * @example
 * ```ts
 * SftpStatusCode.defaultMessage(2) // "No such file"
 * ```
 */
export const defaultMessage = (code: number): string => messages[code] ?? `Unknown error (status ${code})`

/**
 * Turns a STATUS reply into the `SftpStatus` reason, with the path the request
 * was about when there was one. An empty message gets the default text.
 *
 * @example
 * ```ts
 * SftpStatusCode.toReason({ _tag: "Status", id: 1, code: 2, message: "", language: "" }, "/nope").message // "No such file"
 * ```
 */
export const toReason = (status: Status, path?: string | undefined): SftpStatus =>
  new SftpStatus({
    code: status.code,
    message: status.message.length > 0 ? status.message : defaultMessage(status.code),
    path
  })

/**
 * Succeeds (returns nothing) for an OK status and throws the `SftpStatus`
 * reason for any other.
 *
 * @example
 * ```ts
 * SftpStatusCode.check({ _tag: "Status", id: 4, code: SftpStatusCode.StatusCode.Ok, message: "", language: "" })
 * ```
 */
export const check = (status: Status, path?: string | undefined): void => {
  if (status.code !== StatusCode.Ok) throw toReason(status, path)
}

/**
 * Whether an `SftpStatus` reason (or a code) means end of file / end of directory.
 *
 * @example
 * ```ts
 * SftpStatusCode.isEof(new SshError.SftpStatus({ code: 1, message: "End of file" })) // true
 * ```
 */
export const isEof = (status: SftpStatus | Status | number): boolean =>
  (typeof status === "number" ? status : status.code) === StatusCode.Eof

/**
 * A STATUS reply packet for a request id, with the default message unless one is given.
 *
 * @example
 * ```ts
 * SftpStatusCode.make(7, SftpStatusCode.StatusCode.NoSuchFile)
 * // => { _tag: "Status", id: 7, code: 2, message: "No such file", language: "en" }
 * ```
 */
export const make = (id: number, code: number, message?: string | undefined): Status => ({
  _tag: "Status",
  id,
  code,
  message: message ?? defaultMessage(code),
  language: "en"
})

const errnoCodes: Readonly<Record<string, number>> = {
  ENOENT: StatusCode.NoSuchFile,
  ENOTDIR: StatusCode.NoSuchFile,
  EBADF: StatusCode.NoSuchFile,
  ELOOP: StatusCode.NoSuchFile,
  EPERM: StatusCode.PermissionDenied,
  EACCES: StatusCode.PermissionDenied,
  EFAULT: StatusCode.PermissionDenied,
  ENAMETOOLONG: StatusCode.BadMessage,
  EINVAL: StatusCode.BadMessage,
  ENOSYS: StatusCode.OpUnsupported,
  ENOTSUP: StatusCode.OpUnsupported
}

/**
 * The v3 status code for a POSIX error name (Node's `error.code`), as
 * OpenSSH's sftp-server maps errno (`errno_to_portable`); anything else is FAILURE.
 *
 * @example
 * ```ts
 * SftpStatusCode.fromErrno("ENOENT") // SftpStatusCode.StatusCode.NoSuchFile
 * ```
 */
export const fromErrno = (code: string | undefined): number =>
  code !== undefined && Object.hasOwn(errnoCodes, code) ? errnoCodes[code]! : StatusCode.Failure
