// app2 under hostile input, run once on PGlite and once on real Postgres (see the vitest preset). The
// table comes from the shared generator, built from app2's catalog and app1's own operations: every
// route, every case answered with its exact problem, no stack or SQL in it, and nothing written.
import { app1Catalog } from "@ledger/app1/operations";
import { sharedOperations } from "@ledger/core";
import { testDriver } from "@ledger/core/testing";
import { expectHostileRefused, hostileCases, named } from "@ledger/core/testing/http";
import { useTestApp } from "@ledger/core/testing/surface";
import { describe, expect, it } from "vitest";
import { createApp } from "../src/app.js";
import { app2Catalog } from "../src/operations.js";

/** app1's own operations (its catalog less the shared ones), which app2 must not know. */
const APP1_OPERATIONS = app1Catalog.names.filter((name) => !Object.hasOwn(sharedOperations, name));

const cases = hostileCases({ catalog: app2Catalog, otherAppOperations: APP1_OPERATIONS });

const t = useTestApp(createApp);

describe(`app2 hostile input [${testDriver()}]`, () => {
  it("names every case once, and refuses app1's own operations", () => {
    const names = cases.map((c) => c.name);
    expect(new Set(names).size).toBe(names.length);
    expect([...APP1_OPERATIONS].sort()).toEqual(["CONTENT_ACCESS", "CONTENT_CREATION"]);
  });

  describe.each(named(cases))("%s", (_, hostile) => {
    it(`answers ${hostile.status} ${hostile.code}, leaks nothing and writes nothing`, () =>
      expectHostileRefused(t.app(), t.db(), hostile));
  });
});
