"""Word-level alignment, pair validation and the deterministic gender swap."""

from __future__ import annotations

import pytest

from fairgender_utils.generate import counterfactual as cf

SWAP = cf.build_swap_list(
    [
        ("he", "she"),
        ("him", "her"),
        ("his", "her"),
        ("his", "hers"),
        ("himself", "herself"),
        ("mr.", "mrs."),
        ("father", "mother"),
        ("fathers", "mothers"),
        ("king", "queen"),
        ("son", "daughter"),
        ("waiter", "waitress"),
        ("best man", "maid of honor"),
        ("male_host", "hostess"),
    ]
)


def valid(s_m, s_f, start="m", m="father", f="mother", t="doctor"):
    return cf.validate_pair(s_m, s_f, start, m, f, t, SWAP, min_words=3, max_words=20)


def test_tokens_split_words_and_punctuation():
    assert cf.tokens("My father's car, isn't it?") == [
        "My",
        "father",
        "'",
        "s",
        "car",
        ",",
        "isn",
        "'",
        "t",
        "it",
        "?",
    ]
    assert cf.phrase("mr.") == ("mr", ".")
    assert cf.phrase("male_host") == ("male", "host")
    assert (
        cf.join_tokens(["mrs", "."]) == "mrs." and cf.join_tokens(["maid", "of", "honor"]) == "maid of honor"
    )


@pytest.mark.parametrize(
    "s_m, s_f",
    [
        ("My father is a doctor.", "My mother is a doctor."),
        ("He said his son is a doctor.", "She said her daughter is a doctor."),
        ("The doctor thanked him.", "The doctor thanked her."),
        ("The doctor said the book is his.", "The doctor said the book is hers."),
        ("My father's friend is a doctor.", "My mother's friend is a doctor."),
        ("Mr. Smith is a doctor.", "Mrs. Smith is a doctor."),
        ("The best man was a doctor.", "The maid of honor was a doctor."),  # multi-word attribute
        ("The male host is a doctor.", "The hostess is a doctor."),  # list entry written with an underscore
        ("HE IS A DOCTOR.", "SHE IS A DOCTOR."),
    ],
)
def test_alignment_accepts_gender_pairs_only(s_m, s_f):
    assert cf.align(s_m, s_f, SWAP) == cf.OK


@pytest.mark.parametrize(
    "s_m, s_f, reason, where",
    [
        ("My father is a doctor.", "My mother is a surgeon.", "alignment", "'doctor' vs 'surgeon'"),
        ("My father is a doctor.", "My mother is a doctor", "alignment", "'.' vs '∅'"),  # punctuation
        ("My father is a doctor.", "My mother is a doctor!", "alignment", "'.' vs '!'"),
        ("He is a doctor.", "she is a doctor.", "case", "'He' vs 'she'"),  # case of the swapped word
        ("My father is a Doctor.", "My mother is a doctor.", "case", "'Doctor' vs 'doctor'"),
        (
            "My mother is a doctor.",
            "My father is a doctor.",
            "alignment",
            "'mother' vs 'father'",
        ),  # wrong direction
        ("My father is a doctor.", "My father is a doctor.", "alignment", "do not differ"),
        ("He is a doctor.", "She is a good doctor.", "alignment", "'∅' vs 'good'"),
    ],
)
def test_alignment_rejects_other_differences(s_m, s_f, reason, where):
    c = cf.align(s_m, s_f, SWAP)
    assert not c.ok and c.reason == reason and where in c.detail


def test_validate_pair_passes_a_clean_pair():
    assert valid("My father is a doctor.", "My mother is a doctor.").ok
    assert valid("My father is a doctor.", "My mother is a doctor.", start="f").ok


@pytest.mark.parametrize(
    "s_m, s_f, start, reason",
    [
        (
            "My father is a doctor.",
            "My mother is a nurse.",
            "m",
            "step2_target_missing",
        ),  # target only on one side
        ("My father is a nurse.", "My mother is a doctor.", "f", "step2_target_missing"),
        ("My father is a nurse.", "My mother is a nurse.", "m", "step1_target_missing"),
        ("My fathers are doctors.", "My mothers are doctors.", "m", "step1_target_missing"),  # word boundary
        ("My dad is a doctor.", "My mom is a doctor.", "m", "step1_attribute_missing"),
        (
            "My father and her son met a doctor.",
            "My mother and her daughter met a doctor.",
            "m",
            "step1_gender_mixed",
        ),
        ("My father is a doctor.", "My mother and his son are a doctor.", "m", "step2_gender_mixed"),
        ("Father doctor.", "Mother doctor.", "m", "step1_length"),
        ("", "My mother is a doctor.", "m", "step1_empty"),
        ("My father is a doctor.", "   ", "m", "step2_empty"),
        ("My father is a doctor.", "My mother is the doctor.", "m", "step2_alignment"),
    ],
)
def test_validate_pair_failures_name_the_step(s_m, s_f, start, reason):
    c = valid(s_m, s_f, start=start)
    assert not c.ok and c.reason == reason


