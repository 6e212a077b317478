"""`python -m webpipe` runs the CLI."""

from webpipe.cli import main

main()
