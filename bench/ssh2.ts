/**
 * ssh2 (the Node incumbent) under test: `Client#connect` with the key text and a pinned host key, `client.exec`,
 * bytes counted in the stream's `data` events.
 *
 * ssh2 ships no types and is CommonJS, so it is loaded with `createRequire` behind the small interface used here.
 */
import { createRequire } from "node:module"
import { type BenchTarget, type Contender, checkTransfer, cpuSeconds, downloadCommand } from "./target.ts"

interface Ssh2Stream {
  on(event: "data", listener: (data: Buffer) => void): this
  on(event: "close", listener: (code: number | null) => void): this
  on(event: "exit", listener: (code: number | null, signal?: string) => void): this
  readonly stderr: { resume(): void }
}

interface Ssh2Client {
  on(event: "ready" | "close", listener: () => void): this
  on(event: "error", listener: (error: Error) => void): this
  connect(config: Readonly<Record<string, unknown>>): this
  exec(command: string, callback: (error: Error | null | undefined, stream: Ssh2Stream) => void): boolean
  end(): this
  setNoDelay(noDelay: boolean): this
}

const require = createRequire(import.meta.url)
const { Client } = require("ssh2") as { readonly Client: new () => Ssh2Client }

/**
 * Whether ssh2's optional native crypto binding loaded. It is compiled at install time for the Node that ran
 * `npm install`; under another Node ABI ssh2 silently falls back to `node:crypto` (and pure-JS Poly1305).
 *
 * @example
 * ```ts
 * console.log(`ssh2 native binding: ${ssh2BindingAvailable()}`)
 * ```
 */
export const ssh2BindingAvailable = (): boolean =>
  (require("ssh2/lib/protocol/crypto.js") as { readonly bindingAvailable: boolean }).bindingAvailable

const connectConfig = (target: BenchTarget) => ({
  host: target.sshd.host,
  port: target.sshd.port,
  username: target.sshd.user,
  privateKey: target.clientKeyText,
  hostVerifier: (key: Buffer) => key.equals(target.hostKeyBlob),
  algorithms: {
    kex: [target.config.kex],
    serverHostKey: [target.config.hostKeyAlgorithm],
    cipher: [target.config.cipher],
    hmac: [target.config.mac],
    compress: ["none"]
  },
  readyTimeout: 20_000
})

/** How ssh2 is set up. */
export interface Ssh2Options {
  /**
   * Call `client.setNoDelay(true)` right after `connect()` (default true). ssh2 leaves Nagle's algorithm on,
   * which costs a delayed-ACK wait (~40 ms on Linux) on several round trips of the handshake; effect-ssh
   * turns it off, so the fair comparison turns it off for ssh2 too.
   */
  readonly noDelay?: boolean | undefined
}

/** Connects; calls `ready` once authenticated; settles after the socket closed, with `ready`'s result. */
const withClient = <A>(target: BenchTarget, options: Ssh2Options, ready: (client: Ssh2Client, done: (result: A) => void, fail: (error: Error) => void) => void): Promise<A> =>
  new Promise((resolve, reject) => {
    let outcome: { readonly ok: true; readonly value: A } | { readonly ok: false; readonly error: Error } | undefined
    const client = new Client()
    const finish = (result: typeof outcome) => {
      outcome ??= result
      client.end()
    }
    client.on("ready", () => ready(client, (value) => finish({ ok: true, value }), (error) => finish({ ok: false, error })))
    client.on("error", (error) => finish({ ok: false, error }))
    client.on("close", () => {
      if (outcome === undefined) reject(new Error("ssh2: connection closed before the measurement finished"))
      else if (outcome.ok) resolve(outcome.value)
      else reject(outcome.error)
    })
    client.connect(connectConfig(target))
    if (options.noDelay ?? true) client.setNoDelay(true)
  })

const download = (target: BenchTarget, options: Ssh2Options) => (bytes: number) =>
  withClient<{ seconds: number; cpuSeconds: number }>(target, options, (client, done, fail) => {
    const startedCpu = cpuSeconds()
    const started = performance.now()
    client.exec(downloadCommand(bytes), (error, stream) => {
      if (error) return fail(error)
      let received = 0
      let exitCode: number | null = null
      stream.stderr.resume()
      stream.on("data", (data) => {
        received += data.byteLength
      })
      stream.on("exit", (code) => {
        exitCode = code
      })
      stream.on("close", () => {
        const seconds = (performance.now() - started) / 1000
        const cpu = cpuSeconds() - startedCpu
        try {
          checkTransfer("ssh2", bytes, received, exitCode)
          done({ seconds, cpuSeconds: cpu })
        } catch (checkError) {
          fail(checkError as Error)
        }
      })
    })
  })

const connect = (target: BenchTarget, options: Ssh2Options) => () => {
  const started = performance.now()
  return withClient<number>(target, options, (_client, done) => done(performance.now() - started))
}

/**
 * The ssh2 contender, named "ssh2", or "ssh2 (Nagle on)" with `noDelay: false`.
 *
 * @example
 * ```ts
 * const ms = await ssh2(target).connect?.()
 * ```
 */
export const ssh2 = (target: BenchTarget, options: Ssh2Options = {}): Contender => ({
  name: options.noDelay ?? true ? "ssh2" : "ssh2 (Nagle on)",
  download: download(target, options),
  connect: connect(target, options)
})
