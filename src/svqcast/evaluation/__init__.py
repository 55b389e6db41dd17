"""Evaluation: metrics (:mod:`.metrics`), the persistence and climatology baselines
(:mod:`.baselines`), reports (:mod:`.reports`) and plots (:mod:`.plots`)."""
