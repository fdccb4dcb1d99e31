/**
 * Strict base64 (RFC 4648 §4) and base64url (§5) for key files, known_hosts
 * and fingerprints, on the web-standard `atob`/`btoa` so the core needs no
 * `Buffer`. Decoding rejects anything that is not canonical base64 by
 * returning `undefined`; the caller turns that into its own reason.
 * @internal
 */

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/
const BASE64URL = /^[A-Za-z0-9_-]*$/

const fromBinaryString = (binary: string): Uint8Array => {
  const out = new Uint8Array(binary.length)
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i)
  return out
}

/**
 * Encodes bytes as padded base64.
 *
 * @example
 * ```ts
 * encode(new Uint8Array([1, 2])) // "AQI="
 * ```
 */
export const encode = (bytes: Uint8Array): string => {
  let binary = ""
  const chunk = 0x8000
  for (let i = 0; i < bytes.length; i += chunk) {
    binary += String.fromCharCode(...bytes.subarray(i, i + chunk))
  }
  return btoa(binary)
}

/**
 * Decodes padded base64; `undefined` when the text is not valid base64.
 *
 * @example
 * ```ts
 * decode("AQI=") // Uint8Array [1, 2]
 * decode("A")    // undefined
 * ```
 */
export const decode = (text: string): Uint8Array | undefined => {
  if (text.length % 4 !== 0 || !BASE64.test(text)) return undefined
  return fromBinaryString(atob(text))
}

/**
 * Encodes bytes as unpadded base64url (JWK members).
 *
 * @example
 * ```ts
 * encodeUrl(new Uint8Array([0xfb, 0xff])) // "-_8"
 * ```
 */
export const encodeUrl = (bytes: Uint8Array): string =>
  encode(bytes).replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_")

/**
 * Decodes unpadded base64url; `undefined` when invalid.
 *
 * @example
 * ```ts
 * decodeUrl("-_8") // Uint8Array [0xfb, 0xff]
 * ```
 */
export const decodeUrl = (text: string): Uint8Array | undefined => {
  if (!BASE64URL.test(text) || text.length % 4 === 1) return undefined
  const padded = text.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (text.length % 4)) % 4)
  return decode(padded)
}
