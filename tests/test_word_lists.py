"""The curated gender word lists: every curated entry exists in the raw lists, the curated lists stay
line-aligned, and a curation that no longer fits the lists is a clear error."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from fairgender_utils import loaders
from fairgender_utils.loaders import CURATION_FILE, DataFormatError, load_curation, load_gender_words

REASONS = ("misspelt", "not a gender pair", "offensive pairing", "duplicate", "gendered target", "not a word")


def _raw(data_dir: Path) -> tuple[list[str], list[str], list[str]]:
    base = data_dir / "gender_word_lists" / "context_debias"
    return tuple([ln.strip() for ln in (base / f"{n}.txt").read_text().splitlines() if ln.strip()]  # type: ignore
                 for n in ("male", "female", "stereotype"))


def test_every_curated_entry_exists_in_the_raw_lists(data_dir):
    male, female, targets = _raw(data_dir)
    dropped = load_curation(CURATION_FILE)
    for d in dropped:
        if d.list == "pairs":
            assert (male[d.line - 1], female[d.line - 1]) == (d.word, d.partner), d
        else:
            assert targets[d.line - 1] == d.word and d.partner == "", d
        assert d.reason.split(":")[0] in REASONS and len(d.reason.split(":", 1)[1].strip()) > 3, d
    assert Counter(d.list for d in dropped) == {"pairs": 41, "targets": 8}
    for issue_example in [("pairs", "cialis", "viagra"), ("pairs", "beard", "toque"), ("pairs", "baritone", "mezzo"),
                          ("pairs", "mentleman", "lady"), ("pairs", "gods", "godesses"), ("pairs", "adultor", "adultress"),
                          ("pairs", "stailor", "seamstress'"), ("targets", "ca", "")]:
        assert issue_example in {(d.list, d.word, d.partner) for d in dropped}


def test_curated_lists_stay_line_aligned(data_dir):
    male, female, targets = _raw(data_dir)
    words = load_gender_words(data_dir)
    assert len(words.pairs) == len(words.pair_lines) == 222 - 41 and len(words.targets) == 168 - 8
    assert words.pairs == tuple((male[i - 1], female[i - 1]) for i in words.pair_lines)  # male j still with female j
    assert words.targets == tuple(targets[i - 1] for i in words.target_lines)
    assert list(words.pair_lines) == sorted(words.pair_lines) and list(words.target_lines) == sorted(words.target_lines)
    dropped = {(d.list, d.line) for d in words.dropped}
    assert {("pairs", i) for i in words.pair_lines}.isdisjoint(dropped)
    assert len(set(words.pairs)) == len(words.pairs)  # no duplicate pair is left
    assert {w for p in words.pairs for w in p}.isdisjoint(words.targets)  # no target is an attribute word
    swap = set(words.swap_pairs)
    assert ("cialis", "viagra") not in swap and ("he", "she") in swap and set(words.pairs) <= swap
    raw = load_gender_words(data_dir, curation=None)
    assert len(raw.pairs) == 222 and raw.dropped == () and ("cialis", "viagra") in raw.swap_pairs


def _lists(tmp_path: Path) -> Path:
    base = tmp_path / "gender_word_lists"
    (base / "context_debias").mkdir(parents=True)
    (base / "bias_bench").mkdir()
    (base / "context_debias" / "male.txt").write_text("he\nking\nbeard\n")
    (base / "context_debias" / "female.txt").write_text("she\nqueen\ntoque\n")
    (base / "context_debias" / "stereotype.txt").write_text("nurse\nca\npilot\n")
    (base / "bias_bench" / "bias_attribute_words.json").write_text('{"gender": [["actor", "actress"]]}')
    return tmp_path


HEADER = "# a comment\nlist\tline\tword\tpartner\treason\n"


def test_a_small_curation_is_applied(tmp_path):
    data = _lists(tmp_path)
    cur = tmp_path / "cur.tsv"
    cur.write_text(HEADER + "pairs\t3\tbeard\ttoque\tnot a gender pair: hair and a hat\n"
                   "targets\t2\tca\t\tnot a word\n")
    words = load_gender_words(data, cur)
    assert words.pairs == (("he", "she"), ("king", "queen")) and words.targets == ("nurse", "pilot")
    assert words.pair_lines == (1, 2) and words.target_lines == (1, 3) and len(words.dropped) == 2
    assert ("beard", "toque") not in words.swap_pairs


@pytest.mark.parametrize("rows, problem", [
    ("pairs\t3\tbeard\tcap\tnot a gender pair\n", r"pairs line 3 names 'beard' / 'cap', but line 3 of .* holds "
                                                   r"beard / toque: the word lists changed"),
    ("targets\t9\tca\t\tnot a word\n", "targets line 9 names 'ca', but line 9 of .* holds nothing"),
    ("pairs\tthree\tbeard\ttoque\tx\n", r"cur.tsv:3: expected list"),
    ("words\t3\tbeard\ttoque\tx\n", r"cur.tsv:3: expected list"),
    ("pairs\t3\tbeard\ttoque\t \n", r"cur.tsv:3: no reason given for 'beard'"),
    ("pairs\t3\tbeard\ttoque\tx\npairs\t3\tbeard\ttoque\ty\n", "a line is curated twice"),
])
def test_a_curation_that_does_not_fit_is_one_clear_error(tmp_path, rows, problem):
    data = _lists(tmp_path)
    cur = tmp_path / "cur.tsv"
    cur.write_text(HEADER + rows)
    with pytest.raises(DataFormatError, match=problem):
        load_gender_words(data, cur)


def test_a_curation_without_its_header_is_refused(tmp_path):
    cur = tmp_path / "cur.tsv"
    cur.write_text("list\tline\tword\treason\n")
    with pytest.raises(DataFormatError, match=r"cur.tsv:1: header"):
        load_curation(cur)


def test_the_inventory_counts_the_raw_lists(data_dir):
    counts = loaders.inventory(data_dir)
    assert counts["attribute_pairs"] == 222 and counts["target_words"] == 168
