package isolate

import (
	"context"
	"os"
	"testing"
)

const helloModule = `export default { fetch() { return new Response("hello") } }`

func benchFetch(b *testing.B, rt *Runtime, mod, url string) {
	ctx := context.Background()
	iso, err := rt.New(ctx, Spec{Module: mod})
	if err != nil {
		b.Fatal(err)
	}
	defer iso.Close(ctx)
	h := newMemHost()
	req := Request{Method: "GET", URL: url}
	for b.Loop() {
		if _, err := iso.Fetch(ctx, req, h); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkExpHello(b *testing.B) {
	benchFetch(b, testRuntime(b), helloModule, "http://agent/p?q=1")
}
func BenchmarkExpHelloCoop(b *testing.B) {
	rt, err := NewRuntime(context.Background(), Config{CooperativeTimeouts: true, CacheDir: "/tmp/coopcache"})
	if err != nil {
		b.Fatal(err)
	}
	benchFetch(b, rt, helloModule, "http://agent/p?q=1")
}
func BenchmarkExpBenchCoop(b *testing.B) {
	rt, err := NewRuntime(context.Background(), Config{CooperativeTimeouts: true, CacheDir: "/tmp/coopcache"})
	if err != nil {
		b.Fatal(err)
	}
	benchFetch(b, rt, benchModule, "http://agent/p?q=1")
}

func BenchmarkExpFixed(b *testing.B) {
	benchFetch(b, testRuntime(b), `const r = new Response("hello"); export default { fetch() { return r } }`, "http://agent/p?q=1")
}
func BenchmarkExpAsyncHello(b *testing.B) {
	benchFetch(b, testRuntime(b), `export default { async fetch() { return new Response("hello") } }`, "http://agent/p?q=1")
}

func BenchmarkExpO3(b *testing.B) {
	w, err := os.ReadFile("/tmp/qjs-o3.wasm")
	if err != nil {
		b.Skip(err)
	}
	old := engineWasm
	engineWasm = w
	rt, err := NewRuntime(context.Background(), Config{CacheDir: "/tmp/o3cache"})
	engineWasm = old
	if err != nil {
		b.Fatal(err)
	}
	b.Run("hello", func(b *testing.B) { benchFetch(b, rt, helloModule, "http://agent/p?q=1") })
	b.Run("bench", func(b *testing.B) { benchFetch(b, rt, benchModule, "http://agent/p?q=1") })
}
