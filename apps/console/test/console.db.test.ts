// The console's own routes through app.request(), against the real apps in-process (support.ts): sign-in
// and sign-out, the cookie, CSRF, scopes, the owner page, Explain, actions, errors and the statement.
import { freshOwner, testDriver } from "@ledger/core/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SIGN_IN_FAILURES_PER_MIN } from "../src/app.js";
import { parseCsv, STATEMENT_COLUMNS } from "../src/csv.js";
import { Browser, openWorld, type MadeKey, type World } from "./support.js";

/** The value of a data-testid element's text on a page (the first one). */
function testId(html: string, id: string): string | undefined {
  const m = new RegExp(`data-testid="${id}"[^>]*>([^<]*)<`).exec(html);
  return m?.[1];
}

function location(res: Response): string | null {
  return res.headers.get("location");
}

describe(`console with LEDGER_AUTH=required [${testDriver()}]`, () => {
  let world: World;
  let admin: MadeKey;
  let reader: MadeKey;
  let app2Admin: MadeKey;
  let writeOnly: MadeKey;

  beforeAll(async () => {
    world = await openWorld([
      { app: "app1", scopes: ["read", "write", "admin"], name: "support" },
      { app: "app1", scopes: ["read"] },
      { app: "app2", scopes: ["read", "write", "admin"] },
      { app: "app1", scopes: ["write"] },
    ]);
    [admin, reader, app2Admin, writeOnly] = world.keys as [MadeKey, MadeKey, MadeKey, MadeKey];
  });
  afterAll(async () => {
    await world?.close();
  });

  const browser = () => new Browser(world.consoleApp);
  async function signedIn(key: MadeKey): Promise<Browser> {
    const b = browser();
    const res = await b.signIn(key.key, key.app);
    expect(res.status).toBe(303);
    return b;
  }

  /** An owner made through the API: 20 credits from app1 (one expiring), 5 spent, 10 from app2. */
  async function seededOwner(): Promise<{ owner: string; spendId: number; app2EntryId: number }> {
    const owner = freshOwner("console");
    const app1 = world.ledger("app1", admin.key);
    await app1.post({ owner_id: owner, operation: "CREDIT_ADD" });
    await app1.post({
      owner_id: owner,
      operation: "CREDIT_ADD",
      expires_at: new Date(Date.now() + 7 * 86_400_000).toISOString(),
    });
    const spend = await app1.post({ owner_id: owner, operation: "CONTENT_CREATION" });
    const fromApp2 = await world
      .ledger("app2", app2Admin.key)
      .post({ owner_id: owner, operation: "CREDIT_ADD" });
    return { owner, spendId: spend.entry.id, app2EntryId: fromApp2.entry.id };
  }

  describe("sign-in and the session cookie", () => {
    it("sends a visitor without a session to sign-in, and refuses their POSTs with 403", async () => {
      const res = await browser().get("/");
      expect(res.status).toBe(303);
      expect(location(res)).toBe("/sign-in");
      const post = await browser().post("/owners/x/suspension", { reason: "r", confirm: "yes", nonce: "n" });
      expect(post.status).toBe(403);
      expect(await post.text()).toContain("CSRF_REJECTED");
    });

    it("signs an admin key in: HttpOnly, SameSite=Strict, Path=/ cookie, sealed, never echoing the key", async () => {
      const b = browser();
      const res = await b.signIn(admin.key);
      expect(res.status).toBe(303);
      expect(location(res)).toBe("/");
      const cookie = res.headers.get("set-cookie") ?? "";
      expect(cookie).toMatch(/^console_session=[^;]+;/);
      expect(cookie).toMatch(/; HttpOnly/i);
      expect(cookie).toMatch(/; SameSite=Strict/i);
      expect(cookie).toMatch(/; Path=\//);
      expect(cookie).not.toMatch(/; Secure/i);
      expect(cookie).not.toContain(admin.key);
      // The secret is everything after "lgr_<16 hex>_"; it is base64url, so it may hold "_" itself.
      expect(cookie).not.toContain(admin.key.slice("lgr_".length + 16 + 1));
      const home = await b.get("/");
      expect(home.status).toBe(200);
      const html = await home.text();
      expect(html).toContain(admin.id);
      expect(testId(html, "scopes")).toBe("read, write, admin");
      expect(html).toContain("<strong>app1</strong>");
      expect(html).not.toContain(admin.key);
      expect(home.headers.get("cache-control")).toBe("no-store");
      expect(home.headers.get("content-security-policy")).toContain("script-src 'self'");
    });

    it("marks the cookie Secure when the request came over https", async () => {
      const res = await world.consoleApp.request("https://console.example/sign-in", {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded", origin: "https://console.example" },
        body: new URLSearchParams({ api_key: reader.key, app: "app1" }).toString(),
      });
      expect(res.status).toBe(303);
      expect(res.headers.get("set-cookie")).toMatch(/; Secure/i);
    });

    it("asks only the app picked: app2's key signs in as app2 without a word to app1", async () => {
      const hosts = (from: number) => new Set(world.requests.slice(from).map((u) => new URL(u).host));
      const before = world.requests.length;
      const b = await signedIn(app2Admin);
      expect(hosts(before)).toEqual(new Set(["app2.ledger.test"]));
      expect(await (await b.get("/")).text()).toContain("<strong>app2</strong>");
    });

    it("refuses app2's key with app1 picked (401) and never tries it at app2", async () => {
      const before = world.requests.length;
      const res = await browser().signIn(app2Admin.key, "app1");
      expect(res.status).toBe(401);
      expect(world.requests.slice(before).map((u) => new URL(u).host)).toEqual(["app1.ledger.test"]);
      const html = await res.text();
      expect(testId(html, "error-code")).toBe("UNAUTHENTICATED");
      expect(html).toContain("app1 does not accept this key");
      // The form comes back with the app that was picked still picked.
      expect(html).toMatch(/id="sign-in-app1"[^>]*checked/);
    });

    it("refuses a sign-in that picks no app, or an app that is not one, with 400 and asks no ledger", async () => {
      for (const app of [undefined, "app3"]) {
        const before = world.requests.length;
        const body: Record<string, string> = { api_key: admin.key };
        if (app) body.app = app;
        const res = await browser().post("/sign-in", body, { origin: "http://localhost" });
        expect(res.status).toBe(400);
        expect(await res.text()).toContain("Pick the app the key belongs to");
        expect(world.requests.length).toBe(before);
      }
    });

    it("shows the app choice as labelled, required radio buttons", async () => {
      const html = await (await browser().get("/sign-in")).text();
      for (const app of ["app1", "app2"]) {
        expect(html).toContain(`<label class="check" for="sign-in-${app}">`);
        expect(html).toMatch(
          new RegExp(`id="sign-in-${app}" type="radio" name="app" value="${app}" required`),
        );
      }
      expect(html).toContain("<legend>The key&#39;s app</legend>");
    });

    it("tells a known key without read that it lacks the read scope (403), not that it is unknown", async () => {
      const res = await browser().signIn(writeOnly.key, "app1");
      expect(res.status).toBe(403);
      expect(res.headers.get("set-cookie")).toBeNull();
      const html = await res.text();
      expect(testId(html, "error-code")).toBe("FORBIDDEN");
      expect(html).toContain("This key belongs to app1 but lacks the read scope");
    });

    it("answers 429 with Retry-After after 10 failed sign-ins a minute from one address, asking no ledger", async () => {
      const limited = world.newConsole({ signInFailuresPerMin: SIGN_IN_FAILURES_PER_MIN });
      const b = new Browser(limited);
      for (let i = 0; i < SIGN_IN_FAILURES_PER_MIN; i++) {
        expect((await b.signIn(`lgr_0123456789abcdef_${"B".repeat(42)}${i % 10}`)).status).toBe(401);
      }
      const before = world.requests.length;
      // Even the right key now waits: the address is refused before any ledger is asked.
      const res = await b.signIn(admin.key, "app1");
      expect(res.status).toBe(429);
      expect(Number(res.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
      expect(Number(res.headers.get("retry-after"))).toBeLessThanOrEqual(60);
      const html = await res.text();
      expect(testId(html, "error-code")).toBe("RATE_LIMITED");
      expect(html).toContain("Too many failed sign-ins from this address");
      expect(world.requests.length).toBe(before);
      // Another console (another process) counts its own.
      expect((await new Browser(world.newConsole()).signIn(admin.key, "app1")).status).toBe(303);
    });

    it.each([
      ["an unknown key", () => "lgr_0123456789abcdef_" + "A".repeat(43)],
      ["a mangled key", () => admin.key.slice(0, -2)],
      ["no key (auth is required)", () => ""],
    ])("refuses %s with 401 and its code, setting no cookie", async (_name, key) => {
      const res = await browser().signIn(key());
      expect(res.status).toBe(401);
      expect(res.headers.get("set-cookie")).toBeNull();
      const html = await res.text();
      expect(html).toContain("UNAUTHENTICATED");
      expect(html).toContain("Not signed in");
    });

    it("refuses a sign-in posted from another site (403), so nobody is signed in with a stranger's key", async () => {
      const b = browser();
      const res = await b.post("/sign-in", { api_key: admin.key }, { origin: "https://evil.example" });
      expect(res.status).toBe(403);
      expect(res.headers.get("set-cookie")).toBeNull();
      expect(await res.text()).toContain("CSRF_REJECTED");
    });

    it("treats a forged or altered cookie as no session", async () => {
      const b = await signedIn(admin);
      const [name, value = ""] = (b.cookie ?? "").split("=");
      const flipped = value.slice(0, -3) + (value.endsWith("A") ? "BBB" : "AAA");
      b.cookie = `${name}=${flipped}`;
      const res = await b.get("/");
      expect(res.status).toBe(303);
      expect(location(res)).toBe("/sign-in");
    });

    it("signs out only with the CSRF token, and clears the cookie", async () => {
      const b = await signedIn(admin);
      const refused = await b.post("/sign-out", {});
      expect(refused.status).toBe(403);
      expect((await b.get("/")).status).toBe(200);
      const wrong = await b.post("/sign-out", { csrf: "x".repeat(43) });
      expect(wrong.status).toBe(403);
      const csrf = await b.csrf();
      const out = await b.post("/sign-out", { csrf });
      expect(out.status).toBe(303);
      expect(location(out)).toBe("/sign-in");
      expect(out.headers.get("set-cookie")).toMatch(/^console_session=;.*Max-Age=0/i);
      expect(b.cookie).toBeUndefined();
      expect((await b.get("/")).status).toBe(303);
    });

    it("binds the CSRF token to the session: another session's token is refused", async () => {
      const one = await signedIn(admin);
      const two = await signedIn(admin);
      const res = await two.post("/sign-out", { csrf: await one.csrf() });
      expect(res.status).toBe(403);
    });
  });

  describe("the owner page", () => {
    it("shows balance, available, held, status, expiring grants, holds, the chart's points and the entries", async () => {
      const { owner } = await seededOwner();
      await world.ledger("app1", admin.key).holds.place({ owner_id: owner, operation: "CONTENT_CREATION" });
      const b = await signedIn(admin);
      const res = await b.get(`/owners/${owner}`);
      expect(res.status).toBe(200);
      const html = await res.text();
      expect(testId(html, "balance")).toBe("25");
      expect(testId(html, "available")).toBe("20");
      expect(testId(html, "held")).toBe("5");
      expect(testId(html, "status")).toBe("active");
      const expiring = /data-testid="expiring"[\s\S]*?<\/table>/.exec(html)?.[0] ?? "";
      // The 5 spent came out of the expiring grant first (the ledger's burn order): 5 of its 10 are left.
      expect(expiring).toMatch(/<td class="num">5<\/td>/);
      expect(html).toMatch(/data-testid="holds"[\s\S]*CONTENT_CREATION/);
      const chart = /<script type="application\/json" id="chart-data">([^<]*)<\/script>/.exec(html);
      const points = JSON.parse(chart?.[1] ?? "[]") as { balance: number }[];
      expect(points.map((p) => p.balance)).toEqual([10, 20, 15, 25, 25]);
      const rows = [...html.matchAll(/data-entry-id="(\d+)" data-operation="([A-Z_]+)"/g)].map((m) => m[2]);
      expect(rows).toEqual(["HOLD", "CREDIT_ADD", "CONTENT_CREATION", "CREDIT_ADD", "CREDIT_ADD"]);
      expect(html).toContain("/assets/uplot.iife.min.js");
    });

    it("serves uPlot and its own script and styles itself", async () => {
      for (const [path, type] of [
        ["/assets/uplot.iife.min.js", "text/javascript"],
        ["/assets/uplot.min.css", "text/css"],
        ["/assets/chart.js", "text/javascript"],
        ["/assets/console.css", "text/css"],
      ] as const) {
        const res = await browser().get(path);
        expect(res.status, path).toBe(200);
        expect(res.headers.get("content-type")).toContain(type);
        expect((await res.text()).length).toBeGreaterThan(100);
      }
      expect((await browser().get("/assets/nope.js")).status).toBe(404);
    });

    it("Explain: from X on a date to Y on a date, the groups summing to the difference exactly", async () => {
      const { owner } = await seededOwner();
      const b = await signedIn(admin);
      const html = await (await b.get(`/owners/${owner}`)).text();
      expect(testId(html, "explain-balance-from")).toBe("0");
      expect(testId(html, "explain-balance-to")).toBe("25");
      expect(testId(html, "explain-change")).toBe("+25");
      const amounts = [...html.matchAll(/data-testid="explain-amount">([^<]*)</g)].map((m) => Number(m[1]));
      expect(amounts.reduce((a, n) => a + n, 0)).toBe(25);
      expect(testId(html, "explain-total")).toBe("+25");
      // The default range: the 30 days up to now.
      const from = /id="explain-from"[^>]*value="([^"]+)"/.exec(html)?.[1] ?? "";
      const to = /id="explain-to"[^>]*value="([^"]+)"/.exec(html)?.[1] ?? "";
      expect(Date.parse(`${to}Z`) - Date.parse(`${from}Z`)).toBe(30 * 86_400_000);
      expect(Math.abs(Date.parse(`${to}Z`) - Date.now())).toBeLessThan(60_000);
      expect(html).toMatch(/<td>app1<\/td><td>CREDIT_ADD<\/td><td class="num">2<\/td>/);
      expect(html).toMatch(/<td>app2<\/td><td>CREDIT_ADD<\/td><td class="num">1<\/td>/);
    });

    it("Explain over chosen instants (a future end is now); a from after to is the ledger's 400 with its code", async () => {
      const { owner } = await seededOwner();
      const b = await signedIn(admin);
      const at = (ms: number) => new Date(Date.now() + ms).toISOString().slice(0, 19);
      const ok = await (
        await b.get(`/owners/${owner}?explain_from=${at(-3_600_000)}&explain_to=${at(3_600_000)}`)
      ).text();
      expect(testId(ok, "explain-change")).toBe("+25");
      const before = await (await b.get(`/owners/${owner}?explain_to=${at(-60_000)}`)).text();
      expect(testId(before, "explain-change")).toBe("0");
      const bad = await (
        await b.get(`/owners/${owner}?explain_from=${at(-60_000)}&explain_to=${at(-120_000)}`)
      ).text();
      expect(bad).toContain("Not explained");
      expect(bad).toContain("VALIDATION_FAILED");
    });

    it("plots the newest 1,000 entries of the range and says so when there are more", async () => {
      const owner = freshOwner("console");
      const app1 = world.ledger("app1", admin.key);
      await app1.post({ owner_id: owner, operation: "CREDIT_ADD" });
      await app1.batch({
        operations: Array.from({ length: 1_000 }, () => ({
          owner_id: owner,
          operation: "CONTENT_ACCESS" as const,
        })),
      });
      const html = await (await (await signedIn(reader)).get(`/owners/${owner}`)).text();
      const chart = /<script type="application\/json" id="chart-data">([^<]*)<\/script>/.exec(html);
      expect((JSON.parse(chart?.[1] ?? "[]") as unknown[]).length).toBe(1_000);
      expect(testId(html, "chart-caption")).toContain(
        "Only the newest 1000 entries of the range are plotted.",
      );
    });

    it("filters entries by app and operation, and pages them with a cursor", async () => {
      const { owner } = await seededOwner();
      const app1 = world.ledger("app1", admin.key);
      await app1.batch({
        operations: Array.from({ length: 55 }, () => ({
          owner_id: owner,
          operation: "CONTENT_ACCESS" as const,
        })),
      });
      const b = await signedIn(admin);
      const ids = (html: string) => [...html.matchAll(/data-entry-id="(\d+)"/g)].map((m) => Number(m[1]));
      const onlyApp2 = await (await b.get(`/owners/${owner}?app=app2`)).text();
      expect(ids(onlyApp2)).toHaveLength(1);
      const spends = await (await b.get(`/owners/${owner}?operation=content_creation`)).text();
      expect(ids(spends)).toHaveLength(1);
      const first = await (await b.get(`/owners/${owner}`)).text();
      expect(ids(first)).toHaveLength(50);
      const next = /href="([^"]+)" rel="next"/.exec(first)?.[1]?.replaceAll("&amp;", "&");
      expect(next).toBeDefined();
      const second = await (await b.get(next ?? "")).text();
      expect(ids(second)).toHaveLength(9);
      expect(Math.max(...ids(second))).toBeLessThan(Math.min(...ids(first)));
      expect(second).not.toContain('rel="next"');
    });

    it("keeps Explain's range in the paging links and the filter form; an older page skips the chart", async () => {
      const { owner } = await seededOwner();
      await world.ledger("app1", admin.key).batch({
        operations: Array.from({ length: 55 }, () => ({
          owner_id: owner,
          operation: "CONTENT_ACCESS" as const,
        })),
      });
      const b = await signedIn(admin);
      const from = new Date(Date.now() - 3_600_000).toISOString();
      const first = await (await b.get(`/owners/${owner}?explain_from=${encodeURIComponent(from)}`)).text();
      const next = /href="([^"]+)" rel="next"/.exec(first)?.[1]?.replaceAll("&amp;", "&") ?? "";
      expect(new URL(next, "http://localhost").searchParams.get("explain_from")).toBe(from);
      const filterForm = /data-testid="filter-form"[\s\S]*?<\/form>/.exec(first)?.[0] ?? "";
      expect(filterForm).toContain(`<input type="hidden" name="explain_from" value="${from}"/>`);
      expect(first).toContain('id="chart-data"');
      const second = await (await b.get(next)).text();
      expect(/id="explain-from"[^>]*value="([^"]+)"/.exec(second)?.[1]).toBe(from.slice(0, 19));
      expect(second).not.toContain('id="chart-data"');
      expect(testId(second, "chart-skipped")).toContain("The chart is on the");
      expect(second).toContain(`href="/owners/${owner}?explain_from=`);
    });

    it("shows an owner with no entries as balance 0, and says there are none", async () => {
      const b = await signedIn(reader);
      const html = await (await b.get(`/owners/${freshOwner("nobody")}`)).text();
      expect(testId(html, "balance")).toBe("0");
      expect(html).toContain("No entries match.");
      expect(html).toContain("No entries between these instants.");
    });

    it.each([
      ["an owner id the ledger refuses", "/owners/bad%20owner", 400, "VALIDATION_FAILED"],
      ["a date that is not one", "/owners/someone?from=yesterday", 400, "VALIDATION_FAILED"],
      ["a cursor the ledger did not make", "/owners/someone?cursor=nonsense", 400, "INVALID_CURSOR"],
    ])("shows %s as a readable error with its code", async (_name, path, status, code) => {
      const b = await signedIn(admin);
      if (path.includes("someone"))
        await world.ledger("app1", admin.key).post({ owner_id: "someone", operation: "CREDIT_ADD" });
      const res = await b.get(path);
      expect(res.status).toBe(status);
      const html = await res.text();
      expect(testId(html, "error-code")).toBe(code);
      expect(html).not.toMatch(/at .*\.ts:\d+/);
    });
  });

  describe("actions", () => {
    async function reverseForm(b: Browser, owner: string, entryId: number) {
      const html = await (await b.get(`/owners/${owner}`)).text();
      const form = new RegExp(`data-testid="reverse-${entryId}"[\\s\\S]*?</form>`).exec(html)?.[0] ?? "";
      const value = (name: string) => new RegExp(`name="${name}" value="([^"]*)"`).exec(form)?.[1] ?? "";
      expect(form, `the reversal form of entry #${entryId}`).not.toBe("");
      return { csrf: value("csrf"), nonce: value("nonce"), app: value("app") };
    }

    it("reverses an entry in full with the CSRF token, a reason and the confirmation; the key is the actor", async () => {
      const { owner, spendId } = await seededOwner();
      const b = await signedIn(admin);
      const form = await reverseForm(b, owner, spendId);
      const res = await b.post(`/owners/${owner}/entries/${spendId}/reversal`, {
        ...form,
        reason: "content removed",
        confirm: "yes",
      });
      expect(res.status).toBe(303);
      const page = await (await b.get(location(res) ?? "")).text();
      expect(testId(page, "notice")).toContain(`Entry #${spendId} reversed: +5 credits`);
      expect(testId(page, "balance")).toBe("30");
      const [reversal] = (await world.ledger("app1", admin.key).entries(owner, { operation: "REVERSAL" }))
        .entries;
      expect(reversal).toMatchObject({
        reverses: spendId,
        amount: 5,
        reason: "content removed",
        actor: admin.id,
      });
    });

    it("shows a notice only when the console signed it for this session", async () => {
      const { owner } = await seededOwner();
      const b = await signedIn(admin);
      const forged = await (
        await b.get(`/owners/${owner}?notice=Balance%20corrected%2C%20call%20us&sig=x`)
      ).text();
      expect(forged).not.toContain("Balance corrected");
      expect(forged).not.toContain('data-testid="notice"');
    });

    it("applies a double submit of one form once (its nonce), and a partial amount", async () => {
      const { owner, spendId } = await seededOwner();
      const b = await signedIn(admin);
      const form = await reverseForm(b, owner, spendId);
      const body = { ...form, amount: "2", reason: "partial refund", confirm: "yes" };
      const first = await b.post(`/owners/${owner}/entries/${spendId}/reversal`, body);
      const again = await b.post(`/owners/${owner}/entries/${spendId}/reversal`, body);
      expect([first.status, again.status]).toEqual([303, 303]);
      expect(decodeURIComponent(location(again) ?? "")).toContain("Already done");
      const balance = await world.ledger("app1", admin.key).balance(owner);
      expect(balance.balance).toBe(27);
    });

    it.each([
      ["no CSRF token", { csrf: undefined }],
      ["a wrong CSRF token", { csrf: "A".repeat(43) }],
    ])("refuses an action with %s: 403, nothing done", async (_name, override) => {
      const { owner, spendId } = await seededOwner();
      const b = await signedIn(admin);
      const form = { ...(await reverseForm(b, owner, spendId)), reason: "r", confirm: "yes" };
      const body: Record<string, string> = {};
      for (const [k, v] of Object.entries({ ...form, ...override })) if (v !== undefined) body[k] = v;
      const res = await b.post(`/owners/${owner}/entries/${spendId}/reversal`, body);
      expect(res.status).toBe(403);
      expect(await res.text()).toContain("CSRF_REJECTED");
      expect((await world.ledger("app1", admin.key).balance(owner)).balance).toBe(25);
    });

    it.each([
      ["no reason", { reason: "  " }, "a reason is required"],
      ["no confirmation", { confirm: "" }, "I confirm"],
      ["an amount that is not whole", { amount: "1.5" }, "whole number"],
    ])("refuses an action with %s: 400, nothing done", async (_name, override, text) => {
      const { owner, spendId } = await seededOwner();
      const b = await signedIn(admin);
      const form = { ...(await reverseForm(b, owner, spendId)), reason: "r", confirm: "yes", ...override };
      const res = await b.post(`/owners/${owner}/entries/${spendId}/reversal`, form);
      expect(res.status).toBe(400);
      const html = await res.text();
      expect(html).toContain("VALIDATION_FAILED");
      expect(html).toContain(text);
      expect((await world.ledger("app1", admin.key).balance(owner)).balance).toBe(25);
    });

    it("shows the ledger's refusal with its code (more than is left to reverse: 422)", async () => {
      const { owner, spendId } = await seededOwner();
      const b = await signedIn(admin);
      const form = await reverseForm(b, owner, spendId);
      const res = await b.post(`/owners/${owner}/entries/${spendId}/reversal`, {
        ...form,
        amount: "6",
        reason: "too much",
        confirm: "yes",
      });
      expect(res.status).toBe(422);
      const html = await res.text();
      expect(testId(html, "error-code")).toBe("REVERSAL_EXCEEDS_ORIGINAL");
    });

    it("shows another app's entries without an action, and refuses to reverse them through this key", async () => {
      const { owner, app2EntryId } = await seededOwner();
      const b = await signedIn(admin);
      const html = await (await b.get(`/owners/${owner}`)).text();
      expect(html).not.toContain(`data-testid="reverse-${app2EntryId}"`);
      expect(html).toContain("app2&#39;s entry");
      expect(html).toContain("the ledger lets an app reverse only its own entries");
      const csrf = await b.csrf(`/owners/${owner}`);
      const res = await b.post(`/owners/${owner}/entries/${app2EntryId}/reversal`, {
        csrf,
        nonce: "n-foreign",
        app: "app2",
        reason: "r",
        confirm: "yes",
      });
      expect(res.status).toBe(403);
      expect(await res.text()).toContain("FORBIDDEN");
      const forged = await b.post(`/owners/${owner}/entries/${app2EntryId}/reversal`, {
        csrf,
        nonce: "n-foreign-2",
        app: "app1",
        reason: "r",
        confirm: "yes",
      });
      expect(forged.status).toBe(404);
      expect(await forged.text()).toContain("ENTRY_NOT_FOUND");
    });

    it("names the entry's own owner when a reversal is sent from another owner's page", async () => {
      const { owner, spendId } = await seededOwner();
      const other = freshOwner("other");
      const b = await signedIn(admin);
      const form = await reverseForm(b, owner, spendId);
      const res = await b.post(`/owners/${other}/entries/${spendId}/reversal`, {
        ...form,
        reason: "sent from the wrong page",
        confirm: "yes",
      });
      expect(res.status).toBe(303);
      expect(new URL(location(res) ?? "", "http://localhost").pathname).toBe(`/owners/${owner}`);
      const page = await (await b.get(location(res) ?? "")).text();
      expect(testId(page, "notice")).toContain(`Entry #${spendId} reversed`);
      expect(testId(page, "notice")).toContain(`this was owner ${owner}&#39;s, not ${other}&#39;s`);
      expect(testId(page, "balance")).toBe("30");
    });

    it("names the hold's own owner when a release is sent from another owner's page", async () => {
      const { owner } = await seededOwner();
      const other = freshOwner("other");
      const hold = await world
        .ledger("app1", admin.key)
        .holds.place({ owner_id: owner, operation: "CONTENT_CREATION" });
      const b = await signedIn(admin);
      const res = await b.post(`/owners/${other}/holds/${hold.hold.id}/release`, {
        csrf: await b.csrf(),
        nonce: "release-elsewhere",
        app: "app1",
        reason: "stuck job",
        confirm: "yes",
      });
      expect(res.status).toBe(303);
      expect(new URL(location(res) ?? "", "http://localhost").pathname).toBe(`/owners/${owner}`);
      const page = await (await b.get(location(res) ?? "")).text();
      expect(testId(page, "notice")).toContain(`this was owner ${owner}&#39;s, not ${other}&#39;s`);
      expect(testId(page, "held")).toBe("0");
    });

    it("suspends and reinstates the owner, each with a reason", async () => {
      const { owner } = await seededOwner();
      const b = await signedIn(admin);
      const post = async (path: string, reason: string) => {
        const html = await (await b.get(`/owners/${owner}`)).text();
        const form = /data-testid="status-form"[\s\S]*?<\/form>/.exec(html)?.[0] ?? "";
        const nonce = /name="nonce" value="([^"]*)"/.exec(form)?.[1] ?? "";
        return b.post(`/owners/${owner}${path}`, { csrf: await b.csrf(), nonce, reason, confirm: "yes" });
      };
      expect((await post("/suspension", "chargeback under review")).status).toBe(303);
      expect(testId(await (await b.get(`/owners/${owner}`)).text(), "status")).toBe("suspended");
      expect((await post("/reinstatement", "cleared")).status).toBe(303);
      expect(testId(await (await b.get(`/owners/${owner}`)).text(), "status")).toBe("active");
      const entries = (await world.ledger("app1", admin.key).entries(owner)).entries;
      expect(entries.slice(0, 2).map((e) => [e.operation, e.reason, e.actor])).toEqual([
        ["REINSTATEMENT", "cleared", admin.id],
        ["SUSPENSION", "chargeback under review", admin.id],
      ]);
    });

    it("releases a hold", async () => {
      const { owner } = await seededOwner();
      const hold = await world
        .ledger("app1", admin.key)
        .holds.place({ owner_id: owner, operation: "CONTENT_CREATION" });
      const b = await signedIn(admin);
      const html = await (await b.get(`/owners/${owner}`)).text();
      const action = `/owners/${owner}/holds/${hold.hold.id}/release`;
      expect(html).toContain(`action="${action}"`);
      const res = await b.post(action, {
        csrf: await b.csrf(),
        nonce: "release-1",
        app: "app1",
        reason: "stuck job",
        confirm: "yes",
      });
      expect(res.status).toBe(303);
      const after = await (await b.get(location(res) ?? "")).text();
      expect(testId(after, "held")).toBe("0");
      expect(testId(after, "notice")).toContain(`Hold ${hold.hold.id} released`);
    });

    it("a read-only key sees no action, and is refused (403) if it posts one anyway", async () => {
      const { owner, spendId } = await seededOwner();
      const b = await signedIn(reader);
      const html = await (await b.get(`/owners/${owner}`)).text();
      expect(testId(html, "balance")).toBe("25");
      expect(html).toContain("read only");
      expect(html).not.toContain("Reverse…");
      expect(html).not.toContain("Suspend this owner");
      expect(html).not.toContain("/reversal");
      const res = await b.post(`/owners/${owner}/entries/${spendId}/reversal`, {
        csrf: await b.csrf(),
        nonce: "ro-1",
        app: "app1",
        reason: "r",
        confirm: "yes",
      });
      expect(res.status).toBe(403);
      expect(testId(await res.text(), "error-code")).toBe("FORBIDDEN");
      expect((await world.ledger("app1", admin.key).balance(owner)).balance).toBe(25);
    });
  });

  describe("the statement", () => {
    it("streams CSV with the table's columns, every app's entries newest first, quoted and formula-safe", async () => {
      const { owner, spendId } = await seededOwner();
      await world
        .ledger("app1", admin.key)
        .reverse(spendId, { amount: 1, reason: '=HYPERLINK("x"), "quoted"' });
      const b = await signedIn(reader);
      const res = await b.get(`/owners/${owner}/statement.csv`);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toBe("text/csv; charset=utf-8");
      expect(res.headers.get("content-disposition")).toMatch(
        /^attachment; filename="statement-console_[^"]+\.csv"$/,
      );
      const text = await res.text();
      const lines = text.split("\r\n");
      expect(lines.at(-1)).toBe("");
      expect(lines[0]).toBe(STATEMENT_COLUMNS.join(","));
      expect(lines).toHaveLength(1 + 5 + 1);
      const rows = parseCsv(text);
      expect(rows[0]).toEqual([...STATEMENT_COLUMNS]);
      expect(rows.slice(1).map((r) => r[3])).toEqual([
        "REVERSAL",
        "CREDIT_ADD",
        "CONTENT_CREATION",
        "CREDIT_ADD",
        "CREDIT_ADD",
      ]);
      expect(rows[1]?.[12]).toBe(`'=HYPERLINK("x"), "quoted"`);
      expect(lines[1]).toContain(`,${admin.id},"'=HYPERLINK(""x""), ""quoted"""`);
      expect(lines[3]).toMatch(/,app1,CONTENT_CREATION,-5,15,/);
    });

    it("pages through more than one ledger page", async () => {
      const owner = freshOwner("console");
      await world.ledger("app1", admin.key).batch({
        operations: Array.from({ length: 450 }, () => ({
          owner_id: owner,
          operation: "CONTENT_ACCESS" as const,
        })),
      });
      const text = await (await (await signedIn(reader)).get(`/owners/${owner}/statement.csv`)).text();
      const rows = text.split("\r\n").slice(1, -1);
      expect(rows).toHaveLength(450);
      expect(new Set(rows.map((r) => r.split(",")[0])).size).toBe(450);
    });

    it("refuses a bad range with a readable 400, before any CSV", async () => {
      const { owner } = await seededOwner();
      const b = await signedIn(reader);
      const res = await b.get(`/owners/${owner}/statement.csv?from=2026-02-01T00:00&to=2026-01-01T00:00`);
      expect(res.status).toBe(400);
      expect(res.headers.get("content-type")).toContain("text/html");
      expect(testId(await res.text(), "error-code")).toBe("VALIDATION_FAILED");
    });
  });
});

