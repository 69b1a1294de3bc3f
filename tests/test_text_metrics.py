"""Text: the vocabulary codec, the Gumbel-softmax path, BLEU and self-BLEU against hand-computed
values, novelty/uniqueness, the SMILES syntax check and the baseline language model."""

from __future__ import annotations

import math
import sys

import pytest
import torch

from gankit.errors import DataError
from gankit.kinds.text.codec import TextCodec
from gankit.kinds.text.lm import fit_lm, mean_nll, sample_lm, string_nll
from gankit.metrics.text import (
    bleu,
    new_share,
    novelty,
    rdkit_valid,
    self_bleu,
    smiles_syntax_valid,
    subsample,
    text_scores,
    uniqueness,
    validity_of,
)
from gankit.models.text import TextDiscriminator, TextGenerator

WORDS = ["maria", "johan", "ana", "jo", "marianne", "x"]


# -- the codec -----------------------------------------------------------------------------------

def test_vocabulary_round_trip() -> None:
    codec = TextCodec.fit(WORDS)
    assert codec.chars == tuple(sorted(set("".join(WORDS))))
    assert codec.length == 8 and codec.vocab_size == len(codec.chars) + 1
    x = codec.encode(WORDS)
    assert x.shape == (len(WORDS), codec.width) and x.dtype == torch.float32
    assert torch.equal(x.reshape(len(WORDS), 8, -1).sum(2), torch.ones(len(WORDS), 8))
    assert codec.decode(x) == WORDS
    again = TextCodec.from_json(codec.to_json())
    assert again == codec and again.decode(x) == WORDS


def test_any_output_decodes_to_known_characters_only() -> None:
    codec = TextCodec.fit(WORDS)
    noise = torch.randn(200, codec.width)
    known = set(codec.chars)
    assert all(set(s) <= known and len(s) <= codec.length for s in codec.decode(noise))


def test_codec_refuses_what_it_cannot_hold() -> None:
    codec = TextCodec.fit(WORDS)
    with pytest.raises(DataError, match="never saw"):
        codec.ids(["maría"])
    with pytest.raises(DataError, match="longer"):
        codec.ids(["mariannes"])
    assert codec.unseen("zorro!") == ["z", "!"] or codec.unseen("zorro!")[-1] == "!"
    with pytest.raises(DataError, match="one character"):
        TextCodec.fit(["aaa", "a", "aa"])
    with pytest.raises(DataError, match="codec"):
        TextCodec.from_json({"kind": "text", "format": 1, "chars": ["a"], "length": 3})


# -- the Gumbel-softmax path ---------------------------------------------------------------------

def test_gumbel_path_carries_gradients_to_every_generator_weight() -> None:
    torch.manual_seed(0)
    g = TextGenerator(code_dim=8, hidden=16, length=6, vocab=5)
    d = TextDiscriminator(6, 5, (8,))
    z = torch.randn(32, g.latent_dim)
    x = g(z)
    assert x.shape == (32, 30)
    rows = x.reshape(32, 6, 5)
    assert torch.allclose(rows.sum(2), torch.ones(32, 6), atol=1e-5)
    assert 0.0 < float(rows.detach().max()) <= 1.0 and float(rows.detach().min()) >= 0.0
    d(x).mean().backward()
    for name, p in g.named_parameters():
        if name == "embed.weight":
            continue  # tokens fed back are hard draws (RelGAN): no gradient through them
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert float(p.grad.abs().sum()) > 0, name


def test_eval_mode_emits_one_hot_and_ends_for_good() -> None:
    torch.manual_seed(0)
    g = TextGenerator(code_dim=8, hidden=16, length=6, vocab=5).eval()
    z = torch.randn(64, g.latent_dim)
    with torch.no_grad():
        x = g(z).reshape(64, 6, 5)
        ids = x.argmax(2)
        assert torch.equal(x.sum(2), torch.ones(64, 6)) and set(x.unique().tolist()) <= {0.0, 1.0}
        ended = (ids == 0).long().cummax(1).values.bool()
        assert torch.equal(ids[ended], torch.zeros_like(ids[ended]))  # nothing after an end
        g.temperature = 0.0
        a = g(z)
        g.temperature = 1e-4
        b = g(z)  # almost greedy: the same tokens wherever the logits are not near a tie
        assert (a == b).float().mean() > 0.95
        assert torch.equal(g(z), a)  # deterministic from z


