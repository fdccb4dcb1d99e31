/**
 * Generated ssh_config corpora for comparisons with real `ssh -G`: Include
 * of temp files (relative to `~/.ssh` through `$HOME`, and absolute), Host
 * patterns with wildcards and negation, Match host/originalhost/user/
 * localuser/all/final (and tagged when the installed ssh knows it, exec when
 * asked), tokens, duplicates, quoting and `=` separators, every keyword we
 * resolve.
 */
import fc from "fast-check"
import * as Fs from "node:fs"
import * as Path from "node:path"

/** The names the comparisons resolve. */
export const hostNames = ["web", "web1", "db", "db.example.com", "Web2.Example.COM", "bastion", "10.0.0.7", "x"]

/** How the generated files are written. */
export interface CorpusOptions {
  readonly localUser: string
  /** The installed ssh knows `Tag` / `Match tagged` (OpenSSH ≥ 9.4). */
  readonly hasTag: boolean
  /** Also `Match exec` lines (both resolvers must run them through /bin/sh). */
  readonly exec?: boolean | undefined
  /**
   * `"openssh"`: the algorithm keywords with `+`, `-`, `^` (the resolver must be given ssh's lists);
   * `"absolute"`: only plain lists of names every implementation here supports.
   */
  readonly algorithms: "openssh" | "absolute"
  /** Also lines ssh rejects when they apply to the host (an unset `${VAR}`, an unknown `%` token). */
  readonly invalid?: boolean | undefined
}

export interface Corpus {
  readonly main: ReadonlyArray<string>
  readonly includes: ReadonlyArray<ReadonlyArray<string>>
}

/**
 * The generator of corpora.
 *
 * @example
 * ```ts
 * const { corpus, userName } = generators({ dir, localUser: "me", hasTag: true, algorithms: "openssh" })
 * ```
 */
