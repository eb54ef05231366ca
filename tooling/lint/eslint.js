// One lint setup for every package. Type-aware, because the rule we care most about
// (no-floating-promises: an un-awaited write is a lost write) needs type information.
import js from "@eslint/js";
import { defineConfig, globalIgnores } from "eslint/config";
import tseslint from "typescript-eslint";

/**
 * @param {{ tsconfigRootDir: string }} opts the package directory (`import.meta.dirname` of its
 *   eslint.config.js). Its tsconfig.json must include every TypeScript file in the package, config files
 *   at the root (`vitest.config.ts`, `drizzle.config.ts`) too: a file it misses is a lint error, not a
 *   silently unchecked file.
 */
export function config({ tsconfigRootDir }) {
  return defineConfig(
    // Generated or installed: nobody edits these by hand. drizzle/ holds SQL and drizzle-kit's snapshots.
    globalIgnores(["**/node_modules/", "**/dist/", "**/coverage/", "**/.turbo/", "**/.data/", "**/drizzle/"]),
    js.configs.recommended,
    tseslint.configs.recommendedTypeChecked,
    {
      languageOptions: {
        parserOptions: { projectService: true, tsconfigRootDir },
      },
      rules: {
        "@typescript-eslint/no-floating-promises": "error",
        "@typescript-eslint/no-misused-promises": "error",
        "@typescript-eslint/await-thenable": "error",
        "@typescript-eslint/no-explicit-any": "error",
        "@typescript-eslint/no-non-null-assertion": "error",
        "@typescript-eslint/consistent-type-imports": "error",
        "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
        "no-console": "error",
      },
    },
    {
      // JavaScript here is config (eslint.config.js and the like), outside every tsconfig: lint it for
      // syntax and the non-type rules only. This block comes after the rules above so it can switch off
      // the type-aware ones among them.
      files: ["**/*.{js,mjs,cjs}"],
      extends: [tseslint.configs.disableTypeChecked],
    },
    {
      files: ["**/*.test.ts", "**/*.test-d.ts", "test/**/*.ts"],
      rules: {
        "@typescript-eslint/no-unsafe-assignment": "off",
        "@typescript-eslint/no-unsafe-member-access": "off",
      },
    },
  );
}
