"""The operator's tools: the ``syncorders`` command, the supervisor that runs the stack,
the demo, the sequence diagram, the benchmark and its load generator, the prefill of a
long history and the measurement of what it costs. Nothing in the gateway imports them."""
