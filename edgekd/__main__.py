"""`python -m edgekd` runs the command line."""

from edgekd.cli.app import main

if __name__ == "__main__":
    main()
