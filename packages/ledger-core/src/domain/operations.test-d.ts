// Type-level tests, checked by tsc through vitest's typecheck mode. The seed's example:
//   class BadOperation(BaseLedgerOperation): CONTENT_CREATION = ...   # must fail: shared ones missing
//   class GoodOperation(BaseLedgerOperation): the four shared ones + CONTENT_CREATION   # works
import { describe, expectTypeOf, it } from "vitest";
import { defineCatalog, fixed, sharedOperations, variable, type OperationCatalogView } from "./operations.js";

describe("defineCatalog types", () => {
  it("GoodOperation: the shared operations plus an app's own compile", () => {
    const good = defineCatalog({ ...sharedOperations, CONTENT_CREATION: fixed(-5) });
    expectTypeOf(good.names).toEqualTypeOf<
      readonly ("DAILY_REWARD" | "SIGNUP_CREDIT" | "CREDIT_SPEND" | "CREDIT_ADD" | "CONTENT_CREATION")[]
    >();
    expectTypeOf(good.operations.CONTENT_CREATION.amount).toEqualTypeOf<-5>();
    expectTypeOf(good).toExtend<OperationCatalogView>();
  });

  it("BadOperation: a catalog without the shared operations does not compile", () => {
    expectTypeOf(() =>
      // @ts-expect-error DAILY_REWARD, SIGNUP_CREDIT, CREDIT_SPEND and CREDIT_ADD are missing
      defineCatalog({ CONTENT_CREATION: fixed(-5) }),
    ).toBeFunction();
  });

  it("a catalog missing one shared operation does not compile", () => {
    const { CREDIT_ADD: _dropped, ...rest } = sharedOperations;
    expectTypeOf(() =>
      // @ts-expect-error CREDIT_ADD is missing
      defineCatalog({ ...rest, CONTENT_CREATION: fixed(-5) }),
    ).toBeFunction();
  });

  it("a catalog that changes a shared operation's amount does not compile", () => {
    expectTypeOf(() =>
      // @ts-expect-error DAILY_REWARD is +1, not +2
      defineCatalog({ ...sharedOperations, DAILY_REWARD: fixed(2, { limit: "daily" }) }),
    ).toBeFunction();
  });

  it("a catalog that drops a shared operation's limit does not compile", () => {
    expectTypeOf(() =>
      // @ts-expect-error SIGNUP_CREDIT is once per owner; a plain +3 is a different operation
      defineCatalog({ ...sharedOperations, SIGNUP_CREDIT: fixed(3) }),
    ).toBeFunction();
  });

  it("a catalog that turns a shared operation into a variable one does not compile", () => {
    expectTypeOf(() =>
      // @ts-expect-error CREDIT_SPEND is a fixed -1
      defineCatalog({ ...sharedOperations, CREDIT_SPEND: variable({ direction: "debit", min: 1, max: 5 }) }),
    ).toBeFunction();
  });

  it("a catalog that takes away CREDIT_ADD's expires_at does not compile", () => {
    expectTypeOf(() =>
      defineCatalog({
        ...sharedOperations,
        // @ts-expect-error CREDIT_ADD lets the request say expires_at
        CREDIT_ADD: fixed(10, { description: sharedOperations.CREDIT_ADD.description }),
      }),
    ).toBeFunction();
  });

  it("a catalog that gives a shared operation an expiry of its own does not compile", () => {
    expectTypeOf(() =>
      defineCatalog({
        ...sharedOperations,
        // @ts-expect-error DAILY_REWARD's credits do not expire
        DAILY_REWARD: fixed(1, {
          limit: "daily",
          description: sharedOperations.DAILY_REWARD.description,
          expiresAfterS: 60,
        }),
      }),
    ).toBeFunction();
  });

  it("an app's own operation may expire: its duration is kept in the type", () => {
    const catalog = defineCatalog({ ...sharedOperations, PROMO: fixed(20, { expiresAfterS: 2_592_000 }) });
    expectTypeOf(catalog.operations.PROMO.expiresAfterS).toEqualTypeOf<2_592_000>();
  });

  it("variable operations keep their bounds and direction in the type", () => {
    const op = variable({ direction: "debit", min: 1, max: 100 });
    expectTypeOf(op.direction).toEqualTypeOf<"debit">();
    expectTypeOf(op.max).toEqualTypeOf<100>();
  });
});
