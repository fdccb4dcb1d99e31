import * as ChildProcess from "node:child_process"
import { startSshd } from "../test/interop/sshd.ts"
const sshd = await startSshd({ hostKeyTypes: ["ed25519"] })
const run = (args: string[], sig: NodeJS.Signals) => new Promise<string>((resolve) => {
  const child = ChildProcess.spawn(args[0]!, args.slice(1), { stdio: ["ignore", "pipe", "pipe"] })
  let err = ""
  child.stderr.on("data", (d) => err += d)
  setTimeout(() => child.kill(sig), 1500)
  child.on("exit", (code, signal) => resolve(`${args[0]} ${sig}: code ${code} signal ${signal} stderr ${JSON.stringify(err)}`))
})
const common = ["-p", String(sshd.port), "-i", sshd.clientKeys.ed25519, "-o", `UserKnownHostsFile=${sshd.knownHostsFile}`, "-o", "StrictHostKeyChecking=yes", "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", `${sshd.user}@127.0.0.1`]
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  console.log(await run(["ssh", "-N", ...common], sig))
  console.log(await run(["ssh", "-W", "127.0.0.1:" + sshd.port, ...common], sig))
  console.log(await run(["ssh", ...common, "sleep 10"], sig))
}
await sshd.stop()
