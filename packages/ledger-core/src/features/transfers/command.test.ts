// The pure parts of a transfer: the nonce of its TRANSFER_IN, and the expiries it carries over.
import { describe, expect, it } from "vitest";
import { nonceSchema } from "../../domain/input.js";
import { carriedExpiries, transferInNonce } from "./command.js";

describe("transferInNonce", () => {
  it("is a nonce no client may send, so no request can take a transfer's TRANSFER_IN", () => {
    expect(transferInNonce("gift-1")).toBe("transfer-in gift-1");
    expect(nonceSchema.safeParse(transferInNonce("gift-1")).success).toBe(false);
  });
});

describe("carriedExpiries", () => {
  const at = (iso: string) => new Date(iso);
  it("merges what was spent of each grant by expiry instant, soonest first", () => {
    expect(
      carriedExpiries([
        { grantSequence: 4, grantPart: 0, amount: 3, expiresAt: at("2026-03-01T00:00:00Z") },
        { grantSequence: 1, grantPart: 0, amount: 2, expiresAt: at("2026-02-01T00:00:00Z") },
        { grantSequence: 2, grantPart: 1, amount: 5, expiresAt: at("2026-03-01T00:00:00Z") },
      ]),
    ).toEqual([
      { expiresAt: at("2026-02-01T00:00:00Z"), amount: 2 },
      { expiresAt: at("2026-03-01T00:00:00Z"), amount: 8 },
    ]);
  });

  it("carries nothing over for credits without expiry", () => {
    expect(carriedExpiries([])).toEqual([]);
  });
});
