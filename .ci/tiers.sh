# The test files of each CI tier, in one place (sourced by .ci/run).
# Paths are relative to the repository root; globs are expanded there.

# Default tier: every test file but the slow tier's (npm test runs the same
# files). It runs whole on DEFAULT_TIER_FULL_NODE (x64).
shopt -s globstar
DEFAULT_TIER=()
for file in test/**/*.test.ts; do
  case $file in test/slow/*) ;; *) DEFAULT_TIER+=("$file") ;; esac
done
DEFAULT_TIER_FULL_NODE=24

# On the other Nodes of the matrix (x64), the default tier less the long
# files that exercise only the protocol's JavaScript over the same native
# calls (peer-death detection, crashes mid-write, backpressure, corrupt and
# hostile segments, restarts and takeovers, reconnecting clients, the
# inspector): what differs between Nodes is the addon's build, its Node-API
# and V8 surface, garbage collection, timers and microtasks, and worker
# threads, and every file that touches those runs on every Node. The same
# holds for the key-value store, fan-in, topics and the C interop tests,
# which build on the channel's native calls (events, which add a use of the
# asynchronous wait, run everywhere), and for request/response, the examples
# and the README's snippets, which are JavaScript over channels and events.
ONCE_ONLY=(
  test/kv/*.test.ts
  test/fanin/*.test.ts
  test/pubsub/*.test.ts
  test/nats/*.test.ts
  test/interop/*.test.ts
  test/channel/crash.peer-death.test.ts
  test/channel/crash.in-flight.test.ts
  test/channel/backpressure.test.ts
  test/channel/segment.corrupt.test.ts
  test/channel/lifecycle.test.ts
  test/channel/restart.*.test.ts
  test/rpc/*.test.ts
  test/examples.test.ts
  test/readme.test.ts
  test/tools/cli.test.ts
  test/security.test.ts
)
MATRIX_TIER=()
for file in "${DEFAULT_TIER[@]}"; do
  once=0
  for pattern in "${ONCE_ONLY[@]}"; do
    # shellcheck disable=SC2053
    [[ $file == $pattern ]] && once=1
  done
  [ "$once" = 1 ] || MATRIX_TIER+=("$file")
done

# Slow tier: long stress and soak runs, on one Node (SLOW_TIER_NODE).
SLOW_TIER=(test/slow/*.test.ts)
SLOW_TIER_NODE=24

# arm64 smoke tier, under qemu-user: cross-process regions, futex wake-ups,
# channels, and the ring's property test (the ring's memory ordering is what
# ARM's weaker model would break).
ARM64_SMOKE_TIER=(
  test/platform/region.test.ts
  test/platform/futex.test.ts
  test/channel/channel.test.ts
  test/channel/ring.property.test.ts
)
ARM64_SMOKE_NODE=24
# Extra tap arguments for that tier: top-level tests left out there.
# - Under emulation, a process's CPU time counts qemu translating code, so the
#   test that bounds the CPU a parked wait uses (test/platform/futex.test.ts)
#   measures qemu, not the wait.
# - Each test of test/channel/channel.test.ts starts a peer process, ~25 s
#   under qemu; the ones kept carry messages across processes (whole, in
#   fragments, with wrap and padding) and a ping-pong under every wait
#   strategy, which is what ARM's memory model and futex could break. Those
#   left out test the API's JavaScript (timeouts, aborts, overlapping calls,
#   trySend, one end of each kind, batching), the same on every architecture.
ARM64_SMOKE_LEFT_OUT=(
  'waiting asynchronously costs neither the event loop nor CPU'
  'trySend never waits'
  'receiving: tryReceive, receiveSync, receive and async iteration'
  'timeouts'
  'calls that overlap'
  'abort signals'
  'a channel has one live end of each kind'
  'zero-copy and batching across processes'
)
ARM64_SMOKE_TAP_ARGS=(--invert "--grep=^($(IFS='|'; echo "${ARM64_SMOKE_LEFT_OUT[*]}"))\$")

# The packed tarball is installed with install scripts disabled and used
# across two processes under each of these: "<arch> <major>".
PACKED_INSTALL_TARGETS=(
  "x64 20"
  "x64 22"
  "x64 24"
  "x64 26"
  "arm64 24"
)
