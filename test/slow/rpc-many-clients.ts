/**
 * A process holding many clients of one service, for test/slow/rpc.scale.test.ts
 * (forked through test/support/rpc-peer.ts): connects them, makes requests
 * with all of them, and reports how requests it left pending ended.
 */
import { connect, type Client } from '../../lib/index'
import type { Op } from '../fixtures/rpc-handler'
import { serve as answer, describe } from '../fixtures/harness'

let clients: Array<Client<Op, unknown>> = []
const outcomes: Array<{ code: unknown, at: number }> = []

answer({
  async connect (name: string, count: number) {
    for (let i = 0; i < count; i++) clients.push(await connect<Op, unknown>(name, { timeout: 60_000 }))
    return { pid: process.pid, connected: clients.length }
  },

  /** One echo request from each client at once; the number answered with their own value. */
  async requestAll (tag: string) {
    const replies = await Promise.all(clients.map(async (client, i) => await client.request({ op: 'echo', value: `${tag}-${i}` })))
    return replies.filter((reply, i) => reply === `${tag}-${i}`).length
  },

  /** Every client makes `rounds` requests one after the other, all clients at once; the number of replies that were their own value. */
  async requestRounds (tag: string, rounds: number) {
    const counts = await Promise.all(clients.map(async (client, i) => {
      let right = 0
      for (let r = 0; r < rounds; r++) {
        const value = `${tag}-${i}-${r}`
        if (await client.request({ op: 'echo', value }) === value) right++
      }
      return right
    }))
    return counts.reduce((sum, n) => sum + n, 0)
  },

  /** One request per client that the server holds for a minute; outcomes() reports how they end. */
  holdAll () {
    for (const client of clients) {
      client.request({ op: 'delay', ms: 60_000, value: null }).then(
        () => { outcomes.push({ code: 'answered', at: Date.now() }) },
        (err: unknown) => { outcomes.push({ code: describe(err).code, at: Date.now() }) }
      )
    }
    return clients.length
  },

  pending () {
    return clients.reduce((sum, client) => sum + client.pending, 0)
  },

  /** Waits until every held request ended; their codes and when (Date.now()). */
  async outcomes () {
    while (outcomes.length < clients.length) await new Promise((resolve) => setTimeout(resolve, 20))
    return outcomes
  },

  close () {
    for (const client of clients) client.close()
    clients = []
  }
}, { concurrent: true, onDisconnect: () => { for (const client of clients) client.close() } })
