import * as Effect from "effect/Effect"
import * as SshClient from "../src/Client.ts"
import * as Auth from "../src/Auth/ClientAuth.ts"
import * as HostKeys from "../src/Auth/HostKeys.ts"
import * as PrivateKey from "../src/Auth/PrivateKey.ts"
import * as NodeSsh from "../src/NodeSsh.ts"
import * as fs from "node:fs"
const port = Number(process.argv[2] ?? 2299)
const prog = Effect.gen(function*() {
  const key = PrivateKey.parse(fs.readFileSync("/tmp/pxb/k", "utf8"))
  const t0 = performance.now()
  const ssh = yield* SshClient.connect({ host: "127.0.0.1", port, username: process.env.USER ?? "root", auth: [Auth.privateKey(key)], hostKeys: HostKeys.fixed(fs.readFileSync("/tmp/pxb/hk.pub", "utf8").trim()), keepaliveInterval: 0 })
  const t1 = performance.now()
  const times: number[] = []
  for (let i = 0; i < 10; i++) { const s = performance.now(); yield* Effect.scoped(ssh.run("true")); times.push(Math.round(performance.now() - s)) }
  console.log("connect", Math.round(t1 - t0), "runs", times.join(" "))
}).pipe(Effect.scoped, Effect.provide(NodeSsh.layer))
Effect.runPromise(prog).catch((e) => { console.error(e); process.exit(1) })
