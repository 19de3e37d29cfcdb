"""Separable networks f(y) = W·[F(y; θ); 1] (docs/papers.md): slimTrain (slimTik on W, Adam
on θ) vs Adam on both.

Library use, without the harness::

    from harness.solvers.separable import SlimTik
    tik = SlimTik(n_targets, n_features, memory_depth=5, select="sgcv", lam_bar=1e-10)
    step = tik.update(Z, C)     # Z: features × batch (bias row included), C: targets × batch
    tik.W, step.lam, step.lam_bar
"""

from harness.family import declare_family

from .slimtik import (
    DENOMINATORS,
    SELECT,
    TRIALS,
    SlimTik,
    SlimTikStep,
    best_candidate,
    pytorch_trial_points,
    sgcv_terms,
    trial_points,
)

# The report section (imported only by `harness report`) and the published claims
# (claims/*.yaml, package data) of this family.
declare_family("separable", "Separable networks: slimTrain vs Adam",
               section=f"{__name__}.report:section", claims=__name__)

__all__ = ["DENOMINATORS", "SELECT", "TRIALS", "SlimTik", "SlimTikStep", "best_candidate",
           "pytorch_trial_points",
           "sgcv_terms", "trial_points"]
