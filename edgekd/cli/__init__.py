"""The command line (typer): one file per command; parse, call the library, print."""
