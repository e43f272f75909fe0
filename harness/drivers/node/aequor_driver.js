'use strict'
// A pg-aequor 0.1.4 client, built from a checkout of pg-aequor's own source (the
// directory in PG_AEQUOR_DIR; pg-aequor is not on npm), driven by thawproof's interop
// tests (tests/integration/test_lease_interop.py) over JSON lines.
//
// stdin, one command a line:  {"id": n, "cmd": "...", ...}
// stdout, one message a line: {"reply": n, ...} (or {"reply": n, "error": "..."}), and
//                             {"event": "...", ...} whenever pg-aequor calls a hook.
//
// Commands:
//   connect {conn: {host, port, user, password, database}, service, secret, leaseTtlMs,
//            minIdleSec}    build an AequorClient (reaper on, no cooldown) and connect;
//                            pg-aequor runs its reaper pass on every connect
//   reconnect                clean() and connect() again: another reaper pass
//   pause_next_scan          the next reaper pass stops right before its scan, that is
//                            right after it took its session lock; event "paused"
//   resume                   let the paused pass go on
//   query {sql}              AequorClient.query
//   tokens {requests}        LeaseManager on each {op: "encode"|"verify", ...} (see below)
//   exit
//
// This file is thawproof's; nothing of pg-aequor is copied here: its code is loaded
// from the checkout at run time. `pg` comes from this folder's node_modules
// (`make node-drivers`, i.e. npm ci from package-lock.json).

const path = require('path')
const readline = require('readline')
const pg = require('pg')

const root = process.env.PG_AEQUOR_DIR
if (!root) {
  process.stderr.write('PG_AEQUOR_DIR is not set\n')
  process.exit(2)
}
const { AequorClient } = require(path.resolve(root, 'index.js'))
const LeaseManager = require(path.resolve(root, 'lib', 'lease.js'))

function send(msg) {
  process.stdout.write(JSON.stringify(msg) + '\n')
}

function errInfo(err) {
  return err ? { message: String(err.message || err), code: err.code || null } : null
}

let pauseNext = false
let resumePaused = null

// pg.Client as pg-aequor uses it, with one addition: a pause point before the
// reaper's scan (pg-aequor scans right after pg_try_advisory_lock returned true).
class PausingClient extends pg.Client {
  query(config, values, callback) {
    if (pauseNext && typeof config === 'string' && config.includes('FROM pg_stat_activity')) {
      pauseNext = false
      return (async () => {
        await new Promise((resolve) => {
          resumePaused = resolve
          send({ event: 'paused', at: 'scan', pid: this.processID })
        })
        return super.query(config, values, callback)
      })()
    }
    return super.query(config, values, callback)
  }
}

let client = null

function build(cmd) {
  return new AequorClient({
    ...cmd.conn,
    library: { Client: PausingClient },
    serviceName: cmd.service,
    coordinationSecret: cmd.secret,
    leaseTtlMs: cmd.leaseTtlMs,
    // pg-aequor reads `minConnectionIdleTimeSec || 180`: 0 would mean 180.
    minConnectionIdleTimeSec: cmd.minIdleSec,
    reaperCooldownMs: 0,
    retries: 0,
    hooks: {
      onConnect: (p) => send({ event: 'connect', gen: p.gen }),
      onReap: (p) => send({ event: 'reap', locked: p.locked, killed: p.killed }),
      onClientDead: (p) => send({ event: 'client_dead', source: p.source, err: errInfo(p.err) }),
      onHeartbeat: (p) => send({ event: 'heartbeat', gen: p.gen }),
    },
  })
}

function current() {
  const c = client && client.getClient()
  return c ? { pid: c.processID, application_name: c.connectionParameters.application_name } : {}
}

function tokens(requests) {
  return requests.map((r) => {
    try {
      const lm = new LeaseManager(r.service, r.instance, r.secret)
      if (r.op === 'encode') return { tag: lm.serviceName, token: lm.generateAppName(r.expiry) }
      // What a pg-aequor reaper of r.service accepts: its scan's LIKE prefix
      // (exact-prefix here; its LIKE also lets "_" match any character) and
      // parseAndVerify.
      const v = lm.parseAndVerify(r.token)
      return { ok: !!v && r.token.startsWith(`s=${lm.serviceName};`), exp: v ? v.exp : null }
    } catch (e) {
      return { error: String(e.message) }
    }
  })
}

async function handle(cmd) {
  switch (cmd.cmd) {
    case 'connect':
      client = build(cmd)
      await client.connect()
      return current()
    case 'reconnect':
      await client.clean()
      await client.connect()
      return current()
    case 'pause_next_scan':
      pauseNext = true
      return {}
    case 'resume':
      if (resumePaused) resumePaused()
      resumePaused = null
      return {}
    case 'query': {
      const res = await client.query(cmd.sql, cmd.params || [])
      return { rows: res.rows }
    }
    case 'tokens':
      return { results: tokens(cmd.requests) }
    case 'exit':
      if (client) await client.clean()
      setImmediate(() => process.exit(0))
      return {}
    default:
      throw new Error(`unknown command ${cmd.cmd}`)
  }
}

const rl = readline.createInterface({ input: process.stdin })
rl.on('line', (line) => {
  let cmd
  try {
    cmd = JSON.parse(line)
  } catch (e) {
    send({ reply: null, error: `bad JSON: ${e.message}` })
    return
  }
  handle(cmd).then(
    (res) => send({ reply: cmd.id, ...res }),
    (err) => send({ reply: cmd.id, error: String(err && err.message) }),
  )
})
rl.on('close', () => process.exit(0))
send({ event: 'ready', node: process.version })
