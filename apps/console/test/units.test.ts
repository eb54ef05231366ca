// The console's pure parts: CSV quoting and formula neutralising, the sealed session and its CSRF
// token, and how instants typed into forms are read.
import { describe, expect, it } from "vitest";
import { chartKind } from "../src/app.js";
import { csvRow, csvText, parseCsv, statementHeader, statementRow, STATEMENT_COLUMNS } from "../src/csv.js";
import { parseInstant } from "../src/format.js";
import {
  createSealer,
  mayAct,
  mayRelease,
  newSession,
  SESSION_MAX_AGE_S,
  type SessionAuth,
} from "../src/session.js";
import { envSchema } from "../src/env.js";
import { ExplainSection, type OwnerPageProps, type Summary } from "../src/views/pages.js";
import { createKeyWithCli } from "./support.js";

describe("CSV (RFC 4180, formula-safe)", () => {
  it.each([
    ["plain", "plain"],
    ["a,b", '"a,b"'],
    ['say "hi"', '"say ""hi"""'],
    ["two\r\nlines", '"two\r\nlines"'],
    ["=1+2", "'=1+2"],
    ["+SUM(A1)", "'+SUM(A1)"],
    ["-2+3", "'-2+3"],
    ["@cmd", "'@cmd"],
    ["\tx", "'\tx"],
    ['=HYPERLINK("http://x"),"y"', `"'=HYPERLINK(""http://x""),""y"""`],
    ["", ""],
  ])("writes %j as %j", (input, output) => {
    expect(csvText(input)).toBe(output);
  });

  it("writes numbers as numbers (a negative amount stays summable) and missing values empty", () => {
    expect(csvRow([-5, 0, undefined, null, "x"])).toBe("-5,0,,,x\r\n");
  });

  it("has the table's columns, in order, and a row per entry with each", () => {
    expect(statementHeader()).toBe(`${STATEMENT_COLUMNS.join(",")}\r\n`);
    const row = statementRow({
      id: 7,
      app: "app1",
      operation: "REVERSAL",
      owner_id: "o",
      amount: 3,
      balance_after: 8,
      sequence: 3,
      nonce: "n",
      created_at: "2026-12-02T14:40:00.000Z",
      reverses: 5,
      reason: "content, removed",
      actor: "3f9c1a0b7d2e4c58",
    });
    expect(row).toBe(
      '7,2026-12-02T14:40:00.000Z,app1,REVERSAL,3,8,,,5,,,3f9c1a0b7d2e4c58,"content, removed"\r\n',
    );
  });
});

describe("the sealed session", () => {
  const sealer = createSealer("s".repeat(40));
  const auth: SessionAuth = {
    mode: "required",
    apiKey: "lgr_0123456789abcdef_secret",
    app: "app1",
    keyId: "0123456789abcdef",
    scopes: ["read"],
    name: null,
  };
  const now = Date.UTC(2026, 11, 2);

  it("opens what it sealed, and the seal does not show the key", () => {
    const session = newSession(auth, now);
    const sealed = sealer.seal(session);
    expect(sealed).not.toContain("secret");
    expect(Buffer.from(sealed.split(".")[2] ?? "", "base64url").toString("latin1")).not.toContain("lgr_");
    expect(sealer.open(sealed, now + 1000)).toEqual(session);
  });

  it.each([
    ["altered", (s: string) => s.slice(0, -2) + (s.endsWith("AA") ? "BB" : "AA")],
    ["truncated", (s: string) => s.split(".").slice(0, 2).join(".")],
    ["from another secret", () => createSealer("t".repeat(40)).seal(newSession(auth, now))],
    ["garbage", () => "not.a.cookie"],
    ["huge", () => "a".repeat(5000)],
  ])("refuses a cookie that is %s", (_name, change) => {
    const sealed = sealer.seal(newSession(auth, now));
    expect(sealer.open(change(sealed), now)).toBeUndefined();
  });

  it("ends a session after its maximum age", () => {
    const sealed = sealer.seal(newSession(auth, now));
    expect(sealer.open(sealed, now + SESSION_MAX_AGE_S * 1000 - 1)).toBeDefined();
    expect(sealer.open(sealed, now + SESSION_MAX_AGE_S * 1000 + 1)).toBeUndefined();
  });

  it("binds the CSRF token to the session", () => {
    const one = newSession(auth, now);
    const two = newSession(auth, now);
    expect(sealer.csrfValid(one, sealer.csrfToken(one))).toBe(true);
    expect(sealer.csrfValid(one, sealer.csrfToken(two))).toBe(false);
    expect(sealer.csrfValid(one, undefined)).toBe(false);
    expect(sealer.csrfValid(one, "")).toBe(false);
  });

  it("lets admin keys act, write+admin keys release, and everyone with auth off", () => {
    expect(mayAct(auth)).toBe(false);
    expect(mayAct({ ...auth, scopes: ["read", "admin"] })).toBe(true);
    expect(mayRelease({ ...auth, scopes: ["read", "admin"] })).toBe(false);
    expect(mayRelease({ ...auth, scopes: ["write", "admin"] })).toBe(true);
    expect(mayAct({ mode: "off" })).toBe(true);
  });
});

