"""`python -m compat_core …` runs the command line."""

from compat_core.cli import main

main()
