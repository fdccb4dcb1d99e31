/**
 * Numeric IP addresses as text and as bytes, for the protocols that carry
 * them in binary (SOCKS4, SOCKS5): dotted-quad IPv4, and IPv6 in its
 * canonical text form (RFC 5952: lower case, longest run of zero groups
 * shortened to "::"). Pure, no Node APIs.
 *
 * @internal
 */

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/
const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/

/**
 * The 4 bytes of a dotted-quad IPv4 address; `undefined` for anything else
 * (leading zeros are refused: "010" is octal to some parsers).
 *
 * @example
 * ```ts
 * parseIpv4("192.0.2.7") // Uint8Array [192, 0, 2, 7]
 * parseIpv4("256.0.0.1") // undefined
 * ```
 * @category parsing
 */
export const parseIpv4 = (text: string): Uint8Array | undefined => {
  const match = IPV4.exec(text)
  if (match === null) return undefined
  const bytes = new Uint8Array(4)
  for (let i = 0; i < 4; i++) {
    const part = match[i + 1]!
    if (part.length > 1 && part.startsWith("0")) return undefined
    const n = Number(part)
    if (n > 255) return undefined
    bytes[i] = n
  }
  return bytes
}

/**
 * The 16 bytes of an IPv6 address in any RFC 4291 text form ("::",
 * "2001:db8::1", "::ffff:192.0.2.1"); `undefined` for anything else,
 * including a zone ("fe80::1%eth0") or brackets.
 *
 * @example
 * ```ts
 * parseIpv6("::1") // 15 zero bytes then 1
 * parseIpv6("1::2::3") // undefined
 * ```
 * @category parsing
 */
export const parseIpv6 = (text: string): Uint8Array | undefined => {
  const halves = text.split("::")
  if (halves.length > 2) return undefined
  const head = groupsOf(halves[0]!, halves.length === 1 ? "last" : "inner")
  const tail = halves.length === 2 ? groupsOf(halves[1]!, "last") : []
  if (head === undefined || tail === undefined) return undefined
  const missing = 8 - head.length - tail.length
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined
  const groups = [...head, ...Array<number>(halves.length === 2 ? missing : 0).fill(0), ...tail]
  const bytes = new Uint8Array(16)
  groups.forEach((g, i) => {
    bytes[i * 2] = g >> 8
    bytes[i * 2 + 1] = g & 0xff
  })
  return bytes
}

/** The 16-bit groups of one side of "::"; the last side may end in a dotted quad. */
const groupsOf = (text: string, position: "inner" | "last"): Array<number> | undefined => {
  if (text === "") return []
  const parts = text.split(":")
  const groups: Array<number> = []
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!
    if (position === "last" && i === parts.length - 1 && part.includes(".")) {
      const v4 = parseIpv4(part)
      if (v4 === undefined) return undefined
      groups.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!)
    } else if (HEX_GROUP.test(part)) {
      groups.push(parseInt(part, 16))
    } else {
      return undefined
    }
  }
  return groups
}

/**
 * Dotted-quad text of 4 bytes.
 *
 * @example
 * ```ts
 * formatIpv4(Uint8Array.of(127, 0, 0, 1)) // "127.0.0.1"
 * ```
 * @category formatting
 */
export const formatIpv4 = (bytes: Uint8Array): string => `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`

/**
 * RFC 5952 text of 16 bytes: lower-case hex without leading zeros, the
 * longest run of two or more zero groups (the first, on a tie) as "::".
 *
 * @example
 * ```ts
 * formatIpv6(parseIpv6("2001:0DB8:0:0:0:0:0:1")!) // "2001:db8::1"
 * ```
 * @category formatting
 */
export const formatIpv6 = (bytes: Uint8Array): string => {
  const groups = Array.from({ length: 8 }, (_, i) => (bytes[i * 2]! << 8) | bytes[i * 2 + 1]!)
  let bestStart = -1
  let bestLength = 1
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++
      continue
    }
    let j = i
    while (j < 8 && groups[j] === 0) j++
    if (j - i > bestLength) {
      bestStart = i
      bestLength = j - i
    }
    i = j
  }
  const hex = (from: number, to: number) => groups.slice(from, to).map((g) => g.toString(16)).join(":")
  return bestStart < 0 ? hex(0, 8) : `${hex(0, bestStart)}::${hex(bestStart + bestLength, 8)}`
}
