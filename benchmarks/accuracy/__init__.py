"""The accuracy benchmark (a study driver beside the library, not part of it).

Run it with ``python benchmarks/accuracy/run.py`` from the repository root; see run.py.
"""
