"""Drives Switchyard's /mcp with the official MCP Python SDK (pinned in scripts/requirements-test.txt).

Run by the integration test `mcp::official_python_sdk_*`, which starts the dev server and a mock
provider first. Arguments come from the environment: SWITCHYARD_MCP_URL, SWITCHYARD_MCP_KEY,
SWITCHYARD_MCP_SPACE, SWITCHYARD_MCP_TENANT, and SWITCHYARD_MCP_CALLS, a JSON list of
[tool name, arguments] to call after listing. Prints one JSON object with what the SDK saw, for
the Rust test to check; any SDK exception (including its own validation of structuredContent
against the tool's outputSchema) fails the run with a traceback and exit code 1.
"""

import asyncio
import json
import os

from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


async def main() -> dict:
    headers = {
        "x-fastn-api-key": os.environ["SWITCHYARD_MCP_KEY"],
        "x-fastn-space-id": os.environ["SWITCHYARD_MCP_SPACE"],
        "x-fastn-space-tenantid": os.environ["SWITCHYARD_MCP_TENANT"],
    }
    calls = json.loads(os.environ["SWITCHYARD_MCP_CALLS"])
    # The Rust test removes proxy settings from the environment: traffic stays on 127.0.0.1.
    http = create_mcp_http_client(headers=headers)
    async with http:
        transport = streamable_http_client(os.environ["SWITCHYARD_MCP_URL"], http_client=http)
        # The default mode ("auto") probes `server/discover` first and falls back to the
        # initialize handshake: exactly what a newer client does against this server.
        async with Client(transport, raise_exceptions=True) as client:
            pages = 0
            tools = []
            cursor = None
            while True:
                page = await client.list_tools(cursor=cursor, cache_mode="bypass")
                pages += 1
                tools.extend(page.tools)
                cursor = page.next_cursor
                if cursor is None:
                    break
            results = []
            for name, arguments in calls:
                result = await client.call_tool(name, arguments)
                results.append(
                    {
                        "name": name,
                        "is_error": bool(result.is_error),
                        "text": [c.text for c in result.content if getattr(c, "type", None) == "text"],
                        "structured": result.structured_content,
                    }
                )
            pong = await client.send_ping()
            return {
                "protocol_version": client.protocol_version,
                "server_name": client.server_info.name if client.server_info else None,
                "pages": pages,
                "tools": [
                    {
                        "name": t.name,
                        "has_output_schema": t.output_schema is not None,
                        "read_only": t.annotations.read_only_hint if t.annotations else None,
                        "destructive": t.annotations.destructive_hint if t.annotations else None,
                    }
                    for t in tools
                ],
                "calls": results,
                "ping": pong.model_dump(exclude_none=True),
            }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main())))
