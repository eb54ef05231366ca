// The API's documentation, served by the app itself: the OpenAPI document (/openapi.json), an
// interactive reference (Swagger UI, /docs) and a readable one (ReDoc, /redoc). Their assets come from
// the installed packages, never a CDN, and no page loads anything from another origin: neither these
// machines nor many users' networks reach the internet.
import type { OpenAPIHono } from "@hono/zod-openapi";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { Hono, type Context } from "hono";
import type { LedgerEnv } from "./env.js";
import { problemBody, type HttpErrorCode } from "./problem.js";
import { OPEN_PATHS, ROUTE_SCOPES, type Scope } from "./scopes.js";

type OpenApiConfig = Parameters<OpenAPIHono<LedgerEnv>["getOpenAPI31Document"]>[0];
type OpenApiDocument = ReturnType<OpenAPIHono<LedgerEnv>["getOpenAPI31Document"]>;

/** One tag per feature with routes, in the order a reader meets them; each route names its own. */
export const OPENAPI_TAGS: readonly { name: string; description: string }[] = [
  {
    name: "Operations",
    description:
      "Apply one of the app's operations (its catalog) to an owner's balance, exactly once per nonce.",
  },
  {
    name: "Accounts",
    description: "An owner's balance, now or at an instant, and its entries with their running balances.",
  },
  {
    name: "Holds",
    description: "Reserve credits for a debit, then capture it (in full or in part) or release it.",
  },
  { name: "Transfers", description: "Move credits from one owner to another, with their expiry." },
  { name: "Reversals", description: "Reverse one of this app's entries, in full or in part." },
  { name: "Batch", description: "Many operations in one request and one transaction, atomic or not." },
  {
    name: "Suspension",
    description:
      "Stop an owner's operations, holds, captures and transfers, for every app, and let them go on again.",
  },
  {
    name: "Events",
    description: "The event log: a page after a position, or an owner's events as they commit.",
  },
  { name: "Keys", description: "The API key a request carries: its id, app, scopes and rate." },
];

const BEARER_AUTH = {
  type: "http",
  scheme: "bearer",
  bearerFormat: "lgr_<16 hex digits>_<43 base64url characters>",
  description:
    "An API key of this app, sent as `Authorization: Bearer <key>`. A key looks like `lgr_<id>_<secret>`: " +
    "`lgr_`, the key's id (16 hexadecimal digits, recorded as `actor` on the entries it writes) and its " +
    "secret (43 base64url characters). A key has scopes (`read`, `write`, `admin`, `events`); each " +
    "operation names the one it needs, in its description and as `x-ledger-scope`. A server started " +
    "with LEDGER_AUTH=off checks no key.",
} as const;

const problemExample = (code: HttpErrorCode, detail: string) => ({
  "application/problem+json": {
    schema: { $ref: "#/components/schemas/Problem" },
    example: problemBody(code, detail),
  },
});

// The answers of the key check and of the rate limit (http/auth.ts), the same on every ledger route:
// each operation refers to them rather than copying them. Each is answered before the route runs.
const AUTH_RESPONSES = {
  Unauthenticated: {
    description:
      "UNAUTHENTICATED: no API key, or one that is malformed, unknown, revoked or another app's. Nothing " +
      "was read or written.",
    headers: { "WWW-Authenticate": { $ref: "#/components/headers/WWWAuthenticate" } },
    content: problemExample(
      "UNAUTHENTICATED",
      "This route needs an API key: send Authorization: Bearer <key>",
    ),
  },
  Forbidden: {
    description:
      "FORBIDDEN: the key is valid but lacks the scope this operation needs (`details.required_scope`). " +
      "Nothing was read or written.",
    content: problemExample("FORBIDDEN", 'This key lacks the scope "write", which POST /ledger needs'),
  },
  RateLimited: {
    description:
      "RATE_LIMITED: the key is over its rate, or this address has failed to authenticate too often. " +
      "Nothing was read or written: send the request again (a write with the same nonce) after " +
      "`Retry-After` seconds.",
    headers: {
      "Retry-After": { $ref: "#/components/headers/RetryAfter" },
      RateLimit: { $ref: "#/components/headers/RateLimit" },
      "RateLimit-Policy": { $ref: "#/components/headers/RateLimitPolicy" },
    },
    content: problemExample(
      "RATE_LIMITED",
      "This key is over its rate limit; try again after Retry-After seconds",
    ),
  },
} as const;

// RateLimit and RateLimit-Policy as in the IETF draft draft-ietf-httpapi-ratelimit-headers.
const AUTH_HEADERS = {
  WWWAuthenticate: {
    description:
      'The scheme to authenticate with (RFC 6750): `Bearer realm="<app>"`, with `error="invalid_token"` ' +
      "when the request sent a key that is not valid.",
    schema: { type: "string" },
  },
  RetryAfter: {
    description: "Seconds to wait before sending the request again.",
    schema: { type: "integer", minimum: 0, example: 1 },
  },
  RateLimit: {
    description:
      'What is left of the quota: `"<policy>";r=<requests left>;t=<seconds until the window resets>`, the ' +
      "policy being `key` (the key's rate) or `auth` (failed authentications from one address).",
    schema: { type: "string", example: '"key";r=0;t=1' },
  },
  RateLimitPolicy: {
    description: 'The quota: `"<policy>";q=<requests>;w=<window in seconds>`.',
    schema: { type: "string", example: '"key";q=100;w=1' },
  },
} as const;

const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"] as const;

