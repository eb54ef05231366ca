// The holds suite (src/testing/holds.ts) over a catalog with every kind of operation the apps' catalogs
// leave out between them: a variable debit whose minimum is above 1, a zero-amount operation, a debit
// with a daily limit, a credit of each kind. The apps run the same suite over their own catalogs.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { defineCatalog, fixed, LedgerService, sharedOperations, variable } from "../src/index.js";
import { submitHold, submitRelease } from "../src/features/holds/command.js";
import { findOwnersWithDueExpiries } from "../src/store/load.js";
import { ledgerAppFactory } from "../src/http/index.js";
import {
  expectLedgerInvariants,
  freshNonce,
  freshOwner,
  openTestDatabase,
  testDriver,
  type TestDatabase,
} from "../src/testing/index.js";
import { manualClock, silentLogger } from "../src/testing/deps.js";
import { describeHolds } from "../src/testing/holds.js";
import { op } from "../src/testing/requests.js";

const catalog = defineCatalog({
  ...sharedOperations,
  TEST_ZERO: fixed(0),
  TEST_METERED: variable({ direction: "debit", min: 2, max: 50 }),
  TEST_TOP_UP: variable({ direction: "credit", min: 1, max: 1_000 }),
  TEST_FEE: fixed(-3),
  TEST_DAILY_FEE: fixed(-2, { limit: "daily" }),
  TEST_ONCE_FEE: fixed(-4, { limit: "once" }),
});

const createApp = ledgerAppFactory({ name: "holds-test", catalog, title: "holds test", version: "0" });

let tdb: TestDatabase;
let app: ReturnType<typeof createApp>;

beforeAll(async () => {
  tdb = await openTestDatabase();
  app = createApp({ db: tdb.db, ping: () => tdb.ping(), logger: silentLogger });
});

afterAll(async () => {
  await expectLedgerInvariants(tdb);
  await tdb.close();
});

describe(`holds over a catalog of every kind [${testDriver()}]`, () => {
  describeHolds({
    app: () => app,
    db: () => tdb.db,
    ping: () => tdb.ping(),
    createApp,
    name: "holds-test",
    title: "holds test",
    catalog,
    foreignApp: "holds-other",
    foreignOperations: ["NOT_OFFERED_HERE"],
    validPost: (owner) => op(owner, "CREDIT_ADD"),
  });
});

describe(`the sweeper's finder and held grants [${testDriver()}]`, () => {
  it("passes over a due grant that live holds hold entirely, and finds it once its hold ends", async () => {
    const clock = manualClock("2026-05-01T00:00:00.000Z");
    const service = new LedgerService({ db: tdb.db, app: "holds-test", catalog, clock: clock.now });
    const owner = freshOwner();
    const expires_at = new Date(clock.now().getTime() + 60_000).toISOString();
    await service.post({ owner_id: owner, operation: "CREDIT_ADD", nonce: freshNonce(), expires_at });
    const hold = await submitHold(service, {
      owner_id: owner,
      operation: "TEST_METERED",
      amount: 10,
      nonce: freshNonce(),
      expires_in_s: 3_600,
    });
    clock.set("2026-05-01T00:02:00.000Z");
    const due = () => service.query((db) => findOwnersWithDueExpiries(db, clock.now(), 500));
    expect(await due()).not.toContain(owner);
    await submitRelease(service, hold.hold.id, { nonce: freshNonce() });
    // The release expired what it freed at once: nothing is left to find.
    expect(await due()).not.toContain(owner);
    expect(await service.balance(owner)).toMatchObject({ balance: 0, held: 0 });
  });
});
