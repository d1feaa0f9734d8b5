"""report.html and compare.html open in a real headless browser (Debian's `chromium`) with every image.

A checking script is put into a copy of the page; after load it writes, into the DOM, which <img>
elements decoded (complete, naturalWidth > 0) and at what size; `chromium --dump-dom` prints the
DOM and the test reads that back. Skipped only where chromium is not installed (`make test` installs
it when it can).
"""

import html
import json
import re
import shutil
import struct
import subprocess

import pytest
import yaml

from cogcore.eval.results import AgenticScores
from cogcore.report.compare import build_compare
from cogcore.report.run_report import build_report
from tests.report.files import curate_stats, eval_results, train_metrics

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install chromium)")

CHECK = """<script>
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var out = document.createElement("pre");
  out.id = "render-check";
  out.textContent = JSON.stringify({
    total: images.length,
    loaded: images.filter(function (i) { return i.complete && i.naturalWidth > 0; })
                  .map(function (i) { return [i.alt, i.naturalWidth, i.naturalHeight]; }),
    tables: document.querySelectorAll("table").length});
  document.body.appendChild(out);
});
</script>"""


def _write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def _run_dir(root, make_tiny_llm):
    """A run directory as the stages leave it: a real tiny model's config, stats and results files."""
    run = root / "acme"
    model = make_tiny_llm(["The monthly fee is $25.", "Wire transfers take 2 days."])
    (run / "train/tools/model").mkdir(parents=True)
    shutil.copy(model / "config.json", run / "train/tools/model/config.json")
    (run / "recipe.resolved.yaml").write_text(
        yaml.safe_dump({"name": "acme", "facts": {"strategy": "toolcall"}, "report": {"gpus": ["h100", "l4"]}})
    )
    _write(
        run / "curate/stats.json",
        curate_stats(
            10,
            [("length_filter", 10, 9, {"too_short": 1}), ("dedup", 9, 8, {"near_duplicate": 1})],
            splits={"train": 7, "heldout": 1},
            facts={"money": 4, "duration": 2},
        ),
    )
    for stage, losses in (("cpt", [3.1, 2.8, 2.6]), ("tools", [1.4, 1.0])):
        _write(run / f"train/{stage}/metrics.json", train_metrics(losses, tokens=2048, seconds=1.5))
    _write(
        run / "eval/results.json",
        eval_results(
            lm_eval={"trained": {"cogcore_closedbook": {"acc": 0.5}}, "base": {"cogcore_closedbook": {"acc": 0.25}}},
            agentic=AgenticScores(n=2, accuracy=0.5, call_rate=1.0, retrieval_hit_rate=0.5),
        ),
    )
    return run


def _png_size(png: bytes) -> list[int]:
    return list(struct.unpack(">II", png[16:24]))  # IHDR width and height


def render(page_path, tmp_path) -> dict:
    """What chromium reports about the page's images after loading a checked copy of it."""
    checked = tmp_path / f"checked-{page_path.name}"
    checked.write_text(page_path.read_text(encoding="utf-8").replace("</body>", CHECK + "</body>"), encoding="utf-8")
    proc = subprocess.run(
        [
            CHROMIUM,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'chromium-profile'}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            checked.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    found = re.search(r'<pre id="render-check">(.*?)</pre>', proc.stdout, re.S)
    assert found, f"no check output; chromium exit {proc.returncode}: {proc.stderr[-1500:]}"
    return json.loads(html.unescape(found[1]))


@pytest.fixture(scope="module")
def run(tmp_path_factory, make_tiny_llm):
    run = _run_dir(tmp_path_factory.mktemp("browser"), make_tiny_llm)
    build_report(run)
    return run


def test_report_renders_with_every_image_at_its_size(run, tmp_path):
    result = render(run / "report/report.html", tmp_path)
    loaded = [alt for alt, _, _ in result["loaded"]]
    assert len(loaded) == result["total"] == len(list((run / "report").glob("*.png")))
    assert {"funnel.png", "fact_kinds.png", "loss.png", "pareto.png"} <= set(loaded)
    for alt, width, height in result["loaded"]:
        assert [width, height] == _png_size((run / "report" / alt).read_bytes())
    assert result["tables"] >= 8


def test_a_broken_image_is_caught(run, tmp_path):
    # The check must be able to fail: the same page with one image's data cut short.
    broken = tmp_path / "broken.html"
    page = (run / "report/report.html").read_text()
    broken.write_text(re.sub(r'(alt="loss.png" src="data:image/png;base64,)[^"]+', r"\1iVBORw0KGgo", page, count=1))
    result = render(broken, tmp_path)
    assert "loss.png" not in [alt for alt, _, _ in result["loaded"]]
    assert len(result["loaded"]) == result["total"] - 1


def test_compare_page_renders_its_pareto_chart(run, tmp_path):
    reference = tmp_path / "ref.csv"
    reference.write_text("model,params_b,agentic_accuracy\nOther-1B,1,0.4\n")
    _, page = build_compare([run], tmp_path / "compare", reference)
    result = render(page, tmp_path)
    assert result["total"] == 1 and result["loaded"][0][:2] == ["pareto.png", 750]
