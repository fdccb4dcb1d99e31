import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import {
  type ExecArgs,
  parseBytes,
  parseExec,
  parseOption,
  parseSeconds,
  splitUserHost,
  supportedOptions,
  UsageError
} from "../../src/cli/Args.ts"

const ok = (argv: ReadonlyArray<string>): ExecArgs => {
  const result = parseExec(argv)
  if (result instanceof UsageError) throw new Error(`unexpected usage error: ${result.message}`)
  return result
}

const usage = (argv: ReadonlyArray<string>): string => {
  const result = parseExec(argv)
  expect(result).toBeInstanceOf(UsageError)
  return (result as UsageError).message
}

const defaults = {
  _tag: "Exec",
  port: undefined,
  user: undefined,
  identities: [],
  options: {},
  knownHosts: undefined,
  fingerprint: undefined,
  noStdin: false,
  tty: false,
  noCommand: false,
  x11: false,
  forwarding: { local: [], remote: [], dynamic: [], stdio: undefined, exitOnForwardFailure: false, gatewayPorts: false }
}

describe("parseExec", () => {
  it("host and command after --", () => {
    expect(ok(["example.com", "--", "uname", "-a"])).toEqual({ ...defaults, host: "example.com", command: "uname -a" })
  })

  it("OpenSSH style: everything after the host is the command, flags included", () => {
    expect(ok(["h", "ls", "-la", "/tmp"]).command).toBe("ls -la /tmp")
    expect(ok(["h", "-p", "22"]).command).toBe("-p 22")
    expect(ok(["h", "ls", "--", "x"]).command).toBe("ls -- x")
  })

  it("a -- after the host starts the command, so the command may begin with --", () => {
    expect(ok(["h", "--", "--version"]).command).toBe("--version")
  })

  it("all flags", () => {
    expect(
      ok([
        "-n",
        "-t",
        "-p",
        "2222",
        "-l",
        "deploy",
        "-i",
        "k1",
        "-i",
        "k2",
        "--known-hosts",
        "/tmp/kh",
        "-o",
        "Ciphers=+aes128-ctr",
        "host",
        "--",
        "true"
      ])
    ).toEqual({
      ...defaults,
      host: "host",
      port: 2222,
      user: "deploy",
      identities: ["k1", "k2"],
      options: { ciphers: "+aes128-ctr" },
      knownHosts: "/tmp/kh",
      command: "true",
      noStdin: true,
      tty: true,
      requestTty: "yes"
    })
  })

  it("-nt and -tn combine the two flags", () => {
    for (const flag of ["-nt", "-tn"]) expect(ok([flag, "h", "x"])).toMatchObject({ noStdin: true, tty: true })
  })

  it("--host-key-fingerprint", () => {
    expect(ok(["--host-key-fingerprint", "SHA256:abc", "h", "x"]).fingerprint).toBe("SHA256:abc")
  })

  it("user@host, with the last @ separating", () => {
    expect(ok(["me@h", "x"])).toMatchObject({ user: "me", host: "h" })
    expect(ok(["a@b@h", "x"])).toMatchObject({ user: "a@b", host: "h" })
  })

  it("user precedence: -l, then user@host, then -o User", () => {
    expect(ok(["-l", "flag", "-o", "User=opt", "at@h", "x"]).user).toBe("flag")
    expect(ok(["-o", "User=opt", "at@h", "x"]).user).toBe("at")
    expect(ok(["-o", "User=opt", "h", "x"]).user).toBe("opt")
  })

  it("-o options: keywords case-insensitive, = or space, first value wins, Port/IdentityFile/UserKnownHostsFile applied", () => {
    const args = ok([
      "-o",
      "KexAlgorithms=-diffie-hellman-*",
      "-o",
      "kexalgorithms=curve25519-sha256",
      "-o",
      "Port 2022",
      "-o",
      "IdentityFile = /k",
      "-o",
      "UserKnownHostsFile=/kh",
      "-i",
      "/i",
      "h",
      "x"
    ])
    expect(args.options).toEqual({
      kexalgorithms: "-diffie-hellman-*",
      port: "2022",
      identityfile: "/k",
      userknownhostsfile: "/kh"
    })
    expect(args.port).toBe(2022)
    expect(args.identities).toEqual(["/i", "/k"])
    expect(args.knownHosts).toBe("/kh")
  })

  it("-p wins over -o Port, --known-hosts over -o UserKnownHostsFile", () => {
    const args = ok(["-o", "Port=2022", "-p", "22", "-o", "UserKnownHostsFile=/a", "--known-hosts", "/b", "h", "x"])
    expect([args.port, args.knownHosts]).toEqual([22, "/b"])
  })

  it("usage errors", () => {
    expect(usage([])).toBe("missing host")
    // no command: the login shell
    for (const argv of [["h"], ["h", "--"], ["h", ""]]) expect(ok(argv).command).toBeUndefined()
    expect(usage(["--", "h", "x"])).toBe("missing host")
    expect(usage(["-x", "h", "ls"])).toBe("unknown flag -x")
    expect(usage(["-nt", "-Z", "h", "ls"])).toBe("unknown flag -Z")
    expect(usage(["-p"])).toBe("-p needs a value")
    for (const flag of ["-l", "-i", "-o", "--known-hosts", "--host-key-fingerprint"]) {
      expect(usage([flag])).toBe(`${flag} needs a value`)
    }
    expect(usage(["--known-hosts", "/k", "--host-key-fingerprint", "SHA256:x", "h", "x"])).toBe(
      "--known-hosts and --host-key-fingerprint are exclusive"
    )
    expect(usage(["me@", "x"])).toBe("empty host name")
    expect(usage(["@h", "x"])).toBe("empty user name")
    expect(usage(["-o", "Bogus=1", "h", "x"])).toMatch(/^unsupported option "Bogus" \(supported: ciphers, /)
    expect(usage(["-o", "Ciphers", "h", "x"])).toBe('bad -o option "Ciphers" (expected Keyword=value)')
    expect(usage(["-o", "Ciphers=", "h", "x"])).toBe('option "Ciphers" needs a value')
  })

  it("ports must be decimal integers in 1..65535, from -p or -o Port", () => {
    for (const port of ["1", "22", "65535"]) expect(ok(["-p", port, "h", "x"]).port).toBe(Number(port))
    for (const port of ["0", "65536", "-1", "", " ", "22.5", "0x16", "1e3", "22.0", "+22", " 22", "ssh", "Infinity"]) {
      expect(usage(["-p", port, "h", "x"])).toBe(`bad port "${port}"`)
    }
    for (const port of ["0", "0x16", "1e3", "65536"]) expect(usage(["-o", `Port=${port}`, "h", "x"])).toBe(`bad port "${port}"`)
  })

  it("never throws, whatever the arguments", () => {
    const token = fc.oneof(
      fc.constantFrom("-n", "-t", "-nt", "-N", "-X", "-L", "-R", "-D", "-W", "8080:h:80", "-p", "-l", "-i", "-o", "--", "--known-hosts", "--host-key-fingerprint", "@", "u@h"),
      fc.string({ maxLength: 8 })
    )
    fc.assert(fc.property(fc.array(token, { maxLength: 10 }), (argv) => {
      const result = parseExec(argv)
      if (!(result instanceof UsageError)) {
        expect(result.host.length).toBeGreaterThan(0)
        if (result.noCommand) expect(result.command).toBeUndefined()
        else if (result.command !== undefined) expect(result.command.length).toBeGreaterThan(0)
      }
    }))
  })
})

describe("splitUserHost", () => {
  it("splits at the last @", () => {
    expect(splitUserHost("h")).toEqual({ user: undefined, host: "h" })
    expect(splitUserHost("u@h")).toEqual({ user: "u", host: "h" })
    expect(splitUserHost("u@x@h")).toEqual({ user: "u@x", host: "h" })
  })
})

describe("parseOption", () => {
  it("accepts Keyword=value and Keyword value, lower-casing the keyword and trimming the value", () => {
    expect(parseOption("Ciphers=+aes128-ctr")).toEqual(["ciphers", "+aes128-ctr"])
    expect(parseOption("  MACs  =  hmac-sha2-256  ")).toEqual(["macs", "hmac-sha2-256"])
    expect(parseOption("ConnectTimeout 10")).toEqual(["connecttimeout", "10"])
    expect(parseOption("IdentityFile=/path with space/key")).toEqual(["identityfile", "/path with space/key"])
  })

  it("knows every supported keyword in any case", () => {
    for (const keyword of supportedOptions) {
      expect(parseOption(`${keyword.toUpperCase()}=v`)).toEqual([keyword, "v"])
    }
  })
})

describe("parseSeconds and parseBytes", () => {
  it("parse ssh_config durations", () => {
    expect([parseSeconds("30"), parseSeconds("2m"), parseSeconds("1H"), parseSeconds(" 5s ")]).toEqual([30, 120, 3600, 5])
    for (const bad of ["", "1d", "-1", "1.5", "m"]) expect(parseSeconds(bad)).toBeInstanceOf(UsageError)
  })

  it("parse byte sizes with K, M, G", () => {
    expect([parseBytes("100"), parseBytes("1K"), parseBytes("2m"), parseBytes("1G")]).toEqual([100, 1024, 2 * 1024 ** 2, 1024 ** 3])
    for (const bad of ["", "1T", "K", "1.5G"]) expect(parseBytes(bad)).toBeInstanceOf(UsageError)
  })
})
