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
import { readEvents } from "../src/store/events.js";
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
});
