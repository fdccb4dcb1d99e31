import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as fs from "node:fs"
import * as SshServer from "../src/Server.ts"
import * as ProcessSession from "../src/Server/ProcessSession.ts"
import * as PrivateKey from "../src/Auth/PrivateKey.ts"
import * as PublicKey from "../src/Auth/PublicKey.ts"
import * as NodeSsh from "../src/NodeSsh.ts"
const hostKey = PrivateKey.parse(fs.readFileSync("/tmp/pxb/hk", "utf8"))
const userKey = PrivateKey.parse(fs.readFileSync("/tmp/pxb/k", "utf8"))
const program = Effect.gen(function*() {
  const server = yield* SshServer.serve({
    port: Number(process.argv[2] ?? 2299), hostKeys: [hostKey],
    auth: { publicKey: ({ key }) => Effect.succeed(PublicKey.equals(key, userKey.publicKey)) },
    session: ProcessSession.handlers({ shell: "/bin/sh" }),
    maxStartups: "1000", perSourceMaxStartups: "none", perSourcePenalties: false
  })
  console.log("listening", server.address.port)
  return yield* Effect.never
}).pipe(Effect.scoped, Effect.provide(NodeSsh.layer))
Effect.runPromise(program)
if (process.env["EXIT_AFTER"]) setTimeout(() => process.exit(0), Number(process.env["EXIT_AFTER"]))
