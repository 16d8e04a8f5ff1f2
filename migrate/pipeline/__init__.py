"""The pipeline plug-in: what a Python pipeline gives dualrun to run (contract), the rows its
transform emits (records), and how a spec names one (registry)."""
