'use strict'
// thawproof's worker runtime for Node drivers: one Lambda-like sandbox.
//
//   node worker.js <driver module>     (the harness starts it; see ../PROTOCOL.md)
//
// It speaks the worker protocol as JSON lines: commands on stdin (the first is
// `init`), messages on stdout. stdout belongs to the protocol alone: console.*
// go to stderr, which the harness keeps in the run's directory.
//
// The driver module exports `create(ctx)` (sync or async, run once at cold start,
// "module scope") returning an object with
//   execute(sql, params, {idempotent}) -> rows (arrays)
//   transaction(async (tx) => { await tx.execute(sql, params) })
//   backendPid() -> number | null
//   optional: executeOnce(key, sql, params), endInvocation(), close()
// and reports what it does through ctx.hooks (backend, queryStart, queryError,
// backendLost, note). The workloads, pauses, outcomes and stamps are this file's.

const fs = require('fs')
const path = require('path')
const readline = require('readline')

for (const name of ['log', 'info', 'debug', 'warn', 'trace']) {
  console[name] = (...args) => console.error(...args)
}
process.on('SIGINT', () => {}) // Ctrl-C is the controller's to handle

let spec = null
let sql = null
let driver = null
let skew = 0
let current = null // the op being served
let paused = null // resolve() of the pause the op waits in
let stopping = false
const queue = []

function stamp() {
  return {
    worker: spec ? spec.name : '?',
    time: Number(process.hrtime.bigint()) / 1e9, // CLOCK_MONOTONIC, as Python's time.monotonic()
    wall: Date.now() / 1000,
  }
}

function send(msg) {
  const line = Buffer.from(JSON.stringify({ ...msg, ...stamp() }) + '\n')
  let off = 0
  while (off < line.length) {
    try {
      off += fs.writeSync(1, line, off)
    } catch (e) {
      if (e.code === 'EAGAIN') continue
      if (e.code === 'EPIPE') process.exit(0) // the controller is gone
      throw e
    }
  }
}

function crash(err) {
  try {
    send({ kind: 'crash', traceback: String((err && err.stack) || err) })
  } finally {
    process.exit(1)
  }
}
process.on('uncaughtException', crash)
process.on('unhandledRejection', crash)

// ------------------------------------------------------------------ outcomes

const AMBIGUOUS_CLASSES = new Set(['08', 'XX', '58'])
const AMBIGUOUS_STATES = new Set(['57P01', '57P02', '57P04', '57P05', '25P03'])
const IDEMPOTENT = new Set(['read', 'slow_read', 'burst', 'reap'])

function sqlstateOf(err) {
  const code = err && err.code
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : null
}

// The same rule as harness/fleet/classify.py: `fail` only when nothing can have been
// applied (an idempotent op, or a definite SQLSTATE the server answered); else `info`.
function classify(f, err) {
  if (IDEMPOTENT.has(f)) return 'fail'
  const state = sqlstateOf(err)
  if (state && !AMBIGUOUS_CLASSES.has(state.slice(0, 2)) && !AMBIGUOUS_STATES.has(state)) {
    return 'fail'
  }
  return 'info'
}

function errorInfo(err) {
  const cls = (err && err.constructor && err.constructor.name) || 'Error'
  let message = String((err && err.message) || err)
  if (err && err.code && !sqlstateOf(err)) message += ` (code ${err.code})`
  return { sqlstate: sqlstateOf(err), class: cls, message: message.slice(0, 500) }
}

// ------------------------------------------------------------------ hooks

function optInt(v) {
  return v === null || v === undefined || Number.isNaN(Number(v)) ? null : Number(v)
}

const hooks = {
  backend(pid, applicationName) {
    if (optInt(pid) === null) return
    send({ kind: 'backend', backend_pid: Number(pid), application_name: String(applicationName || '') })
  },
  queryStart(pid) {
    send({ kind: 'query_start', backend_pid: optInt(pid) })
  },
  queryError(pid, err) {
    send({ kind: 'query_error', backend_pid: optInt(pid), sqlstate: sqlstateOf(err), error: String((err && err.message) || err) })
  },
  backendLost(pid) {
    send({ kind: 'backend_lost', backend_pid: optInt(pid) })
  },
  note(event, detail) {
    send({ kind: 'note', event: String(event), detail: detail || {} })
  },
}

// ------------------------------------------------------------------ workloads

function first(rows) {
  const row = rows && rows[0]
  if (row === undefined || row === null) return null
  const v = Array.isArray(row) ? row[0] : Object.values(row)[0]
  return typeof v === 'string' && /^-?\d+$/.test(v) ? Number(v) : v
}

function pause(at) {
  return new Promise((resolve) => {
    paused = resolve
    send({ kind: 'paused', op: current.op, at })
  })
}

