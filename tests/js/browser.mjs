// Loads @segment/analytics-next (its UMD bundle from node_modules) in headless Chromium, pointed
// at a spoor collector with only the library's `cdnURL` and `apiHost` options, and makes a page,
// a track and an identify call.
//
// Used by spoor's integration tests (crates/spoor-cli/tests/it/browser.rs). This script serves
// the page itself on a loopback port (so the page's origin differs from the collector's and
// CORS is exercised), drives Chromium with playwright-core, and prints one JSON object:
// {"ids": {"page": ..., "track": ..., "identify": ...}, "anonymousId": ..., "pageUrl": ...,
//  "userAgent": ..., "responses": [{"method", "url", "status"}], "errors": [...]}.
//
// Usage: node browser.mjs --collector http://127.0.0.1:PORT --write-key KEY --chromium PATH
import { createServer } from 'node:http'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'

const args = {}
for (let i = 2; i < process.argv.length; i += 2) {
  args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1]
}
if (!args.collector || !args['write-key'] || !args.chromium) {
  console.error('usage: browser.mjs --collector URL --write-key KEY --chromium PATH')
  process.exit(2)
}
const collector = args.collector.replace(/\/$/, '')
const apiHost = collector.replace(/^https?:\/\//, '') + '/v1'

const here = dirname(fileURLToPath(import.meta.url))
const bundle = readFileSync(
  join(here, 'node_modules/@segment/analytics-next/dist/umd/index.js'),
)
const html = `<!doctype html>
<html><head><meta charset="utf-8"><title>spoor browser test</title>
<script src="/analytics-next.js"></script></head>
<body><h1>spoor browser test</h1></body></html>`

const server = createServer((req, res) => {
  if (req.url === '/analytics-next.js') {
    res.writeHead(200, { 'content-type': 'application/javascript' })
    res.end(bundle)
  } else if (req.url === '/favicon.ico') {
    res.writeHead(204)
    res.end()
  } else if (req.url.startsWith('/shop')) {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
    res.end(html)
  } else {
    res.writeHead(404)
    res.end()
  }
})
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
const pageUrl = `http://127.0.0.1:${server.address().port}/shop/checkout`

const userDataDir = mkdtempSync(join(tmpdir(), 'spoor-chromium-'))
const errors = []
const responses = []
let context
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: args.chromium,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    timeout: 60000,
  })
  const page = context.pages()[0] ?? (await context.newPage())
  page.on('console', (msg) => {
    if (msg.type() === 'error' || msg.type() === 'warning') {
      errors.push(`console.${msg.type()}: ${msg.text()}`)
    }
  })
  page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`))
  page.on('requestfailed', (req) =>
    errors.push(`requestfailed: ${req.method()} ${req.url()} ${req.failure()?.errorText}`),
  )
  page.on('response', (res) => {
    if (res.url().startsWith(collector)) {
      responses.push({ method: res.request().method(), url: res.url(), status: res.status() })
    }
  })
  await page.goto(pageUrl, { waitUntil: 'load', timeout: 30000 })
  const result = await page.evaluate(
    async ({ writeKey, cdnURL, apiHost }) => {
      const withTimeout = (promise, what) =>
        Promise.race([
          promise,
          new Promise((_, reject) =>
            setTimeout(() => reject(new Error(`timed out: ${what}`)), 20000),
          ),
        ])
      const [analytics] = await withTimeout(
        window.AnalyticsNext.AnalyticsBrowser.load(
          { writeKey, cdnURL },
          { integrations: { 'Segment.io': { apiHost } } },
        ),
        'load',
      )
      const page = await withTimeout(
        analytics.page('Shop', 'Checkout', { step: 2 }),
        'page',
      )
      const track = await withTimeout(
        analytics.track('Order Completed', { order_id: 'o-77', revenue: 19.99, currency: 'EUR' }),
        'track',
      )
      const identify = await withTimeout(
        analytics.identify('user-42', { email: 'ada@example.com', plan: 'pro' }),
        'identify',
      )
      const failed = [page, track, identify]
        .flatMap((ctx) => ctx.failedDelivery() ? [String(ctx.failedDelivery().reason)] : [])
      return {
        ids: {
          page: page.event.messageId,
          track: track.event.messageId,
          identify: identify.event.messageId,
        },
        anonymousId: analytics.user().anonymousId(),
        userAgent: navigator.userAgent,
        failed,
      }
    },
    { writeKey: args['write-key'], cdnURL: collector, apiHost },
  )
  // Give the last deliveries' responses time to be observed.
  const deadline = Date.now() + 10000
  while (
    responses.filter((r) => r.method === 'POST').length < 3 &&
    Date.now() < deadline
  ) {
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  for (const reason of result.failed) errors.push(`failedDelivery: ${reason}`)
  delete result.failed
  process.stdout.write(JSON.stringify({ ...result, pageUrl, responses, errors }) + '\n')
} catch (err) {
  process.stdout.write(JSON.stringify({ fatal: String(err && err.stack ? err.stack : err), responses, errors }) + '\n')
  process.exitCode = 1
} finally {
  if (context) await context.close().catch(() => {})
  server.close()
  rmSync(userDataDir, { recursive: true, force: true })
}
