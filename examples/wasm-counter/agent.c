// wasm-counter: the counter example as a raw WebAssembly agent in C, written
// against the agentcloud host ABI (internal/isolate/ABI.md), no SDK.
//
// `hits` is a C global. It lives in the module's linear memory, which a
// hibernating session snapshots and restores, so it survives hibernation
// and a daemon restart. `count` lives in durable session state.
//
//   GET  /        -> {"global": n, "stored": m, "session": "<id>"}, both incremented
//   POST /reset   -> sets the stored counter back to 0
//   anything else -> 405 for non-GET, as JSON
//
// Build: ./build.sh (clang --target=wasm32-wasi with Debian's wasi-libc).

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IMPORT(name) __attribute__((import_module("agentcloud"), import_name(name)))
#define EXPORT(name) __attribute__((export_name(name)))

IMPORT("state_get") int32_t state_get(const char *key, uint32_t key_len, uint32_t *out_ptr, uint32_t *out_len);
IMPORT("state_put") int32_t state_put(const char *key, uint32_t key_len, const char *val, uint32_t val_len);
IMPORT("state_delete") int32_t state_delete(const char *key, uint32_t key_len);
IMPORT("log") int32_t host_log(int32_t level, const char *msg, uint32_t msg_len);

static uint32_t hits;

EXPORT("ac_alloc") void *ac_alloc(uint32_t n) { return malloc(n ? n : 1); }
EXPORT("ac_free") void ac_free(void *p) { free(p); }

// json_string copies the string value of "key" in json (no escapes
// expected in the fields read here) into out; returns its length or -1.
static int json_string(const char *json, uint32_t len, const char *key, char *out, int cap) {
	char pat[32];
	int pl = snprintf(pat, sizeof pat, "\"%s\":\"", key);
	for (uint32_t i = 0; i + pl <= len; i++) {
		if (memcmp(json + i, pat, pl) != 0) continue;
		int n = 0;
		for (uint32_t j = i + pl; j < len && json[j] != '"' && n < cap - 1; j++) out[n++] = json[j];
		out[n] = 0;
		return n;
	}
	return -1;
}

// path_of returns the path of an absolute URL ("https://host/x?y" -> "/x").
static const char *path_of(char *url) {
	char *p = strstr(url, "://");
	p = p ? strchr(p + 3, '/') : url;
	if (!p) return "/";
	char *q = strchr(p, '?');
	if (q) *q = 0;
	return p;
}

// respond builds "u32 LE json_len | json | body" and packs it for ac_fetch.
static uint64_t respond(int status, const char *body) {
	char meta[128];
	int ml = snprintf(meta, sizeof meta,
		"{\"status\":%d,\"headers\":[[\"content-type\",\"application/json\"]]}", status);
	uint32_t bl = strlen(body);
	uint8_t *out = malloc(4 + ml + bl);
	out[0] = ml; out[1] = ml >> 8; out[2] = ml >> 16; out[3] = ml >> 24;
	memcpy(out + 4, meta, ml);
	memcpy(out + 4 + ml, body, bl);
	return ((uint64_t)(uintptr_t)out << 32) | (4 + ml + bl);
}

static const char KEY[] = "count";

EXPORT("ac_fetch") uint64_t ac_fetch(const uint8_t *req, uint32_t req_len) {
	uint32_t jl = req[0] | req[1] << 8 | req[2] << 16 | (uint32_t)req[3] << 24;
	const char *json = (const char *)req + 4;
	char method[16], url[512], session[160], body[256];
	if (jl > req_len - 4 || json_string(json, jl, "method", method, sizeof method) < 0 ||
	    json_string(json, jl, "url", url, sizeof url) < 0)
		return respond(400, "{\"error\":\"malformed request\"}");
	if (json_string(json, jl, "id", session, sizeof session) < 0) session[0] = 0;
	const char *path = path_of(url);
	hits++;

	if (strcmp(path, "/reset") == 0) {
		if (strcmp(method, "POST") != 0) return respond(405, "{\"error\":\"use POST /reset\"}");
		if (state_delete(KEY, sizeof KEY - 1) != 0) return respond(500, "{\"error\":\"state_delete failed\"}");
		snprintf(body, sizeof body, "{\"global\":%u,\"stored\":0,\"reset\":true}", hits);
		return respond(200, body);
	}
	if (strcmp(method, "GET") != 0) return respond(405, "{\"error\":\"use GET / or POST /reset\"}");

	long stored = 0;
	uint32_t vp, vl;
	int32_t st = state_get(KEY, sizeof KEY - 1, &vp, &vl);
	if (st == 0) {
		char *v = (char *)(uintptr_t)vp;
		char num[24];
		uint32_t n = vl < sizeof num - 1 ? vl : sizeof num - 1;
		memcpy(num, v, n);
		num[n] = 0;
		stored = strtol(num, NULL, 10);
		free(v);
	} else if (st != 1) {
		return respond(500, "{\"error\":\"state_get failed\"}");
	}
	stored++;
	char val[24];
	int n = snprintf(val, sizeof val, "%ld", stored);
	if (state_put(KEY, sizeof KEY - 1, val, n) != 0) return respond(500, "{\"error\":\"state_put failed\"}");
	static const char msg[] = "counted";
	host_log(1, msg, sizeof msg - 1);
	snprintf(body, sizeof body, "{\"global\":%u,\"stored\":%ld,\"session\":\"%s\"}", hits, stored, session);
	return respond(200, body);
}
