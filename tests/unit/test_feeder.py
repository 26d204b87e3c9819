"""FEEDER against a fake LM whose correctness rule is known, selectors, and the text readers.

``TopicLM`` is right on an easy query with any context (also zero-shot), and on a hard one iff some demonstration shares
its topic. Under Def. 1 (the default) a demonstration is sufficient for a target only if the target is wrong without
it, so easy targets can never be covered; ``sufficiency="any"`` is the reading recx had before issue 18."""

import bz2

import numpy as np
import pytest

from recx.errors import DataError
from recx.icl.data import read_labelled_file, read_rotten_tomatoes
from recx.errors import ConfigError
from recx.icl.feeder import CachedJudge, check_sufficiency, feeder_preselect, is_necessary, is_sufficient, \
    set_sufficient
from recx.icl.selectors import embed, select, tfidf
from tests.conftest import mirror, needs_mirror


class TopicLM:
    """Right on a query iff the query is easy or some demonstration shares its topic."""

    def __init__(self, topics, easy):
        self.topics, self.easy = topics, easy
        self.batches = 0

    def correct(self, contexts, queries):
        self.batches += 1
        return [bool(self.easy[q] or any(self.topics[c] == self.topics[q] for c in ctx))
                for ctx, q in zip(contexts, queries)]


#: items 0..5: (topic, easy) = (A, hard) (A, hard) (B, hard) (B, easy) (C, easy) (A, easy)
TOPICS = ["A", "A", "B", "B", "C", "A"]
EASY = [False, False, False, True, True, True]


def test_instance_sufficiency_and_necessity_on_hand_cases():
    lm = TopicLM(TOPICS, EASY)
    assert is_sufficient(lm, (), 1, 0)  # wrong on 0 alone, right with 1 (same topic)
    assert not is_sufficient(lm, (), 2, 0)  # another topic does not help
    assert not is_sufficient(lm, (1,), 5, 0)  # already right with 1: nothing to add
    assert not is_sufficient(lm, (), 0, 3)  # 3 is easy: never wrong
    assert is_necessary(lm, (1, 2), 1, 0)  # remove the only topic-A demonstration: wrong
    assert not is_necessary(lm, (1, 5), 1, 0)  # 5 is also topic A: 1 is not necessary
    assert set_sufficient(lm, [0, 2], [1, 3, 4, 5], sufficiency="any") and not set_sufficient(lm, [0], [2])


def test_def1_set_sufficiency_needs_the_target_wrong_without_the_demonstrations():
    lm = TopicLM(TOPICS, EASY)
    # 3, 4, 5 are right zero-shot: under Def. 1 nothing is sufficient for them (the old reading said [0, 2] was)
    assert not set_sufficient(lm, [0, 2], [1, 3, 4, 5]) and not set_sufficient(lm, [0, 2], [4])
    assert set_sufficient(lm, [0, 2], [1]) and set_sufficient(lm, [3], [2])  # wrong alone, right with the topic
    assert not set_sufficient(lm, [2], [1]) and not set_sufficient(lm, [0], [1, 2])
    assert set_sufficient(lm, [0, 3], [1, 2], shots=2) and not set_sufficient(lm, [0, 4], [1, 2], shots=2)
    with pytest.raises(ConfigError, match="sufficiency"):
        check_sufficiency("some")


def test_def1_tree_keeps_what_the_lm_gets_right_alone_by_hand():
    lm = TopicLM(TOPICS, EASY)
    result = feeder_preselect(lm, range(6), shots=1, shuffle=False)
    # zero-shot wrong: 0, 1, 2. layer 1: {0}|{1} each fixes the other -> {0}; {2}|{3}: 3 fixes 2, 2 cannot be
    # sufficient for the easy 3 -> {3}; {4}|{5} both easy -> {4, 5}. layer 2: {0}|{3} -> {0, 3}; {4, 5} carried.
    # layer 3: {0, 3}|{4, 5}: each side holds a zero-shot-right target -> the union.
    assert result.selected == [0, 3, 4, 5] and result.layers == 3
    assert feeder_preselect(lm, range(6), shots=1, shuffle=False, sufficiency="any").selected == [0, 2]


def test_def1_never_drops_a_zero_shot_right_item_and_prunes_less_than_any():
    rng = np.random.default_rng(5)
    topics = rng.integers(0, 5, 80).tolist()
    easy = (rng.random(80) < 0.5).tolist()
    lm = TopicLM(topics, easy)
    judge = CachedJudge(lm)
    def1 = feeder_preselect(judge, range(80), shots=1, seed=2)
    anyone = feeder_preselect(judge, range(80), shots=1, seed=2, sufficiency="any")
    assert {i for i in range(80) if easy[i]} <= set(def1.selected)  # nothing is sufficient for them
    dropped = set(range(80)) - set(def1.selected)
    assert dropped and all(not easy[i] and topics[i] in {topics[j] for j in def1.selected} for i in dropped)
    assert len(anyone.selected) < 80 / 4 < len(def1.selected)  # the old reading collapses the pool


