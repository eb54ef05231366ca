// Holds under concurrency, on real Postgres only (PGlite has one connection). Two separate connection
// pools stand in for two app processes.
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LedgerService } from "../src/index.js";
import { openDatabase, queryRows, type LedgerDatabase } from "../src/store/index.js";
import {
  submitCapture,
  submitHold,
  type CaptureResult,
  type HoldResult,
} from "../src/features/holds/command.js";
import {
  expectLedgerInvariants,
  freshNonce,
  freshOwner,
  openTestDatabase,
  type TestDatabase,
} from "../src/testing/index.js";
import { testCatalog } from "./fixtures.js";

let tdb: TestDatabase;
let second: LedgerDatabase;
let a: LedgerService;
let b: LedgerService;

beforeAll(async () => {
  tdb = await openTestDatabase("postgres", { poolSizeMax: 10 });
  if (!tdb.url) throw new Error("postgres test database has a URL");
  second = await openDatabase({ url: tdb.url, poolSizeMax: 10 });
  a = new LedgerService({ db: tdb.db, app: "app-a", catalog: testCatalog });
  b = new LedgerService({ db: second.db, app: "app-a", catalog: testCatalog });
});

afterAll(async () => {
  await expectLedgerInvariants(tdb);
  await second.close();
  await tdb.close();
});

type Outcome<R> = { ok: true; result: R } | { ok: false; code: string; holdStatus?: unknown };

async function attempt<R>(p: Promise<R>): Promise<Outcome<R>> {
  try {
    return { ok: true, result: await p };
  } catch (error) {
    const e = error as { code?: string; details?: { hold_status?: unknown } };
    return { ok: false, code: e.code ?? String(error), holdStatus: e.details?.hold_status };
  }
}

const serviceFor = (i: number) => (i % 2 === 0 ? a : b);

