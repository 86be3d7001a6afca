// The processes of examples/kv-config/main.mjs: a watcher, or a worker that
// counts under its own key and reports the configuration it last saw.
import { Store } from 'shm-channel'

const [role, file, name, incrementsText] = process.argv.slice(2)
/** @type {Store<any>} */
const store = Store.open(file)

if (role === 'watcher') {
  const watch = store.watch('config/', (event) => {
    if (event.key === 'config/stop') {
      watch.close()
      store.close()
      return
    }
    console.log(`watcher: ${event.key} ${event.type === 'set' ? `= ${JSON.stringify(store.get(event.key))}` : event.type}`)
  }, { prefix: true })
  process.send('ready')
  process.disconnect()
} else {
  process.send('ready')
  const increments = Number(incrementsText)
  const key = `counters/${name}`
  const seen = new Set()
  for (let i = 0; i < increments; i++) {
    store.set(key, (store.get(key) ?? 0) + 1)
    seen.add(store.get('config/greeting'))
  }
  console.log(`${name}: counted ${store.get(key)}, saw greetings ${[...seen].join(', ')}`)
  store.close()
  process.disconnect()
}
