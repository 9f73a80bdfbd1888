// A pty in a gVisor sandbox through the real e2b SDK
// (internal/daemon/e2b_sdk_test.go, TestE2BSDKPtyGVisor). E2B_API_URL,
// E2B_SANDBOX_URL and E2B_API_KEY come from the test; it prints one JSON
// object of results.
import { Sandbox } from 'e2b'

const out = {}
const sbx = await Sandbox.create('gvisor', { timeoutMs: 120_000 })
try {
  let data = ''
  const dec = new TextDecoder()
  const enc = new TextEncoder()
  const until = async (s) => {
    for (let i = 0; i < 1000 && !data.includes(s); i++) await new Promise((r) => setTimeout(r, 20))
  }
  const h = await sbx.pty.create({ cols: 80, rows: 24, onData: (d) => { data += dec.decode(d) } })
  await sbx.pty.sendInput(h.pid, enc.encode('stty size; echo pty-$((6*7))\n'))
  await until('pty-42')
  await sbx.pty.resize(h.pid, { cols: 132, rows: 50 })
  await sbx.pty.sendInput(h.pid, enc.encode('stty size; exit 4\n'))
  let exitCode
  try {
    exitCode = (await h.wait()).exitCode
  } catch (e) {
    exitCode = e.exitCode
  }
  Object.assign(out, { size: data.includes('24 80'), answer: data.includes('pty-42'), resized: data.includes('50 132'), exitCode })
} catch (e) {
  out.error = `${e.name}: ${e.message}`
}
await sbx.kill()
console.log(JSON.stringify(out))
