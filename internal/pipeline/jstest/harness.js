// harness.js: the test API of tests/*.test.js, in the manner of Jest and
// Vitest: test(name, fn), test.skip, expect(x).toBe / toEqual / toMatch /
// toThrow / toBeTruthy / toContain (each with .not), and console output
// captured per test. The runner module imports this first, then one test
// file, and its fetch handler runs the registered tests in order.
const tests = [];
let current = null;
const MAX_OUT = 8192, MAX_TESTS = 1000;

function fmt(v) {
  if (typeof v === "string") return v;
  if (v instanceof Error) return `${v.name}: ${v.message}`;
  try { const s = JSON.stringify(v); return s === undefined ? String(v) : s; } catch (_) { return String(v); }
}
for (const level of ["log", "info", "warn", "error", "debug", "trace"]) {
  console[level] = (...args) => {
    if (!current) return;
    const line = args.map(fmt).join(" ") + "\n";
    if (current.out.length + line.length > MAX_OUT) {
      current.out = (current.out + line).slice(0, MAX_OUT);
      current.outCut = true;
    } else current.out += line;
  };
}

function register(name, fn, skip) {
  if (typeof name !== "string" || name === "") throw new TypeError("test(name, fn): name must be a non-empty string");
  if (typeof fn !== "function") throw new TypeError(`test(${JSON.stringify(name)}, fn): fn must be a function`);
  if (tests.length >= MAX_TESTS) throw new RangeError(`more than ${MAX_TESTS} tests in one file`);
  tests.push({ name: name.slice(0, 200), fn, skip });
}
function test(name, fn) { register(name, fn, false); }
test.skip = (name, fn) => register(name, fn, true);
test.only = test;
globalThis.test = test;
globalThis.it = test;
globalThis.describe = (name, fn) => fn();

class AssertionError extends Error { constructor(m) { super(m); this.name = "AssertionError"; } }

function equal(a, b, seen) {
  if (Object.is(a, b)) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false;
  if (seen.has(a)) return seen.get(a) === b;
  seen.set(a, b);
  if (a instanceof Date) return a.getTime() === b.getTime();
  if (a instanceof RegExp) return String(a) === String(b);
  if (a instanceof Map || a instanceof Set) {
    if (a.size !== b.size) return false;
    return equal([...a], [...b], seen);
  }
  const ka = Object.keys(a).filter((k) => a[k] !== undefined), kb = Object.keys(b).filter((k) => b[k] !== undefined);
  if (ka.length !== kb.length) return false;
  for (const k of ka) if (!Object.prototype.hasOwnProperty.call(b, k) || !equal(a[k], b[k], seen)) return false;
  return true;
}

function matches(s, pattern) {
  if (pattern instanceof RegExp) return pattern.test(s);
  return String(s).includes(String(pattern));
}

function makeExpect(actual, negate) {
  const check = (ok, msg) => {
    if (ok === negate) throw new AssertionError((negate ? "expected not: " : "expected: ") + msg);
  };
  const thrown = (err, expected) => {
    if (err === undefined) return false;
    if (expected === undefined) return true;
    const m = err && err.message !== undefined ? err.message : String(err);
    if (typeof expected === "function") return err instanceof expected;
    return matches(m, expected);
  };
  const m = {
    toBe(expected) { check(Object.is(actual, expected), `${fmt(actual)} to be ${fmt(expected)}`); },
    toEqual(expected) { check(equal(actual, expected, new Map()), `${fmt(actual)} to equal ${fmt(expected)}`); },
    toStrictEqual(expected) { check(equal(actual, expected, new Map()), `${fmt(actual)} to equal ${fmt(expected)}`); },
    toMatch(pattern) {
      if (typeof actual !== "string") throw new AssertionError(`toMatch: ${fmt(actual)} is not a string`);
      check(matches(actual, pattern), `${fmt(actual)} to match ${String(pattern)}`);
    },
    toContain(item) {
      const ok = typeof actual === "string" ? actual.includes(item) : Array.from(actual || []).includes(item);
      check(ok, `${fmt(actual)} to contain ${fmt(item)}`);
    },
    toBeTruthy() { check(!!actual, `${fmt(actual)} to be truthy`); },
    toBeFalsy() { check(!actual, `${fmt(actual)} to be falsy`); },
    toBeDefined() { check(actual !== undefined, `${fmt(actual)} to be defined`); },
    toBeUndefined() { check(actual === undefined, `${fmt(actual)} to be undefined`); },
    toBeNull() { check(actual === null, `${fmt(actual)} to be null`); },
    toBeGreaterThan(n) { check(actual > n, `${fmt(actual)} > ${fmt(n)}`); },
    toBeLessThan(n) { check(actual < n, `${fmt(actual)} < ${fmt(n)}`); },
    toHaveLength(n) { check(actual != null && actual.length === n, `${fmt(actual)} to have length ${n}`); },
    toThrow(expected) {
      if (typeof actual !== "function") throw new AssertionError("toThrow: expect(x) needs a function");
      const desc = expected === undefined ? "to throw" : `to throw ${String(expected)}`;
      let r;
      try { r = actual(); } catch (e) { check(thrown(e, expected), desc + `, threw ${fmt(e)}`); return; }
      if (r && typeof r.then === "function") {
        return r.then(() => check(false, desc), (e) => check(thrown(e, expected), desc + `, threw ${fmt(e)}`));
      }
      check(false, desc);
    },
  };
  return m;
}
function expect(actual) {
  const e = makeExpect(actual, false);
  e.not = makeExpect(actual, true);
  return e;
}
globalThis.expect = expect;

function errText(e) {
  if (e instanceof Error) return (`${e.name}: ${e.message}` + (e.stack ? "\n" + e.stack : "")).slice(0, 4096);
  return ("thrown: " + fmt(e)).slice(0, 4096);
}

// run runs the registered tests in order and returns their results.
export async function run() {
  const out = [];
  for (const t of tests) {
    const start = Date.now();
    if (t.skip) { out.push({ name: t.name, result: "skipped", duration_ms: 0 }); continue; }
    current = { out: "", outCut: false };
    let result = "passed", error;
    try { await t.fn(); } catch (e) { result = "failed"; error = errText(e); }
    const output = current.out + (current.outCut ? "…(output cut)\n" : "");
    current = null;
    out.push({ name: t.name, result, duration_ms: Date.now() - start, error, output: output || undefined });
  }
  return out;
}