export const generators = (options: CorpusOptions) => {
  const hostPattern = fc.constantFrom("*", "web*", "db*", "*.example.com", "web?", "!db", "!web1", "bastion", "x", "*.EXAMPLE.com", "10.0.0.*")
  const userName = fc.constantFrom("root", "deploy", "alice", options.localUser)

  const algorithmLines = options.algorithms === "openssh"
    ? [
      fc.constantFrom("+aes128-cbc", "-*-ctr", "^aes256-gcm@openssh.com", "aes128-ctr,aes256-ctr").map((v) => `Ciphers ${v}`),
      fc.constantFrom("+hmac-md5", "-umac*", "hmac-sha2-256").map((v) => `MACs ${v}`),
      fc.constantFrom("+diffie-hellman-group14-sha1", "-sntrup*", "^curve25519-sha256", "curve25519-sha256").map((v) => `KexAlgorithms ${v}`),
      fc.constantFrom("+ssh-rsa", "-ssh-ed25519*", "ssh-ed25519,rsa-sha2-512").map((v) => `HostKeyAlgorithms ${v}`),
      fc.constantFrom("+ssh-rsa", "^ssh-ed25519", "-rsa-sha2-*").map((v) => `PubkeyAcceptedAlgorithms ${v}`)
    ]
    : [
      fc.constantFrom("aes128-ctr,aes256-ctr", "aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com,aes128-gcm@openssh.com").map((v) => `Ciphers ${v}`),
      fc.constantFrom("hmac-sha2-256", "hmac-sha2-512-etm@openssh.com,hmac-sha2-256").map((v) => `MACs ${v}`),
      fc.constantFrom("curve25519-sha256", "ecdh-sha2-nistp256,diffie-hellman-group14-sha256").map((v) => `KexAlgorithms ${v}`),
      fc.constantFrom("ssh-ed25519", "ssh-ed25519,rsa-sha2-512").map((v) => `HostKeyAlgorithms ${v}`),
      fc.constantFrom("ssh-ed25519", "rsa-sha2-512,rsa-sha2-256").map((v) => `PubkeyAcceptedAlgorithms ${v}`)
    ]

  const optionLine: fc.Arbitrary<string> = fc.oneof(
    fc.tuple(fc.constantFrom("HostName", "hostname", "HOSTNAME"), fc.constantFrom("%h.internal", "real-%h", "db.example.com", "Upper.Case", "10.0.0.9", "%%h")).map(([k, v]) => `${k} ${v}`),
    fc.tuple(fc.constantFrom("Port", "port"), fc.integer({ min: 1, max: 65535 })).map(([k, v]) => `${k} ${v}`),
    userName.map((u) => `User ${u}`),
    fc.constantFrom("~/.ssh/id_ed25519", "/keys/%h_%r", "\"/path with space/key\"", "~/.ssh/%n", "${SSHCFG_VAR}/k").map((v) => `IdentityFile ${v}`),
    fc.constantFrom("~/.ssh/cert.pub", "/certs/%h-cert.pub").map((v) => `CertificateFile ${v}`),
    fc.tuple(fc.constantFrom("IdentitiesOnly", "BatchMode", "CheckHostIP", "ExitOnForwardFailure", "GatewayPorts", "Compression"), fc.constantFrom("yes", "no", "YES", "No"))
      .map(([k, v]) => `${k} ${v}`),
    fc.constantFrom("yes", "no", "ask", "accept-new", "off", "true").map((v) => `StrictHostKeyChecking ${v}`),
    fc.constantFrom("yes", "no", "force", "auto").map((v) => `RequestTTY ${v}`),
    fc.constantFrom("none", "SSH_AUTH_SOCK", "~/agent.sock", "/run/%u/agent", "${SSHCFG_VAR}/agent").map((v) => `IdentityAgent ${v}`),
    fc.constantFrom("yes", "no", "/tmp/agent-%r").map((v) => `ForwardAgent ${v}`),
    fc.constantFrom("10", "1m", "none", "1h30m").map((v) => `ConnectTimeout ${v}`),
    fc.constantFrom("0", "15", "2m").map((v) => `ServerAliveInterval ${v}`),
    fc.integer({ min: 0, max: 9 }).map((v) => `ServerAliveCountMax ${v}`),
    fc.integer({ min: 0, max: 9 }).map((v) => `NumberOfPasswordPrompts ${v}`),
    fc.constantFrom("~/.ssh/kh_%h", "/etc/kh1 /etc/kh2", "none", "~/.ssh/known_hosts").map((v) => `UserKnownHostsFile ${v}`),
    fc.constantFrom("/etc/ssh/g1", "/etc/ssh/g1 /etc/ssh/g2", "none").map((v) => `GlobalKnownHostsFile ${v}`),
    fc.constantFrom("Alias1", "alias-%h", "web").map((v) => `HostKeyAlias ${v}`),
    ...algorithmLines,
    fc.constantFrom("8080 localhost:80", "127.0.0.1:9000 db:5432", "[::1]:7000 [::1]:22", "/tmp/l.sock /tmp/r.sock", "9001 /tmp/%h.sock").map((v) => `LocalForward ${v}`),
    fc.constantFrom("8080 localhost:80", "0 localhost:22", "9090", "*:2222 web:22").map((v) => `RemoteForward ${v}`),
    fc.constantFrom("1080", "127.0.0.1:1081", "[::1]:1082").map((v) => `DynamicForward ${v}`),
    fc.constantFrom("1G", "500M 1h", "default none", "100K 30m").map((v) => `RekeyLimit ${v}`),
    fc.constantFrom("LANG LC_*", "FOO", "-LC_*", "-*", "BAR BAZ").map((v) => `SendEnv ${v}`),
    fc.constantFrom("FOO=1", "FOO=2 BAR=x", "\"A=b c\"", "FOO=1 FOO=3").map((v) => `SetEnv ${v}`),
    fc.constantFrom("publickey,password", "keyboard-interactive").map((v) => `PreferredAuthentications ${v}`),
    fc.constantFrom("QUIET", "error", "debug", "DEBUG2", "Verbose").map((v) => `LogLevel ${v}`),
    fc.constantFrom("jump1", "me@jump2:2200", "a,b@c:23", "none", "[10.0.0.1]:22", "ssh://u@j3").map((v) => `ProxyJump ${v}`),
    fc.constantFrom("ssh -W %h:%p gateway", "none", "nc %h %p").map((v) => `ProxyCommand ${v}`),
    fc.constantFrom("ForwardX11 no", "ServerAliveCountMax=4", "Port = 2200", "  user   =  spaced", "ForwardX11Trusted yes"),
    ...(options.invalid ? [fc.constantFrom("IdentityFile ${SSHCFG_UNSET}/k", "HostName bad%zname", "UserKnownHostsFile ~/kh_%Z")] : [])
  )

  const matchLine = fc.oneof(
    fc.tuple(fc.boolean(), hostPattern).map(([neg, p]) => `Match ${neg ? "!" : ""}host ${p}`),
    fc.tuple(fc.boolean(), fc.constantFrom("web*", "db,x", "!web1,*", "*")).map(([neg, p]) => `Match ${neg ? "!" : ""}originalhost ${p}`),
    fc.tuple(fc.boolean(), fc.constantFrom("root", "deploy,alice", "!root,*", options.localUser)).map(([neg, p]) => `Match ${neg ? "!" : ""}user ${p}`),
    fc.constantFrom(`Match localuser ${options.localUser}`, "Match localuser nobody-here", "Match all", "Match !all"),
    fc.constantFrom("Match final host *.internal", "Match canonical", "Match final", "Match !final user root", "Match host=web*", "Match host \"db*\""),
    ...(options.hasTag ? [fc.constantFrom("Match tagged t1", "Match !tagged t2", "Tag t1", "Tag t2")] : []),
    ...(options.exec ? [fc.constantFrom("Match exec true", "Match !exec false", "Match exec \"test %h = web\"", "Match exec \"test %r = root\" host x")] : [])
  )

  const hostLine = fc.array(hostPattern, { minLength: 1, maxLength: 3 }).map((ps) => `Host ${ps.join(" ")}`)

  const block = fc.array(fc.oneof({ weight: 5, arbitrary: optionLine }, { weight: 1, arbitrary: hostLine }, { weight: 1, arbitrary: matchLine }), { maxLength: 8 })

  const corpus: fc.Arbitrary<Corpus> = fc.record({
    main: fc.array(
      fc.oneof({ weight: 3, arbitrary: block }, { weight: 1, arbitrary: fc.constantFrom([`Include inc-*.conf`], [`Include ${HOME_MARK}/inc-0.conf`], ["Include missing-*.conf"]) }),
      { maxLength: 6 }
    ).map((bs) => bs.flat()),
    includes: fc.array(block, { maxLength: 2 })
  })

  return { corpus, userName, optionLine }
}

