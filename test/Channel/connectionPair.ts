/**
 * Two of our connections joined over loopback TCP, with no authentication
 * protocol in between: for tests of the connection layer itself.
 */
import * as Effect from "effect/Effect"
import * as net from "node:net"
import * as PrivateKey from "../../src/Auth/PrivateKey.ts"
import * as Connection from "../../src/Channel/Connection.ts"
import { acceptedTcp, fromNetSocket } from "../../src/internal/netSocket.ts"
import { hostKeySigner } from "../../src/Server.ts"
import * as Algorithms from "../../src/Transport/Algorithms.ts"
import * as Transport from "../../src/Transport/Transport.ts"

const hostKey = PrivateKey.generate("ssh-ed25519")

/**
 * A client and a server connection; both close with the scope.
 *
 * @example
 * ```ts
 * const { client, server } = yield* connectionPair({}, { onChannelOpen })
 * ```
 */
export const connectionPair = (clientOptions: Connection.ConnectionOptions, serverOptions: Connection.ConnectionOptions) =>
  Effect.gen(function*() {
    const algorithms = Algorithms.resolve({})
    const listener = net.createServer({ pauseOnConnect: true, noDelay: true })
    yield* Effect.addFinalizer(() => Effect.sync(() => listener.close()))
    const port = yield* Effect.callback<number>((resume) => {
      listener.listen(0, "127.0.0.1", () => resume(Effect.succeed((listener.address() as net.AddressInfo).port)))
    })
    const accepted = new Promise<net.Socket>((resolve) => listener.once("connection", resolve))
    const clientSocket = fromNetSocket(() => net.connect({ host: "127.0.0.1", port, noDelay: true }))
    const [clientTransport, serverTransport] = yield* Effect.all([
      Transport.make(clientSocket, { role: "client", algorithms, verifyHostKey: () => Effect.void }),
      Effect.flatMap(Effect.promise(() => accepted), (conn) =>
        Transport.make(acceptedTcp(conn), { role: "server", algorithms, hostKeys: [hostKeySigner(hostKey)] }))
    ], { concurrency: 2 })
    const client = yield* Connection.make(clientTransport, clientOptions)
    const server = yield* Connection.make(serverTransport, serverOptions)
    return { client, server }
  })