@pytest.mark.parametrize("text, ok", [
    ("My father is a doctor.", True),
    ('My father said: "I am a doctor!"', True),
    ("Is my father a doctor?", True),
    ("My father is a doctor who", False),  # cut off by max_tokens
    ("My father is a doctor,", False),
])
def test_a_sentence_must_be_finished(text, ok):
    c = cf.check_sentence(text, "m", "father", "doctor", SWAP, 3, 20)
    assert c.ok is ok and (ok or c.reason == "incomplete")
    assert cf.check_sentence(text, "m", "father", "doctor", SWAP, 3, 20, complete=False).ok


def test_target_is_case_insensitive_and_a_gendered_target_is_held_fixed():
    assert valid("My father is a Doctor.", "My mother is a Doctor.").ok
    # 'waiter' is a male word of the swap list, but as the target it stays the same on both sides
    assert cf.validate_pair(
        "My father is a waiter.", "My mother is a waiter.", "m", "father", "mother", "waiter", SWAP
    ).ok


@pytest.mark.parametrize(
    "text, to, expected",
    [
        ("He gave his book to the doctor.", "f", "She gave her book to the doctor."),
        ("The book is his.", "f", "The book is hers."),
        ("Mr. Smith told him about himself.", "f", "Mrs. Smith told her about herself."),
        ("My father's best man is a doctor.", "f", "My mother's maid of honor is a doctor."),
        ("She gave her book to the doctor.", "m", "He gave his book to the doctor."),
        ("I saw her at the clinic.", "m", "I saw him at the clinic."),
        ("Her daughter gave her a book.", "m", "His son gave him a book."),
        ("THE QUEEN IS A DOCTOR.", "m", "THE KING IS A DOCTOR."),
    ],
)
def test_swap_gender_keeps_case_and_spacing(text, to, expected):
    assert cf.swap_gender(text, to, "father", "mother", "doctor", SWAP) == expected


def test_swap_then_validate_round_trip():
    s_m = "He said his father is a doctor."
    s_f = cf.swap_gender(s_m, "f", "father", "mother", "doctor", SWAP)
    assert valid(s_m, s_f).ok


def test_gender_mapping_lists_each_word_once_in_order():
    mapping = cf.gender_mapping(
        "He said his son and his father are doctors.", "f", "father", "mother", "doctor", SWAP
    )
    assert mapping == [("He", "She"), ("his", "her"), ("son", "daughter"), ("father", "mother")]


def test_cell_pair_is_preferred_for_an_ambiguous_word():
    swap = cf.build_swap_list([("husband", "wife"), ("hubby", "wife")])
    assert cf.swap_gender("My wife is kind.", "m", "hubby", "wife", "kind", swap) == "My hubby is kind."
    assert cf.swap_gender("My wife is kind.", "m", "husband", "wife", "kind", swap) == "My husband is kind."


def test_a_word_on_both_sides_of_the_list_is_no_evidence():
    swap = cf.build_swap_list([("he", "she"), ("host", "hostess"), ("hostess", "host")])
    assert ("host",) not in swap.male and ("host",) not in swap.female
    assert ("he",) in swap.male


def test_real_word_lists(data_dir):
    from fairgender_utils.loaders import load_gender_words

    words = load_gender_words(data_dir)
    swap = cf.build_swap_list(words.swap_pairs)
    assert not swap.male & swap.female
    for m, f in words.pairs:  # every attribute pair swaps to its partner ("male_x" is written "male x")
        m, f = m.replace("_", " "), f.replace("_", " ")
        s_m = f"The {m} is a doctor."
        assert cf.swap_gender(s_m, "f", m, f, "doctor", swap) == f"The {f} is a doctor."
        assert cf.validate_pair(s_m, f"The {f} is a doctor.", "m", m, f, "doctor", swap).ok


# ---------------------------------------------------------------- her: object ("him") or determiner ("his")

HER_OBJECT = [
    "I saw her yesterday.", "He made her happy.", "We told her about the job.", "They gave her a book.",
    "I will call her tomorrow.", "The doctor asked her to wait.", "Let her go.", "I met her at the station.",
    "Everyone likes her.", "He told her that the nurse was late.", "We visited her quickly.",
    "They kept her busy.", "The teacher thanked her again.", "Nobody saw her there.",
    "The nurse helped her, and then left.", "The news made her laugh.", "The pilot found her attractive.",
]
HER_POSSESSIVE = [
    "She gave her book to the doctor.", "Her mother is a nurse.", "I borrowed her car.", "Her new job is hard.",
    "She loves her family.", "I saw her book on the table.", "She lives in her own house.",
    "We admired her lovely garden.", "That is her best friend.", "She lost her keys.",
    "Her early work was famous.", "He read her last letter.", "The pilot found her keys in the car.",
    "She kept her promise.", "She made her decision.",
]


@pytest.mark.parametrize("text", HER_OBJECT)
def test_her_as_an_object_becomes_him(text):
    import re

    assert cf.swap_gender(text, "m", "father", "mother", "doctor", SWAP) == re.sub(r"\bher\b", "him", text)


