"""Bias and language-quality metrics: SEAT, StereoSet, CrowS-Pairs, GLUE, statistics."""
