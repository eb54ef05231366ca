// The outbox's positions follow commit order across processes: several writer processes commit batches
// at once while a reader polls "events after the last position I saw". Were positions handed out before
// commit (a bigserial), a batch taking position p and committing after one taking p + 1 would show the
// reader p + 1 first, and it would move past p for good. Here every page the reader gets starts right
// after what it saw and has no hole: what it has seen is final.
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sql } from "drizzle-orm";
import { queryRows } from "../src/store/index.js";
import postgres from "postgres";
import { eventWriter, readEvents, type EventWrite } from "../src/store/events.js";
import { sqlClientOf } from "../src/store/sql-client.js";
import { expectLedgerInvariants, openTestDatabase, type TestDatabase } from "../src/testing/index.js";

const WRITER = fileURLToPath(new URL("./support/event-writer.ts", import.meta.url));
const PROCESSES = 3;
const WRITES_EACH = 400;

let tdb: TestDatabase;

beforeAll(async () => {
  tdb = await openTestDatabase("postgres", { poolSizeMax: 4 });
});

afterAll(async () => {
  await expectLedgerInvariants(tdb);
  await tdb.close();
});

function runWriter(url: string, app: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", WRITER, url, app, "25", String(WRITES_EACH)], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    child.on("error", reject);
    child.on("exit", (code) =>
      code === 0 ? resolve(out.trim()) : reject(new Error(`writer ${app} exited ${code}: ${err}`)),
    );
  });
}

describe("event positions across processes", () => {
  it("never show a reader a position before an earlier one has committed: every page continues the last", async () => {
    const url = tdb.url;
    if (!url) throw new Error("the postgres test database has a URL");
    const db = sqlClientOf(tdb.db);
    let seen = 0;
    let pagesWhileWriting = 0;
    let writersDone = false;
    const writers = Promise.all(
      Array.from({ length: PROCESSES }, (_, i) => runWriter(url, `writer${i}`)),
    ).finally(() => (writersDone = true));
    const total = PROCESSES * WRITES_EACH;
    while (!writersDone || seen < total) {
      const page = await readEvents(db, seen, 100);
      if (page.length > 0) {
        if (!writersDone) pagesWhileWriting += 1;
        expect(
          page.map((e) => e.position),
          `after ${seen}`,
        ).toEqual(page.map((_, i) => seen + 1 + i));
        seen = page.at(-1)?.position ?? seen;
      }
      if (writersDone && page.length === 0 && seen < total) break;
    }
    expect(await writers).toEqual(Array.from({ length: PROCESSES }, () => `done ${WRITES_EACH}`));
    expect(seen).toBe(total);
    // The reader read the log as it grew, not once at the end.
    expect(pagesWhileWriting).toBeGreaterThan(3);
    const [counts] = await queryRows<{ entries: number; events: number }>(
      tdb.db,
      sql`select (select count(*)::int from ledger_entries) as entries, (select count(*)::int from ledger_events) as events`,
    );
    expect(counts).toEqual({ entries: total, events: total });
  }, 120_000);

  it("holds a later transaction's events back until the earlier one commits (the counter row's lock)", async () => {
    const url = tdb.url;
    if (!url) throw new Error("the postgres test database has a URL");
    const a = postgres(url, { max: 1, onnotice: () => {} });
    const b = postgres(url, { max: 1, onnotice: () => {} });
    let releaseA: () => void = () => {};
    try {
      // Each transaction writes an entry (and its owner, so the audit holds) and its event, as a batch does.
      const write = async (tx: postgres.TransactionSql, owner: string) => {
        await tx.unsafe(
          `insert into ledger_owners (owner_id, balance, last_sequence, updated_at) values ($1, 10, 1, now())`,
          [owner],
        );
        await tx.unsafe(
          `insert into ledger_entries (app, operation, owner_id, amount, balance_after, sequence, nonce, created_at)
           values ('probe', 'CREDIT_ADD', $1, 10, 10, 1, $1, date_trunc('milliseconds', now()))`,
          [owner],
        );
        const [created] = await tx.unsafe(`select created_at from ledger_entries where nonce = $1`, [owner]);
        const event: EventWrite = {
          id: crypto.randomUUID(),
          type: "entry.created",
          version: 1,
          occurredAt: (created as unknown as { created_at: Date }).created_at,
          app: "probe",
          ownerId: owner,
          sequence: 1,
          nonce: owner,
          requestId: null,
          actor: null,
          traceId: null,
          data: {
            app: "probe",
            operation: "CREDIT_ADD",
            owner_id: owner,
            amount: 10,
            balance_after: 10,
            sequence: 1,
            nonce: owner,
            balance: 10,
            available: 10,
            held: 0,
          },
        };
        const { text, params } = eventWriter.statement([event]);
        await tx.unsafe(text, params as never[]);
      };
      const head = (await readEvents(sqlClientOf(tdb.db), 0, 100_000)).at(-1)?.position ?? 0;
      const aHolds = new Promise<void>((resolve) => (releaseA = resolve));
      let aWrote: () => void = () => {};
      const aWritten = new Promise<void>((resolve) => (aWrote = resolve));
      const first = a.begin(async (tx) => {
        await write(tx, "probe_first");
        aWrote();
        await aHolds;
      });
      await aWritten;
      let bDone = false;
      const second = b.begin((tx) => write(tx, "probe_second")).then(() => (bDone = true));
      // The second transaction waits on the counter row while the first is open: nothing of either is seen.
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(bDone).toBe(false);
      expect(await readEvents(sqlClientOf(tdb.db), head, 10)).toEqual([]);
      releaseA();
      await first;
      await second;
      const seen = await readEvents(sqlClientOf(tdb.db), head, 10);
      expect(seen.map((e) => [e.ownerId, e.position])).toEqual([
        ["probe_first", head + 1],
        ["probe_second", head + 2],
      ]);
    } finally {
      releaseA();
      await a.end();
      await b.end();
    }
  });
});
