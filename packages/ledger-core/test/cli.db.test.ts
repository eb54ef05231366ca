// `ledger verify` and `ledger rebuild` on a live database, on both drivers: a healthy ledger passes,
// and each kind of damage is found, reported by name, and (for the projection) repaired.
import { sql } from "drizzle-orm";
import { beforeAll, describe, expect, it } from "vitest";
import { main, parseCommand, runCommand, type Io } from "../src/cli/ledger.js";
import { parseApiKey } from "../src/domain/api-keys.js";
import { LedgerService } from "../src/index.js";
import { freshNonce, freshOwner, testDriver, useTestDatabase } from "../src/testing/index.js";
import { submitCapture, submitHold } from "../src/features/holds/command.js";
import { reverseEntry } from "../src/features/reversals/command.js";
import { changeStatus } from "../src/features/suspension/command.js";
import { transferCredits } from "../src/features/transfers/command.js";
import { testCatalog } from "./fixtures.js";
import { lastEventPosition, pruneEvents } from "../src/store/events.js";
import { sqlClientOf } from "../src/store/sql-client.js";
import { queryRows } from "../src/store/client.js";

const tdb = useTestDatabase();
let ledger: LedgerService;

beforeAll(async () => {
  ledger = new LedgerService({ db: tdb().db, app: "app-a", catalog: testCatalog });
  for (let i = 0; i < 3; i++) {
    const owner = freshOwner();
    await ledger.post({ owner_id: owner, operation: "SIGNUP_CREDIT", nonce: freshNonce() });
    await ledger.post({ owner_id: owner, operation: "CREDIT_SPEND", nonce: freshNonce() });
  }
});

function capture(): Io & { text: () => string } {
  const chunks: string[] = [];
  return { out: (t) => chunks.push(t), err: (t) => chunks.push(t), text: () => chunks.join("") };
}

async function run(...argv: string[]): Promise<{ code: number; text: string }> {
  const io = capture();
  const command = parseCommand(argv, io);
  if (!command) throw new Error(`not a command line: ${argv.join(" ")}\n${io.text()}`);
  const code = await runCommand(tdb().db, command, io);
  return { code, text: io.text() };
}

/** Runs fn with the append-only triggers off, as only a superuser bypassing the ledger could. */
async function tamper(fn: () => Promise<unknown>) {
  await tdb().db.execute(sql`alter table ledger_entries disable trigger ledger_entries_append_only`);
  try {
    await fn();
  } finally {
    await tdb().db.execute(sql`alter table ledger_entries enable trigger ledger_entries_append_only`);
  }
}

/** Runs fn with the events' UPDATE guard off (a tamper test's way in), and puts it back. */
async function tamperEvents(fn: () => Promise<unknown>) {
  await tdb().db.execute(sql`alter table ledger_events disable trigger ledger_events_append_only`);
  try {
    await fn();
  } finally {
    await tdb().db.execute(sql`alter table ledger_events enable trigger ledger_events_append_only`);
  }
}

