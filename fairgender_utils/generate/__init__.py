"""Stage ``generate``: two-step LLM generation of attribute-balanced sentence pairs
(``notebooks/01_generate.ipynb``, ``params/generate.yaml``, ``results/generate``). ``config`` holds its
parameters; ``run`` samples cells, builds prompts and asks the LLM; ``llm_client`` / ``llm_server`` talk to an
OpenAI-compatible endpoint (a local ``transformers serve`` by default); ``counterfactual`` validates pairs
and swaps gender; ``toxicity`` screens them; ``results`` assembles pairs, rejects and provenance;
``figures`` draws the stage's plots."""
