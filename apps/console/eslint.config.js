import { config } from "@ledger/lint-config/eslint";

export default config({ tsconfigRootDir: import.meta.dirname });
