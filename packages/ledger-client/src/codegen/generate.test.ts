// The committed types in src/generated are what the apps' OpenAPI documents generate now. When this
// fails, the API changed: run `pnpm --filter @ledger/client generate` and commit src/generated.
import { readdirSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { GENERATED_DIR, generatedFiles } from "./generate.js";

describe("src/generated", () => {
  it("is exactly what `pnpm --filter @ledger/client generate` writes from the apps' documents now", async () => {
    const generated = await generatedFiles();
    expect(readdirSync(GENERATED_DIR).sort()).toEqual([...generated.keys()].sort());
    for (const [name, text] of generated) {
      expect(
        readFileSync(`${GENERATED_DIR}/${name}`, "utf8"),
        `src/generated/${name} is stale: the API changed; run \`pnpm --filter @ledger/client generate\``,
      ).toBe(text);
    }
  });
});
