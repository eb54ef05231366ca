// The shared vitest preset. Tests are split by what they need:
//   *.test.ts     plain unit tests, no database                     -> project "unit"
//   *.db.test.ts  the shared suite, run once per driver              -> projects "pglite" and "postgres"
//   *.pg.test.ts  concurrency and locking, real Postgres only        -> project "postgres"
//   *.test-d.ts   type-level tests, checked by tsc                   -> project "unit" (typecheck)
// The postgres project runs when TEST_DATABASE_URL is set (CI always sets it); without it a
// newcomer's `pnpm test` runs everything that needs no server, and says so.
import { defineConfig } from "vitest/config";

const testDatabaseUrl = process.env.TEST_DATABASE_URL;

/** @param {{ root?: string }} [opts] */
export function ledgerVitestConfig(opts = {}) {
  /** @type {import("vitest/config").TestProjectInlineConfiguration[]} */
  const projects = [
    {
      extends: true,
      test: {
        name: "unit",
        include: ["src/**/*.test.ts", "test/**/*.test.ts"],
        exclude: ["**/*.db.test.ts", "**/*.pg.test.ts", "**/node_modules/**"],
        typecheck: { enabled: true, include: ["src/**/*.test-d.ts", "test/**/*.test-d.ts"] },
      },
    },
    {
      extends: true,
      test: {
        name: "pglite",
        include: ["src/**/*.db.test.ts", "test/**/*.db.test.ts"],
        env: { LEDGER_TEST_DRIVER: "pglite" },
      },
    },
  ];
  if (testDatabaseUrl) {
    projects.push({
      extends: true,
      test: {
        name: "postgres",
        include: [
          "src/**/*.db.test.ts",
          "test/**/*.db.test.ts",
          "src/**/*.pg.test.ts",
          "test/**/*.pg.test.ts",
        ],
        env: { LEDGER_TEST_DRIVER: "postgres", TEST_DATABASE_URL: testDatabaseUrl },
      },
    });
  } else {
    console.warn("[vitest] TEST_DATABASE_URL is not set: the postgres project is skipped (PGlite only).");
  }
  return defineConfig({
    root: opts.root,
    test: {
      passWithNoTests: false,
      testTimeout: 30_000,
      hookTimeout: 60_000,
      reporters: process.env.CI ? ["verbose"] : ["default"],
      projects,
    },
  });
}
