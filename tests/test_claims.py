"""The claims engine: generic check kinds against hand-computed values, the outcome
vocabulary, per-configuration verdicts, and one-line errors for bad claims files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import scipy.stats

from harness.errors import InputError
from harness.family import Family
from harness.report import ReportContext
from harness.report.checks import curve_ratio_check, difference_check, metric_check, ratio_check
from harness.report.claims import Claim, ClaimRefused, Item, Measurement, _verdict, claim_blocks
from harness.report.document import Verdict
from harness.stats import ratio_interval

# cells of the probe strategy (a registered plug-in): two variants (steps 3 = default, 5),
# three sizes, two seeds. steps 3: size/100 · (1 + seed/1000); steps 5: the same times
# F[size], so every per-seed ratio is exactly F[size] and every interval a point.
F = {50: 1.5, 100: 2.0, 200: 3.0}
DEFAULTS = {"problem": "probe", "params": '{"problem":{"size":1},"strategy":{}}',
            "s_fail": "none", "s_sleep_s": 0.0, "s_spin_s": 0.0, "s_scale": 0.5}
ROWS = pd.DataFrame([
    {"strategy": "probe", "status": "ok", "seed": seed, "p_size": size, "s_steps": steps,
     "probe_value": size / 100 * (1 if steps == 3 else F[size]) * (1 + seed / 1000),
     **DEFAULTS}
    for steps in (3, 5) for size in (50, 100, 200) for seed in (0, 1)])


def test_metric_mean_with_its_t_interval():
    m = metric_check({"metric": "probe_value", "strategy": "probe[steps=5]", "op": "<=",
                      "threshold": 2.0}, ROWS, None)
    # one value per seed (the mean of its three sizes), so n = 2 seeds and 1 df
    values = ROWS[ROWS["s_steps"] == 5].groupby("seed")["probe_value"].mean().to_numpy()
    half = scipy.stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / len(values) ** 0.5
    assert m.estimate.value == pytest.approx(values.mean()) and m.estimate.n == 2
    assert (m.estimate.low, m.estimate.high) == pytest.approx(
        (values.mean() - half, values.mean() + half))
    # pooled over the 6 cells the interval straddled 2 (5 df from 2 seeds); one value per
    # seed (2.92 and 2.92) puts it wholly above
    assert m.passed == [False] and m.outcome == "not reproduced"
    m = metric_check({"metric": "probe_value", "strategy": "probe", "op": "<",
                      "threshold": 2.05, "where": {"size": 200}}, ROWS, None)
    assert m.passed == [True] and m.outcome == "reproduced" and m.estimate.n == 2


def test_ratio_and_difference_are_paired_by_seed():
    check = {"metric": "probe_value", "strategy": "probe[steps=5]", "baseline": "probe",
             "op": "<", "threshold": 2.5, "over": "size"}
    m = ratio_check(check, ROWS, None)
    assert m.passed == [True, True, False]  # ratios 1.5, 2, 3 at sizes 50, 100, 200
    assert m.outcome == "not reproduced"  # the claim must hold at every size
    assert m.estimate.value == pytest.approx(3.0) and m.estimate.low == pytest.approx(3.0)
    for reduce in ("min", "max"):  # a point picked by the data it then judges: refused
        with pytest.raises(ClaimRefused, match=f"reduce: {reduce} picks the point"):
            ratio_check({**check, "reduce": reduce}, ROWS, None)
    del check["over"]
    d = difference_check({**check, "threshold": 0.3, "op": "<=", "where": {"size": 50}}, ROWS,
                         None)
    # smallest difference: size 50, 0.25 · (1 + seed/1000) → mean 0.250125
    assert d.estimate.value == pytest.approx(0.250125) and d.passed == [True]


def test_curve_ratio_at_a_named_point_and_against_a_baseline():
    rows = ROWS.assign(p_center=100)
    check = {"metric": "probe_value", "strategy": "probe", "over": "size", "at": "center",
             "op": ">=", "threshold": 1.9}
    m = curve_ratio_check(check, rows, None)
    assert m.estimate.value == pytest.approx(2.0) and m.passed == [True]  # 1 / min(0.5, 2)
    m = curve_ratio_check({**check, "baseline": "probe[steps=5]", "threshold": 1.0,
                           "op": "<="}, rows, None)
    own, base = 1.0 / 0.5, 2.0 / 0.75  # steps 5: 2 at 100, 0.75 at 50, 6 at 200
    assert m.estimate.value == pytest.approx(own / base) and m.passed == [True]
    missing = curve_ratio_check({**check, "at": 400}, rows, None)
    assert missing.passed is None and missing.outcome == "no data"


def test_outcome_vocabulary():
    def outcome(passed, every=False):
        return Measurement("c", "m", passed, every=every).outcome
    assert outcome(None) == outcome([]) == "no data"
    assert outcome([True, True]) == "reproduced"
    assert outcome([True, False]) == "partly reproduced"
    assert outcome([True, False], every=True) == "not reproduced"
    assert outcome([False, None]) == outcome([False]) == "not reproduced"
    assert outcome([True, None]) == outcome([None]) == "inconclusive"


CLAIMS = """
paper: P
family: probe
claims:
  - id: c1
    claim: "Values stay small."
    source: s
    check: {kind: metric, metric: probe_value, strategies: [probe, "probe[steps=5]",
            "probe[steps=9]"], op: "<", threshold: 0.6, where: {size: 50}}
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