describe("holds under concurrency on real Postgres, two pools", () => {
  it("50 concurrent holds of 1 on 20 credits: exactly 20 are made, available 0", async () => {
    const owner = freshOwner();
    for (let i = 0; i < 2; i++)
      await a.post({ owner_id: owner, operation: "CREDIT_ADD", nonce: freshNonce() });
    const outcomes = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        attempt<HoldResult>(
          submitHold(serviceFor(i), { owner_id: owner, operation: "CREDIT_SPEND", nonce: freshNonce() }),
        ),
      ),
    );
    const made = outcomes.flatMap((o) => (o.ok ? [o.result] : []));
    const refused = outcomes.flatMap((o) => (o.ok ? [] : [o.code]));
    expect(made).toHaveLength(20);
    expect(refused).toEqual(Array(30).fill("INSUFFICIENT_BALANCE"));
    // Each hold saw a distinct available amount after it: 19, 18, ..., 0.
    expect(made.map((h) => h.available).sort((x, y) => x - y)).toEqual(
      Array.from({ length: 20 }, (_, i) => i),
    );
    expect(new Set(made.map((h) => h.hold.id)).size).toBe(20);
    expect(await b.balance(owner)).toMatchObject({ balance: 20, held: 20, available: 0 });
    const rows = await queryRows<{ n: number }>(
      tdb.db,
      sql`select count(*)::int as n from ledger_holds where owner_id = ${owner} and status = 'active'`,
    );
    expect(rows).toEqual([{ n: 20 }]);
  });

  it("a capture racing its hold's expiry either captures or answers HOLD_NOT_ACTIVE, never both", async () => {
    // Both pools run on one hand-moved clock. Each round places 15 holds of one second, then sends two
    // captures of each (one per pool, two nonces); once some are answered the clock reaches the holds'
    // expiry, with the rest in flight, and a write for each owner and sweeps in both pools follow.
    // Whichever instant each capture is decided at, its answer and the ledger must agree.
    let nowMs = Date.now();
    const clock = () => new Date(nowMs);
    const pools = [tdb.db, second.db].map(
      (db) => new LedgerService({ db, app: "app-a", catalog: testCatalog, clock }),
    );
    const pool = (i: number) => pools[i % 2] ?? a;
    let captured = 0;
    let expired = 0;
    for (let round = 0; round < 3; round++) {
      nowMs = Math.max(nowMs + 1, Date.now());
      const owners = Array.from({ length: 15 }, () => freshOwner("race"));
      await Promise.all(
        owners.map((owner, i) =>
          pool(i).post({ owner_id: owner, operation: "CREDIT_ADD", nonce: freshNonce() }),
        ),
      );
      const made = await Promise.all(
        owners.map((owner, i) =>
          submitHold(pool(i), {
            owner_id: owner,
            operation: "CREDIT_SPEND",
            nonce: freshNonce(),
            expires_in_s: 1,
          }),
        ),
      );
      const expiresAt = Date.parse(made[0]?.hold.expires_at ?? "");
      expect(made.every((h) => Date.parse(h.hold.expires_at) === expiresAt)).toBe(true);
      nowMs = expiresAt - 1;
      // The expiry comes after the first, the 8th or the 16th answer (of 30): with the rest in flight.
      const flipAfter = [1, 8, 16][round] ?? 1;
      let answered = 0;
      const flip = () => {
        answered += 1;
        if (answered === flipAfter) nowMs = expiresAt;
      };
      const answers = await Promise.all(
        made.map((h, i) =>
          Promise.all(
            [pool(i), pool(i + 1)].map((service) =>
              attempt<CaptureResult>(submitCapture(service, h.hold.id, { nonce: freshNonce() })).then((o) => {
                flip();
                return o;
              }),
            ),
          ),
        ),
      );
      await Promise.all([
        ...owners.map((owner, i) =>
          pool(i + 1).post({ owner_id: owner, operation: "TEST_ZERO", nonce: freshNonce() }),
        ),
        pools[0]?.sweepExpired(),
        pools[1]?.sweepExpired(),
      ]);
      await pools[0]?.sweepExpired();

      for (const [i, pair] of answers.entries()) {
        const h = made[i];
        if (!h) throw new Error("one hold per answer");
        for (const o of pair) {
          if (!o.ok) {
            expect(o.code).toBe("HOLD_NOT_ACTIVE");
            expect(["captured", "expired"]).toContain(o.holdStatus);
          }
        }
        const wins = pair.flatMap((o) => (o.ok ? [o.result] : []));
        expect(wins.length).toBeLessThanOrEqual(1);
        const stored = await queryRows<{ status: string; captured_amount: string | null }>(
          tdb.db,
          sql`select status, captured_amount::text as captured_amount from ledger_holds where id = ${h.hold.id}`,
        );
        const entries = await queryRows<{ operation: string }>(
          tdb.db,
          sql`select operation from ledger_entries where hold_id = ${h.hold.id} order by sequence`,
        );
        const win = wins[0];
        if (win) {
          captured += 1;
          // Captured before its expiry, recorded so, and never expired.
          expect(Date.parse(win.entry.created_at)).toBeLessThan(expiresAt);
          expect(stored).toEqual([{ status: "captured", captured_amount: "1" }]);
          expect(entries.map((e) => e.operation)).toEqual(["HOLD", "CREDIT_SPEND"]);
          const loser = pair.find((o) => !o.ok);
          if (loser && !loser.ok) expect(loser.holdStatus).toBe("captured");
        } else {
          expired += 1;
          // Neither capture: both were told it had expired, and the ledger recorded the expiry only.
          for (const o of pair) expect(o.ok ? null : o.holdStatus).toBe("expired");
          expect(stored).toEqual([{ status: "expired", captured_amount: null }]);
          expect(entries.map((e) => e.operation)).toEqual(["HOLD", "HOLD_EXPIRY"]);
        }
        expect((await pool(i).balance(h.hold.owner_id)).held).toBe(0);
      }
    }
    expect(captured + expired).toBe(45);
    // What was answered before the expiry was decided before it: at least one capture a round.
    expect(captured).toBeGreaterThanOrEqual(3);
  });
});
