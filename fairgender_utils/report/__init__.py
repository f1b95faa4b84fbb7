"""Stage ``report``: the paper's tables across every evaluated model, paired tests against the base
model, yardsticks (``notebooks/05_report.ipynb``, ``params/report.yaml``, ``results/report``). ``config``
holds its parameters; ``tables`` builds the tables and the trade-off figure; ``paired`` runs the paired tests
of every evaluated model against the base model."""
