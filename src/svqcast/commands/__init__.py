"""The application: what the ``svqcast`` command runs.

``fit`` (``svqcast fit | validate | test`` through Lightning's CLI: run folders, locks, logs),
``runs`` (the run folder's lock, CSV log and saved config), ``quiet`` (Lightning's start-up
chatter held back), ``data`` and ``data_bench`` (``svqcast data list | synth | check |
bench``), ``demo`` and ``reproduce``. :mod:`svqcast.cli` parses arguments and dispatches here.
"""

# the commands Lightning's CLI runs (svqcast.commands.fit); here so that the dispatcher knows
# them without importing Lightning
LIGHTNING_COMMANDS = ("fit", "validate", "test")
