// A pty in a gVisor sandbox through the real e2b SDK
// (internal/daemon/e2b_sdk_test.go, TestE2BSDKPtyGVisor). E2B_API_URL,
// E2B_SANDBOX_URL and E2B_API_KEY come from the test; it prints one JSON
// object of results.
import { Sandbox } from 'e2b'
import { ptyRoundTrip } from './pty.mjs'

const out = {}
const sbx = await Sandbox.create('gvisor', { timeoutMs: 120_000 })
try {
  Object.assign(out, await ptyRoundTrip(sbx))
} catch (e) {
  out.error = `${e.name}: ${e.message}`
}
await sbx.kill()
console.log(JSON.stringify(out))
