"""Stage ``causal``: per-pair causal effects, alignment with the model's knowledge, corrupted controls, the
X^C / X^NC split and the neighbour index (``notebooks/02_causal_estimation.ipynb``, ``params/causal.yaml``,
``results/causal``). ``config`` holds its parameters; ``effects`` the per-pair effects τ, δ, ω;
``alignment`` the pairs, reference corpus, KNN, θ and index; ``scores`` the alignment score a;
``controls`` the corrupted controls; ``tables`` the scoring of pairs and controls; ``views`` the split
written for training and re-split later; ``diagnostics`` the tables; ``figures`` the plots."""
