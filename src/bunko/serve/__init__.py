"""bunko where people ask: the HTTP API and web page (``app``) and the MCP server (``mcp``).

Everything here is imported only by ``bunko serve`` and ``bunko mcp``; fastapi,
uvicorn and mcp stay out of ``bunko query``.
"""
