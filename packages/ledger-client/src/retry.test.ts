import { describe, expect, it } from "vitest";
import { backoffDelayMs, retryAfterMs, RETRY_DEFAULTS } from "./retry.js";

describe("backoffDelayMs", () => {
  const opts = { ...RETRY_DEFAULTS, baseDelayMs: 100, maxDelayMs: 1_000 };

  it("doubles its ceiling with each retry, up to maxDelayMs", () => {
    const highest = (retry: number) => backoffDelayMs(retry, opts, () => 0.9999);
    expect([1, 2, 3, 4, 5, 6].map(highest)).toEqual([99, 199, 399, 799, 999, 999]);
  });

  it("is full jitter: anywhere from 0 to the ceiling", () => {
    expect(backoffDelayMs(3, opts, () => 0)).toBe(0);
    expect(backoffDelayMs(3, opts, () => 0.5)).toBe(200);
  });

  it("stays bounded however many retries", () => {
    expect(backoffDelayMs(10_000, opts, () => 0.9999)).toBe(999);
  });
});

describe("retryAfterMs", () => {
  const now = Date.parse("2026-12-02T10:00:00Z");

  it.each([
    { header: "0", ms: 0 },
    { header: "3", ms: 3_000 },
    { header: " 12 ", ms: 12_000 },
    { header: "Wed, 02 Dec 2026 10:00:30 GMT", ms: 30_000 },
    { header: "Wed, 02 Dec 2026 09:59:00 GMT", ms: 0 },
  ])("$header: $ms ms", ({ header, ms }) => {
    expect(retryAfterMs(header, now)).toBe(ms);
  });

  it.each([null, "", "soon", "-1", "1.5"])("%j: none", (header) => {
    expect(retryAfterMs(header, now)).toBeUndefined();
  });
});
