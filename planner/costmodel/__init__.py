"""The analytic cost model: pure functions of specs, no solver imports.

Entry points: :func:`planner.costmodel.training.evaluate_training` for one job under one
configuration, and the term functions in the submodules (FLOPs, kernels, memory,
communication, pipeline, energy), each documenting its equation and source.
"""
