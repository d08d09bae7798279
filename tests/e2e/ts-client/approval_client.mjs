// A second real MCP client for the approval tests: the official TypeScript SDK v2
// (@modelcontextprotocol/client, pinned in package.json next to this file), launching a server the
// way a host does and answering the proxy's approval questions with one scripted answer.
//
//   node approval_client.mjs SPEC.json
//
// SPEC: {"era": "legacy" | "auto" | "pin",          // pin = 2026-07-28 with no probe
//        "answer": {"action": "accept", "content": {"decision": "approve_once"}},   // an ElicitResult
//        "calls": [{"name": "valkey_write", "arguments": {...}}, ...],
//        "server": {"command": "...", "args": [...], "env": {...}, "cwd": "..."}}
//
// Prints one JSON line: {"protocolVersion", "elicitations": [params...], "results": [CallToolResult...]}.
// The same elicitation/create handler answers the handshake era's request and fulfils a
// 2026-07-28 InputRequiredResult (the SDK's inputRequired.autoFulfill, on by default).
//
// scripts/setup-e2e installs the package into its cache; the test copies this file next to a
// link to that node_modules, since Node resolves ES module imports from the script's directory.
import { readFileSync } from 'node:fs';

import { Client } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';

const spec = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const mode = spec.era === 'pin' ? { pin: '2026-07-28' } : spec.era;

const client = new Client(
  { name: 'e2e-ts-approval', version: '0.0.0' },
  { capabilities: { elicitation: { form: {} } }, versionNegotiation: { mode } },
);
const elicitations = [];
client.setRequestHandler('elicitation/create', async (request) => {
  elicitations.push(request.params);
  return spec.answer;
});

await client.connect(
  new StdioClientTransport({
    command: spec.server.command,
    args: spec.server.args,
    env: spec.server.env,
    cwd: spec.server.cwd,
    stderr: 'inherit',
  }),
);
const results = [];
for (const call of spec.calls) {
  results.push(await client.callTool(call));
}
const protocolVersion = client.getNegotiatedProtocolVersion();
await client.close();
console.log(JSON.stringify({ protocolVersion, elicitations, results }));
