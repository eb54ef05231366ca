// The events' contract, on both drivers: a mixed load of every kind of write emits exactly one
// entry.created per entry and the hold events of its holds, each valid against its JSON Schema file in
// schemas/events (checked with ajv, not with the zod schema it was generated from), at gapless positions,
// in each owner's sequence order, naming the request that wrote it; refusals and replays emit nothing.
import { readFileSync } from "node:fs";
import { Ajv2020 } from "ajv/dist/2020.js";
import ajvFormats from "ajv-formats";
import { sql } from "drizzle-orm";
import { beforeAll, describe, expect, it } from "vitest";
import { EVENT_SCHEMAS_DIR, eventSchemaFile } from "../src/cli/event-schemas.js";
import { EVENT_TYPES, eventSchema, type LedgerEvent } from "../src/features/events/envelope.js";
import { toLedgerEvent } from "../src/features/events/outbox.js";
import { ledgerAppFactory } from "../src/http/index.js";
import { LedgerService } from "../src/index.js";
import { queryRows } from "../src/store/client.js";
import { lastEventPosition, readEvents } from "../src/store/events.js";
import { sqlClientOf } from "../src/store/sql-client.js";
import { expectLedgerInvariants, testDriver, useTestDatabase } from "../src/testing/index.js";
import { silentLogger } from "../src/testing/deps.js";
import { runMixedLoad, type MixedLoadReport } from "../src/testing/mixed-load.js";
import { testCatalog } from "./fixtures.js";

const tdb = useTestDatabase();
const createApp = ledgerAppFactory({
  name: "events-test",
  catalog: testCatalog,
  title: "events",
  version: "0",
});

const ajv = new Ajv2020({ allErrors: true, strict: true });
// ajv-formats is CommonJS: under NodeNext its plugin is the default export's `default`.
const addFormats = ajvFormats as unknown as (ajv: Ajv2020) => Ajv2020;
addFormats(ajv);
const validators = new Map(
  EVENT_TYPES.map((type) => [
    type,
    ajv.compile(JSON.parse(readFileSync(`${EVENT_SCHEMAS_DIR}/${eventSchemaFile(type)}`, "utf8")) as object),
  ]),
);

function groupBy<T, K>(items: readonly T[], key: (item: T) => K): Map<K, T[]> {
  const groups = new Map<K, T[]>();
  for (const item of items) groups.set(key(item), [...(groups.get(key(item)) ?? []), item]);
  return groups;
}

async function allEvents(): Promise<LedgerEvent[]> {
  const db = sqlClientOf(tdb().db);
  const out: LedgerEvent[] = [];
  for (let after = 0; ;) {
    const page = await readEvents(db, after, 1000);
    if (page.length === 0) return out;
    out.push(...page.map(toLedgerEvent));
    after = page.at(-1)?.position ?? after;
  }
}

describe(`events of a mixed load [${testDriver()}]`, () => {
  let report: MixedLoadReport;
  let events: LedgerEvent[];

  beforeAll(async () => {
    const app = createApp({ db: tdb().db, ping: () => tdb().ping(), logger: silentLogger });
    report = await runMixedLoad(app, { owners: 3, rounds: 2 });
    // The holds made with expires_in_s 1 are recorded by the sweeper: ledger-written, no request.
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const sweeper = new LedgerService({ db: tdb().db, app: "events-test", catalog: testCatalog });
    expect((await sweeper.sweepExpired()).owners).toBeGreaterThan(0);
    events = await allEvents();
  }, 120_000);

  it("gives every entry exactly one entry.created, at gapless positions from 1, up to the counter", async () => {
    const entries = await queryRows<{ id: string }>(tdb().db, sql`select id::text as id from ledger_entries`);
    const created = events.filter((e) => e.type === "entry.created");
    expect(created.map((e) => String(e.data.id)).sort()).toEqual(entries.map((e) => e.id).sort());
    expect(events.map((e) => e.position)).toEqual(events.map((_, i) => i + 1));
    expect(await lastEventPosition(sqlClientOf(tdb().db))).toBe(events.length);
    expect(new Set(events.map((e) => e.id)).size).toBe(events.length);
  });

  it("validates every event against its type's JSON Schema file and the envelope", () => {
    for (const event of events) {
      const validate = validators.get(event.type);
      expect(
        validate?.(event),
        `${event.type} ${JSON.stringify(event)}: ${ajv.errorsText(validate?.errors)}`,
      ).toBe(true);
      expect(eventSchema.safeParse(event).success).toBe(true);
    }
    expect(new Set(events.map((e) => e.type))).toEqual(new Set(EVENT_TYPES));
  });

  it("keeps each owner's events in its sequence order, a hold event right after its entry", () => {
    const byOwner = groupBy(events, (e) => e.owner_id);
    for (const [owner, list] of byOwner) {
      const sequences = list.filter((e) => e.type === "entry.created").map((e) => e.sequence);
      expect(sequences, owner).toEqual(sequences.map((_, i) => i + 1));
      list.forEach((e, i) => {
        if (e.type === "entry.created") return;
        const entry = list[i - 1];
        expect(entry?.type, `${owner} ${e.type} at ${e.position}`).toBe("entry.created");
        expect(entry?.sequence).toBe(e.sequence);
        expect(e.data.entry_id).toBe(entry?.type === "entry.created" ? entry.data.id : -1);
      });
    }
  });

  it("carries the owner's figures after each entry, and the hold's state after each hold event", () => {
    for (const e of events) {
      if (e.type === "entry.created") {
        expect(e.data.balance).toBe(e.data.balance_after);
        expect(e.data.available).toBe(e.data.balance - e.data.held);
      }
    }
    const holds = groupBy(
      events.flatMap((e) => (e.type === "entry.created" ? [] : [e])),
      (e) => e.data.hold.id,
    );
    const lives = [...holds.values()].map((list) =>
      list.map((e) => `${e.type}:${e.data.hold.status}`).join(" "),
    );
    const perRound = report.owners.length * 2;
    const count = (life: string) => lives.filter((l) => l === life).length;
    expect(count("hold.created:active hold.captured:captured")).toBe(2 * perRound);
    expect(count("hold.created:active hold.released:released")).toBe(perRound);
    expect(count("hold.created:active hold.expired:expired")).toBe(perRound);
    expect(lives).toHaveLength(4 * perRound);
    const partial = events.filter((e) => e.type === "hold.captured" && e.data.hold.amount === 4);
    expect(partial.map((e) => (e.type === "hold.captured" ? e.data.hold.captured_amount : 0))).toEqual(
      partial.map(() => 1),
    );
  });

  it("names the request that wrote each event; refusals and replays emitted nothing; the ledger's own writes name none", () => {
    const named = new Set(events.flatMap((e) => (e.request_id === null ? [] : [e.request_id])));
    const wrote = report.requests.filter((r) => r.wrote).map((r) => r.requestId);
    const wroteNothing = report.requests.filter((r) => !r.wrote).map((r) => r.requestId);
    expect([...named].sort()).toEqual([...wrote].sort());
    for (const id of wroteNothing) expect(named.has(id), id).toBe(false);
    const unnamed = events.filter((e) => e.request_id === null);
    expect(unnamed.length).toBeGreaterThan(0);
    for (const e of unnamed) {
      expect(
        e.type === "hold.expired" || (e.type === "entry.created" && e.data.operation === "HOLD_EXPIRY"),
      ).toBe(true);
    }
  });

  it("leaves a ledger whose audit, event checks included, passes", async () => {
    await expectLedgerInvariants(tdb());
  });
});
