'use strict'
// node-postgres as the serverless guides advise: one Pool at module scope with
// max: 1 (one invocation at a time per sandbox) and an idleTimeoutMillis, and an
// 'error' listener on the pool so that an idle client's socket error (a backend
// killed while the sandbox was frozen) does not crash the process.
const { Pool } = require('pg')

exports.create = function create({ config, options, hooks }) {
  const pool = new Pool({
    ...config,
    max: 1,
    idleTimeoutMillis: Number(options.idleTimeoutMillis || 1000),
    connectionTimeoutMillis: 5000,
  })
  let pid = null
  pool.on('connect', (client) => {
    pid = client.processID
    hooks.backend(pid, config.application_name)
  })
  pool.on('remove', (client) => {
    if (client.processID === pid) pid = null
  })
  pool.on('error', (err, client) => {
    hooks.backendLost(client && client.processID)
    hooks.note('pool_error', { message: String(err.message) })
  })

  async function query(text, params) {
    hooks.queryStart(pid)
    try {
      return (await pool.query({ text, values: params, rowMode: 'array' })).rows
    } catch (err) {
      hooks.queryError(pid, err)
      throw err
    }
  }

  return {
    execute: (text, params) => query(text, params),
    async transaction(body) {
      const client = await pool.connect()
      let broken = false
      try {
        hooks.queryStart(client.processID)
        await client.query('BEGIN')
        await body({ execute: async (text, params) => (await client.query({ text, values: params, rowMode: 'array' })).rows })
        await client.query('COMMIT')
      } catch (err) {
        broken = true
        hooks.queryError(client.processID, err)
        try {
          await client.query('ROLLBACK')
          broken = false
        } catch (_) {}
        throw err
      } finally {
        client.release(broken)
      }
    },
    backendPid: () => pid,
    close: () => pool.end(),
  }
}
