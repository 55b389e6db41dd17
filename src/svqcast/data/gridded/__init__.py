"""Gridded files as users have them: the one reader (:mod:`.reader`), time axes
(:mod:`.times`), units (:mod:`.units`) and the data identity (:mod:`.identity`: how data in
another layout maps onto a checkpoint's, or why it cannot)."""
