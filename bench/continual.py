"""The metrics of `protocol=sequential` (bench/protocols.py), each a pure function of one
accuracy matrix (DESIGN.md, fourth round).  Imports nothing: records, reports and tests use it
without torch.

R[k][j] is the accuracy (%) on domain j after training stage k, k, j = 1..K in
`dataset.task_order` (row k: every domain measured after stage k; the matrix is square), and
Z[j] zero-shot CLIP's accuracy on domain j (the same row after every stage: it trains nothing).
Indices below are 1-based as in the papers; the code's lists are 0-based.

* **final average** (the "Last" of the continual-learning papers):
  A_K = (1/K) sum_j R[K][j], every domain after the last stage.
* **average incremental accuracy** (Rebuffi et al., iCaRL, CVPR 2017; the "Avg" of ZSCL):
  (1/K) sum_k (1/k) sum_{j<=k} R[k][j], the mean over stages of the accuracy on the domains
  trained so far.
* **forgetting** (Chaudhry et al., "Riemannian Walk for Incremental Learning", ECCV 2018):
  (1/(K-1)) sum_{j<K} (max_{j<=k<K} R[k][j] - R[K][j]), how far each earlier domain fell from
  its best accuracy over the stages before the last (negative only where the last stage beats
  every earlier one on that domain).  The max runs over the stages from the domain's own on,
  as in Chaudhry et al., where a task's accuracy exists only once it was learned: DESIGN.md's
  max_{k<K} read literally would also take the stages before domain j was trained (the
  transfer entries above the diagonal), counting as forgotten an accuracy that was never learned
  (a `st` set that scores lower after its own training than untrained would then "forget",
  though nothing of it changes after its stage).
* **backward transfer** (Lopez-Paz and Ranzato, "Gradient Episodic Memory for Continual
  Learning", NeurIPS 2017): (1/(K-1)) sum_{j<K} (R[K][j] - R[j][j]), what the later stages did
  to each domain since it was trained (negative: forgotten).
* **transfer** (Zheng et al., "Preventing Zero-Shot Transfer Degradation in Continual Learning
  of Vision-Language Models", ZSCL, ICCV 2023, its "Transfer" column): the mean over j > 1 of
  (1/(j-1)) sum_{k<j} R[k][j], the matrix above its diagonal: domains not yet trained on.  Its
  reference is zero-shot's mean of Z[j] over the same domains (`transfer_reference`); their
  difference is `transfer_gain`.

With one domain (K = 1) forgetting, backward transfer and transfer have no terms: None.
"""
from __future__ import annotations

from typing import Optional, Sequence

Matrix = Sequence[Sequence[float]]

#: the metrics `sequential_metrics` returns, in the order tables show them
METRICS = ("final_average", "average_incremental", "forgetting", "backward_transfer", "transfer")


def _square(R: Matrix) -> int:
    K = len(R)
    if K == 0 or any(len(row) != K for row in R):
        raise ValueError(f"an accuracy matrix must be K x K with K >= 1 (stages x domains); got rows of "
                         f"lengths {[len(row) for row in R]}")
    return K


def _mean(values: Sequence[float]) -> Optional[float]:
    return sum(values) / len(values) if values else None


def final_average(R: Matrix) -> float:
    """(1/K) sum_j R[K][j]."""
    K = _square(R)
    return sum(R[K - 1]) / K


def average_incremental(R: Matrix) -> float:
    """(1/K) sum_k (1/k) sum_{j<=k} R[k][j]."""
    K = _square(R)
    return sum(sum(R[k][: k + 1]) / (k + 1) for k in range(K)) / K


def forgetting(R: Matrix) -> Optional[float]:
    """The mean over j < K of max_{j<=k<K} R[k][j] - R[K][j] (Chaudhry et al. 2018)."""
    K = _square(R)
    return _mean([max(R[k][j] for k in range(j, K - 1)) - R[K - 1][j] for j in range(K - 1)])


def backward_transfer(R: Matrix) -> Optional[float]:
    """(1/(K-1)) sum_{j<K} (R[K][j] - R[j][j]) (GEM, Lopez-Paz and Ranzato 2017)."""
    K = _square(R)
    return _mean([R[K - 1][j] - R[j][j] for j in range(K - 1)])


def transfer(R: Matrix) -> Optional[float]:
    """The mean over j > 1 of (1/(j-1)) sum_{k<j} R[k][j] (ZSCL's Transfer, Zheng et al. 2023)."""
    K = _square(R)
    return _mean([sum(R[k][j] for k in range(j)) / j for j in range(1, K)])


def transfer_reference(Z: Sequence[float]) -> Optional[float]:
    """Zero-shot's mean of Z[j] over the domains transfer averages (j > 1)."""
    return _mean(list(Z[1:]))


def average_after_each_stage(R: Matrix) -> list[float]:
    """(1/K) sum_j R[k][j] for k = 1..K: every domain's mean after each stage (the figure)."""
    K = _square(R)
    return [sum(row) / K for row in R]


def sequential_metrics(R: Matrix, Z: Optional[Sequence[float]] = None) -> dict[str, Optional[float]]:
    """Every metric of METRICS of `R`; with zero-shot's row `Z`, also `transfer_reference` and
    `transfer_gain` (transfer minus its reference)."""
    metrics = {"final_average": final_average(R), "average_incremental": average_incremental(R),
               "forgetting": forgetting(R), "backward_transfer": backward_transfer(R), "transfer": transfer(R)}
    if Z is not None:
        if len(Z) != len(R):
            raise ValueError(f"zero-shot's row has {len(Z)} domains, the matrix {len(R)}")
        reference = transfer_reference(Z)
        metrics["transfer_reference"] = reference
        metrics["transfer_gain"] = (None if reference is None or metrics["transfer"] is None
                                    else metrics["transfer"] - reference)
    return metrics