describe("instants typed into forms", () => {
  it.each([
    ["", undefined],
    ["2026-12-02T14:40", "2026-12-02T14:40:00.000Z"],
    ["2026-12-02T14:40:07", "2026-12-02T14:40:07.000Z"],
    ["2026-12-02T14:40:07+02:00", "2026-12-02T12:40:07.000Z"],
    ["2026-12-02T14:40:07Z", "2026-12-02T14:40:07.000Z"],
    ["yesterday", null],
    ["2026-13-40T99:99", null],
    ["2026-12-02", null],
  ])("reads %j as %j", (input, output) => {
    expect(parseInstant(input)).toBe(output);
  });
});

describe("env", () => {
  it("defaults to port 8002 and the apps on 8000 and 8001", () => {
    expect(envSchema.parse({})).toMatchObject({
      CONSOLE_PORT: 8002,
      CONSOLE_APP1_URL: "http://localhost:8000",
      CONSOLE_APP2_URL: "http://localhost:8001",
    });
  });

  it.each([
    [{ CONSOLE_SECRET: "short" }, "CONSOLE_SECRET"],
    [{ NODE_ENV: "production" }, "CONSOLE_SECRET"],
    [{ CONSOLE_PORT: "0" }, "CONSOLE_PORT"],
    [{ CONSOLE_APP1_URL: "localhost:8000" }, "CONSOLE_APP1_URL"],
  ])("refuses %j", (env, path) => {
    const result = envSchema.safeParse(env);
    expect(result.success).toBe(false);
    expect(result.error?.issues.map((i) => i.path.join("."))).toContain(path);
  });
});

describe("reading CSV back (the statement's own rules)", () => {
  it("round-trips quoted commas, doubled quotes, line breaks and neutralised formulas", () => {
    const cells = ["a,b", 'say "hi"', "two\r\nlines", "=1+2", "", "plain", -5];
    const text = csvRow(cells) + csvRow(["x", "y"]);
    expect(parseCsv(text)).toEqual([
      ["a,b", 'say "hi"', "two\r\nlines", "'=1+2", "", "plain", "-5"],
      ["x", "y"],
    ]);
  });

  it("refuses CSV that ends inside a quoted field", () => {
    expect(() => parseCsv('"open,\r\n')).toThrow("inside a quoted field");
  });
});

describe("the chart's markers", () => {
  it.each([
    ["EXPIRY", "expiry"],
    ["REVERSAL", "reversal"],
    // A hold that expired gives nothing back and takes nothing: no credit expired.
    ["HOLD_EXPIRY", "entry"],
    ["CREDIT_ADD", "entry"],
    ["HOLD_RELEASE", "entry"],
  ])("marks %s as %s", (operation, kind) => {
    expect(chartKind(operation)).toBe(kind);
  });
});

describe("Explain's total", () => {
  const props = (explain: Summary) =>
    ({
      viewer: { auth: { mode: "off" }, csrf: "t" },
      ownerId: "o",
      explain,
      explainInput: {},
      filter: {},
    }) as unknown as OwnerPageProps;
  const summary = (change: number, amounts: number[]): Summary => ({
    owner_id: "o",
    from: "2026-01-01T00:00:00.000Z",
    to: "2026-02-01T00:00:00.000Z",
    balance_from: 10,
    balance_to: 10 + change,
    change,
    groups: amounts.map((amount, i) => ({ app: "app1", operation: `OP_${i}`, entries: 1, amount })),
  });
  // A JSX node prints as its HTML.
  const rendered = (node: unknown) => String(node);
  const totalOf = (html: string) => /data-testid="explain-total">([^<]*)</.exec(html)?.[1];

  it("shows the ledger's change, with no warning when the groups add up to it", () => {
    const html = rendered(ExplainSection(props(summary(7, [10, -3]))));
    expect(totalOf(html)).toBe("+7");
    expect(html).not.toContain("explain-mismatch");
  });

  it("shows the ledger's change and a visible warning when the groups do not add up to it", () => {
    const html = rendered(ExplainSection(props(summary(7, [10, -2]))));
    expect(totalOf(html)).toBe("+7");
    expect(html).toMatch(
      /data-testid="explain-mismatch"[^>]*>The groups add up to \+8, not the ledger&#39;s change of \+7/,
    );
  });
});

describe("test support", () => {
  it("kills a `ledger keys create` that outlives its timeout, with an error that says so", async () => {
    await expect(
      createKeyWithCli(
        { LEDGER_DATA_DIR: "/nonexistent" },
        { app: "app1", scopes: ["read"] },
        { timeoutMs: 1 },
      ),
    ).rejects.toThrow(/did not finish within 1 ms and was killed/);
  });
});
