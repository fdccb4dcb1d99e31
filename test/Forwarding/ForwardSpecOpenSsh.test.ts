/**
 * ForwardSpec against OpenSSH's own parser: `ssh -G` prints the forwardings
 * it parsed from -L/-R/-D without connecting anywhere.
 */
import { spawnSync } from "node:child_process"
import { expect, it } from "vitest"
import * as Spec from "../../src/Forwarding/ForwardSpec.ts"
import { describeInterop, opensshPaths } from "../interop/sshd.ts"

type Flag = "-L" | "-R" | "-D"

/** What `ssh -G` prints for a forwarding: `keyword listen [connect]`, or undefined when ssh refuses it. */
const opensshParse = (flag: Flag, spec: string): string | undefined => {
  const ssh = opensshPaths().ssh!
  const result = spawnSync(ssh, ["-F", "/dev/null", "-G", flag, spec, "example.invalid"], { encoding: "utf8" })
  if (result.status !== 0) return undefined
  const keyword = flag === "-L" ? "localforward" : flag === "-R" ? "remoteforward" : "dynamicforward"
  const lines = result.stdout.split("\n").filter((line) => line.startsWith(`${keyword} `))
  expect(lines.length).toBe(1)
  return lines[0]
}

/** Our parse of a forwarding, printed as OpenSSH's dump_cfg_forwards prints its own. */
const ours = (flag: Flag, spec: string): string => {
  const endpoint = (e: Spec.Listen | Spec.Target): string =>
    Spec.isUnixSocket(e) ? e.path : e.host === undefined ? `${e.port}` : `[${e.host}]:${e.port}`
  switch (flag) {
    case "-L": {
      const f = Spec.parseLocalForward(spec)
      return `localforward ${endpoint(f.listen)} ${endpoint(f.connect)}`
    }
    case "-R": {
      const f = Spec.parseRemoteForward(spec)
      // OpenSSH stores a remote SOCKS forwarding as a destination "socks", port 0
      return `remoteforward ${endpoint(f.listen)} ${f.connect === undefined ? "[socks]:0" : endpoint(f.connect)}`
    }
    case "-D":
      return `dynamicforward ${endpoint(Spec.parseDynamicForward(spec).listen)}`
  }
}

const accepted: ReadonlyArray<readonly [Flag, string]> = [
  ["-L", "8080:localhost:80"],
  ["-L", "127.0.0.1:8080:example.com:80"],
  ["-L", "[::1]:8080:[fe80::1]:80"],
  ["-L", "8080:[2001:db8::1]:443"],
  ["-L", "*:8080:db:5432"],
  ["-L", ":8080:db:5432"],
  ["-L", "8080:/run/app.sock"],
  ["-L", "localhost:8080:/run/app.sock"],
  ["-L", "/tmp/local.sock:db:5432"],
  ["-L", "/tmp/a.sock:/tmp/b.sock"],
  ["-L", "[/tmp/with:colon]:/b"],
  ["-L", "65535:h:65535"],
  ["-R", "0:localhost:22"],
  ["-R", "8080:localhost:80"],
  ["-R", "[::]:0:[::1]:22"],
  ["-R", "/run/remote.sock:/tmp/local.sock"],
  ["-R", "2222:/tmp/local.sock"],
  ["-R", "/run/remote.sock:h:80"],
  ["-R", "1080"],
  ["-R", "*:1080"],
  ["-D", "1080"],
  ["-D", "localhost:1080"],
  ["-D", "[::1]:1080"],
  ["-D", ":1080"]
]

const refusedByBoth: ReadonlyArray<readonly [Flag, string]> = [
  ["-L", "8080"],
  ["-L", "8080:host"],
  ["-L", "65536:host:80"],
  ["-L", "8080:host:65536"],
  ["-L", "0:host:80"],
  ["-L", "8080:host:0"],
  ["-L", "[::1:8080:host:80"],
  ["-L", "8080:[::1]x:80"],
  ["-L", "a:1:b:2:c"],
  ["-L", "/tmp/s:8080"],
  ["-R", "70000:h:1"],
  ["-R", "1:h:0"],
  ["-D", "0"],
  ["-D", "65536"],
  ["-D", "1080:h:80"]
]

/** Where we are deliberately stricter than OpenSSH (see the module's documentation). */
const refusedByUsOnly: ReadonlyArray<readonly [Flag, string]> = [
  ["-L", "8080:host:80:"], // a trailing ":" OpenSSH ignores
  ["-L", "8080::80"], // an empty destination host
  ["-L", "8080:a/b:80"], // a "/" in a host name
  ["-L", "http:h:80"] // a service name for a port
]

describeInterop("ForwardSpec agrees with OpenSSH's parser (ssh -G)", () => {
  for (const [flag, spec] of accepted) {
    it(`${flag} ${spec}`, () => {
      expect(ours(flag, spec)).toBe(opensshParse(flag, spec))
    })
  }

  it("both refuse the same malformed specifications", () => {
    for (const [flag, spec] of refusedByBoth) {
      expect({ flag, spec, openssh: opensshParse(flag, spec) }).toEqual({ flag, spec, openssh: undefined })
      expect(() => ours(flag, spec)).toThrow(/^bad forwarding specification/)
    }
  })

  it("we refuse a few that OpenSSH lets through", () => {
    for (const [flag, spec] of refusedByUsOnly) {
      expect(opensshParse(flag, spec)).toBeDefined()
      expect(() => ours(flag, spec)).toThrow(/^bad forwarding specification/)
    }
  })
}, { requires: ["ssh"] })
