// Copies Swagger UI from node_modules/swagger-ui-dist (the release package-lock.json pins) into
// docs_assets/ (committed, so the API serves the /schema page with no CDN, and with no
// node_modules in the Docker image). Run after `npm ci` at the repository root:
// `npm run vendor`. tests/api/test_docs_page.py checks the copy is current.
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const from = join(here, "..", "node_modules", "swagger-ui-dist");
const out = join(here, "docs_assets");
mkdirSync(out, { recursive: true });
// the bundles name their third-party licences in the .LICENSE.txt beside them
for (const name of [
  "swagger-ui-bundle.js", "swagger-ui-bundle.js.LICENSE.txt",
  "swagger-ui-standalone-preset.js", "swagger-ui-standalone-preset.js.LICENSE.txt",
  "swagger-ui.css", "LICENSE", "NOTICE",
]) {
  copyFileSync(join(from, name), join(out, name));
  console.log(`api/docs_assets/${name}`);
}
