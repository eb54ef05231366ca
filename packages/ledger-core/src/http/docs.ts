// An interactive API reference (Swagger UI) whose assets the app serves itself: no CDN, because
// neither these machines nor many users' networks reach the internet.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { Hono } from "hono";

const ASSETS = {
  "swagger-ui.css": "text/css; charset=utf-8",
  "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
} as const;

type AssetName = keyof typeof ASSETS;

let assetDir: string | undefined;
const cache = new Map<AssetName, string>();

function asset(name: AssetName): string {
  assetDir ??= dirname(createRequire(import.meta.url).resolve("swagger-ui-dist/package.json"));
  let text = cache.get(name);
  if (text === undefined) {
    text = readFileSync(join(assetDir, name), "utf8");
    cache.set(name, text);
  }
  return text;
}

function page(title: string, specUrl: string): string {
  const esc = (s: string) => s.replace(/[&<>"]/g, (ch) => `&#${ch.charCodeAt(0)};`);
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
window.ui = SwaggerUIBundle({ url: ${JSON.stringify(specUrl)}, dom_id: "#docs", deepLinking: true });
</script>
</body>
</html>`;
}

export function docsRoutes(title: string, specUrl = "/openapi.json") {
  const html = page(title, specUrl);
  return new Hono()
    .get("/docs", (c) => c.html(html))
    .get("/docs/:asset{swagger-ui\\.css|swagger-ui-bundle\\.js}", (c) => {
      const name = c.req.param("asset") as AssetName;
      return c.body(asset(name), 200, {
        "content-type": ASSETS[name],
        "cache-control": "public, max-age=86400",
      });
    });
}
