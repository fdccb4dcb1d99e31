/**
 * The library's metrics, through Effect's `Metric` (exported by whatever
 * metrics backend the application installs, `effect/observability` included).
 * Spans are made where the work is, with `Effect.withSpan`; their names and
 * attributes are listed in the README.
 *
 * @internal
 */
import * as Metric from "effect/Metric"

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
