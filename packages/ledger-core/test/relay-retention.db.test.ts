// Retention of the outbox (LEDGER_EVENTS_RETENTION_DAYS): delivered events older than the period are
// pruned; undelivered and recent ones stay; what is pruned is always a prefix of positions, so the log is
// gapless from its oldest kept event (the audit checks it, and every entry since pruned_before for its
// events). Entries are written through the app with a clock set 40 days back for the "old" ones.
import { describe, expect, it, onTestFinished } from "vitest";
import { sql } from "drizzle-orm";
import { applyRetention, startRelay } from "../src/features/events/relay.js";
import { ledgerAppFactory } from "../src/http/index.js";
import { readEvents, saveRelayCheckpoint } from "../src/store/events.js";
import { sqlClientOf } from "../src/store/sql-client.js";
import { expectLedgerInvariants, freshOwner, openTestDatabase, testDriver } from "../src/testing/index.js";
import { manualClock, silentLogger } from "../src/testing/deps.js";
import { apply, op } from "../src/testing/requests.js";
import { testCatalog } from "./fixtures.js";

const DAY_MS = 86_400_000;
const RETENTION_DAYS = 30;
const createApp = ledgerAppFactory({
  name: "retention-test",
  catalog: testCatalog,
  title: "retention test",
  version: "0",
});

async function world() {
  const tdb = await openTestDatabase();
  onTestFinished(async () => {
    await expectLedgerInvariants(tdb);
    await tdb.close();
  });
  const appAt = (daysAgo: number) =>
    createApp({
      db: tdb.db,
      ping: () => tdb.ping(),
      logger: silentLogger,
      clock: manualClock(new Date(Date.now() - daysAgo * DAY_MS).toISOString()).now,
    });
  const old = appAt(40);
  const recent = appAt(1);
  const owner = freshOwner();
  /** Writes n entries (so n events: credits make no hold events) through the app. */
  const write = async (app: typeof old, n: number) => {
    for (let i = 0; i < n; i++) await apply(app, op(owner, "CREDIT_ADD"));
  };
  const runner = sqlClientOf(tdb.db);
  const positions = async () => (await readEvents(runner, 0, 1_000)).map((e) => e.position);
  const before = () => new Date(Date.now() - RETENTION_DAYS * DAY_MS);
  return { tdb, old, recent, write, runner, positions, before };
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe(`retention of delivered events [${testDriver()}]`, () => {
  it("without a broker prunes by age alone, in chunks: old events go, recent ones stay", async () => {
    const w = await world();
    await w.write(w.old, 5);
    await w.write(w.recent, 3);
    const result = await applyRetention(w.runner, { before: w.before(), checkpoint: null, chunkMax: 2 });
    expect(result).toEqual({ pruned: 5, through: 5 });
    expect(await w.positions()).toEqual(range(6, 8));
  });

  it("prunes only what the relay delivered: old events past its checkpoint stay until it passes them", async () => {
    const w = await world();
    await w.write(w.old, 6);
    await w.write(w.recent, 2);
    expect(
      (await applyRetention(w.runner, { before: w.before(), checkpoint: 3, chunkMax: 100 })).pruned,
    ).toBe(3);
    expect(await w.positions()).toEqual(range(4, 8));
    // Delivered past the recent ones: still only the old go.
    expect(
      (await applyRetention(w.runner, { before: w.before(), checkpoint: 8, chunkMax: 100 })).pruned,
    ).toBe(3);
    expect(await w.positions()).toEqual(range(7, 8));
  });

  it("another relay that moved within the period holds retention back; one that did not move no longer does", async () => {
    const w = await world();
    await w.write(w.old, 6);
    await saveRelayCheckpoint(w.runner, "amqp", 2);
    expect(
      (await applyRetention(w.runner, { before: w.before(), checkpoint: null, chunkMax: 100 })).pruned,
    ).toBe(2);
    expect(await w.positions()).toEqual(range(3, 6));
    // Its broker was removed long ago: the row has not moved for the whole retention period.
    await w.tdb.db.execute(sql`update ledger_event_relays set updated_at = now() - interval '40 days'`);
    expect(
      (await applyRetention(w.runner, { before: w.before(), checkpoint: null, chunkMax: 100 })).pruned,
    ).toBe(4);
    expect(await w.positions()).toEqual([]);
  });

  it("keeps an old event committed after a recent one: what goes is a prefix of positions", async () => {
    const w = await world();
    await w.write(w.old, 2);
    await w.write(w.recent, 1);
    // A writer whose clock lags (or a batch decided before the recent one committed): old, at a later position.
    await w.write(w.old, 2);
    expect(await applyRetention(w.runner, { before: w.before(), checkpoint: null, chunkMax: 100 })).toEqual({
      pruned: 2,
      through: 2,
    });
    expect(await w.positions()).toEqual(range(3, 5));
  });

  it("the relay without a broker applies it as soon as it is active, and reports no lag", async () => {
    const w = await world();
    await w.write(w.old, 4);
    await w.write(w.recent, 2);
    const relay = startRelay({
      db: w.tdb.db,
      databaseUrl: w.tdb.url,
      retentionDays: RETENTION_DAYS,
      logger: silentLogger,
    });
    onTestFinished(() => relay.stop());
    for (let i = 0; i < 300 && (await w.positions()).length > 2; i++)
      await new Promise((r) => setTimeout(r, 100));
    expect(await w.positions()).toEqual(range(5, 6));
    expect(relay.state()).toEqual({
      role: "active",
      broker: null,
      broker_connected: false,
      pending: 0,
      oldest_pending_at: null,
      oldest_pending_age_ms: null,
    });
    await relay.stop();
    expect(relay.state().role).toBe("off");
  });
});
