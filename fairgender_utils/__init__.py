"""Fair-Gender: debiasing pre-trained language models with LLM-generated, causally filtered pairs."""

__version__ = "0.1.0"
