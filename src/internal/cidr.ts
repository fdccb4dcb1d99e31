/**
 * CIDR address lists as OpenSSH writes them (`10.0.0.0/8,::1/128,192.0.2.7`)
 * for the `source-address` certificate option and `from=` restrictions:
 * IPv4 and IPv6 addresses, an optional prefix length, and IPv4-mapped IPv6
 * peers (`::ffff:10.1.2.3`, as Node reports IPv4 peers on a dual-stack
 * socket) matched as the IPv4 address they carry.
 *
 * @internal
 */

import { parseIpv4, parseIpv6 } from "./ipAddress.ts"

const MAPPED_PREFIX = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]

/**
 * An address as bytes (4 for IPv4, 16 for IPv6; an IPv4-mapped IPv6 address
 * gives its 4 IPv4 bytes), or `undefined` if it is not an address.
 *
 * @example
 * ```ts
 * parseAddress("::ffff:127.0.0.1") // Uint8Array [127, 0, 0, 1]
 * ```
 */
export const parseAddress = (text: string): Uint8Array | undefined => {
  const v4 = parseIpv4(text)
  if (v4 !== undefined) return v4
  const v6 = text.includes(":") ? parseIpv6(text.replace(/%.*$/, "")) : undefined
  if (v6 !== undefined && MAPPED_PREFIX.every((b, i) => v6[i] === b)) return v6.slice(12)
  return v6
}

const inPrefix = (address: Uint8Array, network: Uint8Array, bits: number): boolean => {
  if (address.length !== network.length) return false
  for (let i = 0; i < bits; i++) {
    const mask = 0x80 >> (i % 8)
    if ((address[i >> 3]! & mask) !== (network[i >> 3]! & mask)) return false
  }
  return true
}

/**
 * Whether `address` lies in one of the comma-separated CIDR entries of
 * `list`; `undefined` when the list itself is malformed (a caller must then
 * refuse, as sshd does).
 *
 * @example
 * ```ts
 * matchCidrList("10.0.0.0/8,::1/128", "10.9.8.7") // true
 * matchCidrList("10.0.0.0/8", "192.0.2.1")        // false
 * matchCidrList("10.0.0.0/33", "10.0.0.1")        // undefined
 * ```
 */
export const matchCidrList = (list: string, address: string): boolean | undefined => {
  const peer = parseAddress(address)
  let matched = false
  for (const entry of list.split(",")) {
    const [host = "", prefix, ...extra] = entry.trim().split("/")
    const network = parseAddress(host)
    if (network === undefined || extra.length > 0) return undefined
    const maxBits = network.length * 8
    const bits = prefix === undefined ? maxBits : /^\d{1,3}$/.test(prefix) ? Number(prefix) : -1
    if (bits < 0 || bits > maxBits) return undefined
    if (peer !== undefined && inPrefix(peer, network, bits)) matched = true
  }
  return matched
}
