'use strict'
// serverless-postgres 2.1.2 configured as its README shows: a ServerlessClient
// declared outside the handler (module scope), with the README's delayMs: 3000;
// every invocation does connect(), its query, and clean() at the end. Its default
// strategy (minimum_idle_time, 0.5 s) kills idle connections of the same user,
// database and application_name once the count passes 80% of maxConnections,
// which is set to the application role's real limit (options.maxConnections).
const ServerlessClient = require('serverless-postgres') // as its README requires it
const { clientDriver } = require('./client_api')

exports.create = function create({ config, options, hooks }) {
  const client = new ServerlessClient({
    ...config,
    delayMs: 3000,
    ...(options.maxConnections ? { maxConnections: Number(options.maxConnections) } : {}),
  })
  return clientDriver(client, { config, hooks })
}
