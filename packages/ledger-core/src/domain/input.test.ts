import { describe, expect, it } from "vitest";
import { nonceSchema, ownerIdSchema, postOperationInputSchema } from "./input.js";

describe("input schemas", () => {
  it.each(["test_user", "user123", "a", "org:42@eu-west.1", "_x", "A".repeat(128)])(
    "accepts owner id %j",
    (id) => {
      expect(ownerIdSchema.safeParse(id).success).toBe(true);
    },
  );

  it.each(["Holds", "holds2", "events_1", "batches"])("accepts owner id %j, close to a route word", (id) => {
    expect(ownerIdSchema.safeParse(id).success).toBe(true);
  });

  it.each(["holds", "transfers", "entries", "events", "batch"])(
    "refuses the route word %j as an owner id",
    (id) => {
      expect(ownerIdSchema.safeParse(id).success).toBe(false);
    },
  );

  it.each(["", " ", "a b", "a/b", "../etc", "..", ".hidden", "-x", "x\u0000", "x\n", "é", "A".repeat(129)])(
    "refuses owner id %j",
    (id) => {
      expect(ownerIdSchema.safeParse(id).success).toBe(false);
    },
  );

  it.each(["123e4567-e89b-12d3-a456-426655440000", "k", "a/b:c", "~".repeat(128)])(
    "accepts nonce %j",
    (n) => {
      expect(nonceSchema.safeParse(n).success).toBe(true);
    },
  );

  it.each(["", "a b", "x\t", "ü", "~".repeat(129)])("refuses nonce %j", (n) => {
    expect(nonceSchema.safeParse(n).success).toBe(false);
  });

  it("refuses unknown fields, so a typo never passes silently", () => {
    const r = postOperationInputSchema.safeParse({
      owner_id: "u",
      operation: "CREDIT_ADD",
      nonce: "n",
      ammount: 10,
    });
    expect(r.success).toBe(false);
  });

  it.each([0.5, -1, Number.NaN, Infinity, 2 ** 53, "10", null])("refuses amount %j", (amount) => {
    const r = postOperationInputSchema.safeParse({
      owner_id: "u",
      operation: "CREDIT_ADD",
      nonce: "n",
      amount,
    });
    expect(r.success).toBe(false);
  });
});
