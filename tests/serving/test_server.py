"""The real server: uvicorn in a subprocess on a free loopback port, called over HTTP."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import spacy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serving_testing import LABELS, build_tuned_pipeline, running_server, synthetic_records

pytestmark = pytest.mark.slow
pytest.importorskip("fastapi", reason="the serve extra is not installed")
pytest.importorskip("uvicorn", reason="the serve extra is not installed")

MAX_TEXTS = 8
MAX_LEN = 200


@pytest.fixture(scope="module")
def tuned_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tuned_pipeline(tmp_path_factory.getbasetemp() / "serve-model")


@pytest.fixture(scope="module")
def server(tuned_model: Path) -> str:
    with running_server(
        tuned_model,
        "--max-texts",
        str(MAX_TEXTS),
        "--max-text-length",
        str(MAX_LEN),
        "--max-wait-ms",
        "30",
        "--monitor-window",
        "100",
        "--monitor-min-docs",
        "40",
    ) as url:
        yield url


def _post(url: str, body: object | bytes, **kw: object) -> httpx.Response:
    if isinstance(body, bytes):
        return httpx.post(
            f"{url}/classify",
            content=body,
            headers={"content-type": "application/json"},
            timeout=30,
            **kw,
        )
    return httpx.post(f"{url}/classify", json=body, timeout=30, **kw)


def test_classify_matches_in_process_pipeline(server: str, tuned_model: Path) -> None:
    texts = [text for text, _ in synthetic_records(MAX_TEXTS, 7)]
    response = _post(server, {"texts": texts})
    assert response.status_code == 200
    body = response.json()
    assert set(body["model"]) == {"name", "version"}
    nlp = spacy.load(tuned_model)
    docs = list(nlp.pipe(texts))
    assert any(not doc._.decided_labels for doc in docs) or all(
        r["labels"] for r in body["results"]
    )
    for doc, result in zip(docs, body["results"], strict=True):
        assert result["cats"].keys() == set(LABELS)
        for label, p in doc.cats.items():
            assert result["cats"][label] == pytest.approx(p, abs=1e-9)
        assert result["labels"] == list(doc._.decided_labels)
        assert result["abstained"] == (not doc._.decided_labels)  # exclusive task


def test_empty_and_odd_texts_are_classified(server: str) -> None:
    texts = ["", " ", "\n\t", "😀 émoji ünïcode", "a" * MAX_LEN, "<script>x</script>"]
    response = _post(server, {"texts": texts})
    assert response.status_code == 200, response.text
    for result in response.json()["results"]:
        assert sum(result["cats"].values()) == pytest.approx(1.0, abs=1e-6)


def test_health_metadata_openapi(server: str) -> None:
    assert httpx.get(f"{server}/health").json()["status"] == "ok"
    meta = httpx.get(f"{server}/metadata").json()
    assert meta["labels"] == LABELS
    assert meta["task"] == "exclusive"
    assert meta["thresholds"]["abstain"] is not None
    assert meta["limits"]["max_texts"] == MAX_TEXTS
    schema = httpx.get(f"{server}/openapi.json").json()
    assert "/classify" in schema["paths"]
    assert httpx.get(f"{server}/docs").status_code == 200


def test_concurrent_requests_are_batched_and_not_mixed_up(server: str) -> None:
    records = synthetic_records(48, 11)
    singles = [[text] for text, _ in records]
    expected = [_post(server, {"texts": t}).json()["results"][0] for t in singles[:4]]
    before = _batch_stats(server)
    with ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(lambda t: _post(server, {"texts": t}), singles))
    after = _batch_stats(server)
    assert all(r.status_code == 200 for r in responses)
    for got, want in zip(responses[:4], expected, strict=True):
        assert got.json()["results"][0] == want
    n_requests = after["requests_sum"] - before["requests_sum"]
    n_batches = after["requests_count"] - before["requests_count"]
    assert n_requests == len(singles)
    assert n_batches < n_requests, "concurrent requests were not gathered into batches"


def _batch_stats(url: str) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics").text
    out = {}
    for key in ("sum", "count"):
        match = re.search(rf"^textcat_batch_requests_{key} (\S+)$", text, re.M)
        assert match is not None
        out[f"requests_{key}"] = float(match.group(1))
    return out


BAD_BODIES: list[tuple[bytes, int, str]] = [
    (b"not json", 400, "E301"),
    (b'{"texts": ["a", ', 400, "E301"),
    (b"[]", 422, "E302"),
    (b'{"text": ["a"]}', 422, "E302"),
    (b'{"texts": "a"}', 422, "E302"),
    (b'{"texts": [1, 2]}', 422, "E302"),
    (b'{"texts": [null]}', 422, "E302"),
    (b'{"texts": ["a"], "extra": 1}', 422, "E302"),
    (b'{"texts": []}', 422, "E303"),
    (json.dumps({"texts": ["a"] * (MAX_TEXTS + 1)}).encode(), 413, "E304"),
    (json.dumps({"texts": ["ok", "x" * (MAX_LEN + 1)]}).encode(), 413, "E305"),
]


@pytest.mark.parametrize(("body", "status", "code"), BAD_BODIES)
def test_bad_input_is_a_coded_4xx(server: str, body: bytes, status: int, code: str) -> None:
    response = _post(server, body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"].startswith(f"[{code}]")


def test_unpaired_surrogate_is_refused(server: str) -> None:
    # orjson (serve extra) refuses it while parsing (E301); the json fallback parses it and
    # the text check refuses it (E306). Either way a 4xx, and the server keeps serving.
    response = _post(server, b'{"texts": ["ok", "\\ud800"]}')
    assert (response.status_code, response.json()["error"]["code"]) in {
        (400, "E301"),
        (422, "E306"),
    }
    assert _post(server, {"texts": ["ok"]}).status_code == 200


def test_oversized_body_is_refused_before_parsing(server: str) -> None:
    body = json.dumps({"texts": ["y" * 100_000] * MAX_TEXTS}).encode()
    response = _post(server, body)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "E307"
    assert httpx.get(f"{server}/health").status_code == 200


def test_metrics_are_prometheus_text(server: str) -> None:
    _post(server, {"texts": ["refund my invoice", "where is my parcel"]})
    response = httpx.get(f"{server}/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    label = r'[a-zA-Z_]+="[^"]*"'
    sample = re.compile(rf"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{{{label}(,{label})*\}})? \S+$")
    names = set()
    for line in response.text.strip().splitlines():
        if line.startswith("#"):
            continue
        assert sample.match(line), line
        names.add(line.split("{")[0].split(" ")[0])
    for name in (
        "textcat_requests_total",
        "textcat_request_duration_seconds_bucket",
        "textcat_batch_texts_bucket",
        "textcat_predicted_label_total",
        "textcat_abstain_rate",
        "process_resident_memory_bytes",
    ):
        assert name in names


def test_live_monitor_reports_over_the_window(server: str) -> None:
    texts = [text for text, _ in synthetic_records(64, 21)]
    for start in range(0, len(texts), MAX_TEXTS):
        assert _post(server, {"texts": texts[start : start + MAX_TEXTS]}).status_code == 200
    report = httpx.get(f"{server}/monitor").json()
    assert report["status"] == "ok"
    assert set(report["figures"]) >= {"label_psi", "confidence_ks_pvalue", "expected_accuracy"}
    metrics = httpx.get(f"{server}/metrics").text
    assert "textcat_monitor_expected_accuracy" in metrics


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
bodies = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(st.sampled_from(["texts", "text", "x"]), json_values, max_size=2).map(
        lambda v: json.dumps(v).encode()
    ),
    st.lists(st.text(max_size=300), max_size=12).map(lambda t: json.dumps({"texts": t}).encode()),
    st.binary(max_size=200),
)


def test_fuzzed_bodies_never_cause_a_server_error(server: str) -> None:
    with httpx.Client(timeout=30) as client:

        @settings(
            max_examples=150,
            deadline=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(body=bodies)
        def check(body: bytes) -> None:
            response = client.post(
                f"{server}/classify", content=body, headers={"content-type": "application/json"}
            )
            assert response.status_code < 500, (body, response.text)
            if response.status_code >= 400:
                assert response.json()["error"]["code"].startswith("E3")

        check()
    assert httpx.get(f"{server}/health").status_code == 200
