"""The operator console: a live page on the gateway's port that lists the most recent
runs (each order's eleven steps, each registration) as they happen, draws one run as a
sequence diagram with a time axis, and gives p50/p99 per step.

The gateway's recorder turns each answer into a :class:`~orchestrator.console.runs.Run`
and adds it to a :class:`~orchestrator.console.store.RunStore`; :func:`add_console`
serves that store, to operators only.
"""
