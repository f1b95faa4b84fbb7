"""Stage ``prompts``: Auto-Debias's prompt search (``notebooks/02_search_prompts.ipynb``, ``params/prompts.yaml``,
``data/prompts``, ``results/prompts``). ``config`` holds its parameters; ``search`` the vocabulary, the
batched slot scoring and the beam search; ``figures`` the plot. The ``autodebias`` training variant
fine-tunes on the prompts found (``fairgender_utils/train/autodebias.py``)."""
