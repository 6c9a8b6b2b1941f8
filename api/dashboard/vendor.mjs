// Copies the dashboard's browser libraries from node_modules into static/vendor/ (committed,
// so the API serves them with no CDN and no node_modules at run time). Run after
// `npm ci` here: `npm run vendor`. tests/api/test_dashboard.py checks the copy is current.
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "static", "vendor");
mkdirSync(out, { recursive: true });
for (const [from, to] of [
  ["node_modules/chart.js/dist/chart.umd.min.js", "chart.umd.min.js"],
  ["node_modules/chart.js/LICENSE.md", "chart.js.LICENSE.md"],
]) {
  copyFileSync(join(here, from), join(out, to));
  console.log(`static/vendor/${to}`);
}
