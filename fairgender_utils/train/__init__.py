"""Stage ``train``: fine-tuning with L_b + λ·L_r under Hugging Face Accelerate (``notebooks/03_train.ipynb``,
``params/train.yaml``, ``results/train/<variant>``). ``config`` holds its parameters and the launch command;
``__main__`` is the script ``accelerate launch -m fairgender_utils.train`` runs; ``loop`` the training
loop; ``batches`` the batch and loss assembly; ``autodebias`` the examples and the extra loss term of the
Auto-Debias variant; ``checkpoints`` save and resume; ``speed`` and ``figures`` the run's summaries.
Importing this package loads no torch."""
