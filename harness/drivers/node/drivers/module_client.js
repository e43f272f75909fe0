'use strict'
// Any Node module exporting a pg-compatible client class (connect, query, clean, end):
// options.module is a path or a package name; options.export names the class
// (default: the module itself, its default export, or its first exported class).
// options.config is merged into the client's configuration.
const path = require('path')
const { clientDriver } = require('./client_api')

function load(spec) {
  const resolved = spec.startsWith('.') || spec.startsWith('/') ? path.resolve(spec) : spec
  return require(resolved)
}

exports.create = function create({ config, options, hooks }) {
  if (!options.module) throw new Error('node-module driver: options.module is required')
  const mod = load(String(options.module))
  let Cls = options.export ? mod[options.export] : mod
  if (typeof Cls !== 'function') Cls = mod.default || Object.values(mod).find((v) => typeof v === 'function')
  if (typeof Cls !== 'function') throw new Error(`node-module driver: ${options.module} exports no class`)
  const client = new Cls({ ...config, ...(options.config || {}) })
  return clientDriver(client, { config, hooks })
}
