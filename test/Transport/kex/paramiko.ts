/**
 * The fixtures of paramiko's tests/test_kex.py (paramiko/paramiko), whose
 * expected K and H values serve as known-answer vectors: its FakeTransport's
 * versions and KEXINIT stand-ins, its fake host keys, and the private values
 * its patched randomness produces.
 */
import { fromHex, utf8 } from "../../../src/internal/bytes.ts"
import type { KexInputs } from "../../../src/Transport/kex/Exchange.ts"

/** FakeTransport from the client's or the server's side. */
export const paramikoInputs = (side: "client" | "server", algorithm: string): KexInputs => {
  const local = { version: "SSH-2.0-paramiko_1.0", kexInit: utf8("local-kex-init") }
  const remote = { version: "SSH-2.0-lame", kexInit: utf8("remote-kex-init") }
  const [client, server] = side === "client" ? [local, remote] : [remote, local]
  return {
    clientVersion: client.version,
    serverVersion: server.version,
    clientKexInit: client.kexInit,
    serverKexInit: server.kexInit,
    algorithm
  }
}

/** The host key blob of the fake server replies fed to paramiko's clients. */
export const fakeHostKey = utf8("fake-host-key")
/** The blob of paramiko's FakeKey, the host key of its servers. */
export const fakeServerKey = utf8("fake-key")
/** The signature of the fake replies and of FakeKey. */
export const fakeSignature = utf8("fake-sig")

/** os.urandom patched to 0xcc bytes: paramiko's DH x = 0x4c || 0xcc × 127. */
export const paramikoX = fromHex("4c" + "cc".repeat(127))