# -- BLEU and self-BLEU, by hand -----------------------------------------------------------------

def test_bleu_hand_computed() -> None:
    # p1 = 3/4 (a b c of a b c d), p2 = 2/3 (ab bc of ab bc cd), equal lengths: no penalty
    assert bleu(["abcd"], ["abce"], 2) == pytest.approx(math.sqrt(3 / 4 * 2 / 3))
    # all n-grams match; closest reference length 3 > 2: brevity penalty exp(1 - 3/2)
    assert bleu(["ab"], ["abc", "xyzw"], 2) == pytest.approx(math.exp(-0.5))
    # no bigram matches: smoothed to 0.1 / 1 bigram
    assert bleu(["ba"], ["ab"], 2) == pytest.approx(math.sqrt(0.1))
    assert bleu(["zz"], ["ab"], 2) == 0.0  # no unigram in common
    # clipping: "aaaa" holds a 4 times, a reference at most twice
    assert bleu(["aaaa"], ["aab", "baa"], 1) == pytest.approx(2 / 4)
    # the mean over samples
    assert bleu(["abcd", "zz"], ["abce"], 2) == pytest.approx(math.sqrt(0.5) / 2)


def test_self_bleu_hand_computed() -> None:
    assert self_bleu(["ab", "ab", "cd"], 1) == pytest.approx(2 / 3)
    # "aa" vs {a, b}: clipped 1 of 2; "a" vs {aa, b}: 1; "b" vs {aa, a}: 0
    assert self_bleu(["aa", "a", "b"], 1) == pytest.approx(0.5)
    assert self_bleu(["abc", "abc"], 4) == pytest.approx(math.exp(math.log(0.1) / 4))


def test_self_bleu_is_each_sample_against_the_others() -> None:
    g = torch.Generator().manual_seed(0)
    samples = ["".join("abcde"[i] for i in torch.randint(5, (int(n),), generator=g))
               for n in torch.randint(1, 9, (40,), generator=g)]
    brute = sum(bleu([s], samples[:i] + samples[i + 1:], 4) for i, s in enumerate(samples)) / 40
    assert self_bleu(samples, 4) == pytest.approx(brute)


def test_uniqueness_novelty_and_subsample() -> None:
    samples = ["ana", "ana", "bob", "cid"]
    assert uniqueness(samples) == 0.75
    assert novelty(samples, {"ana"}) == pytest.approx(2 / 3)
    assert new_share(samples, ["ana"]) == 0.5
    pool = [str(i) for i in range(100)]
    assert subsample(pool, 10, 3) == subsample(pool, 10, 3) != subsample(pool, 10, 4)
    assert subsample(pool, 200, 0) == pool


def test_smiles_syntax() -> None:
    for ok in ("CCO", "c1ccccc1", "CC(=O)O", "C[C@@H](N)C(=O)O", "O=C1CC[NH2+]C1",
               "C1CC2CC1CC2", "C%12CC%12", "[Na+].[Cl-]", "C=1CC=1"):
        assert smiles_syntax_valid(ok), ok
    for bad in ("", "(C)", "C(C", "CC)", "c1cccc", "C[NH", "C()", "CC=", "=CC", "C(=)C",
                "C1CC(1)", "C]"):
        assert not smiles_syntax_valid(bad), bad


