"""The audit chain: events, canonical JSON, masking, signing and verification, with no I/O.

A regular package (not a namespace one) so the import graph, and the layer contract checked on it,
sees these modules under ``airflow_wfe.core``; the store writes and reads the chain they define.
"""