/** Where an absolute Include points: replaced by the corpus's home when written. */
const HOME_MARK = "@HOME@"

let counter = 0

/**
 * Writes a corpus in a fresh home under `dir`: its main file, its includes
 * in `<home>/.ssh/inc-N.conf` (where a relative Include looks, through
 * `$HOME`) and `<home>/inc-0.conf` (the absolute Include). Each corpus has
 * its own home, so corpora can be resolved concurrently.
 *
 * @example
 * ```ts
 * const { file, home } = writeCorpus(dir, corpus)   // run ssh -G -F file with HOME=home
 * ```
 */
export const writeCorpus = (dir: string, c: Corpus): { readonly file: string; readonly home: string } => {
  const home = Path.join(dir, `c${counter++}`)
  Fs.mkdirSync(Path.join(home, ".ssh"), { recursive: true })
  const file = Path.join(home, "config")
  const text = (lines: ReadonlyArray<string>) => lines.map((l) => l.replace(HOME_MARK, home)).join("\n") + "\n"
  c.includes.forEach((lines, i) => {
    Fs.writeFileSync(Path.join(home, ".ssh", `inc-${i}.conf`), text(lines), { mode: 0o644 })
  })
  Fs.writeFileSync(Path.join(home, "inc-0.conf"), text(c.includes[0] ?? []), { mode: 0o644 })
  Fs.writeFileSync(file, text(c.main), { mode: 0o644 })
  return { file, home }
}

/**
 * A corpus as text, for a failure message.
 *
 * @example
 * ```ts
 * expect(ours, describeCorpus(c)).toEqual(theirs)
 * ```
 */
export const describeCorpus = (c: Corpus): string =>
  `config:\n${c.main.join("\n")}\nincludes:\n${c.includes.map((i) => i.join("\n")).join("\n--\n")}`
