// The console's routes when the ledger is not there at all, and its own refusals: no ledger needed.
import { describe, expect, it } from "vitest";
import { createConsole } from "../src/app.js";
import { SECRET } from "./support.js";

const unreachable = createConsole({
  urls: { app1: "http://app1.invalid", app2: "http://app2.invalid" },
  secret: SECRET,
  fetch: () => Promise.reject(new TypeError("fetch failed")),
});

const form = (body: Record<string, string>) => ({
  method: "POST",
  headers: { "content-type": "application/x-www-form-urlencoded", origin: "http://localhost" },
  body: new URLSearchParams(body).toString(),
});

describe("the console without a ledger", () => {
  it("says the ledger is not answering (502, LEDGER_UNAVAILABLE), not that the key is bad", async () => {
    const res = await unreachable.request("/sign-in", form({ api_key: "lgr_0123456789abcdef_x" }));
    expect(res.status).toBe(502);
    const html = await res.text();
    expect(html).toContain("LEDGER_UNAVAILABLE");
    expect(html).toContain("No ledger app answered");
    expect(res.headers.get("set-cookie")).toBeNull();
  });

  it("sends an unknown page to sign-in without a session, and answers an unknown asset 404", async () => {
    const res = await unreachable.request("/no/such/page");
    expect(res.status).toBe(303);
    const plain = await unreachable.request("/assets/none.css");
    expect(plain.status).toBe(404);
    expect(await plain.text()).toContain("NOT_FOUND");
  });

  it("refuses a form over 16 KiB with 413", async () => {
    const res = await unreachable.request("/sign-in", form({ api_key: "x".repeat(20_000) }));
    expect(res.status).toBe(413);
    expect(await res.text()).toContain("PAYLOAD_TOO_LARGE");
  });

  it("refuses a key longer than any key with 400", async () => {
    const res = await unreachable.request("/sign-in", form({ api_key: "x".repeat(300) }));
    expect(res.status).toBe(400);
    expect(await res.text()).toContain("VALIDATION_FAILED");
  });

  it("serves its health and the sign-in page without a session", async () => {
    expect(await (await unreachable.request("/health")).json()).toEqual({ status: "ok" });
    const page = await unreachable.request("/sign-in");
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toMatch(
      /<label for="api-key">API key<\/label><input id="api-key" name="api_key" type="password"/,
    );
  });
});
