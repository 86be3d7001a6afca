/**
 * Real nats-server processes for the NATS tests, benchmarks and example:
 * one server or a cluster of three on free loopback ports, JetStream on a
 * temporary directory. Every server is SIGKILLed (and its directory
 * removed) when the test ends, also when it fails; `stop()` and `kill()`
 * end one earlier, `restart()` brings it back on the same ports and store.
 *
 * Looks for the binary on PATH and in /usr/sbin (Debian's package puts it
 * there); NATS_SERVER overrides.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import type { Test } from 'tap'

/** The nats-server binary, or undefined when none is installed. */
export function natsServerBinary (): string | undefined {
  if (process.env.NATS_SERVER !== undefined) return process.env.NATS_SERVER
  for (const dir of [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/usr/local/sbin']) {
    const candidate = path.join(dir, 'nats-server')
    if (dir !== '' && fs.existsSync(candidate)) return candidate
  }
  return undefined
}

/** A port nobody listens on now (the kernel's pick, released at once). */
export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => { resolve(port) })
    })
  })
}

export interface ServerSpec {
  /** Server name, unique in a cluster. */
  name: string
  port: number
  /** Cluster (route) port, for clustered servers. */
  clusterPort?: number
  /** Route ports of the other servers of the cluster. */
  routes?: number[]
  storeDir: string
}

export class NatsServer {
  readonly spec: ServerSpec
  #child: ChildProcess | undefined
  #exited: Promise<void> = Promise.resolve()
  #log = ''

  constructor (spec: ServerSpec) {
    this.spec = spec
  }

  /** nats://127.0.0.1:port */
  get url (): string { return `nats://127.0.0.1:${this.spec.port}` }
  get running (): boolean { return this.#child !== undefined }
  get pid (): number | undefined { return this.#child?.pid }
  /** What the server printed (its log goes to stderr). */
  get log (): string { return this.#log }

  /** Starts the process and resolves once it accepts connections (JetStream ready: the log says so). */
  async start (): Promise<void> {
    if (this.#child !== undefined) return
    const binary = natsServerBinary()
    if (binary === undefined) throw new Error('nats-server is not installed')
    const s = this.spec
    const config = [
      `server_name: ${s.name}`,
      'listen: 127.0.0.1:' + String(s.port),
      `jetstream { store_dir: "${s.storeDir}", max_memory_store: 64MB, max_file_store: 512MB }`
    ]
    if (s.clusterPort !== undefined) {
      config.push(`cluster { name: shmtest, listen: 127.0.0.1:${s.clusterPort}, routes: [${(s.routes ?? []).map((p) => `nats-route://127.0.0.1:${p}`).join(', ')}] }`)
    }
    fs.mkdirSync(s.storeDir, { recursive: true })
    const configPath = path.join(s.storeDir, '..', `${s.name}.conf`)
    fs.writeFileSync(configPath, config.join('\n') + '\n')
    const child = spawn(binary, ['-c', configPath], { stdio: ['ignore', 'ignore', 'pipe'] })
    this.#child = child
    this.#exited = new Promise((resolve) => { child.once('exit', () => { resolve() }) })
    void this.#exited.then(() => { if (this.#child === child) this.#child = undefined })
    const ready = s.clusterPort === undefined ? 'Server is ready' : 'Server is ready'
    await new Promise<void>((resolve, reject) => {
      const onData = (chunk: string): void => {
        this.#log += chunk
        if (this.#log.includes(ready)) { child.stderr?.off('data', onData); child.stderr?.on('data', (c: string) => { this.#log += c }); resolve() }
      }
      child.stderr?.setEncoding('utf8').on('data', onData)
      child.once('exit', (code) => { reject(new Error(`nats-server ${s.name} exited with ${String(code)} before it was ready:\n${this.#log}`)) })
    })
  }

  /** SIGKILL: the server dies at once, as on a crash. */
  async kill (): Promise<void> {
    await this.#end('SIGKILL')
  }

  /** SIGTERM, a clean shutdown. */
  async stop (): Promise<void> {
    await this.#end('SIGTERM')
  }

  async restart (): Promise<void> {
    await this.stop()
    await this.start()
  }

  async #end (signal: NodeJS.Signals): Promise<void> {
    const child = this.#child
    if (child === undefined) return
    child.kill(signal)
    const timer = setTimeout(() => { child.kill('SIGKILL') }, 5000)
    await this.#exited
    clearTimeout(timer)
    this.#child = undefined
  }
}

/** A temporary directory for the servers' stores, removed when `t` ends. */
function tempDir (t: Test | undefined): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shmch-nats-'))
  t?.teardown(() => { fs.rmSync(dir, { recursive: true, force: true }) })
  return dir
}

/**
 * One JetStream server on a free loopback port, killed when `t` ends
 * (without `t`, the caller calls `dispose`).
 */
export async function startServer (t?: Test): Promise<NatsServer & { dispose: () => Promise<void> }> {
  const dir = tempDir(t)
  const server = new NatsServer({ name: `n${process.pid}`, port: await freePort(), storeDir: path.join(dir, 'store') })
  const dispose = async (): Promise<void> => {
    await server.kill()
    fs.rmSync(dir, { recursive: true, force: true })
  }
  t?.teardown(async () => { await server.kill() })
  await server.start()
  return Object.assign(server, { dispose })
}

/**
 * Three JetStream servers on loopback, routes between them (a full mesh),
 * all killed when `t` ends. Resolves once all three are ready and the
 * JetStream meta group has a leader is for the client to wait for.
 */
export async function startCluster (t: Test, size = 3): Promise<NatsServer[]> {
  const dir = tempDir(t)
  const ports = await Promise.all(Array.from({ length: size }, async () => await freePort()))
  const clusterPorts = await Promise.all(Array.from({ length: size }, async () => await freePort()))
  const servers = ports.map((port, i) => new NatsServer({
    name: `c${i}`,
    port,
    clusterPort: clusterPorts[i],
    routes: clusterPorts.filter((_, j) => j !== i),
    storeDir: path.join(dir, `store${i}`)
  }))
  t.teardown(async () => { await Promise.all(servers.map(async (s) => { await s.kill() })) })
  await Promise.all(servers.map(async (s) => { await s.start() }))
  return servers
}
