/**
 * Shared test helpers: run a scoped Effect with the Node layer, and make
 * client options for a harness sshd.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type * as FileSystem from "effect/FileSystem"
import * as NodeSsh from "../src/NodeSsh.ts"
import type { Connector } from "../src/Client.ts"
import * as SshClient from "../src/Client.ts"
import * as HostKeys from "../src/Auth/HostKeys.ts"
import type * as Auth from "../src/Auth/ClientAuth.ts"
import type { Sshd } from "./interop/sshd.ts"

/** Runs a program with a scope and the Node layer; rejects with the typed error. */
export const runScoped = <A, E>(
  effect: Effect.Effect<A, E, Scope.Scope | Connector | FileSystem.FileSystem>
): Promise<A> => Effect.runPromise(effect.pipe(Effect.scoped, Effect.provide(NodeSsh.layer)))

/** Runs a program and returns its failure (or throws if it succeeded). */
export const runFailure = <A, E>(
  effect: Effect.Effect<A, E, Scope.Scope | Connector | FileSystem.FileSystem>
): Promise<E> =>
  Effect.runPromise(
    effect.pipe(
      Effect.flip,
      Effect.scoped,
      Effect.provide(NodeSsh.layer)
    ) as Effect.Effect<E, A>
  )

/** Connect options for the harness sshd, trusting its known_hosts file. */
export const sshdOptions = (
  sshd: Sshd,
  auth: ReadonlyArray<Auth.AuthMethod>,
  extra: Partial<SshClient.ConnectOptions> = {}
): SshClient.ConnectOptions => ({
  host: sshd.host,
  port: sshd.port,
  username: sshd.user,
  auth,
  hostKeys: HostKeys.knownHosts({ files: [sshd.knownHostsFile] }),
  connectTimeout: "20 seconds",
  ...extra
})
