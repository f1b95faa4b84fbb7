"""Is a female "her" an object ("him") or a determiner ("his")? A rule on the words around it.

"her" is a determiner when a noun phrase follows it ("her book", "her new car", "her family"), and an object
otherwise: at the end of a clause ("I thanked her."), before a preposition, conjunction, article, pronoun or
adverb ("I saw her yesterday.", "They gave her a book.", "I met her at the station."), after "let"
("Let her go."), and before an adjective or a bare verb after a verb of the "make" kind ("He made her
happy.", "They kept her busy.", "It made her laugh."). A noun after such a verb stays a determiner's noun
("She kept her promise."); "She made her dinner." is read as "his dinner", an ambiguity that no rule on
neighbouring words resolves. Adjectives are known by a short list and their suffixes (-ful, -ous, -ive,
-less, -able, -ible, -ed, -ic, -al).
"""

from __future__ import annotations

_PREPOSITIONS = ("to at in on of for with from by about into onto over under through after before during "
                 "around across behind like than as since until till without near off up down out away "
                 "back home along toward towards upon within beside besides between against")
_CONJUNCTIONS = "and or but nor yet so because if when while that whether though although where how why what who"
_DETERMINERS = "a an the this these those some any every each no all both another such"
_PRONOUNS = "it them him me you us everything something anything nothing everyone someone anyone"
_ADVERBS = ("yesterday today tomorrow tonight now then again there here too very once twice often always "
            "never ever soon later already still anyway instead alone not either really")
OBJECT_NEXT = frozenset(" ".join([_PREPOSITIONS, _CONJUNCTIONS, _DETERMINERS, _PRONOUNS, _ADVERBS]).split())
# words in -ly that are not adverbs: after "her" they start a noun phrase
LY_NOT_ADVERB = frozenset("family lovely only early friendly elderly daily lonely ugly silly holy jolly curly lily "
                          "belly ally rally bully assembly supply reply july italy emily sally kelly molly holly "
                          "polly lively costly deadly likely weekly monthly yearly nightly orderly".split())
LET = frozenset("let lets letting".split())
MAKE = frozenset("make makes made making keep keeps kept keeping drive drives drove driving find finds found "
                 "leave leaves left get gets got consider considers considered".split())
# predicative words after a "make" verb: adjectives without a telling suffix, and bare verbs
PREDICATIVE = frozenset("happy sad angry busy crazy sorry hungry sleepy sick ready lucky glad proud mad safe warm "
                        "cold calm quiet free sure late early rich poor strong weak smart wise famous laugh cry "
                        "smile feel think wait stay go come work sing dance leave win lose try stop look "
                        "nervous upset alive awake aware young old happier better worse".split())
_ADJ_SUFFIXES = ("ful", "ous", "ive", "less", "able", "ible", "ic", "al")


def _ends_clause(tok: str | None) -> bool:
    return tok is None or not tok[0].isalnum() or tok.lower() in OBJECT_NEXT


def _predicative(word: str) -> bool:
    w = word.lower()
    return w in PREDICATIVE or w.endswith(_ADJ_SUFFIXES) or (len(w) > 4 and w.endswith("ed"))


def her_is_object(prev: str | None, nxt: str | None) -> bool:
    """True when "her" between ``prev`` and ``nxt`` is an object pronoun (None: no token there)."""
    if _ends_clause(nxt):
        return True
    n = nxt.lower()  # type: ignore[union-attr]
    if n.endswith("ly") and n not in LY_NOT_ADVERB:
        return True
    p = (prev or "").lower()
    return p in LET or (p in MAKE and _predicative(n))
