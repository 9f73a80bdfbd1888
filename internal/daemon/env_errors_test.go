package daemon_test

import (
	"encoding/json"
	"strings"
	"testing"
)

// envErrorAgent runs one env binding per path and answers with the name,
// message and standard class of what it threw.
const envErrorAgent = `
const cases = {
	unknownTool: (env) => env.tools.call("ghost", {}),
	unlistedTool: (env) => env.tools.call("state_get", {key: "k"}),
	noToolName: (env) => env.tools.call("", {}),
	badSearch: (env) => env.tools.search("files", {limit: "ten"}),
	unknownModel: (env) => env.ai.chat({model: "nope", messages: [{role: "user", content: "hi"}]}),
	execNoID: (env) => env.sandbox.exec("", {cmd: "true"}),
	deleteNoID: (env) => env.sandbox.delete(""),
	runNothing: (env) => env.sandbox.run({}),
	execOther: (env) => env.sandbox.exec("sb-nobody", {cmd: "true"}),
	fetchDenied: () => fetch("http://not-allowed.example/"),
};
export default { async fetch(request, env) {
	const which = new URL(request.url).pathname.slice(1);
	try { await cases[which](env); return new Response("no error"); }
	catch (e) { return Response.json({name: e.name, message: e.message, type: e instanceof TypeError}); }
} }`

// TestEnvServiceErrorClass: the daemon's env services (env.tools, env.ai,
// env.sandbox) and fetch refuse bad calls with the JavaScript Error class
// agent code is documented to get (isolate.HostError end to end): TypeError
// for malformed arguments, the tool error code's name for tool failures,
// ModelError for the gateway, PermissionError for policy, TypeError for a
// refused fetch.
func TestEnvServiceErrorClass(t *testing.T) {
	_, admin := startDaemon(t)
	if err := deployJS(admin, `{"name":"errs","entry":"agent.js","tools":["ghost","ping"],"limits":{"idle_seconds":3600}}`, envErrorAgent); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		path, name, message string
		typeErr             bool
	}{
		{"unknownTool", "UnknownToolError", "", false},
		{"unlistedTool", "NotInManifestError", "", false},
		{"noToolName", "TypeError", "env.tools.call(name, args) needs a tool name", true},
		{"badSearch", "TypeError", "env.tools.search(words, {limit}) needs words as a string", true},
		{"unknownModel", "ModelError", "", false},
		{"execNoID", "TypeError", "env.sandbox.exec needs the id", true},
		{"deleteNoID", "TypeError", "env.sandbox.delete needs a sandbox id", true},
		{"runNothing", "TypeError", "env.sandbox: give language", true},
		{"execOther", "PermissionError", "", false},
		{"fetchDenied", "TypeError", "fetch failed", true},
	}
	for _, tc := range cases {
		t.Run(tc.path, func(t *testing.T) {
			code, body := callAgent(t, admin, "errs", "s1", tc.path)
			var got struct {
				Name, Message string
				Type          bool
			}
			if err := json.Unmarshal([]byte(body), &got); code != 200 || err != nil {
				t.Fatalf("%s: %d %s", tc.path, code, body)
			}
			if strings.Contains(got.Message, "sandboxes are unavailable") && got.Name == "NotSupportedError" {
				t.Skipf("%s: %s", tc.path, got.Message) // a host without sandboxes
			}
			if got.Name != tc.name || !strings.HasPrefix(got.Message, tc.message) || got.Type != tc.typeErr {
				t.Fatalf("%s threw %+v, want %s %q… (TypeError %v)", tc.path, got, tc.name, tc.message, tc.typeErr)
			}
		})
	}
}
