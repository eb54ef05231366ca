// Many processes, one database: app1 and app2 as two real OS processes on one fresh Postgres database,
// sent at once a mix of operations over 200 owners plus 200 CREDIT_SPEND on one hot owner who has 25
// credits. Every answer is recorded; afterwards the history read back over HTTP must hold exactly the
// acknowledged operations, the balances must equal the sum of the acknowledged amounts, nothing may be
// below zero, and `ledger verify` must pass, in-process and as the CLI.
import { randomBytes } from "node:crypto";
import { openDatabase } from "@ledger/core/db";
import { expectLedgerInvariants, testDatabaseUrl } from "@ledger/core/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AppProcess,
  checkLedger,
  countEntries,
  createDatabase,
  dropDatabase,
  freePort,
  inPool,
  postOnce,
  readLedger,
  runLedgerCli,
  seededRandom,
  signedAmount,
  type AppName,
  type PostRecord,
  type PostBody,
  type RetryOptions,
} from "../src/index.js";

const OWNERS = 200;
const HOT_CREDITS = 25;
const HOT_SPENDS = 200;
const SPENDS_PER_OWNER = 4;
/** Requests in flight at once for the mix (the hot owner's 200 all go at once, besides). */
const MIX_CONCURRENCY = 32;
/** No process is killed here: every request must get a definite answer well within this. */
const REQUEST_TIMEOUT_MS = 15_000;
const READ: RetryOptions = { timeoutMs: REQUEST_TIMEOUT_MS, giveUpAfterMs: 30_000 };

let database: { name: string; url: string } | undefined;
let apps: Record<AppName, AppProcess> | undefined;

function running(): Record<AppName, AppProcess> {
  if (!apps) throw new Error("the app processes did not start");
  return apps;
}

beforeAll(async () => {
  database = await createDatabase(testDatabaseUrl(), "ledger_harness");
  apps = {
    // app1 as two worker processes on one port (LEDGER_WORKERS): three writers in all.
    app1: new AppProcess({ app: "app1", port: await freePort(), databaseUrl: database.url, workers: 2 }),
    app2: new AppProcess({ app: "app2", port: await freePort(), databaseUrl: database.url }),
  };
  // Both at once, on a database neither has migrated: the migration lock makes one wait for the other.
  apps.app1.start();
  apps.app2.start();
  await Promise.all(Object.values(apps).map((a) => a.waitHealthy({ timeoutMs: 60_000 })));
}, 90_000);

afterAll(async () => {
  // Whatever happened above: no process left running, no database left behind.
  await Promise.allSettled(Object.values(apps ?? {}).map((a) => a.stop()));
  if (database) await dropDatabase(testDatabaseUrl(), database.name);
});

/** One POST, recorded. No retries: without failures injected, an unknown outcome is itself a failure. */
async function send(app: AppName, body: PostBody): Promise<PostRecord> {
  const attempt = await postOnce(running()[app], body, REQUEST_TIMEOUT_MS);
  return {
    app,
    body,
    amount: signedAmount(app, body.operation, body.amount),
    attempts: 1,
    unknowns: attempt.kind === "unknown" ? [attempt.reason] : [],
    outcome: attempt.kind === "unknown" ? { kind: "unresolved", detail: attempt.detail } : attempt,
  };
}

