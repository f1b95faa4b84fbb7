"""Stage ``generate``: two-step LLM generation of attribute-balanced sentence pairs
(``notebooks/01_generate.ipynb``, ``params/generate.yaml``, ``results/generate``). ``config`` holds its
parameters; ``cells`` samples grid cells and splits the target words; ``prompts`` builds the few-shot
prompts and pre-fills; ``run`` resolves each cell (candidates, LLM rewrite, swap fallback) and asks the LLM;
``llm_client`` / ``llm_server`` talk to an OpenAI-compatible endpoint (a local ``transformers serve`` by
default); ``counterfactual``, ``forms`` and ``her`` validate pairs and swap gender; ``toxicity`` screens
them; ``results`` assembles pairs, rejects and provenance; ``figures`` draws the stage's plots; ``levers``
measures the yield levers one by one."""
