"""The API gateway: the only public door, and the orchestrator that runs the order flow."""
