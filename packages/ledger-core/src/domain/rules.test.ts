import { describe, expect, it } from "vitest";
import { BALANCE_MAX } from "./limits.js";
import { fixed, variable } from "./operations.js";
import { limitPeriod, nextBalance, resolveAmount } from "./rules.js";

describe("resolveAmount", () => {
  const spend = fixed(-1);
  const usage = variable({ direction: "debit", min: 2, max: 10 });
  const refund = variable({ direction: "credit", min: 1, max: 10 });

  it("gives fixed operations their signed amount, with or without the magnitude in the request", () => {
    expect(resolveAmount("CREDIT_SPEND", spend, undefined)).toBe(-1);
    expect(resolveAmount("CREDIT_SPEND", spend, 1)).toBe(-1);
    expect(resolveAmount("ZERO", fixed(0), 0)).toBe(0);
  });

  it("refuses another magnitude for a fixed operation", () => {
    expect(() => resolveAmount("CREDIT_SPEND", spend, 2)).toThrow(
      expect.objectContaining({ code: "AMOUNT_MISMATCH" }),
    );
  });

  it("signs variable amounts by direction and keeps them within bounds", () => {
    expect(resolveAmount("U", usage, 2)).toBe(-2);
    expect(resolveAmount("U", usage, 10)).toBe(-10);
    expect(resolveAmount("R", refund, 7)).toBe(7);
    expect(() => resolveAmount("U", usage, 1)).toThrow(
      expect.objectContaining({ code: "AMOUNT_OUT_OF_RANGE" }),
    );
    expect(() => resolveAmount("U", usage, 11)).toThrow(
      expect.objectContaining({ code: "AMOUNT_OUT_OF_RANGE" }),
    );
    expect(() => resolveAmount("U", usage, undefined)).toThrow(
      expect.objectContaining({ code: "AMOUNT_REQUIRED" }),
    );
  });
});

describe("limitPeriod", () => {
  it("is the UTC date for daily limits, whatever the local time zone", () => {
    expect(limitPeriod("daily", new Date("2026-03-01T23:59:59.999-05:00"))).toBe("2026-03-02");
    expect(limitPeriod("daily", new Date("2026-03-01T00:00:00Z"))).toBe("2026-03-01");
  });
  it("is constant for once-per-owner limits and null without a limit", () => {
    expect(limitPeriod("once", new Date("2026-01-01T00:00:00Z"))).toBe("once");
    expect(limitPeriod("once", new Date("2030-01-01T00:00:00Z"))).toBe("once");
    expect(limitPeriod(undefined, new Date())).toBeNull();
  });
});

describe("nextBalance", () => {
  it("applies credits and debits", () => {
    expect(nextBalance("o", 5, 3)).toBe(8);
    expect(nextBalance("o", 5, -5)).toBe(0);
    expect(nextBalance("o", 0, 0)).toBe(0);
  });
  it("refuses going below zero", () => {
    expect(() => nextBalance("o", 4, -5)).toThrow(expect.objectContaining({ code: "INSUFFICIENT_BALANCE" }));
  });
  it("refuses passing 2^53-1, checking before the arithmetic", () => {
    expect(nextBalance("o", BALANCE_MAX - 1, 1)).toBe(BALANCE_MAX);
    expect(() => nextBalance("o", BALANCE_MAX, 1)).toThrow(
      expect.objectContaining({ code: "BALANCE_LIMIT_EXCEEDED" }),
    );
    expect(() => nextBalance("o", BALANCE_MAX - 5, 1_000_000_000)).toThrow(
      expect.objectContaining({ code: "BALANCE_LIMIT_EXCEEDED" }),
    );
  });
});
