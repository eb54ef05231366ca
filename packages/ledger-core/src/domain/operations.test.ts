import { describe, expect, it } from "vitest";
import { CatalogError } from "./errors.js";
import { AMOUNT_MAX } from "./limits.js";
import { defineCatalog, fixed, sharedOperations, variable, type OperationMap } from "./operations.js";

/** Builds a catalog from data the compiler cannot see, as a catalog loaded from config would be. */
const build = (ops: OperationMap) => () => defineCatalog(ops as never);

describe("defineCatalog at run time", () => {
  it("GoodOperation: builds a catalog of the shared operations plus the app's own", () => {
    const catalog = defineCatalog({
      ...sharedOperations,
      CONTENT_CREATION: fixed(-5),
      CONTENT_ACCESS: fixed(0),
    });
    expect(catalog.names).toEqual([
      "DAILY_REWARD",
      "SIGNUP_CREDIT",
      "CREDIT_SPEND",
      "CREDIT_ADD",
      "CONTENT_CREATION",
      "CONTENT_ACCESS",
    ]);
    expect(catalog.get("CONTENT_CREATION")).toEqual({ kind: "fixed", amount: -5 });
    expect(catalog.get("NOPE")).toBeUndefined();
    expect(catalog.get("toString")).toBeUndefined();
    expect(Object.isFrozen(catalog.operations)).toBe(true);
  });

  it("holds the seed's amounts for the shared operations", () => {
    const amounts = Object.fromEntries(Object.entries(sharedOperations).map(([k, v]) => [k, v.amount]));
    expect(amounts).toEqual({ DAILY_REWARD: 1, SIGNUP_CREDIT: 3, CREDIT_SPEND: -1, CREDIT_ADD: 10 });
    expect(sharedOperations.DAILY_REWARD.limit).toBe("daily");
    expect(sharedOperations.SIGNUP_CREDIT.limit).toBe("once");
    expect(sharedOperations.CREDIT_ADD.allowsExpiresAt).toBe(true);
  });

  it("BadOperation: throws when the shared operations are missing", () => {
    expect(build({ CONTENT_CREATION: fixed(-5) })).toThrow(CatalogError);
    expect(build({ CONTENT_CREATION: fixed(-5) })).toThrow(/DAILY_REWARD is missing/);
  });

  it.each([
    ["an amount", { DAILY_REWARD: fixed(2, { limit: "daily" }) }],
    ["a limit", { SIGNUP_CREDIT: fixed(3) }],
    ["the kind", { CREDIT_SPEND: variable({ direction: "debit", min: 1, max: 1 }) }],
    ["a description", { CREDIT_ADD: fixed(10, { description: "ten" }) }],
    ["an expiry", { CREDIT_SPEND: fixed(-1, { description: "Spend one credit", expiresAfterS: 60 }) }],
    [
      "whether the request may say expires_at",
      { CREDIT_ADD: fixed(10, { description: sharedOperations.CREDIT_ADD.description }) },
    ],
  ])("throws when a shared operation changes %s", (_what, change) => {
    expect(build({ ...sharedOperations, ...change })).toThrow(/is changed/);
  });

  it.each([
    ["a lower-case name", { content: fixed(1) }],
    ["a non-integer amount", { HALF: fixed(0.5) }],
    ["an amount over the request bound", { HUGE: fixed(AMOUNT_MAX + 1) }],
    ["a minimum of zero", { V: variable({ direction: "debit", min: 0, max: 5 }) }],
    ["max below min", { V: variable({ direction: "debit", min: 5, max: 4 }) }],
    ["an unknown direction", { V: { kind: "variable", direction: "sideways", min: 1, max: 2 } }],
    ["an unknown limit", { V: { kind: "fixed", amount: 1, limit: "weekly" } }],
    ["an unknown kind", { V: { kind: "other" } }],
    ["a reserved name", { EXPIRY: fixed(-1) }],
    ["a reserved name of the next features", { REVERSAL: fixed(1) }],
    ["an expiry on a debit", { D: fixed(-1, { expiresAfterS: 60 }) }],
    ["expires_at on a debit", { D: variable({ direction: "debit", min: 1, max: 5, allowsExpiresAt: true }) }],
    ["an expiry of zero seconds", { P: fixed(1, { expiresAfterS: 0 }) }],
    ["an expiry past ten years", { P: fixed(1, { expiresAfterS: 11 * 365 * 86_400 }) }],
    ["both an expiry and expires_at", { P: fixed(1, { expiresAfterS: 60, allowsExpiresAt: true }) }],
  ])("throws on %s", (_what, extra) => {
    expect(build({ ...sharedOperations, ...(extra as OperationMap) })).toThrow(CatalogError);
  });

  it("gives the error a stable code", () => {
    expect(build({})).toThrow(expect.objectContaining({ code: "CATALOG_INVALID" }));
  });
});
