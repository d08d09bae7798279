#!/bin/sh
# Registers the Valkey MCP server behind the proxy with Claude Code, for this project
# (--scope project writes .mcp.json at the repo root, next to valkey-policy.toml).
# Claude's own options come before the server name; everything after `--` is the command it runs.
claude mcp add --transport stdio --scope project \
  --env VALKEY_HOST=127.0.0.1 --env VALKEY_PORT=6379 \
  valkey -- mcp-policy-proxy --config valkey-policy.toml uvx awslabs.valkey-mcp-server@latest
