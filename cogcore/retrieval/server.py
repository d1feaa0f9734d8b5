"""Serve a built index to other agents over MCP (Model Context Protocol), as the search tool.

Agents (Claude Desktop and Code, Cursor, the OpenAI Agents SDK, LangChain's MCP adapters) call MCP
tools natively, so the index is offered as one MCP tool, `search`, with the same name, description
and input schema as `SEARCH_TOOL` (the definition the model is trained with) and the same result
text the model reads. The result also carries the hits as structured content, with provenance
(the fields of `Hit`: doc_id, title, section, source, chunk_id, start, end, score, text, ...):

    {"hits": [{"doc_id": "cards", "title": "Lost cards", "start": 0, "end": 108, ...}, ...]}

    python -m cogcore.retrieval.server runs/demo/index               # stdio (what agents spawn)
    python -m cogcore.retrieval.server runs/demo/index --http --port 8765
                                                            # streamable HTTP, 127.0.0.1:8765/mcp

Needs the `mcp` package (the official SDK, 2.x). The SDK's low-level `Server` is used rather than
`MCPServer` (v1's FastMCP), which would derive a second schema and validator from a Python
signature: here the schema is SEARCH_TOOL's and the checking is `parse_search_arguments`, so an
agent and the model get the same answers to the same arguments, bad ones included.
"""

from __future__ import annotations

import argparse
import copy
import logging
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from cogcore import __version__
from cogcore.retrieval.hits import Hit, Searcher
from cogcore.retrieval.tool import SEARCH_TOOL, format_hits, parse_search_arguments

if TYPE_CHECKING:
    import mcp_types
    from mcp.server import Server
    from starlette.applications import Starlette

DEFAULT_PORT = 8765
HTTP_PATH = "/mcp"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
log = logging.getLogger("cogcore.retrieval.server")


class IndexUnavailable(RuntimeError):
    """The index folder could not be loaded (missing or inconsistent files, embedder not found)."""


class LazyIndex:
    """The index at index_dir, loaded once on first use (or by `preload`, in a background thread),
    so the server answers `initialize` and `tools/list` before the embedder has loaded."""

    def __init__(self, index_dir: Path):
        self.index_dir = Path(index_dir)
        self._index: Searcher | None = None
        # One lock for loading and searching: a fast tokenizer is not safe to share between
        # threads, and one query embeds in milliseconds, so serializing searches costs little.
        self._lock = threading.Lock()

    def _load(self) -> Searcher:
        if self._index is None:
            from cogcore.retrieval.index import SearchIndex  # imports faiss; torch on load

            try:
                self._index = SearchIndex.load(self.index_dir)
            except Exception as e:  # faiss, torch, json and os all raise their own types
                raise IndexUnavailable(f"the index at {self.index_dir} could not be loaded: {e}") from e
            log.info("loaded %s (%d chunks)", self.index_dir, len(self._index))
        return self._index

    def preload(self) -> None:
        """Load in a daemon thread; a failure is logged, and the next search tries again."""

        def load() -> None:
            try:
                with self._lock:
                    self._load()
            except IndexUnavailable as e:  # tried again, and reported, by each search
                log.warning("%s", e)

        threading.Thread(target=load, name="cogcore-index-load", daemon=True).start()

    def search(self, query: str, k: int) -> list[Hit]:
        with self._lock:
            return self._load().search(query, k)


def _hits_schema() -> dict:
    """outputSchema for the structured content, derived from the Hit dataclass."""
    from pydantic import TypeAdapter

    return {
        "type": "object",
        "properties": {"hits": {"type": "array", "items": TypeAdapter(Hit).json_schema()}},
        "required": ["hits"],
    }


def mcp_tool() -> mcp_types.Tool:
    """SEARCH_TOOL as an MCP Tool: same name, description and input schema."""
    import mcp_types as types

    function = SEARCH_TOOL["function"]
    return types.Tool(
        name=function["name"],
        title="Search documents",
        description=function["description"],
        input_schema=copy.deepcopy(function["parameters"]),
        output_schema=_hits_schema(),
        annotations=types.ToolAnnotations(
            read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
        ),
    )


def _text_result(text: str, is_error: bool = False, structured: dict | None = None) -> mcp_types.CallToolResult:
    import mcp_types as types

    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)], structured_content=structured, is_error=is_error
    )


