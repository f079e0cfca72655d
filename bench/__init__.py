"""neurotop's benchmarks: our figures beside the peers', measured in the same run.

``python -m bench`` runs everything (about 10 minutes on 2 cores) and prints a Markdown table,
also written to ``bench/results.md``; ``python -m bench --quick`` is a ~1 minute version on
smaller sizes. Each figure is measured in a fresh worker process (``bench._worker``) so memory
and warm caches do not leak from one benchmark into the next.

Modules: ``common`` (timing, rows, the table), ``data`` (journals and tfevents files written
fast, from templates), then one module per benchmark: ``log_cost``, ``demo_overhead``,
``ingest``, ``dashboard`` (repaint and memory), ``tb_anchor``, ``open_journal``, ``terminal``,
``soak``.
"""
