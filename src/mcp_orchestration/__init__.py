"""mcp-orchestration: MCP client configurations as signed, content-addressed artifacts."""
