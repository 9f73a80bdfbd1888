// A Workers-style app the test suite runs unchanged on agentcloud and on
// workerd (internal/session/sessionhttp/workerd_test.go), asserting the same
// outputs: server-sent events from a stream, stream transforms, gzip, a
// WebSocket, webhook HMAC verification and structuredClone.
const te = new TextEncoder();

async function hmacHex(secret, body) {
  const key = await crypto.subtle.importKey("raw", te.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const sig = new Uint8Array(await crypto.subtle.sign("HMAC", key, te.encode(body)));
  return Array.from(sig, (b) => b.toString(16).padStart(2, "0")).join("");
}

export default {
  async fetch(request) {
    const url = new URL(request.url);
    switch (url.pathname) {
      case "/sse": {
        let i = 0;
        const body = new ReadableStream({
          pull(c) {
            return new Promise((resolve) => setTimeout(() => {
              i++;
              c.enqueue(te.encode(`id: ${i}\nevent: tick\ndata: {"n":${i}}\n\n`));
              if (i === 3) c.close();
              resolve();
            }, 10));
          },
        });
        return new Response(body, { headers: { "content-type": "text/event-stream" } });
      }
      case "/upper": {
        const upper = new TransformStream({ transform(chunk, c) { c.enqueue(chunk.toUpperCase()); } });
        const out = request.body.pipeThrough(new TextDecoderStream()).pipeThrough(upper).pipeThrough(new TextEncoderStream());
        return new Response(out, { headers: { "content-type": "text/plain" } });
      }
      case "/gzip": {
        const text = "stream me ".repeat(50);
        const packed = await new Response(new Response(text).body.pipeThrough(new CompressionStream("gzip"))).arrayBuffer();
        const back = await new Response(new Response(packed).body.pipeThrough(new DecompressionStream("gzip"))).text();
        return Response.json({ same: back === text, smaller: packed.byteLength < text.length, magic: Array.from(new Uint8Array(packed, 0, 2)) });
      }
      case "/writable": {
        const parts = [];
        const ws = new WritableStream({ write(chunk) { parts.push(chunk); } });
        const w = ws.getWriter();
        for (const p of ["a", "b", "c"]) await w.write(p);
        await w.close();
        return new Response(parts.join("-"));
      }
      case "/hook": {
        const body = await request.text();
        const ok = (await hmacHex("webhook-secret", body)) === request.headers.get("x-signature");
        return new Response(ok ? "verified" : "bad signature", { status: ok ? 200 : 401 });
      }
      case "/clone": {
        const v = { when: new Date(0), tags: new Set(["a", "b"]), m: new Map([[1, { deep: [1, 2] }]]), bytes: new Uint8Array([7, 8]) };
        v.self = v;
        const c = structuredClone(v);
        return Response.json({
          date: c.when instanceof Date && c.when.getTime(), set: [...c.tags], map: c.m.get(1).deep,
          bytes: Array.from(c.bytes), cycle: c.self === c, distinct: c !== v && c.m !== v.m,
        });
      }
      case "/ws": {
        if (request.headers.get("upgrade") !== "websocket") return new Response("expected a websocket", { status: 426 });
        const [client, server] = Object.values(new WebSocketPair());
        server.accept();
        let n = 0;
        server.addEventListener("message", (ev) => {
          n++;
          if (ev.data === "close") { server.close(1000, "done"); return; }
          server.send(`echo ${n}: ${ev.data}`);
        });
        return new Response(null, { status: 101, webSocket: client });
      }
    }
    return new Response("not found", { status: 404 });
  },
};
