// The holds suite (src/testing/holds.ts) over a catalog with every kind of operation the apps' catalogs
// leave out between them: a variable debit whose minimum is above 1, a zero-amount operation, a debit
// with a daily limit, a credit of each kind. The apps run the same suite over their own catalogs.
import { afterAll, beforeAll, describe } from "vitest";
import { defineCatalog, fixed, sharedOperations, variable } from "../src/index.js";
import { ledgerAppFactory } from "../src/http/index.js";
import {
  expectLedgerInvariants,
  openTestDatabase,
  testDriver,
  type TestDatabase,
} from "../src/testing/index.js";
import { silentLogger } from "../src/testing/deps.js";
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
