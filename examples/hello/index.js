// hello: a stateless agent. It keeps nothing between requests.
//
//   GET /anything     -> "Hello from <agent>/<session>!"
//   GET /json?a=1&b=2 -> {"agent", "session", "method", "path", "query"}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const { agent, id } = env.session;

    if (request.method !== "GET" && request.method !== "HEAD") {
      return Response.json(
        { error: "method not allowed", allow: ["GET", "HEAD"] },
        { status: 405, headers: { allow: "GET, HEAD" } },
      );
    }

    if (url.pathname === "/json") {
      // A repeated parameter (?tag=a&tag=b) becomes a list.
      const query = {};
      for (const [k, v] of url.searchParams) {
        if (!(k in query)) query[k] = v;
        else if (Array.isArray(query[k])) query[k].push(v);
        else query[k] = [query[k], v];
      }
      return Response.json({ agent, session: id, method: request.method, path: url.pathname, query });
    }

    return new Response(`Hello from ${agent}/${id}!\n`, {
      headers: { "content-type": "text/plain; charset=utf-8" },
    });
  },
};
