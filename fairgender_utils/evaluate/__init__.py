"""Stage ``evaluate``: SEAT, StereoSet, CrowS-Pairs, held-out perplexity and the GLUE probe for one model
(``notebooks/04_evaluate.ipynb``, ``params/evaluate.yaml``, ``results/evaluate/<variant>``). ``config`` holds
its parameters; ``run`` the per-benchmark runners and the two profiles; ``scoring`` (+ ``scoring_plan``) the
batched token scorer; ``seat``, ``stereoset``, ``crows``, ``perplexity``, ``glue`` the benchmarks'
definitions; ``bench`` and ``crosscheck`` check the scorer's speed and its log-likelihoods; ``figures`` the
plots (also drawn across variants by the report)."""