def test_a_users_claims_file_without_a_known_family_is_refused_not_ignored(tmp_path, capsys):
    from harness.cli import main
    from harness.folder import OutputFolder

    out, mine = OutputFolder(tmp_path / "out"), tmp_path / "mine"
    out.create()
    mine.mkdir()
    claim = ("claims:\n  - {id: c, claim: words, check: {kind: metric, metric: m, "
             "strategy: probe, op: '<', threshold: 1}}\n")
    for head, named in (("paper: P\n", "no family key"), ("family: probes\n",
                                                           "family 'probes'")):
        (mine / "c.yaml").write_text(head + claim)
        assert main(["report", str(out.root), "--claims", str(mine)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"error: {mine / 'c.yaml'}: {named}") and "\n" not in err
        assert "probe" in err.split("one of", 1)[1]  # says which families there are
        assert not out.documents("report")[0].exists()  # nothing written
    (mine / "c.yaml").write_text("family: probe\n" + claim)
    assert main(["report", str(out.root), "--claims", str(mine)]) == 0


def test_a_verdict_carries_its_estimate_and_the_threshold_it_was_judged_against(tmp_path):
    (tmp_path / "c.yaml").write_text(CLAIMS)
    blocks = claim_blocks(_ctx(tmp_path), Family("probe", "Probe"), ROWS, where="here")
    v = next(b for b in blocks if isinstance(b, Verdict))
    assert (v.kind, v.op, v.threshold, v.seeds) == ("mean", "<", 0.6, 2)
    assert v.low < v.value < v.high and v.stopped == ""
    assert v.scope == "`probe` (here)" and v.label.endswith(" — " + v.scope)
    # a criterion that is not the check's own (a band's low end, a tolerance per problem):
    # the threshold of the item the verdict prints
    shown = ratio_interval([1.2, 1.3, 1.25])
    m = Measurement("c", "m", items=[Item(shown, ">=", 1.1)], estimate=shown)
    v = _verdict(Claim("id", "words", "s", {"kind": "band", "low": 1.1}), m, about={})
    assert (v.op, v.threshold, v.outcome) == (">=", 1.1, "reproduced")
    assert v.value == pytest.approx(shown.value) and v.kind == "ratio"
    refused = Measurement("c", "refused: why", refused="why")
    assert _verdict(Claim("id", "w", "s", {}), refused, about={}).value is None
