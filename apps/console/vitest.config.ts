import { ledgerVitestConfig } from "@ledger/vitest-config";

export default ledgerVitestConfig();
