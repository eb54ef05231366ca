// One lint setup for every package. Type-aware, because the rule we care most about
// (no-floating-promises: an un-awaited write is a lost write) needs type information.
import js from "@eslint/js";
import tseslint from "typescript-eslint";

/** @param {{ tsconfigRootDir: string }} opts */
export function config({ tsconfigRootDir }) {
  return tseslint.config(
    { ignores: ["**/node_modules/**", "**/dist/**", "**/.turbo/**", "**/drizzle/**", "**/*.js", "**/*.mjs"] },
    js.configs.recommended,
    ...tseslint.configs.recommendedTypeChecked,
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
      files: ["**/*.test.ts", "**/*.test-d.ts", "test/**/*.ts"],
      rules: {
        "@typescript-eslint/no-unsafe-assignment": "off",
        "@typescript-eslint/no-unsafe-member-access": "off",
      },
    },
  );
}
