package isolate

import (
	_ "embed"
	"strings"
)

// The libraries the prelude compiles on first use (host op "lib") or, when
// the agent's source hints at them, at boot into the template.

var (
	//go:embed webcrypto.js
	webcryptoJS string
	//go:embed clone.js
	cloneJS string
	//go:embed streams.js
	streamsJS string
	//go:embed websocket.js
	websocketJS string
	//go:embed webapi.js
	webapiJS string
	//go:embed identitystream.js
	identityStreamJS string
	//go:embed cache.js
	cacheJS string
	//go:embed urlpattern.js
	urlPatternJS string

	// preludeLibs are the sources the prelude compiles on first use (host
	// op "lib"); each is a function expression.
	preludeLibs = map[string]string{"webcrypto.js": webcryptoJS, "clone.js": cloneJS, "streams.js": streamsJS, "websocket.js": websocketJS, "webapi.js": webapiJS,
		"identitystream.js": identityStreamJS, "cache.js": cacheJS, "urlpattern.js": urlPatternJS}
)

// preloadHints name, for each library of preludeLibs, words whose presence
// in an agent's source makes the prelude compile the library at boot, into
// the template, instead of at first use in each session. A miss or a false
// hit changes only where the code lives, never what it does.
var preloadHints = map[string][]string{
	"webcrypto.js": {"subtle", "CryptoKey"},
	"clone.js":     {"structuredClone", "new Map", "new Set"},
	"streams.js": {"ReadableStream", "WritableStream", "TransformStream", "TextEncoderStream", "TextDecoderStream",
		"CompressionStream", "DecompressionStream", "getReader", "pipeThrough", "pipeTo", ".body"},
	"websocket.js":      {"WebSocketPair", "acceptWebSocket", "webSocketMessage"},
	"identitystream.js": {"IdentityTransformStream", "FixedLengthStream"},
	"cache.js":          {"caches"},
	"urlpattern.js":     {"URLPattern"},
	"webapi.js": {"FormData", "formData", "Blob", "blob()", "new File", "EventTarget", "new Event", "CustomEvent",
		"MessageEvent", "CloseEvent", "ErrorEvent", "PromiseRejectionEvent", ".accept()"},
}

// preloadLibs is the list of libraries spec's sources hint at.
func preloadLibs(spec Spec) []any {
	out := []any{}
	for _, name := range []string{"webcrypto.js", "clone.js", "streams.js", "websocket.js", "webapi.js", "identitystream.js", "cache.js", "urlpattern.js"} {
		hit := func(src string) bool {
			for _, w := range preloadHints[name] {
				if strings.Contains(src, w) {
					return true
				}
			}
			return false
		}
		found := hit(spec.Module)
		for _, src := range spec.Modules {
			found = found || hit(src)
		}
		if found {
			out = append(out, name)
		}
	}
	return out
}
