// The console in a real browser: Debian's Chromium (/usr/bin/chromium, never a downloaded one) driven by
// playwright-core, against real processes: apps/local (app1, app2 and the console, as `pnpm start` runs
// them) with LEDGER_AUTH=required on a PGlite directory of its own, on free ports, with keys made by
// `ledger keys create --json`. Screenshots of each page go to test-results/screenshots/ (CI keeps them).
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createLedgerClient, type LedgerPaths } from "@ledger/client";
import { freePort, REPO_ROOT, ServerProcess } from "@ledger/harness";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseCsv, STATEMENT_COLUMNS } from "../src/csv.js";
import { createKeyWithCli, type MadeKey } from "./support.js";

const CHROMIUM = "/usr/bin/chromium";
const haveChromium = existsSync(CHROMIUM);
const inCi = process.env.CI === "true" || process.env.CI === "1";
const SCREENSHOTS = fileURLToPath(new URL("../test-results/screenshots/", import.meta.url));
const STEP_TIMEOUT_MS = 60_000;
const HEALTH_TIMEOUT_MS = 60_000;

/** Polls `url` until it answers 200, or fails after `timeoutMs` with what it last saw. */
async function waitFor200(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "no answer yet";
  while (Date.now() < deadline) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
      if (res.status === 200) return;
      last = `HTTP ${res.status}`;
    } catch (error) {
      last = error instanceof Error ? error.message : String(error);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${url} did not answer 200 within ${timeoutMs} ms (last: ${last})`);
}

if (!haveChromium && !inCi) {
  process.stderr.write(
    `[console e2e] SKIPPED: ${CHROMIUM} is not installed (apt-get install -y chromium); CI installs it and never skips.\n`,
  );
}

// Runs only in CI without the browser (elsewhere it is reported as skipped): there, a missing browser fails.
describe.runIf(!haveChromium && inCi)("console in a browser (CI)", () => {
  it("has Debian's Chromium at /usr/bin/chromium", () => {
    expect.fail(`CI=true and ${CHROMIUM} is missing: .ci/run installs it with apt-get install -y chromium`);
  });
});

describe.runIf(haveChromium)("console in a browser (Chromium, real processes)", () => {
  let dataDir: string;
  let ledger: ServerProcess;
  let browser: Browser;
  let consoleUrl: string;
  let admin: MadeKey;
  let reader: MadeKey;
  let owner: string;
  let spendId: number;

  beforeAll(async () => {
    // This run's pages only: none left from an earlier run.
    await rm(SCREENSHOTS, { recursive: true, force: true });
    await mkdir(SCREENSHOTS, { recursive: true });
    dataDir = await mkdtemp(join(tmpdir(), "console-e2e-"));
    admin = await createKeyWithCli(
      { LEDGER_DATA_DIR: dataDir },
      {
        app: "app1",
        scopes: ["read", "write", "admin"],
        name: "support",
      },
    );
    reader = await createKeyWithCli({ LEDGER_DATA_DIR: dataDir }, { app: "app1", scopes: ["read"] });
    const [app1Port, app2Port, consolePort] = [await freePort(), await freePort(), await freePort()];
    ledger = new ServerProcess({
      name: "pnpm start (apps/local)",
      cwd: join(REPO_ROOT, "apps/local"),
      entry: "src/main.ts",
      port: app1Port,
      env: {
        LEDGER_DATA_DIR: dataDir,
        LEDGER_AUTH: "required",
        APP1_PORT: String(app1Port),
        APP2_PORT: String(app2Port),
        CONSOLE_PORT: String(consolePort),
        CONSOLE_SECRET: "e2e-secret-of-at-least-thirty-two-characters",
        LOG_LEVEL: "warn",
      },
    });
    ledger.start();
    // However vitest ends (a crash, an interrupt), the servers it started do not outlive it.
    process.once("exit", () => ledger.killNow());
    await ledger.waitHealthy({ timeoutMs: HEALTH_TIMEOUT_MS });
    consoleUrl = `http://127.0.0.1:${consolePort}`;
    // app1 answering does not mean the console does: it is a server of its own in that process.
    await waitFor200(`${consoleUrl}/health`, HEALTH_TIMEOUT_MS);

    // An owner made through the API, as an app would: 30 credits (10 expiring), 5 spent, 5 held.
    const app1 = createLedgerClient<LedgerPaths>({ baseUrl: ledger.baseUrl, apiKey: admin.key });
    owner = `e2e_${Date.now().toString(36)}`;
    await app1.post({ owner_id: owner, operation: "SIGNUP_CREDIT" });
    await app1.post({ owner_id: owner, operation: "CREDIT_ADD" });
    await app1.post({
      owner_id: owner,
      operation: "CREDIT_ADD",
      expires_at: new Date(Date.now() + 3 * 86_400_000).toISOString(),
    });
    spendId = (await app1.post({ owner_id: owner, operation: "CONTENT_CREATION" })).entry.id;
    await app1.holds.place({ owner_id: owner, operation: "CONTENT_CREATION" });

    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    });
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await ledger?.stop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  }, 60_000);

  async function contextFor(viewport = { width: 1280, height: 800 }): Promise<BrowserContext> {
    return browser.newContext({ viewport, acceptDownloads: true, baseURL: consoleUrl });
  }

  async function signIn(page: Page, key: MadeKey, shot?: string): Promise<void> {
    await page.goto("/");
    expect(new URL(page.url()).pathname).toBe("/sign-in");
    await page.locator(`#sign-in-${key.app}`).check();
    await page.locator("#api-key").fill(key.key);
    if (shot) await page.screenshot({ path: join(SCREENSHOTS, shot) });
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.waitForURL(`${consoleUrl}/`);
    await expect.poll(() => page.getByTestId("who").textContent()).toContain(key.id);
  }

  async function openOwner(page: Page): Promise<void> {
    await page.locator("#find-owner").fill(owner);
    await page.keyboard.press("Enter");
    await page.waitForURL(`${consoleUrl}/owners/${owner}`);
  }

  const text = async (page: Page, id: string) => ((await page.getByTestId(id).textContent()) ?? "").trim();

  /** The entries table's operations, top to bottom. */
  async function operations(p: Page): Promise<(string | null)[]> {
    return Promise.all(
      (await p.locator("[data-entry-id]").all()).map((r) => r.getAttribute("data-operation")),
    );
  }

  let page: Page;

  it(
    "signs in with an admin key and finds an owner made through the API: balance, chart, entries",
    async () => {
      const context = await contextFor();
      page = await context.newPage();
      await signIn(page, admin, "01-sign-in.png");
      await page.screenshot({ path: join(SCREENSHOTS, "02-find-owner.png") });
      await openOwner(page);
      expect(await text(page, "balance")).toBe("18");
      expect(await text(page, "available")).toBe("13");
      expect(await text(page, "held")).toBe("5");
      expect(await text(page, "status")).toBe("active");
      expect(await page.getByTestId("expiring").locator("tbody tr").count()).toBe(1);
      expect(await page.getByTestId("holds").locator("tbody tr").count()).toBe(1);
      // uPlot drew the chart: our script marks it ready with its point count, and a canvas is there.
      await expect.poll(() => page.locator("#chart").getAttribute("data-ready")).toBe("5");
      expect(await page.locator("#chart canvas").count()).toBeGreaterThan(0);
      // Times in UTC, as in the tables.
      expect(await page.locator("#chart .u-legend").textContent()).toContain("Time (UTC)");
      const ops = await operations(page);
      expect(ops).toEqual(["HOLD", "CONTENT_CREATION", "CREDIT_ADD", "CREDIT_ADD", "SIGNUP_CREDIT"]);
      await page.screenshot({ path: join(SCREENSHOTS, "03-owner.png"), fullPage: true });
      // Readable at 1280x800: the page itself never scrolls sideways (a wide table scrolls in its card).
      expect(await page.evaluate("document.documentElement.scrollWidth")).toBeLessThanOrEqual(1280);
    },
    STEP_TIMEOUT_MS,
  );

  it(
    "runs Explain over two instants and its groups add up to the difference",
    async () => {
      const from = new Date(Date.now() - 3_600_000).toISOString().slice(0, 19);
      const to = new Date(Date.now() + 60_000).toISOString().slice(0, 19);
      await page.locator("#explain-from").fill(from);
      await page.locator("#explain-to").fill(to);
      await page.getByRole("button", { name: "Explain" }).click();
      await page.waitForURL(/explain_from=/);
      const sentence = await text(page, "explain-sentence");
      expect(sentence).toMatch(/^From 0 on \d{4}-\d{2}-\d{2} .* to 18 on \d{4}-\d{2}-\d{2} .*: \+18\.$/);
      const amounts = (await page.getByTestId("explain-amount").allTextContents()).map(Number);
      expect(amounts.reduce((a, n) => a + n, 0)).toBe(18);
      expect(await text(page, "explain-total")).toBe("+18");
      await page.getByTestId("explain").screenshot({ path: join(SCREENSHOTS, "04-explain.png") });
    },
    STEP_TIMEOUT_MS,
  );

  it(
    "reverses an entry with a reason and a confirmation, and the balance changes",
    async () => {
      const row = page.locator(`[data-entry-id="${spendId}"]`);
      await row.getByText("Reverse…").click();
      const form = page.getByTestId(`reverse-${spendId}`);
      await form.getByLabel("Reason (required)").fill("content removed");
      await form.getByLabel("I confirm").check();
      await page.screenshot({ path: join(SCREENSHOTS, "05-reverse-form.png") });
      await form.getByRole("button", { name: "Reverse" }).click();
      await page.waitForURL(/notice=/);
      expect(await text(page, "notice")).toContain(`Entry #${spendId} reversed: +5 credits`);
      expect(await text(page, "balance")).toBe("23");
      const top = page.locator("[data-entry-id]").first();
      expect(await top.getAttribute("data-operation")).toBe("REVERSAL");
      expect(await top.textContent()).toContain(admin.id);
      await page.screenshot({ path: join(SCREENSHOTS, "06-reversed.png"), fullPage: true });
    },
    STEP_TIMEOUT_MS,
  );

  it(
    "exports a CSV statement whose rows are the owner's entries",
    async () => {
      const [download] = await Promise.all([
        page.waitForEvent("download"),
        page.getByRole("button", { name: "Download CSV" }).click(),
      ]);
      expect(download.suggestedFilename()).toMatch(new RegExp(`^statement-${owner}-start-now\\.csv$`));
      const csv = await readFile((await download.path()) ?? "", "utf8");
      const [header, ...rows] = parseCsv(csv);
      expect(header).toEqual([...STATEMENT_COLUMNS]);
      expect(rows.map((r) => r[3])).toEqual([
        "REVERSAL",
        "HOLD",
        "CONTENT_CREATION",
        "CREDIT_ADD",
        "CREDIT_ADD",
        "SIGNUP_CREDIT",
      ]);
      expect(rows.map((r) => Number(r[4])).reduce((a, n) => a + n, 0)).toBe(23);
      expect(rows[0]?.[11]).toBe(admin.id);
    },
    STEP_TIMEOUT_MS,
  );

  it(
    "works with the keyboard and reads on a phone-sized screen",
    async () => {
      await page.goto(`/owners/${owner}`);
      await page.keyboard.press("Tab");
      expect(await page.evaluate("document.activeElement && document.activeElement.textContent")).toBe(
        "Skip to content",
      );
      // Every form control has a label the browser knows.
      const unlabelled = await page
        .locator("input:not([type=hidden]), select, textarea")
        .evaluateAll(
          (els) =>
            els.filter((e) => (e as unknown as { labels: { length: number } }).labels.length === 0).length,
        );
      expect(unlabelled).toBe(0);
      const phone = await contextFor({ width: 390, height: 844 });
      const small = await phone.newPage();
      await signIn(small, admin);
      await small.goto(`/owners/${owner}`);
      await small.screenshot({ path: join(SCREENSHOTS, "07-owner-phone.png"), fullPage: true });
      // Nothing wider than the screen: no sideways scrolling of the page.
      expect(await small.evaluate("document.documentElement.scrollWidth")).toBeLessThanOrEqual(390);
      await phone.close();
    },
    STEP_TIMEOUT_MS,
  );

  it(
    "shows a read-only key no action",
    async () => {
      const context = await contextFor();
      const ro = await context.newPage();
      await signIn(ro, reader);
      await openOwner(ro);
      expect(await text(ro, "balance")).toBe("23");
      expect(await ro.getByText("Reverse…").count()).toBe(0);
      expect(await ro.getByText("Release…").count()).toBe(0);
      expect(await ro.getByTestId("status-form").count()).toBe(0);
      expect(await text(ro, "who")).toContain("read only");
      await ro.screenshot({ path: join(SCREENSHOTS, "08-read-only.png"), fullPage: true });
      await context.close();
    },
    STEP_TIMEOUT_MS,
  );
});