/**
 * The generated document with what the routes cannot say one by one: the servers, the license, the
 * tags' descriptions, the bearer scheme, and on every ledger operation its security, its scope
 * (`x-ledger-scope` and a sentence in its description, from ROUTE_SCOPES) and the 401, 403 and 429
 * answers of the key check and the rate limit. A documented route that is neither open nor in
 * ROUTE_SCOPES is an error: every key would be refused on it (scopes.ts), so it must not ship.
 */
export function decorateOpenApi(generated: OpenApiDocument): OpenApiDocument {
  const doc = structuredClone(generated);
  doc.info.license ??= { name: "Proprietary", identifier: "LicenseRef-Proprietary" };
  doc.servers ??= [{ url: "/", description: "The app that serves this document" }];
  doc.tags = [...OPENAPI_TAGS];
  doc.components ??= {};
  doc.components.securitySchemes = { ...doc.components.securitySchemes, bearerAuth: BEARER_AUTH };
  doc.components.responses = { ...doc.components.responses, ...AUTH_RESPONSES };
  doc.components.headers = { ...doc.components.headers, ...AUTH_HEADERS };
  for (const [path, item] of Object.entries(doc.paths ?? {})) {
    if (OPEN_PATHS.includes(path)) continue;
    for (const method of METHODS) {
      const operation = item[method];
      if (!operation) continue;
      const key = `${method.toUpperCase()} ${path}`;
      const scope: Scope | undefined = ROUTE_SCOPES[key];
      if (scope === undefined) {
        throw new Error(`${key} is documented but has no scope in ROUTE_SCOPES (http/scopes.ts)`);
      }
      const needs = `Needs an API key with the \`${scope}\` scope.`;
      operation.description = operation.description ? `${operation.description}\n\n${needs}` : needs;
      operation.security = [{ bearerAuth: [] }];
      operation["x-ledger-scope"] = scope;
      operation.responses = {
        ...operation.responses,
        401: { $ref: "#/components/responses/Unauthenticated" },
        403: { $ref: "#/components/responses/Forbidden" },
        429: { $ref: "#/components/responses/RateLimited" },
      };
    }
  }
  return doc;
}

/**
 * GET /openapi.json: the app's OpenAPI 3.1 document, decorated (decorateOpenApi). Built at the first
 * request, when every route is registered, then kept: the routes do not change while the app runs.
 */
export function registerOpenApi(app: OpenAPIHono<LedgerEnv>, config: OpenApiConfig): void {
  let text: string | undefined;
  app.get("/openapi.json", (c) => {
    text ??= JSON.stringify(decorateOpenApi(app.getOpenAPI31Document(config)));
    return c.body(text, 200, { "content-type": "application/json" });
  });
}

/** The files the pages load, by the name they are served under: where each is and its content type. */
const ASSETS = {
  "swagger-ui.css": { pkg: "swagger-ui-dist", file: "swagger-ui.css", type: "text/css; charset=utf-8" },
  "swagger-ui-bundle.js": {
    pkg: "swagger-ui-dist",
    file: "swagger-ui-bundle.js",
    type: "text/javascript; charset=utf-8",
  },
  "redoc.standalone.js": {
    pkg: "redoc",
    file: "bundles/redoc.standalone.js",
    type: "text/javascript; charset=utf-8",
  },
} as const;

type AssetName = keyof typeof ASSETS;

const cache = new Map<AssetName, string>();

function asset(name: AssetName): string {
  let text = cache.get(name);
  if (text === undefined) {
    const { pkg, file } = ASSETS[name];
    const dir = dirname(createRequire(import.meta.url).resolve(`${pkg}/package.json`));
    text = readFileSync(join(dir, file), "utf8");
    cache.set(name, text);
  }
  return text;
}

const esc = (s: string) => s.replace(/[&<>"]/g, (ch) => `&#${ch.charCodeAt(0)};`);

/** A JSON value inside a <script>: `<` escaped, so no string in it can close the element. */
const scriptJson = (value: unknown) => JSON.stringify(value).replaceAll("<", "\\u003c");

function swaggerPage(title: string, specUrl: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
<div id="docs"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({ url: ${scriptJson(specUrl)}, dom_id: "#docs", deepLinking: true });
</script>
</body>
</html>`;
}

// ReDoc's default theme names Montserrat and Roboto, which a page usually loads from Google Fonts: the
// system's own fonts instead, so the page needs nothing from another origin.
const SYSTEM_FONTS = 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif';
const MONOSPACE_FONTS = 'ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace';

const REDOC_OPTIONS = {
  theme: {
    typography: {
      fontFamily: SYSTEM_FONTS,
      headings: { fontFamily: SYSTEM_FONTS },
      code: { fontFamily: MONOSPACE_FONTS },
    },
  },
};

function redocPage(title: string, specUrl: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>body { margin: 0; }</style>
</head>
<body>
<div id="redoc"></div>
<script src="/redoc/redoc.standalone.js"></script>
<script>
Redoc.init(${scriptJson(specUrl)}, ${scriptJson(REDOC_OPTIONS)}, document.getElementById("redoc"));
</script>
</body>
</html>`;
}

export function docsRoutes(title: string, specUrl = "/openapi.json") {
  const swagger = swaggerPage(title, specUrl);
  const redoc = redocPage(title, specUrl);
  // The asset patterns name every file a route may serve: nothing else of a package is reachable.
  const serve = (c: Context) => {
    const name = c.req.param("asset") as AssetName;
    return c.body(asset(name), 200, {
      "content-type": ASSETS[name].type,
      "cache-control": "public, max-age=86400",
    });
  };
  return new Hono()
    .get("/docs", (c) => c.html(swagger))
    .get("/docs/:asset{swagger-ui\\.css|swagger-ui-bundle\\.js}", serve)
    .get("/redoc", (c) => c.html(redoc))
    .get("/redoc/:asset{redoc\\.standalone\\.js}", serve);
}
