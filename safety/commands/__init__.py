"""Every command-line entry point of ``python -m safety``, one module per subcommand."""
