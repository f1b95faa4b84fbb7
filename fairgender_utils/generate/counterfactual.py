"""Counterfactual pairs: word-level alignment, validation and deterministic gender swap.

A pair (s_m, s_f) is valid when both sentences contain the target word, s_m holds male and no female
gendered words, s_f the reverse, and a word-level alignment of the two differs only where the two
sides form a gender pair from the swap list (METHOD.md §3.4). Words are compared case-insensitively
for the alignment, but a difference in case alone ("Doctor" vs "doctor", "He" vs "she") is rejected.
The swap list may hold multi-word entries; an underscore in a list entry stands for a space. With
``inflect``, a plural or singular form of the target and attribute word counts (``forms``), and the
partner must then take the same form.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher

from fairgender_utils.generate.forms import inflect_like, inflections
from fairgender_utils.generate.her import her_is_object

TOKEN_RE = re.compile(r"\w+|[^\w\s]")
END_RE = re.compile(r"[.!?][\"'”’)\]]*$")  # a finished sentence: terminal mark, then closing quotes

Phrase = tuple[str, ...]


def tokens(text: str) -> list[str]:
    """Words (``\\w+``) and single punctuation marks, in order; ``"father's"`` -> father ' s."""
    return TOKEN_RE.findall(text)


def phrase(word: str) -> Phrase:
    """A swap-list entry as a lower-case token tuple: ``"mr."`` -> (mr, .), ``"a_b"`` -> (a, b)."""
    return tuple(t.lower() for t in tokens(word.replace("_", " ")))


def _strip_punct(p: Phrase) -> Phrase:
    while p and not p[-1][0].isalnum() and p[-1][0] != "_":
        p = p[:-1]
    return p


@dataclass(frozen=True)
class SwapList:
    """Gender pairs as token phrases, with one preferred counterpart per word for rewriting."""

    pairs: frozenset[tuple[Phrase, Phrase]]
    male: frozenset[Phrase]
    female: frozenset[Phrase]
    m2f: dict[Phrase, Phrase]
    f2m: dict[Phrase, Phrase]
    max_len: int


def build_swap_list(swap_pairs: Iterable[tuple[str, str]]) -> SwapList:
    """Index ``(male, female)`` word pairs; the first listed counterpart of a word is the preferred one."""
    pairs: list[tuple[Phrase, Phrase]] = []
    for m, f in swap_pairs:
        pm, pf = phrase(m), phrase(f)
        if pm and pf and pm != pf:
            pairs.append((pm, pf))
            bm, bf = _strip_punct(pm), _strip_punct(pf)  # "mr." / "mrs.": the words alone pair too
            if (bm, bf) != (pm, pf) and bm and bf and bm != bf:
                pairs.append((bm, bf))
    all_m, all_f = {p for p, _ in pairs}, {p for _, p in pairs}
    male, female = frozenset(all_m - all_f), frozenset(all_f - all_m)  # a word on both sides is no evidence
    m2f: dict[Phrase, Phrase] = {}
    f2m: dict[Phrase, Phrase] = {}
    for pm, pf in pairs:
        m2f.setdefault(pm, pf)
        f2m.setdefault(pf, pm)
    longest = max((len(p) for pair in pairs for p in pair), default=1)
    return SwapList(frozenset(pairs), male, female, m2f, f2m, longest)


def find_phrases(toks: Sequence[str], vocab: frozenset[Phrase], max_len: int,
                 ignore: frozenset[Phrase] = frozenset()) -> list[tuple[int, Phrase]]:
    """(start index, phrase) of every vocabulary phrase in ``toks`` (longest match first, no overlaps)."""
    low = [t.lower() for t in toks]
    found, i = [], 0
    while i < len(low):
        for n in range(min(max_len, len(low) - i), 0, -1):
            cand = tuple(low[i:i + n])
            if cand in vocab and cand not in ignore:
                found.append((i, cand))
                i += n
                break
        else:
            i += 1
    return found


def contains_word(text: str, word: str) -> bool:
    """``word`` (any phrase) occurs in ``text`` on word boundaries, case-insensitively."""
    p = phrase(word)
    low = [t.lower() for t in tokens(text)]
    return any(tuple(low[i:i + len(p)]) == p for i in range(len(low) - len(p) + 1)) if p else False


