// Writes the JSON Schema of every event type to packages/ledger-core/schemas/events/<type>.v<version>.json,
// from the zod schemas in features/events/envelope.ts: `pnpm --filter @ledger/core events:schemas`.
// A test fails when the files and the zod schemas disagree, so the files are always what is emitted.
import { mkdirSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { EVENT_TYPES, EVENT_VERSION, eventJsonSchema, type EventType } from "../features/events/envelope.js";

export const EVENT_SCHEMAS_DIR = fileURLToPath(new URL("../../schemas/events", import.meta.url));

export const eventSchemaFile = (type: EventType) => `${type}.v${EVENT_VERSION}.json`;

/** The text of each file, by file name. */
export function eventSchemaFiles(): Map<string, string> {
  return new Map(
    EVENT_TYPES.map((t) => [eventSchemaFile(t), `${JSON.stringify(eventJsonSchema(t), null, 2)}\n`]),
  );
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  mkdirSync(EVENT_SCHEMAS_DIR, { recursive: true });
  for (const [name, text] of eventSchemaFiles()) {
    writeFileSync(`${EVENT_SCHEMAS_DIR}/${name}`, text);
    process.stdout.write(`wrote schemas/events/${name}\n`);
  }
}
