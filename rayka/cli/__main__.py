"""``python -m rayka.cli``: the ``rayka`` script."""

from rayka.cli import main

main()
