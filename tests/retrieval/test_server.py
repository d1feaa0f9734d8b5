"""The MCP server, driven by the MCP SDK's own client: over stdio (the server a subprocess, as a
desktop agent spawns it) and over streamable HTTP (in this process, on a free port)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import anyio
import pytest

pytest.importorskip("mcp")

from mcp import ClientSession, StdioServerParameters, stdio_client  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402
from mcp.shared.exceptions import MCPError  # noqa: E402

from cogcore.retrieval import SEARCH_TOOL, read_chunks  # noqa: E402
from cogcore.retrieval.server import HTTP_PATH, http_app, make_server  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
# Offline like every test; one torch thread, since a tiny model gains nothing from more and a
# second process spinning OpenMP threads beside pytest's slows both down.
SERVER_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TQDM_DISABLE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "OMP_NUM_THREADS": "1",
}
# The server subprocess imports torch and sentence-transformers before its first search.
TIMEOUT_S = 120


def a_chunk(index_dir: Path) -> dict:
    """A chunk of one of the documents; searching its exact text must find it first."""
    return next(c for c in read_chunks(index_dir / "chunks.jsonl") if c["doc_id"] == "cards")


async def check_search_tool(session: ClientSession, index_dir: Path) -> None:
    """What every transport must give: SEARCH_TOOL's schema, hits with provenance, error results."""
    tools = (await session.list_tools()).tools
    assert [t.name for t in tools] == [SEARCH_TOOL["function"]["name"]]
    assert tools[0].description == SEARCH_TOOL["function"]["description"]
    assert tools[0].input_schema == SEARCH_TOOL["function"]["parameters"]

    chunk = a_chunk(index_dir)
    result = await session.call_tool("search", {"query": chunk["text"], "k": 2})
    assert not result.is_error, result.content
    assert result.content[0].text.startswith(f"1. [{chunk['doc_id']} | {chunk['title']}]")
    hits = result.structured_content["hits"]
    assert len(hits) == 2
    top = hits[0]
    assert (top["doc_id"], top["chunk_id"], top["text"]) == (chunk["doc_id"], chunk["chunk_id"], chunk["text"])
    assert (top["start"], top["end"], top["section"]) == (chunk["start"], chunk["end"], chunk["section"])
    assert hits[0]["score"] >= hits[1]["score"]

    for bad, says in [
        ({"query": "fees", "k": "many"}, '"k" must be an integer'),
        ({"k": 2}, '"query" is required'),
        ({"query": "fees", "limit": 2}, "unknown argument(s) limit"),
    ]:
        result = await session.call_tool("search", bad)
        assert result.is_error, bad
        assert result.content[0].text.startswith("error: ") and says in result.content[0].text
    with pytest.raises(MCPError, match="unknown tool"):
        await session.call_tool("delete_everything", {})


def test_stdio_subprocess_serves_the_search_tool(tiny_index_dir, tmp_path):
    log_path = tmp_path / "server.log"
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "cogcore.retrieval.server", str(tiny_index_dir)],
        env=SERVER_ENV,
        cwd=str(REPO),
    )

    async def run() -> None:
        with anyio.fail_after(TIMEOUT_S), log_path.open("w") as errlog:
            async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as session:
                info = await session.initialize()
                assert info.server_info.name == "cogcore"
                await check_search_tool(session, tiny_index_dir)

    try:
        anyio.run(run)
    except BaseException:
        print(log_path.read_text(), file=sys.stderr)  # the server's own account of what failed
        raise


def test_streamable_http_serves_the_search_tool(tiny_index_dir):
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))  # bound here, so no other process can take the port meanwhile
    port = sock.getsockname()[1]
    app = http_app(make_server(tiny_index_dir), "127.0.0.1")
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()

    async def run() -> None:
        with anyio.fail_after(TIMEOUT_S):
            while not server.started:
                await anyio.sleep(0.02)
            url = f"http://127.0.0.1:{port}{HTTP_PATH}"
            async with streamable_http_client(url) as (read, write), ClientSession(read, write) as session:
                await session.initialize()
                await check_search_tool(session, tiny_index_dir)

    try:
        anyio.run(run)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
    assert not thread.is_alive()


def test_missing_index_fails_at_startup_with_its_path(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "cogcore.retrieval.server", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert proc.returncode == 2
    assert f"{tmp_path / 'index.json'} missing" in proc.stderr
    assert proc.stdout == ""  # nothing on the protocol channel


def test_an_index_that_fails_to_load_gives_an_error_result(tiny_index_dir, tmp_path):
    from mcp import Client

    broken = tmp_path / "index"
    shutil.copytree(tiny_index_dir, broken)
    (broken / "index.faiss").unlink()  # index.json present, so the server starts

    async def run() -> None:
        with anyio.fail_after(TIMEOUT_S):
            async with Client(make_server(broken)) as client:  # in-process
                assert [t.name for t in (await client.list_tools()).tools] == ["search"]
                result = await client.call_tool("search", {"query": "fees"})
                assert result.is_error
                assert f"the index at {broken} could not be loaded" in result.content[0].text

    anyio.run(run)


def test_tool_definition_is_search_tool():
    from cogcore.retrieval.server import mcp_tool

    tool = mcp_tool()
    assert tool.input_schema == SEARCH_TOOL["function"]["parameters"]
    assert tool.input_schema is not SEARCH_TOOL["function"]["parameters"]  # a copy
    assert tool.annotations.read_only_hint
    assert json.dumps(tool.output_schema)  # plain JSON
