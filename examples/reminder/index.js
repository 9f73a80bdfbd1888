// reminder: durable alarms.
//
//   POST /remind {"in_seconds": N, "text": "..."}  store a reminder due in N seconds
//   GET  /reminders                                {pending, fired, next_alarm}
//
// A session has one alarm. Each pending reminder is its own key, named by its
// due time so that a prefix listing returns them in due order; the alarm is
// always set for the earliest one. alarm() runs when it is due -- waking the
// session from hibernation if need be -- moves every due reminder to the
// "fired" list and sets the alarm for the next one.

const PENDING = "pending:";
const FIRED = "fired";
const KEEP_FIRED = 50;
const MAX_SECONDS = 365 * 24 * 3600;

const error = (status, message) => Response.json({ error: message }, { status });

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/remind") {
      if (request.method !== "POST") return error(405, "use POST /remind");
      return remind(env, request);
    }
    if (url.pathname === "/reminders") {
      if (request.method !== "GET") return error(405, "use GET /reminders");
      return Response.json(await overview(env));
    }
    return error(404, "try POST /remind or GET /reminders");
  },

  async alarm(env) {
    const now = Date.now();
    const fired = (await env.state.get(FIRED)) ?? [];
    let next = null;
    for (const [key, r] of await env.state.list({ prefix: PENDING })) {
      if (r.due > now) {
        next = r.due; // keys sort by due time, so this is the earliest left
        break;
      }
      fired.push({ ...r, fired: new Date(now).toISOString() });
      await env.state.delete(key);
      console.log(`reminder ${r.id}: ${r.text}`);
    }
    await env.state.put(FIRED, fired.slice(-KEEP_FIRED));
    if (next !== null) await env.state.setAlarm(next);
  },
};

async function remind(env, request) {
  let body;
  try {
    body = await request.json();
  } catch {
    return error(400, 'body must be JSON: {"in_seconds": 60, "text": "..."}');
  }
  const n = body?.in_seconds;
  if (typeof n !== "number" || !Number.isFinite(n) || n < 0 || n > MAX_SECONDS) {
    return error(400, `in_seconds must be a number from 0 to ${MAX_SECONDS}`);
  }
  if (typeof body.text !== "string" || body.text.trim() === "" || body.text.length > 1000) {
    return error(400, "text must be a non-empty string of at most 1000 characters");
  }
  const due = Date.now() + Math.round(n * 1000);
  const reminder = { id: crypto.randomUUID(), text: body.text, due, due_at: new Date(due).toISOString() };
  await env.state.put(PENDING + String(due).padStart(15, "0") + ":" + reminder.id, reminder);

  // One alarm per session: only move it earlier, never later.
  const current = await env.state.getAlarm();
  if (current === null || due < current) await env.state.setAlarm(due);
  return Response.json(reminder, { status: 201 });
}

async function overview(env) {
  const pending = [...(await env.state.list({ prefix: PENDING })).values()];
  const fired = (await env.state.get(FIRED)) ?? [];
  const alarm = await env.state.getAlarm();
  return { pending, fired, next_alarm: alarm === null ? null : new Date(alarm).toISOString() };
}
