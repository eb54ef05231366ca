// The error answers: every refusal is an RFC 9457 problem of one shape, and none of them may show a
// stack, SQL or any other internal to the caller.
import { expect } from "vitest";
import { problemSchema, type HttpErrorCode, type Problem } from "../http/problem.js";

/**
 * Expects an RFC 9457 problem with this status and code, and the shape every error shares: a type
 * derived from the code, a title, a detail, and the request id the response header carries.
 */
export async function expectProblem(res: Response, status: number, code: HttpErrorCode): Promise<Problem> {
  const text = await res.text();
  expect(res.status, text).toBe(status);
  expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json\b/);
  const problem = problemSchema.parse(JSON.parse(text));
  expect(problem).toMatchObject({
    status,
    code,
    type: `urn:ledger:problem:${code.toLowerCase().replaceAll("_", "-")}`,
  });
  expect(problem.title).not.toBe("");
  expect(problem.detail).not.toBe("");
  expect(problem.request_id).toBeTruthy();
  expect(res.headers.get("x-request-id")).toBe(problem.request_id);
  return problem;
}

/** What must not appear in any error a caller sees: stack frames, SQL, table names, driver names, file paths. */
const LEAKS: readonly RegExp[] = [
  /\bat (?:\S+ )?\(?(?:file:\/\/|node:|\/)\S*:\d+:\d+/,
  /\bselect\b/i,
  /\binsert\b/i,
  /\bledger_(?:entries|postings|balances)\b/i,
  /\bpostgres(?:ql)?\b/i,
  /\bpglite\b/i,
  /\bdrizzle\b/i,
  /\bsqlstate\b/i,
  /node_modules/,
  /\.[cm]?[jt]s:\d+/,
];

/** Expects the exact problem, and no stack, SQL or internals anywhere in the body. */
export async function expectRefusal(res: Response, status: number, code: HttpErrorCode): Promise<Problem> {
  const text = await res.clone().text();
  for (const leak of LEAKS) expect(text, `the body leaks ${String(leak)}`).not.toMatch(leak);
  // Nothing from the request reaches a response header (a %0D%0A in the path must not become one).
  expect(res.headers.get("set-cookie")).toBeNull();
  return expectProblem(res, status, code);
}
