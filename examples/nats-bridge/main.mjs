// Two "hosts" as two nats-server processes on two loopback ports, joined
// into one cluster by a route: host A runs a producer and a bridge from its
// local channel into stream ORDERS (connected to server A only); host B runs
// a bridge from the stream into its own local channel (connected to server
// B only) and a consumer. Every order crosses from A's channel to B's, in
// order, once.
//
//   node examples/nats-bridge/main.mjs [--orders N]
//
// Needs nats-server on PATH (or in /usr/sbin) and the NATS client packages
// (npm install @nats-io/transport-node @nats-io/jetstream).
import { fork, spawn } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'

const { values: args } = parseArgs({ options: { orders: { type: 'string', default: '10000' } } })
const orders = Number(args.orders)

async function freePort () {
  return await new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => { const { port } = /** @type {import('node:net').AddressInfo} */ (server.address()); server.close(() => resolve(port)) })
  })
}

function natsServerBinary () {
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/sbin']
  return dirs.map((d) => path.join(d, 'nats-server')).find((p) => fs.existsSync(p)) ?? 'nats-server'
}

/** One "host"'s server: its client port, its route port, a route to the other host. */
async function startServer (name, dir, port, routePort, otherRoutePort) {
  const store = path.join(dir, name)
  fs.mkdirSync(store)
  const child = spawn(natsServerBinary(), [
    '--name', name, '-a', '127.0.0.1', '-p', String(port), '-js', '-sd', store,
    '--cluster_name', 'example', '--cluster', `nats://127.0.0.1:${routePort}`, '--routes', `nats://127.0.0.1:${otherRoutePort}`
  ], { stdio: ['ignore', 'ignore', 'pipe'] })
  await new Promise((resolve, reject) => {
    let log = ''
    child.stderr.setEncoding('utf8').on('data', (chunk) => { log += chunk; if (log.includes('Server is ready')) resolve() })
    child.once('exit', (code) => reject(new Error(`nats-server ${name} exited with ${code}:\n${log}`)))
  })
  return child
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nats-bridge-example-'))
const [portA, portB, routeA, routeB] = await Promise.all([freePort(), freePort(), freePort(), freePort()])
const servers = []
const hosts = []
try {
  servers.push(...await Promise.all([
    startServer('host-a', dir, portA, routeA, routeB),
    startServer('host-b', dir, portB, routeB, routeA)
  ]))
  const run = (role, url) => {
    const child = fork(new URL('./host.mjs', import.meta.url), [role, url, String(orders), String(process.pid)])
    hosts.push(child)
    return new Promise((resolve, reject) => {
      child.on('message', (/** @type {any} */ m) => { if (m.type === 'done') resolve(m) })
      child.once('exit', (code) => { if (code !== 0) reject(new Error(`${role} exited with code ${code}`)) })
    })
  }
  const start = performance.now()
  const [a, b] = /** @type {any[]} */ (await Promise.all([run('producer', `nats://127.0.0.1:${portA}`), run('consumer', `nats://127.0.0.1:${portB}`)]))
  const seconds = (performance.now() - start) / 1000
  console.log(`host A (server :${portA}): sent ${a.sent} orders through its bridge`)
  console.log(`host B (server :${portB}): received ${b.received} orders, in order: ${b.inOrder}, duplicates: ${b.duplicates}`)
  console.log(`${Math.round(orders / seconds).toLocaleString('en')} orders/s across the two servers (start-up included)`)
} finally {
  for (const h of hosts) if (h.exitCode === null) h.kill('SIGKILL')
  for (const s of servers) s.kill('SIGTERM')
  await Promise.all(servers.map((s) => s.exitCode === null ? new Promise((resolve) => s.once('exit', resolve)) : undefined))
  fs.rmSync(dir, { recursive: true, force: true })
}
