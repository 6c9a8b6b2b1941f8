// Opens the API reference in headless Chromium (Debian's, driven by playwright-core) with every
// host but the API's refused, and prints what the page did as one JSON line on stdout.
// Used by tests/api/test_docs_page.py:
//   node tests/api/docs_page.mjs <page url> <screenshot.png> [secret key for Authorize]
import { chromium } from "playwright-core";

const [url, screenshot, secret] = process.argv.slice(2);
const origin = new URL(url).origin;
const requests = [];
const refused = [];

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    // a second wall under the routing below: no other name resolves at all
    `--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE ${new URL(url).hostname}`,
  ],
});
try {
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  await context.route("**/*", (route) => {
    const target = route.request().url();
    if (new URL(target).origin === origin) return route.continue();
    refused.push(target);
    return route.abort("blockedbyclient");
  });
  const page = await context.newPage();
  page.on("request", (request) => requests.push(request.url()));
  const errors = [];
  page.on("pageerror", (error) => errors.push(String(error)));

  const response = await page.goto(url, { waitUntil: "load" });
  let paths = [];
  try {
    await page.locator(".opblock .opblock-summary-path").first().waitFor({ state: "visible", timeout: 20000 });
    paths = await page.locator(".opblock .opblock-summary-path:visible").evaluateAll(
      (elements) => elements.map((element) => element.textContent.replace(/\u200b/g, "").trim()),
    );
  } catch (error) {
    errors.push(`no operation rendered: ${error.message.split("\n")[0]}`);
  }
  const title = (await page.locator(".info .title").first().textContent({ timeout: 1000 }).catch(() => null))?.trim() ?? null;
  const authorizeButton = await page.locator(".auth-wrapper .btn.authorize").count();

  // Authorize with the key, then "Try it out" on the customers list: what the page sent and got back
  let tried = null;
  if (secret && authorizeButton) {
    await page.locator(".auth-wrapper .btn.authorize").click();
    await page.locator(".modal-ux input").first().fill(secret);
    await page.locator(".modal-ux .auth-btn-wrapper .btn.authorize").click();
    await page.locator(".modal-ux .btn-done").click();
    const operation = page.locator(".opblock-get", { has: page.locator('.opblock-summary-path[data-path="/v1/customers"]') });
    await operation.locator(".opblock-summary").click();
    await operation.locator(".try-out__btn").click();
    const sent = page.waitForRequest((request) => request.url().startsWith(`${origin}/v1/customers`) && request.method() === "GET");
    await operation.locator(".execute").click();
    const request = await sent;
    const answer = await request.response();
    tried = {
      url: request.url(),
      authorization: (await request.allHeaders()).authorization ?? null,
      status: answer ? answer.status() : null,
      shown: (await operation.locator(".live-responses-table tbody .response-col_status").first().textContent({ timeout: 10000 })).trim(),
    };
  }

  await page.screenshot({ path: screenshot });
  console.log(JSON.stringify({
    status: response.status(), title, paths, authorizeButton: authorizeButton > 0, tried, requests, refused, errors,
  }));
} finally {
  await browser.close();
}
