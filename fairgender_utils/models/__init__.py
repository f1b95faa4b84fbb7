"""Stage ``models``: every model the pipeline uses, saved once as a Hugging Face folder
(``notebooks/00_convert_models.ipynb``, ``params/models.yaml``, ``results/models``). ``config`` holds its
parameters, ``convert`` the GGUF conversion and saving; loading lives in :mod:`fairgender_utils.lm.loading`."""
