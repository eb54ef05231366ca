// The events the ledger emits, as every reader gets them (a broker, GET /ledger/events, a stream): one
// envelope, a type, and the type's data. The zod schemas here are the contract: the JSON Schemas in
// packages/ledger-core/schemas/events are generated from them (`pnpm --filter @ledger/core events:schemas`),
// and the contract tests validate every emitted event against those files.
//
// Versioning: a change that only adds (a new optional field, a new type) keeps the version. A breaking
// change (a field removed, renamed or retyped) is a new version of the type, emitted beside the old one
// for a deprecation window (README, "Events").
import { z } from "@hono/zod-openapi";
import { entrySchema } from "../../http/contract.js";
import { holdSchema } from "../holds/routes.js";

export const EVENT_TYPES = [
  "entry.created",
  "hold.created",
  "hold.captured",
  "hold.released",
  "hold.expired",
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** Every type is at version 1. */
export const EVENT_VERSION = 1;

const figure = (description: string) => z.number().int().nonnegative().openapi({ description });

/** entry.created: the entry as GET /ledger/{owner_id}/entries lists it, and the owner right after it. */
export const entryCreatedDataSchema = entrySchema
  .omit({ reversed_amount: true })
  .extend({
    balance: figure("The owner's balance right after the entry"),
    available: figure("The owner's available credits (balance less held) right after the entry"),
    held: figure("The owner's credits under active holds right after the entry"),
  })
  .openapi("EntryCreatedData");

/** hold.*: the hold as GET /ledger/holds/{hold_id} answered right after the entry, and that entry's id. */
export const holdEventDataSchema = z
  .object({
    hold: holdSchema,
    entry_id: z.number().int().positive().openapi({
      description: "The entry that made or ended the hold (HOLD, a capture, HOLD_RELEASE, HOLD_EXPIRY)",
    }),
  })
  .openapi("HoldEventData");

const envelopeFields = {
  id: z.uuid().openapi({ description: "The event's id: the same on every delivery; de-duplicate by it" }),
  version: z.literal(EVENT_VERSION),
  occurred_at: z.iso.datetime().openapi({ format: "date-time", description: "When the entry was written" }),
  app: z.string().openapi({ description: "The app that wrote the entry" }),
  owner_id: z.string(),
  sequence: z.number().int().positive().openapi({
    description: "The owner's entry sequence (gapless per owner); a hold event has its entry's",
  }),
  position: z.number().int().positive().openapi({
    description:
      "The ledger-wide cursor: gapless, in commit order (an event committed later never has a lower position)",
  }),
  request_id: z.string().nullable().openapi({
    description: "The x-request-id of the request that wrote it; null for the ledger's own writes",
  }),
  // Added after version 1 was first published (additive: the version stays); events published before
  // them lack both, so a reader must accept their absence.
  actor: z.string().nullable().optional().openapi({
    description:
      "The id of the API key that wrote the entry; null without a key or for the ledger's own writes (absent in events published before API keys)",
  }),
  trace_id: z.string().nullable().optional().openapi({
    description:
      "The W3C trace id of the request's traceparent header; null when it had none (absent in events published before traces)",
  }),
};

export const entryCreatedEventSchema = z
  .object({ ...envelopeFields, type: z.literal("entry.created"), data: entryCreatedDataSchema })
  .openapi("EntryCreatedEvent");

const holdEvent = <T extends Exclude<EventType, "entry.created">>(type: T, name: string) =>
  z.object({ ...envelopeFields, type: z.literal(type), data: holdEventDataSchema }).openapi(name);

export const holdCreatedEventSchema = holdEvent("hold.created", "HoldCreatedEvent");
export const holdCapturedEventSchema = holdEvent("hold.captured", "HoldCapturedEvent");
export const holdReleasedEventSchema = holdEvent("hold.released", "HoldReleasedEvent");
export const holdExpiredEventSchema = holdEvent("hold.expired", "HoldExpiredEvent");

/** Each type's schema, by type. */
export const EVENT_SCHEMAS = {
  "entry.created": entryCreatedEventSchema,
  "hold.created": holdCreatedEventSchema,
  "hold.captured": holdCapturedEventSchema,
  "hold.released": holdReleasedEventSchema,
  "hold.expired": holdExpiredEventSchema,
} as const satisfies Record<EventType, z.ZodType>;

export const eventSchema = z
  .discriminatedUnion("type", [
    entryCreatedEventSchema,
    holdCreatedEventSchema,
    holdCapturedEventSchema,
    holdReleasedEventSchema,
    holdExpiredEventSchema,
  ])
  .openapi("Event");

export type LedgerEvent = z.infer<typeof eventSchema>;
export type EntryCreatedData = z.infer<typeof entryCreatedDataSchema>;
export type HoldEventData = z.infer<typeof holdEventDataSchema>;

/** The broker subject / routing key of an event: `<app>.<type>` (NATS prefixes `ledger.`). */
export const eventRoute = (e: Pick<LedgerEvent, "app" | "type">) => `${e.app}.${e.type}`;

/** The JSON Schema (draft 2020-12) of one type, as the file in schemas/events holds it. */
export function eventJsonSchema(type: EventType): Record<string, unknown> {
  return {
    $id: `https://ledger.local/schemas/events/${type}.v${EVENT_VERSION}.json`,
    ...z.toJSONSchema(EVENT_SCHEMAS[type], { target: "draft-2020-12", io: "output" }),
  };
}
