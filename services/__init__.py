"""The five internal services and their shared plumbing (:mod:`services.common`)."""
