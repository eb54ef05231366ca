// The JSON Schema files in schemas/events are what the zod schemas say: regenerate them with
// `pnpm --filter @ledger/core events:schemas` after changing an event's schema.
import { readdirSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { EVENT_SCHEMAS_DIR, eventSchemaFiles } from "./event-schemas.js";

describe("the events' JSON Schema files", () => {
  it("are exactly what the zod schemas generate, one per type, nothing else", () => {
    const generated = eventSchemaFiles();
    expect(readdirSync(EVENT_SCHEMAS_DIR).sort()).toEqual([...generated.keys()].sort());
    for (const [name, text] of generated) {
      expect(
        readFileSync(`${EVENT_SCHEMAS_DIR}/${name}`, "utf8"),
        `${name} is stale: run events:schemas`,
      ).toBe(text);
    }
  });

  it("describe the envelope's fields as required", () => {
    for (const text of eventSchemaFiles().values()) {
      const schema = JSON.parse(text) as { required: string[] };
      expect(schema.required).toEqual(
        expect.arrayContaining([
          "id",
          "type",
          "version",
          "occurred_at",
          "app",
          "owner_id",
          "sequence",
          "position",
          "request_id",
          "data",
        ]),
      );
    }
  });
});