def make_server(index_dir: Path, name: str = "cogcore", preload: bool = False) -> Server:
    """An MCP server offering `search` over the index at index_dir (loaded on first search, or
    straight away in a background thread with preload). Run it with `serve`, or over any
    transport's streams: `await server.run(read, write, server.create_initialization_options())`.
    """
    index_dir = Path(index_dir)
    if not (index_dir / "index.json").exists():  # fail before a client connects, not on a call
        raise FileNotFoundError(
            f"{index_dir / 'index.json'} missing: no complete index in {index_dir} (build it first)"
        )
    try:
        import anyio
        import mcp_types as types
        from mcp.server import Server
        from mcp.shared.exceptions import MCPError
    except ImportError as e:
        raise ImportError(f"serving the index needs the MCP SDK ({e}); pip install 'mcp>=2'") from e
    index = LazyIndex(index_dir)
    tool = mcp_tool()

    async def list_tools(ctx, params) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[tool])

    async def call_tool(ctx, params) -> types.CallToolResult:
        if params.name != tool.name:
            raise MCPError(
                code=types.INVALID_PARAMS,
                message=f"unknown tool {params.name!r}; this server has one tool, {tool.name!r}",
            )
        try:
            query, k = parse_search_arguments(params.arguments or {})
        except ValueError as e:  # the caller's mistake: an error result it can read and retry
            return _text_result(f"error: {e}", is_error=True)
        try:
            # Off the event loop: embedding the query is CPU work, and loading takes seconds.
            hits = await anyio.to_thread.run_sync(index.search, query, k)
        except IndexUnavailable as e:  # the caller can do nothing about it, but should know
            return _text_result(f"error: {e}", is_error=True)
        return _text_result(format_hits(hits), structured={"hits": [hit.to_dict() for hit in hits]})

    server = Server(
        name,
        version=__version__,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        instructions=f"{tool.name}: {tool.description}",
    )
    if preload:
        index.preload()
    return server


def http_app(server: Server, host: str = "127.0.0.1") -> Starlette:
    """The ASGI (Starlette) app that `serve` runs for streamable HTTP: MCP at HTTP_PATH. On a
    loopback host the SDK also checks Host and Origin headers (DNS-rebinding protection)."""
    return server.streamable_http_app(streamable_http_path=HTTP_PATH, host=host)


def serve(
    index_dir: Path,
    transport: Literal["stdio", "http"] = "stdio",
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    name: str = "cogcore",
) -> None:
    """Serve the index until the client disconnects (stdio) or the process is interrupted (http,
    streamable HTTP at http://HOST:PORT/mcp). The index starts loading in the background."""
    if transport not in ("stdio", "http"):
        raise ValueError(f"transport must be 'stdio' or 'http', got {transport!r}")
    server = make_server(index_dir, name, preload=True)
    if transport == "stdio":
        import anyio
        from mcp.server.stdio import stdio_server

        if sys.stdin.isatty():  # a person ran it by hand: nothing will seem to happen
            print(
                "cogcore: speaking MCP on stdin/stdout; an MCP client starts this command (or serve over HTTP)",
                file=sys.stderr,
                flush=True,
            )

        async def run_stdio() -> None:
            async with stdio_server() as (read, write):
                await server.run(read, write, server.create_initialization_options())

        anyio.run(run_stdio)
    else:
        import uvicorn

        app = http_app(server, host)
        print(f"cogcore: MCP server for {index_dir} at http://{host}:{port}{HTTP_PATH}", file=sys.stderr, flush=True)
        if host not in LOOPBACK_HOSTS:
            print(
                f"cogcore: warning: no authentication; anyone who can reach {host}:{port} can search these documents",
                file=sys.stderr,
                flush=True,
            )
        uvicorn.run(app, host=host, port=port, log_level="warning")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m cogcore.retrieval.server",
        description="Serve a cogcore index to agents as an MCP `search` tool.",
    )
    parser.add_argument("index_dir", type=Path, help="an index folder (e.g. runs/demo/index)")
    parser.add_argument("--http", action="store_true", help="streamable HTTP instead of stdio")
    parser.add_argument("--host", default="127.0.0.1", help="HTTP host (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"HTTP port (default {DEFAULT_PORT})")
    parser.add_argument("--name", default="cogcore", help="server name shown to clients")
    args = parser.parse_args(argv)
    # stdout is the protocol channel (stdio); logs go to stderr, which MCP clients show or keep.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(name)s: %(message)s")
    log.setLevel(logging.INFO)
    try:
        serve(args.index_dir, "http" if args.http else "stdio", args.host, args.port, args.name)
    except FileNotFoundError as e:
        parser.exit(2, f"error: {e}\n")
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
