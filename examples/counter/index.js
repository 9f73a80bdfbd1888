// counter: two counters side by side.
//
// `hits` is a module-level global. It lives in the session's JS heap, so it
// survives between requests and, because a hibernating session's heap is
// snapshotted and restored, across hibernation too.
// `stored` lives in env.state, the session's durable key-value store; writes
// commit before the response leaves.
//
//   GET  /        -> {"global": n, "stored": m}, both incremented
//   POST /reset   -> sets the stored counter back to 0

let hits = 0;

const KEY = "count";

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    hits++;

    if (url.pathname === "/reset") {
      if (request.method !== "POST") {
        return Response.json({ error: "use POST /reset" }, { status: 405, headers: { allow: "POST" } });
      }
      await env.state.delete(KEY);
      return Response.json({ global: hits, stored: 0, reset: true });
    }

    const stored = ((await env.state.get(KEY)) ?? 0) + 1;
    await env.state.put(KEY, stored);
    return Response.json({ global: hits, stored });
  },
};