def find_form(text: str, word: str, inflect: bool = False) -> str | None:
    """The form of ``word`` that ``text`` uses: the word itself, else (``inflect``) its plural or singular;
    None when neither occurs. Possessives match through tokenisation ("nurse's" holds "nurse")."""
    candidates = inflections(word).values() if inflect else [word.replace("_", " ").lower()]
    return next((f for f in candidates if contains_word(text, f)), None)


def _shape(tok: str) -> str:
    if tok[:1].isupper():
        return "upper" if tok.isupper() and len(tok) > 1 else "title"
    return "lower"


@dataclass(frozen=True)
class Check:
    """Outcome of a validation: ``reason`` is a short code ("" when ok), ``detail`` says where; ``forms``
    the word forms found (sentence: attribute, target; pair: attribute in s_m, in s_f, target)."""

    ok: bool
    reason: str = ""
    detail: str = ""
    forms: tuple[str, ...] = ()


OK = Check(True)


def align(s_m: str, s_f: str, swap: SwapList) -> Check:
    """Accept iff a word-level alignment differs only at gender pairs (male in s_m, female in s_f)."""
    a, b = tokens(s_m), tokens(s_f)
    al, bl = [t.lower() for t in a], [t.lower() for t in b]
    n_pairs = 0
    for op, i1, i2, j1, j2 in SequenceMatcher(None, al, bl, autojunk=False).get_opcodes():
        if op == "equal":
            for x, y in zip(a[i1:i2], b[j1:j2], strict=True):
                if x != y:
                    return Check(False, "case", f"{x!r} vs {y!r}")
            continue
        cm, cf = tuple(al[i1:i2]), tuple(bl[j1:j2])
        if (cm, cf) in swap.pairs:
            units = [(a[i1], b[j1])]
        elif op == "replace" and i2 - i1 == j2 - j1 and all(((x,), (y,)) in swap.pairs
                                                         for x, y in zip(cm, cf, strict=True)):
            units = list(zip(a[i1:i2], b[j1:j2], strict=True))
        else:
            left, right = " ".join(a[i1:i2]) or "∅", " ".join(b[j1:j2]) or "∅"
            return Check(False, "alignment", f"{left!r} vs {right!r} at token {i1 + 1}")
        for x, y in units:
            if _shape(x) != _shape(y):
                return Check(False, "case", f"{x!r} vs {y!r}")
        n_pairs += len(units)
    if n_pairs == 0:
        return Check(False, "alignment", "the two sentences do not differ")
    return OK


def check_sentence(text: str, side: str, attribute: str, target: str, swap: SwapList,
                   min_words: int, max_words: int, complete: bool = True, inflect: bool = False) -> Check:
    """Checks on one sentence: not empty, length, finished (``complete``: ends in . ! or ?), target and
    attribute word present (``inflect``: or a plural / singular form), one gender only."""
    if not text.strip():
        return Check(False, "empty", "no text")
    toks = tokens(text)
    n_words = sum(1 for t in toks if t[0].isalnum() or t[0] == "_")
    if not min_words <= n_words <= max_words:
        return Check(False, "length", f"{n_words} words (bounds {min_words}-{max_words})")
    if complete and not END_RE.search(text.strip()):
        return Check(False, "incomplete", f"the {side} sentence does not end in . ! or ? (cut off?)")
    t_form = find_form(text, target, inflect)
    if t_form is None:
        return Check(False, "target_missing", f"no {target!r} in the {side} sentence")
    a_form = find_form(text, attribute, inflect)
    if a_form is None:
        return Check(False, "attribute_missing", f"no {attribute!r} in the {side} sentence")
    other = swap.female if side == "m" else swap.male
    hits = find_phrases(toks, other, swap.max_len, ignore=frozenset({phrase(t_form)}))
    if hits:
        return Check(False, "gender_mixed", f"{' '.join(hits[0][1])!r} in the {side} sentence")
    return Check(True, forms=(a_form, t_form))


