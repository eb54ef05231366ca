// The schema's own guarantees, on both drivers: history is append-only in the database itself, and
// migrations are applied once.
import { sql } from "drizzle-orm";
import { beforeAll, describe, expect, it } from "vitest";
import { openDatabase, queryRows } from "../src/store/index.js";
import { LedgerService } from "../src/index.js";
import { freshNonce, freshOwner, testDriver, useTestDatabase } from "../src/testing/index.js";
import { testCatalog } from "./fixtures.js";

const tdb = useTestDatabase();
let ledger: LedgerService;

beforeAll(() => {
  ledger = new LedgerService({ db: tdb().db, app: "app-a", catalog: testCatalog });
});

describe(`schema [${testDriver()}]`, () => {
  it.each([
    ["UPDATE ledger_entries", sql`update ledger_entries set amount = amount + 1`],
    ["DELETE FROM ledger_entries", sql`delete from ledger_entries`],
    ["TRUNCATE ledger_entries", sql`truncate ledger_entries cascade`],
    ["UPDATE ledger_postings", sql`update ledger_postings set amount = 0`],
    ["DELETE FROM ledger_postings", sql`delete from ledger_postings`],
    ["INSERT INTO ledger_postings", sql`insert into ledger_postings values (1, 'owner:x', 5)`],
    ["UPDATE ledger_allocations", sql`update ledger_allocations set amount = amount + 1`],
    ["DELETE FROM ledger_allocations", sql`delete from ledger_allocations`],
    ["TRUNCATE ledger_allocations", sql`truncate ledger_allocations`],
  ])("refuses %s: history is append-only", async (_what, statement) => {
    const owner = freshOwner();
    // A credit that expires, partly spent: an entry of each kind and an allocation to refuse changes to.
    const expires_at = new Date(Date.now() + 86_400_000).toISOString();
    await ledger.post({ owner_id: owner, operation: "CREDIT_ADD", nonce: freshNonce(), expires_at });
    await ledger.post({ owner_id: owner, operation: "CREDIT_SPEND", nonce: freshNonce() });
    const error: unknown = await tdb()
      .db.execute(statement)
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    // The refusal comes from the trigger, not from some other failure of the statement.
    expect(String((error as { cause?: { message?: string } } | undefined)?.cause?.message)).toMatch(
      /ledger history is append-only/,
    );
    expect((await ledger.entries({ owner_id: owner })).entries).toHaveLength(2);
    expect((await ledger.balance(owner)).balance).toBe(9);
  });

  it("refuses TRUNCATE on the postings, which are a view of the entries", async () => {
    const error: unknown = await tdb()
      .db.execute(sql`truncate ledger_postings`)
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(String((error as { cause?: { message?: string } } | undefined)?.cause?.message)).toMatch(
      /"ledger_postings" is not a table/,
    );
  });

  it("stores every entry with two postings that sum to zero, against the operation's system account", async () => {
    const owner = freshOwner();
    const { entry } = await ledger.post({ owner_id: owner, operation: "CREDIT_ADD", nonce: freshNonce() });
    const rows = await queryRows(
      tdb().db,
      sql`select account, amount::text as amount from ledger_postings where entry_id = ${entry.id} order by account`,
    );
    expect(rows).toEqual([
      { account: "operation:CREDIT_ADD", amount: "-10" },
      { account: `owner:${owner}`, amount: "10" },
    ]);
  });

  // In-memory PGlite cannot be reopened; test/embedded.test.ts reopens an on-disk one instead.
  it.runIf(testDriver() === "postgres")("applying the migrations again changes nothing", async () => {
    if (!tdb().url) throw new Error("the postgres test database has a URL");
    const migrations = sql`select count(*)::int as n from drizzle.__drizzle_migrations`;
    const applied = await queryRows<{ n: number }>(tdb().db, migrations);
    const before = freshOwner();
    await ledger.post({ owner_id: before, operation: "CREDIT_ADD", nonce: freshNonce() });

    const again = await openDatabase({ url: tdb().url });
    await again.close();

    expect(await queryRows<{ n: number }>(tdb().db, migrations)).toEqual(applied);
    expect((await ledger.balance(before)).balance).toBe(10);
    const after = freshOwner();
    await ledger.post({ owner_id: after, operation: "CREDIT_ADD", nonce: freshNonce() });
    expect((await ledger.balance(after)).balance).toBe(10);
  });
});
