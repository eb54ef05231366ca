// `pnpm --filter @ledger/app2 openapi:lint` (run by this app's `lint`): app2's OpenAPI document, as served
// at /openapi.json, through `redocly lint` with the recommended ruleset. Fails on any error or warning.
import { lintOpenApi } from "@ledger/core/openapi-lint";
import { APP_NAME, createApp } from "./app.js";

process.exitCode = await lintOpenApi(APP_NAME, createApp);
