"""Typed loaders for the benchmark files that the data stage puts in ``data/``.

Each loader takes the data folder and returns plain frozen dataclasses. Rows that cannot be used are
never dropped silently: loaders that skip rows return the skipped reasons as a ``Counter``; a row that is
wrong (an unknown label, a missing field, text that is not UTF-8) is a :class:`DataFormatError` naming the
file and the line. Blank lines are ignored. The gender word lists are curated as they load (``wordlists``).
"""

from __future__ import annotations

from pathlib import Path

from fairgender_utils.loaders.benchmarks import (SEAT_GENDER_TESTS, STEREOSET_FILE, CrowsPair, SeatTest, StereoSetItem,
                                                load_crows, load_seat, load_stereoset)
from fairgender_utils.loaders.formats import DataFormatError
from fairgender_utils.loaders.glue import (GLUE_LABELS, GLUE_TASKS, STSB_RANGE, GlueExample, GlueTask, glue_label,
                                          load_glue)
from fairgender_utils.loaders.wordlists import (CURATION_FILE, Dropped, GenderWords, load_curation,
                                               load_gender_words)

__all__ = ["CURATION_FILE", "GLUE_LABELS", "GLUE_TASKS", "SEAT_GENDER_TESTS", "STEREOSET_FILE", "STSB_RANGE",
           "CrowsPair", "DataFormatError", "Dropped", "GenderWords", "GlueExample", "GlueTask", "SeatTest",
           "StereoSetItem", "glue_label", "inventory", "load_crows", "load_curation", "load_gender_words", "load_glue",
           "load_seat", "load_stereoset"]


def inventory(data_dir: str | Path) -> dict[str, int]:
    """Item counts of every benchmark subset the evaluation uses (a check that the files are complete)."""
    words = load_gender_words(data_dir, curation=None)  # the raw lists: a check that the files are complete
    counts = {
        "attribute_pairs": len(words.pairs),
        "target_words": len(words.targets),
        "swap_pairs": len(words.swap_pairs),
        "crows_pairs_all": len(load_crows(data_dir)),
        "crows_pairs_gender": len(load_crows(data_dir, "gender")),
        "stereoset_intrasentence_all": len(load_stereoset(data_dir)),
        "stereoset_intrasentence_gender": len(load_stereoset(data_dir, bias_type="gender")),
        "stereoset_intersentence_gender": len(load_stereoset(data_dir, "intersentence", "gender")),
    }
    for name in SEAT_GENDER_TESTS:
        t = load_seat(data_dir, name)
        counts[f"seat_{name}_sentences"] = len(t.targ1) + len(t.targ2) + len(t.attr1) + len(t.attr2)
    for task in GLUE_TASKS:
        for split in ("train", "dev"):
            counts[f"glue_{task}_{split}"] = len(load_glue(data_dir, task, split)[0])
    return counts
