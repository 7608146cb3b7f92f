"""The camera daemon: its validated configuration, its loop, and the ``python -m edge_runtime`` and
``fer-edge`` command lines."""
