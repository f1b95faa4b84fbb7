"""Stage ``causal``: per-pair causal effects, alignment with the model's knowledge, the X^C / X^NC split
and the neighbour index (``notebooks/02_causal_estimation.ipynb``, ``params/causal.yaml``,
``results/causal``). ``config`` holds its parameters; ``effects`` the per-pair effects τ, δ, ω;
``alignment`` the reference corpus, KNN, split and index; ``diagnostics`` the tables; ``figures`` the plots."""
