/**
 * Packet cipher throughput: seals and opens 32 KiB payloads with every
 * cipher (and a few MACs) and prints MB of payload per CPU second for seal
 * alone, open alone, and a seal+open round trip (CPU time, not wall time, so
 * that a busy machine does not distort the figures). Not a timed test.
 *
 *     node bench/cipher.ts [seconds per case, default 1]
 */
import { randomBytes } from "node:crypto"
import * as Cipher from "../src/Transport/Cipher.ts"

const PAYLOAD = 32 * 1024
const seconds = Number(process.argv[2] ?? 1)

const cases: ReadonlyArray<readonly [string, string]> = [
  ["aes128-gcm@openssh.com", "none"],
  ["aes256-gcm@openssh.com", "none"],
  ["chacha20-poly1305@openssh.com", "none"],
  ["aes128-ctr", "hmac-sha2-256-etm@openssh.com"],
  ["aes256-ctr", "hmac-sha2-256"],
  ["aes256-ctr", "hmac-sha2-512-etm@openssh.com"],
  ["aes128-ctr", "hmac-sha1-etm@openssh.com"],
  ["none", "none"]
]

const keysFor = (cipher: string, mac: string): Cipher.DirectionKeys => {
  const spec = Cipher.cipherSpec(cipher)!
  return {
    cipher,
    mac,
    key: randomBytes(spec.keyLength),
    iv: randomBytes(spec.ivLength),
    macKey: randomBytes(Cipher.macSpec(mac)!.keyLength)
  }
}

/** CPU time of this process in ms: on a busy machine it is fairer than wall time. */
const cpuMs = (): number => {
  const { user, system } = process.cpuUsage()
  return (user + system) / 1000
}

/** Runs `step` for about `seconds` of CPU time and returns MB of payload per CPU second. */
const rate = (step: (i: number) => void): number => {
  for (let i = 0; i < 200; i++) step(i)
  let n = 0
  const started = cpuMs()
  let elapsed = 0
  while (elapsed < seconds * 1000) {
    for (let k = 0; k < 50; k++) step(n++)
    elapsed = cpuMs() - started
  }
  return (n * PAYLOAD) / 1e6 / (elapsed / 1000)
}

const payload = randomBytes(PAYLOAD)
console.log(`payload ${PAYLOAD} bytes, ${seconds} CPU s per measurement, node ${process.version}`)
console.log(["cipher + mac".padEnd(46), "seal MB/s", "open MB/s", "seal+open MB/s"].join("  "))
for (const [cipher, mac] of cases) {
  const keys = keysFor(cipher, mac)
  const sealer = Cipher.makeSealer(keys, Cipher.pooledRandom(randomBytes))
  const seal = rate((i) => sealer.seal(payload, i >>> 0))

  const preSealer = Cipher.makeSealer(keys, randomBytes)
  const packets = Array.from({ length: 4096 }, (_, i) => preSealer.seal(payload, i))
  let opener = Cipher.makeOpener(keys)
  const open = rate((i) => {
    const seqno = i % packets.length
    if (seqno === 0) opener = Cipher.makeOpener(keys)
    const packet = packets[seqno]!
    opener.packetLength(packet, seqno)
    opener.open(packet, seqno)
  })

  const roundSealer = Cipher.makeSealer(keys, Cipher.pooledRandom(randomBytes))
  const roundOpener = Cipher.makeOpener(keys)
  const both = rate((i) => {
    const seqno = i >>> 0
    const packet = roundSealer.seal(payload, seqno)
    roundOpener.packetLength(packet, seqno)
    roundOpener.open(packet, seqno)
  })
  const label = `${cipher}${Cipher.cipherSpec(cipher)!.aead ? "" : " + " + mac}`
  console.log([label.padEnd(46), seal.toFixed(0).padStart(9), open.toFixed(0).padStart(9), both.toFixed(0).padStart(14)].join("  "))
}
