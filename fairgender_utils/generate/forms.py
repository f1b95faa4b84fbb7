"""Inflected forms of list words: plural and singular of nouns, with possessives matched by tokenisation.

A sentence may use a list word in another number than the list gives it: "terrorists" for *terrorist*,
"wife" for *wives*. Such a form counts (METHOD.md §3.4) and is recorded. The attribute's partner takes the
same inflection (*wives* -> *husbands*, so "wife" -> "husband"). Possessives need no rule: the tokeniser
splits "father's" into father ' s, so the word itself matches. Pronouns are a closed class and are never
inflected. Multi-word entries inflect their last word ("ballet dancers").
"""

from __future__ import annotations

from collections.abc import Iterable

PRONOUNS = frozenset("he she him her his hers himself herself".split())
_IRREGULAR = {"wife": "wives", "child": "children", "hero": "heroes", "goose": "geese"}  # also as a word's end
_IRREGULAR_SG = {v: k for k, v in _IRREGULAR.items()}
_PLURAL_ONLY = frozenset({"brethren", "sistren", "police", "people"})
_VOWELS = set("aeiou")


def _plural_word(w: str) -> str:
    for sg, pl in _IRREGULAR.items():
        if w.endswith(sg):
            return w[:-len(sg)] + pl
    if w.endswith("man") and not w.endswith(("human", "german", "shaman")):
        return w[:-3] + "men"
    if w.endswith("y") and len(w) > 1 and w[-2] not in _VOWELS:
        return w[:-1] + "ies"
    if w.endswith(("iarch", "narch")):  # patriarch, monarch: a hard ch
        return w + "s"
    if w.endswith(("s", "x", "z", "ch", "sh")):
        return w + "es"
    return w + "s"


def _singular_word(w: str) -> str:
    for pl, sg in _IRREGULAR_SG.items():
        if w.endswith(pl):
            return w[:-len(pl)] + sg
    if w.endswith("men"):
        return w[:-3] + "man"
    if w.endswith("ies") and len(w) > 4:
        return w[:-3] + "y"
    if w.endswith(("sses", "xes", "zzes", "ches", "shes")):
        return w[:-2]
    if w.endswith("s") and (w.endswith("eaus") or not w.endswith(("ss", "us", "is"))) and len(w) > 3:
        return w[:-1]
    return w


def _last(word: str, f) -> str:
    head, _, last = word.rpartition(" ")
    out = f(last)
    return f"{head} {out}" if head else out


def inflections(word: str) -> dict[str, str]:
    """``{"exact": word, "plural": ..., "singular": ...}``: the forms of ``word`` that differ from it
    (a plural word has a singular, any word a plural); pronouns and entries with marks have none."""
    w = word.replace("_", " ").lower()
    out = {"exact": w}
    if w in PRONOUNS or w in _PLURAL_ONLY or not w.replace(" ", "").isalpha():
        return out
    sing = _last(w, _singular_word)
    if sing != w and _last(sing, _plural_word) == w:  # w is a plural
        out["singular"] = sing
    else:
        out["plural"] = _last(w, _plural_word)
    return out


def inflect_like(partner: str, word: str, form: str) -> str:
    """``partner`` inflected as ``form`` inflects ``word`` (``form`` must be one of its inflections)."""
    kind = next((k for k, v in inflections(word).items() if v == form.lower()), None)
    if kind is None:
        raise ValueError(f"{form!r} is not a form of {word!r}")
    p = partner.replace("_", " ").lower()
    if kind == "exact" or p in PRONOUNS:
        return p
    return _last(p, _singular_word if kind == "singular" else _plural_word)


def inflected_pairs(pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The pairs followed by their inflected counterparts ((wives, husbands) -> (wife, husband))."""
    pairs = list(pairs)
    out = list(pairs)
    for m, f in pairs:
        if not f.replace("_", "").isalpha():
            continue
        for kind, form in inflections(m).items():
            if kind != "exact":
                out.append((form, inflect_like(f, m, form)))
    return list(dict.fromkeys(out))
