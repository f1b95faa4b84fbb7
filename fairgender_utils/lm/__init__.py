"""Model-facing code shared by several stages, for masked and causal LMs alike: ``loading`` (one loader
for folders and hub ids), ``heads`` (logits at chosen positions, or of chosen tokens only), ``embed``
(mean-pooled sentence embeddings), ``slots`` (where a pair's target and gendered words sit in tokens),
``probes`` (Auto-Debias's "word prompt [slot]" inputs) and ``losses`` (JSD, the bias and
language-modelling losses, the per-pair effect terms)."""
