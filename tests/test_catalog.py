"""Several models on the website and the CLI: the model page, the landing figures, `flask models`,
and `--model` errors. The registry holds fake model folders (JSON only; no TensorFlow)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import make_app
from test_registry import fake_model

from webapp.catalog import anchor, group_table
from webapp.detection.registry import UnknownModelError


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "model"
    fake_model(root / "2026.11.22-lite0", "2026.11.22-lite0", auc=0.85)
    fake_model(root / "2026.11.23-lite0", "2026.11.23-lite0", auc=0.9125,
               notes={"warm_start": "2026.11.22-lite0"})
    (root / "registry.json").write_text('{"default": "2026.11.23-lite0"}\n')
    return root


@pytest.fixture
def reg_app(tmp_path: Path, root: Path, detector):
    app = make_app(tmp_path, MODEL_DIR=str(root), DETECTOR_LOADER=lambda _d: detector)
    yield app
    app.extensions["detection_runner"].shutdown()


def test_model_page_lists_every_model_with_its_rows_and_card(reg_app) -> None:
    html = reg_app.test_client().get("/model").get_data(as_text=True)
    new, old = anchor("2026.11.23-lite0"), anchor("2026.11.22-lite0")
    # side-by-side table links to each model's section; the default comes first
    assert html.index(f'href="#{new}"') < html.index(f'href="#{old}"')
    assert f'id="{new}"' in html and f'id="{old}"' in html
    assert f'id="{new}-card"' in html and f'id="{old}-card"' in html
    assert "0.912" in html and "0.850" in html  # each model's own held-out AUC
    assert "Warm-started from 2026.11.22-lite0" in html
    section = html[html.index(f'id="{old}"'):]
    assert "Clips per generator method" in section
    row = re.search(r"<th scope=\"row\">faceswap</th>(.*?)</tr>", section, re.S).group(1)
    assert re.findall(r">([^<]+)</td>", row) == ["12", "0.700", "50%", "10%", "–"]
    # both cards rendered, the default one open; heading ids do not collide
    assert "Model card: 2026.11.23-lite0" in html and "Model card: 2026.11.22-lite0" in html
    assert re.search(rf'id="{new}-card" open', html) and not re.search(rf'id="{old}-card" open', html)
    ids = re.findall(r'id="([^"]+)"', html)
    assert len(ids) == len(set(ids)) and f"{old}-known-limits" in ids


def test_landing_page_shows_the_default_models_figures(reg_app, root: Path) -> None:
    html = reg_app.test_client().get("/").get_data(as_text=True)
    assert "2026.11.23-lite0" in html and "0.912" in html and "0.850" not in html
    (root / "registry.json").write_text('{"default": "2026.11.22-lite0"}\n')  # one line switches it
    html = reg_app.test_client().get("/").get_data(as_text=True)
    assert "2026.11.22-lite0" in html and "0.850" in html


def test_model_page_compares_models_on_the_same_items_through_analyze(reg_app, root: Path) -> None:
    html = reg_app.test_client().get("/model").get_data(as_text=True)
    assert "Same items, through the site" not in html  # no model has the figures yet
    for version, auc, caught, alarms in (("2026.11.23-lite0", 0.565, 0.05, 0.004), ("2026.11.22-lite0", 0.338, 0.02, 0.081)):
        path = root / version / "metrics.json"
        metrics = json.loads(path.read_text())
        metrics["analyze"] = {"photos val": {"n": 354, "n_fake": 84, "auc": auc, "fakes_called_fake": caught,
                                             "reals_called_fake": alarms, "by_method": {}}}
        path.write_text(json.dumps(metrics))
    html = reg_app.test_client().get("/model").get_data(as_text=True)
    table = html[html.index("Same items, through the site"):html.index("</table>", html.index("Same items, through the site"))]
    assert "Unseen photos (diffusion vs real)" in table and "Unseen generators" not in table  # only sets some model has
    cells = re.findall(r'<td class="num">([^<]+)</td>', table)
    assert cells == ["0.565 · 5% / 0%", "0.338 · 2% / 8%"]  # default first


def test_group_table_tells_fakes_from_reals() -> None:
    t = group_table({"gen": {"n": 3, "auc": 1, "detected": 1.0, "called_real": 0.0},
                     "reals": {"n": 1000, "false_alarm": 0.015}})
    assert [r["cells"] for r in t["rows"]] == [["3", "1.000", "100%", "0%", "–"],
                                               ["1,000", "–", "–", "–", "2%"]]
    assert group_table(None) is None and group_table({}) is None


def test_cli_models_lists_the_registry(reg_app, root: Path) -> None:
    out = reg_app.test_cli_runner().invoke(args=["models"])
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    new = next(line for line in lines if "2026.11.23-lite0" in line)
    old = next(line for line in lines if "2026.11.22-lite0" in line)
    assert new.split()[:5] == ["2026.11.23-lite0", "yes", "0.912", "0.812", "0.020"] and "dfdc_faces" in new
    assert old.split()[:4] == ["2026.11.22-lite0", "0.850", "0.750", "0.020"]
    data = json.loads(reg_app.test_cli_runner().invoke(args=["models", "--json"]).output)
    assert [(m["version"], m["default"]) for m in data] == [("2026.11.23-lite0", True), ("2026.11.22-lite0", False)]
    assert data[0]["path"] == str((root / "2026.11.23-lite0").resolve())


def test_cli_unknown_model_is_a_usage_error_listing_versions(reg_app, tmp_path: Path) -> None:
    photo = tmp_path / "x.jpg"
    photo.write_bytes(b"not used")
    for cmd in (["detect", str(photo)], ["evaluate", str(photo)]):
        out = reg_app.test_cli_runner().invoke(args=[*cmd, "--model", "2020.01.01-nope"])
        assert out.exit_code == 2, out.output
        assert "Unknown model '2020.01.01-nope'" in out.output
        assert "2026.11.23-lite0, 2026.11.22-lite0" in out.output


def test_cli_models_without_models(tmp_path: Path) -> None:
    app = make_app(tmp_path, MODEL_DIR=str(tmp_path / "empty"))
    try:
        out = app.test_cli_runner().invoke(args=["models"])
        assert out.exit_code == 1 and "No models in" in out.output
    finally:
        app.extensions["detection_runner"].shutdown()


def test_jobs_run_with_the_model_recorded_at_upload(tmp_path: Path, root: Path, detector, files) -> None:
    """A queued job is analysed by the model its row names, even if the default changed since."""
    from conftest import detection_id_from, upload, wait_for_job

    from webapp.services.analysis import load_detector

    asked: list[str] = []

    def loader(model: str):
        asked.append(model)
        return detector

    app = make_app(tmp_path, MODEL_DIR=str(root), DETECTOR_LOADER=loader)
    try:
        det = wait_for_job(app, detection_id_from(upload(app.test_client(), files["photo_jpg"])))
        assert det.status == "done" and asked == [str((root / "2026.11.23-lite0").resolve())]
        with app.app_context():
            load_detector(app, "2026.11.22-lite0")
            assert asked[-1] == str((root / "2026.11.22-lite0").resolve())
            load_detector(app)
            assert asked[-1] == str(root)  # the registry root: the engine loads its default
            for bad in ("2020.01.01-gone", str(root / "2026.11.22-lite0"), "../model"):
                with pytest.raises(UnknownModelError, match="not installed.*2026.11.23-lite0, 2026.11.22-lite0"):
                    load_detector(app, bad)  # versions only: never a path from a request
    finally:
        app.extensions["detection_runner"].shutdown()


def test_model_page_shows_real_footage_false_alarms_per_kind_side_by_side(reg_app, root: Path) -> None:
    trust = {"false_alarms": {"webcam": {"n": 22, "judged": 22, "fake": 3, "real": 9, "mean_p": 0.5},
                              "interview": {"n": 19, "judged": 19, "fake": 0, "real": 11, "mean_p": 0.3}}}
    path = root / "2026.11.22-lite0" / "metrics.json"
    metrics = json.loads(path.read_text()) if path.is_file() else {}
    path.write_text(json.dumps(metrics | {"trust": trust}))
    html = reg_app.test_client().get("/model").get_data(as_text=True)
    table = html[html.index('id="real-footage"'):]
    table = table[:table.index("</table>")]
    webcam = re.search(r"Webcam, video calls, streams</th>(.*?)</tr>", table, re.S).group(1)
    # columns: the default (no trust block yet) then 2026.11.22-lite0
    assert re.findall(r">([^<]+)</td>", webcam) == ["–", "3 of 22"]
    assert "HD interviews" in table and "0 of 19" in table
    (root / "2026.11.22-lite0" / "metrics.json").write_text(json.dumps(metrics))
    assert 'id="real-footage"' not in reg_app.test_client().get("/model").get_data(as_text=True)