def test_tree_selects_one_demonstration_per_hard_topic_by_hand():
    lm = TopicLM(TOPICS, EASY)
    result = feeder_preselect(lm, range(6), shots=1, shuffle=False, sufficiency="any")
    # layer 1: {0}|{1} both sufficient -> {0}; {2}|{3} -> {2}; {4}|{5} -> {4}
    # layer 2: {0}|{2} neither -> {0,2}; {4} carried. layer 3: {0,2} suffices for {4}, not conversely -> {0,2}
    assert result.selected == [0, 2] and result.layers == 3 and result.sizes == [2]
    assert set_sufficient(lm, result.selected, [1, 3, 4, 5], sufficiency="any")


def test_tree_batches_each_layer_and_the_cache_makes_reruns_free():
    rng = np.random.default_rng(0)
    topics = rng.integers(0, 5, 64).tolist()
    easy = (rng.random(64) < 0.3).tolist()
    lm = TopicLM(topics, easy)
    judge = CachedJudge(lm)
    first = feeder_preselect(judge, range(64), shots=1, seed=1, sufficiency="any")
    assert lm.batches == first.layers  # one LM batch per layer
    hard_topics = {t for t, e in zip(topics, easy) if not e}
    assert {topics[i] for i in first.selected} >= hard_topics  # every hard topic keeps a demonstration
    assert len(first.selected) < 64 / 4
    again = feeder_preselect(judge, range(64), shots=1, seed=1, sufficiency="any")
    assert again.selected == first.selected and again.judge_calls == 0 and again.cache_hits > 0


def test_more_runs_never_grow_the_subset_and_two_shot_groups():
    rng = np.random.default_rng(3)
    topics = rng.integers(0, 6, 40).tolist()
    lm = TopicLM(topics, [False] * 40)
    for sufficiency in ("def1", "any"):  # no easy item: the two readings agree here
        one = feeder_preselect(lm, range(40), runs=1, seed=0, sufficiency=sufficiency)
        two = feeder_preselect(lm, range(40), runs=2, seed=0, sufficiency=sufficiency)
        assert two.sizes[0] == len(one.selected) and two.sizes[1] <= two.sizes[0]
        k2 = feeder_preselect(lm, range(40), shots=2, seed=0, sufficiency=sufficiency)
        assert set(topics[i] for i in k2.selected) == set(topics)


def test_selectors():
    pool = ["a great fun film", "dull and boring", "great acting, great fun", "a boring plot", "the cast is great"]
    p, q, name = embed(pool, ["great fun"], encoder="tfidf")
    assert name == "tfidf" and np.allclose(np.linalg.norm(p, axis=1), 1.0)
    sim = select("similarity", p, q, 2, np.random.default_rng(0))
    assert sim[0, -1] in (0, 2) and set(sim[0]) <= {0, 2, 4}  # most similar last
    rnd = select("random", p, np.repeat(q, 3, 0), 3, np.random.default_rng(0))
    assert rnd.shape == (3, 3) and all(len(set(r)) == 3 for r in rnd)
    div = select("diversity", p, q, 2, np.random.default_rng(0))
    assert len(set(div[0])) == 2 and {pool[i] for i in div[0]} & {"dull and boring", "a boring plot"}
    m, vocab, idf = tfidf(pool)
    assert m.shape == (5, len(vocab)) and idf[vocab["great"]] < idf[vocab["dull"]]  # frequent words weigh less


def test_readers_name_bad_lines(tmp_path):
    (tmp_path / "sst2.tsv").write_text("sentence\tlabel\nfine film\t1\nbad film\t0\n")
    data = read_labelled_file(tmp_path / "sst2.tsv", "sst2")
    assert data.texts == ["fine film", "bad film"] and data.labels == [1, 0]
    (tmp_path / "bad.tsv").write_text("sentence\tlabel\nfine film\tx\n")
    with pytest.raises(DataError, match="line 2"):
        read_labelled_file(tmp_path / "bad.tsv", "sst2")
    (tmp_path / "trec.txt").write_text("DESC:manner How did it go ?\nHUM:ind Who was he ?\n")
    trec = read_labelled_file(tmp_path / "trec.txt", "trec")
    assert trec.label_names == ["DESC", "HUM"] and trec.labels == [0, 1]
    (tmp_path / "rt.csv.bz2").write_bytes(bz2.compress(b"category,text\nfresh,great\nrotten,awful\nplot,a story\n"))
    assert read_rotten_tomatoes(tmp_path / "rt.csv.bz2").labels == [1, 0]
    assert read_rotten_tomatoes(tmp_path / "rt.csv.bz2", "subjectivity").labels == [1, 1, 0]


@needs_mirror("rotten-tomatoes/rotten_tomatoes_corpus_full.csv.bz2")
def test_real_rotten_tomatoes_counts():
    path = mirror() / "rotten-tomatoes/rotten_tomatoes_corpus_full.csv.bz2"
    polarity = read_rotten_tomatoes(path)
    assert sum(polarity.labels) == 7403 and len(polarity) - sum(polarity.labels) == 5405
    subjectivity = read_rotten_tomatoes(path, "subjectivity")
    assert len(subjectivity) == 13891 and subjectivity.labels.count(0) == 1083  # 14 plot rows have no text
