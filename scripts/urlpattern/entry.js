// entry.js: the source of internal/isolate/urlpattern.js
// (scripts/gen-urlpattern.sh bundles it with urlpattern-polyfill). The
// class is the polyfill's, unchanged; it parses URLs with the runtime's URL.
// The module imported is the one without the side effect of installing a
// global: the prelude defines URLPattern lazily instead.
import { URLPattern } from "urlpattern-polyfill/urlpattern";

// install is called once per isolate by the prelude.
export function install() {
  return { URLPattern };
}
