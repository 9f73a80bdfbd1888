// Drives agentcloud's E2B-compatible API with the real e2b SDK
// (internal/daemon/e2b_sdk_test.go). E2B_API_URL, E2B_SANDBOX_URL and
// E2B_API_KEY come from the test; it prints one JSON object of results.
import { Sandbox } from 'e2b'
import { ptyRoundTrip } from './pty.mjs'

const out = {}
const step = async (name, fn) => {
  try {
    out[name] = await fn()
  } catch (e) {
    out[name] = { error: `${e.name}: ${e.message}` }
  }
}

const sbx = await Sandbox.create('base', { timeoutMs: 120_000, metadata: { suite: 'e2b-sdk' }, envs: { GREETING: 'hi' } })
out.id = sbx.sandboxId

await step('run', async () => {
  const chunks = []
  const r = await sbx.commands.run('echo "$GREETING from $0"; echo oops >&2; for i in 1 2 3; do echo line$i; done', {
    onStdout: (d) => chunks.push(d),
  })
  return { exitCode: r.exitCode, stdout: r.stdout, stderr: r.stderr, chunks: chunks.length, streamed: chunks.join('') }
})

await step('stream', async () => {
  // Three lines 300 ms apart: each must reach onStdout as it is printed.
  const t0 = Date.now()
  const at = []
  const chunks = []
  const r = await sbx.commands.run('for i in 1 2 3; do echo tick$i; sleep 0.3; done', {
    onStdout: (d) => { at.push(Date.now() - t0); chunks.push(d) },
  })
  return { stdout: r.stdout, chunks, at, end: Date.now() - t0 }
})

await step('exitError', async () => {
  try {
    await sbx.commands.run('exit 3')
    return { thrown: false }
  } catch (e) {
    return { thrown: true, name: e.name, exitCode: e.exitCode }
  }
})

await step('files', async () => {
  const w = await sbx.files.write('/workspace/hello.txt', 'hello from the e2b sdk\n')
  const read = await sbx.files.read('/workspace/hello.txt')
  await sbx.files.makeDir('/workspace/sub/dir')
  const list = await sbx.files.list('/workspace')
  const exists = await sbx.files.exists('/workspace/hello.txt')
  await sbx.files.rename('/workspace/hello.txt', '/workspace/moved.txt')
  const moved = await sbx.files.read('/workspace/moved.txt')
  await sbx.files.remove('/workspace/moved.txt')
  const gone = await sbx.files.exists('/workspace/moved.txt')
  return { written: w.path, read, list: list.map((e) => `${e.name}:${e.type}`).sort(), exists, moved, gone }
})

await step('fork', async () => {
  // Forks copy the parent's files; afterwards each writes on its own.
  await sbx.files.write('/workspace/parent.txt', 'from the parent\n')
  const forks = await sbx.fork({ timeoutMs: 90_000 })
  const errors = forks.filter((f) => f instanceof Error).map((f) => `${f.name}: ${f.message}`)
  const fork = forks.find((f) => f instanceof Sandbox)
  const seen = await fork.files.read('/workspace/parent.txt')
  await fork.files.write('/workspace/fork.txt', 'from the fork\n')
  await sbx.files.write('/workspace/parent2.txt', 'after the fork\n')
  const forkInParent = await sbx.files.exists('/workspace/fork.txt')
  const parentInFork = await fork.files.exists('/workspace/parent2.txt')
  const ran = (await fork.commands.run('cat /workspace/parent.txt /workspace/fork.txt')).stdout
  const info = await fork.getInfo()
  const secondsLeft = Math.round((info.endAt.getTime() - Date.now()) / 1000)
  // The static call, two copies with E2B's default timeout.
  const two = await Sandbox.fork(sbx.sandboxId, { count: 2 })
  const twoIds = two.filter((f) => f instanceof Sandbox).map((f) => f.sandboxId)
  const twoLeft = await Promise.all(two.filter((f) => f instanceof Sandbox).map(async (f) =>
    Math.round(((await f.getInfo()).endAt.getTime() - Date.now()) / 1000)))
  // Then more time, so that a slow machine does not end them mid-test.
  await Promise.all(two.filter((f) => f instanceof Sandbox).map((f) => f.setTimeout(120_000)))
  const twoSeen = await Promise.all(two.filter((f) => f instanceof Sandbox).map(async (f) =>
    `${await f.files.read('/workspace/parent2.txt')}|${await f.files.exists('/workspace/fork.txt')}`))
  const killed = await Promise.all([fork, ...two.filter((f) => f instanceof Sandbox)].map((f) => f.kill()))
  const parentRuns = (await sbx.commands.run('cat /workspace/parent.txt')).stdout
  await sbx.files.remove('/workspace/parent.txt')
  await sbx.files.remove('/workspace/parent2.txt')
  return { count: forks.length, errors, id: fork.sandboxId, seen, forkInParent, parentInFork, ran, secondsLeft,
    two: two.length, twoIds, twoLeft, twoSeen, killed, parentRuns }
})

await step('background', async () => {
  const h = await sbx.commands.run('echo started; sleep 60', { background: true })
  const listed = await sbx.commands.list()
  const killed = await h.kill()
  let waited
  try {
    await h.wait()
    waited = 'no error'
  } catch (e) {
    waited = e.name
  }
  const after = await sbx.commands.list()
  return { pid: h.pid, listed: listed.map((p) => p.pid).includes(h.pid), killed, waited, after: after.length }
})

await step('stdin', async () => {
  const h = await sbx.commands.run('read line; echo "got $line"', { background: true, stdin: true })
  await sbx.commands.sendStdin(h.pid, 'typed\n')
  const r = await h.wait()
  return { stdout: r.stdout }
})

await step('pty', () => ptyRoundTrip(sbx))

await step('timeout', async () => {
  await sbx.setTimeout(300_000)
  const info = await sbx.getInfo()
  return { secondsLeft: Math.round((info.endAt.getTime() - Date.now()) / 1000), state: info.state }
})

await step('pause', async () => {
  const paused = await sbx.pause()
  const info = await Sandbox.getInfo(sbx.sandboxId)
  const again = await Sandbox.connect(sbx.sandboxId)
  const r = await again.commands.run('echo after resume')
  const info2 = await again.getInfo()
  return { paused, stateWhilePaused: info.state, stdout: r.stdout, stateAfter: info2.state }
})

await step('list', async () => {
  const items = await Sandbox.list().nextItems()
  return items.map((s) => ({ id: s.sandboxId, metadata: s.metadata }))
})

await step('kill', async () => {
  const killed = await sbx.kill()
  const again = await Sandbox.kill(sbx.sandboxId)
  let running
  try {
    running = await sbx.isRunning()
  } catch (e) {
    running = e.name
  }
  return { killed, again, running }
})

console.log(JSON.stringify(out))
