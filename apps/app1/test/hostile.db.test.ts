// app1 under hostile input, run once on PGlite and once on real Postgres (see the vitest preset). The
// table comes from the shared generator, built from app1's catalog and app2's own operations: every
// route, every case answered with its exact problem, no stack or SQL in it, and nothing written.
import { testDriver } from "@ledger/core/testing";
import { expectHostileRefused, hostileCases, named } from "@ledger/core/testing/http";
import { useTestApp } from "@ledger/core/testing/surface";
import { describe, expect, it } from "vitest";
import { createApp } from "../src/app.js";
import { app1Catalog } from "../src/operations.js";

/** app2's own operations, named rather than imported: app2's suites import app1, not the other way. */
const APP2_OPERATIONS = ["TOKEN_USAGE", "USAGE_REFUND", "REFERRAL_BONUS"] as const;

const cases = hostileCases({ catalog: app1Catalog, otherAppOperations: APP2_OPERATIONS });

const t = useTestApp(createApp);

describe(`app1 hostile input [${testDriver()}]`, () => {
  it("names every case once", () => {
    const names = cases.map((c) => c.name);
    expect(new Set(names).size).toBe(names.length);
  });

  describe.each(named(cases))("%s", (_, hostile) => {
    it(`answers ${hostile.status} ${hostile.code}, leaks nothing and writes nothing`, () =>
      expectHostileRefused(t.app(), t.db(), hostile));
  });
});
