"""``python -m infomediary``: the same command as ``infomediary``."""

from infomediary.cli import main

main()
