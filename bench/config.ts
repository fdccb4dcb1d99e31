/**
 * Benchmark settings from the environment. Every implementation is pinned to the same algorithms, so the
 * ratios compare implementations, not algorithm choices.
 *
 *     BENCH_BYTES          bytes per exec transfer (default 1 GiB; suffixes K, M, G are binary: "256M")
 *     BENCH_RUNS           transfers per implementation (default 3; the median is reported)
 *     BENCH_CONNECT_RUNS   connections per implementation for the latency figure (default 20)
 *     BENCH_CIPHER         default aes128-gcm@openssh.com
 *     BENCH_MAC            used only with non-AEAD ciphers (default hmac-sha2-256-etm@openssh.com)
 *     BENCH_KEX            default curve25519-sha256 (ssh2 has no mlkem768x25519-sha256)
 *
 * The host key is ssh-ed25519 and the client authenticates with an ed25519 key.
 */

/** What one `npm run bench` measures and with which algorithms. */
export interface BenchConfig {
  readonly bytes: number
  readonly runs: number
  readonly connectRuns: number
  readonly cipher: string
  readonly mac: string
  readonly kex: string
  readonly hostKeyAlgorithm: "ssh-ed25519"
}

const UNITS: Readonly<Record<string, number>> = { "": 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }

/**
 * Parses a byte count such as `1073741824`, `256M` or `1G` (binary units).
 *
 * @example
 * ```ts
 * parseBytes("256M") // 268435456
 * ```
 */
export const parseBytes = (text: string): number => {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([KMG]?)(?:i?B)?\s*$/i.exec(text)
  const bytes = match === null ? Number.NaN : Math.round(Number(match[1]) * UNITS[match[2]!.toUpperCase()]!)
  if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new Error(`not a byte count: ${JSON.stringify(text)}`)
  return bytes
}

const positiveInteger = (name: string, text: string | undefined, fallback: number): number => {
  if (text === undefined || text === "") return fallback
  const value = Number(text)
  if (!Number.isSafeInteger(value) || value <= 0) throw new Error(`${name} must be a positive integer, got ${JSON.stringify(text)}`)
  return value
}

const nonEmpty = (text: string | undefined, fallback: string): string => text === undefined || text === "" ? fallback : text

/**
 * Reads the settings from `env` (normally `process.env`), with the defaults above.
 *
 * @example
 * ```ts
 * const config = fromEnv({ BENCH_BYTES: "64M", BENCH_RUNS: "1" })
 * // config.bytes === 67108864, config.cipher === "aes128-gcm@openssh.com"
 * ```
 */
export const fromEnv = (env: Readonly<Record<string, string | undefined>>): BenchConfig => ({
  bytes: env.BENCH_BYTES === undefined || env.BENCH_BYTES === "" ? 1024 ** 3 : parseBytes(env.BENCH_BYTES),
  runs: positiveInteger("BENCH_RUNS", env.BENCH_RUNS, 3),
  connectRuns: positiveInteger("BENCH_CONNECT_RUNS", env.BENCH_CONNECT_RUNS, 20),
  cipher: nonEmpty(env.BENCH_CIPHER, "aes128-gcm@openssh.com"),
  mac: nonEmpty(env.BENCH_MAC, "hmac-sha2-256-etm@openssh.com"),
  kex: nonEmpty(env.BENCH_KEX, "curve25519-sha256"),
  hostKeyAlgorithm: "ssh-ed25519"
})

/**
 * A byte count for humans: `1 GiB`, `256 MiB`, `1.5 KiB`.
 *
 * @example
 * ```ts
 * formatBytes(1073741824) // "1 GiB"
 * ```
 */
export const formatBytes = (bytes: number): string => {
  const [unit, size] = bytes >= 1024 ** 3 ? ["GiB", 1024 ** 3] : bytes >= 1024 ** 2 ? ["MiB", 1024 ** 2] : bytes >= 1024 ? ["KiB", 1024] : ["B", 1]
  return `${Number((bytes / size).toFixed(2))} ${unit}`
}
