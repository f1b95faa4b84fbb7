"""Stage ``report``: what the run shows, across every evaluated run (``notebooks/05_report.ipynb``,
``params/report.yaml``, ``results/report``). ``config`` holds its parameters; ``inputs`` reads the other
stages' outputs (run names, the generate and causal counts through one key mapping, the per-pair primary
endpoint, the dev curves); ``primary`` tests the primary endpoint; ``tables`` and ``paired`` the benchmarks,
runs grouped by variant; ``figures`` draws the dose-response, the data funnel and the trade-off;
``statement`` writes the plain statement and ``metrics.json``."""
