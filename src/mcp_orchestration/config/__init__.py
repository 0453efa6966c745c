"""The MCP config model: parsing, validation, diff and each client's file shape (pure; no store, no keys)."""
