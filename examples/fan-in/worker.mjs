// A worker process of examples/fan-in: sends its numbered reports, then closes.
import { FanInProducer } from 'shm-channel'

const [name, id, count] = process.argv.slice(2)
const producer = FanInProducer.open(name)
for (let seq = 0; seq < Number(count); seq++) {
  const report = { worker: Number(id), seq, value: seq * 2 }
  if (!producer.trySend(report)) await producer.send(report)
}
producer.close()
