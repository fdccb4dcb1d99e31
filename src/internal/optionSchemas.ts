/**
 * Schemas for the scalar fields of the public options objects, checked at
 * the boundary so that a bad value is a typed `ConfigParseError` naming the
 * field (not a defect thrown from deep inside, as `Duration.fromInputUnsafe`
 * would).
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import * as SshError from "../SshError.ts"

const describe = (u: unknown): string => {
  try {
    return typeof u === "string" ? JSON.stringify(u) : String(u)
  } catch {
    return Object.prototype.toString.call(u)
  }
}

/** A `Duration.Input`: a Duration, a number of milliseconds, or a string such as "10 seconds". */
export const DurationInput = Schema.Unknown.check(Schema.makeFilter((u) =>
  Option.isSome(Duration.fromInput(u as Duration.Input)) ||
  `expected a duration (a Duration, milliseconds, or a string such as "10 seconds"), got ${describe(u)}`
))

/** A TCP port, 1 to 65535. */
export const Port = Schema.Int.check(Schema.makeFilter((n: number) => (n >= 1 && n <= 65535) || `expected a port from 1 to 65535, got ${n}`))

/** An integer from `min` to `max`. */
export const IntBetween = (min: number, max: number) =>
  Schema.Int.check(Schema.makeFilter((n: number) => (n >= min && n <= max) || `expected an integer from ${min} to ${max}, got ${n}`))

/**
 * Checks `value` against `schema`, failing with a `ConfigParseError` that
 * names `what` and the offending field.
 *
 * @example
 * ```ts
 * yield* validate(Schema.Struct({ port: Schema.optional(Port) }), "connect options", options)
 * // ConfigParseError: invalid connect options: expected a port from 1 to 65535, got 0 at ["port"]
 * ```
 */
export const validate = <S extends Schema.Decoder<unknown>>(schema: S, what: string, value: unknown): Effect.Effect<void, SshError.SshError> => {
  const result = Schema.decodeUnknownResult(schema)(value)
  return Result.isSuccess(result)
    ? Effect.void
    : Effect.fail(SshError.make(new SshError.ConfigParseError({ message: `invalid ${what}: ${result.failure.message.replace(/\n\s*/g, " ")}` })))
}
