// Type-level tests (tsc, through vitest's typecheck): what a client typed for one app lets through.
import { describe, expectTypeOf, it } from "vitest";
import {
  createLedgerClient,
  isLedgerApiError,
  type App1Client,
  type App1Paths,
  type App2Client,
  type App2Paths,
  type Balance,
  type BalanceAt,
  type OperationName,
  type ProblemCode,
} from "../src/index.js";

declare const app1: App1Client;
declare const app2: App2Client;

describe("createLedgerClient", () => {
  it("is typed by the app's paths given as its type argument", () => {
    expectTypeOf(createLedgerClient<App1Paths>({ baseUrl: "" })).toEqualTypeOf<App1Client>();
    expectTypeOf(createLedgerClient<App2Paths>({ baseUrl: "" })).toEqualTypeOf<App2Client>();
  });

  it("the README's example compiles", async () => {
    const ledger = createLedgerClient<App1Paths>({
      baseUrl: "http://localhost:8000",
      apiKey: process.env.LEDGER_API_KEY,
    });
    const { balance } = await ledger.post({ owner_id: "test_user", operation: "CREDIT_ADD" });
    expectTypeOf(balance).toEqualTypeOf<number>();
  });

  it("knows each app's operation names, and only those", () => {
    expectTypeOf<OperationName<App1Paths>>().toEqualTypeOf<
      "DAILY_REWARD" | "SIGNUP_CREDIT" | "CREDIT_SPEND" | "CREDIT_ADD" | "CONTENT_CREATION" | "CONTENT_ACCESS"
    >();
    expectTypeOf<OperationName<App2Paths>>().toEqualTypeOf<
      | "DAILY_REWARD"
      | "SIGNUP_CREDIT"
      | "CREDIT_SPEND"
      | "CREDIT_ADD"
      | "TOKEN_USAGE"
      | "USAGE_REFUND"
      | "REFERRAL_BONUS"
      | "PROMO_CREDIT"
    >();
  });

  it("without a type argument takes every app's operations", () => {
    const any = createLedgerClient({ baseUrl: "" });
    expectTypeOf(any.post).toBeCallableWith({ owner_id: "u", operation: "TOKEN_USAGE", amount: 1 });
    expectTypeOf(any.post).toBeCallableWith({ owner_id: "u", operation: "CONTENT_CREATION" });
  });
});

describe("writes", () => {
  it("take the app's operations, the nonce optional", () => {
    expectTypeOf(app1.post).toBeCallableWith({ owner_id: "u", operation: "CONTENT_CREATION" });
    expectTypeOf(app1.post).toBeCallableWith({ owner_id: "u", operation: "CREDIT_ADD", nonce: "n-1" });
    expectTypeOf(app2.post).toBeCallableWith({ owner_id: "u", operation: "TOKEN_USAGE", amount: 5 });
  });

  it("an unknown operation name does not compile", () => {
    // @ts-expect-error TOKEN_USAGE is app2's, not app1's
    void app1.post({ owner_id: "u", operation: "TOKEN_USAGE", amount: 5 });
    // @ts-expect-error CONTENT_CREATION is app1's, not app2's
    void app2.post({ owner_id: "u", operation: "CONTENT_CREATION" });
    // @ts-expect-error no app has it
    void app1.post({ owner_id: "u", operation: "FREE_MONEY" });
    // @ts-expect-error a batch item is checked like a post
    void app1.batch({ operations: [{ owner_id: "u", operation: "TOKEN_USAGE", amount: 5 }] });
  });

  it("a hold names only a debit the app lets be held", () => {
    expectTypeOf(app1.holds.place).toBeCallableWith({ owner_id: "u", operation: "CONTENT_CREATION" });
    // @ts-expect-error CREDIT_ADD is a credit: no hold
    void app1.holds.place({ owner_id: "u", operation: "CREDIT_ADD" });
    // @ts-expect-error CONTENT_CREATION is app1's
    void app2.holds.place({ owner_id: "u", operation: "CONTENT_CREATION" });
  });

  it("a missing required field does not compile", () => {
    // @ts-expect-error owner_id is required
    void app1.post({ operation: "CREDIT_ADD" });
    // @ts-expect-error operation is required
    void app1.post({ owner_id: "u" });
    // @ts-expect-error amount is required
    void app1.transfer({ from_owner_id: "a", to_owner_id: "b" });
    // @ts-expect-error a suspension needs its reason
    void app1.suspend("u", {});
    // @ts-expect-error operations is required
    void app1.batch({ atomic: true });
    // @ts-expect-error a reversal names its entry by its number
    void app1.reverse("12");
  });

  it("a field the route does not take does not compile", () => {
    // @ts-expect-error POST /ledger takes no `reason`
    void app1.post({ owner_id: "u", operation: "CREDIT_ADD", reason: "why" });
  });
});

describe("answers", () => {
  it("balance is the balance now; balanceAt the balance at an instant", () => {
    expectTypeOf(app1.balance).returns.resolves.toEqualTypeOf<Balance<App1Paths>>();
    expectTypeOf<Balance<App1Paths>>().toHaveProperty("held").toEqualTypeOf<number>();
    expectTypeOf<Balance<App1Paths>>().not.toHaveProperty("at");
    expectTypeOf<BalanceAt<App1Paths>>().toHaveProperty("at").toEqualTypeOf<string>();
    expectTypeOf<BalanceAt<App1Paths>>().not.toHaveProperty("held");
  });

  it("write answers carry the figures after the write", () => {
    expectTypeOf(app1.post).returns.resolves.toHaveProperty("replayed").toEqualTypeOf<boolean>();
    expectTypeOf(app1.post).returns.resolves.toHaveProperty("available").toEqualTypeOf<number>();
    expectTypeOf(app1.holds.get).returns.resolves.toHaveProperty("status");
  });
});

describe("errors", () => {
  it("isLedgerApiError narrows the code to the ones asked", () => {
    const error: unknown = undefined;
    if (isLedgerApiError(error, "INSUFFICIENT_BALANCE", "LIMIT_REACHED")) {
      expectTypeOf(error.code).toEqualTypeOf<"INSUFFICIENT_BALANCE" | "LIMIT_REACHED">();
    }
    if (isLedgerApiError(error)) expectTypeOf(error.code).toEqualTypeOf<ProblemCode>();
    // @ts-expect-error not a code the ledger answers
    isLedgerApiError(error, "INSUFFICIENT_FUNDS");
  });
});

describe("the apps' paths", () => {
  it("are the same routes with the same methods (one implementation serves every app)", () => {
    expectTypeOf<keyof App1Paths>().toEqualTypeOf<keyof App2Paths>();
    type Methods<P> = {
      [K in keyof P]: { [M in keyof P[K]]-?: [P[K][M]] extends [undefined] ? 0 : 1 };
    };
    expectTypeOf<Methods<App1Paths>>().toEqualTypeOf<Methods<App2Paths>>();
  });
});
