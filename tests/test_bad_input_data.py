"""Loaders and the data manifest under bad rows: every refusal names the file and the line; blank lines
are tolerated; labels are checked against each task's label set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fairgender_utils import loaders
from fairgender_utils.data import fetch as data
from fairgender_utils.loaders import DataFormatError

CROWS_HEADER = ",sent_more,sent_less,stereo_antistereo,bias_type,annotations,anon_writer,anon_annotators\n"
CROWS_ROW = '{i},"He is a nurse.","She is a nurse.",{d},gender,[],a,[]\n'
STEREO = {"type": "intrasentence", "target": "nurse", "bias_type": "gender", "context": "The nurse is BLANK.",
          "stereotype": "female", "anti-stereotype": "male", "unrelated": "banana"}


def _write(base: Path, rel: str, content: str | bytes) -> Path:
    path = base / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)  # type: ignore[operator]
    return path


# ---------------------------------------------------------------- GLUE


@pytest.mark.parametrize("task, rel, header, row, problem", [
    ("sst2", "SST-2/dev.tsv", "sentence\tlabel", "a film\t7", "label '7' is not a label of sst2 \\(0, 1\\)"),
    ("sst2", "SST-2/dev.tsv", "sentence\tlabel", "a film\tpositive",
     "label 'positive' is not a label of sst2"),
    ("sst2", "SST-2/dev.tsv", "sentence\tlabel", "a film\t1.0", "label '1.0' is not a label of sst2"),
    ("mrpc", "MRPC/dev.tsv", "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String", "2\t1\t2\ta\tb", "label '2'"),
    ("rte", "RTE/dev.tsv", "index\tsentence1\tsentence2\tlabel", "0\ta\tb\t1",
     "label '1' is not a label of rte"),
    ("wnli", "WNLI/dev.tsv", "index\tsentence1\tsentence2\tlabel", "0\ta\tb\t-1", "label '-1'"),
    ("stsb", "STS-B/dev.tsv", "sentence1\tsentence2\tscore", "a\tb\t7.5",
     "score '7.5' is outside \\[0, 5\\]"),
    ("stsb", "STS-B/dev.tsv", "sentence1\tsentence2\tscore", "a\tb\thigh", "score 'high' is not a number"),
    ("stsb", "STS-B/dev.tsv", "sentence1\tsentence2\tscore", "a\tb\tnan", "score 'nan' is outside"),
])
def test_glue_label_outside_the_task_label_set_names_file_and_line(tmp_path, task, rel, header, row, problem):
    good = {"sst2": "fine\t1", "mrpc": "1\t1\t2\ta\tb", "rte": "0\ta\tb\tentailment", "wnli": "0\ta\tb\t0",
            "stsb": "a\tb\t3.2"}[task]
    path = _write(tmp_path, f"glue/{rel}", f"{header}\n{good}\n{row}\n")
    with pytest.raises(DataFormatError, match=f"^{path}:3: {problem}"):
        loaders.load_glue(tmp_path, task, "dev")


def test_glue_cola_without_header_and_blank_trailing_lines(tmp_path):
    _write(tmp_path, "glue/CoLA/in_domain_dev.tsv",
           "src\t1\t\tA fine sentence.\nsrc\t0\t*\tSentence bad a.\n\n\n")
    _write(tmp_path, "glue/CoLA/out_of_domain_dev.tsv", "src\t1\t\tOk.\n\nsrc\t3\t\tBad label.\n")
    with pytest.raises(DataFormatError, match="out_of_domain_dev.tsv:3: label '3' is not a label of cola"):
        loaders.load_glue(tmp_path, "cola", "dev")
    _write(tmp_path, "glue/CoLA/out_of_domain_dev.tsv", "src\t1\t\tOk.\n  \n")
    examples, skipped = loaders.load_glue(tmp_path, "cola", "dev")
    assert [e.label for e in examples] == [1.0, 0.0, 1.0] and not skipped


def test_glue_missing_text_or_label_is_still_counted(tmp_path):
    _write(tmp_path, "glue/SST-2/dev.tsv", "sentence\tlabel\ngood film\t1\nno label\t\n\t0\n\n")
    examples, skipped = loaders.load_glue(tmp_path, "sst2", "dev")
    assert [e.text_a for e in examples] == ["good film"]
    assert skipped == {"missing label": 1, "missing text": 1}


def test_glue_missing_column_and_bad_bytes(tmp_path):
    _write(tmp_path, "glue/SST-2/dev.tsv", "sentence\tlabels\nfilm\t1\n")
    with pytest.raises(DataFormatError, match="dev.tsv:1: no column 'label' in the header"):
        loaders.load_glue(tmp_path, "sst2", "dev")
    _write(tmp_path, "glue/SST-2/dev.tsv", b"sentence\tlabel\nfilm\t1\nfi\xfflm\t0\n")
    with pytest.raises(DataFormatError, match="dev.tsv:3: not utf-8-sig text"):
        loaders.load_glue(tmp_path, "sst2", "dev")


# ---------------------------------------------------------------- CrowS-Pairs


@pytest.mark.parametrize("row, problem", [
    (CROWS_ROW.format(i="", d="stereo"), "index '' is not a row number"),
    (CROWS_ROW.format(i="x1", d="stereo"), "index 'x1' is not a row number"),
    (CROWS_ROW.format(i="3", d="pro"), "stereo_antistereo is 'pro', not 'stereo' or 'antistereo'"),
    ('4,"","She is.",stereo,gender,[],a,[]\n', "'sent_more' is empty"),
    ('5,"He is.","She is.",stereo,,[],a,[]\n', "'bias_type' is empty"),
    ("6,only two\n", "'sent_less' is empty"),
])
def test_crows_bad_row_names_file_and_line(tmp_path, row, problem):
    path = _write(tmp_path, "crows_pairs/crows_pairs_anonymized.csv",
                  CROWS_HEADER + CROWS_ROW.format(i=0, d="stereo") + row)
    with pytest.raises(DataFormatError, match=f"^{path}:3: {problem}"):
        loaders.load_crows(tmp_path)


def test_crows_blank_lines_and_multiline_rows(tmp_path):
    multi = '1,"He is\na nurse.","She is\na nurse.",antistereo,gender,[],a,[]\n'
    _write(tmp_path, "crows_pairs/crows_pairs_anonymized.csv",
           CROWS_HEADER + CROWS_ROW.format(i=0, d="stereo") + multi + ",,,,,,,\n\n")
    pairs = loaders.load_crows(tmp_path, "gender")
    assert [(p.index, p.direction) for p in pairs] == [(0, "stereo"), (1, "antistereo")]
    _write(tmp_path, "crows_pairs/crows_pairs_anonymized.csv",
           CROWS_HEADER.replace("bias_type", "bias") + "\n")
    with pytest.raises(DataFormatError, match=":1: no column 'bias_type' in the header"):
        loaders.load_crows(tmp_path)


# ---------------------------------------------------------------- StereoSet


def _stereo_file(tmp_path: Path, lines: list[str] | bytes) -> Path:
    content = lines if isinstance(lines, bytes) else "\n".join(lines)
    return _write(tmp_path, loaders.STEREOSET_FILE, content)


def test_stereoset_trailing_blank_lines_are_tolerated(tmp_path):
    _stereo_file(tmp_path, [json.dumps(STEREO), json.dumps({**STEREO, "type": "intersentence"}), "", "", ""])
    assert len(loaders.load_stereoset(tmp_path, "intrasentence", "gender")) == 1
    assert len(loaders.load_stereoset(tmp_path, "intersentence")) == 1


@pytest.mark.parametrize("line, problem", [
    ("[1, 2]", "a JSON list"),
    ('{"type": "intrasentence"', "malformed StereoSet row"),
    (json.dumps({k: v for k, v in STEREO.items() if k != "unrelated"}), "'unrelated' is null, not a text"),
    (json.dumps({**STEREO, "stereotype": 5}), "'stereotype' is 5"),
    (json.dumps({**STEREO, "context": ""}), "'context' is \"\""),
    (json.dumps({**STEREO, "type": "intrasentences"}), "unknown StereoSet type 'intrasentences'"),
])
def test_stereoset_bad_row_names_file_and_line(tmp_path, line, problem):
    path = _stereo_file(tmp_path, [json.dumps(STEREO), "", line])
    with pytest.raises(DataFormatError, match=f"^{path}:3: .*{problem}"):
        loaders.load_stereoset(tmp_path)


def test_stereoset_bytes_that_are_not_utf8(tmp_path):
    path = _stereo_file(tmp_path, json.dumps(STEREO).encode() + b"\n" + b'{"type": "\xe9"}\n')
    with pytest.raises(DataFormatError, match=f"^{path}:2: not utf-8 text"):
        loaders.load_stereoset(tmp_path)


# ---------------------------------------------------------------- SEAT and word lists


def _seat(**parts) -> str:
    base = {k: {"category": k.upper(), "examples": [f"This is {k}."]}
            for k in ("targ1", "targ2", "attr1", "attr2")}
    return json.dumps({**base, **parts}, indent=1)


@pytest.mark.parametrize("content, problem", [
    ("{\n  \"targ1\": ,\n}", ":2: not valid JSON"),
    ("[]", "missing key 'targ1'"),
    (_seat(attr2=None), "missing key 'attr2'"),
    (_seat(attr1={"category": "X"}), "'attr1.examples' is not a non-empty list of sentences"),
    (_seat(attr1={"category": "X", "examples": []}), "'attr1.examples' is not a non-empty list"),
    (_seat(targ2={"category": "X", "examples": ["ok", 3]}), "'targ2.examples' is not"),
    (_seat(targ2={"examples": ["ok"]}), "'targ2.category' is null"),
])
def test_seat_bad_file_names_file_and_key(tmp_path, content, problem):
    path = _write(tmp_path, "seat/sent-weat6.jsonl", content)
    where = problem if problem.startswith(":") else ": " + problem
    with pytest.raises(DataFormatError, match=f"^{path}{where}"):
        loaders.load_seat(tmp_path, "sent-weat6")
    if "missing" in problem:
        return
    _write(tmp_path, "seat/sent-weat6.jsonl", _seat())
    assert loaders.load_seat(tmp_path, "sent-weat6").categories == ("TARG1", "TARG2", "ATTR1", "ATTR2")


def _word_lists(tmp_path: Path, bias_bench: str = '{"gender": [["actor", "actress"]]}',
                male: bytes = b"he\nking\n\n") -> None:
    _write(tmp_path, "gender_word_lists/context_debias/male.txt", male)
    _write(tmp_path, "gender_word_lists/context_debias/female.txt", "she\nqueen\n")
    _write(tmp_path, "gender_word_lists/context_debias/stereotype.txt", "nurse\n\n")
    _write(tmp_path, "gender_word_lists/bias_bench/bias_attribute_words.json", bias_bench)


@pytest.mark.parametrize("bias_bench, problem", [
    ('{"race": []}', "no list under the key 'gender'"),
    ('{"gender": [["actor"]]}', "gender\\[0\\] is \\[\"actor\"\\], not a pair of words"),
    ('{"gender": [["actor", "actress"], ["a", 1]]}', "gender\\[1\\]"),
    ('{"gender": [["actor", "actress"],]}', ":1: not valid JSON"),
])
def test_word_lists_bad_bias_bench_file(tmp_path, bias_bench, problem):
    _word_lists(tmp_path, bias_bench)
    with pytest.raises(DataFormatError, match=f"bias_attribute_words.json:? ?{problem}"):
        loaders.load_gender_words(tmp_path, curation=None)


def test_word_lists_blank_lines_and_bad_bytes(tmp_path):
    _word_lists(tmp_path)
    words = loaders.load_gender_words(tmp_path, curation=None)
    assert words.pairs == (("he", "she"), ("king", "queen")) and words.targets == ("nurse",)
    _word_lists(tmp_path, male=b"he\nk\xffing\n")
    with pytest.raises(DataFormatError, match="male.txt:2: not utf-8 text"):
        loaders.load_gender_words(tmp_path, curation=None)


# ---------------------------------------------------------------- the data manifest


@pytest.mark.parametrize("row, problem", [
    ("seat/x.jsonl\tten\t" + "a" * 64 + "\thttps://h/x", "bytes 'ten' is not a size"),
    ("seat/x.jsonl\t10\tabc\thttps://h/x", "sha256 'abc' is not 64 hex digits"),
    ("../x.jsonl\t10\t" + "a" * 64 + "\thttps://h/x", "path '../x.jsonl' is not a file of one of the groups"),
    ("seat/x.jsonl\t10\t" + "a" * 64 + "\tftp:/x", "url 'ftp:/x' is neither"),
    ("seat/x.jsonl\t10\t" + "a" * 64, "url '' is neither"),
])
def test_manifest_bad_row_names_its_line(tmp_path, row, problem):
    good = "seat/y.jsonl\t10\t" + "b" * 64 + "\tpypi://pkg==1/a/y.jsonl"
    path = _write(tmp_path, "manifest.tsv", f"path\tbytes\tsha256\turl\n{good}\n{row}\n\n")
    with pytest.raises(data.DataError, match=f"^{path}:3: {problem}"):
        data.read_manifest(path)
    assert len(data.read_manifest(_write(tmp_path, "ok.tsv", f"path\tbytes\tsha256\turl\n{good}\n\n"))) == 1
