// Sends an NDJSON file of track events with the official @segment/analytics-node.
//
// Usage: node connector_node.mjs FILE HOST WRITE_KEY   (NODE_PATH points at node_modules)
// Batches of 100 (flushAt; its default is 15), like spoor batch and analytics-python.
// Prints {"sent", "errors"} as JSON.
import { createReadStream } from 'node:fs'
import { createInterface } from 'node:readline'
import { createRequire } from 'node:module'

const require = createRequire(process.env.NODE_PATH + '/')
const { Analytics } = require('@segment/analytics-node')

const [path, host, writeKey] = process.argv.slice(2)
const analytics = new Analytics({ writeKey, host, flushAt: 100, flushInterval: 500 })
let errors = 0
analytics.on('error', () => { errors += 1 })
let sent = 0
const lines = createInterface({ input: createReadStream(path), crlfDelay: Infinity })
for await (const line of lines) {
  if (!line) continue
  const m = JSON.parse(line)
  analytics.track({ userId: m.userId, event: m.event, properties: m.properties, timestamp: new Date(m.timestamp) })
  sent += 1
}
await analytics.closeAndFlush({ timeout: 3_600_000 })
console.log(JSON.stringify({ sent, errors }))
