import type { UserConfig } from "vitest/config";

export declare function ledgerVitestConfig(opts?: { root?: string }): UserConfig;
