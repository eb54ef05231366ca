import { describe, expect, it } from "vitest";
import { findStrictJsonProblem } from "./strict-json.js";

describe("findStrictJsonProblem", () => {
  it.each([
    '{"owner_id":"a","operation":"CREDIT_ADD","nonce":"n","amount":10}',
    '{"a":{"b":1},"c":{"b":2}}',
    '{"a":[{"k":1},{"k":2}]}',
    '{"a":"\\"b\\":1,\\"b\\":2"}',
    '{"a\\u0062":1,"ab2":2}',
    "[1,-2,0,[3]]",
    '{"x":-0}',
    '"just a string"',
  ])("accepts %s", (text) => {
    expect(findStrictJsonProblem(text)).toBeUndefined();
  });

  it.each([
    ['{"owner_id":"a","owner_id":"b"}', "owner_id"],
    ['{"a":1, "b":2 ,"a":3}', "a"],
    ['{"o":{"k":1,"k":1}}', "k"],
    ['[{"k":1,"k":2}]', "k"],
    ['{"ab":1,"a\\u0062":2}', "ab"],
  ])("finds the duplicate key in %s", (text, key) => {
    expect(findStrictJsonProblem(text)).toEqual({ kind: "duplicate-key", key });
  });

  it.each(["1.0", "1e3", "1E-400", "0.99999999999999999", "-2.5"])("refuses the number %s", (literal) => {
    expect(findStrictJsonProblem(`{"amount":${literal}}`)).toEqual({ kind: "non-integer-number", literal });
  });

  it("scans 100,000 levels of nesting without overflowing the stack", () => {
    const deep = "[".repeat(100_000) + "]".repeat(100_000);
    expect(findStrictJsonProblem(deep)).toBeUndefined();
  });
});
