"""The benchmark command: batched vs plain on one masked model and the same data; causal sentences/s."""

from __future__ import annotations

import json

from fairgender_utils.evaluate import bench
from tests.metrics_fixtures import one_thread  # noqa: F401  (fixture)


def test_bench_command_on_tiny_models(tiny_model_dirs, data_dir, tmp_path, capsys):
    out = tmp_path / "bench.json"
    rc = bench.main(["--data-dir", str(data_dir), "--masked", str(tiny_model_dirs["roberta"]),
                     "--causal", str(tiny_model_dirs["llama"]), "--limit", "6", "--json", str(out)])
    res = json.loads(out.read_text())
    assert rc == 0 and "OK" in capsys.readouterr().out
    m = res["masked"]
    assert m["sentences"] == 2 * 6 + 3 * 6 and m["max_abs_diff_token_logprob"] <= 1e-5
    assert m["speed_ratio"] > 1 and res["causal"]["sentences_per_s"] > 0