async function run(cmd) {
  const f = cmd.f
  const args = cmd.args || {}
  switch (f) {
    case 'write':
    case 'write_once': {
      const params = [cmd.op, spec.name, Number(args.amount === undefined ? 1 : args.amount)]
      if (f === 'write_once' && typeof driver.executeOnce === 'function') {
        return { counter: first(await driver.executeOnce(cmd.op, sql.write, params)) }
      }
      return { counter: first(await driver.execute(sql.write, params, { idempotent: false })) }
    }
    case 'read':
      return { count: first(await driver.execute(sql.read, [], { idempotent: true })) }
    case 'slow_read':
      await driver.execute(sql.slow_read, [Number(args.seconds)], { idempotent: true })
      return {}
    case 'burst': {
      const n = Number(args.n === undefined ? 10 : args.n)
      for (let i = 0; i < n; i++) await driver.execute(sql.burst, [], { idempotent: true })
      return { n }
    }
    case 'long_tx':
      await driver.transaction(async (tx) => {
        await tx.execute(sql.hot, [spec.slot])
        await pause('tx')
      })
      return {}
    case 'rejected':
      // refused by the server (23502), or a NUL byte no driver may send
      await driver.execute(sql.rejected, [args.side === 'client' ? 'bad\u0000input' : spec.name], {
        idempotent: false,
      })
      return { accepted: true }
    case 'reap':
      // No reaper of its own: an ordinary invocation (the driver's cleaning still runs).
      await driver.execute(sql.burst, [], { idempotent: true })
      return { decisions: [], reaper: false }
    default:
      throw new Error(`unknown operation ${f}`)
  }
}

async function serve(cmd) {
  current = cmd
  const pid = () => optInt(driver.backendPid && driver.backendPid())
  send({ kind: 'invoke', op: cmd.op, f: cmd.f, value: cmd.value || {}, lease_valid: null, backend_pid: pid() })
  let done
  try {
    const result = await run(cmd)
    done = { kind: 'complete', op: cmd.op, type: 'ok', result, backend_pid: pid() }
  } catch (err) {
    done = { kind: 'complete', op: cmd.op, type: classify(cmd.f, err), error: errorInfo(err), backend_pid: pid() }
  }
  if (typeof driver.endInvocation === 'function') {
    try {
      await driver.endInvocation()
    } catch (err) {
      hooks.note('end_invocation_failed', { error: String((err && err.message) || err) })
    }
  }
  current = null
  send(done)
}

// ------------------------------------------------------------------ commands

async function stop(code) {
  if (driver && typeof driver.close === 'function') {
    try {
      await Promise.race([driver.close(), new Promise((r) => setTimeout(r, 1000))])
    } catch (_) {}
  }
  process.exit(code)
}

async function init(cmd) {
  spec = cmd.spec
  sql = cmd.sql
  const modulePath = process.argv[2]
  if (!modulePath) throw new Error('usage: node worker.js <driver module>')
  const resolved = modulePath.startsWith('.') ? path.resolve(__dirname, modulePath) : modulePath
  const mod = require(resolved)
  const dsn = spec.dsn
  const config = {
    host: dsn.host,
    port: dsn.port,
    user: dsn.user,
    password: dsn.password,
    database: dsn.dbname,
    application_name: spec.application_name || 'thawproof-svc',
  }
  driver = await mod.create({ config, options: spec.driver_options || {}, hooks, lease_clock: () => Date.now() / 1000 + skew })
  send({ kind: 'ready', os_pid: process.pid, driver: spec.driver })
}

async function pump() {
  while (queue.length) {
    const cmd = queue.shift()
    if (cmd.kind === 'init') await init(cmd)
    else if (cmd.kind === 'invoke') await serve(cmd)
    else if (cmd.kind === 'stop') return stop(0)
  }
}

let pumping = null
function onLine(line) {
  if (!line.trim()) return
  const cmd = JSON.parse(line) // a bad line from the controller is a crash, reported as one
  if (cmd.kind === 'continue') {
    if (paused) {
      const resolve = paused
      paused = null
      resolve()
    }
    return
  }
  if (cmd.kind === 'skew') {
    skew = Number(cmd.seconds)
    return
  }
  if (cmd.kind === 'stop' && current === null && !pumping) return stop(0)
  queue.push(cmd)
  if (!pumping) {
    pumping = pump()
      .catch(crash)
      .finally(() => {
        pumping = null
      })
  }
}

const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity })
rl.on('line', (line) => {
  try {
    onLine(line)
  } catch (err) {
    crash(err)
  }
})
rl.on('close', () => {
  stopping = true
  stop(0) // the controller closed our stdin: nobody is left to serve
})