def test_text_scores_with_a_smiles_checker() -> None:
    scores = text_scores(["CCO", "CCO", "C(C", "CCN"], {"CCO"}, ["CCC", "CCN"], "smiles")
    assert scores["validity"] == 0.75
    assert scores["uniqueness"] == pytest.approx(2 / 3)  # among the valid ones
    assert scores["novelty"] == 0.5 and scores["new"] == 0.5
    assert "validity" not in text_scores(["ab", "ba"], set(), ["ab"])


# -- the baseline language model -----------------------------------------------------------------

def test_language_model_learns_and_samples_known_strings() -> None:
    torch.set_num_threads(1)
    corpus = ["abab", "baba", "abba"] * 30
    codec = TextCodec.fit(corpus)
    ids = codec.ids(corpus)
    before = mean_nll(fit_lm(ids, codec.vocab_size, 0, seed=0, hidden=32), ids)
    lm = fit_lm(ids, codec.vocab_size, 150, seed=0, hidden=32)
    after = mean_nll(lm, ids)
    assert after < before * 0.5
    assert string_nll(lm, codec.ids(["abab"]))[0] < string_nll(lm, codec.ids(["bbbb"]))[0]
    drawn = codec.strings(sample_lm(lm, 200, codec.length, 0.5, seed=1))
    assert sum(s in set(corpus) for s in drawn) / 200 > 0.8
    assert drawn == codec.strings(sample_lm(lm, 200, codec.length, 0.5, seed=1))


def test_language_model_rate_schedule() -> None:
    torch.set_num_threads(1)
    corpus = ["abab", "baba", "abba"] * 30
    codec = TextCodec.fit(corpus)
    ids = codec.ids(corpus)

    def weights(steps: int, lr_final: float) -> torch.Tensor:
        lm = fit_lm(ids, codec.vocab_size, steps, seed=0, hidden=16, lr_final=lr_final)
        return torch.cat([p.detach().flatten() for p in lm.parameters()])

    # the first step is at the full rate; later ones are slower, so the weights differ
    assert torch.equal(weights(1, 0.1), weights(1, 1.0))
    assert not torch.equal(weights(5, 0.1), weights(5, 1.0))
    assert torch.equal(weights(5, 0.1), weights(5, 0.1))


# -- SMILES validity by RDKit (the chemistry the syntax check leaves out) -------------------------

# well-formed SMILES that are not molecules: a five-bonded carbon, an aromatic ring that cannot
# be kekulized, a four-bonded neutral nitrogen
NOT_MOLECULES = ("C(C)(C)(C)(C)C", "c1cccc1", "CN(C)(C)C")


def test_rdkit_validity_of_known_molecules() -> None:
    pytest.importorskip("rdkit")
    good = ["CCO", "c1ccccc1", "CC(=O)O", "C[C@@H](N)C(=O)O", "O=C1CC[NH2+]C1", "[Na+].[Cl-]"]
    ok, used = validity_of(good + list(NOT_MOLECULES) + ["C(C", ""], "smiles")
    assert used == "rdkit"
    assert ok == [True] * len(good) + [False] * (len(NOT_MOLECULES) + 2)
    assert all(smiles_syntax_valid(s) for s in NOT_MOLECULES)  # syntax alone passes them
    assert rdkit_valid(["CCO", "c1cccc1"]) == 0.5
    scores = text_scores(["CCO", "c1cccc1", "CCN", "CCN"], {"CCO"}, ["CCC"], "smiles")
    assert scores["validity"] == 0.75 and scores["validity_checker"] == "rdkit"
    assert scores["uniqueness"] == pytest.approx(2 / 3) and scores["novelty"] == 0.5


def test_without_rdkit_the_syntax_check_judges(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "rdkit", None)  # import rdkit now raises ImportError
    ok, used = validity_of(["CCO", "C(C", *NOT_MOLECULES], "smiles")
    assert used.startswith("smiles-syntax") and ok == [True, False] + [True] * 3
    assert rdkit_valid(["CCO"]) is None
    assert text_scores(["CCO", "C(C"], set(), ["CCC"], "smiles")["validity"] == 0.5
