import { describe, expect, it } from "vitest"
import { SftpStatus } from "../../src/SshError.ts"
import { check, defaultMessage, fromErrno, isEof, make, name, StatusCode, toReason } from "../../src/Sftp/Status.ts"

describe("Status", () => {
  it("has the v3 codes of draft-ietf-secsh-filexfer-02 §7", () => {
    expect([
      StatusCode.Ok,
      StatusCode.Eof,
      StatusCode.NoSuchFile,
      StatusCode.PermissionDenied,
      StatusCode.Failure,
      StatusCode.BadMessage,
      StatusCode.NoConnection,
      StatusCode.ConnectionLost,
      StatusCode.OpUnsupported
    ]).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8])
    expect(StatusCode.InvalidParameter).toBe(23)
    expect(StatusCode.NoMatchingByteRangeLock).toBe(31)
  })

  it("names codes and gives OpenSSH's messages", () => {
    expect(name(2)).toBe("NoSuchFile")
    expect(name(31)).toBe("NoMatchingByteRangeLock")
    expect(name(32)).toBeUndefined()
    expect(name(-1)).toBeUndefined()
    expect(defaultMessage(0)).toBe("Success")
    expect(defaultMessage(1)).toBe("End of file")
    expect(defaultMessage(8)).toBe("Operation unsupported")
    expect(defaultMessage(1000)).toBe("Unknown error (status 1000)")
  })

  it("maps a failed STATUS onto the SftpStatus reason", () => {
    const reason = toReason({ _tag: "Status", id: 3, code: 3, message: "denied here", language: "en" }, "/root")
    expect(reason).toBeInstanceOf(SftpStatus)
    expect(reason).toMatchObject({ _tag: "SftpStatus", code: 3, message: "denied here", path: "/root" })
    expect(toReason({ _tag: "Status", id: 3, code: 2, message: "", language: "" }).message).toBe("No such file")
  })

  it("check passes OK and throws the reason otherwise", () => {
    expect(() => check(make(1, StatusCode.Ok))).not.toThrow()
    expect(() => check(make(1, StatusCode.Failure), "/x")).toThrow(SftpStatus)
    try {
      check(make(1, StatusCode.Eof))
    } catch (e) {
      expect(isEof(e as SftpStatus)).toBe(true)
    }
  })

  it("make builds a STATUS packet with the default message", () => {
    expect(make(7, StatusCode.NoSuchFile)).toEqual({ _tag: "Status", id: 7, code: 2, message: "No such file", language: "en" })
    expect(make(7, StatusCode.Failure, "disk on fire").message).toBe("disk on fire")
  })

  it("isEof accepts codes, packets and reasons", () => {
    expect(isEof(1)).toBe(true)
    expect(isEof(make(1, 4))).toBe(false)
    expect(isEof(new SftpStatus({ code: 1, message: "End of file" }))).toBe(true)
  })

  it("maps errno names like OpenSSH's errno_to_portable", () => {
    expect(fromErrno("ENOENT")).toBe(StatusCode.NoSuchFile)
    expect(fromErrno("ENOTDIR")).toBe(StatusCode.NoSuchFile)
    expect(fromErrno("ELOOP")).toBe(StatusCode.NoSuchFile)
    expect(fromErrno("EACCES")).toBe(StatusCode.PermissionDenied)
    expect(fromErrno("EPERM")).toBe(StatusCode.PermissionDenied)
    expect(fromErrno("EINVAL")).toBe(StatusCode.BadMessage)
    expect(fromErrno("ENOSYS")).toBe(StatusCode.OpUnsupported)
    expect(fromErrno("EEXIST")).toBe(StatusCode.Failure)
    expect(fromErrno("constructor")).toBe(StatusCode.Failure)
    expect(fromErrno(undefined)).toBe(StatusCode.Failure)
  })
})
