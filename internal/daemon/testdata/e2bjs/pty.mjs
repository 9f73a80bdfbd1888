// The pty round trip both e2b SDK tests run (e2b.mjs on the process tier,
// pty-gvisor.mjs on gVisor): a terminal of 24×80, a command typed into it,
// a resize, and an exit status.
export async function ptyRoundTrip(sbx) {
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
  return { size: data.includes('24 80'), answer: data.includes('pty-42'), resized: data.includes('50 132'), exitCode }
}
