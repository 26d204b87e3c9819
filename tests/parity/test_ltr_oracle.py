"""recx's LTR metrics against an independent implementation, ``ir-measures`` (dev extra), on the real MSLR sample.

ir-measures drives two independent evaluators: ``gdeval`` (the TREC Web track's Perl script: NDCG@k with gain
2^r - 1 and ERR@k with R = (2^r - 1) / 16, i.e. grade scale 4) and ``pytrec_eval`` (trec_eval: AP with relevance >= 1,
NDCG with linear gain, RR). The first query's labels are zeroed (the sample has no query without a relevant
document). Scores are made distinct so no tie convention is involved. Queries without a relevant
document count 0 in both evaluators, which is recx's default ``idcg_zero="zero"``.
"""

from __future__ import annotations

import shutil

import pytest
import torch

from recx.data.svmlight import read_svmlight
from recx.ltr.data import pad_batch
from recx.ltr.data import LTRSplit
from recx.metrics import ltr
from tests.conftest import mirror, needs_mirror

ir_measures = pytest.importorskip("ir_measures")
SAMPLE = "mslr-web10k-sample/msn1.fold1.test.5k.txt"


@pytest.fixture(scope="module")
def mslr_run():
    with pytest.warns(UserWarning, match="dropped the last query"):
        table = read_svmlight(mirror() / SAMPLE, 136, drop_last_query=True)
    split = LTRSplit(table.features, table.labels.clone(), table.offsets, table.qids)
    split.labels[: int(split.offsets[1])] = 0  # the sample has no query without a relevant document: make one
    # a real ranker-like score: one BM25-type feature plus seeded noise, then made distinct (ranks as scores)
    noisy = split.features[:, 109] + torch.rand(split.n_docs, generator=torch.Generator().manual_seed(0))
    distinct = torch.empty(split.n_docs)
    distinct[torch.argsort(noisy)] = torch.arange(split.n_docs, dtype=torch.float32)
    split.features = torch.cat([split.features, distinct[:, None]], 1)
    features, labels, mask = pad_batch(split, torch.arange(split.n_queries))
    scores = torch.where(mask, features[..., -1], torch.zeros_like(features[..., -1]))
    qrels, run = [], []
    for q in range(split.n_queries):
        qid = str(int(split.qids[q]))
        for j in range(int(mask[q].sum())):
            qrels.append(ir_measures.Qrel(qid, f"d{j}", int(labels[q, j])))
            run.append(ir_measures.ScoredDoc(qid, f"d{j}", float(scores[q, j])))
    return split.qids, scores, labels, mask, qrels, run


def per_query(provider, measure, qrels, run) -> dict[int, float]:
    return {int(m.query_id): m.value for m in provider.iter_calc([measure], qrels, run)}


def compare(ours: torch.Tensor, qids: torch.Tensor, theirs: dict[int, float]) -> None:
    assert len(theirs) == len(qids) == 42
    for q, value in zip(qids.tolist(), ours.tolist()):
        assert value == pytest.approx(theirs[q], abs=1e-4), q


@needs_mirror(SAMPLE)
@pytest.mark.skipif(shutil.which("perl") is None, reason="ir-measures runs gdeval, a Perl script")
@pytest.mark.parametrize("k", [1, 3, 5, 10])
def test_ndcg_exp2_and_err_match_gdeval(mslr_run, k):
    from ir_measures import ERR, nDCG

    qids, scores, labels, mask, qrels, run = mslr_run
    assert int((labels.max(1).values == 0).sum()) == 1  # one query without a relevant document (idcg_zero)
    compare(ltr.ndcg_at_k(scores, labels, mask, k), qids,
            per_query(ir_measures.gdeval, nDCG(dcg="exp-log2") @ k, qrels, run))
    compare(ltr.err_at_k(scores, labels, mask, k, max_label=4), qids,
            per_query(ir_measures.gdeval, ERR @ k, qrels, run))


@needs_mirror(SAMPLE)
def test_map_rr_and_linear_ndcg_match_trec_eval(mslr_run):
    from ir_measures import AP, RR, nDCG

    qids, scores, labels, mask, qrels, run = mslr_run
    compare(ltr.average_precision(scores, labels, mask), qids, per_query(ir_measures.pytrec_eval, AP, qrels, run))
    compare(ltr.reciprocal_rank(scores, labels, mask), qids, per_query(ir_measures.pytrec_eval, RR, qrels, run))
    for k in (5, 10):
        compare(ltr.ndcg_at_k(scores, labels, mask, k, gain="linear"), qids,
                per_query(ir_measures.pytrec_eval, nDCG @ k, qrels, run))