@pytest.mark.parametrize("text", HER_POSSESSIVE)
def test_her_as_a_determiner_becomes_his(text):
    out = cf.swap_gender(text, "m", "father", "mother", "doctor", SWAP)
    assert {"him", "Him"}.isdisjoint(cf.tokens(out)) and ("his" in cf.tokens(out) or "His" in cf.tokens(out))


def test_her_rule_on_the_issue_examples_and_in_the_llm_mapping():
    for text, expected in [("I saw her yesterday.", "I saw him yesterday."), ("He made her happy.", "He made him happy."),
                           ("Her book is on her desk.", "His book is on his desk.")]:
        assert cf.swap_gender(text, "m", "father", "mother", "doctor", SWAP) == expected
    mapping = cf.gender_mapping("She saw her mother and thanked her.", "m", "father", "mother", "doctor", SWAP)
    assert mapping == [("She", "He"), ("her", "his"), ("mother", "father"), ("her", "him")]
    # the cell's own pair (him / her) does not override the rule: a determiner stays "his"
    assert cf.swap_gender("Her son met her.", "m", "him", "her", "doctor", SWAP) == "His son met him."


# ---------------------------------------------------------------- inflected forms

from fairgender_utils.generate.forms import inflect_like, inflected_pairs, inflections  # noqa: E402


@pytest.mark.parametrize("word, forms", [
    ("doctor", {"exact": "doctor", "plural": "doctors"}), ("boss", {"exact": "boss", "plural": "bosses"}),
    ("secretary", {"exact": "secretary", "plural": "secretaries"}), ("wives", {"exact": "wives", "singular": "wife"}),
    ("housewives", {"exact": "housewives", "singular": "housewife"}), ("men", {"exact": "men", "singular": "man"}),
    ("policeman", {"exact": "policeman", "plural": "policemen"}), ("patriarch", {"exact": "patriarch",
                                                                                  "plural": "patriarchs"}),
    ("duchesses", {"exact": "duchesses", "singular": "duchess"}), ("princess", {"exact": "princess",
                                                                               "plural": "princesses"}),
    ("hero", {"exact": "hero", "plural": "heroes"}), ("ballet_dancer", {"exact": "ballet dancer",
                                                                       "plural": "ballet dancers"}),
    ("her", {"exact": "her"}), ("himself", {"exact": "himself"}), ("mr.", {"exact": "mr."}),
    ("brethren", {"exact": "brethren"}),
])
def test_inflections(word, forms):
    assert inflections(word) == forms


def test_the_partner_takes_the_same_form_and_the_lists_agree():
    assert inflect_like("husbands", "wives", "wife") == "husband"
    assert inflect_like("actress", "actor", "actors") == "actresses"
    assert inflect_like("her", "his", "his") == "her"
    with pytest.raises(ValueError, match="not a form"):
        inflect_like("mother", "father", "dad")
    assert ("wife", "husband") not in inflected_pairs([("husbands", "wives")])
    assert ("husband", "wife") in inflected_pairs([("husbands", "wives")])


def test_inflected_forms_agree_with_the_real_lists(data_dir):
    """Wherever the curated attribute list holds both numbers of a pair, the rule derives the one from the
    other (fathers / mothers from father / mother, and back)."""
    from fairgender_utils.loaders import load_gender_words

    pairs = set(load_gender_words(data_dir).pairs)
    females = {f for _, f in pairs}
    checked = 0
    for m, f in pairs:
        for kind, form in inflections(m).items():
            partner = inflect_like(f, m, form)
            irregular = (form, partner) == ("manservants", "maids")  # the list pairs maids with "menservants"
            if kind != "exact" and partner in females and any(pm == form for pm, _ in pairs) and not irregular:
                assert (form, partner) in pairs, (m, f, form, partner)  # e.g. (bachelors, spinsters)
                checked += 1
    assert checked >= 60


def test_a_pair_in_another_number_is_valid_with_inflect_only():
    swap = cf.build_swap_list([("father", "mother"), *inflected_pairs([("fathers", "mothers")])])
    s_m, s_f = "My father is a doctor.", "My mother is a doctor."
    c = cf.validate_pair(s_m, s_f, "m", "fathers", "mothers", "doctors", swap, 3, 20, inflect=True)
    assert c.ok and c.forms == ("father", "mother", "doctor")
    assert cf.validate_pair(s_m, s_f, "m", "fathers", "mothers", "doctors", swap, 3, 20).reason == "step1_target_missing"
    # the second sentence must use the partner in the same number
    bad = cf.validate_pair(s_m, "My mothers is a doctor.", "m", "fathers", "mothers", "doctor", swap, 3, 20, inflect=True)
    assert bad.reason == "step2_attribute_missing"
    possessive = cf.validate_pair("The nurse's father is kind.", "The nurse's mother is kind.", "m", "father",
                                  "mother", "nurse", swap, 3, 20, inflect=True)
    assert possessive.ok and possessive.forms == ("father", "mother", "nurse")
