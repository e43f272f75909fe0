'use strict'
// A driver over any pg-compatible client object: connect(), query(config), and
// clean() at the end of each invocation when it has one (serverless-postgres,
// pg-aequor). Used by serverless_postgres.js and module_client.js.

function pidOf(client) {
  const inner = client._client || client.client || client
  return (inner && inner.processID) || null
}

exports.clientDriver = function clientDriver(client, { config, hooks }) {
  let pid = null
  function seen() {
    const now = pidOf(client)
    if (now && now !== pid) {
      pid = now
      hooks.backend(pid, config.application_name)
    }
    return now
  }
  async function query(text, params) {
    await client.connect()
    hooks.queryStart(seen())
    try {
      const res = await client.query({ text, values: params, rowMode: 'array' })
      seen()
      return res.rows
    } catch (err) {
      hooks.queryError(pidOf(client), err)
      throw err
    }
  }
  return {
    execute: query,
    async transaction(body) {
      await query('BEGIN', [])
      try {
        await body({ execute: (text, params) => query(text, params) })
        await query('COMMIT', [])
      } catch (err) {
        try {
          await client.query('ROLLBACK')
        } catch (_) {}
        throw err
      }
    },
    backendPid: () => pidOf(client),
    async endInvocation() {
      if (typeof client.clean === 'function') {
        const killed = await client.clean()
        if (killed && killed.length) hooks.note('clean', { killed: killed.length })
      }
    },
    close: () => (typeof client.end === 'function' ? client.end() : undefined),
  }
}
