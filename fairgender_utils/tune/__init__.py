"""Stage ``tune`` (on demand, ``dvc repro tune/dvc.yaml``): learning rate, λ, the L_r choice, θ and the number
of steps chosen on the dev split (``notebooks/03_tune_training.ipynb``, ``params/tune.yaml``,
``results/tune``). ``config`` holds its parameters; ``trainsets`` builds the training set of each θ; ``grid`` runs
the grid and applies the selection rule; ``figures`` draws the dev curves. Importing it loads no torch."""
