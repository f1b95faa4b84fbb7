"""Stage ``evaluate``: SEAT, StereoSet, CrowS-Pairs and the GLUE probe for one model
(``notebooks/04_evaluate.ipynb``, ``params/evaluate.yaml``, ``results/evaluate/<variant>``). ``config`` holds
its parameters; ``run`` the per-benchmark runners; ``scoring`` (+ ``scoring_plan``) the batched token
scorer; ``seat``, ``stereoset``, ``crows``, ``glue`` the benchmarks' definitions; ``bench`` the scorer
benchmark; ``figures`` the plots (also drawn across variants by the report)."""
