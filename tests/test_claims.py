"""The claims engine: generic check kinds against hand-computed values, the outcome
vocabulary, per-configuration verdicts, and one-line errors for bad claims files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from harness.errors import InputError
from harness.family import Family
from harness.report import ReportContext
from harness.report.checks import curve_ratio_check, difference_check, metric_check, ratio_check
from harness.report.claims import Measurement, claim_blocks
from harness.report.document import Verdict

# cells of the probe strategy (a registered plug-in): two variants (steps 3 = default, 5),
# three sizes, two seeds; value = size/100 × (1 for steps 3, 2 for steps 5) + seed/1000
DEFAULTS = {"s_fail": "none", "s_sleep_s": 0.0, "s_spin_s": 0.0, "s_scale": 0.5}
ROWS = pd.DataFrame([
    {"strategy": "probe", "status": "ok", "seed": seed, "p_size": size, "s_steps": steps,
     "probe_value": size / 100 * (1 if steps == 3 else 2) + seed / 1000, **DEFAULTS}
    for steps in (3, 5) for size in (50, 100, 200) for seed in (0, 1)])


def test_metric_statistic_of_one_variant():
    m = metric_check({"metric": "probe_value", "strategy": "probe[steps=5]", "op": "<=",
                      "threshold": 2.0}, ROWS, None)
    # median over the six cells of steps 5: sizes 50,100,200 → 1.0005, 2.0005, 4.0005 …
    expected = pd.Series([1.0, 1.001, 2.0, 2.001, 4.0, 4.001]).median()
    assert m.measured.startswith(f"{expected:.4g}") and m.passed == [False]
    m = metric_check({"metric": "probe_value", "strategy": "probe", "stat": "max", "op": "<",
                      "threshold": 2.01, "where": {"size": 200}}, ROWS, None)
    assert m.passed == [True] and m.outcome == "reproduced"


def test_ratio_and_difference_per_point_give_partly_reproduced():
    check = {"metric": "probe_value", "strategy": "probe[steps=5]", "baseline": "probe",
             "op": "<", "threshold": 1.9995, "over": "size"}
    m = ratio_check(check, ROWS, None)
    # per size: (2s/100 + 0.0005) / (s/100 + 0.0005), below 1.9995 only for size 50
    ratios = [(2 * s / 100 + 0.0005) / (s / 100 + 0.0005) for s in (50, 100, 200)]
    assert m.passed == [r < 1.9995 for r in ratios] == [True, False, False]
    assert m.outcome == "partly reproduced"
    m = ratio_check({**check, "reduce": "max"}, ROWS, None)
    assert m.passed == [False] and m.outcome == "not reproduced"
    d = difference_check({**check, "threshold": 1.0, "op": "<=", "reduce": "min"}, ROWS, None)
    assert d.passed == [True]  # differences s/100: the smallest, at size 50, is 0.5


def test_curve_ratio_at_a_named_point_and_against_a_baseline():
    rows = ROWS.assign(p_center=100)
    check = {"metric": "probe_value", "strategy": "probe", "over": "size", "at": "center",
             "op": ">=", "threshold": 1.9}
    m = curve_ratio_check(check, rows, None)
    own = (1.0 + 0.0005) / (0.5 + 0.0005)  # at 100 over the smaller of 50 and 200
    assert m.passed == [own >= 1.9] == [True] and f"{own:.3f}" in m.measured
    base = (2.0 + 0.0005) / (1.0 + 0.0005)
    m = curve_ratio_check({**check, "baseline": "probe[steps=5]", "threshold": 1.0,
                           "op": "<="}, rows, None)
    assert m.measured.startswith(f"{own / base:.3f}") and m.passed == [own / base <= 1.0]
    missing = curve_ratio_check({**check, "at": 400}, rows, None)
    assert missing.passed is None and missing.outcome == "no data"


def test_outcome_vocabulary():
    assert Measurement("c", "m", None).outcome == "no data"
    assert Measurement("c", "m", []).outcome == "no data"
    assert Measurement("c", "m", [True, True]).outcome == "reproduced"
    assert Measurement("c", "m", [True, False]).outcome == "partly reproduced"
    assert Measurement("c", "m", [False]).outcome == "not reproduced"


CLAIMS = """
paper: P
family: probe
claims:
  - id: c1
    claim: "Values stay small."
    source: s
    check: {kind: metric, metric: probe_value, strategies: [probe, "probe[steps=5]",
            "probe[steps=9]"], op: "<", threshold: 1.5}
"""


def _ctx(tmp_path: Path) -> ReportContext:
    return ReportContext(out=tmp_path, cells=ROWS, history=pd.DataFrame(),
                         claim_dirs=(tmp_path,))


def test_one_verdict_per_configuration_present(tmp_path):
    (tmp_path / "c.yaml").write_text(CLAIMS)
    blocks = claim_blocks(_ctx(tmp_path), Family("probe", "Probe"), ROWS)
    verdicts = [b for b in blocks if isinstance(b, Verdict)]
    # steps=9 has no cells: only the two configurations present are judged
    assert [v.outcome for v in verdicts] == ["reproduced", "not reproduced"]
    assert "configuration `probe[steps=5]`" in verdicts[1].claim


@pytest.mark.parametrize("text, words", [
    (CLAIMS.replace("kind: metric", "kind: nonsense"), ["unknown check kind 'nonsense'",
                                                        "curve_ratio", "metric"]),
    (CLAIMS.replace("    claim: \"Values stay small.\"\n", ""), ["malformed claim"]),
    ("family: probe\nclaims: [\n", ["not valid YAML"]),
])
def test_a_bad_claims_file_is_one_line_naming_the_file(tmp_path, text, words):
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(InputError) as err:
        claim_blocks(_ctx(tmp_path), Family("probe", "Probe"), ROWS)
    message = str(err.value)
    assert "\n" not in message and str(tmp_path / "bad.yaml") in message
    assert all(w in message for w in words), message
