package isolate

import "testing"

// TestURLPatternClass: URLPattern (urlpattern-polyfill, bundled into
// urlpattern.js) matches and captures as on Workers, from a string, a base
// URL or an init object, and refuses a malformed pattern with a TypeError.
func TestURLPatternClass(t *testing.T) {
	cases := []struct{ name, expr, want string }{
		{"pathname groups", `(() => { const p = new URLPattern({ pathname: "/books/:id" }); const m = p.exec("https://example.com/books/123?x=1");
			return [p.test("https://example.com/books/123"), p.test("https://example.com/films/1"), m.pathname.groups.id, m.pathname.input] })()`,
			`[true,false,"123","/books/123"]`},
		{"string with base", `(() => { const p = new URLPattern("/api/:version/*", "https://h.example"); const m = p.exec("https://h.example/api/v2/users/7");
			return [m.pathname.groups.version, m.pathname.groups["0"], p.test("https://other.example/api/v2/x"), p.protocol, p.hostname] })()`,
			`["v2","users/7",false,"https","h.example"]`},
		{"full string", `(() => { const p = new URLPattern("https://:sub.example.com/:rest*"); const m = p.exec("https://api.example.com/a/b");
			return [m.hostname.groups.sub, m.pathname.groups.rest] })()`, `["api","a/b"]`},
		{"regexp groups and modifiers", `(() => { const p = new URLPattern({ pathname: "/post/:id(\\d+)/:slug?" });
			return [p.test({ pathname: "/post/42" }), p.test({ pathname: "/post/42/hello" }), p.test({ pathname: "/post/x" }), p.hasRegExpGroups] })()`,
			`[true,true,false,true]`},
		{"search and hash", `(() => { const p = new URLPattern({ search: "q=:term", hash: "top" }); const m = p.exec("https://e.example/s?q=cats#top"); return m && m.search.groups.term })()`, `cats`},
		{"no match", `new URLPattern({ pathname: "/a" }).exec("https://e.example/b")`, `null`},
		{"ignore case", `[new URLPattern({ pathname: "/A" }, { ignoreCase: true }).test("https://e.example/a"), new URLPattern({ pathname: "/A" }).test("https://e.example/a")]`, `[true,false]`},
		{"request url", `new URLPattern({ pathname: "/r/:n" }).exec(new Request("https://e.example/r/5").url).pathname.groups.n`, `5`},
		{"malformed", `[() => new URLPattern("/:"), () => new URLPattern({ pathname: "/(" }), () => new URLPattern("/relative"), () => new URLPattern({ pathname: "/a" }, "https://base.example"), () => URLPattern({})].map((f) => { try { f(); return "no error"; } catch (e) { return e.name; } })`,
			`["TypeError","TypeError","TypeError","TypeError","TypeError"]`},
		{"instanceof and clone", `(() => { const p = new URLPattern({ pathname: "/x" }); let c; try { structuredClone(p); c = "cloned"; } catch (e) { c = e.name; } return [p instanceof URLPattern, p.pathname, c] })()`,
			`[true,"/x","DataCloneError"]`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := evalJS(t, c.expr); got != c.want {
				t.Fatalf("%s\n got %s\nwant %s", c.expr, got, c.want)
			}
		})
	}
}
