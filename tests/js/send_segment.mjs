// Drives a spoor collector with the official @segment/analytics-node library.
//
// Used by spoor's integration tests (crates/spoor-cli/tests/it/official_libs.rs). Prints one
// JSON object on stdout: {"errors": [{"code": ..., "message": ...}, ...]} listing every error
// the library emitted, and exits 0 once closeAndFlush has finished.
//
// Usage: node send_segment.mjs MODE --host URL --write-key KEY [--prefix P] [--count N]
// Modes: all-types (one call of every type with message ids PREFIX-identify, ...),
//        many (COUNT track calls with message ids PREFIX-0 ..), bad-key (calls with a wrong key).
import { Analytics } from '@segment/analytics-node'

function parseArgs(argv) {
  const args = { mode: argv[0], prefix: 'node', count: 1000 }
  for (let i = 1; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '').replace(/-([a-z])/g, (_, c) => c.toUpperCase())
    args[key] = argv[i + 1]
  }
  if (!['all-types', 'many', 'bad-key'].includes(args.mode) || !args.host || !args.writeKey) {
    console.error('usage: send_segment.mjs all-types|many|bad-key --host URL --write-key KEY')
    process.exit(2)
  }
  args.count = Number(args.count)
  return args
}

const args = parseArgs(process.argv.slice(2))
const errors = []
const analytics = new Analytics({
  writeKey: args.writeKey,
  host: args.host,
  flushAt: 100,
  flushInterval: 200,
  maxRetries: 3,
  httpRequestTimeout: 10000,
})
analytics.on('error', (err) => {
  errors.push({ code: err.code ?? null, message: String(err.reason ?? err.message ?? err) })
})

const p = args.prefix
if (args.mode === 'all-types') {
  analytics.identify({
    userId: 'user-42',
    traits: { email: 'ada@example.com', name: 'Ada Lovelace', plan: 'pro', age: 36 },
    messageId: `${p}-identify`,
  })
  analytics.track({
    userId: 'user-42',
    event: 'Order Completed',
    properties: { order_id: 'o-1', revenue: 19.99, currency: 'EUR', items: [{ sku: 's-1' }] },
    messageId: `${p}-track`,
  })
  analytics.page({
    userId: 'user-42',
    category: 'Docs',
    name: 'Getting Started',
    properties: { url: 'https://example.com/docs', title: 'Getting Started' },
    messageId: `${p}-page`,
  })
  analytics.screen({
    anonymousId: 'anon-7',
    name: 'Home',
    properties: { variant: 'b' },
    messageId: `${p}-screen`,
  })
  analytics.group({
    userId: 'user-42',
    groupId: 'org-9',
    traits: { name: 'Analytical Engines Ltd', employees: 12 },
    messageId: `${p}-group`,
  })
  analytics.alias({ previousId: 'anon-7', userId: 'user-42', messageId: `${p}-alias` })
} else if (args.mode === 'many') {
  for (let i = 0; i < args.count; i++) {
    analytics.track({
      userId: `user-${i % 17}`,
      event: 'Item Viewed',
      properties: { index: i },
      messageId: `${p}-${i}`,
    })
  }
} else {
  analytics.identify({ userId: 'user-1', traits: { x: 1 }, messageId: `${p}-bad-1` })
  analytics.track({ userId: 'user-1', event: 'Refused', messageId: `${p}-bad-2` })
}

await analytics.closeAndFlush({ timeout: 60000 })
process.stdout.write(JSON.stringify({ errors }) + '\n')