describe(`ledger CLI [${testDriver()}]`, () => {
  it("verify passes on a healthy ledger, naming every check", async () => {
    const { code, text } = await run("verify");
    expect(code).toBe(0);
    for (const name of [
      "accounts-sum-zero",
      "entries-balanced",
      "balance-equals-entries",
      "balance-equals-postings",
      "running-balance-chain",
      "projection-head",
      "no-negative-balance",
      "nonce-once-per-app",
      "limit-once-per-period",
      "grant-per-expiring-credit",
      "grant-remaining",
      "allocations-match-entries",
      "burn-order",
      "no-spend-after-expiry",
      "expiries-of-grants",
      "balance-is-credits-plus-remainders",
      "held-is-active-holds",
      "held-after-chain",
      "holds-match-entries",
      "reversals-within-original",
      "reversals-return-to-source",
      "holds-within-grants",
      "transfer-pairs",
      "suspension-windows",
      "events-gapless",
      "event-per-entry",
      "events-match-entries",
      "hold-events-match-entries",
      "events-in-owner-order",
      "events-append-only-triggers",
      "append-only-triggers",
      "append-only-refuses",
    ]) {
      expect(text).toContain(`ok   ${name}`);
    }
    expect(text).toContain("verify: all 32 checks passed");
  });

  it("verify --json prints the report as JSON", async () => {
    const { code, text } = await run("verify", "--json");
    expect(code).toBe(0);
    expect(JSON.parse(text)).toMatchObject({ ok: true });
  });

  it("refuses bad command lines with status 2 and the usage, before opening any database", async () => {
    for (const argv of [[], ["nope"], ["verify", "--repair"], ["verify", "extra"], ["rebuild", "--bogus"]]) {
      const io = capture();
      expect(await main(argv, { DATABASE_URL: "postgres://127.0.0.1:1/nowhere" }, io), argv.join(" ")).toBe(
        2,
      );
      expect(io.text(), argv.join(" ")).toContain("usage: ledger <verify|rebuild|keys>");
    }
  });

  describe("keys", () => {
    it("create prints the key once with --json, stores only its hash, and list never shows it", async () => {
      const made = await run(
        "keys",
        "create",
        "--app",
        "app-a",
        "--scope",
        "read",
        "--scope",
        "write",
        "--name",
        "web backend",
        "--rate",
        "100",
        "--json",
      );
      expect(made.code).toBe(0);
      const lines = made.text.trim().split("\n");
      expect(lines).toHaveLength(1);
      const created = JSON.parse(lines[0] as string) as Record<string, unknown>;
      expect(Object.keys(created).sort()).toEqual(["app", "id", "key", "name", "rate", "scopes"]);
      expect(created).toMatchObject({
        app: "app-a",
        scopes: ["read", "write"],
        name: "web backend",
        rate: 100,
      });
      const key = created.key as string;
      expect(key).toMatch(new RegExp(`^lgr_${created.id as string}_[A-Za-z0-9_-]{43}$`));
      const secret = parseApiKey(key)?.secret ?? expect.fail("not an API key");

      const rows = await queryRows<Record<string, unknown>>(
        tdb().db,
        sql`select * from ledger_api_keys where id = ${created.id as string}`,
      );
      expect(JSON.stringify(rows)).not.toContain(secret);
      const list = await run("keys", "list", "--json");
      expect(list.code).toBe(0);
      expect(list.text).not.toContain(secret);
      expect(list.text).not.toContain(String(rows[0]?.secret_sha256));
      const listed = (JSON.parse(list.text) as { id: string }[]).find((k) => k.id === created.id);
      expect(listed).toMatchObject({
        app: "app-a",
        scopes: ["read", "write"],
        name: "web backend",
        rate: 100,
        last_used_at: null,
        revoked_at: null,
      });

      const table = await run("keys", "list", "--app", "app-a");
      expect(table.text).toMatch(/^id +app +scopes/);
      expect(table.text).toContain(created.id as string);
      expect(table.text).not.toContain(secret);
    });

    it("create without --json shows the key and says it is shown once", async () => {
      const made = await run("keys", "create", "--app", "app-a", "--scope", "admin");
      expect(made.code).toBe(0);
      expect(made.text).toMatch(/\n {2}lgr_[0-9a-f]{16}_[A-Za-z0-9_-]{43}\n/);
      expect(made.text).toContain("only time the key is shown");
    });

    it("revoke marks the key revoked once; again says so; an unknown id is status 1", async () => {
      const made = JSON.parse(
        (await run("keys", "create", "--app", "app-a", "--scope", "read", "--json")).text,
      ) as { id: string };
      expect((await run("keys", "revoke", made.id)).text).toContain(`revoked key ${made.id}`);
      const again = await run("keys", "revoke", made.id);
      expect(again).toMatchObject({ code: 0 });
      expect(again.text).toContain("already revoked");
      const listed = (
        JSON.parse((await run("keys", "list", "--json")).text) as { id: string; revoked_at: string | null }[]
      ).find((k) => k.id === made.id);
      expect(listed?.revoked_at).toMatch(/^\d{4}-\d\d-\d\dT/);
      const unknown = await run("keys", "revoke", "0123456789abcdef");
      expect(unknown.code).toBe(1);
    });

    it.each([
      [["keys"], "usage"],
      [["keys", "create", "--scope", "read"], "--app"],
      [["keys", "create", "--app", "App One", "--scope", "read"], "--app"],
      [["keys", "create", "--app", "app-a"], "--scope"],
      [["keys", "create", "--app", "app-a", "--scope", "root"], "unknown scope root"],
      [["keys", "create", "--app", "app-a", "--scope", "read", "--rate", "0"], "--rate"],
      [["keys", "create", "--app", "app-a", "--scope", "read", "--rate", "1.5"], "--rate"],
      [["keys", "create", "--app", "app-a", "--scope", "read", "--rate", "100001"], "--rate"],
      [["keys", "create", "--app", "app-a", "--scope", "read", "--name", ""], "--name"],
      [["keys", "revoke"], "usage"],
      [["keys", "revoke", "not-an-id"], "16 hex"],
      [["keys", "list", "--scope", "read"], "usage"],
      [["verify", "--app", "x"], "usage"],
    ])("refuses %j with status 2, naming %s, writing nothing", async (argv, named) => {
      const before = await queryRows<{ n: number }>(
        tdb().db,
        sql`select count(*)::int as n from ledger_api_keys`,
      );
      const io = capture();
      expect(await main(argv, { DATABASE_URL: "postgres://127.0.0.1:1/nowhere" }, io)).toBe(2);
      expect(io.text()).toContain(named);
      expect(
        await queryRows<{ n: number }>(tdb().db, sql`select count(*)::int as n from ledger_api_keys`),
      ).toEqual(before);
    });
  });

  it("finds a damaged balance projection, shows the difference, and repairs it with --repair", async () => {
    const owner = freshOwner();
    await ledger.post({ owner_id: owner, operation: "CREDIT_ADD", nonce: freshNonce() });
    await tdb().db.execute(sql`update ledger_owners set balance = balance + 5 where owner_id = ${owner}`);

    const verify = await run("verify");
    expect(verify.code).toBe(1);
    expect(verify.text).toContain("FAIL balance-equals-entries");
    expect(verify.text).toContain(`${owner}: balance 15, entries sum to 10`);

    const dry = await run("rebuild");
    expect(dry.code).toBe(1);
    expect(dry.text).toContain(`${owner}: stored 15 (#1), from entries 10 (#1)`);
    expect((await ledger.balance(owner)).balance).toBe(15);

    const repair = await run("rebuild", "--repair");
    expect(repair.code).toBe(0);
    expect(repair.text).toContain("1 balance(s) and 0 grant(s) repaired");
    expect((await ledger.balance(owner)).balance).toBe(10);
    expect((await run("verify")).code).toBe(0);
    expect((await run("rebuild")).text).toContain("nothing to do");
  });

  it("recreates a missing balance row from the entries", async () => {
    const owner = freshOwner();
    await ledger.post({ owner_id: owner, operation: "CREDIT_ADD", nonce: freshNonce() });
    await tdb().db.execute(sql`delete from ledger_owners where owner_id = ${owner}`);
    expect((await run("rebuild")).text).toContain(`${owner}: stored missing, from entries 10 (#1)`);
    expect((await run("rebuild", "--repair")).code).toBe(0);
    expect((await ledger.balance(owner)).balance).toBe(10);
  });

  it("finds a broken running-balance chain and a negative running balance", async () => {
    const owner = freshOwner();
    await ledger.post({ owner_id: owner, operation: "CREDIT_ADD", nonce: freshNonce() });
    const { entry } = await ledger.post({ owner_id: owner, operation: "CREDIT_SPEND", nonce: freshNonce() });
    await tamper(() =>
      tdb().db.execute(sql`update ledger_entries set balance_after = 8 where id = ${entry.id}`),
    );
    const broken = await run("verify");
    expect(broken.code).toBe(1);
    expect(broken.text).toContain("FAIL running-balance-chain");
    expect(broken.text).toContain(`${owner} entry ${entry.id} (#2): 10 + -1 <> 8`);
    await tamper(() =>
      tdb().db.execute(sql`update ledger_entries set balance_after = 9 where id = ${entry.id}`),
    );
    expect((await run("verify")).code).toBe(0);
  });

  it("finds a gap in an owner's sequence", async () => {
    const owner = freshOwner();
    await ledger.post({ owner_id: owner, operation: "CREDIT_ADD", nonce: freshNonce() });
    const { entry } = await ledger.post({ owner_id: owner, operation: "CREDIT_ADD", nonce: freshNonce() });
    await tamper(() => tdb().db.execute(sql`update ledger_entries set sequence = 3 where id = ${entry.id}`));
    const gap = await run("verify");
    expect(gap.text).toContain("FAIL running-balance-chain");
    expect(gap.text).toContain("FAIL projection-head");
    await tamper(() => tdb().db.execute(sql`update ledger_entries set sequence = 2 where id = ${entry.id}`));
    expect((await run("verify")).code).toBe(0);
  });

  describe("the events", () => {
    it("finds an entry whose event is missing (a gap in the positions), and one whose event disagrees", async () => {
      const owner = freshOwner();
      const { entry } = await ledger.post({ owner_id: owner, operation: "CREDIT_ADD", nonce: freshNonce() });
      await ledger.post({ owner_id: owner, operation: "CREDIT_ADD", nonce: freshNonce() });
      await tdb().db.execute(
        sql`create temporary table kept as select * from ledger_events where entry_id = ${entry.id}`,
      );
      try {
        await tdb().db.execute(sql`delete from ledger_events where entry_id = ${entry.id}`);
        const gone = await run("verify");
        expect(gone.code).toBe(1);
        expect(gone.text).toContain("FAIL events-gapless");
        expect(gone.text).toContain("FAIL event-per-entry");
        expect(gone.text).toContain(`entry ${entry.id} (${owner} #1): 0 entry.created events`);
      } finally {
        await tdb().db.execute(sql`insert into ledger_events select * from kept`);
        await tdb().db.execute(sql`drop table kept`);
      }
      expect((await run("verify")).code).toBe(0);

      const change = (amount: number) =>
        tamperEvents(() =>
          tdb().db.execute(
            sql`update ledger_events set data = jsonb_set(data, '{amount}', to_jsonb(${amount}::int)) where entry_id = ${entry.id}`,
          ),
        );
      await change(11);
      const differs = await run("verify");
      expect(differs.text).toContain("FAIL events-match-entries");
      expect(differs.text).toContain(`(entry.created): differs from entry ${entry.id}`);
      await change(10);
      expect((await run("verify")).code).toBe(0);
    });

    it("finds an owner's events out of its sequence order, and a hold entry without its hold event", async () => {
      const owner = freshOwner();
      await ledger.post({ owner_id: owner, operation: "CREDIT_ADD", nonce: freshNonce() });
      const made = await submitHold(ledger, {
        owner_id: owner,
        operation: "TEST_DEBIT",
        amount: 3,
        nonce: freshNonce(),
      });
      const swap = () =>
        tamperEvents(() =>
          tdb().db.execute(sql`update ledger_events set sequence = case sequence when 1 then 2 else 1 end,
                                 entry_id = (select id from ledger_entries e where e.owner_id = ${owner}
                                             and e.sequence = case ledger_events.sequence when 1 then 2 else 1 end)
                               where owner_id = ${owner} and type = 'entry.created'`),
        );
      await swap();
      const swapped = await run("verify");
      expect(swapped.text).toContain("FAIL events-in-owner-order");
      await swap();
      expect((await run("verify")).code).toBe(0);

      await tamperEvents(() =>
        tdb().db.execute(
          sql`update ledger_events set type = 'hold.released' where type = 'hold.created' and owner_id = ${owner}`,
        ),
      );
      const wrong = await run("verify");
      expect(wrong.text).toContain("FAIL hold-events-match-entries");
      expect(wrong.text).toContain(`hold ${made.hold.id}): 0 hold.created events, 1 of another kind`);
      await tamperEvents(() =>
        tdb().db.execute(
          sql`update ledger_events set type = 'hold.created' where type = 'hold.released' and owner_id = ${owner}`,
        ),
      );
      expect((await run("verify")).code).toBe(0);
    });

    it("accepts what retention pruned, and checks every entry after it", async () => {
      const owner = freshOwner();
      await ledger.post({ owner_id: owner, operation: "CREDIT_ADD", nonce: freshNonce() });
      const db = sqlClientOf(tdb().db);
      const head = await lastEventPosition(db);
      expect(
        await pruneEvents(db, { before: new Date(Date.now() + 1_000), through: head, limit: 1_000_000 }),
      ).toBe(head);
      expect((await run("verify")).code).toBe(0);
      await new Promise((resolve) => setTimeout(resolve, 1_100));
      const { entry } = await ledger.post({ owner_id: owner, operation: "CREDIT_ADD", nonce: freshNonce() });
      expect((await run("verify")).code).toBe(0);
      await tdb().db.execute(
        sql`create temporary table kept as select * from ledger_events where entry_id = ${entry.id}`,
      );
      try {
        await tdb().db.execute(sql`delete from ledger_events where entry_id = ${entry.id}`);
        const gone = await run("verify");
        expect(gone.text).toContain("FAIL event-per-entry");
        expect(gone.text).toContain(`entry ${entry.id} (${owner} #2): 0 entry.created events`);
      } finally {
        await tdb().db.execute(sql`insert into ledger_events select * from kept`);
        await tdb().db.execute(sql`drop table kept`);
      }
      expect((await run("verify")).code).toBe(0);
    });

    it("notices when the events' guard is switched off", async () => {
      await tamperEvents(async () => {
        const off = await run("verify");
        expect(off.text).toContain("FAIL events-append-only-triggers");
        expect(off.text).toContain("ledger_events: no enabled UPDATE guard");
      });
      expect((await run("verify")).code).toBe(0);
    });
  });

  it("notices when the append-only guard is switched off", async () => {
    await tamper(async () => {
      const off = await run("verify");
      expect(off.code).toBe(1);
      expect(off.text).toContain("FAIL append-only-triggers");
      expect(off.text).toContain("ledger_entries: no enabled UPDATE guard");
      expect(off.text).toContain("FAIL append-only-refuses");
      expect(off.text).toContain("UPDATE ledger_entries was accepted (and rolled back)");
    });
    await tdb().db.execute(
      sql`alter table ledger_allocations disable trigger ledger_allocations_append_only`,
    );
    try {
      const off = await run("verify");
      expect(off.text).toContain("ledger_allocations: no enabled UPDATE guard");
    } finally {
      await tdb().db.execute(
        sql`alter table ledger_allocations enable trigger ledger_allocations_append_only`,
      );
    }
    expect((await run("verify")).code).toBe(0);
  });

  it("finds a grant whose remainder disagrees with its allocations, and repairs it with --repair", async () => {
    const owner = freshOwner();
    const expires_at = new Date(Date.now() + 86_400_000).toISOString();
    await ledger.post({ owner_id: owner, operation: "CREDIT_ADD", nonce: freshNonce(), expires_at });
    await ledger.post({ owner_id: owner, operation: "TEST_DEBIT", amount: 4, nonce: freshNonce() });
    expect((await run("verify")).code).toBe(0);
    await tdb().db.execute(sql`update ledger_grants set remaining = 9 where owner_id = ${owner}`);

    const verify = await run("verify");
    expect(verify.code).toBe(1);
    expect(verify.text).toContain("FAIL grant-remaining");
    expect(verify.text).toContain(`${owner} grant #1.0: remaining 9, amount 10 less allocations 4`);
    expect(verify.text).toContain("FAIL balance-is-credits-plus-remainders");

    const dry = await run("rebuild");
    expect(dry.code).toBe(1);
    expect(dry.text).toContain(`${owner} grant #1.0: stored remaining 9, from entries remaining 6`);
    const repair = await run("rebuild", "--repair");
    expect(repair.code).toBe(0);
    expect(repair.text).toContain("0 balance(s) and 1 grant(s) repaired");
    expect((await run("verify")).code).toBe(0);
  });

  it("finds a debit that passed over the soonest-expiring credits", async () => {
    const owner = freshOwner();
    const soon = new Date(Date.now() + 86_400_000).toISOString();
    const later = new Date(Date.now() + 2 * 86_400_000).toISOString();
    await ledger.post({ owner_id: owner, operation: "CREDIT_ADD", nonce: freshNonce(), expires_at: later });
    await ledger.post({ owner_id: owner, operation: "CREDIT_ADD", nonce: freshNonce(), expires_at: soon });
    await ledger.post({ owner_id: owner, operation: "TEST_DEBIT", amount: 4, nonce: freshNonce() });
    expect((await run("verify")).code).toBe(0);
    // Move the debit's draw from the soon grant (#2) to the later one (#1), remainders to match.
    const moveDraw = async (from: number, to: number) => {
      await tdb().db.execute(
        sql`alter table ledger_allocations disable trigger ledger_allocations_append_only`,
      );
      try {
        await tdb().db.execute(
          sql`update ledger_allocations set grant_sequence = ${to} where owner_id = ${owner} and sequence = 3`,
        );
      } finally {
        await tdb().db.execute(
          sql`alter table ledger_allocations enable trigger ledger_allocations_append_only`,
        );
      }
      await tdb().db.execute(
        sql`update ledger_grants set remaining = case sequence when ${from} then 10 else 6 end where owner_id = ${owner}`,
      );
    };
    await moveDraw(2, 1);
    const verify = await run("verify");
    expect(verify.code).toBe(1);
    expect(verify.text).toContain("FAIL burn-order");
    expect(verify.text).toContain(`${owner} #3: grant #2.0`);
    expect(verify.text.match(/^FAIL /gm)).toEqual(["FAIL "]);
    await moveDraw(1, 2);
    expect((await run("verify")).code).toBe(0);
  });

  it("finds an EXPIRY entry that names another expiry than its grant's", async () => {
    const owner = freshOwner();
    const expires_at = new Date(Date.now() + 300).toISOString();
    await ledger.post({ owner_id: owner, operation: "CREDIT_ADD", nonce: freshNonce(), expires_at });
    await new Promise((resolve) => setTimeout(resolve, 400));
    await ledger.post({ owner_id: owner, operation: "TEST_ZERO", nonce: freshNonce() });
    const [, expiry] = (await ledger.entries({ owner_id: owner })).entries;
    expect(expiry).toMatchObject({ operation: "EXPIRY", expires_at });
    expect((await run("verify")).code).toBe(0);
    const id = expiry?.id ?? 0;
    await tamper(() =>
      tdb().db.execute(
        sql`update ledger_entries set expires_at = expires_at + interval '1 hour' where id = ${id}`,
      ),
    );
    const verify = await run("verify");
    expect(verify.text).toContain("FAIL expiries-of-grants");
    expect(verify.text).toContain(`${owner} #2: EXPIRY of grant #1.0 names another expiry`);
    await tamper(() =>
      tdb().db.execute(sql`update ledger_entries set expires_at = ${expires_at} where id = ${id}`),
    );
    expect((await run("verify")).code).toBe(0);
  });

  it("finds a debit that took credits from a grant after its expiry", async () => {
    const owner = freshOwner();
    const expires_at = new Date(Date.now() + 86_400_000).toISOString();
    await ledger.post({ owner_id: owner, operation: "CREDIT_ADD", nonce: freshNonce(), expires_at });
    const { entry } = await ledger.post({
      owner_id: owner,
      operation: "TEST_DEBIT",
      amount: 4,
      nonce: freshNonce(),
    });
    await tamper(() =>
      tdb().db.execute(
        sql`update ledger_entries set created_at = ${expires_at}::timestamptz + interval '1 second' where id = ${entry.id}`,
      ),
    );
    const verify = await run("verify");
    expect(verify.text).toContain("FAIL no-spend-after-expiry");
    expect(verify.text).toContain(`${owner} #2 took 4 from grant #1.0`);
    await tamper(() =>
      tdb().db.execute(
        sql`update ledger_entries set created_at = ${entry.created_at}::timestamptz where id = ${entry.id}`,
      ),
    );
    expect((await run("verify")).code).toBe(0);
  });

  describe("holds, reversals, transfers and suspension", () => {
    /** An owner with 10 expiring and 10 lasting credits, a hold of 6 captured for 4, one of 3 active, a
     * reversal of 2 of the capture, and a transfer of 5 to a second owner. */
    async function history() {
      const owner = freshOwner();
      const other = freshOwner();
      const expires_at = new Date(Date.now() + 86_400_000).toISOString();
      await ledger.post({ owner_id: owner, operation: "CREDIT_ADD", nonce: freshNonce(), expires_at });
      await ledger.post({ owner_id: owner, operation: "CREDIT_ADD", nonce: freshNonce() });
      const first = await submitHold(ledger, {
        owner_id: owner,
        operation: "TEST_DEBIT",
        amount: 6,
        nonce: freshNonce(),
      });
      const captured = await submitCapture(ledger, first.hold.id, { nonce: freshNonce(), amount: 4 });
      const active = await submitHold(ledger, {
        owner_id: owner,
        operation: "TEST_DEBIT",
        amount: 3,
        nonce: freshNonce(),
      });
      await reverseEntry(ledger, captured.entry.id, { nonce: freshNonce(), amount: 2 });
      await transferCredits(ledger, {
        from_owner_id: owner,
        to_owner_id: other,
        amount: 5,
        nonce: freshNonce(),
      });
      expect(await ledger.balance(owner)).toMatchObject({ balance: 13, held: 3, available: 10 });
      return { owner, other, captured, active };
    }

    it("verify passes on them, and finds a held projection or a held_after that disagrees", async () => {
      const { owner } = await history();
      expect((await run("verify")).code).toBe(0);
      await tdb().db.execute(sql`update ledger_owners set held = 1 where owner_id = ${owner}`);
      const verify = await run("verify");
      expect(verify.text).toContain("FAIL held-is-active-holds");
      expect(verify.text).toContain(`${owner}: held 1, active holds 3`);
      expect(verify.text).toContain("FAIL held-after-chain");
      const repair = await run("rebuild", "--repair");
      expect(repair.text).toContain("held: stored 1, from holds 3");
      expect((await run("verify")).code).toBe(0);
    });

    it("finds a capture above its hold, and a hold without its ending entry", async () => {
      const { captured, active } = await history();
      await tdb().db.execute(sql`update ledger_holds set captured_amount = 5 where id = ${captured.hold.id}`);
      const verify = await run("verify");
      expect(verify.text).toContain("FAIL holds-match-entries");
      expect(verify.text).toContain(`${captured.hold.id}: captured ended by TEST_DEBIT -4`);
      await tdb().db.execute(sql`update ledger_holds set captured_amount = 4 where id = ${captured.hold.id}`);
      await tdb().db.execute(
        sql`update ledger_holds set status = 'released', ended_at = now(), end_sequence = 1 where id = ${active.hold.id}`,
      );
      expect((await run("verify")).text).toContain(`${active.hold.id}: released without its ending entry`);
      await tdb().db.execute(
        sql`update ledger_holds set status = 'active', ended_at = null, end_sequence = null where id = ${active.hold.id}`,
      );
      expect((await run("verify")).code).toBe(0);
    });

    it("finds reversals that add up to more than their original", async () => {
      const { captured } = await history();
      await tamper(() =>
        tdb().db.execute(sql`update ledger_entries set amount = 5 where reverses = ${captured.entry.id}`),
      );
      const verify = await run("verify");
      expect(verify.text).toContain("FAIL reversals-within-original");
      expect(verify.text).toContain(`entry ${captured.entry.id}: reversals of 5 for an entry of -4`);
      await tamper(() =>
        tdb().db.execute(sql`update ledger_entries set amount = 2 where reverses = ${captured.entry.id}`),
      );
      expect((await run("verify")).code).toBe(0);
    });

    it("finds a transfer whose receiving side lost its pair or its carried expiry", async () => {
      const { other } = await history();
      await tdb().db.execute(
        sql`update ledger_grants set expires_at = expires_at + interval '1 day' where owner_id = ${other}`,
      );
      const verify = await run("verify");
      expect(verify.text).toContain("FAIL transfer-pairs");
      expect(verify.text).toContain("expiring credits sent and received differ");
      await tdb().db.execute(
        sql`update ledger_grants set expires_at = expires_at - interval '1 day' where owner_id = ${other}`,
      );
      await tamper(() =>
        tdb().db.execute(
          sql`update ledger_entries set nonce = nonce || 'x' where owner_id = ${other} and operation = 'TRANSFER_IN'`,
        ),
      );
      expect((await run("verify")).text).toContain("TRANSFER_IN without its TRANSFER_OUT");
      await tamper(() =>
        tdb().db.execute(
          sql`update ledger_entries set nonce = left(nonce, -1) where owner_id = ${other} and operation = 'TRANSFER_IN'`,
        ),
      );
      expect((await run("verify")).code).toBe(0);
    });

    it("finds a receiver whose carried expiring credits were dropped (they would never expire)", async () => {
      const { other } = await history();
      const carried = await tdb().db.execute(
        sql`select count(*)::int as n from ledger_grants where owner_id = ${other}`,
      );
      expect(JSON.stringify(carried)).toContain('"n":1');
      await tdb().db.execute(sql`alter table ledger_grants rename to ledger_grants_kept`);
      await tdb().db.execute(sql`create table ledger_grants (like ledger_grants_kept including all)`);
      await tdb().db.execute(
        sql`insert into ledger_grants select * from ledger_grants_kept where owner_id <> ${other}`,
      );
      try {
        const verify = await run("verify");
        expect(verify.text).toContain("FAIL transfer-pairs");
        expect(verify.text).toContain("expiring credits sent and received differ");
      } finally {
        await tdb().db.execute(sql`drop table ledger_grants`);
        await tdb().db.execute(sql`alter table ledger_grants_kept rename to ledger_grants`);
      }
      expect((await run("verify")).code).toBe(0);
    });

    it("finds a reversal that gave credits back elsewhere than the debit took them from", async () => {
      const owner = freshOwner();
      const soon = new Date(Date.now() + 86_400_000).toISOString();
      const later = new Date(Date.now() + 2 * 86_400_000).toISOString();
      await ledger.post({ owner_id: owner, operation: "CREDIT_ADD", nonce: freshNonce(), expires_at: soon });
      await ledger.post({ owner_id: owner, operation: "CREDIT_ADD", nonce: freshNonce(), expires_at: later });
      // #3 takes 4 from grant #1; #4 takes 6 from #1 and 4 from #2; #5 gives #3's 4 back to grant #1.
      const spend = await ledger.post({
        owner_id: owner,
        operation: "TEST_DEBIT",
        amount: 4,
        nonce: freshNonce(),
      });
      await ledger.post({ owner_id: owner, operation: "TEST_DEBIT", amount: 10, nonce: freshNonce() });
      await reverseEntry(ledger, spend.entry.id, { nonce: freshNonce() });
      expect((await run("verify")).code).toBe(0);
      // Tampered: the give-back lands on the later grant #2, which #3 never spent (its credits would
      // then live a day longer).
      const moveGiveBack = async (to: number, remainders: [number, number]) => {
        await tdb().db.execute(
          sql`alter table ledger_allocations disable trigger ledger_allocations_append_only`,
        );
        try {
          await tdb().db.execute(sql`update ledger_allocations set grant_sequence = ${to}
            where owner_id = ${owner} and sequence = 5`);
        } finally {
          await tdb().db.execute(
            sql`alter table ledger_allocations enable trigger ledger_allocations_append_only`,
          );
        }
        await tdb().db.execute(sql`update ledger_grants
          set remaining = case sequence when 1 then ${remainders[0]}::bigint else ${remainders[1]}::bigint end
          where owner_id = ${owner}`);
      };
      await moveGiveBack(2, [0, 10]);
      const verify = await run("verify");
      expect(verify.text).toContain("FAIL reversals-return-to-source");
      expect(verify.text).toContain(
        `${owner} #5 (reversing entry ${spend.entry.id}): gave back 4 to grant #2.0, which it took 0 from`,
      );
      await moveGiveBack(1, [4, 6]);
      expect((await run("verify")).code).toBe(0);
    });

    it("finds a grant holding less than its active holds took from it", async () => {
      const { active } = await history();
      await tdb().db.execute(
        sql`update ledger_holds set draws = '[[1, 0, 30]]'::jsonb where id = ${active.hold.id}`,
      );
      const verify = await run("verify");
      expect(verify.text).toContain("FAIL holds-within-grants");
      expect(verify.text).toContain(", active holds hold 30");
      await tdb().db.execute(
        sql`update ledger_holds set draws = '[[1, 0, 3]]'::jsonb where id = ${active.hold.id}`,
      );
      expect((await run("verify")).code).toBe(0);
    });

    it("finds a write for a suspended owner that is not allowed, and a status that disagrees", async () => {
      const owner = freshOwner();
      await ledger.post({ owner_id: owner, operation: "CREDIT_ADD", nonce: freshNonce() });
      await ledger.submit(
        changeStatus("app-a", "suspended", { owner_id: owner, nonce: freshNonce(), reason: "fraud" }),
      );
      const spend = await ledger
        .post({ owner_id: owner, operation: "CREDIT_SPEND", nonce: freshNonce() })
        .then(
          () => "accepted",
          (e: { code?: string }) => e.code,
        );
      expect(spend).toBe("OWNER_SUSPENDED");
      expect((await run("verify")).code).toBe(0);
      // An entry slipped in while suspended (the sequence of a REINSTATEMENT turned into a debit).
      await ledger.submit(changeStatus("app-a", "active", { owner_id: owner, nonce: freshNonce() }));
      await ledger.post({ owner_id: owner, operation: "CREDIT_SPEND", nonce: freshNonce() });
      await tamper(() =>
        tdb().db.execute(
          sql`update ledger_entries set operation = 'REINSTATEMENT_' where owner_id = ${owner} and operation = 'REINSTATEMENT'`,
        ),
      );
      const verify = await run("verify");
      expect(verify.text).toContain("FAIL suspension-windows");
      expect(verify.text).toContain(`${owner} #4: CREDIT_SPEND while suspended`);
      expect(verify.text).toContain(`${owner}: status active, newest status entry SUSPENSION`);
      await tamper(() =>
        tdb().db.execute(
          sql`update ledger_entries set operation = 'REINSTATEMENT' where owner_id = ${owner} and operation = 'REINSTATEMENT_'`,
        ),
      );
      expect((await run("verify")).code).toBe(0);
    });
  });
});
