// Suspension across apps: an owner is one owner for every app on the ledger, so a suspension made
// through one app refuses the other app's operations too, shows in its reads, and either app may end it.
import { beforeAll, describe, expect, it } from "vitest";
import { ledgerAppFactory } from "../src/http/app.js";
import { freshOwner, testDriver, useTestDatabase } from "../src/testing/index.js";
import { silentLogger } from "../src/testing/deps.js";
import { expectProblem } from "../src/testing/problems.js";
import { apply, getEntries, op, postJson, readOwner, type RequestApp } from "../src/testing/requests.js";
import { reinstate, suspend } from "../src/testing/suspension.js";
import { testCatalog } from "./fixtures.js";

const tdb = useTestDatabase();
let appA: RequestApp;
let appB: RequestApp;

beforeAll(() => {
  const deps = { db: tdb().db, ping: () => tdb().ping(), logger: silentLogger };
  const spec = { catalog: testCatalog, version: "0.0.0" };
  appA = ledgerAppFactory({ ...spec, name: "app-a", title: "A" })(deps);
  appB = ledgerAppFactory({ ...spec, name: "app-b", title: "B" })(deps);
});

describe(`suspension across apps [${testDriver()}]`, () => {
  it("a suspension through one app refuses the other's operations, shows in its reads, and it may reinstate", async () => {
    const owner = freshOwner();
    await apply(appB, op(owner, "CREDIT_ADD"));
    const suspended = await suspend(appA, owner, { reason: "fraud seen by app-a" });
    expect(suspended.entry.app).toBe("app-a");

    await expectProblem(await postJson(appB, op(owner, "CREDIT_SPEND")), 422, "OWNER_SUSPENDED");
    expect(await readOwner(appB, owner)).toMatchObject({ status: "suspended", balance: 10 });

    const reinstated = await reinstate(appB, owner);
    expect(reinstated.entry.app).toBe("app-b");
    await apply(appA, op(owner, "CREDIT_SPEND"));
    const page = await getEntries(appA, owner);
    expect(page.entries.map((e) => [e.app, e.operation])).toEqual([
      ["app-a", "CREDIT_SPEND"],
      ["app-b", "REINSTATEMENT"],
      ["app-a", "SUSPENSION"],
      ["app-b", "CREDIT_ADD"],
    ]);
  });

  it("keeps each app's nonces its own: the same nonce in the other app is a new request", async () => {
    const owner = freshOwner();
    const nonce = "shared-nonce-suspension";
    await suspend(appA, owner, { nonce: `${nonce}-${owner}` });
    await expectProblem(
      await postJson(appB, op(owner, "CREDIT_ADD", { nonce: `${nonce}-${owner}` })),
      422,
      "OWNER_SUSPENDED",
    );
    const body = await reinstate(appB, owner, { nonce: `${nonce}-${owner}` });
    expect(body).toMatchObject({ status: "active", replayed: false, entry: { app: "app-b", sequence: 2 } });
  });
});
