/**
 * The library's metrics, through Effect's `Metric` (exported by whatever
 * metrics backend the application installs, `effect/observability` included).
 * Spans are made where the work is, with `Effect.withSpan`; their names and
 * attributes are listed in the README.
 *
 * @internal
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as LogLevel from "effect/LogLevel"
import * as Metric from "effect/Metric"
import * as References from "effect/References"
import * as MessageNumber from "../Wire/MessageNumber.ts"

/** Bytes received from peers (counted when a connection ends). */
export const bytesIn = Metric.counter("ssh_bytes_in", { description: "bytes received from SSH peers" })

/** Bytes sent to peers (counted when a connection ends). */
export const bytesOut = Metric.counter("ssh_bytes_out", { description: "bytes sent to SSH peers" })

/** Channels open now, over every connection. */
export const openChannels = Metric.gauge("ssh_open_channels", { description: "SSH channels open now" })

/** Channels opened since start, by either side. */
export const channelsOpened = Metric.counter("ssh_channels_opened", { description: "SSH channels opened" })

/** How long the first key exchange of a connection took (from the TCP connection). */
export const kexDuration = Metric.timer("ssh_kex_duration", { description: "duration of an SSH connection's first key exchange" })

/** Authentications that failed (client: a connect that ended in AuthFailed; server: a failed attempt). */
export const authFailures = Metric.counter("ssh_auth_failures", { description: "failed SSH authentications" })

/** Connections a server accepted (after admission control). */
export const serverConnections = Metric.counter("ssh_server_connections", { description: "connections accepted by the SSH server" })

const messageNames: ReadonlyMap<number, string> = (() => {
  const names = new Map<number, string>()
  for (const [name, value] of Object.entries(MessageNumber)) {
    // the kex-specific numbers 30..49 are reused by each method: the first name stands for them
    if (typeof value === "number" && !name.startsWith("KEX_FIRST") && !name.startsWith("KEX_LAST") && !names.has(value)) {
      names.set(value, `SSH_MSG_${name}`)
    }
  }
  return names
})()

/**
 * A message number as `ssh -vv` names it (`SSH_MSG_CHANNEL_DATA (94)`).
 *
 * @example
 * ```ts
 * messageName(94) // "SSH_MSG_CHANNEL_DATA (94)"
 * ```
 */
export const messageName = (type: number): string => `${messageNames.get(type) ?? "unknown message"} (${type})`

/**
 * What the transport calls with every packet it seals or opens when Trace
 * logs are on (`-vv`), or `undefined` when they are off: the check is made
 * once per connection, so a burst of channel data costs nothing more with
 * tracing off. The log lines go through the loggers of the fiber that made
 * the transport.
 *
 * @example
 * ```ts
 * const tracePacket = yield* Telemetry.packetTracer
 * tracePacket?.("received", payload[0], payload.length)
 * ```
 */
export const packetTracer: Effect.Effect<
  ((direction: "sent" | "received", type: number, length: number) => void) | undefined
> = Effect.map(Effect.context<never>(), (context) => {
  if (!LogLevel.isLessThanOrEqualTo(Context.get(context, References.MinimumLogLevel), "Trace")) return undefined
  const log = Effect.runSyncWith(context)
  return (direction, type, length) => log(Effect.logTrace(`${direction} packet ${messageName(type)}, ${length} bytes`))
})
