/**
 * Source address blocks, as sshd's PerSourceNetBlockSize groups peers: an
 * address masked to a prefix length (one for IPv4, one for IPv6), so every
 * address of a block shares one per-source connection count and one
 * penalty. IPv4-mapped IPv6 peers (`::ffff:192.0.2.7`, as Node reports IPv4
 * peers on a dual-stack socket) count as the IPv4 address they carry.
 *
 * Pure: strings and numbers in, plain data out.
 *
 * @example
 * ```ts
 * addressBlock("192.0.2.77", { ipv4: 24, ipv6: 64 }) // { family: 4, label: "192.0.2.0/24" }
 * ```
 * @since 0.1.0
 */
import { parseAddress } from "../internal/cidr.ts"
import { formatIpv4, formatIpv6 } from "../internal/ipAddress.ts"

/** Prefix lengths that group source addresses (sshd's PerSourceNetBlockSize `ipv4:ipv6`). */
export interface NetBlockSize {
  /** 0 to 32. */
  readonly ipv4: number
  /** 0 to 128. */
  readonly ipv6: number
}

/** The block an address falls in; `label` (e.g. `192.0.2.0/24`) identifies it. */
export interface AddressBlock {
  readonly family: 4 | 6
  readonly label: string
}

const masked = (bytes: Uint8Array, bits: number): Uint8Array => {
  const out = new Uint8Array(bytes.length)
  for (let i = 0; i < bytes.length; i++) {
    const keep = Math.max(0, Math.min(8, bits - 8 * i))
    out[i] = bytes[i]! & ((0xff << (8 - keep)) & 0xff)
  }
  return out
}

/**
 * The block of `address` for these prefix lengths; `undefined` when the
 * address is not an IP address (then no per-source limit or penalty applies
 * to it, as in sshd).
 *
 * @example
 * ```ts
 * addressBlock("2001:db8:1:2:3:4:5:6", { ipv4: 32, ipv6: 64 })  // { family: 6, label: "2001:db8:1:2::/64" }
 * addressBlock("::ffff:10.1.2.3", { ipv4: 32, ipv6: 64 })       // { family: 4, label: "10.1.2.3/32" }
 * ```
 */
export const addressBlock = (address: string, size: NetBlockSize): AddressBlock | undefined => {
  const bytes = parseAddress(address)
  if (bytes === undefined) return undefined
  return bytes.length === 4
    ? { family: 4, label: `${formatIpv4(masked(bytes, size.ipv4))}/${size.ipv4}` }
    : { family: 6, label: `${formatIpv6(masked(bytes, size.ipv6))}/${size.ipv6}` }
}