describe(`console with LEDGER_AUTH=off [${testDriver()}]`, () => {
  let world: World;
  beforeAll(async () => {
    world = await openWorld("auth-off");
  });
  afterAll(async () => {
    await world?.close();
  });

  it("opens without a key and says so; acts through the app that wrote the entry", async () => {
    const owner = freshOwner("console");
    await world.ledger("app1").post({ owner_id: owner, operation: "CREDIT_ADD" });
    const usage = await world.ledger("app2").post({ owner_id: owner, operation: "TOKEN_USAGE", amount: 4 });
    const b = new Browser(world.consoleApp);
    const res = await b.signIn("");
    expect(res.status).toBe(303);
    const html = await (await b.get(`/owners/${owner}`)).text();
    expect(html).toContain("LEDGER_AUTH=off");
    expect(testId(html, "balance")).toBe("6");
    const form = new RegExp(`data-testid="reverse-${usage.entry.id}"[\\s\\S]*?</form>`).exec(html)?.[0] ?? "";
    const value = (name: string) => new RegExp(`name="${name}" value="([^"]*)"`).exec(form)?.[1] ?? "";
    expect(value("app")).toBe("app2");
    const done = await b.post(`/owners/${owner}/entries/${usage.entry.id}/reversal`, {
      csrf: value("csrf"),
      nonce: value("nonce"),
      app: value("app"),
      reason: "refund",
      confirm: "yes",
    });
    expect(done.status).toBe(303);
    expect((await world.ledger("app1").balance(owner)).balance).toBe(10);
  });
});
