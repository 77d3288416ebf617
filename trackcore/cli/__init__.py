"""The ``trackcore`` command line: one module per subcommand, each with ``add_parser`` and ``run``.

Entry point: :func:`trackcore.cli.main.main`. Subcommands are thin: they parse, call the
public API and print.
"""
