"""MCP: Stepgate's tools for AI clients, at /mcp on the API and over stdio (`stepgate mcp`).

`server.build_server` is the one server both serve; `http.McpEndpoint` serves it over
streamable HTTP inside the API, `api.cli_mcp` over stdio against the REST API (it imports none
of the API's in-process parts). See docs/mcp.md.
"""
