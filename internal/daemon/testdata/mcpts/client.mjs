// Drives agentcloud's /mcp with the official MCP TypeScript SDK over
// Streamable HTTP and prints what it saw as one JSON object.
// Usage: node client.mjs URL TOKEN RUN_CODE(0|1)
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [url, token, runCode] = process.argv.slice(2);
const transport = new StreamableHTTPClientTransport(new URL(url), {
  requestInit: { headers: { Authorization: `Bearer ${token}` } },
});
const client = new Client({ name: "agentcloud-ts-test", version: "1.0.0" });
await client.connect(transport);
const out = { server: client.getServerVersion()?.name };
out.tools = (await client.listTools()).tools.map((t) => t.name);
out.put = await client.callTool({ name: "state_put", arguments: { agent: "counter", session: "ts1", key: "n", value: 99 } });
out.get = await client.callTool({ name: "state_get", arguments: { agent: "counter", session: "ts1", key: "n" } });
if (runCode === "1") {
  out.run = await client.callTool({ name: "run_code", arguments: { language: "javascript", code: "console.log(6 * 7)" } });
}
out.bad = await client.callTool({ name: "run_code", arguments: { language: "ruby", code: "puts 1" } });
try {
  await client.callTool({ name: "no_such_tool", arguments: {} });
  out.unknown = "no error";
} catch (e) {
  out.unknown = String(e.message);
}
await client.close();
console.log(JSON.stringify(out));