def validate_pair(s_m: str, s_f: str, start: str, male_word: str, female_word: str, target: str,
                  swap: SwapList, min_words: int = 4, max_words: int = 40, complete: bool = True,
                  inflect: bool = False) -> Check:
    """All structural checks of a pair; the reason is prefixed by the step that wrote the failing text.
    The second sentence must use the partner of the first one's attribute form and the same target form.
    ``forms`` of a valid pair: (attribute form in s_m, in s_f, target form)."""
    first, second = ("m", "f") if start == "m" else ("f", "m")
    texts = {"m": s_m, "f": s_f}
    words = {"m": male_word, "f": female_word}
    c1 = check_sentence(texts[first], first, words[first], target, swap, min_words, max_words, complete, inflect)
    if not c1.ok:
        return Check(False, f"step1_{c1.reason}", c1.detail)
    a_form, t_form = c1.forms
    forms = {first: a_form, second: inflect_like(words[second], words[first], a_form)}
    c2 = check_sentence(texts[second], second, forms[second], t_form, swap, min_words, max_words, complete)
    if not c2.ok:
        return Check(False, f"step2_{c2.reason}", c2.detail)
    c = align(s_m, s_f, swap)
    return Check(True, forms=(forms["m"], forms["f"], t_form)) if c.ok else Check(False, f"step2_{c.reason}",
                                                                                   c.detail)


def _counterpart(found: Phrase, to: str, swap: SwapList, prev: str | None, nxt: str | None,
                 cell_pair: tuple[Phrase, Phrase]) -> Phrase:
    if to == "f":
        if found == cell_pair[0]:
            return cell_pair[1]
        if found == ("his",):  # possessive pronoun at the end of a clause: "hers"
            return ("hers",) if nxt is None or not nxt[0].isalnum() else ("her",)
        return swap.m2f[found]
    if found == ("her",):  # object ("him") or determiner ("his"), whatever the cell's pair
        return ("him",) if her_is_object(prev, nxt) else ("his",)
    if found == cell_pair[1]:
        return cell_pair[0]
    return swap.f2m[found]


def _context(toks: Sequence[str], i: int, n: int) -> tuple[str | None, str | None]:
    """The tokens before and after the phrase at ``i`` of length ``n`` (None past the ends)."""
    return toks[i - 1] if i > 0 else None, toks[i + n] if i + n < len(toks) else None


def join_tokens(words: Sequence[str]) -> str:
    """Tokens back to text: a space only between two word tokens ("mrs ." -> "mrs.", "ma ' am" -> "ma'am")."""
    out = ""
    for w in words:
        out += (" " if out and out[-1].isalnum() and w[:1].isalnum() else "") + w
    return out


def _cased(words: Phrase, like: str) -> str:
    text = join_tokens(words)
    shape = _shape(like)
    return text.upper() if shape == "upper" else text[:1].upper() + text[1:] if shape == "title" else text


def gender_mapping(text: str, to: str, male_word: str, female_word: str, target: str,
                   swap: SwapList) -> list[tuple[str, str]]:
    """The (word, counterpart) pairs to swap in ``text`` towards gender ``to`` ('m' or 'f'), in order.
    ``male_word`` / ``female_word`` (the cell's pair, in the forms the sentence uses) are preferred
    counterparts; ``target`` (its form) is held fixed."""
    cell = (phrase(male_word), phrase(female_word))
    vocab = swap.male if to == "f" else swap.female
    toks = tokens(text)
    out: list[tuple[str, str]] = []
    for i, found in find_phrases(toks, vocab, swap.max_len, ignore=frozenset({phrase(target)})):
        new = _cased(_counterpart(found, to, swap, *_context(toks, i, len(found)), cell), toks[i])
        pair = (join_tokens(toks[i:i + len(found)]), new)
        if pair not in out:
            out.append(pair)
    return out


def swap_gender(text: str, to: str, male_word: str, female_word: str, target: str, swap: SwapList) -> str:
    """Deterministic counterfactual: every gendered phrase replaced by its counterpart, case kept."""
    cell = (phrase(male_word), phrase(female_word))
    vocab = swap.male if to == "f" else swap.female
    spans = [(m.start(), m.end()) for m in TOKEN_RE.finditer(text)]
    toks = [text[s:e] for s, e in spans]
    out, pos = [], 0
    for i, found in find_phrases(toks, vocab, swap.max_len, ignore=frozenset({phrase(target)})):
        j = i + len(found)
        out.append(text[pos:spans[i][0]])
        out.append(_cased(_counterpart(found, to, swap, *_context(toks, i, len(found)), cell), toks[i]))
        pos = spans[j - 1][1]
    out.append(text[pos:])
    return "".join(out)
