// The client's codes are the core's: when the ledger starts answering a code, this fails until
// PROBLEM_CODES (errors.ts) names it.
import type { HttpErrorCode } from "@ledger/core/http";
import { describe, expectTypeOf, it } from "vitest";
import type { ProblemCode } from "./errors.js";

describe("ProblemCode", () => {
  it("names every code the core answers with", () => {
    expectTypeOf<Exclude<HttpErrorCode, ProblemCode>>().toEqualTypeOf<never>();
  });

  it("names no code the core does not", () => {
    expectTypeOf<Exclude<ProblemCode, HttpErrorCode>>().toEqualTypeOf<never>();
  });
});
