// The job both transports carry: the length of the Collatz sequence from n.
// Small on purpose (well under a microsecond): the example measures what it
// costs to hand work to other processes, not the work itself.

export function work ({ id, n }) {
  let steps = 0
  for (let x = n; x !== 1; steps++) x = x % 2 === 0 ? x / 2 : 3 * x + 1
  return { id, steps }
}

export function makeJob (id) {
  return { id, n: 1 + ((id * 7919) % 1_000_000) }
}
