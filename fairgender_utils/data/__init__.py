"""Stage ``data``: the public benchmark files, fetched and sha256-checked (``notebooks/00_fetch_data.ipynb``,
``params/data.yaml``, ``results/data``). ``config`` holds its parameters, ``fetch`` the fetching."""