function shuffled<T>(items: T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

const other = (app: AppName): AppName => (app === "app1" ? "app2" : "app1");

describe("two app processes on one Postgres", () => {
  it("a concurrent mix over 200 owners and a hot owner: nothing lost, duplicated or overdrawn", async () => {
    const run = randomBytes(3).toString("hex");
    const owners = Array.from({ length: OWNERS }, (_, i) => `mp_${run}_${i}`);
    const hot = `mp_${run}_hot`;
    const nonce = (label: string) => `mp-${run}-${label}`;

    // Credits first. Owner i: CREDIT_ADD (+10) from one app, SIGNUP_CREDIT (+3) from the other, and
    // every fourth REFERRAL_BONUS (+5, app2's own): 13 or 18. The hot owner: 10 + 10 + 5 = 25.
    const credits: [AppName, PostBody][] = owners.flatMap((owner, i) => {
      const first: AppName = i % 2 === 0 ? "app1" : "app2";
      const ops: [AppName, PostBody][] = [
        [first, { owner_id: owner, operation: "CREDIT_ADD", nonce: nonce(`add-${i}`) }],
        [other(first), { owner_id: owner, operation: "SIGNUP_CREDIT", nonce: nonce(`signup-${i}`) }],
      ];
      if (i % 4 === 0)
        ops.push(["app2", { owner_id: owner, operation: "REFERRAL_BONUS", nonce: nonce(`ref-${i}`) }]);
      return ops;
    });
    credits.push(
      ["app1", { owner_id: hot, operation: "CREDIT_ADD", nonce: nonce("hot-add-1") }],
      ["app2", { owner_id: hot, operation: "CREDIT_ADD", nonce: nonce("hot-add-2") }],
      ["app2", { owner_id: hot, operation: "REFERRAL_BONUS", nonce: nonce("hot-ref") }],
    );
    const creditRecords = await inPool(
      credits.map(
        ([app, body]) =>
          () =>
            send(app, body),
      ),
      MIX_CONCURRENCY,
    );
    expect(creditRecords.filter((r) => r.outcome.kind !== "acked" || r.outcome.status !== 201)).toEqual([]);

    // Then, all at once, from both processes. Owner i is asked for 4 x CREDIT_SPEND (alternating apps),
    // CONTENT_CREATION (-5, app1), TOKEN_USAGE (-(10 + i % 5), app2): 19 to 23 credits against 13 or
    // 18, so some must be refused for lack of credits. Also a CONTENT_ACCESS (0, always applied) and a
    // second SIGNUP_CREDIT under a new nonce (LIMIT_REACHED). Shuffled, so the requests for one owner
    // arrive interleaved with everyone else's and race each other across the two processes.
    const mix: [AppName, PostBody][] = owners.flatMap((owner, i) => [
      ...Array.from({ length: SPENDS_PER_OWNER }, (_, k): [AppName, PostBody] => [
        k % 2 === 0 ? "app1" : "app2",
        { owner_id: owner, operation: "CREDIT_SPEND", nonce: nonce(`spend-${i}-${k}`) },
      ]),
      ["app1", { owner_id: owner, operation: "CONTENT_CREATION", nonce: nonce(`create-${i}`) }],
      [
        "app2",
        { owner_id: owner, operation: "TOKEN_USAGE", amount: 10 + (i % 5), nonce: nonce(`tokens-${i}`) },
      ],
      ["app1", { owner_id: owner, operation: "CONTENT_ACCESS", nonce: nonce(`access-${i}`) }],
      ["app2", { owner_id: owner, operation: "SIGNUP_CREDIT", nonce: nonce(`signup-again-${i}`) }],
    ]);
    const hotSpends: [AppName, PostBody][] = Array.from({ length: HOT_SPENDS }, (_, k) => [
      k % 2 === 0 ? "app1" : "app2",
      { owner_id: hot, operation: "CREDIT_SPEND", nonce: nonce(`hot-spend-${k}`) },
    ]);
    // A tenth of the credits sent again, same app, same nonce: the original answer, nothing written.
    const replays = creditRecords.filter((_, k) => k % 10 === 0);
    const [mixRecords, hotRecords, replayAnswers] = await Promise.all([
      inPool(
        shuffled(mix, seededRandom(0x5eed)).map(
          ([app, body]) =>
            () =>
              send(app, body),
        ),
        MIX_CONCURRENCY,
      ),
      Promise.all(hotSpends.map(([app, body]) => send(app, body))),
      Promise.all(replays.map((r) => postOnce(running()[r.app], r.body, REQUEST_TIMEOUT_MS))),
    ]);
    const records = [...creditRecords, ...mixRecords, ...hotRecords];

    // Every request had a definite answer, and only the refusals the mix is built to meet.
    expect(records.filter((r) => r.outcome.kind === "unresolved").map((r) => r.outcome)).toEqual([]);

    // The hot owner: exactly as many spends as credits succeeded, each at a distinct running balance.
    const hotAcked = hotRecords.flatMap((r) => (r.outcome.kind === "acked" ? [r.outcome] : []));
    const hotRefused = hotRecords.flatMap((r) => (r.outcome.kind === "refused" ? [r.outcome] : []));
    expect(hotAcked.map((o) => o.status)).toEqual(Array(HOT_CREDITS).fill(201));
    expect(hotRefused.map((o) => `${o.status} ${o.code}`)).toEqual(
      Array(HOT_SPENDS - HOT_CREDITS).fill("422 INSUFFICIENT_BALANCE"),
    );
    expect(hotAcked.map((o) => o.result.balance).sort((a, b) => a - b)).toEqual(
      Array.from({ length: HOT_CREDITS }, (_, i) => i),
    );
    // The spends alternate between the processes (hotSpends). Which one wins how many is up to
    // scheduling: with group commit one process can take all 25 in a single batch.

    // Replays: 200 with the original entry, marked replayed.
    replayAnswers.forEach((answer, k) => {
      const original = replays[k]?.outcome;
      expect(answer.kind).toBe("acked");
      if (answer.kind !== "acked" || original?.kind !== "acked") return;
      expect(answer.status).toBe(200);
      expect(answer.result.replayed).toBe(true);
      expect(answer.result.entry).toEqual(original.result.entry);
    });

    // Read everything back over HTTP, half through each process, and count the table itself.
    const everyone = [...owners, hot];
    const { entries, balances, expiring, readWindow } = await readLedger(running(), everyone, READ, 8);
    if (!database) throw new Error("no database");
    const counts = await countEntries(database.url);

    // Every acknowledged operation present once with the answer it was given, every refused one absent,
    // nothing unsent, each balance the sum of its acknowledged amounts, each running balance a chain.
    const violations = checkLedger(
      records,
      {
        owners: everyone,
        entries,
        balances,
        expiring,
        readWindow,
        totalEntries: counts.total,
        totalExpiryEntries: counts.expiry,
      },
      { allowedRefusals: new Set(["INSUFFICIENT_BALANCE", "LIMIT_REACHED"]) },
    );
    expect(violations).toEqual([]);
    expect(balances.get(hot)).toBe(0);
    expect([...balances.values()].filter((b) => b < 0)).toEqual([]);

    // Per owner: the duplicate sign-up was refused by its limit, at least one debit was refused for
    // lack of credits, and each refusal was deserved: the balance only fell during the debits, so the
    // final balance must still be below every amount that was refused.
    for (const owner of owners) {
      const mine = mixRecords.filter((r) => r.body.owner_id === owner);
      const refusedFor = (code: string) =>
        mine.filter((r) => r.outcome.kind === "refused" && r.outcome.code === code);
      expect(
        refusedFor("LIMIT_REACHED").map((r) => r.body.operation),
        owner,
      ).toEqual(["SIGNUP_CREDIT"]);
      const short = refusedFor("INSUFFICIENT_BALANCE");
      expect(short.length, owner).toBeGreaterThan(0);
      const smallestRefused = Math.min(...short.map((r) => -r.amount));
      expect(balances.get(owner) ?? -1, owner).toBeLessThan(smallestRefused);
    }

    // verify: in-process through @ledger/core/db, and as the CLI an operator would run.
    const audit = await openDatabase({ url: database.url, migrate: false, poolSizeMax: 2 });
    try {
      await expectLedgerInvariants(audit);
    } finally {
      await audit.close();
    }
    const cli = await runLedgerCli(["verify"], database.url);
    expect(cli.code, `${cli.stdout}${cli.stderr}`).toBe(0);
    expect(cli.stdout).toMatch(/verify: all \d+ checks passed/);

    // Neither process fell over on the way.
    expect(Object.values(running()).map((a) => [a.app, a.crashes, a.running])).toEqual([
      ["app1", 0, true],
      ["app2", 0, true],
    ]);
  }, 120_000);
});
