"""Metrics of generated strings (character tokens), as pure functions of lists of strings.

- ``bleu``: mean sentence BLEU-n of samples against a reference set (quality; Papineni et al.
  2002 as Texygen computes it for text GANs: uniform weights over 1..n-grams, clipped counts
  against the reference set, the brevity penalty of the closest reference length, and NLTK's
  smoothing "method1": a precision with no match counts as 0.1 / its number of n-grams);
- ``self_bleu``: the same with each sample against all the other samples (diversity: lower is
  more diverse, Zhu et al. 2018);
- ``uniqueness``, ``novelty``: MOSES's definitions (unique share; share of unique samples not in
  the training set);
- ``smiles_syntax_valid``: a syntax check of SMILES (brackets, branches, ring closures) that
  needs no chemistry library; ``rdkit_valid``: RDKit's parse, None where RDKit is missing.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

EPSILON = 0.1  # NLTK's smoothing method1


def ngrams(s: str, k: int) -> Counter[str]:
    """The character k-grams of ``s`` with their counts."""
    return Counter(s[i:i + k] for i in range(len(s) - k + 1))


def subsample(strings: list[str], num: int, seed: int) -> list[str]:
    """At most ``num`` of ``strings``, drawn without replacement from ``seed`` (all, in order,
    when there are no more than ``num``)."""
    if len(strings) <= num:
        return list(strings)
    idx = np.sort(np.random.default_rng(seed).choice(len(strings), num, replace=False))
    return [strings[i] for i in idx]


def _closest(length: int, lengths: Counter[int]) -> int:
    """The reference length closest to ``length`` (ties: the shorter), as NLTK picks it."""
    return min((r for r, c in lengths.items() if c > 0), key=lambda r: (abs(r - length), r))


def _sentence(h: str, n: int, max_counts: list[dict[str, int]], ref_len: int) -> float:
    """Sentence BLEU-n of ``h`` given, per order k, each k-gram's largest count in any one
    reference, and the closest reference length."""
    logs = []
    for k in range(1, n + 1):
        grams = ngrams(h, k)
        total = sum(grams.values())
        clipped = sum(min(c, max_counts[k - 1].get(g, 0)) for g, c in grams.items())
        if k == 1 and clipped == 0:
            return 0.0  # NLTK: no unigram in common is a score of 0 before smoothing
        p = clipped / total if clipped else EPSILON / max(total, 1)
        logs.append(math.log(p))
    c = len(h)
    bp = 1.0 if c > ref_len else (0.0 if c == 0 else math.exp(1.0 - ref_len / c))
    return bp * math.exp(sum(logs) / n)


def bleu(samples: list[str], references: list[str], n: int = 4) -> float:
    """Mean sentence BLEU-n of ``samples`` against the whole set ``references``."""
    if not samples or not references:
        raise ValueError("BLEU needs at least one sample and one reference")
    max_counts: list[dict[str, int]] = []
    for k in range(1, n + 1):
        best: dict[str, int] = {}
        for r in references:
            for g, c in ngrams(r, k).items():
                if c > best.get(g, 0):
                    best[g] = c
        max_counts.append(best)
    lengths = Counter(len(r) for r in references)
    return float(np.mean([_sentence(h, n, max_counts, _closest(len(h), lengths))
                          for h in samples]))


def self_bleu(samples: list[str], n: int = 4) -> float:
    """Mean sentence BLEU-n of each of ``samples`` against all the others (needs two)."""
    if len(samples) < 2:
        raise ValueError("self-BLEU needs at least two samples")
    # per order: each k-gram's (largest count, the sample holding it, second largest count),
    # so that a sample's own counts can be left out in one pass
    tops: list[dict[str, list[int]]] = []
    counts = [[ngrams(s, k) for k in range(1, n + 1)] for s in samples]
    for k in range(n):
        top: dict[str, list[int]] = {}
        for i, per in enumerate(counts):
            for g, c in per[k].items():
                t = top.setdefault(g, [0, -1, 0])
                if c > t[0]:
                    t[0], t[1], t[2] = c, i, t[0]
                elif c > t[2]:
                    t[2] = c
        tops.append(top)
    lengths = Counter(len(s) for s in samples)
    scores = []
    for i, h in enumerate(samples):
        others = [{g: (t[0] if t[1] != i else t[2]) for g, t in
                   ((g, tops[k][g]) for g in counts[i][k])} for k in range(n)]
        lengths[len(h)] -= 1
        scores.append(_sentence(h, n, others, _closest(len(h), lengths)))
        lengths[len(h)] += 1
    return float(np.mean(scores))


def uniqueness(samples: list[str]) -> float:
    """The share of distinct strings among ``samples``."""
    return len(set(samples)) / len(samples) if samples else 0.0


def novelty(samples: list[str], training: list[str] | set[str]) -> float:
    """The share of distinct ``samples`` that are not training strings (MOSES's novelty)."""
    unique = set(samples)
    known = set(training)
    return sum(s not in known for s in unique) / len(unique) if unique else 0.0


def new_share(samples: list[str], training: list[str] | set[str]) -> float:
    """The share of all ``samples`` (with repeats) that are not training strings."""
    known = set(training)
    return sum(s not in known for s in samples) / len(samples) if samples else 0.0


BONDS = set("-=#:/\\$.")


def smiles_syntax_valid(s: str) -> bool:
    """Whether ``s`` is well-formed SMILES syntax: it starts with an atom, closes every
    bracket atom, branch and ring bond, has no empty branch and no dangling bond. Syntax only:
    valences and aromaticity are RDKit's to judge (``rdkit_valid``)."""
    if not s or not (s[0].isalpha() or s[0] == "["):
        return False
    depth, rings, i, prev = 0, set(), 0, ""
    while i < len(s):
        c = s[i]
        if c == "[":
            j = s.find("]", i + 1)
            if j < 0 or j == i + 1 or "[" in s[i + 1:j]:
                return False
            i, prev = j + 1, "atom"
            continue
        if c == "]":
            return False
        if c == "(":
            if prev not in ("atom", "ring", ")"):
                return False
            depth += 1
        elif c == ")":
            if depth == 0 or prev in ("(", "bond"):
                return False
            depth -= 1
        elif c.isdigit() or c == "%":
            label = s[i:i + 3] if c == "%" else c
            if c == "%" and not (len(label) == 3 and label[1:].isdigit()):
                return False
            if prev not in ("atom", "ring", "bond"):
                return False
            rings ^= {label}
            i += len(label)
            prev = "ring"
            continue
        elif c in BONDS:
            if prev in ("bond", ""):
                return False
            prev = "bond"
            i += 1
            continue
        elif c.isalpha() or c == "*":
            prev = "atom"
            i += 1
            continue
        else:
            return False
        prev = c
        i += 1
    return depth == 0 and not rings and prev != "bond"


def rdkit_valid(samples: list[str]) -> float | None:
    """The share of ``samples`` RDKit parses as molecules (``Chem.MolFromSmiles``); None where
    RDKit is not installed."""
    ok, used = validity_of(samples, "smiles")
    return float(np.mean(ok)) if used == "rdkit" and ok else None


BLEU_SAMPLES = 500  # samples BLEU and self-BLEU are computed on (a seeded subsample)
BLEU_REFERENCES = 2000  # held-out strings BLEU compares with (a seeded subsample)


def validity_of(samples: list[str], checker: str) -> tuple[list[bool] | None, str]:
    """(each sample's validity, the checker used): for ``smiles``, RDKit's parse where RDKit
    is installed, else the syntax check; (None, "none") for no checker."""
    if checker != "smiles":
        return None, "none"
    try:
        from rdkit import Chem, RDLogger
    except ImportError:
        return [smiles_syntax_valid(s) for s in samples], "smiles-syntax (RDKit not installed)"
    RDLogger.DisableLog("rdApp.*")
    return [bool(s) and Chem.MolFromSmiles(s) is not None for s in samples], "rdkit"


def text_scores(samples: list[str], training: list[str] | set[str], holdout: list[str],
                checker: str = "none", seed: int = 0) -> dict[str, float | str]:
    """BLEU-4 against held-out strings and self-BLEU-4 (on seeded subsamples), uniqueness and
    novelty (among valid samples where there is a checker, as MOSES counts them), the share of
    samples that are new strings, validity, and the mean length."""
    if not samples:
        raise ValueError("no samples to score")
    ok, used = validity_of(samples, checker)
    valid = samples if ok is None else [s for s, v in zip(samples, ok, strict=True) if v]
    some = subsample(samples, BLEU_SAMPLES, seed)
    out: dict[str, float | str] = {
        "bleu4": bleu(some, subsample(holdout, BLEU_REFERENCES, seed + 1), 4),
        "self_bleu4": self_bleu(some, 4) if len(some) > 1 else 1.0,
        "uniqueness": uniqueness(valid),
        "novelty": novelty(valid, training),
        "new": new_share(samples, training),
        "empty": sum(not s for s in samples) / len(samples),
        "mean_length": float(np.mean([len(s) for s in samples])),
    }
    if ok is not None:
        out["validity"] = float(np.mean(ok))
        out["validity_checker"] = used
    return out
