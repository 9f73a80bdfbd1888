// notes: agent memory as a small JSON API over env.state.
//
//   GET    /notes?prefix=p&limit=n  list notes whose id starts with p (default limit 100)
//   PUT    /notes/:id               store the JSON body as the note (201 new, 200 replaced)
//   GET    /notes/:id               one note
//   DELETE /notes/:id               remove it
//
// Errors are JSON {"error": "..."} with 400, 404, 405 or 413.

const PREFIX = "note:";
const ID = /^[A-Za-z0-9._~-]{1,128}$/;
const MAX_LIMIT = 1000;

const error = (status, message, headers) => Response.json({ error: message }, { status, headers });
const view = (id, stored) => ({ id, note: stored.note, updated: stored.updated });

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const parts = url.pathname.split("/").filter(Boolean);

    if (parts.length === 1 && parts[0] === "notes") {
      if (request.method !== "GET") return error(405, "use GET /notes", { allow: "GET" });
      return list(env, url.searchParams);
    }
    if (parts.length === 2 && parts[0] === "notes") {
      let id;
      try {
        id = decodeURIComponent(parts[1]);
      } catch {
        return error(400, "note id is not valid percent-encoding");
      }
      if (!ID.test(id)) return error(400, "note id must be 1-128 characters of A-Z a-z 0-9 . _ ~ -");
      switch (request.method) {
        case "GET":
          return get(env, id);
        case "PUT":
          return put(env, id, request);
        case "DELETE":
          return remove(env, id);
        default:
          return error(405, "use GET, PUT or DELETE on /notes/:id", { allow: "GET, PUT, DELETE" });
      }
    }
    return error(404, `no route for ${request.method} ${url.pathname}; try GET /notes`);
  },
};

async function list(env, params) {
  const prefix = params.get("prefix") ?? "";
  let limit = 100;
  if (params.has("limit")) {
    limit = Number(params.get("limit"));
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) {
      return error(400, `limit must be a whole number from 1 to ${MAX_LIMIT}`);
    }
  }
  const rows = await env.state.list({ prefix: PREFIX + prefix, limit });
  const notes = [];
  for (const [key, stored] of rows) notes.push(view(key.slice(PREFIX.length), stored));
  return Response.json({ notes, count: notes.length });
}

async function get(env, id) {
  const stored = await env.state.get(PREFIX + id);
  if (stored === undefined || stored === null) return error(404, `no note ${id}`);
  return Response.json(view(id, stored));
}

async function put(env, id, request) {
  const max = Number(env.MAX_NOTE_BYTES ?? 65536);
  const text = await request.text();
  if (new TextEncoder().encode(text).length > max) return error(413, `note is larger than ${max} bytes`);
  if (text.trim() === "") return error(400, "body is empty; send the note as JSON");
  let note;
  try {
    note = JSON.parse(text);
  } catch (e) {
    return error(400, `body is not valid JSON: ${e.message}`);
  }
  const key = PREFIX + id;
  const existed = (await env.state.get(key)) !== undefined;
  const stored = { note, updated: new Date().toISOString() };
  await env.state.put(key, stored);
  return Response.json(view(id, stored), { status: existed ? 200 : 201 });
}

async function remove(env, id) {
  const key = PREFIX + id;
  if ((await env.state.get(key)) === undefined) return error(404, `no note ${id}`);
  await env.state.delete(key);
  return Response.json({ deleted: id });
}
