"""Input specs: pydantic models for clusters, workloads, plans and the catalog entries."""
