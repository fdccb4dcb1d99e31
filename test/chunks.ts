/**
 * Cutting a byte stream into chunks at arbitrary points, for property tests of incremental parsers.
 */

/** Splits `bytes` at the given cut points (each taken modulo length + 1, sorted, deduplicated): views, no copy. */
export const split = (bytes: Uint8Array, cuts: ReadonlyArray<number>): Array<Uint8Array> => {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b)
  const parts: Array<Uint8Array> = []
  let from = 0
  for (const p of [...points, bytes.length]) {
    parts.push(bytes.subarray(from, p))
    from = p
  }
  return parts
}
